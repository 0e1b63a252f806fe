"""Text of the chapter on 3D and 4D."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from musicrl import plots
from musicrl.envs import EPISODE_STEPS
from musicrl.reference import UPPER_BOUND
from musicrl.registry import experiment, thesis_agents
from musicrl.runfiles import RunResult
from musicrl.stats import format_ci, late_rise, mean_ci


def search_gap_sentence(row: Any, steps: str) -> str:
    """Where a trained agent loses steps against greedy, from a row of the higher-dimension chapter's
    search table (``d``, ``targets with return 0``, ``steps off on the others``, ``greedy: steps off``;
    ``steps``: the agents' steps off, formatted): targets never reached, or a slower search."""
    zero, others, greedy = row["targets with return 0"], row["steps off on the others"], row["greedy: steps off"]
    missed = zero * (EPISODE_STEPS - greedy)  # beyond greedy's steps off
    slower = (1 - zero) * (others - greedy)
    cause = ("most of the gap is a slower search" if slower > 1.5 * missed else
             "most of the gap is targets never reached" if missed > 1.5 * slower else "the two share the gap")
    return (f"In {row['d']}D the agents spend {steps} of the {EPISODE_STEPS} steps off a top-rated position, greedy "
            f"{greedy:.1f}. For {zero:.1%} of the targets they never stand on one (about {missed:.1f} steps per "
            f"episode beyond greedy's); on the others they spend {others:.1f} steps off (about {slower:.1f} beyond "
            f"greedy's): {cause}.")


def loop_sentence(row: Any) -> str:
    """Whether a deterministic policy loops, from a row of :func:`musicrl.chapters.tables.sampling_table`."""
    d = experiment(row["experiment"]).env.d
    missed, stuck_share = row["targets missed (deterministic)"], row["of those, stuck on one position"]
    stuck = "none" if pd.isna(stuck_share) else f"{stuck_share:.0%}"
    verdict = "no better" if row["sampled"] - row["deterministic"] < 1 else "better"
    return (f"In {d}D the deterministic policy misses {missed:.0%} of the targets, and {stuck} of those end "
            f"stuck on one position; sampling the actions instead is {verdict} ({row['sampled']:.1f} against "
            f"{row['deterministic']:.1f}).")


def dims_figure(runs: dict[str, list[RunResult]], references: dict[str, dict[str, float]], names: Sequence[str],
                weight: float, profile: str):
    """One panel per experiment of ``names``: its seeds' curves beside the optimum (or its upper
    bound) and greedy; a panel says so where the experiment has not run under ``profile``."""
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        e = experiment(name)
        title = f"thesis figure {e.figure}: {e.env.d}D, {e.env.n_positions} positions"
        if name not in runs:
            ax.text(0.5, 0.5, f"not run yet\n({profile} profile)", ha="center", va="center")
            ax.set_title(title)
            ax.set_axis_off()
            continue
        curves = {f"seed {r.spec['seed']}": r.curve for r in runs[name]}
        levels = {k: v for k, v in references[name].items() if k in ("optimal", UPPER_BOUND, "greedy")}
        plots.plot_curves(curves, levels, weight=weight, ax=ax, title=title)
        ax.legend(fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig


def _convergence_reading(runs: dict[str, list[RunResult]], convergence: pd.DataFrame, name: str) -> str:
    if name not in runs:
        return f"thesis figure {experiment(name).figure} has not run yet under this profile"
    row = convergence.set_index("experiment").loc[name]
    when = "never within its budget" if pd.isna(row["ours: median"]) else f"after a median of {row['ours: median']:,.0f} updates"
    rises = [late_rise(r.curve) for r in runs[name]]
    rise = mean_ci(rises)
    trend = ("" if len(rises) < 2 else ", still rising when the budget ended" if rise[1] > 0
             else ", falling when the budget ended" if rise[2] < 0 else ", flat by the end of the budget")
    return (f"in {experiment(name).env.d}D it reaches 95% of its final level ({row['final level']:.1f}) {when} ("
            f"last tenth minus the tenth before: {format_ci(*rise, len(rises))}{trend})")


def convergence_paragraph(runs: dict[str, list[RunResult]], convergence: pd.DataFrame) -> str:
    """When the thesis's 3D and 4D runs converged, and when ours reach 95% of their final level (with
    the 2D reference), from :func:`musicrl.chapters.tables.convergence_table`."""
    return (f"The thesis needed about {experiment('fig24').converged:,} updates in 3D and "
            f"{experiment('fig25').converged:,} in 4D. In this profile's runs, "
            + "; ".join(_convergence_reading(runs, convergence, n) for n in thesis_agents(("fig24", "fig25", "fig14"))) + ".")


def greedy_paragraph(metrics: pd.DataFrame) -> str:
    """Per dimension: greedy's return beside the trained agent's, from :func:`musicrl.chapters.tables.metrics_table`."""
    return " ".join(
        f"In {row.d}D greedy, which needs no training, averages {row.greedy:.1f}; the trained agent reaches "
        f"{format_ci(row['pooled mean'], row['pooled low'], row['pooled high'])} in this profile."
        for _, row in metrics.iterrows()
    )


def gap_paragraph(metrics: pd.DataFrame, thesis_budget: bool) -> str:
    """How far the agent is from greedy in each dimension."""
    gaps = metrics.assign(gap=metrics["greedy"] - metrics["pooled mean"])
    return " ".join(
        f"In {row.d}D the agent is {abs(row.gap):.1f} {'below' if row.gap > 0 else 'above'} greedy."
        for _, row in gaps.iterrows()
    ) + (" These runs are far shorter than the thesis's; the `full` profile runs its budgets." if not thesis_budget else "")


def trend_sentence(metrics: pd.DataFrame) -> str | None:
    """Whether the return falls with each added feature, as the thesis saw (None with one dimension)."""
    by_d = metrics.sort_values("d")
    if len(by_d) < 2:
        return None
    means = " → ".join(f"{row['pooled mean']:.0f} ({row.d}D)" for _, row in by_d.iterrows())
    low, high = by_d.loc[by_d["pooled mean"].idxmin()], by_d.loc[by_d["pooled mean"].idxmax()]
    verdict = ("their 95% CIs overlap, so these seeds do not tell the dimensions apart" if high["pooled low"] <= low["pooled high"]
               else f"the CIs of {low.d}D and {high.d}D do not overlap")
    return f"The thesis saw slightly lower returns with each added feature. Here the pooled means go {means}: {verdict}."


def search_shown(search: pd.DataFrame) -> tuple[Any, list[str]]:
    """:func:`musicrl.chapters.tables.search_table` styled with the agents' steps off as a CI, and those CIs."""
    ci = [format_ci(r["ours: steps off"], r["ours: low"], r["ours: high"], r.seeds) for _, r in search.iterrows()]
    shown = search.drop(columns=["ours: steps off", "ours: low", "ours: high"])
    shown.insert(shown.columns.get_loc("greedy: steps off") + 1, "ours: steps off [95% CI]", ci)
    return shown.style.hide(axis="index").format(precision=1).format("{:.1%}", subset=["targets with return 0"]), ci
