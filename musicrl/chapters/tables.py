"""Tables both training chapters show: metrics, convergence, search, sampling, the figure table, memory."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from IPython.display import Markdown

from musicrl import baselines, profiles
from musicrl.algorithms import ALGORITHMS
from musicrl.chapters.verdicts import HELD, NOT_HELD, ci_text, pooled_ci, thesis_mean, verdict_above, verdict_reaches
from musicrl.envs import BULLSEYE_REWARD, EPISODE_STEPS
from musicrl.evaluation import conversational_metrics, rollout
from musicrl.probes import SAMPLING_REPEATS, agent_conversational, policy_entropy, sampled_result
from musicrl.publish import carried_updates
from musicrl.reference import UPPER_BOUND, baseline_config, baseline_result, reference_levels
from musicrl.registry import (
    GRU_OF,
    THESIS_AGENT,
    Experiment,
    experiment,
    experiments_frame,
    run_spec,
    run_specs,
    thesis_agents,
)
from musicrl.runfiles import RunResult, RunSpec
from musicrl.stats import collapsed, decimals_for, final_level, format_ci, mean_ci, updates_to_convergence
from musicrl.store import Store
from musicrl.training import experiment_runs, finished_runs


def metrics_table(runs: dict[str, list[RunResult]], profile: str, store: Store | None = None) -> pd.DataFrame:
    """The thesis's metric tables (figures 22, 23) with ours beside them.

    For each experiment: the thesis's std and mean; ours as the mean over seeds of the
    pooled (second half of training) and final checkpoints' mean returns, each with a 95%
    bootstrap CI over seeds; the seeds' mean pooled std; and the baselines.
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        pooled = mean_ci([r.pooled.mean for r in results])
        final = mean_ci([r.final.mean for r in results])
        row = {
            "experiment": name, "figure": e.figure, "table": e.thesis.table if e.thesis else None, "d": e.env.d,
            "reward": e.env.reward, "preset": e.env.preset, "observation": e.env.obs, "n": e.agent.n_steps,
            "recurrent": e.recurrent, "thesis algorithm": ALGORITHMS[e.agent.algorithm].thesis,
            "ours": ALGORITHMS[e.agent.algorithm].short, "seeds": len(results),
            "thesis std": e.thesis.std if e.thesis else np.nan, "thesis mean": e.thesis.mean if e.thesis else np.nan,
            "pooled mean": pooled[0], "pooled low": pooled[1], "pooled high": pooled[2],
            "pooled std": float(np.mean([r.pooled.std for r in results])),
            "final mean": final[0], "final low": final[1], "final high": final[2],
            **reference_levels(e.env, profile, store),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_table(runs: dict[str, list[RunResult]], weight: float = 0.99) -> pd.DataFrame:
    """Updates until the smoothed curve reaches 95% of its final level, per seed, vs the thesis.

    A seed whose curve collapsed (:func:`musicrl.stats.collapsed`, the book's one criterion) is counted in
    ``collapsed`` and left out of the median, min and max: a curve that fell and stayed low
    reaches 95% of that low level long before it fell, so its "convergence" would read as
    fast learning. ``weight`` is the smoothing of both rules (a chapter passes its own).
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        kept = [r for r in results if not collapsed(r.curve, weight)]
        found = [u for u in (updates_to_convergence(r.curve, weight) for r in kept) if u is not None]
        rows.append({
            "experiment": name, "figure": e.figure, "d": e.env.d, "positions": e.env.n_positions,
            "thesis: trained after": e.converged, "budget": len(results[0].curve),
            "ours: median": float(np.median(found)) if found else np.nan,
            "ours: min": min(found, default=np.nan), "ours: max": max(found, default=np.nan),
            "collapsed": len(results) - len(kept),
            "final level": float(np.mean([final_level(r.curve) for r in results])),
        })
    return pd.DataFrame(rows)


def search_table(runs: dict[str, list[RunResult]], store: Store | None = None) -> pd.DataFrame:
    """Where the Bullseye return is lost: steps spent off a top-rated position, agent against greedy.

    Under Bullseye a return is 10 per step on a top-rated position, so ``21 − return / 10``
    counts the steps of an episode spent elsewhere, and a return of 0 means no step landed on
    one (the target never found, or the start was top-rated and the agent left it for good:
    unlike :attr:`Episode.found`, the start does not count here). From each run's final
    checkpoint on every target (no weights needed): the steps off (mean over seeds, 95% CI),
    the share of targets with return 0, and the steps off on the others; greedy's steps off
    come from its mean return.
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        if e.env.reward != "Bullseye":
            raise ValueError(f"search_table reads steps from Bullseye returns; {name} uses the {e.env.reward} reward")
        off = [EPISODE_STEPS - r.final.returns / BULLSEYE_REWARD for r in results]
        missed = [float(np.mean(r.final.returns == 0)) for r in results]
        steps = mean_ci([o.mean() for o in off])
        greedy = baseline_result(baseline_config(e.env), "greedy", store or Store())["mean"]
        rows.append({
            "experiment": name, "figure": e.figure, "d": e.env.d, "positions": e.env.n_positions, "seeds": len(results),
            "greedy: steps off": EPISODE_STEPS - greedy / BULLSEYE_REWARD,
            "ours: steps off": steps[0], "ours: low": steps[1], "ours: high": steps[2],
            "targets with return 0": float(np.mean(missed)),
            "steps off on the others": _mean_where_any([o[r.final.returns > 0] for o, r in zip(off, results)]),
        })
    return pd.DataFrame(rows)


def _mean_where_any(groups: list[np.ndarray]) -> float:
    """Mean over the groups that hold values of each group's mean (NaN if none does)."""
    means = [g.mean() for g in groups if g.size]
    return float(np.mean(means)) if means else float("nan")


def conversational_table(runs: dict[str, list[RunResult]], profile: str, root=None) -> pd.DataFrame:
    """Per experiment: the trained agents' SR@T and AT (mean over the seeds that have them) beside
    greedy's on the same environment; ``seeds`` counts the seeds measured (0: no weights, no record)."""
    rows, greedy_of = [], {}
    for name, results in runs.items():
        e = experiment(name)
        measured = [m for r in results if (m := agent_conversational(run_spec(name, profile, r.spec["seed"]), r, root))]
        config = baseline_config(e.env)
        if config not in greedy_of:  # many experiments share one game; greedy plays it once
            _, episodes = rollout(baselines.make_baseline("greedy", config), config, range(config.n_positions))
            greedy_of[config] = conversational_metrics(episodes)
        greedy = greedy_of[config]
        ours = {k: float(np.mean([m[k] for m in measured])) if measured else float("nan") for k in greedy}
        rows.append({"experiment": name, "figure": e.figure, "ours": ALGORITHMS[e.agent.algorithm].short, "d": e.env.d,
                     "seeds": len(measured), **{f"ours: {k}": v for k, v in ours.items()},
                     **{f"greedy: {k}": v for k, v in greedy.items()}})
    return pd.DataFrame(rows)


def sampling_table(runs: dict[str, list[RunResult]], profile: str, repeats: int = SAMPLING_REPEATS, root=None) -> pd.DataFrame:
    """Each final checkpoint acting deterministically (the thesis's metric) and sampling as in training.

    Means over seeds of: the curve's last tenth, the deterministic and the sampled mean
    return (``repeats`` episodes per target), and the share of targets the deterministic
    policy never finds, and of those, the share where it ends repeating one position.
    """
    rows = []
    for name, results in runs.items():
        e, values = experiment(name), []
        for r in results:
            stats = sampled_result(r, run_spec(name, profile, r.spec["seed"]), repeats, root)
            values.append((final_level(r.curve), r.final.mean, stats["sampled"], stats["missed"], stats["stuck"]))
        curve, deterministic, sampled, missed, stuck = np.nanmean(np.array(values, dtype=float), axis=0)
        rows.append({
            "experiment": name, "figure": e.figure, "ours": ALGORITHMS[e.agent.algorithm].short, "observation": e.env.obs,
            "reward": e.env.reward, "curve (last tenth)": curve, "deterministic": deterministic, "sampled": sampled,
            "sampled − deterministic": sampled - deterministic, "targets missed (deterministic)": missed,
            "of those, stuck on one position": stuck,
        })
    return pd.DataFrame(rows)


def setting_text(e: Experiment, sep: str = " · ") -> str:
    preset = {"TopTarget": "Top", "WiderTopTarget": "WiderTop"}.get(e.env.preset, e.env.preset)
    return f"{e.env.d}D {e.env.obs.replace('Obs', '')}, n={e.agent.n_steps}{sep}{e.env.reward}, {preset}"


def _thousands(updates: float | None) -> str:
    if updates is None or np.isnan(updates):
        return "–"
    return f"{updates:.0f}" if updates < 1000 else f"{updates / 1000:.1f}k" if updates < 10_000 else f"{updates / 1000:.0f}k"


def figure_table(runs: dict[str, list[RunResult]], profile: str, store: Store | None = None,
                 weight: float = 0.99) -> pd.DataFrame:
    """One compact row per thesis figure, for the page: the thesis's number, ours with its 95%
    CI over seeds (rounded to what the CI supports), the optimum (exact) or the bracket
    [best heuristic, upper bound], and the updates to convergence, thesis against ours
    (median over the seeds that did not collapse; those are counted), with smoothing ``weight``."""
    metrics = metrics_table(runs, profile, store).set_index("experiment")
    convergence = convergence_table(runs, weight).set_index("experiment")
    rows = []
    for name in runs:
        e, m, c = experiment(name), metrics.loc[name], convergence.loc[name]
        heuristic = max(m["greedy"], m["lookahead"])
        if "optimal" in m and not np.isnan(m.get("optimal", np.nan)):
            best = f"{m['optimal']:.1f} (optimal)"
        elif UPPER_BOUND in m and not np.isnan(m.get(UPPER_BOUND, np.nan)):
            k = decimals_for(heuristic, m[UPPER_BOUND])  # enough decimals to tell the ends apart
            best = f"[{heuristic:.{k}f}, {m[UPPER_BOUND]:.{k}f}]"
        else:
            best = f"≥ {heuristic:.0f}"
        rows.append({
            "figure": e.figure, "setting": setting_text(e, "\n"),
            "thesis": f"{ALGORITHMS[e.agent.algorithm].thesis}: {e.thesis.mean:.0f}\n(std {e.thesis.std:.0f})" if e.thesis
            else f"{ALGORITHMS[e.agent.algorithm].thesis}: –",
            "ours": f"{ALGORITHMS[e.agent.algorithm].short}\n{int(m['seeds'])} seeds",
            "pooled mean [95% CI]": format_ci(m["pooled mean"], m["pooled low"], m["pooled high"], int(m["seeds"])).replace(" [", "\n[")
            + f"\n(std {m['pooled std']:.0f})",
            "final [95% CI]": format_ci(m["final mean"], m["final low"], m["final high"], int(m["seeds"])).replace(" [", "\n["),
            "optimum or bracket": best.replace(" (", "\n("), "greedy": f"{m['greedy']:.1f}",
            "trained after: thesis / ours": f"{_thousands(e.converged)} / {_thousands(c['ours: median'])}"
            + (f"\n({int(c['collapsed'])} of {int(m['seeds'])}\ncollapsed)" if c["collapsed"] else ""),
        })
    return pd.DataFrame(rows)


def styled(frame: pd.DataFrame, **formats):
    """A table for the page: no index, a line break where a cell holds a newline (see figure_table)."""
    return frame.style.hide(axis="index").format(lambda v: v.replace("\n", "<br>") if isinstance(v, str) else v, **formats)


def gru_table(runs: dict[str, list[RunResult]], weight: float = 0.99) -> pd.DataFrame:
    """The thesis's agent (GRU-A2C) beside our LSTM stand-in and the thesis, per experiment of
    ``GRU_OF`` that has both: pooled mean [95% CI], seeds collapsed, and whether the GRU closes
    the gap (its CI reaches the thesis's mean) and beats the LSTM."""
    rows = []
    for name in GRU_OF:
        lstm, gru = runs.get(name), runs.get(f"{name}-gru")
        if not lstm or not gru:
            continue
        thesis = thesis_mean(name)
        lstm_ci, gru_ci = pooled_ci(lstm), pooled_ci(gru)
        rows.append({
            "experiment": name, "setting": experiment(name).caption,
            "thesis": np.nan if thesis is None else thesis,
            "LSTM-A2C": ci_text(lstm_ci), "LSTM collapsed": f"{sum(collapsed(r.curve, weight) for r in lstm)} of {len(lstm)}",
            "GRU-A2C": ci_text(gru_ci), "GRU collapsed": f"{sum(collapsed(r.curve, weight) for r in gru)} of {len(gru)}",
            "GRU reaches the thesis": "–" if thesis is None else verdict_reaches(gru_ci, thesis),
            "GRU above LSTM": verdict_above(gru_ci, lstm_ci),
            "gru mean": gru_ci[0], "lstm mean": lstm_ci[0],
        })
    return pd.DataFrame(rows)


def gru_reading(gru: pd.DataFrame, missing: Sequence[str] = ()) -> str:
    """The sentence that reads :func:`gru_table`: where the GRU reaches the thesis, falls short,
    and lies above the LSTM; ``missing`` names the GRU runs not published yet."""
    if gru.empty:
        return f"No GRU-A2C run is published yet ({', '.join(missing)})."
    reached = gru[gru["GRU reaches the thesis"] == HELD].experiment.tolist()
    short = gru[gru["GRU reaches the thesis"] == NOT_HELD].experiment.tolist()
    above = gru[gru["GRU above LSTM"] == HELD].experiment.tolist()
    judged = int(gru["GRU reaches the thesis"].ne("–").sum())
    return (f"At the thesis's budgets the GRU reaches the thesis's number in {len(reached)} of {judged} experiments"
            + (f" ({', '.join(reached)})" if reached else "") + (f" and falls short in {', '.join(short)}" if short else "")
            + f"; its interval lies above the LSTM's in {len(above)} of {len(gru)}" + (f" ({', '.join(above)})" if above else "")
            + "." + (f" Not published yet: {', '.join(missing)}." if missing else ""))


def diagnosis_reading(diagnosis: pd.DataFrame) -> str:
    """The sentence that reads :func:`memory_diagnosis`: the memory and experiment that miss most targets."""
    if diagnosis.empty:
        return ""
    worst = diagnosis.sort_values("targets never found").iloc[-1]
    return (f"The largest share of targets never found is {worst['memory']}'s in {worst.experiment} "
            f"({worst['targets never found']:.0%} of them, mean over {worst.seeds} seeds, {worst.collapsed} collapsed): "
            "a target the final policy never reaches scores 0 for all 21 steps, which is where a mean return far below "
            "the thesis's comes from.")


def memory_comparison(names: Sequence[str], weight: float = 0.99, root=None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """GRU-A2C beside the LSTM stand-in for the recurrent experiments among ``names`` (thesis
    names or their runs), from the runs at the thesis's budgets (:data:`musicrl.profiles.VERDICT`,
    local or published): :func:`gru_table`, :func:`memory_diagnosis` and the sentences that
    read them."""
    figures = [n for n in GRU_OF if n in names or THESIS_AGENT[n] in names]
    found = experiment_runs([*figures, *thesis_agents(figures)], profiles.VERDICT, root, progress=False, train_missing=False)
    found = {name: results for name, results in found.items() if results}
    gru = gru_table(found, weight)
    missing = [THESIS_AGENT[n] for n in figures if THESIS_AGENT[n] not in found]
    diagnosis = memory_diagnosis(found, profiles.VERDICT, weight, root)
    return gru, diagnosis, " ".join(filter(None, (gru_reading(gru, missing), diagnosis_reading(diagnosis))))


def memory_styled(gru: pd.DataFrame, diagnosis: pd.DataFrame):
    """The two tables of :func:`memory_comparison` for the page."""
    first = gru.drop(columns=["gru mean", "lstm mean"]).style.hide(axis="index").format(precision=0, subset=["thesis"],
                                                                                       na_rep="–")
    second = diagnosis.style.hide(axis="index").format(precision=1, subset=["worst seed", "best seed"]).format(
        "{:.0%}", subset=["targets never found"]).format(precision=2, subset=["entropy, last checkpoint"], na_rep="–")
    return first, second


def memory_diagnosis(runs: dict[str, list[RunResult]], profile: str, weight: float = 0.99, root=None) -> pd.DataFrame:
    """Where a recurrent agent loses return, per experiment of ``GRU_OF`` and memory (LSTM, GRU):
    seeds collapsed, the final checkpoint's share of targets never found (return 0) and spread
    of the seeds' pooled means, and the policy's entropy at the last checkpoint (nats; from the
    published extras or the local weights, NaN where neither holds it)."""
    rows = []
    for name in GRU_OF:
        for memory, key in (("LSTM-A2C", name), ("GRU-A2C", f"{name}-gru")):
            results = runs.get(key)
            if not results:
                continue
            entropies = []
            for r in results:
                stored = r.extras.get("entropy")
                if stored:
                    entropies.append(stored[max(stored, key=int)])
                    continue
                try:
                    spec = run_spec(key, profile, r.spec["seed"])
                    entropies.append(policy_entropy(spec, spec.checkpoints[-1], root))
                except ValueError:  # published without the entropy, and no weights here
                    pass
            pooled = [r.pooled.mean for r in results]
            rows.append({
                "experiment": name, "memory": memory, "seeds": len(results),
                "collapsed": sum(collapsed(r.curve, weight) for r in results),
                "targets never found": float(np.mean([np.mean(np.asarray(r.returns[-1]) == 0) for r in results])),
                "worst seed": min(pooled), "best seed": max(pooled),
                "entropy, last checkpoint": float(np.mean(entropies)) if entropies else np.nan,
            })
    return pd.DataFrame(rows)


def chapter_runs(names: Sequence[str], profile: str, address: str | None = None,
                 train_missing: bool = True) -> tuple[dict[str, list[RunResult]], list[RunSpec]]:
    """A training chapter's finished runs of ``names`` (trained first if missing and ``train_missing``)
    and the runs still missing; an error naming the remedies if none has finished."""
    specs = run_specs(names, profile)
    found = finished_runs(specs, address=address, progress=False, train_missing=train_missing)
    finished = {spec.key for spec, _ in found}
    missing = [spec for spec in specs if spec.key not in finished]  # each result read once, not again to list these
    runs = {name: rs for name in names if (rs := [r for spec, r in found if spec.name == name])}
    if not runs:
        raise RuntimeError(f"no run of {', '.join(names)} has finished under the {profile} profile, locally or in published/; "
                           f"train them (musicrl train {names[0]} --profile {profile}) or build with train_missing=True")
    return runs, missing


def plan_styled(names: Sequence[str], profile: str, drop: Sequence[str] = ("agent",)):
    """:func:`musicrl.registry.experiments_frame` as the chapters show it."""
    return experiments_frame(names, profile).drop(columns=list(drop)).style.hide(axis="index").format(
        precision=5, subset=["learning rate"]).format(na_rep="–", subset=["thesis: trained after"])


def conversational_shown(runs: dict[str, list[RunResult]], profile: str) -> list:
    """:func:`conversational_table` styled, and a note naming the runs it could not measure."""
    conversational = conversational_table(runs, profile)
    unmeasured = conversational.loc[conversational.seeds == 0, "experiment"].tolist()
    shares = [c for c in conversational.columns if "SR@" in c]
    shown: list = [conversational.drop(columns=["d"]).style.hide(axis="index").format("{:.0%}", subset=shares, na_rep="–")
                   .format(precision=1, subset=["ours: AT", "greedy: AT"], na_rep="–")]
    if unmeasured:
        shown.append(Markdown(f"No SR@T for {', '.join(unmeasured)}: these runs were published before the metrics were "
                              "recorded and their weights are not kept (`musicrl.probes.agent_conversational`)."))
    return shown


def memory_shown(names: Sequence[str], weight: float = 0.99) -> list:
    """:func:`memory_comparison` as the chapters show it: its two tables and the reading."""
    gru, diagnosis, reading = memory_comparison(names, weight)
    return [*memory_styled(gru, diagnosis), Markdown(reading)]


SAMPLING_SHARES = ["targets missed (deterministic)", "of those, stuck on one position"]


def sampling_styled(sampling: pd.DataFrame, columns: Sequence[str] | None = None):
    """:func:`sampling_table` (its ``columns``, default all but the setting) as the chapters show it."""
    shown = sampling[list(columns)] if columns else sampling.drop(columns=["experiment", "observation", "reward"])
    return shown.style.hide(axis="index").format(precision=1).format("{:.0%}", subset=SAMPLING_SHARES, na_rep="–")


def missing_note(missing: Sequence[RunSpec], profile: str, carry_root=None) -> str:
    """Markdown naming the runs a chapter leaves out: each experiment's seeds, how far a
    run carried over from an earlier session has trained, and the command that trains or
    resumes them ("" when nothing is missing)."""
    if not missing:
        return ""
    by_name: dict[str, list[RunSpec]] = {}
    for spec in missing:
        by_name.setdefault(spec.name, []).append(spec)
    parts = []
    for name, specs in by_name.items():
        at: dict[int, list[str]] = {}
        for s in specs:
            if u := carried_updates(s, carry_root):
                at.setdefault(u, []).append(str(s.seed))
        carried = ", ".join(f"{'seeds' if len(seeds) > 1 else 'seed'} {', '.join(seeds)} at {u:,}" for u, seeds in at.items())
        carried = f"; carried: {carried} of {specs[0].updates:,} updates" if at else ""
        parts.append(f"{name} (seeds {', '.join(str(s.seed) for s in specs)}{carried})")
    first = next(iter(by_name))
    command = f"musicrl train {first} --profile {profile} --seed {' '.join(str(s.seed) for s in by_name[first])}"
    return (f"**Not run yet under the `{profile}` profile** ({len(missing)} runs, left out below): " + "; ".join(parts)
            + f". `{command}` trains one experiment's seeds and resumes carried ones; "
            "`musicrl publish` adds finished runs to the published results.")
