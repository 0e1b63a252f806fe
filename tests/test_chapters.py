"""The chapters' text, tables and figures, computed by musicrl.chapters from tiny inputs with exact results."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from musicrl import profiles
from musicrl.chapters import environment, experiments_2d, higher_dimensions, tables
from musicrl.runfiles import RunResult

METRICS = pd.DataFrame([
    {"experiment": "fig14-gru", "figure": 14, "ours": "GRU-A2C", "observation": "GridObs", "reward": "Bullseye", "seeds": 3,
     "pooled mean": 190.0, "pooled low": 188.0, "pooled high": 192.0, "optimal": 201.6, "greedy": 201.2, "d": 2, "table": 22},
    {"experiment": "fig21", "figure": 21, "ours": "A2C", "observation": "BoardObs", "reward": "Rating", "seeds": 3,
     "pooled mean": 250.0, "pooled low": 240.0, "pooled high": 260.0, "optimal": 320.0, "greedy": 240.0, "d": 2, "table": 23},
])


def test_metric_sentence_quotes_the_thesis_ours_and_the_baselines():
    assert experiments_2d.metric_sentence(METRICS, "fig14") == (
        "In figure 14 (2D Grid, n=20 · Bullseye, WiderTop) the thesis's agent averaged 188; ours reaches 190 [188, 192] "
        "(pooled over the second half of training, 95% CI over 3 seeds). The optimal policy gets 201.6 and greedy 201.2 "
        "on the same setting, with no training at all.")
    assert experiments_2d.metric_sentence(METRICS, "fig19") == "Thesis figure 19 (fig19-gru) has not run yet under this profile."


def test_ranking_paragraph_names_the_closest_and_farthest_and_those_at_greedys_level():
    base = ("Across the 2 configurations, the closest to optimal is thesis figure 14 (GRU-A2C, GridObs, Bullseye): 11.6 "
            "below the optimum. The farthest is thesis figure 21 (A2C, BoardObs, Rating): 70.0 below. 1 of them reach "
            "greedy's level (thesis figures 21). ")
    assert experiments_2d.ranking_paragraph(METRICS, thesis_budget=True) == base
    assert experiments_2d.ranking_paragraph(METRICS, thesis_budget=False) == (
        base + "The thesis trained for far longer than this profile; the `full` profile runs its budgets.")


def test_sampling_paragraph_names_gains_of_a_point_or_more_else_says_the_policies_are_deterministic():
    sampling = pd.DataFrame([
        {"figure": 14, "ours": "GRU-A2C", "observation": "GridObs", "deterministic": 180.0, "sampled": 190.0,
         "sampled − deterministic": 10.0, "of those, stuck on one position": 0.5},
        {"figure": 21, "ours": "A2C", "observation": "BoardObs", "deterministic": 200.0, "sampled": 200.5,
         "sampled − deterministic": 0.5, "of those, stuck on one position": 1.0}])
    tail = ("The thesis's tables, and ours, measure the deterministic policy; where the sampled return is far higher, the "
            "network has learnt where to search but not how to avoid repeating itself, which is why the training curve can "
            "sit above the metric.")
    assert experiments_2d.sampling_paragraph(sampling) == (
        "Of the targets the deterministic policies miss, a median of 75% per experiment end with the agent repeating one "
        "position. Sampling gains the most for thesis figure 14 (GRU-A2C, GridObs: 180.0 → 190.0). " + tail)
    assert experiments_2d.sampling_paragraph(sampling.iloc[[1]]) == (
        "Of the targets the deterministic policies miss, a median of 100% per experiment end with the agent repeating one "
        "position. Under this profile sampling gains less than one point everywhere (at most figure 21: 200.0 → 200.5): "
        "the trained policies are nearly deterministic. " + tail)


def test_trpo_paragraph_counts_collapses_and_tests_the_entropy_bonus():
    collapse = pd.DataFrame([
        {"experiment": "fig17", "seed": 0, "final level": 60.0, "collapsed at": 3000, "entropy, first checkpoint": 0.004,
         "entropy, last checkpoint": 0.001, "line search ok, first tenth": 0.5, "line search ok, last tenth": 0.1},
        {"experiment": "fig17", "seed": 1, "final level": 180.0, "collapsed at": pd.NA, "entropy, first checkpoint": 0.002,
         "entropy, last checkpoint": 0.002, "line search ok, first tenth": 0.7, "line search ok, last tenth": 0.3},
        {"experiment": "fig17-entropy", "seed": 0, "final level": 190.0, "collapsed at": pd.NA, "entropy, first checkpoint": 0.05,
         "entropy, last checkpoint": 0.05, "line search ok, first tenth": 0.9, "line search ok, last tenth": 0.8},
    ])
    collapse["collapsed at"] = collapse["collapsed at"].astype("Int64")
    run = RunResult(spec={"name": "fig14", "seed": 0}, curve=np.array([10.0, 100.0, 20.0, 10.0]), checkpoints=[4],
                    returns=[np.zeros(25)], pooled_from=[4], wall_time=1.0, env_steps=4)
    text = experiments_2d.trpo_paragraph(collapse, {"fig14": [run], "fig17": []}, weight=0.0)
    assert text.startswith("**1 of 2 TRPO runs collapse** (the smoothed curve falls below half its peak, after 3,000–3,000 "
                           "updates). At the first checkpoint the policies' entropy is already at most 0.004 nats")
    assert "succeeds on 60% of the updates in the first tenth of training and on 20% in the last." in text
    assert "Of the 1 A2C, GRU-A2C and LSTM-A2C runs, which keep the entropy bonus, 1 collapse by the same criterion." in text
    assert ("`fig17-entropy`: its 1 runs keep an entropy of 0.05–0.05 nats at the last checkpoint, their line search "
            "succeeds on 80% of the updates in the last tenth, 0 of them collapse, and their final level averages 190 "
            "against 120 without the bonus (2 runs).") in text
    assert text.endswith("So the bonus does not work by keeping the policy stochastic: at the last checkpoint its entropy "
                         "is at most 0.05 nats, as close to deterministic as without it (0.00). What it changes is the line "
                         "search, which succeeds on 80% of the last tenth's updates with the bonus against 20% without: the "
                         "entropy term gives the surrogate objective a gradient that a nearly deterministic policy can still "
                         "follow, so steps keep being accepted and the policy keeps moving instead of freezing on a worse one.")


HIGHER = pd.DataFrame([
    {"experiment": "fig14-gru", "d": 2, "greedy": 201.2, "pooled mean": 190.0, "pooled low": 188.0, "pooled high": 192.0},
    {"experiment": "fig24-gru", "d": 3, "greedy": 190.0, "pooled mean": 185.0, "pooled low": 180.0, "pooled high": 189.0},
])


def test_higher_dimensions_paragraphs_compare_with_greedy_and_across_dimensions():
    assert higher_dimensions.greedy_paragraph(HIGHER) == (
        "In 2D greedy, which needs no training, averages 201.2; the trained agent reaches 190 [188, 192] in this profile. "
        "In 3D greedy, which needs no training, averages 190.0; the trained agent reaches 185 [180, 189] in this profile.")
    assert higher_dimensions.gap_paragraph(HIGHER, thesis_budget=True) == (
        "In 2D the agent is 11.2 below greedy. In 3D the agent is 5.0 below greedy.")
    assert higher_dimensions.gap_paragraph(HIGHER, thesis_budget=False).endswith(
        "greedy. These runs are far shorter than the thesis's; the `full` profile runs its budgets.")
    assert higher_dimensions.trend_sentence(HIGHER) == (
        "The thesis saw slightly lower returns with each added feature. Here the pooled means go 190 (2D) → 185 (3D): "
        "their 95% CIs overlap, so these seeds do not tell the dimensions apart.")
    apart = HIGHER.assign(**{"pooled high": [192.0, 187.0]})
    assert higher_dimensions.trend_sentence(apart).endswith("the CIs of 3D and 2D do not overlap.")
    assert higher_dimensions.trend_sentence(HIGHER.iloc[[0]]) is None


def baseline_frame() -> pd.DataFrame:
    settings = [(d, p, r, policy) for d in (2, 3) for p in ("TopTarget", "WiderTopTarget") for r in ("Bullseye", "Rating")
                for policy in ("optimal", "greedy", "lookahead", "random", "upper bound")]
    return pd.DataFrame([{"d": d, "preset": p, "reward": r, "policy": policy, "mean": float(i)}
                         for i, (d, p, r, policy) in enumerate(settings)])


def test_environment_values_name_each_2d_setting_and_the_bracket_holds_the_best_heuristic_and_the_bound():
    table = baseline_frame()
    values = environment.values_2d(table)
    assert len(values) == 16 and values["v2_TopTarget_Bullseye_optimal"] == 0.0
    assert values["v2_WiderTopTarget_Rating_random"] == 18.0
    bracket = environment.bracket_table(table, profiles.Environment(dims=(2, 3), exact_up_to=2))
    assert bracket.iloc[0].to_dict() == {"d": 3, "preset": "TopTarget", "reward": "Bullseye", "best heuristic": 22.0,
                                         "upper bound": 24.0, "gap": 2.0}
    assert len(bracket) == 4 and environment.bracket_table(table, profiles.Environment(dims=(2,))).empty


def test_a_chapter_without_any_finished_run_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICRL_RESULTS", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"no run of fig14-gru has finished under the smoke profile.*"
                                           r"musicrl train fig14-gru --profile smoke.*train_missing=True"):
        tables.chapter_runs(["fig14-gru"], "smoke", train_missing=False)


def test_runs_frame_names_each_runs_key_and_trainer():
    run = RunResult(spec={"name": "fig21", "seed": 1}, curve=np.zeros(10), checkpoints=[10], returns=[np.zeros(25)],
                    pooled_from=[10], wall_time=12.4, env_steps=3200, trainer={"path": "multiseed", "seeds_together": 2})
    row = experiments_2d.runs_frame({"fig21": [run]}, "smoke").iloc[0]
    assert row["run"].startswith("fig21-s1-") and row["trainer"] == "multiseed (2 seeds)"
    assert (row["updates"], row["env steps"], row["wall time (s)"]) == (10, 3200, 12)


def test_the_runs_table_names_each_runs_trainer_device_runs_included():
    from musicrl.chapters.experiments_2d import trainer_label

    assert trainer_label({"path": "sb3", "seeds_together": 1}) == "sb3"
    assert trainer_label({"path": "multiseed", "seeds_together": 5}) == "multiseed (5 seeds)"
    assert trainer_label({"path": "device", "seeds_together": 5}) == "device (5 seeds)"
