"""The registry, the chapters' tables and verdicts, reference levels, carry, and the train/sweep command line."""

import re
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from musicrl import baselines, profiles, publish, reference, registry, runfiles, stats, training
from musicrl.algorithms import ALGORITHMS
from musicrl.chapters import conclusions, environment, experiments_2d, higher_dimensions, tables
from musicrl.cli import main
from musicrl.publish import carry_path
from musicrl.runfiles import RunResult
from musicrl.stats import late_rise, mean_ci, smooth, updates_to_convergence
from musicrl.store import Store

SPEC = Path(__file__).resolve().parents[2] / "shared" / "docs" / "environment-spec.md"


def test_every_thesis_training_figure_has_an_experiment():
    figures = sorted(e.figure for e in registry.EXPERIMENTS.values())
    assert figures == [*range(11, 22), 24, 25]
    assert {e.env.d for e in registry.EXPERIMENTS.values()} == {2, 3, 4}
    assert {registry.experiment(n).figure for n in registry.CHAPTER_EXPERIMENTS["experiments_2d"]} == set(range(11, 22))


def test_the_chapters_lead_with_the_thesis_agents():
    algorithms = {n: registry.experiment(n).agent.algorithm for n in registry.CHAPTER_EXPERIMENTS["experiments_2d"]}
    assert {n for n, a in algorithms.items() if a == "GRUA2C"} == {f"fig{i}-gru" for i in (11, 12, 13, 14, 15, 16, 18, 19)}
    assert {n for n, a in algorithms.items() if a == "ACKTR"} == {"fig17-acktr", "fig20-acktr"}
    assert {n for n, a in algorithms.items() if a == "A2C"} == {"fig21"}
    assert set(registry.CHAPTER_STAND_INS["experiments_2d"]) == {f"fig{i}" for i in range(11, 21)}
    assert registry.CHAPTER_EXPERIMENTS["higher_dimensions"] == ("fig14-gru", "fig24-gru", "fig25-gru")


@pytest.mark.skipif(not SPEC.exists(), reason="environment-spec.md is not beside the repository")
def test_thesis_values_match_the_spec_table():
    rows = re.findall(r"^\| (Bullseye|Rating) \| (\w+), (\w+) \| (\d+) \| (yes|no) \| (A2C|ACKTR) \| (\d+) \| (\d+) \|$",
                      SPEC.read_text(), flags=re.M)
    assert len(rows) == 10
    ours = {
        (e.env.reward, e.env.preset, e.env.obs, e.agent.n_steps, ALGORITHMS[e.agent.algorithm].thesis,
         e.recurrent): (e.thesis.std, e.thesis.mean)
        for e in registry.EXPERIMENTS.values() if e.thesis
    }
    assert len(ours) == 10
    for reward, preset, obs, n, recurrent, algorithm, std, mean in rows:
        # the spec asks to treat the Bullseye ACKTR row as feed-forward (figure 17's caption)
        key = (reward, preset, f"{obs}Obs", int(n), algorithm, recurrent == "yes" and algorithm == "A2C")
        assert ours[key] == (float(std), float(mean))


def test_experiments_use_the_thesis_budgets_in_full_and_equal_budgets_in_quick():
    quick = registry.run_spec("fig25", "quick", seed=2)
    full = registry.run_spec("fig25", "full", seed=2)
    assert quick.updates == profiles.get("quick").training.updates and quick.seed == 2
    assert full.updates == registry.EXPERIMENTS["fig25"].full_updates >= 130_000
    assert full.checkpoint_every == 5000
    for e in registry.EXPERIMENTS.values():
        assert e.converged is None or e.full_updates >= 2 * e.converged
    assert len(registry.run_specs(["fig11", "fig14"], "quick")) == 2 * len(profiles.get("quick").training.seeds)
    assert len(profiles.get("quick").training.seeds) >= 3


def test_fig15_lowers_the_learning_rate_and_fig17_uses_the_acktr_stand_in():
    assert registry.EXPERIMENTS["fig15"].agent.learning_rate == pytest.approx(7e-5)
    assert registry.EXPERIMENTS["fig17"].agent.algorithm == "TRPO"
    assert "ACKTR" in registry.EXPERIMENTS["fig17"].stand_in
    assert "LSTM" in registry.EXPERIMENTS["fig14"].stand_in and "GRU" in registry.EXPERIMENTS["fig14"].stand_in


