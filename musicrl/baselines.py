"""Yardsticks for the agents: policies that need no training.

All of them read ``GridObs`` observations (position, closer, rating) and keep, per env,
the set of targets still consistent with every piece of feedback so far (the belief).
They share SB3's ``predict`` signature, so :func:`musicrl.evaluation.evaluate_policy`
treats them exactly like trained agents.

- :class:`RandomPolicy`: a uniformly random position each step (seeded).
- :class:`StayPolicy`: never leaves the start.
- :class:`GreedyPolicy`: the position with the highest expected immediate reward under
  a uniform belief over the consistent targets (ties: lowest flat index).
- :class:`OptimalPolicy`: the Bayes-optimal planner, which maximizes the expected return
  under a uniform target given the whole feedback history, solved exactly by dynamic
  programming over beliefs (:class:`BayesPlanner`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicrl import users
from musicrl.envs import EPISODE_STEPS, MAX_STEP_REWARD, EnvConfig, reward_of

BASELINES = ("random", "stay", "greedy", "lookahead", "optimal")
EXACT_UP_TO = 2  # largest d for which the exact programme runs in seconds


@dataclass
class Belief:
    """Per-env planner state: consistent targets, current position, steps taken."""

    consistent: np.ndarray  # (n_envs, n_positions) bool
    position: np.ndarray  # (n_envs,) flat index
    steps: np.ndarray  # (n_envs,)


def read_observations(observation, d: int, state, episode_start) -> tuple[np.ndarray, ...]:
    """GridObs rows as (position index, closer, rating, episode starts) per env."""
    observation = np.atleast_2d(np.asarray(observation))
    position = users.position_to_index(observation[:, :d].astype(np.int64))
    closer = observation[:, d].astype(np.int64)
    rating = observation[:, d + 1].astype(np.int64)
    n = observation.shape[0]
    starts = np.ones(n, bool) if state is None or episode_start is None else np.asarray(episode_start, bool)
    return position, closer, rating, starts


def check_grid_discrete(config: EnvConfig) -> None:
    if config.obs != "GridObs" or config.action != "Discrete":
        raise ValueError(
            f"baselines read GridObs observations and emit Discrete actions; got obs={config.obs!r}, "
            f"action={config.action!r} (their returns do not depend on the observation type)"
        )


class BeliefPolicy:
    """Base class: tracks the consistent targets; subclasses choose actions.

    ``takes_noise``: whether the policy may face a noisy listener. Random and stay use no
    feedback; greedy trusts every answer (the naive baseline the Bayesian filter is measured
    against: once no target is consistent, its choice is position 0); the planners refuse.
    """

    takes_noise = False

    def __init__(self, config: EnvConfig) -> None:
        check_grid_discrete(config)
        if config.noisy and not self.takes_noise:
            raise ValueError("the belief baselines assume a deterministic user (use FilterPolicy for a noisy one); "
                             f"got rating_noise={config.rating_noise}, closer_flip={config.closer_flip}")
        self.config = config
        self.ratings = users.rating_table(config.d, config.preset, config.bands, config.weights)
        self.distances = users.distance_table(config.d, config.weights)
        self.rewards = reward_of(self.ratings, config.reward).astype(np.float64)

    def predict(self, observation, state: Belief | None = None, episode_start=None, deterministic: bool = True):
        position, closer, rating, starts = read_observations(observation, self.config.d, state, episode_start)
        n = len(position)
        if state is None:
            state = Belief(np.ones((n, self.config.n_positions), bool), position.copy(), np.zeros(n, np.int64))
        consistent = self.ratings[:, position].T == rating[:, None]
        moved = (self.distances[:, position] < self.distances[:, state.position]).T == closer[:, None].astype(bool)
        consistent &= np.where(starts[:, None], True, moved & state.consistent)
        steps = np.where(starts, 0, state.steps)
        belief = Belief(consistent, position, steps)
        return self.choose(belief), Belief(consistent, position, steps + 1)

    def choose(self, belief: Belief) -> np.ndarray:
        raise NotImplementedError


class RandomPolicy(BeliefPolicy):
    """A uniformly random position every step, from its own seeded generator."""

    takes_noise = True

    def __init__(self, config: EnvConfig, seed: int = 0) -> None:
        super().__init__(config)
        self.rng = np.random.default_rng(seed)

    def choose(self, belief: Belief) -> np.ndarray:
        return np.asarray(self.rng.integers(0, self.config.n_positions, size=belief.position.shape[0]))


class StayPolicy(BeliefPolicy):
    """Stays at the current position (the start) for the whole episode."""

    takes_noise = True

    def choose(self, belief: Belief) -> np.ndarray:
        return belief.position.copy()


class GreedyPolicy(BeliefPolicy):
    """Highest expected immediate reward over the consistent targets; lowest index on ties."""

    takes_noise = True

    def choose(self, belief: Belief) -> np.ndarray:
        return np.argmax(belief.consistent.astype(np.float64) @ self.rewards, axis=1)


class BayesPlanner:
    """Exact dynamic programme over beliefs for the Bayes-optimal policy.

    A belief is the set ``S`` of targets consistent with the feedback (an int bitmask),
    plus the current position (``closer`` compares against it) and the steps left ``k``.
    With ``W`` the *sum* of optimal returns over the targets in ``S`` (an integer, so no
    float ties), ``W(S, p, k) = max_a sum_o |S_o| r_o + W(S_o, a, k - 1)`` over the
    outcomes ``o = (closer, rating)`` of moving from ``p`` to ``a``. Two exact shortcuts:
    if one position rates 4 for every target in ``S``, staying there is optimal; and an
    action whose bound ``sum_o |S_o| r_o + |S| (k - 1) r_max`` cannot beat the best so
    far is skipped. Beliefs are memoised; the cost grows quickly with ``d`` (see the
    benchmark script).

    With ``reveal_after=m`` the user reveals the target after ``m`` steps (from then on
    every step earns ``r_max``): a relaxed problem whose optimum is an *upper bound* on
    the true optimum, cheap for small ``m`` where the exact programme is out of reach.
    """

    def __init__(self, config: EnvConfig, reveal_after: int | None = None) -> None:
        if reveal_after is not None and not 0 <= reveal_after <= EPISODE_STEPS:
            raise ValueError(f"reveal_after must be None or in 0..{EPISODE_STEPS}, got {reveal_after!r}")
        self.config = config
        self.reveal_after = reveal_after
        self._leaf_steps = -1 if reveal_after is None else EPISODE_STEPS - reveal_after
        self.ratings = users.rating_table(config.d, config.preset, config.bands, config.weights)
        self.distances = users.distance_table(config.d, config.weights)
        n = config.n_positions
        self.n = n
        self.r_max = MAX_STEP_REWARD[config.reward]
        self.step_reward = [int(r) for r in reward_of(np.arange(users.MAX_RATING + 1), config.reward)]
        self.top = self.masks(self.ratings == users.MAX_RATING)
        self._rows: dict[int, list[list[tuple[int, int]]]] = {}
        self.memo: dict[tuple[int, int, int], tuple[int, int]] = {}

    @staticmethod
    def masks(flags: np.ndarray) -> list[int]:
        """Bitmask over targets (axis 0) for each column of a boolean ``(targets, k)`` matrix."""
        packed = np.packbits(flags.T, axis=1, bitorder="little")
        return [int.from_bytes(row.tobytes(), "little") for row in packed]

    def outcomes(self, position: int) -> list[list[tuple[int, int]]]:
        """For each action: the non-empty ``(target mask, reward)`` of every feedback outcome."""
        row = self._rows.get(position)
        if row is None:
            nearer = self.distances < self.distances[:, [position]]
            code = self.ratings.astype(np.int64) * 2 + nearer
            masks = [self.masks(code == c) for c in range(2 * (users.MAX_RATING + 1))]
            row = [
                [(masks[c][a], self.step_reward[c // 2]) for c in range(len(masks)) if masks[c][a]]
                for a in range(self.n)
            ]
            self._rows[position] = row
        return row

    def solve(self, belief: int, position: int, steps_left: int) -> tuple[int, int]:
        """``(W, best action)`` for a belief bitmask, current position and steps left."""
        if steps_left == 0 or belief == 0:
            return 0, position
        key = (belief, position, steps_left)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        size = belief.bit_count()
        ceiling = size * steps_left * self.r_max
        if belief & self.top[position] == belief or steps_left <= self._leaf_steps:
            result = (ceiling, position)
        else:
            result = self._search(belief, position, steps_left, size, ceiling)
        self.memo[key] = result
        return result

    def _search(self, belief: int, position: int, steps_left: int, size: int, ceiling: int) -> tuple[int, int]:
        for a in range(self.n):
            if belief & self.top[a] == belief:
                return ceiling, a
        future = size * (steps_left - 1) * self.r_max
        best, best_action = -1, position
        for a, pairs in enumerate(self.outcomes(position)):
            splits = [(belief & m, r) for m, r in pairs]
            immediate = sum(s.bit_count() * r for s, r in splits if s)
            if immediate + future <= best:
                continue
            total = immediate
            for s, _ in splits:
                if s:
                    total += self.solve(s, a, steps_left - 1)[0]
            if total > best:
                best, best_action = total, a
                if best == ceiling:
                    break
        return best, best_action

    def expected_return(self) -> float:
        """The optimal expected return from the start, over a uniform target."""
        d = self.config.d
        start = int(users.position_to_index(users.start_position(d)))
        by_start_rating = self.masks(self.ratings[:, [start]] == np.arange(users.MAX_RATING + 1))
        return sum(self.solve(belief, start, EPISODE_STEPS)[0] for belief in by_start_rating) / self.n


class LookaheadPolicy(BeliefPolicy):
    """Greedy that also values what a hit is worth: the rest of the episode at ``r_max``.

    Scores position ``a`` by ``E[r(a)] + (k - 1) r_max P(rating(a) = 4)`` with ``k`` the
    steps left: under Bullseye this ranks like greedy, under Rating it stops greedy from
    settling on a rating-3 position when a rating-4 one is worth the search.
    """

    def __init__(self, config: EnvConfig) -> None:
        super().__init__(config)
        self.hits = (self.ratings == users.MAX_RATING).astype(np.float64)

    def choose(self, belief: Belief) -> np.ndarray:
        consistent = belief.consistent.astype(np.float64)
        later = (EPISODE_STEPS - belief.steps - 1)[:, None] * MAX_STEP_REWARD[self.config.reward]
        return np.argmax(consistent @ self.rewards + later * (consistent @ self.hits), axis=1)


class OptimalPolicy(BeliefPolicy):
    """The Bayes-optimal policy, acting on :class:`BayesPlanner`'s exact solution."""

    def __init__(self, config: EnvConfig, planner: BayesPlanner | None = None) -> None:
        super().__init__(config)
        self.planner = planner if planner is not None else BayesPlanner(config)

    def choose(self, belief: Belief) -> np.ndarray:
        actions = []
        bitmasks = self.planner.masks(belief.consistent.T)
        for bits, position, steps in zip(bitmasks, belief.position, belief.steps):
            actions.append(self.planner.solve(bits, int(position), EPISODE_STEPS - int(steps))[1])
        return np.array(actions, dtype=np.int64)


