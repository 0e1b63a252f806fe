"""Simulated users: a preferred position (the target) and the feedback it gives.

The rules are those of ``environment-spec.md`` (thesis section 4.2): Manhattan distance,
ratings 0..4 cut by percentiles of the target's distances to all positions, and a
``closer`` flag that says whether a move got strictly nearer to the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

LEVELS = 5
CENTRE_LEVEL = LEVELS // 2
MAX_RATING = 4

PRESETS: dict[str, tuple[float, ...]] = {
    "TopTarget": (0, 0.01, 15, 30, 50, 100),
    "WiderTopTarget": (0, 5, 15, 30, 50, 100),
}


def check_choice(kind: str, value: object, accepted: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``accepted``, else raise a ``ValueError`` naming both."""
    if value not in accepted:
        raise ValueError(f"unknown {kind} {value!r}; accepted: {', '.join(map(repr, accepted))}")
    return value  # type: ignore[return-value]


def check_dimensions(d: object) -> int:
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1:
        raise ValueError(f"d (the number of features) must be an integer >= 1, got {d!r}")
    return int(d)


def n_positions(d: int) -> int:
    return LEVELS ** check_dimensions(d)


def position_to_index(position: np.ndarray) -> np.ndarray:
    """Row-major flat index of positions of shape ``(..., d)``: ``(1, 3)`` -> ``8`` in 2D."""
    position = np.asarray(position)
    d = position.shape[-1]
    weights = LEVELS ** np.arange(d - 1, -1, -1)
    return (position * weights).sum(axis=-1)


def index_to_position(index: np.ndarray | int, d: int) -> np.ndarray:
    """Inverse of :func:`position_to_index`; returns shape ``(..., d)``."""
    index = np.asarray(index)
    weights = LEVELS ** np.arange(d - 1, -1, -1)
    return (index[..., None] // weights) % LEVELS


@lru_cache(maxsize=8)
def all_positions(d: int) -> np.ndarray:
    """Every position, shape ``(LEVELS**d, d)``, in flat-index order (read-only)."""
    grid = index_to_position(np.arange(n_positions(d)), d).astype(np.int64)
    grid.setflags(write=False)
    return grid


def start_position(d: int) -> np.ndarray:
    return np.full(check_dimensions(d), CENTRE_LEVEL, dtype=np.int64)


def manhattan(a: npt.ArrayLike, b: npt.ArrayLike, weights: tuple[int, ...] | None = None) -> np.ndarray:
    """Manhattan distance over the last axis; with ``weights``, feature ``j`` counts ``weights[j]`` times."""
    difference = np.abs(np.asarray(a) - np.asarray(b))
    if weights is None:
        return difference.sum(axis=-1)
    return difference @ np.asarray(weights, dtype=np.int64)


MAX_WEIGHT = 9


def check_weights(weights: object, d: int) -> tuple[int, ...]:
    """``d`` integer feature weights in 1..MAX_WEIGHT: integers keep the rating cut points exact."""
    try:
        values: tuple = tuple(weights)  # type: ignore[arg-type]
    except TypeError:
        values = ()
    if len(values) != d or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool)
                                   and 1 <= w <= MAX_WEIGHT for w in values):
        raise ValueError(f"weights must be {d} integers in 1..{MAX_WEIGHT}, one per feature (a feature of weight 2 "
                         f"counts twice in the distance), got {weights!r}")
    return tuple(int(w) for w in values)


def check_target(target: object, d: int) -> np.ndarray:
    """Accept a flat index in ``[0, LEVELS**d)`` or a sequence of ``d`` levels in ``0..LEVELS-1``."""
    n = n_positions(d)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= target < n:
            raise ValueError(f"target index {target!r} is outside the grid; accepted: 0..{n - 1} for d={d}")
        return index_to_position(int(target), d).astype(np.int64)
    arr = np.asarray(target)
    if arr.shape != (d,) or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= LEVELS:
        raise ValueError(
            f"target {target!r} is outside the grid; accepted: {d} integer levels in 0..{LEVELS - 1} "
            f"or a flat index in 0..{n - 1}"
        )
    return arr.astype(np.int64)


def _axis_histogram(level: int, weight: int = 1) -> np.ndarray:
    """Counts of the distances ``weight * |level - j|`` for ``j`` in ``0..LEVELS-1``."""
    return np.bincount(weight * np.abs(level - np.arange(LEVELS)), minlength=LEVELS)


