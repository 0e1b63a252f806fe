"""The verdicts of the conclusions page: one row per claim of the thesis."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from musicrl.algorithms import ALGORITHMS
from musicrl.chapters.verdicts import HELD, NOT_HELD, UNDECIDED, ci_text, pooled_ci, thesis_mean, verdict_above, verdict_reaches
from musicrl.registry import EXPERIMENTS, STAND_IN_OF, THESIS_AGENT, experiment, thesis_agents
from musicrl.runfiles import RunResult


def _ranking(runs: dict[str, list[RunResult]], claim: str, order: Sequence[str], labels: Sequence[str],
             thesis: str) -> dict | None:
    """``order[0] > order[1] > ...`` as one claim: held if every step holds, not held if any step is reversed."""
    if not all(runs.get(name) for name in order):
        return None
    cis = [pooled_ci(runs[name]) for name in order]
    steps = [verdict_above(a, b) for a, b in zip(cis, cis[1:])]
    verdict = NOT_HELD if NOT_HELD in steps else HELD if all(s == HELD for s in steps) else UNDECIDED
    ours = "; ".join(f"{label} {ci_text(ci)}" for label, ci in zip(labels, cis))
    why = {HELD: "each CI lies above the next", NOT_HELD: "at least one step is reversed (CIs apart, wrong order)",
           UNDECIDED: "the CIs overlap: the seeds do not separate them"}[verdict]
    return {"claim": claim, "thesis": thesis, "ours (mean [95% CI])": ours, "verdict": verdict, "why": why}


def _best_of(runs: dict[str, list[RunResult]], claim: str, best: str, others: Sequence[str], labels: dict[str, str],
             thesis: str) -> dict | None:
    if not all(runs.get(name) for name in (best, *others)):
        return None
    cis = {name: pooled_ci(runs[name]) for name in (best, *others)}
    steps = [verdict_above(cis[best], cis[o]) for o in others]
    verdict = NOT_HELD if NOT_HELD in steps else HELD if all(s == HELD for s in steps) else UNDECIDED
    winner = max(cis, key=lambda n: cis[n][0])
    why = {HELD: f"{labels[best]}'s CI lies above the others'",
           NOT_HELD: f"another setting's CI lies above {labels[best]}'s (highest mean: {labels[winner]})",
           UNDECIDED: f"the CIs overlap (highest mean: {labels[winner]})"}[verdict]
    ours = "; ".join(f"{labels[n]} {ci_text(ci)}" for n, ci in cis.items())
    return {"claim": claim, "thesis": thesis, "ours (mean [95% CI])": ours, "verdict": verdict, "why": why}


def _reaches_row(claim: str, thesis: float, agent: str, results: list[RunResult]) -> dict:
    """A claim that ``agent``'s runs reach the thesis's mean return: held if the CI reaches it."""
    ci = pooled_ci(results)
    verdict = verdict_reaches(ci, thesis)
    return {"claim": claim, "thesis": f"{thesis:g}", "ours (mean [95% CI])": f"{agent} {ci_text(ci)}".strip(), "verdict": verdict,
            "why": "the CI reaches the thesis's mean" if verdict == HELD else "the whole CI lies below the thesis's mean"}


# The thesis's general statements: (kind, claim, thesis figures, their labels, the thesis's numbers as text).
Claim = tuple[str, str, tuple[str, ...], tuple[str, ...], Callable[..., str]]
GENERAL_CLAIMS: tuple[Claim, ...] = (
    ("best_of", "n = 20 is the best n-step length (GridObs, WiderTopTarget, Bullseye)", ("fig14", "fig12", "fig13"),
     ("n = 20", "n = 5", "n = 10"), lambda t: f"n = 20: {t('fig14'):g}; n = 10: {t('fig13'):g}; n = 5: {t('fig12'):g}"),
    ("ranking", "The RNN stabilises learning: A2C with memory beats feed-forward A2C (BoardObs, Rating)",
     ("fig19", "fig21"), ("with memory", "feed-forward"), lambda t: f"with RNN: {t('fig19'):g}; without: {t('fig21'):g}"),
    ("ranking", "Returns fall with each added feature (GridObs, Bullseye, n = 20)", ("fig14", "fig24", "fig25"),
     ("2D", "3D", "4D"), lambda t: "lower returns in 3D and 4D (no table)"),
)


def _agent_of(names: Sequence[str]) -> str:
    return " / ".join(dict.fromkeys(ALGORITHMS[experiment(n).agent.algorithm].short for n in names))


def _claim(kind: str, runs: dict[str, list[RunResult]], claim: str, names: Sequence[str],
           labels: Sequence[str]) -> dict | None:
    if kind == "best_of":
        return _best_of(runs, claim, names[0], names[1:], dict(zip(names, labels)), "")
    return _ranking(runs, claim, names, labels, "")


def _stand_in_names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(STAND_IN_OF.get(n, n) for n in names)


def _general_row(kind: str, claim: str, figures: Sequence[str], labels: Sequence[str], thesis: Callable[..., str],
                 runs: dict[str, list[RunResult]]) -> dict | None:
    faithful, stand_in = thesis_agents(figures), _stand_in_names(thesis_agents(figures))
    mine = _claim(kind, runs, claim, faithful, labels)
    other = _claim(kind, runs, claim, stand_in, labels) if stand_in != faithful else None
    return _combine(claim, thesis(thesis_mean), mine, _agent_of(faithful), other, _agent_of(stand_in))


def _combine(claim: str, thesis: str, mine: dict | None, agent: str, other: dict | None, stand_in: str) -> dict | None:
    """One row: the verdict with the thesis's own agent, the stand-in's beside it; where the
    thesis's agent has no runs, the stand-in's verdict is the row's, marked as resting on it."""
    if mine is None and other is None:
        return None
    on_stand_in = mine is None
    lead = other if on_stand_in else mine
    assert lead is not None
    return {
        "claim": claim, "thesis": thesis, "agent": stand_in if on_stand_in else agent,
        "ours (mean [95% CI])": lead["ours (mean [95% CI])"], "verdict": lead["verdict"], "why": lead["why"],
        "stand-in": "–" if other is None or on_stand_in else f"{stand_in}: {other['ours (mean [95% CI])']}",
        "stand-in verdict": "–" if other is None or on_stand_in else other["verdict"],
        "rests on a stand-in": on_stand_in,
    }