def test_unknown_experiment_or_profile_is_rejected():
    with pytest.raises(ValueError, match="unknown experiment 'fig99'; accepted: 'fig11'"):
        registry.run_spec("fig99", "quick", 0)
    with pytest.raises(ValueError, match="unknown profile 'huge'"):
        registry.run_spec("fig14", "huge", 0)


def test_mean_ci_is_a_reproducible_interval_around_the_mean():
    values = [170.0, 182.0, 190.0, 176.0]
    mean, low, high = mean_ci(values)
    assert mean == pytest.approx(np.mean(values))
    assert min(values) <= low < mean < high <= max(values)
    assert mean_ci(values) == (mean, low, high)
    assert mean_ci([5.0, 5.0, 5.0]) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])


def test_smoothing_is_tensorboards_debiased_moving_average():
    values = [4.0, np.nan, 2.0, 8.0]
    out = smooth(values, weight=0.5)
    assert out[0] == 4.0 and np.isnan(out[1])
    assert out[2] == pytest.approx((0.25 * 4 + 0.5 * 2) / 0.75)
    assert out[3] == pytest.approx((0.125 * 4 + 0.25 * 2 + 0.5 * 8) / 0.875)
    with pytest.raises(ValueError, match="weight must be in"):
        smooth(values, weight=1.0)


def test_updates_to_convergence_finds_where_the_smoothed_curve_levels_off():
    curve = np.r_[np.zeros(100), np.full(100, 100.0)]
    assert updates_to_convergence(curve, weight=0.0) == 101
    assert 101 < updates_to_convergence(curve, weight=0.9) < 140
    assert updates_to_convergence([np.nan] * 5) is None


def test_late_rise_tells_a_curve_still_learning_from_a_flat_one():
    assert late_rise(np.linspace(0, 100, 101)) == pytest.approx(10.0)
    assert late_rise(np.r_[np.linspace(0, 100, 50), np.full(50, 100.0)]) == 0.0
    assert late_rise(np.r_[np.full(80, np.nan), np.full(10, 60.0), np.full(10, 50.0)]) == -10.0
    with pytest.raises(ValueError, match="at least 10 updates"):
        late_rise([1.0, 2.0])


def fake_run(name, seed, means):
    returns = [np.full(25, m) for m in means]
    return RunResult(spec={"name": name, "seed": seed}, curve=np.linspace(0, means[-1], 10), checkpoints=[5, 10],
                     returns=returns, pooled_from=[5, 10], wall_time=1.0, env_steps=10)


def test_metrics_table_puts_thesis_ours_and_baselines_side_by_side(tmp_path):
    runs = {"fig14": [fake_run("fig14", s, [150.0 + s, 170.0 + s]) for s in range(3)]}
    table = tables.metrics_table(runs, "smoke", store=Store(tmp_path)).iloc[0]
    assert (table["thesis mean"], table["thesis std"]) == (188, 8)
    assert table["pooled mean"] == pytest.approx(161.0) and table["final mean"] == pytest.approx(171.0)
    assert table["final low"] <= 171.0 <= table["final high"]
    assert table["optimal"] == pytest.approx(201.6) and table["greedy"] == pytest.approx(201.2)
    convergence = tables.convergence_table(runs).iloc[0]
    assert convergence["thesis: trained after"] == 14_000 and convergence["budget"] == 10


def test_a_collapsed_seed_is_counted_not_timed_as_convergence(tmp_path):
    rise = np.concatenate([np.linspace(20, 180, 200), np.full(600, 180.0)])
    fall = np.concatenate([np.linspace(20, 180, 200), np.full(200, 180.0), np.full(400, 40.0)])
    runs = {"fig17": [replace(fake_run("fig17", s, [150.0, 170.0]), curve=c) for s, c in enumerate([rise, rise, fall])]}
    row = tables.convergence_table(runs).iloc[0]
    assert row["collapsed"] == 1
    assert row["ours: median"] == updates_to_convergence(rise) > 150
    assert updates_to_convergence(fall) < 50
    shown = tables.figure_table(runs, "smoke", store=Store(tmp_path)).iloc[0]
    assert shown["trained after: thesis / ours"].endswith("\n(1 of 3\ncollapsed)")


