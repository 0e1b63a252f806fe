from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import musicrl  # noqa: F401
from musicrl import beyond
from musicrl.runfiles import RunResult
from musicrl.store import Store


def fake_result(spec, value):
    returns = np.full(25, float(value))
    return RunResult(spec=spec.to_dict(), curve=np.zeros(1), checkpoints=[spec.updates], returns=[returns],
                     pooled_from=[spec.updates], wall_time=60.0, env_steps=6000)


def test_noise_runs_retrain_the_thesis_agents_with_the_noise_in_their_configuration():
    specs = beyond.noise_specs("smoke")
    assert len(specs) == len(beyond.NOISE_EXPERIMENTS) * len(beyond.NOISE_LEVELS) * 2
    assert len({s.key for s in specs}) == len(specs)
    high = [s for s in specs if s.name == "noise-fig16-high"]
    assert high[0].env.rating_noise == 0.3 and high[0].env.closer_flip == 0.3 and high[0].env.obs == "BoardObs"
    assert high[0].trainer == "multiseed"
    assert "rating_noise" not in [s for s in specs if s.name == "noise-fig14-none"][0].env.to_dict()
    with pytest.raises(ValueError, match="unknown noise level 'extreme'"):
        beyond.noise_config(high[0].env, "extreme")
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        beyond.noise_specs("huge")


def test_scaling_runs_use_one_level_per_feature():
    specs = beyond.scaling_specs("quick")
    assert {s.env.d for s in specs} == {4, 6, 8}
    assert all(s.env.action == "MultiDiscrete" for s in specs)
    assert {s.trainer for s in specs if s.agent.algorithm != "Wolpertinger"} == {"multiseed"}
    assert {s.trainer for s in specs if s.agent.algorithm == "Wolpertinger"} == {"sb3"}
    assert {s.agent.algorithm for s in specs} == {"RecurrentA2C", "A2C", "Wolpertinger"}


def test_noise_table_measures_everything_against_the_bayesian_filter(tmp_path):
    found = [(s, fake_result(s, 100 + s.seed)) for s in beyond.noise_specs("smoke")]
    table = beyond.noise_table(found, "smoke", Store(tmp_path))
    assert set(table["noise"]) == set(beyond.NOISE_LEVELS)
    none = table[table["noise"] == "none"].set_index("policy")
    assert none.loc["greedy, trusting every answer", "share of filter"] == pytest.approx(1.0)  # noiseless: greedy is the filter
    high = table[table["noise"] == "high"].set_index("policy")
    assert high.loc["Bayesian filter", "mean"] > high.loc["greedy, trusting every answer", "mean"] + 50
    agent = high.loc["LSTM-A2C BoardObs (fig16)"]
    assert agent["mean"] == pytest.approx(100.5) and agent["runs"] == 2
    assert agent["share of filter"] == pytest.approx(100.5 / high.loc["Bayesian filter", "mean"])


