"""The thesis's evaluation protocol and the policy interface shared by agents and baselines.

A policy is anything with Stable-Baselines3's ``predict(observation, state, episode_start,
deterministic)``: SB3 and sb3-contrib models (recurrent or not) qualify as they are, and so
do the baselines in :mod:`musicrl.baselines`. Evaluation runs the policy deterministically
for one episode on every one of the ``5**d`` targets, all at once in a batched env.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchVecEnv
from musicrl.users import MAX_RATING

STUCK_STEPS = 5


@runtime_checkable
class Policy(Protocol):
    """What evaluation needs of a policy: SB3's ``predict`` signature."""

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]: ...


@dataclass(frozen=True)
class EvalResult:
    """Episode returns, one per target (flat index order), and their summary."""

    returns: np.ndarray
    label: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Population standard deviation (``ddof=0``) over all episodes."""
        return float(np.std(self.returns))

    def summary(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std, "episodes": int(self.returns.size)}


@dataclass(frozen=True)
class Episode:
    """One episode, step by step: positions visited, feedback, rewards."""

    target: int
    positions: list[int]
    closer: list[int]
    ratings: list[int]
    rewards: list[float]

    @property
    def total(self) -> float:
        return float(sum(self.rewards))

    @property
    def found(self) -> bool:
        """Saw a top-rated position (the target; under WiderTopTarget also its neighbours), the
        start included: an episode that starts on a top-rated position and walks away counts
        as found, though the start earns no reward."""
        return MAX_RATING in self.ratings

    @property
    def stuck(self) -> bool:
        """Never found the target, and proposed one position over the last ``STUCK_STEPS`` steps."""
        return not self.found and len(set(self.positions[-STUCK_STEPS:])) == 1


def rollout(
    policy: Policy, config: EnvConfig, targets: Sequence[int], deterministic: bool = True
) -> tuple[np.ndarray, list[Episode]]:
    """Run ``policy`` for one episode per target (deterministically by default); return returns and episodes."""
    targets = list(targets)
    n = len(targets)
    if n == 0:
        raise ValueError("targets must hold at least one target")
    env = PreferenceSearchVecEnv(n, config, seed=0)
    env.set_options([{"target": int(t)} for t in targets])
    observation = env.reset()
    history = [[info] for info in env.reset_infos]
    rewards = np.zeros((n, EPISODE_STEPS), dtype=np.float64)
    state, starts = None, np.ones(n, dtype=bool)
    for step in range(EPISODE_STEPS):
        actions, state = policy.predict(observation, state=state, episode_start=starts, deterministic=deterministic)
        observation, reward, dones, infos = env.step(np.asarray(actions))
        rewards[:, step] = reward
        starts = dones
        for i, info in enumerate(infos):
            history[i].append(info)
    episodes = [
        Episode(
            target=targets[i],
            positions=[h["position"] for h in history[i]],
            closer=[h["closer"] for h in history[i]],
            ratings=[h["rating"] for h in history[i]],
            rewards=[0.0, *rewards[i].tolist()],
        )
        for i in range(n)
    ]
    return rewards.sum(axis=1), episodes


EVAL_TARGETS = 625  # every target up to d = 4, as the thesis; a fixed sample of this many beyond


def evaluation_targets(config: EnvConfig) -> np.ndarray:
    """The targets of :func:`evaluate_policy`: all ``5**d`` up to ``EVAL_TARGETS``, else a fixed
    uniform sample of ``EVAL_TARGETS`` (seed 0, with replacement: 5**d may exceed what numpy can permute)."""
    if config.n_positions <= EVAL_TARGETS:
        return np.arange(config.n_positions)
    return np.random.default_rng(0).integers(0, config.n_positions, size=EVAL_TARGETS, dtype=np.int64)


def evaluate_policy(policy: Policy, config: EnvConfig, label: str = "") -> EvalResult:
    """The thesis's metric: one deterministic episode for each of the ``5**d`` targets (for
    d > 4, for a fixed sample of them: :func:`evaluation_targets`)."""
    returns, _ = rollout(policy, config, evaluation_targets(config))
    return EvalResult(returns=returns, label=label, details={"config": config.to_dict()})


def evaluate_sampled(policy: Policy, config: EnvConfig, repeats: int = 10, seed: int = 0) -> tuple[EvalResult, list[Episode]]:
    """The thesis's metric with actions sampled as in training: ``repeats`` episodes per target.

    SB3 samples actions with torch's global generator; it is seeded here and restored after,
    so the same seed gives the same episodes and the caller's random state is untouched.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        returns, episodes = rollout(policy, config, list(range(config.n_positions)) * repeats, deterministic=False)
    return EvalResult(returns=returns, label="sampled", details={"config": config.to_dict(), "repeats": repeats}), episodes


def example_episode(policy: Policy, config: EnvConfig, target: int) -> Episode:
    """One deterministic episode against a given target (flat index)."""
    return rollout(policy, config, [target])[1][0]


def pool(results: Sequence[EvalResult], label: str = "pooled") -> EvalResult:
    """The thesis's pooled figure: all episodes of several checkpoints as one sample."""
    if not results:
        raise ValueError("pool needs at least one EvalResult")
    return EvalResult(returns=np.concatenate([r.returns for r in results]), label=label)


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


def turns_to_success(episode: Episode) -> int | None:
    """Proposals until the first top rating (0: the start was top-rated); None if never."""
    return next((i for i, r in enumerate(episode.ratings) if r == MAX_RATING), None)


def conversational_metrics(episodes: Sequence[Episode], horizons: Sequence[int] = (3, 5, 10, EPISODE_STEPS)) -> dict[str, float]:
    """The multi-round conversational recommendation metrics (Lei et al., 2020): SR@T, the share of
    sessions that reach a top-rated position within T proposals, and AT, the average turns, a
    failed session counting the full ``EPISODE_STEPS``."""
    if not episodes:
        raise ValueError("conversational_metrics needs at least one episode")
    turns = [turns_to_success(e) for e in episodes]
    found = {f"SR@{t}": float(np.mean([u is not None and u <= t for u in turns])) for t in horizons}
    found["AT"] = float(np.mean([EPISODE_STEPS if u is None else u for u in turns]))
    return found