@lru_cache(maxsize=4096)
def _thresholds_for_class(axes: tuple[tuple[int, int], ...], percentiles: tuple[float, ...]) -> tuple[float, ...]:
    """Thresholds for a target whose sorted ``(folded level, weight)`` pairs are ``axes``.

    The distances from a target to all positions have a histogram that is the convolution
    of one histogram per axis, so the percentiles need no array of ``LEVELS**d`` distances
    (exact and cheap for any d; integer weights keep it on an integer grid).
    The interpolation copies ``numpy.percentile``'s default ('linear') bit for bit.
    """
    counts = np.array([1])
    for level, weight in axes:
        counts = np.convolve(counts, _axis_histogram(level, weight))
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1])

    def sorted_distance(i: int) -> float:
        return float(np.searchsorted(cumulative, i, side="right"))

    out = []
    for p in percentiles:
        virtual = (n - 1) * (np.float64(p) / 100)
        below = np.floor(virtual)
        gamma = virtual - below
        a = sorted_distance(int(below))
        b = sorted_distance(min(int(below) + 1, n - 1))
        out.append(float(b - (b - a) * (1 - gamma)) if gamma >= 0.5 else float(a + (b - a) * gamma))
    return tuple(out)


def check_bands(bands: object) -> tuple[float, ...]:
    """Four increasing percentiles in [0, 100]: where ratings 4, 3, 2 and 1 end."""
    try:
        values = tuple(float(b) for b in bands)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or any(not 0 <= b <= 100 for b in values) or any(a >= b for a, b in zip(values, values[1:])):
        raise ValueError(f"bands must be 4 increasing percentiles in [0, 100] (where ratings 4, 3, 2, 1 end), got {bands!r}")
    return values


def rating_thresholds(target: np.ndarray, preset: str, bands: tuple[float, ...] | None = None,
                      weights: tuple[int, ...] | None = None) -> np.ndarray:
    """Distances ``t_1..t_4`` (shape ``(..., 4)``) at which the rating drops below 4, 3, 2, 1.

    The cut points are the preset's percentiles of the target's (weighted) distances to all
    positions, or ``bands`` (four percentiles) if given."""
    check_choice("preset", preset, tuple(PRESETS))
    percentiles = tuple(float(p) for p in PRESETS[preset][1:5]) if bands is None else check_bands(bands)
    target = np.asarray(target)
    d = target.shape[-1]
    weights = (1,) * d if weights is None else check_weights(weights, d)
    folded = np.minimum(target, LEVELS - 1 - target)
    flat = folded.reshape(-1, d)
    rows = [_thresholds_for_class(tuple(sorted(zip(row.tolist(), weights))), percentiles) for row in flat]
    return np.array(rows, dtype=np.float64).reshape(*target.shape[:-1], 4)


def rating_from_distance(distance: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``4`` if ``distance <= t_1``, ``3`` if ``<= t_2``, ... ``0`` beyond ``t_4``."""
    return (np.asarray(distance)[..., None] <= thresholds).sum(axis=-1)


@lru_cache(maxsize=16)
def rating_table(d: int, preset: str, bands: tuple[float, ...] | None = None,
                 weights: tuple[int, ...] | None = None) -> np.ndarray:
    """``table[target, position]``: the rating every target gives every position (read-only).

    Size ``LEVELS**(2d)``, so this is for the small grids the planners work on.
    """
    thresholds = rating_thresholds(all_positions(d), preset, bands, weights)
    table = rating_from_distance(distance_table(d, weights), thresholds[:, None, :]).astype(np.int8)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def distance_table(d: int, weights: tuple[int, ...] | None = None) -> np.ndarray:
    """``table[a, b]``: (weighted) Manhattan distance between positions ``a`` and ``b`` (read-only)."""
    positions = all_positions(d)
    table = manhattan(positions[:, None, :], positions[None, :, :], weights).astype(np.int16)
    table.setflags(write=False)
    return table


def perturb_feedback(rng: np.random.Generator, rating: int, closer: int, p_rating: float, p_closer: float,
                     at_reset: bool = False) -> tuple[int, int]:
    """The one noise model of the project (env options and the recommender's noisy listener):
    the rating moves by +-1 (kept in 0..4) with probability ``p_rating``, "closer" flips with
    probability ``p_closer`` (never at reset, where there is no previous position). Three
    draws per call whatever the outcome, so every user consumes its generator alike."""
    u, up, v = rng.random(), rng.integers(0, 2), rng.random()
    if u < p_rating:
        rating = int(min(max(rating + (1 if up else -1), 0), MAX_RATING))
    if v < p_closer and not at_reset:
        closer = 1 - closer
    return rating, closer


@dataclass(frozen=True)
class SimulatedUser:
    """A deterministic listener who prefers ``target`` and rates by ``preset``."""

    target: tuple[int, ...]
    preset: str = "WiderTopTarget"

    def __post_init__(self) -> None:
        check_choice("preset", self.preset, tuple(PRESETS))
        check_target(np.asarray(self.target), len(self.target))

    @property
    def thresholds(self) -> np.ndarray:
        return rating_thresholds(np.asarray(self.target), self.preset)

    def rating(self, position: np.ndarray) -> int:
        return int(rating_from_distance(manhattan(position, self.target), self.thresholds))

    def feedback(self, previous: np.ndarray, position: np.ndarray) -> tuple[int, int]:
        """``(closer, rating)`` for a move from ``previous`` to ``position``."""
        closer = int(manhattan(position, self.target) < manhattan(previous, self.target))
        return closer, self.rating(position)
