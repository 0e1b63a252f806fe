"""Verdicts on the thesis's numbers: pooled returns over seeds with a 95% CI, compared with a CI or a number."""

from __future__ import annotations

from collections.abc import Sequence

from musicrl.registry import experiment
from musicrl.runfiles import RunResult
from musicrl.stats import format_ci, mean_ci

HELD, NOT_HELD, UNDECIDED = "held", "not held", "undecided"


def pooled_ci(results: Sequence[RunResult]) -> tuple[float, float, float]:
    return mean_ci([r.pooled.mean for r in results])


def verdict_above(a: tuple[float, float, float], b: tuple[float, float, float]) -> str:
    """Whether ``a`` is above ``b``: held if a's CI lies above b's, not held if below, else undecided."""
    if a[1] > b[2]:
        return HELD
    if a[2] < b[1]:
        return NOT_HELD
    return UNDECIDED


def verdict_reaches(ours: tuple[float, float, float], thesis: float) -> str:
    """Whether ours reaches the thesis's number: held if the CI reaches it, not held if it lies below."""
    return HELD if ours[2] >= thesis else NOT_HELD


def ci_text(ci: tuple[float, float, float]) -> str:
    return format_ci(*ci)


def thesis_mean(name: str) -> float | None:
    e = experiment(name)
    return e.thesis.mean if e.thesis else None
