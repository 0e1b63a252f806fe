"""The fast path (musicrl.multiseed) against the reference (SB3 through musicrl.training.train)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from musicrl import beyond, probes, publish, registry, runfiles, training
from musicrl.agents import AgentConfig
from musicrl.algorithms import TRAINERS
from musicrl.chapters import tables
from musicrl.envs import EnvConfig, PreferenceSearchVecEnv
from musicrl.publish import load_policy
from musicrl.runfiles import RunSpec
from musicrl.training import train, train_seeds

TOLERANCE = 1e-6  # batched kernels sum in another order: parameters agree to a few float32 ulps


def _specs(name: str, updates: int, every: int, seeds=(0, 1)) -> tuple[list[RunSpec], list[RunSpec]]:
    if name in beyond.SCALING_AGENTS:  # the factored policies of "Beyond the thesis", at d = 3
        base = RunSpec("factored", beyond.scaling_config(3), beyond.SCALING_AGENTS[name], updates=updates, checkpoint_every=every)
    else:
        base = registry.run_spec(name, "quick", 0)
    reference = [replace(base, updates=updates, checkpoint_every=every, seed=s, trainer="sb3") for s in seeds]
    return reference, [replace(spec, trainer="multiseed") for spec in reference]


def _max_parameter_gap(a, b) -> float:
    return max((p - q).abs().max().item() for p, q in zip(a.model.policy.parameters(), b.model.policy.parameters()))


@pytest.mark.parametrize("name, updates", [("fig21", 50), ("fig14", 50), ("fig25", 30), ("fig14-gru", 50), ("fig25-gru", 30),
                                           ("factored LSTM-A2C", 40), ("factored A2C, 8 frames", 40)])
def test_multiseed_trains_what_sb3_trains(tmp_path, name, updates):
    """Same seeds, same number of updates: same curve, same evaluations, parameters within 1e-6.
    Each seed trains alone on SB3 and beside another on the fast path: seeds do not depend on their batch-mates."""
    reference, fast = _specs(name, updates, updates // 2)
    slow_results = [train(spec, tmp_path / "sb3", progress=False) for spec in reference]
    fast_results = train_seeds(fast, tmp_path / "fast", progress=False)
    for ref, spec, slow, quick in zip(reference, fast, slow_results, fast_results):
        np.testing.assert_array_equal(slow.curve, quick.curve)
        for a, b in zip(slow.returns, quick.returns):
            np.testing.assert_array_equal(a, b)
        assert slow.env_steps == quick.env_steps
        assert quick.trainer == {"path": "multiseed", "seeds_together": 2}
        a, b = load_policy(ref, root=tmp_path / "sb3"), load_policy(spec, root=tmp_path / "fast")
        assert _max_parameter_gap(a, b) < TOLERANCE
        np.testing.assert_allclose(a.normalizer.obs_rms.var, b.normalizer.obs_rms.var, rtol=1e-12)
        np.testing.assert_allclose(a.normalizer.ret_rms.var, b.normalizer.ret_rms.var, rtol=1e-12)
        for sb3_state, fast_state in zip(a.model.policy.optimizer.state.values(), b.model.policy.optimizer.state.values()):
            assert float(sb3_state["step"]) == float(fast_state["step"]) == updates
            assert (sb3_state["square_avg"] - fast_state["square_avg"]).abs().max() < TOLERANCE


def test_multiseed_resumes_an_sb3_checkpoint(tmp_path):
    """Checkpoints are interchangeable: the fast path continues an SB3 run where SB3 would."""
    (reference,), (fast,) = _specs("fig14", 20, 10, seeds=(0,))
    slow = train(reference, tmp_path, progress=False)
    checkpoint = "checkpoints/u0000010"
    shutil.copytree(runfiles.RunFolder.of(reference, tmp_path).path / checkpoint, runfiles.RunFolder.of(fast, tmp_path).path / checkpoint)
    shutil.copytree(runfiles.RunFolder.of(reference, tmp_path).path / "evals", runfiles.RunFolder.of(fast, tmp_path).path / "evals")
    (runfiles.RunFolder.of(fast, tmp_path).path / "evals" / "u0000020.json").unlink()
    resumed = train(fast, tmp_path, progress=False)
    np.testing.assert_array_equal(slow.curve, resumed.curve)
    np.testing.assert_array_equal(slow.returns[-1], resumed.returns[-1])
    assert _max_parameter_gap(load_policy(reference, root=tmp_path), load_policy(fast, root=tmp_path)) < TOLERANCE


def test_multiseed_logs_losses_and_curve_to_tensorboard(tmp_path):
    _, fast = _specs("fig21", 10, 5)
    train_seeds(fast, tmp_path, progress=False)
    assert list((runfiles.RunFolder.of(fast[0], tmp_path).path / "tb" / "multiseed").glob("events.out.tfevents*"))


def test_multiseed_rerun_reads_the_store(tmp_path):
    _, fast = _specs("fig21", 10, 5)
    first = train_seeds(fast, tmp_path, progress=False)
    again = train_seeds(fast, tmp_path, progress=False)
    assert [r.wall_time for r in first] == [r.wall_time for r in again]


def test_train_seeds_wants_seeds_of_one_configuration(tmp_path):
    _, fast = _specs("fig21", 10, 5)
    with pytest.raises(ValueError, match="differ in more than the seed"):
        train_seeds([fast[0], replace(fast[1], updates=20)], tmp_path)
    with pytest.raises(ValueError, match="differ in more than the seed"):
        train_seeds([fast[0], fast[0]], tmp_path)


def test_multiseed_refuses_what_it_does_not_implement():
    trpo = registry.experiment("fig17")
    with pytest.raises(ValueError, match="use --trainer 'sb3'"):
        RunSpec("x", trpo.env, trpo.agent, updates=10, checkpoint_every=5, trainer="multiseed")
    multi = EnvConfig(d=2, action="MultiDiscrete")
    assert TRAINERS["multiseed"].implements(multi, AgentConfig(algorithm="A2C", frames=8))
    assert not TRAINERS["multiseed"].implements(multi, AgentConfig(algorithm="Wolpertinger", frames=8))
    with pytest.raises(ValueError, match="use --trainer 'sb3' for Wolpertinger"):
        RunSpec("x", multi, AgentConfig(algorithm="Wolpertinger"), updates=10, checkpoint_every=5, trainer="multiseed")
    with pytest.raises(ValueError, match="unknown trainer .fast."):
        RunSpec("x", EnvConfig(), AgentConfig(), updates=10, checkpoint_every=5, trainer="fast")


def test_profiles_use_the_fast_path_where_it_applies():
    assert registry.run_spec("fig14", "full", 0).trainer == "multiseed"
    assert registry.run_spec("fig17", "full", 0).trainer == "sb3"
    assert "trainer" not in replace(registry.run_spec("fig14", "full", 0), trainer="sb3").to_dict()


def test_concatenated_env_steps_like_its_parts():
    config = EnvConfig(d=3, obs="GridObs")
    parts = [PreferenceSearchVecEnv(4, config, seed=s, truncation_as_terminal=True) for s in (0, 10)]
    twins = [PreferenceSearchVecEnv(4, config, seed=s, truncation_as_terminal=True) for s in (0, 10)]
    for env in parts + twins:
        env.reset()
    joined = PreferenceSearchVecEnv.concatenate(parts)
    rng = np.random.default_rng(0)
    for _ in range(45):  # crosses two auto-resets
        actions = rng.integers(0, config.n_positions, size=8)
        obs, rewards, dones = joined.step_arrays(actions)
        expected = [twin.step(a) for twin, a in zip(twins, np.split(actions, 2))]
        np.testing.assert_array_equal(obs, np.concatenate([e[0] for e in expected]))
        np.testing.assert_array_equal(rewards, np.concatenate([e[1] for e in expected]))
        np.testing.assert_array_equal(dones, np.concatenate([e[2] for e in expected]))
    joined.split_into(parts)
    for part, twin in zip(parts, twins):
        np.testing.assert_array_equal(part.targets, twin.targets)
        assert part.get_rng_state() == twin.get_rng_state()


def test_published_results_are_read_like_the_local_store(tmp_path):
    """A published run (gzip JSON, no weights) is found by train() and by the chapters' tables."""
    spec = registry.run_spec("fig21", "smoke", 0)
    local, published = tmp_path / "results", tmp_path / "published"
    trained = train(spec, local, progress=False)
    with pytest.raises(ValueError, match="has not finished"):
        publish.publish(registry.run_spec("fig21", "smoke", 1), {}, local, published)
    written = training.publish_runs(["fig21"], "smoke", root=local, published=published, progress=False)
    assert [p.name for p in written] == [f"{spec.key}.json.gz"]  # seed 1 is not trained: skipped
    shutil.rmtree(local)
    found = publish.load_result(spec, local, published=published)
    np.testing.assert_array_equal(found.curve, trained.curve)
    np.testing.assert_array_equal(found.returns[-1], trained.returns[-1])
    assert found.extras["sampling"]["repeats"] == probes.SAMPLING_REPEATS
    assert set(found.extras["entropy"]) == {str(u) for u in spec.checkpoints}
    assert all(0 <= h <= np.log(spec.env.n_positions) for h in found.extras["entropy"].values())
    assert publish.load_result(spec, local, published=False) is None
    table = tables.sampling_table({"fig21": [found]}, "smoke", root=local)  # no weights needed
    assert table.loc[0, "sampled"] == pytest.approx(found.extras["sampling"]["sampled"])
    assert not runfiles.RunFolder.of(spec, local).path.exists()
    assert [s.seed for s in training.missing_runs(["fig21"], "smoke", root=local, published=published)] == [1]