FILTER_UP_TO = 4  # the filter keeps a (targets x positions) rating table: 5**(2d) entries


@dataclass
class Posterior:
    """Per-env filter state: probabilities over targets, current position, steps taken."""

    probabilities: np.ndarray  # (n_envs, n_positions)
    position: np.ndarray
    steps: np.ndarray


def rating_likelihood(p: float) -> np.ndarray:
    """``L[observed, true]``: the env's rating noise (off by one with probability p, kept in 0..4)."""
    top = users.MAX_RATING
    table = np.zeros((top + 1, top + 1))
    for true in range(top + 1):
        table[true, true] += 1 - p
        table[min(true + 1, top), true] += p / 2
        table[max(true - 1, 0), true] += p / 2
    return table


class FilterPolicy:
    """Greedy on the exact Bayesian posterior over targets, for the env's user model.

    The prior is uniform over the positions (or over ``config.targets``, with their
    multiplicity). Each observation multiplies it by the likelihood of the rating seen
    (``rating_noise``) and of the "closer" seen (``closer_flip``; not used at the reset,
    where it is always 0); the policy then proposes the position with the highest expected
    *true* reward. With a noiseless user the posterior is uniform over the consistent
    targets and the policy is :class:`GreedyPolicy` exactly (tested): the yardstick that
    still applies when the Bayes-optimal planner does not.
    """

    def __init__(self, config: EnvConfig) -> None:
        check_grid_discrete(config)
        if config.d > FILTER_UP_TO:
            raise ValueError(f"the filter keeps a 5**d x 5**d rating table: d <= {FILTER_UP_TO}, got d={config.d}")
        self.config = config
        self.ratings = users.rating_table(config.d, config.preset, config.bands, config.weights)
        self.distances = users.distance_table(config.d, config.weights)
        self.rewards = reward_of(self.ratings, config.reward).astype(np.float64)
        self.rating_lik = rating_likelihood(config.rating_noise)
        prior = np.ones(config.n_positions) if config.targets is None else np.bincount(config.targets, minlength=config.n_positions)
        self.prior = prior / prior.sum()

    def predict(self, observation, state: Posterior | None = None, episode_start=None, deterministic: bool = True):
        position, closer, rating, starts = read_observations(observation, self.config.d, state, episode_start)
        n, q = len(position), self.config.closer_flip
        if state is None:
            state = Posterior(np.tile(self.prior, (n, 1)), position.copy(), np.zeros(n, np.int64))
        likelihood = self.rating_lik[rating[:, None], self.ratings[:, position].T]
        moved = (self.distances[:, position] < self.distances[:, state.position]).T == closer[:, None].astype(bool)
        closer_lik = np.where(starts[:, None], 1.0, np.where(moved, 1 - q, q))
        posterior = np.where(starts[:, None], self.prior, state.probabilities) * likelihood * closer_lik
        posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), 1e-300)
        steps = np.where(starts, 0, state.steps)
        scores = posterior @ self.rewards
        best = scores.max(axis=1, keepdims=True)
        action = np.argmax(scores >= best - 1e-9 * np.maximum(np.abs(best), 1.0), axis=1)  # lowest index among ties
        return action, Posterior(posterior, position, steps + 1)


