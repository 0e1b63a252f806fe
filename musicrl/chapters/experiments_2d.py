"""Text and tables of the chapter on the 2D experiments."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from musicrl import plots
from musicrl.algorithms import ALGORITHMS
from musicrl.chapters.tables import setting_text, styled
from musicrl.probes import run_entropy, run_line_search
from musicrl.registry import THESIS_AGENT, VARIANTS, experiment, run_spec, thesis_agents
from musicrl.runfiles import RunResult
from musicrl.stats import collapse_point, collapsed, final_level, format_ci, smooth


def curve_facts(runs: dict[str, list[RunResult]], optimal: dict[str, float], group: Sequence[str], profile: str) -> str:
    """Markdown bullets under a curve panel: per thesis figure of ``group`` with runs, when the thesis
    called its run trained, our curves' level over the last tenth (mean and the seeds' range), the
    optimum and the thesis's metric."""
    lines = []
    for name in [n for n in thesis_agents(group) if n in runs]:
        e, rs = experiment(name), runs[name]
        tail = [final_level(r.curve) for r in rs]
        said = f"trained after about {e.converged:,} updates" if e.converged else "not settled"
        lines.append(f"- **Thesis figure {e.figure}** ({e.caption}): the thesis's run was {said}. Here, over the last "
                     f"tenth of {len(rs[0].curve):,} updates the curve averages {np.mean(tail):.1f} "
                     f"(seeds {min(tail):.1f}–{max(tail):.1f}); the optimum is {optimal[name]:.1f}"
                     + (f", and the thesis's metric table gives its run {e.thesis.mean:.0f}." if e.thesis else "."))
    return "\n".join(lines) or f"Not run yet under the `{profile}` profile."


