"""Pure functions on curves and returns: smoothing, levels, convergence, collapse, bootstrap CIs and their text.

A curve is one run's training curve, shape ``(updates,)``: after each update the mean return of the
last 10 finished episodes (NaN before the first one). ``values`` are one number per run (seed).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def mean_ci(values: npt.ArrayLike, reps: int = 2000, seed: int = 0, size: float = 0.95) -> tuple[float, float, float]:
    """Mean over runs (seeds) and its bootstrap confidence interval, computed by rliable.

    With few runs the interval is coarse and cannot be wider than the runs' range; it
    still says more than one run does. Returns ``(mean, low, high)``.
    """
    from rliable import library

    scores = np.asarray(values, dtype=float).reshape(-1, 1)
    if scores.size == 0:
        raise ValueError("mean_ci needs at least one value")
    # rliable 1.2.0 resamples with the global np.random (its random_state does not reach
    # the resampling), so the global generator is seeded here and restored afterwards.
    saved = np.random.get_state()
    np.random.seed(seed)
    try:
        point, interval = library.get_interval_estimates(
            {"runs": scores}, lambda x: np.array([np.mean(x)]), reps=reps, confidence_interval_size=size,
        )
    finally:
        np.random.set_state(saved)
    return float(point["runs"][0]), float(interval["runs"][0, 0]), float(interval["runs"][1, 0])


def smooth(curve: npt.ArrayLike, weight: float = 0.99) -> np.ndarray:
    """TensorBoard's smoothing (debiased exponential moving average), NaNs skipped."""
    if not 0 <= weight < 1:
        raise ValueError(f"weight must be in [0, 1), got {weight!r}")
    values = np.asarray(curve, dtype=float)
    out = np.full_like(values, np.nan)
    last, count = 0.0, 0
    for i, value in enumerate(values):
        if np.isnan(value):
            continue
        last, count = last * weight + (1 - weight) * value, count + 1
        out[i] = last / (1 - weight**count)
    return out


def final_level(curve: npt.ArrayLike) -> float:
    """Mean of the curve's values over the last tenth of training, ignoring NaN (NaN if none)."""
    values = np.asarray(curve, dtype=float)
    tail = values[-max(1, len(values) // 10):]
    tail = tail[~np.isnan(tail)]
    return float(tail.mean()) if tail.size else float("nan")


def late_rise(curve: npt.ArrayLike) -> float:
    """How far the curve's last tenth of training lies above the tenth before it (means
    ignoring NaN): near zero once a run has flattened, positive while it still learns."""
    values = np.asarray(curve, dtype=float)
    tenth = len(values) // 10
    if tenth == 0:
        raise ValueError(f"late_rise needs a curve of at least 10 updates, got {len(values)}")
    return final_level(values) - float(np.nanmean(values[-2 * tenth:-tenth]))


def updates_to_convergence(curve: npt.ArrayLike, weight: float = 0.99, fraction: float = 0.95) -> int | None:
    """First update where the smoothed curve reaches ``fraction`` of its final level.

    The final level is the mean of the raw curve over the last tenth of training; None
    if the curve has no finite value.
    """
    values = np.asarray(curve, dtype=float)
    level = final_level(values)
    if np.isnan(level):
        return None
    target = fraction * level
    reached = np.flatnonzero(smooth(values, weight) >= target)
    return int(reached[0]) + 1 if reached.size else None


def decimals_for(low: float, high: float) -> int:
    """Decimals a mean deserves given its CI: none when the half-width is 1 or more, else one
    (two below 0.1); numbers are rounded to what the seeds support."""
    half = abs(high - low) / 2
    return 0 if half >= 1 else 1 if half >= 0.1 else 2


def format_ci(mean: float, low: float, high: float, runs: int | None = None) -> str:
    """``mean [low, high]`` rounded by :func:`decimals_for`; one run shows its value alone, and
    runs that all agree show the common value."""
    if runs == 1:
        return f"{mean:.1f} (1 run)"
    if low == high:
        return f"{mean:.1f} (all runs)"
    k = decimals_for(low, high)
    return f"{mean:.{k}f} [{low:.{k}f}, {high:.{k}f}]"


def collapse_point(curve: npt.ArrayLike, weight: float = 0.99) -> tuple[float, int, int | None]:
    """The smoothed curve's peak, the update of the peak, and the first update after it at which
    the curve is below half the peak (None if never): the collapse criterion of the book."""

    smoothed = smooth(curve, weight)
    peak_at = int(np.nanargmax(smoothed))
    below = np.flatnonzero(smoothed[peak_at:] < 0.5 * smoothed[peak_at])
    return float(smoothed[peak_at]), peak_at + 1, (int(peak_at + below[0] + 1) if below.size else None)


def collapsed(curve: npt.ArrayLike, weight: float = 0.99) -> bool:
    """Whether the smoothed curve falls below half of its peak after the peak (:func:`collapse_point`)."""
    return collapse_point(curve, weight)[2] is not None