def test_entropy_probe_follows_the_lstm_state(tmp_path):
    spec = registry.run_spec("fig14", "smoke", 0)
    train(spec, tmp_path, progress=False)
    entropy = probes.policy_entropy(spec, spec.checkpoints[-1], tmp_path)
    assert 0 < entropy <= np.log(spec.env.n_positions)


@pytest.mark.parametrize("name", ["fig25", "fig25-gru"])
def test_published_weights_play_as_the_final_checkpoint(tmp_path, monkeypatch, name):
    """A run only published/ holds trains again with published=False (to the same numbers), and
    its published final weights make the same policy on a clone without the local run."""
    local, published = tmp_path / "results", tmp_path / "published"
    monkeypatch.setattr(publish, "PUBLISHED_ROOT", published)
    spec = registry.run_spec(name, "smoke", 0)
    trained = train_seeds([spec], local, progress=False)[0]
    training.publish_runs([name], "smoke", root=local, published=published, progress=False)
    shutil.rmtree(local)
    assert train_seeds([spec], local, progress=False)[0].env_steps == trained.env_steps
    assert not runfiles.RunFolder.of(spec, local).path.exists()  # read from published/, nothing trained
    with pytest.raises(ValueError, match="no published weights.*publish --weights"):
        load_policy(spec, root=local, published=published)
    with pytest.raises(ValueError, match="final checkpoint.*--weights"):
        publish.publish_weights(spec, local, published)
    again = train_seeds([spec], local, progress=False, published=False)[0]
    np.testing.assert_array_equal(again.curve, trained.curve)
    target = publish.publish_weights(spec, local, published)
    assert sorted(p.name for p in target.iterdir()) == sorted(publish.WEIGHT_FILES)
    assert not publish.carry_path(spec).exists()
    shutil.rmtree(local)
    from musicrl.evaluation import evaluate_policy
    played = evaluate_policy(load_policy(spec, root=local, published=published), spec.env)
    np.testing.assert_array_equal(played.returns, trained.returns[-1])
    with pytest.raises(ValueError, match="saves checkpoints at"):
        load_policy(spec, spec.checkpoints[-1] + 1, root=local, published=published)