@dataclass
class Consistent:
    """Per-env state of :class:`SampledGreedyPolicy`: the consistent targets (flat indices) and their
    distances to the current position."""

    targets: list[np.ndarray]
    distances: list[np.ndarray]


class SampledGreedyPolicy:
    """Greedy where the rating tables do not fit (up to d = 8), on Discrete or MultiDiscrete actions.

    It keeps, per env, the exact set of targets consistent with the feedback and proposes
    the position with the highest expected immediate reward over a sample of
    ``belief_sample`` consistent targets, among ``candidates`` positions: all of them if
    there are no more than that, else a sample of the consistent targets. With both samples
    covering everything it is :class:`GreedyPolicy` exactly (tested);
    beyond, it is an approximation of it. Seeded.
    """

    def __init__(self, config: EnvConfig, candidates: int = 256, belief_sample: int = 128, seed: int = 0) -> None:
        if config.obs != "GridObs" or config.noisy or config.d > MAX_SAMPLED_D:
            raise ValueError(f"SampledGreedyPolicy reads GridObs from a deterministic user with d <= {MAX_SAMPLED_D}; got "
                             f"obs={config.obs!r}, rating_noise={config.rating_noise}, closer_flip={config.closer_flip}, d={config.d}")
        self.config, self.candidates, self.belief_sample = config, candidates, belief_sample
        self.positions = users.all_positions(config.d).astype(np.int8)
        self.thresholds = users.rating_thresholds(self.positions, config.preset, config.bands, config.weights)
        self.step_reward = reward_of(np.arange(users.MAX_RATING + 1), config.reward).astype(np.float64)
        self.rng = np.random.default_rng(seed)
        self._at_start: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _distances(self, position: int, targets: np.ndarray | None) -> np.ndarray:
        levels = users.index_to_position(position, self.config.d).astype(np.int8)
        chosen = self.positions if targets is None else self.positions[targets]
        return users.manhattan(chosen, levels, self.config.weights).astype(np.int16)

    def _filter(self, rating: int, targets: np.ndarray | None, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The targets (all if None) whose rating of the position at ``distances`` is ``rating``, and those distances."""
        thresholds = self.thresholds if targets is None else self.thresholds[targets]
        agrees = users.rating_from_distance(distances, thresholds) == rating
        indices = np.flatnonzero(agrees) if targets is None else targets[agrees]
        return indices, distances[agrees]

    def predict(self, observation, state: Consistent | None = None, episode_start=None, deterministic: bool = True):
        position, closer, rating, starts = read_observations(observation, self.config.d, state, episode_start)
        n = len(position)
        if state is None:
            state = Consistent([np.zeros(0, np.int64)] * n, [np.zeros(0, np.int16)] * n)
        actions = np.zeros(n, np.int64)
        for i in range(n):
            key = (int(position[i]), int(rating[i]))
            if starts[i]:  # every episode starts at the centre: the first filter depends on the rating only
                if key not in self._at_start:
                    self._at_start[key] = self._filter(key[1], None, self._distances(key[0], None))
                targets, distances = self._at_start[key]
            else:
                now = self._distances(key[0], state.targets[i])
                keep = (now < state.distances[i]) == bool(closer[i])
                targets, distances = self._filter(key[1], state.targets[i][keep], now[keep])
            state.targets[i], state.distances[i] = targets, distances
            actions[i] = self._choose(targets)
        if self.config.action == "MultiDiscrete":
            return users.index_to_position(actions, self.config.d), state
        return actions, state

    def _choose(self, consistent: np.ndarray) -> int:
        if consistent.size <= 1:  # nothing left to learn: stay (or, after contradicting feedback, give up)
            return int(consistent[0]) if consistent.size else 0
        belief = consistent if consistent.size <= self.belief_sample else np.sort(self.rng.choice(consistent, self.belief_sample, replace=False))
        n = len(self.positions)
        if n <= self.candidates:
            candidates = np.arange(n)
        else:
            candidates = consistent if consistent.size <= self.candidates else np.sort(self.rng.choice(consistent, self.candidates, replace=False))
        distances = users.manhattan(self.positions[candidates][:, None, :], self.positions[belief][None, :, :], self.config.weights)
        scores = self.step_reward[users.rating_from_distance(distances, self.thresholds[belief][None])].sum(axis=1)
        return int(candidates[np.argmax(scores)])


MAX_SAMPLED_D = 8  # one consistency flag per position: 5**8 = 390,625 per env


def make_baseline(name: str, config: EnvConfig, seed: int = 0) -> BeliefPolicy:
    """A baseline policy by name: one of :data:`BASELINES`."""
    users.check_choice("baseline", name, BASELINES)
    if name == "random":
        return RandomPolicy(config, seed=seed)
    return {"stay": StayPolicy, "greedy": GreedyPolicy, "lookahead": LookaheadPolicy, "optimal": OptimalPolicy}[name](config)
