"""The preference-search environment as torch tensors on any device (the device trainer's env).

:class:`TensorPreferenceSearch` follows the rules of :class:`musicrl.envs.PreferenceSearchVecEnv`
(``environment-spec.md``) for ``num_envs`` envs at once, every tensor on one device, with no
host synchronisation and no data-dependent shapes, so that a step can sit inside a captured
CUDA graph. It draws no random numbers itself: the caller passes the next targets (flat
indices) with every step, and they are used where an episode ends (the trainer draws them
with its counter-based generator; ``tests/test_tensorenv.py`` passes the numpy env's own draws
and checks the two envs step for step).

What it covers: GridObs and BoardObs, Discrete and MultiDiscrete actions, both rewards, both
presets, ``bands``, ``weights`` and ``targets`` lists, up to d = 8. Not covered: noisy listeners
(``rating_noise``, ``closer_flip``); the multi-seed path trains those.
"""

from __future__ import annotations

import torch

from musicrl import users
from musicrl.envs import BULLSEYE_REWARD, EPISODE_STEPS, MAX_ENUMERATED_D, EnvConfig
from musicrl.users import CENTRE_LEVEL, LEVELS, MAX_RATING


def supports(config: EnvConfig) -> bool:
    """Whether :class:`TensorPreferenceSearch` implements this configuration."""
    return not config.noisy and config.d <= MAX_ENUMERATED_D


class TensorPreferenceSearch:
    """``num_envs`` preference-search environments as tensors; see the module docstring.

    Every step updates the state tensors in place (a captured CUDA graph replays on the same memory).

    State (all on ``device``): ``targets`` and ``positions`` (N, d) levels, ``thresholds`` (N, 4),
    ``ratings``, ``closer``, ``steps`` (N,), and ``boards`` (N, 5**d) for BoardObs.
    Episodes last exactly 21 steps and auto-reset, as in the numpy env.
    """

    def __init__(self, config: EnvConfig, num_envs: int, device: torch.device | str = "cpu") -> None:
        if not supports(config):
            raise ValueError(
                f"the tensor environment covers noiseless listeners up to d={MAX_ENUMERATED_D}; got d={config.d}, "
                f"rating_noise={config.rating_noise}, closer_flip={config.closer_flip} (use trainer 'multiseed' or 'sb3')"
            )
        self.config, self.num_envs, self.device = config, num_envs, torch.device(device)
        d, n = config.d, config.n_positions
        long, device = torch.long, self.device
        table = users.rating_thresholds(users.all_positions(d), config.preset, config.bands, config.weights)
        self.threshold_table = torch.as_tensor(table, dtype=torch.float64, device=self.device)  # (5**d, 4)
        self.pool = torch.as_tensor(config.targets if config.targets is not None else range(n), dtype=long, device=device)
        self.weights = torch.as_tensor(config.weights or (1,) * d, dtype=long, device=device)
        self.powers = torch.as_tensor([LEVELS ** k for k in range(d - 1, -1, -1)], dtype=long, device=device)
        self.centre = torch.full((num_envs, d), CENTRE_LEVEL, dtype=long, device=device)
        self.targets = torch.zeros((num_envs, d), dtype=long, device=device)
        self.positions = self.centre.clone()
        self.thresholds = torch.zeros((num_envs, 4), dtype=torch.float64, device=self.device)
        self.ratings = torch.zeros(num_envs, dtype=long, device=device)
        self.closer = torch.zeros(num_envs, dtype=long, device=device)
        self.steps = torch.zeros(num_envs, dtype=long, device=device)
        self.boards = torch.full((num_envs, n), -1.0, device=self.device) if config.obs == "BoardObs" else None

    def draw(self, uniform: torch.Tensor) -> torch.Tensor:
        """Flat target indices from uniforms in (0, 1), shape (N,): uniform over the grid or ``targets``."""
        pick = (uniform * len(self.pool)).long().clamp_(max=len(self.pool) - 1)
        return self.pool[pick]

    def reset(self, targets: torch.Tensor) -> torch.Tensor:
        """Start every env with these targets (flat indices, shape (N,)); returns the observations."""
        self._restart(torch.ones(self.num_envs, dtype=torch.bool, device=self.device), targets)
        return self.observations()

    def step(self, actions: torch.Tensor, next_targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of every env. ``actions``: (N,) flat indices (Discrete) or (N, d) levels
        (MultiDiscrete); ``next_targets``: (N,) flat indices for the envs whose episode ends here.
        Returns observations (after the auto-reset), rewards (float32) and dones (bool), each (N, ...).
        Actions are not range-checked (a check would synchronise with the host)."""
        positions = self._decode(actions)
        previous = self._distance(self.positions)
        distances = self._distance(positions)
        self.closer.copy_(distances < previous)
        self.positions.copy_(positions)
        self.ratings.copy_(self._rating(distances, self.thresholds))
        if self.boards is not None:
            self.boards.scatter_(1, self._index(positions)[:, None], self.ratings[:, None].float())
        self.steps.add_(1)
        rewards = self._reward(self.ratings)
        dones = self.steps >= EPISODE_STEPS
        self._restart(dones, next_targets)
        return self.observations(), rewards, dones

    def observations(self) -> torch.Tensor:
        """GridObs ``[x_1..x_d, closer, rating]`` or the BoardObs board, float32, (N, k)."""
        if self.boards is not None:
            return self.boards.clone()
        return torch.cat([self.positions, self.closer[:, None], self.ratings[:, None]], dim=1).float()

    def _restart(self, where: torch.Tensor, targets: torch.Tensor) -> None:
        """Reset the envs where ``where`` is true, branch-free: every env's fresh state is computed."""
        fresh_targets = index_to_levels(targets, self.powers)
        thresholds = self.threshold_table[targets]
        ratings = self._rating(self._distance(self.centre, fresh_targets), thresholds)
        column = where[:, None]
        self.targets.copy_(torch.where(column, fresh_targets, self.targets))
        self.thresholds.copy_(torch.where(column, thresholds, self.thresholds))
        self.positions.copy_(torch.where(column, self.centre, self.positions))
        self.ratings.copy_(torch.where(where, ratings, self.ratings))
        self.closer.masked_fill_(where, 0)
        self.steps.masked_fill_(where, 0)
        if self.boards is not None:
            fresh = torch.full_like(self.boards, -1.0).scatter(1, self._index(self.centre)[:, None], ratings[:, None].float())
            self.boards.copy_(torch.where(column, fresh, self.boards))

    def _decode(self, actions: torch.Tensor) -> torch.Tensor:
        if self.config.action == "Discrete":
            return index_to_levels(actions.reshape(self.num_envs), self.powers)
        return actions.reshape(self.num_envs, self.config.d).long()

    def _index(self, positions: torch.Tensor) -> torch.Tensor:
        return (positions * self.powers).sum(-1)

    def _distance(self, positions: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        return ((positions - (self.targets if targets is None else targets)).abs() * self.weights).sum(-1)

    @staticmethod
    def _rating(distances: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        return (distances[:, None] <= thresholds).sum(-1)

    def _reward(self, ratings: torch.Tensor) -> torch.Tensor:
        if self.config.reward == "Bullseye":
            return (ratings == MAX_RATING).float() * BULLSEYE_REWARD
        return (ratings * ratings).float()


def index_to_levels(index: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
    """Flat indices (N,) as levels (N, d), row-major as :func:`musicrl.users.index_to_position`."""
    return torch.div(index[:, None], powers, rounding_mode="floor") % LEVELS