def test_the_tables_smooth_with_the_weight_the_chapter_passes(tmp_path):
    dip = np.concatenate([np.linspace(20, 180, 200), np.full(200, 180.0), np.full(20, 30.0), np.full(380, 180.0)])
    assert not stats.collapsed(dip, 0.99) and stats.collapsed(dip, 0.5)
    runs = {"fig17": [replace(fake_run("fig17", s, [150.0, 170.0]), curve=dip) for s in range(2)]}
    assert tables.convergence_table(runs).iloc[0]["collapsed"] == 0
    light = tables.convergence_table(runs, weight=0.5).iloc[0]
    assert light["collapsed"] == 2 and np.isnan(light["ours: median"])
    shown = tables.figure_table(runs, "smoke", store=Store(tmp_path), weight=0.5).iloc[0]
    assert shown["trained after: thesis / ours"].endswith("\n(2 of 2\ncollapsed)")


@pytest.mark.parametrize("bound, shown", [(198.32, "[198.1, 198.3]"), (201.9, "[198, 202]")])
def test_the_bracket_keeps_the_decimals_that_tell_its_ends_apart(tmp_path, monkeypatch, bound, shown):
    levels = {reference.UPPER_BOUND: bound, "greedy": 198.08, "lookahead": 197.5}
    monkeypatch.setattr(tables, "reference_levels", lambda *args, **kwargs: levels)
    runs = {"fig24": [fake_run("fig24", s, [150.0, 170.0 + s]) for s in range(3)]}
    assert tables.figure_table(runs, "smoke", store=Store(tmp_path)).iloc[0]["optimum or bracket"] == shown


def test_search_table_splits_bullseye_returns_into_missed_targets_and_steps_off(tmp_path):
    final = np.r_[np.zeros(5), np.full(20, 190.0)]  # 5 of 25 targets never found; the rest 2 steps off
    runs = {"fig14": [replace(fake_run("fig14", s, [150.0, 170.0]), returns=[np.full(25, 150.0), final]) for s in range(2)]}
    row = tables.search_table(runs, store=Store(tmp_path)).iloc[0]
    assert row["targets with return 0"] == pytest.approx(0.2) and row["steps off on the others"] == pytest.approx(2.0)
    assert row["ours: steps off"] == pytest.approx(0.2 * 21 + 0.8 * 2)
    assert row["greedy: steps off"] == pytest.approx(21 - 201.2 / 10)
    untrained = {"fig14": [replace(fake_run("fig14", 0, [0.0, 0.0]), returns=[np.zeros(25), np.zeros(25)])]}
    row = tables.search_table(untrained, store=Store(tmp_path)).iloc[0]
    assert row["targets with return 0"] == 1.0 and row["ours: steps off"] == 21 and np.isnan(row["steps off on the others"])
    rating = {"fig18": [fake_run("fig18", 0, [150.0, 170.0])]}
    with pytest.raises(ValueError, match="fig18 uses the Rating reward"):
        tables.search_table(rating, store=Store(tmp_path))


