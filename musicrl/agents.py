"""The thesis's agents on Stable-Baselines3 / sb3-contrib.

The thesis forked ikostrikov/pytorch-a2c-ppo-acktr-gail; :class:`AgentConfig` holds that
code's defaults, each one set explicitly because SB3's own defaults differ (entropy
coefficient, bootstrapping at truncation). Three algorithms:

- ``A2C``: SB3 ``A2C`` (feed-forward, 64-64 tanh actor and critic).
- ``RecurrentA2C``: SB3 has no recurrent A2C and no GRU. sb3-contrib ``RecurrentPPO``
  with one epoch, one full-batch minibatch, ``gae_lambda=1``, no advantage normalization
  and RMSprop performs the A2C update (the clipped ratio is exactly 1 in the only epoch);
  ``tests/test_agents.py`` checks this on the feed-forward case. The memory is a 64-unit
  LSTM shared by actor and critic, where the thesis had a GRU.
- ``TRPO``: sb3-contrib ``TRPO``, a natural-gradient trust-region method, stands in for
  ACKTR (not in SB3), feed-forward as the thesis's ACKTR runs were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from sb3_contrib import TRPO, RecurrentPPO
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from musicrl.envs import EnvConfig, PreferenceSearchVecEnv
from musicrl.users import check_choice

ALGORITHMS = ("A2C", "RecurrentA2C", "TRPO")


@dataclass(frozen=True)
class AgentConfig:
    """Every hyperparameter of an agent, defaulting to the thesis's code."""

    algorithm: str = "A2C"
    n_steps: int = 20
    n_envs: int = 16
    learning_rate: float = 7e-4
    rms_alpha: float = 0.99
    rms_eps: float = 1e-5
    gamma: float = 0.99
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    normalize: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        for name in ("n_steps", "n_envs", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")

    @property
    def steps_per_update(self) -> int:
        return self.n_steps * self.n_envs

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_training_env(env_config: EnvConfig, agent: AgentConfig, seed: int) -> VecEnv:
    """Batched envs (step limit as terminal), episode logging, then running normalization."""
    env: VecEnv = VecMonitor(PreferenceSearchVecEnv(agent.n_envs, env_config, seed=seed, truncation_as_terminal=True))
    if agent.normalize:
        env = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=agent.gamma)
    return env


def algorithm_class(algorithm: str) -> type[BaseAlgorithm]:
    """The SB3 class behind an algorithm name (for loading checkpoints)."""
    check_choice("algorithm", algorithm, ALGORITHMS)
    return {"A2C": A2C, "RecurrentA2C": RecurrentPPO, "TRPO": TRPO}[algorithm]


def _optimizer(agent: AgentConfig) -> dict[str, Any]:
    return {
        "optimizer_class": torch.optim.RMSprop,
        "optimizer_kwargs": {"alpha": agent.rms_alpha, "eps": agent.rms_eps, "weight_decay": 0},
    }


def _heads(agent: AgentConfig) -> dict[str, Any]:
    return {"net_arch": {"pi": [agent.hidden, agent.hidden], "vf": [agent.hidden, agent.hidden]}, "activation_fn": torch.nn.Tanh}


def ppo_as_a2c_kwargs(agent: AgentConfig) -> dict[str, Any]:
    """PPO settings under which one PPO update is one A2C update."""
    return {
        "n_steps": agent.n_steps,
        "batch_size": agent.steps_per_update,
        "n_epochs": 1,
        "gae_lambda": 1.0,
        "normalize_advantage": False,
        "clip_range_vf": None,
        "target_kl": None,
    }


def make_agent(agent: AgentConfig, env: VecEnv, seed: int, tensorboard_log: str | None = None) -> BaseAlgorithm:
    """Build the configured algorithm on ``env`` with every hyperparameter explicit."""
    common = {
        "learning_rate": agent.learning_rate, "gamma": agent.gamma, "seed": seed,
        "device": agent.device, "tensorboard_log": tensorboard_log, "verbose": 0,
    }
    if agent.algorithm == "A2C":
        return A2C(
            "MlpPolicy", env, n_steps=agent.n_steps, gae_lambda=1.0, ent_coef=agent.ent_coef,
            vf_coef=agent.vf_coef, max_grad_norm=agent.max_grad_norm, rms_prop_eps=agent.rms_eps,
            normalize_advantage=False, policy_kwargs={**_heads(agent), **_optimizer(agent)}, **common,
        )
    if agent.algorithm == "RecurrentA2C":
        policy_kwargs = {
            **_heads(agent), **_optimizer(agent), "lstm_hidden_size": agent.hidden, "n_lstm_layers": 1,
            "shared_lstm": True, "enable_critic_lstm": False,
        }
        return RecurrentPPO(
            "MlpLstmPolicy", env, ent_coef=agent.ent_coef, vf_coef=agent.vf_coef,
            max_grad_norm=agent.max_grad_norm, policy_kwargs=policy_kwargs, **ppo_as_a2c_kwargs(agent), **common,
        )
    return TRPO(
        "MlpPolicy", env, n_steps=agent.n_steps, batch_size=agent.steps_per_update, gae_lambda=1.0,
        normalize_advantage=False, policy_kwargs=_heads(agent), **common,
    )


def make_ppo_as_a2c(agent: AgentConfig, env: VecEnv, seed: int) -> PPO:
    """Feed-forward PPO configured as A2C: the check behind ``RecurrentA2C``."""
    return PPO(
        "MlpPolicy", env, learning_rate=agent.learning_rate, gamma=agent.gamma, ent_coef=agent.ent_coef,
        vf_coef=agent.vf_coef, max_grad_norm=agent.max_grad_norm, seed=seed, device=agent.device,
        policy_kwargs={**_heads(agent), **_optimizer(agent)}, **ppo_as_a2c_kwargs(agent),
    )