def claims_table(runs: dict[str, list[RunResult]]) -> pd.DataFrame:
    """One row per claim of the thesis that its tables let us check: the thesis's number, the
    verdict with the thesis's own agent (GRU-A2C, ACKTR, A2C; :data:`THESIS_AGENT`) from its
    pooled mean over seeds with its 95% CI, and the stand-in's (LSTM-A2C, TRPO) beside it.
    Verdicts: ``held``, ``not held``, ``undecided`` (the CIs overlap). Where the thesis's agent
    has no runs the stand-in decides and ``rests on a stand-in`` is true; claims with no runs
    at all are left out. ``runs`` maps run names (``fig14-gru``, ``fig14``, ...) to results."""
    rows = [_general_row(*claim, runs) for claim in GENERAL_CLAIMS]
    for name in EXPERIMENTS:
        thesis = thesis_mean(name)
        if thesis is None:
            continue
        e, agent = experiment(name), THESIS_AGENT[name]
        claim = f"Thesis figure {e.figure} ({e.caption}): {ALGORITHMS[e.agent.algorithm].thesis} reaches a mean return of {thesis:g}"

        mine = _reaches_row(claim, thesis, "", runs[agent]) if runs.get(agent) else None
        other = _reaches_row(claim, thesis, "", runs[name]) if agent != name and runs.get(name) else None
        rows.append(_combine(claim, f"{thesis:g}", mine, _agent_of([agent]), other, _agent_of([name])))
    return pd.DataFrame([r for r in rows if r is not None],
                        columns=["claim", "thesis", "agent", "ours (mean [95% CI])", "verdict", "why", "stand-in",
                                 "stand-in verdict", "rests on a stand-in"])


def claims_counts(claims: pd.DataFrame) -> dict[str, int]:
    """The page's headline numbers from :func:`claims_table`: claims, verdicts of the thesis's
    agents (``n_held``, ``n_not_held``, ``n_undecided``), rows resting on a stand-in, and the
    stand-ins' own verdicts where they ran beside the thesis's agent."""
    verdicts = claims["verdict"].value_counts()
    stand_in = claims.loc[claims["stand-in verdict"] != "–", "stand-in verdict"].value_counts()
    counts = {"n_claims": len(claims), "n_on_stand_in": int(claims["rests on a stand-in"].sum()),
              "n_stand_in_judged": int(stand_in.sum())}
    for verdict in (HELD, NOT_HELD, UNDECIDED):
        key = verdict.replace(" ", "_")
        counts[f"n_{key}"] = int(verdicts.get(verdict, 0))
        counts[f"n_stand_in_{key}"] = int(stand_in.get(verdict, 0))
    return counts


def claims_styled(claims: pd.DataFrame):
    """:func:`claims_table` for the page: verdicts coloured, long cells wrapped."""
    colours = {HELD: "background-color: #d9f0d3", NOT_HELD: "background-color: #f4cccc"}
    shown = claims.assign(agent=[f"{a} (stand-in)" if s else a for a, s in zip(claims.agent, claims["rests on a stand-in"])])
    shown = shown[["claim", "thesis", "agent", "ours (mean [95% CI])", "verdict", "stand-in", "stand-in verdict"]]
    return shown.style.hide(axis="index").map(lambda v: colours.get(v, ""), subset=["verdict", "stand-in verdict"]) \
        .set_table_styles([{"selector": "td", "props": "white-space: normal; vertical-align: top; max-width: 20em"}])
