"""A Wolpertinger agent (Dulac-Arnold et al. 2015, the thesis's reference [6]) on SB3's TD3.

For action spaces too large to enumerate, the actor proposes a continuous *proto-action*
(one value per feature), the agent looks up the ``k`` grid positions nearest to it, and
the critic picks the best of them. Training is DDPG/TD3 with that refinement in the
critic's target as well. Written for this project on top of SB3's ``TD3`` (replay buffer,
target networks, optimizers, logging); the k-nearest lookup and the critic's choice are
ours.

The env sees a ``Box(-1, 1, (d,))`` action, which :class:`LevelActions` turns into one
level per feature; the agent only ever emits grid points, so that mapping is exact.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3 import TD3
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from musicrl.users import LEVELS


def levels_to_box(levels: np.ndarray | th.Tensor):
    """Levels 0..4 to the agent's action values -1, -0.5, 0, 0.5, 1."""
    return levels * (2.0 / (LEVELS - 1)) - 1.0


def box_to_levels(actions: np.ndarray) -> np.ndarray:
    """The inverse of :func:`levels_to_box`, rounding to the nearest level."""
    return np.clip(np.rint((np.asarray(actions, dtype=np.float64) + 1.0) * (LEVELS - 1) / 2), 0, LEVELS - 1).astype(np.int64)


class LevelActions(VecEnvWrapper):
    """Expose a MultiDiscrete preference-search VecEnv as ``Box(-1, 1, (d,))``, nearest level per feature."""

    def __init__(self, venv: VecEnv) -> None:
        if not isinstance(venv.action_space, spaces.MultiDiscrete):
            raise ValueError(f"LevelActions wraps an env with MultiDiscrete actions, got {venv.action_space}")
        d = len(venv.action_space.nvec)
        super().__init__(venv, action_space=spaces.Box(-1.0, 1.0, shape=(d,), dtype=np.float32))

    def step_async(self, actions: np.ndarray) -> None:
        self.venv.step_async(box_to_levels(actions))

    def step_wait(self):
        return self.venv.step_wait()

    def reset(self):
        return self.venv.reset()


def k_nearest_levels(proto: th.Tensor, k: int) -> th.Tensor:
    """The ``k`` grid points nearest (Euclidean) to each proto-action, as levels ``(B, k, d)``.

    Exact up to ties: the squared distance is a sum of one term per feature, so merging
    the features one at a time and keeping the ``k`` smallest partial sums loses no point
    of the final ``k`` (costs are non-negative). ``O(d k LEVELS)`` per row, never ``5**d``.
    """
    batch, d = proto.shape
    levels = th.arange(LEVELS, dtype=proto.dtype, device=proto.device)
    per_feature = (levels_to_box(levels)[None, None, :] - proto[:, :, None]) ** 2  # (B, d, LEVELS)
    cost = th.zeros(batch, 1, dtype=proto.dtype, device=proto.device)
    chosen = th.zeros(batch, 1, 0, dtype=th.long, device=proto.device)
    for j in range(d):
        total = (cost[:, :, None] + per_feature[:, j][:, None, :]).reshape(batch, -1)
        keep = min(k, total.shape[1])
        cost, flat = th.topk(total, keep, dim=1, largest=False, sorted=True)
        beam, level = flat // LEVELS, flat % LEVELS
        chosen = th.cat([th.gather(chosen, 1, beam[:, :, None].expand(-1, -1, chosen.shape[2])), level[:, :, None]], dim=2)
    return chosen


class Wolpertinger(TD3):
    """TD3 whose actions are the critic's best of the ``k`` grid points nearest the actor's proto-action.

    ``k_nearest`` is the number of candidates, ``exploration_noise`` the standard deviation
    of the Gaussian noise added to the proto-action while collecting (in the [-1, 1] units
    of the action). Other arguments are TD3's.
    """

    def __init__(self, *args: Any, k_nearest: int = 8, exploration_noise: float = 0.2, **kwargs: Any) -> None:
        if k_nearest < 1:
            raise ValueError(f"k_nearest must be >= 1, got {k_nearest!r}")
        self.k_nearest = k_nearest
        self.exploration_noise = exploration_noise
        super().__init__(*args, **kwargs)

    def _refine(self, observations: th.Tensor, proto: th.Tensor, critic) -> th.Tensor:
        """The candidate with the highest Q1 for each row, in the agent's action units."""
        candidates = levels_to_box(k_nearest_levels(proto, self.k_nearest).to(proto.dtype))  # (B, k, d)
        batch, k, d = candidates.shape
        repeated = observations.repeat_interleave(k, dim=0)
        q = critic.q1_forward(repeated, candidates.reshape(batch * k, d)).reshape(batch, k)
        return candidates[th.arange(batch), q.argmax(dim=1)]

    def _act(self, observation: np.ndarray, noise: float) -> np.ndarray:
        self.policy.set_training_mode(False)
        with th.no_grad():
            obs, _ = self.policy.obs_to_tensor(observation)
            proto = self.actor(obs)
            if noise > 0:
                proto = (proto + noise * th.randn_like(proto)).clamp(-1, 1)
            return self._refine(cast(th.Tensor, obs), proto, self.critic).cpu().numpy()

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = False):
        """Deterministic: the critic's best neighbour of the actor's proto-action (noise only when collecting)."""
        observation = np.asarray(observation, dtype=np.float32)
        single = observation.ndim == len(self.observation_space.shape or ())
        action = self._act(observation[None] if single else observation, 0.0)
        return (action[0] if single else action), state

    def _sample_action(self, learning_starts: int, action_noise=None, n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            levels = np.stack([self.action_space.np_random.integers(0, LEVELS, size=self.action_space.shape)
                               for _ in range(n_envs)])
            action = levels_to_box(levels).astype(np.float32)
        else:
            action = self._act(self._last_obs, self.exploration_noise).astype(np.float32)  # type: ignore[arg-type]
        return action, action

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        actor_losses, critic_losses = [], []
        for _ in range(gradient_steps):
            self._n_updates += 1
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            with th.no_grad():
                next_actions = self._refine(data.next_observations, self.actor_target(data.next_observations), self.critic_target)
                next_q = th.cat(self.critic_target(data.next_observations, next_actions), dim=1).min(dim=1, keepdim=True)[0]
                target = data.rewards + (1 - data.dones) * self.gamma * next_q
            current = self.critic(data.observations, data.actions)
            critic_loss = cast(th.Tensor, sum(F.mse_loss(q, target) for q in current))
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()
            if self._n_updates % self.policy_delay == 0:
                actor_loss = -self.critic.q1_forward(data.observations, self.actor(data.observations)).mean()
                actor_losses.append(actor_loss.item())
                self.actor.optimizer.zero_grad()
                actor_loss.backward()
                self.actor.optimizer.step()
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