def test_the_noise_plot_draws_a_study_with_one_finished_configuration_without_warnings(tmp_path):
    import warnings

    from musicrl import plots

    found = [(s, fake_result(s, 100 + s.seed)) for s in beyond.noise_specs("smoke") if s.name == "noise-fig14-none"]
    table = beyond.noise_table(found, "smoke", Store(tmp_path))
    assert len(table[table["kind"] == "agent"]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.plot_noise(table)
    assert len(fig.axes[0].containers) == len(set(table["policy"]))  # one error bar series per policy


def test_the_env_memory_does_not_grow_with_the_grid_and_random_levels_cover_any_d():
    assert beyond.env_memory_mb(10) < 1.0
    actions, _ = beyond.RandomLevels(12).predict(np.zeros((3, 14)))
    assert actions.shape == (3, 12) and actions.max() <= 4


def test_scaling_table_charges_each_seed_its_share_of_a_shared_run(tmp_path, monkeypatch):
    """The fast path records the wall time of its seeds together; the table divides it out."""
    stats = {"mean": 50.0, "top_found": 1.0, "top_steps": 3.0, "target_found": 0.5, "target_steps": 6.0}
    monkeypatch.setattr(beyond, "run_episode_stats", lambda *args: stats)
    monkeypatch.setattr(beyond, "_baseline_stats", lambda *args: stats)
    monkeypatch.setattr(beyond, "env_memory_mb", lambda d: 0.05)
    found = []
    for spec in beyond.scaling_specs("smoke"):
        result = fake_result(spec, 10 + spec.env.d)
        if spec.trainer == "multiseed":
            result = replace(result, wall_time=180.0, trainer={"path": "multiseed", "seeds_together": 3})
        found.append((spec, result))
    table = beyond.scaling_table(found, "smoke", store=Store(tmp_path)).set_index(["d", "policy"])
    assert table.loc[(4, "factored LSTM-A2C"), "train minutes per seed"] == pytest.approx(1.0)
    assert table.loc[(4, "Wolpertinger, 8 frames"), "train minutes per seed"] == pytest.approx(1.0)
    assert table.loc[(5, "factored A2C, 8 frames"), "env steps/s"] == pytest.approx(6000 / 60)
    assert table.loc[(5, "factored A2C, 8 frames"), "mean"] == 15
    assert np.isnan(table.loc[(5, "greedy (sampled)"), "train minutes per seed"])


def _scaling_rows(agent_means: dict[int, float], greedy: float = 200.0, random: float = 20.0) -> list[dict]:
    rows = []
    for d, mean in agent_means.items():
        rows += [{"d": d, "policy": "factored LSTM-A2C", "kind": "agent", "mean": mean, "train minutes per seed": d / 2},
                 {"d": d, "policy": "greedy (sampled)" if d > 4 else "greedy", "kind": "baseline", "mean": greedy,
                  "train minutes per seed": np.nan},
                 {"d": d, "policy": "random", "kind": "baseline", "mean": random, "train minutes per seed": np.nan}]
    return rows


@pytest.mark.parametrize("last, verdict", [
    (25.0, "no agent searches clearly better than random (12% of greedy against random's 10%)"),
    (60.0, "does better than random (30% of greedy against random's 10%) but gets less than half"),
    (120.0, "learns to search (60% of greedy against random's 10%) but stays below"),
    (190.0, "comes within 10% of greedy (95% of greedy against random's 10%)")])
def test_scaling_summary_says_what_the_table_shows(last, verdict):
    text = beyond.scaling_summary(pd.DataFrame(_scaling_rows({4: 160.0, 8: last})))
    assert "**factored LSTM-A2C**: 80% of greedy's return at d = 4" in text
    assert "training 2.0 → 4.0 min per seed" in text
    assert "**best agent**: factored LSTM-A2C at d = 4–8." in text
    assert "At d = 8" in text and verdict in text


def test_scaling_summary_without_agents_says_so():
    rows = [r for r in _scaling_rows({4: 1.0}) if r["kind"] == "baseline"]
    assert "No agent" in beyond.scaling_summary(pd.DataFrame(rows))


def _noise_row(level, policy, kind, mean, low=np.nan, high=np.nan):
    return {"noise": level, "policy": policy, "kind": kind, "mean": mean, "low": low, "high": high,
            "return [95% CI]": f"{mean:.0f}", "share of filter": mean / 200.0}


@pytest.mark.parametrize("agent, rule, filter_, expected", [
    ((150, 140, 160), (40, 35, 45), (200, 199, 201), "beats that rule (150 against 40) and stays below the filter"),
    ((42, 30, 50), (40, 35, 45), (200, 199, 201), "is level with that rule"),
    ((30, 25, 33), (40, 35, 45), (200, 199, 201), "loses to that rule"),
    ((199, 195, 205), (40, 35, 45), (200, 199, 201), "is level with the filter"),
])
def test_noise_summary_compares_the_best_agent_by_confidence_intervals(agent, rule, filter_, expected):
    rows = []
    for level in beyond.NOISE_LEVELS:
        rows += [_noise_row(level, "Bayesian filter", "baseline", *filter_),
                 _noise_row(level, "greedy, trusting every answer", "baseline", *rule),
                 _noise_row(level, "random", "baseline", 34.0, 33.0, 35.0)]
    rows += [_noise_row("none", "LSTM-A2C GridObs (fig14)", "agent", 160.0, 150.0, 170.0),
             _noise_row("high", "LSTM-A2C GridObs (fig14)", "agent", *agent),
             _noise_row("high", "weaker agent", "agent", 10.0, 5.0, 15.0)]
    text = beyond.noise_summary(pd.DataFrame(rows))
    assert "**LSTM-A2C GridObs (fig14)**: 0.80 of the filter without noise, " in text and "of the filter at high noise" in text
    assert "At high noise (p = 0.3, q = 0.3)" in text and "The best agent there, LSTM-A2C GridObs (fig14)," in text
    assert expected in text


def test_noise_summary_uses_the_noisiest_level_an_agent_ran():
    rows = [_noise_row(level, name, "baseline", 100.0) for level in ("none", "low", "high")
            for name in ("Bayesian filter", "greedy, trusting every answer", "random")]
    rows.append(_noise_row("low", "agent", "agent", 150.0, 140.0, 160.0))
    assert "At low noise (p = 0.1, q = 0.1)" in beyond.noise_summary(pd.DataFrame(rows))
    assert "No agent" in beyond.noise_summary(pd.DataFrame(rows[:-1]))


def test_scaling_summary_names_where_the_lead_changes_hands():
    rows = _scaling_rows({4: 100.0, 6: 100.0, 8: 100.0})
    rows += [{"d": d, "policy": "Wolpertinger, 8 frames", "kind": "agent", "mean": mean, "train minutes per seed": 8.0}
             for d, mean in ((4, 150.0), (6, 120.0), (8, 40.0))]
    text = beyond.scaling_summary(pd.DataFrame(rows))
    assert "**best agent**: Wolpertinger, 8 frames at d = 4–6; factored LSTM-A2C at d = 8." in text
    assert "At d = 8 the best agent, factored LSTM-A2C, learns to search (50% of greedy" in text