def collapse_table(runs: dict[str, list[RunResult]], profile: str, root=None, weight: float = 0.99) -> pd.DataFrame:
    """Per TRPO run: the smoothed curve's peak, its final level, whether it collapsed (fell below
    half its peak after the peak, :func:`musicrl.stats.collapse_point`) and when, the policy's entropy at the
    first and last checkpoint, and the line search's success rate in the first and last tenth
    of training."""
    rows = []
    for name, results in runs.items():
        if not ALGORITHMS[experiment(name).agent.algorithm].line_search:
            continue
        for r in results:
            spec = run_spec(name, profile, r.spec["seed"])
            peak, peak_at, fell_at = collapse_point(r.curve, weight)
            entropy, success = run_entropy(r, spec, root), np.asarray(run_line_search(r, spec, root))
            tenth = max(1, len(success) // 10)
            rows.append({
                "experiment": name, "seed": r.spec["seed"], "peak": peak, "peak at": peak_at,
                "final level": final_level(r.curve), "collapsed at": fell_at,
                "entropy, first checkpoint": entropy[min(entropy)], "entropy, last checkpoint": entropy[max(entropy)],
                "line search ok, first tenth": float(success[:tenth].mean()) if success.size else np.nan,
                "line search ok, last tenth": float(success[-tenth:].mean()) if success.size else np.nan,
            })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["collapsed at"] = frame["collapsed at"].astype("Int64")
    return frame


def wall_minutes(runs: dict[str, list[RunResult]]) -> float:
    """Minutes of wall time the runs took: seeds trained together in one process (the fast
    path, ``trainer["seeds_together"] > 1``) share one wall time, counted once per experiment;
    a run carried across machines counts its recorded time."""
    total = 0.0
    for results in runs.values():
        together = [r for r in results if r.trainer.get("seeds_together", 1) > 1]
        total += max((r.wall_time for r in together), default=0.0)
        total += sum(r.wall_time for r in results if r.trainer.get("seeds_together", 1) <= 1)
    return total / 60


def metric_sentence(metrics: pd.DataFrame, figure: str) -> str:
    """What the thesis's agent of ``figure`` (e.g. ``"fig14"``) reached against the thesis, the optimum
    and greedy, from :func:`musicrl.chapters.tables.metrics_table`'s rows."""
    name = THESIS_AGENT[figure]
    if name not in set(metrics.experiment):
        return f"Thesis figure {figure[3:]} ({name}) has not run yet under this profile."
    m = metrics.set_index("experiment").loc[name]
    e = experiment(name)
    assert e.thesis is not None, f"{figure} has no metric in the thesis's tables"
    ours = format_ci(m["pooled mean"], m["pooled low"], m["pooled high"])
    return (f"In figure {e.figure} ({setting_text(e)}) the thesis's agent averaged {e.thesis.mean:.0f}; ours "
            f"reaches {ours} (pooled over the second half of training, 95% CI over {int(m.seeds)} seeds). The optimal "
            f"policy gets {m.optimal:.1f} and greedy {m.greedy:.1f} on the same setting, with no training at all.")


def ranking_paragraph(metrics: pd.DataFrame, thesis_budget: bool) -> str:
    """The configurations closest to and farthest from the optimum, and those at greedy's level."""
    ranked = metrics.assign(gap=metrics["optimal"] - metrics["pooled mean"]).sort_values("gap")
    best, worst = ranked.iloc[0], ranked.iloc[-1]
    beats = metrics[metrics["pooled mean"] >= metrics["greedy"]]
    return (
        f"Across the {len(metrics)} configurations, the closest to optimal is thesis figure {best.figure} "
        f"({best.ours}, {best.observation}, {best.reward}): {best.gap:.1f} below the optimum. The farthest is "
        f"thesis figure {worst.figure} ({worst.ours}, {worst.observation}, {worst.reward}): {worst.gap:.1f} below. "
        + (f"{len(beats)} of them reach greedy's level (thesis figures {', '.join(str(f) for f in beats.figure)}). "
           if len(beats) else "None of them reaches greedy's level, which needs no training. ")
        + ("The thesis trained for far longer than this profile; the `full` profile runs its budgets."
           if not thesis_budget else "")
    )


def checkpoint_figure(runs: dict[str, list[RunResult]], references: dict[str, dict[str, float]], names: Sequence[str]):
    """Two panels (Bullseye, Rating): each experiment's checkpoints' mean return over every target,
    averaged over seeds, against the update, with the optimum of the last one drawn."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    for ax, reward in zip(axes, ("Bullseye", "Rating")):
        chosen = [n for n in names if n in runs and experiment(n).env.reward == reward]
        if not chosen:
            ax.set_axis_off()
            continue
        lines = {}
        for name in chosen:
            rs = runs[name]
            lines[f"fig {name[3:]} {ALGORITHMS[rs[0].spec['agent']['algorithm']].short}"] = (
                rs[0].checkpoints, np.mean([[float(np.mean(x)) for x in r.returns] for r in rs], axis=0))
        opt = references[chosen[-1]]["optimal"]
        plots.plot_checkpoint_returns(lines, {"optimal (WiderTopTarget)": opt}, ax=ax, title=f"{reward} reward")
        ax.legend(fontsize="x-small", ncol=2, loc="lower right")
    fig.tight_layout()
    return fig


def sampling_paragraph(sampling: pd.DataFrame) -> str:
    """Where sampling the actions beats the deterministic policy, and how often a missed target
    ends with the agent repeating one position, from :func:`musicrl.chapters.tables.sampling_table`."""
    ranked = sampling.sort_values("sampled − deterministic", ascending=False)
    top = ranked[ranked["sampled − deterministic"] >= 1].head(3)  # below one reward point: no gain worth naming
    stuck = sampling["of those, stuck on one position"]
    if len(top):
        gains = ("Sampling gains the most for "
                 + ", ".join(f"thesis figure {r.figure} ({r.ours}, {r.observation}: {r.deterministic:.1f} → {r.sampled:.1f})"
                             for r in top.itertuples()) + ". ")
    else:
        best = ranked.iloc[0]
        gains = (f"Under this profile sampling gains less than one point everywhere (at most figure {best['figure']}: "
                 f"{best['deterministic']:.1f} → {best['sampled']:.1f}): the trained policies are nearly deterministic. ")
    return (f"Of the targets the deterministic policies miss, a median of {stuck.median():.0%} per experiment end with "
            f"the agent repeating one position. " + gains
            + "The thesis's tables, and ours, measure the deterministic policy; where the sampled return is far "
            "higher, the network has learnt where to search but not how to avoid repeating itself, "
            "which is why the training curve can sit above the metric.")


def trpo_figure(trpo: dict[str, list[RunResult]], profile: str, weight: float):
    """Every TRPO run of ``trpo`` (runs under ``profile``): its smoothed curve, the share of updates
    per 500 whose line search succeeded, and its policy's entropy at each checkpoint."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    updates = max(len(r.curve) for rs in trpo.values() for r in rs)
    for k, (name, rs) in enumerate(trpo.items()):
        colour = plots.PALETTE[k % len(plots.PALETTE)]  # one colour per configuration; its seeds share it
        for i, r in enumerate(rs):
            spec = run_spec(name, profile, r.spec["seed"])
            label = f"{name} ({len(rs)} seeds)" if i == 0 else None
            axes[0].plot(np.arange(1, len(r.curve) + 1), smooth(r.curve, weight), color=colour, alpha=0.7, lw=1, label=label)
            success = run_line_search(r, spec)[: -(-len(r.curve) // 500)]  # a resumed run logs twice
            axes[1].plot((np.arange(len(success)) + 1) * 500, success, color=colour, alpha=0.7, lw=1)
            entropy = run_entropy(r, spec)
            axes[2].plot(list(entropy), list(entropy.values()), color=colour, alpha=0.7, lw=1, marker="o", ms=3)
    for ax, title in zip(axes, ("smoothed training curve", "line search succeeded (share per 500 updates)",
                                "entropy at checkpoints (nats)")):
        ax.set_title(title, fontsize="small")
        ax.set_xlabel("update")
        ax.set_xlim(0, updates)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncols=len(trpo), fontsize="small",
               frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _variant_sentence(collapse: pd.DataFrame, name: str) -> str:
    bonus, base = collapse[collapse.experiment == name], collapse[collapse.experiment == f"fig{experiment(name).figure}"]
    if not len(bonus):
        return f"`{name}` has not run yet under this profile."
    against = f" against {base['final level'].mean():.0f} without the bonus ({len(base)} runs)" if len(base) else ""
    return (f"`{name}`: its {len(bonus)} runs keep an entropy of {bonus['entropy, last checkpoint'].min():.2f}–"
            f"{bonus['entropy, last checkpoint'].max():.2f} nats at the last checkpoint, their line search succeeds "
            f"on {bonus['line search ok, last tenth'].mean():.0%} of the updates in the last tenth, "
            f"{int(bonus['collapsed at'].notna().sum())} of them collapse, and their final level averages "
            f"{bonus['final level'].mean():.0f}{against}.")


def _mechanism(collapse: pd.DataFrame) -> str:
    bonus = collapse[collapse.experiment.isin(list(VARIANTS))]
    plain = collapse[~collapse.experiment.isin(list(VARIANTS))]
    if not len(bonus) or not len(plain):
        return ""
    low_entropy = bonus["entropy, last checkpoint"].max() < 0.1  # nats: close to a deterministic policy
    searched = (f"the line search, which succeeds on {bonus['line search ok, last tenth'].mean():.0%} of the last "
                f"tenth's updates with the bonus against {plain['line search ok, last tenth'].mean():.0%} without")
    if low_entropy:
        return ("So the bonus does not work by keeping the policy stochastic: at the last checkpoint its entropy is "
                f"at most {bonus['entropy, last checkpoint'].max():.2f} nats, as close to deterministic as without it "
                f"({plain['entropy, last checkpoint'].max():.2f}). What it changes is {searched}: the entropy term "
                "gives the surrogate objective a gradient that a nearly deterministic policy can still follow, so "
                "steps keep being accepted and the policy keeps moving instead of freezing on a worse one.")
    return f"The bonus keeps the policy stochastic, and with it {searched}."


def trpo_paragraph(collapse: pd.DataFrame, runs: dict[str, list[RunResult]], weight: float) -> str:
    """Why TRPO collapses, from :func:`collapse_table` (the TRPO runs, with and without the entropy
    bonus) and ``runs`` (every run; the A2C family's collapses are counted against TRPO's)."""
    plain = collapse[~collapse.experiment.isin(list(VARIANTS))]
    fallen = plain[plain["collapsed at"].notna()]
    others = [collapsed(r.curve, weight) for name, rs in runs.items()
              if ALGORITHMS[experiment(name).agent.algorithm].thesis == "A2C" for r in rs]
    return (
        f"**{len(fallen)} of {len(plain)} TRPO runs collapse** (the smoothed curve falls below half its peak"
        + (f", after {int(fallen['collapsed at'].min()):,}–{int(fallen['collapsed at'].max()):,} updates). "
           if len(fallen) else "). ")
        + f"At the first checkpoint the policies' entropy is already at most {plain['entropy, first checkpoint'].max():.3f} nats: "
        "sb3-contrib's TRPO has no entropy bonus (the thesis's ACKTR had one, coefficient 0.01), so the natural-gradient "
        "steps make the policy deterministic early. From then on the sampled actions are the deterministic ones, the "
        "batch holds no alternative to compare against, and the improvement TRPO's line search demands is within "
        "noise: the line search succeeds on "
        f"{plain['line search ok, first tenth'].mean():.0%} of the updates in the first tenth of training and on "
        f"{plain['line search ok, last tenth'].mean():.0%} in the last. A step that the KL limit allows but that "
        "moves the argmax of a deterministic policy changes its behaviour completely; when such a step lands on a "
        "worse policy, there is no exploration left to climb back, and the parameters freeze there (the line search "
        "then fails on almost every update). "
        + (f"Of the {len(others)} A2C, GRU-A2C and LSTM-A2C runs, which keep the entropy bonus, {sum(others)} collapse by the "
           "same criterion. " if others else "")
        + "The test of this explanation is the same TRPO with the entropy bonus of the thesis's ACKTR (coefficient "
        "0.01) in the objective its step maximizes and its line search checks (`musicrl.agents.EntropyTRPO`). "
        + " ".join(_variant_sentence(collapse, name) for name in VARIANTS if name in set(collapse.experiment)) + " "
        + _mechanism(collapse)
    )


def collapse_styled(collapse: pd.DataFrame):
    """:func:`collapse_table` as the chapter shows it."""
    return (collapse.style.hide(axis="index").format(precision=3, subset=[c for c in collapse if "entropy" in c])
            .format("{:.0%}", subset=[c for c in collapse if "line search" in c])
            .format(precision=0, subset=["peak", "final level"]).format("{:,}", subset=["peak at"])
            .format(lambda v: "–" if pd.isna(v) else f"{int(v):,}", subset=["collapsed at"]))


def trainer_label(trainer: dict) -> str:
    """How a run was trained, as the runs table shows it: ``sb3``, or a seed-grouped path with its
    seeds (``multiseed (5 seeds)``, ``device (5 seeds)``)."""
    path, together = trainer.get("path", "sb3"), trainer.get("seeds_together", 1)
    return f"{path} ({together} seeds)" if path != "sb3" else path


def runs_frame(runs: dict[str, list[RunResult]], profile: str) -> pd.DataFrame:
    """The runs behind the chapter: key, updates, env steps, wall time, trainer and versions."""
    return pd.DataFrame([
        {"run": run_spec(name, profile, r.spec["seed"]).key, "updates": len(r.curve), "env steps": r.env_steps,
         "wall time (s)": round(r.wall_time),
         "trainer": trainer_label(r.trainer),
         "torch": r.versions.get("torch"), "stable-baselines3": r.versions.get("stable-baselines3")}
        for name, rs in runs.items() for r in rs
    ])


def thesis_table(shown: pd.DataFrame, metrics: pd.DataFrame, number: int):
    """The rows of :func:`musicrl.chapters.tables.figure_table` (``shown``, indexed by figure) that
    the thesis's metric table ``number`` (22 or 23) holds, styled."""
    figures = metrics.loc[metrics.table == number, "figure"]
    return styled(shown.loc[figures].reset_index())