def test_weights_are_not_published_beside_a_result_they_did_not_produce(tmp_path, monkeypatch):
    local, published = tmp_path / "results", tmp_path / "published"
    monkeypatch.setattr(publish, "PUBLISHED_ROOT", published)
    spec = registry.run_spec("fig25", "smoke", 0)
    train_seeds([spec], local, progress=False)
    training.publish_runs(["fig25"], "smoke", root=local, published=published, progress=False)
    shown = publish.load_result(spec, tmp_path / "elsewhere", published=published)
    shown.curve = shown.curve + 1.0
    from musicrl.store import write_gzip_json_atomic
    write_gzip_json_atomic(publish.published_path(spec, published), shown.to_json())
    with pytest.raises(ValueError, match="differ from the published ones.*--replace"):
        publish.publish_weights(spec, local, published)
    assert not publish.weights_path(spec, published).exists()
    extras = probes.run_extras(spec, local)
    publish.publish_weights(spec, local, published, replace_with=lambda s: extras)
    replaced = publish.published_result(spec, published)
    np.testing.assert_array_equal(replaced.curve, publish.load_result(spec, local, published=False).curve)
    assert replaced.extras == extras
    assert sorted(p.name for p in publish.weights_path(spec, published).iterdir()) == sorted(publish.WEIGHT_FILES)
