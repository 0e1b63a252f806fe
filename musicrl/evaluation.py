"""The thesis's evaluation protocol and the policy interface shared by agents and baselines.

A policy is anything with Stable-Baselines3's ``predict(observation, state, episode_start,
deterministic)``: SB3 and sb3-contrib models (recurrent or not) qualify as they are, and so
do the baselines in :mod:`musicrl.baselines`. Evaluation runs the policy deterministically
for one episode on every one of the ``5**d`` targets, all at once in a batched env.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np

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
    policy: Policy, config: EnvConfig, targets: Iterable[int], deterministic: bool = True
) -> tuple[np.ndarray, list[Episode]]:
    """Run ``policy`` for one episode per target (deterministically by default); return returns and episodes."""
    targets = list(targets)
    n = len(targets)
    if n == 0:
        raise ValueError("targets must hold at least one target")
    env = PreferenceSearchVecEnv(n, config, seed=0)
    env.set_options([{"target": int(t)} for t in targets])
    observation = cast(np.ndarray, env.reset())
    history = [[info] for info in env.reset_infos]
    rewards = np.zeros((n, EPISODE_STEPS), dtype=np.float64)
    state, starts = None, np.ones(n, dtype=bool)
    for step in range(EPISODE_STEPS):
        actions, state = policy.predict(observation, state=state, episode_start=starts, deterministic=deterministic)
        stepped, reward, dones, infos = env.step(np.asarray(actions))
        observation = cast(np.ndarray, stepped)
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