def test_cli_lists_and_trains_an_experiment_then_reads_it_back(tmp_path, capsys):
    assert main(["experiments", "--profile", "smoke"]) == 0
    listing = capsys.readouterr().out
    assert "fig11" in listing and "fig25" in listing
    args = ["train", "fig14", "--profile", "smoke", "--seed", "0", "--results", str(tmp_path), "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "fig14 seed 0: final" in first and "stored in" in first
    assert main(args) == 0
    assert capsys.readouterr().out == first
    assert main(["train", "fig99", "--profile", "smoke"]) == 2
    assert "unknown experiment 'fig99'" in capsys.readouterr().err


def test_sampling_table_evaluates_final_checkpoints_both_ways(tmp_path):
    runs = training.experiment_runs(["fig21"], "smoke", root=tmp_path, workers=1, progress=False)
    row = tables.sampling_table(runs, "smoke", repeats=2, root=tmp_path).iloc[0]
    assert row["deterministic"] == pytest.approx(np.mean([r.final.mean for r in runs["fig21"]]))
    assert row["sampled − deterministic"] == pytest.approx(row["sampled"] - row["deterministic"])
    assert 0 <= row["targets missed (deterministic)"] <= 1
    assert (row["figure"], row["ours"], row["observation"]) == (21, "A2C", "BoardObs")


def test_train_rejects_a_bad_thread_count(capsys):
    with pytest.raises(SystemExit):
        main(["train", "fig14", "--threads", "0"])
    assert "expected an integer >= 1, got '0'" in capsys.readouterr().err


def test_the_missing_runs_note_names_seeds_carried_progress_and_the_command(tmp_path):
    fig25 = registry.run_specs(["fig25"], "full")
    fig24 = registry.run_specs(["fig24"], "full")[:1]
    marker = tmp_path / "weights.zip"
    marker.write_bytes(b"x")
    for spec, updates in [(fig25[1], 45000), (fig25[3], 45000), (fig25[4], 40000)]:
        with tarfile.open(carry_path(spec, tmp_path), "w:gz") as tar:
            tar.add(marker, arcname=f"checkpoints/u{updates:07d}/model.zip")
    note = tables.missing_note([*fig25, *fig24], "full", carry_root=tmp_path)
    assert note.startswith(f"**Not run yet under the `full` profile** ({len(fig25) + 1} runs")
    assert "fig25 (seeds 0, 1, 2, 3, 4; carried: seeds 1, 3 at 45,000, seed 4 at 40,000 of 260,000 updates)" in note
    assert "; fig24 (seeds 0). " in note
    assert "`musicrl train fig25 --profile full --seed 0 1 2 3 4`" in note
    assert tables.missing_note([], "full") == ""


def test_baseline_table_is_the_same_on_several_workers_and_fills_the_store(tmp_path):
    chapter = profiles.Environment(dims=(2, 3), reveal_after={3: 1})
    one = environment.baseline_table(chapter, Store(tmp_path / "one"), progress=False)
    two = environment.baseline_table(chapter, Store(tmp_path / "two"), progress=False, workers=2)
    assert one.equals(two)
    assert set(one.policy) == {*baselines.BASELINES, reference.UPPER_BOUND}
    bounds = one[one.policy == reference.UPPER_BOUND]
    assert bounds.d.tolist() == [3, 3, 3, 3] and len(list((tmp_path / "two" / "planner").glob("*.json"))) == 4
    for _, bound in bounds.iterrows():
        same = one[(one.d == 3) & (one.preset == bound.preset) & (one.reward == bound.reward) & (one.policy != bound.policy)]
        assert bound["mean"] >= same["mean"].max()  # no policy beats the relaxation
    again = environment.baseline_table(chapter, Store(tmp_path / "two"), progress=False, workers=2)  # all stored: read
    assert again.equals(one)


def _runs(values, curve=(1.0,)):
    return [RunResult(spec={"seed": i}, curve=np.array(curve, dtype=float), checkpoints=[1], returns=[np.array([v])],
                      pooled_from=[1], wall_time=0.0, env_steps=1) for i, v in enumerate(values)]


def test_claims_verdicts_follow_the_confidence_intervals():
    """held: CI above; not held: CI below / reversed; undecided: overlap. Computed, never typed."""
    runs = {"fig14": _runs([200, 201, 202]), "fig12": _runs([100, 101, 102]), "fig13": _runs([150, 151, 152]),
            "fig19": _runs([100, 300, 200]), "fig21": _runs([190, 210, 200]), "fig11": _runs([100, 110, 120])}
    claims = conclusions.claims_table(runs).set_index("claim")
    verdict = claims["verdict"]
    assert verdict.filter(like="n = 20 is the best").item() == conclusions.HELD
    assert verdict.filter(like="RNN stabilises").item() == conclusions.UNDECIDED
    assert verdict.filter(like="Thesis figure 11 ").item() == conclusions.NOT_HELD  # 120 < the thesis's 168
    assert verdict.filter(like="Thesis figure 14 ").item() == conclusions.HELD  # reaches 188
    assert not verdict.filter(like="each added feature").size  # fig24, fig25 missing: left out
    assert claims["rests on a stand-in"].drop(index=claims.filter(like="Thesis figure 21", axis=0).index).all()  # A2C is fig21's own
    assert (claims["stand-in verdict"] == "–").all()
    runs["fig12"] = _runs([300, 301, 302])
    assert conclusions.claims_table(runs).set_index("claim")["verdict"].filter(like="n = 20 is the best").item() == conclusions.NOT_HELD
    runs.update({"fig14-gru": _runs([196, 197, 198]), "fig13-gru": _runs([175, 180, 185]), "fig12-gru": _runs([150, 160, 170])})
    claims = conclusions.claims_table(runs).set_index("claim")
    best = claims.filter(like="n = 20 is the best", axis=0).iloc[0]
    assert (best["verdict"], best["stand-in verdict"], best["agent"]) == (conclusions.HELD, conclusions.NOT_HELD, "GRU-A2C")
    fig12 = claims.filter(like="Thesis figure 12 (", axis=0).iloc[0]
    assert (fig12["verdict"], fig12["stand-in verdict"], fig12["rests on a stand-in"]) == (conclusions.HELD, conclusions.HELD, False)
    assert fig12["ours (mean [95% CI])"] == "160 [150, 170]" and fig12["stand-in"] == "LSTM-A2C: 301 [300, 302]"
    assert len(claims.filter(like="Thesis figure 14 (", axis=0)) == 1  # one row per claim
    counts = conclusions.claims_counts(claims.reset_index())
    assert counts["n_claims"] == len(claims) == counts["n_held"] + counts["n_not_held"] + counts["n_undecided"]
    assert counts["n_on_stand_in"] == int(claims["rests on a stand-in"].sum()) == 3  # RNN claim, fig11, fig19
    assert counts["n_stand_in_judged"] == 4 and counts["n_stand_in_not_held"] == 2  # n = 20; fig14 (201 reaches 188)
    gru = tables.gru_table({"fig14": _runs([150, 151, 152]), "fig14-gru": _runs([185, 190, 195])})
    assert gru.loc[0, "GRU reaches the thesis"] == conclusions.HELD and gru.loc[0, "GRU above LSTM"] == conclusions.HELD


def test_the_acktr_claim_is_judged_with_acktr_and_trpo_beside_it():
    runs = {"fig17-acktr": _runs([185, 190, 195]), "fig17": _runs([90, 100, 110])}
    row = conclusions.claims_table(runs).iloc[0]
    assert row["claim"].startswith("Thesis figure 17") and row["agent"] == "ACKTR"
    assert (row["verdict"], row["stand-in verdict"], row["stand-in"]) == (conclusions.HELD, conclusions.NOT_HELD,
                                                                        "TRPO: 100 [90, 110]")


def test_wall_minutes_counts_seeds_trained_together_once():
    def run(seconds, together):
        return RunResult(spec={}, curve=np.array([1.0]), checkpoints=[1], returns=[np.array([1.0])], pooled_from=[1],
                         wall_time=seconds, env_steps=1, trainer={"path": "multiseed" if together > 1 else "sb3",
                                                                  "seeds_together": together})
    runs = {"fig14": [run(600, 3), run(600, 3), run(600, 3)], "fig17": [run(60, 1), run(120, 1)]}
    assert experiments_2d.wall_minutes(runs) == pytest.approx(10 + 3)


@pytest.mark.parametrize("name", ["fig25", "fig25-gru", "fig24", "fig24-gru"])
def test_the_recommender_plays_the_full_budget_agent_only_with_its_weights(tmp_path, name):
    """Under full, the published weights (all five seeds) make its full-budget agents
    playable on a fresh clone; without them (an empty published folder) the chapter falls back to quick."""
    from musicrl import registry

    assert publish.playable_profile(name, "quick", root=tmp_path) == "quick"
    assert publish.playable_profile(name, "full", root=tmp_path, published=tmp_path / "empty") == "quick"
    specs = registry.run_specs([name], "full")
    assert all(publish.has_weights(spec) for spec in specs), f"published/weights lacks {name}'s final weights"
    assert publish.playable_profile(name, "full", root=tmp_path) == "full"
    sizes = [sum(f.stat().st_size for f in publish.weights_path(spec).iterdir()) for spec in specs]
    assert all(0.1e6 < size < 1.5e6 for size in sizes)  # the SB3 zip and the normalizer, not the whole checkpoint


@pytest.mark.parametrize("name, seed", [("fig25", 0), ("fig25", 4), ("fig24", 1), ("fig24-gru", 2), ("fig25-gru", 3)])
def test_published_weights_replay_the_published_final_returns(tmp_path, name, seed):
    """The committed weights are those of the published run: they replay its final evaluation exactly."""
    from musicrl import registry
    from musicrl.evaluation import evaluate_policy

    spec = registry.run_spec(name, "full", seed)
    shown = publish.load_result(spec, tmp_path)
    played = evaluate_policy(publish.load_policy(spec, root=tmp_path), spec.env)
    np.testing.assert_array_equal(played.returns, shown.returns[-1])


def test_a_panel_title_names_the_agent_once():
    assert registry.panel_title("fig14-gru") == "thesis figure 14: GridObs, WiderTopTarget, n = 20, GRU-A2C"
    assert registry.panel_title("fig21") == "thesis figure 21: A2C, BoardObs, n = 20, Rating reward, no RNN"
    assert registry.panel_title("fig14") == "thesis figure 14: GridObs, WiderTopTarget, n = 20, LSTM-A2C"


def _result(name: str, seed: int, curve) -> runfiles.RunResult:
    return runfiles.RunResult(spec={"name": name, "seed": seed}, curve=np.asarray(curve, dtype=float), checkpoints=[1],
                              returns=[np.zeros(25)], pooled_from=[1], wall_time=1.0, env_steps=320)


def test_curve_facts_read_each_figures_runs_against_the_thesis():
    runs = {"fig14-gru": [_result("fig14-gru", 0, [0.0] * 18 + [190.0, 200.0]), _result("fig14-gru", 1, [0.0] * 18 + [180.0, 180.0])],
            "fig15-gru": [_result("fig15-gru", 0, [10.0] * 10)]}
    text = experiments_2d.curve_facts(runs, {"fig14-gru": 201.6, "fig15-gru": 201.6}, ["fig14", "fig15", "fig13"], "smoke")
    assert text.splitlines() == [
        "- **Thesis figure 14** (GridObs, WiderTopTarget, n = 20, GRU-A2C): the thesis's run was trained after about "
        "14,000 updates. Here, over the last tenth of 20 updates the curve averages 187.5 (seeds 180.0–195.0); the "
        "optimum is 201.6, and the thesis's metric table gives its run 188.",
        "- **Thesis figure 15** (GridObs, WiderTopTarget, n = 10, learning rate 7e-5, GRU-A2C): the thesis's run was not "
        "settled. Here, over the last tenth of 10 updates the curve averages 10.0 (seeds 10.0–10.0); the optimum is 201.6.",
    ]
    assert experiments_2d.curve_facts({}, {}, ["fig14"], "smoke") == "Not run yet under the `smoke` profile."


def test_curve_grid_draws_one_titled_panel_per_experiment_and_one_legend():
    import matplotlib.pyplot as plt

    from musicrl import plots

    curves = {name: {"seed 0": np.linspace(0, 100, 50), "seed 1": np.linspace(0, 90, 50)} for name in ("a", "b", "c")}
    fig = plots.curve_grid(curves, {n: {"optimal": 120.0} for n in curves}, {n: f"panel {n}" for n in curves}, columns=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["panel a", "panel b", "panel c"] and len(fig.axes) == 4
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in visible)
    empty = plots.curve_grid({}, {}, {}, empty="not run yet under the smoke profile")
    assert [t.get_text() for t in empty.axes[0].texts] == ["not run yet under the smoke profile"]
    plt.close("all")


def test_search_gap_sentence_splits_the_gap_between_missed_targets_and_a_slower_search():
    row = {"d": 3, "targets with return 0": 0.1, "steps off on the others": 6.0, "greedy: steps off": 4.0}
    assert higher_dimensions.search_gap_sentence(row, "7.3 [6.9, 7.7]") == (
        "In 3D the agents spend 7.3 [6.9, 7.7] of the 21 steps off a top-rated position, greedy 4.0. For 10.0% of the "
        "targets they never stand on one (about 1.7 steps per episode beyond greedy's); on the others they spend 6.0 "
        "steps off (about 1.8 beyond greedy's): the two share the gap.")
    slower = {**row, "targets with return 0": 0.0}
    assert higher_dimensions.search_gap_sentence(slower, "6").endswith("most of the gap is a slower search.")
    missed = {**row, "targets with return 0": 0.5, "steps off on the others": 4.0}
    assert higher_dimensions.search_gap_sentence(missed, "12").endswith("most of the gap is targets never reached.")


def test_loop_sentence_says_whether_sampling_helps_a_looping_policy():
    row = {"experiment": "fig25-gru", "targets missed (deterministic)": 0.25, "of those, stuck on one position": 0.5,
           "deterministic": 150.0, "sampled": 160.5}
    assert higher_dimensions.loop_sentence(row) == (
        "In 4D the deterministic policy misses 25% of the targets, and 50% of those end stuck on one position; "
        "sampling the actions instead is better (160.5 against 150.0).")
    never = {**row, "of those, stuck on one position": float("nan"), "sampled": 150.5}
    assert "and none of those end stuck" in higher_dimensions.loop_sentence(never) and "is no better" in higher_dimensions.loop_sentence(never)
