import json

import numpy as np
import pytest
import torch

from musicrl import store
from musicrl.baselines import GreedyPolicy, StayPolicy
from musicrl.envs import EnvConfig
from musicrl.evaluation import EvalResult, Policy, evaluate_policy, evaluate_sampled, pool, rollout


def test_evaluation_runs_every_target_once():
    config = EnvConfig(d=3, reward="Bullseye")
    result = evaluate_policy(StayPolicy(config), config)
    assert result.returns.shape == (125,)
    assert result.returns[62] == 210 and result.mean == pytest.approx(210 * np.mean(result.returns == 210))
    assert isinstance(StayPolicy(config), Policy)


def test_episode_outcomes_tell_found_from_stuck():
    config = EnvConfig(d=2, preset="TopTarget", reward="Bullseye")  # rating 4 only at the target
    _, stay = rollout(StayPolicy(config), config, range(25))
    assert [e.found for e in stay] == [t == 12 for t in range(25)]
    assert [e.stuck for e in stay] == [t != 12 for t in range(25)]
    _, greedy = rollout(GreedyPolicy(config), config, range(25))
    assert all(e.found and not e.stuck for e in greedy)


def test_sampled_evaluation_is_seeded_and_leaves_the_global_generator_alone():
    from stable_baselines3 import A2C

    from musicrl.envs import PreferenceSearchEnv

    config = EnvConfig(d=2, reward="Rating")
    model = A2C("MlpPolicy", PreferenceSearchEnv(**config.to_dict()), seed=0, device="cpu")  # untrained: far from deterministic
    before = torch.get_rng_state()
    first, episodes = evaluate_sampled(model, config, repeats=4, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert first.returns.shape == (100,) and [e.target for e in episodes[:26]] == [*range(25), 0]
    np.testing.assert_array_equal(evaluate_sampled(model, config, repeats=4, seed=3)[0].returns, first.returns)
    assert not np.array_equal(evaluate_sampled(model, config, repeats=4, seed=4)[0].returns, first.returns)
    assert not np.array_equal(first.returns, np.tile(evaluate_policy(model, config).returns, 4))


def test_sampled_evaluation_of_a_deterministic_policy_repeats_the_metric():
    config = EnvConfig(d=2, reward="Rating")
    sampled, _ = evaluate_sampled(GreedyPolicy(config), config, repeats=3)
    np.testing.assert_array_equal(sampled.returns, np.tile(evaluate_policy(GreedyPolicy(config), config).returns, 3))
    with pytest.raises(ValueError, match="repeats must be >= 1"):
        evaluate_sampled(GreedyPolicy(config), config, repeats=0)


def test_pool_concatenates_checkpoints():
    pooled = pool([EvalResult(np.array([1.0, 3.0])), EvalResult(np.array([5.0, 7.0]))])
    assert pooled.mean == 4.0 and pooled.std == pytest.approx(np.std([1, 3, 5, 7]))
    with pytest.raises(ValueError, match="at least one"):
        pool([])


def test_store_computes_once_and_records_config_and_versions(tmp_path):
    calls = []
    results = store.Store(tmp_path)
    compute = lambda: calls.append(1) or {"value": 3}
    assert results.get_or_compute("kind", {"a": 1}, compute) == {"value": 3}
    assert results.get_or_compute("kind", {"a": 1}, compute) == {"value": 3}
    assert len(calls) == 1
    record = json.loads(results.path("kind", {"a": 1}).read_text())
    assert record["config"] == {"a": 1} and record["versions"]["numpy"] == np.__version__
    assert results.path("kind", {"a": 2}) != results.path("kind", {"a": 1})


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(TypeError):
        store.write_json_atomic(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_numbers_are_rounded_to_what_the_ci_supports():
    from musicrl.stats import format_ci

    assert format_ci(156.27, 128.4, 180.3, 5) == "156 [128, 180]"
    assert format_ci(12.345, 12.1, 12.6, 5) == "12.3 [12.1, 12.6]"
    assert format_ci(1.2345, 1.22, 1.25, 5) == "1.23 [1.22, 1.25]"
    assert format_ci(42.0, 42.0, 42.0, 2) == "42.0 (all runs)"
    assert format_ci(42.0, 42.0, 42.0, 1) == "42.0 (1 run)"


def test_conversational_metrics_count_turns_to_the_first_top_rating():
    from musicrl.evaluation import Episode, conversational_metrics, turns_to_success

    quick = Episode(target=0, positions=[12, 3, 0], closer=[0, 1, 1], ratings=[1, 3, 4], rewards=[0, 0, 10])
    never = Episode(target=0, positions=[12] * 3, closer=[0] * 3, ratings=[1, 1, 1], rewards=[0, 0, 0])
    assert turns_to_success(quick) == 2 and turns_to_success(never) is None
    metrics = conversational_metrics([quick, never], horizons=(1, 2))
    assert metrics == {"SR@1": 0.0, "SR@2": 0.5, "AT": (2 + 21) / 2}


def test_atomic_writes_honour_the_umask_and_the_results_root_ignores_the_working_directory(tmp_path, monkeypatch):
    import os

    from musicrl import store

    previous = os.umask(0o022)
    try:
        store.write_json_atomic(tmp_path / "a.json", {"x": 1})
        store.write_gzip_json_atomic(tmp_path / "b.json.gz", {"x": 1})
        folder = store.atomic_folder(tmp_path, ".c.")
        os.umask(0o077)
        store.write_json_atomic(tmp_path / "d.json", {"x": 1})
    finally:
        os.umask(previous)
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in ("a.json", "b.json.gz", "d.json")}
    assert modes == {"a.json": 0o644, "b.json.gz": 0o644, "d.json": 0o600}
    assert folder.stat().st_mode & 0o777 == 0o755
    monkeypatch.delenv("MUSICRL_RESULTS", raising=False)
    monkeypatch.chdir(tmp_path)
    assert store.results_root() == store.REPOSITORY / "results" and store.Store().root.is_absolute()
    monkeypatch.setenv("MUSICRL_RESULTS", str(tmp_path / "elsewhere"))
    assert store.Store().root == tmp_path / "elsewhere"
