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
- ``GRUA2C``: the thesis's own agent, ikostrikov's recurrent A2C: one GRU (``hidden``
  units) shared by actor and critic with both losses backpropagating into it, then the
  64-64 tanh heads, and truncated BPTT over the whole n-step rollout from the hidden state
  stored at its start (:class:`GRUA2CModel`: ``RecurrentPPO`` configured as A2C as above,
  with :class:`GRUActorCriticPolicy` and a rollout buffer that keeps the rollout whole).
- ``TRPO``: sb3-contrib ``TRPO``, a natural-gradient trust-region method, stands in for
  ACKTR (not in SB3), feed-forward as the thesis's ACKTR runs were.
- ``EntropyTRPO``: the same with the entropy bonus of the thesis's ACKTR (``ent_coef``)
  in the surrogate objective that the step maximizes and the line search checks
  (:class:`EntropyTRPO`); sb3-contrib's TRPO has none, and its policies turn
  deterministic and then collapse (see the 2D chapter).
- ``ACKTR``: the thesis's ACKTR, ikostrikov's A2C with a K-FAC optimizer
  (:mod:`musicrl.acktr`), feed-forward as the thesis's ACKTR runs were.
- ``Wolpertinger``: a continuous proto-action, its ``k_nearest`` grid positions, the
  critic's best of them (:mod:`musicrl.wolpertinger`, on SB3's TD3), for action spaces
  too large to enumerate; feed-forward, so it sees the last ``frames`` observations.

``frames > 1`` stacks the last observations (SB3's ``VecFrameStack``): the memory of a
feed-forward agent. Env actions ``MultiDiscrete`` give the factored policy (one
categorical per feature) to A2C and RecurrentA2C.
"""

from __future__ import annotations

import copy
import importlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sb3_contrib import TRPO, RecurrentPPO
from sb3_contrib.common.recurrent.buffers import RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecMonitor, VecNormalize

from musicrl import algorithms
from musicrl.acktr import ACKTR, KFAC_SETTINGS
from musicrl.envs import EnvConfig, PreferenceSearchVecEnv
from musicrl.users import check_choice
from musicrl.wolpertinger import LevelActions, Wolpertinger, box_to_levels

ALGORITHMS = tuple(algorithms.ALGORITHMS)  # their facts: musicrl.algorithms
GRU_INITS = ("pytorch", "orthogonal")
# Wolpertinger's replay settings (TD3's machinery); one "update" is n_steps x n_envs transitions
# followed by gradient_steps gradient steps (one per 32 transitions at the thesis's 20 x 16).
REPLAY = {"buffer_size": 200_000, "batch_size": 256, "learning_starts": 5_000, "tau": 0.005, "learning_rate": 1e-3,
          "gradient_steps": 10}


# Every float hyperparameter with the values it accepts (checked before any training).
FLOAT_RANGES = (
    ("learning_rate", "> 0", lambda v: v > 0),
    ("rms_alpha", "in [0, 1)", lambda v: 0 <= v < 1),
    ("rms_eps", "> 0", lambda v: v > 0),
    ("gamma", "in (0, 1]", lambda v: 0 < v <= 1),
    ("ent_coef", ">= 0", lambda v: v >= 0),
    ("vf_coef", ">= 0", lambda v: v >= 0),
    ("max_grad_norm", "> 0", lambda v: v > 0),
    ("exploration_noise", ">= 0", lambda v: v >= 0),
)


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
    frames: int = 1  # observations stacked (VecFrameStack): 1 is the thesis's
    k_nearest: int = 8  # Wolpertinger: candidate grid positions per proto-action
    exploration_noise: float = 0.2  # Wolpertinger: std of the proto-action noise while collecting
    gru_init: str = "pytorch"  # GRUA2C: PyTorch's uniform +-1/sqrt(hidden), or ikostrikov's "orthogonal" (biases 0)

    def __post_init__(self) -> None:
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_choice("gru_init", self.gru_init, GRU_INITS)
        if self.gru_init != "pytorch" and self.algorithm != "GRUA2C":
            raise ValueError(f"gru_init={self.gru_init!r} initialises GRUA2C's GRU; {self.algorithm} has none")
        for name in ("n_steps", "n_envs", "hidden", "frames", "k_nearest"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, accepted, ok in FLOAT_RANGES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ValueError(f"{name} must be a number {accepted}, got {value!r}")
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize must be true or false, got {self.normalize!r}")

    @property
    def steps_per_update(self) -> int:
        return self.n_steps * self.n_envs

    def to_dict(self) -> dict[str, Any]:
        """The fields; those added after the thesis's runs only when they differ from their default
        (or apply), so that the published runs keep their hashes."""
        fields = asdict(self)
        if fields["frames"] == 1:
            del fields["frames"]
        if fields["gru_init"] == "pytorch":  # the published runs' initialisation: their keys stay
            del fields["gru_init"]
        if self.algorithm != "Wolpertinger":
            del fields["k_nearest"], fields["exploration_noise"]
        if self.algorithm == "ACKTR":  # K-FAC's SGD replaces RMSprop and the gradient clipping
            del fields["rms_alpha"], fields["rms_eps"], fields["max_grad_norm"], fields["learning_rate"]
            fields["kfac"] = dict(KFAC_SETTINGS)
        return fields


class EntropyTRPO(TRPO):
    """sb3-contrib's TRPO whose surrogate objective adds ``ent_coef`` times the mean entropy.

    One update: the natural-gradient direction of ``mean(A * ratio) + ent_coef * mean(H)``
    by conjugate gradients on the KL's Fisher matrix, the largest step within ``target_kl``,
    a backtracking line search that must keep the KL below ``target_kl`` and improve that
    same objective, then the critic's updates, all as ``TRPO.train`` does them.
    Discrete actions, no sub-sampling.
    """

    def __init__(self, *args: Any, ent_coef: float = 0.01, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entropy_coef = ent_coef

    def _objective(self, data, actions: torch.Tensor, advantages: torch.Tensor):
        distribution = self.policy.get_distribution(data.observations)
        ratio = torch.exp(distribution.log_prob(actions) - data.old_log_prob)
        entropy = distribution.entropy()
        assert entropy is not None  # categorical actions: EntropyTRPO takes Discrete action spaces only
        return (advantages * ratio).mean() + self.entropy_coef * entropy.mean(), distribution

    def train(self) -> None:
        from functools import partial

        from sb3_contrib.common.utils import conjugate_gradient_solver
        from stable_baselines3.common.distributions import kl_divergence

        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        data = next(self.rollout_buffer.get(batch_size=None))
        actions = data.actions.long().flatten()
        advantages = data.advantages
        if self.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        with torch.no_grad():
            old = copy.copy(self.policy.get_distribution(data.observations))
        objective, distribution = self._objective(data, actions, advantages)
        kl = kl_divergence(distribution, old).mean()
        self.policy.optimizer.zero_grad()
        params, objective_grad, kl_grad, shapes = self._compute_actor_grad(kl, objective)
        fisher = partial(self.hessian_vector_product, params, kl_grad)
        direction = conjugate_gradient_solver(fisher, objective_grad, max_iter=self.cg_max_steps)
        step = np.sqrt(2 * self.target_kl / float(torch.matmul(direction, fisher(direction, retain_graph=False))))
        originals = [p.detach().clone() for p in params]
        success, coefficient = False, 1.0
        with torch.no_grad():
            for _ in range(self.line_search_max_iter):
                start = 0
                for param, original, shape in zip(params, originals, shapes):
                    param.data = original + coefficient * step * direction[start:start + param.numel()].view(shape)
                    start += param.numel()
                new_objective, distribution = self._objective(data, actions, advantages)
                kl = kl_divergence(distribution, old).mean()
                if kl < self.target_kl and new_objective > objective:
                    success = True
                    break
                coefficient *= self.line_search_shrinking_factor
            if not success:
                for param, original in zip(params, originals):
                    param.data = original.clone()
        value_losses = []
        for _ in range(self.n_critic_updates):
            for batch in self.rollout_buffer.get(self.batch_size):
                value_loss = torch.nn.functional.mse_loss(batch.returns, self.policy.predict_values(batch.observations).flatten())
                value_losses.append(value_loss.item())
                self.policy.optimizer.zero_grad()
                value_loss.backward()
                for param in params:  # the critic's step must not move the actor (the KL limit)
                    param.grad = None
                self.policy.optimizer.step()
        self._n_updates += 1
        self.logger.record("train/policy_objective", float(new_objective if success else objective))
        self.logger.record("train/kl_divergence_loss", float(kl) if success else 0.0)
        self.logger.record("train/is_line_search_success", float(success))
        self.logger.record("train/entropy", float(distribution.entropy().mean()))
        self.logger.record("train/value_loss", float(np.mean(value_losses)))


class _GRU(torch.nn.GRU):
    """A GRU behind the LSTM interface of sb3-contrib: states ``(h, c)`` in and out, ``c`` unused."""

    def forward(self, x: torch.Tensor, states: tuple[torch.Tensor, torch.Tensor]):  # type: ignore[override]
        hidden, cell = states
        output, hidden = super().forward(x, hidden.contiguous())
        return output, (hidden, cell)


class GRUActorCriticPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's recurrent policy with a GRU shared by actor and critic, the critic's loss
    backpropagating into it (ikostrikov's ``MLPBase(recurrent=True)``; sb3-contrib's shared
    LSTM detaches the critic). Build it with ``shared_lstm=True, enable_critic_lstm=False``."""

    def __init__(self, *args: Any, gru_init: str = "pytorch", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.shared_lstm or self.enable_critic_lstm:
            raise ValueError("GRUActorCriticPolicy shares its GRU: pass shared_lstm=True, enable_critic_lstm=False")
        # sb3-contrib calls the memory through the LSTM interface, which _GRU keeps
        gru = _GRU(self.features_dim, self.lstm_output_dim, num_layers=self.lstm_actor.num_layers)
        if gru_init == "orthogonal":  # ikostrikov's NNBase: orthogonal weights, zero biases
            for name, param in gru.named_parameters():
                if "weight" in name:
                    torch.nn.init.orthogonal_(param)
                else:
                    torch.nn.init.zeros_(param)
        self.lstm_actor = gru  # type: ignore[assignment]
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]

    def _latents(self, obs, states, episode_starts):
        features = self.extract_features(obs)
        latent, states = self._process_sequence(features, states, episode_starts, self.lstm_actor)
        return self.mlp_extractor.forward_actor(latent), self.mlp_extractor.forward_critic(latent), states

    def forward(self, obs, lstm_states, episode_starts, deterministic: bool = False):  # type: ignore[override]
        from sb3_contrib.common.recurrent.type_aliases import RNNStates

        latent_pi, latent_vf, states = self._latents(obs, lstm_states.pi, episode_starts)
        distribution = self._get_action_dist_from_latent(latent_pi)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.action_space.shape))  # type: ignore[misc]
        return actions, self.value_net(latent_vf), log_prob, RNNStates(states, states)

    def predict_values(self, obs, lstm_states, episode_starts):
        return self.value_net(self._latents(obs, lstm_states, episode_starts)[1])

    def evaluate_actions(self, obs, actions, lstm_states, episode_starts):
        latent_pi, latent_vf, _ = self._latents(obs, lstm_states.pi, episode_starts)
        distribution = self._get_action_dist_from_latent(latent_pi)
        return self.value_net(latent_vf), distribution.log_prob(actions), distribution.entropy()


class WholeRolloutBuffer(RecurrentRolloutBuffer):
    """sb3-contrib's recurrent buffer without its random split of the batch: each env's
    rollout stays one sequence from the hidden state stored at its start (ikostrikov's BPTT)."""

    def get(self, batch_size: int | None = None):
        if not self.generator_ready:  # as RecurrentRolloutBuffer.get prepares its arrays
            for name in ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf"):
                self.__dict__[name] = self.__dict__[name].swapaxes(1, 2)
            for name in ("observations", "actions", "values", "log_probs", "advantages", "returns", "hidden_states_pi",
                         "cell_states_pi", "hidden_states_vf", "cell_states_vf", "episode_starts"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        total = self.buffer_size * self.n_envs
        batch_size = total if batch_size is None else batch_size
        env_change = np.zeros((self.buffer_size, self.n_envs))
        env_change[0, :] = 1.0
        env_change = self.swap_and_flatten(env_change)
        indices = np.arange(total)
        for start in range(0, total, batch_size):
            yield self._get_samples(indices[start:start + batch_size], env_change)


class GRUA2CModel(RecurrentPPO):
    """``RecurrentPPO`` with :class:`GRUActorCriticPolicy` and :class:`WholeRolloutBuffer`;
    configured by :func:`make_agent` so that its one update is the A2C update."""

    def _setup_model(self) -> None:
        super()._setup_model()
        self.rollout_buffer = WholeRolloutBuffer(
            self.n_steps, self.observation_space, self.action_space,
            self.rollout_buffer.hidden_state_shape, self.device,  # type: ignore[attr-defined]  # a RecurrentRolloutBuffer here
            gamma=self.gamma, gae_lambda=self.gae_lambda, n_envs=self.n_envs,
        )


def make_training_env(env_config: EnvConfig, agent: AgentConfig, seed: int) -> VecEnv:
    """Batched envs (step limit as terminal), episode logging, Wolpertinger's Box actions, the
    stacked frames, then running normalization."""
    if agent.algorithm == "Wolpertinger" and env_config.action != "MultiDiscrete":
        raise ValueError(f"Wolpertinger picks one level per feature: it needs action='MultiDiscrete', got {env_config.action!r}")
    env: VecEnv = VecMonitor(PreferenceSearchVecEnv(agent.n_envs, env_config, seed=seed, truncation_as_terminal=True))
    if agent.algorithm == "Wolpertinger":
        env = LevelActions(env)
    if agent.frames > 1:
        env = VecFrameStack(env, agent.frames)
    if agent.normalize:
        env = VecNormalize(env, norm_obs=True, norm_reward=True, gamma=agent.gamma)
    return env


def algorithm_class(algorithm: str) -> type[BaseAlgorithm]:
    """The SB3 class behind an algorithm name (for loading checkpoints): its row's ``model``."""
    module, _, name = algorithms.algorithm(algorithm).model.partition(":")
    return getattr(importlib.import_module(module), name)


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
    common: dict[str, Any] = {
        "learning_rate": agent.learning_rate, "gamma": agent.gamma, "seed": seed,
        "device": agent.device, "tensorboard_log": tensorboard_log, "verbose": 0,
    }
    if agent.algorithm == "A2C":
        return A2C(
            "MlpPolicy", env, n_steps=agent.n_steps, gae_lambda=1.0, ent_coef=agent.ent_coef,
            vf_coef=agent.vf_coef, max_grad_norm=agent.max_grad_norm, rms_prop_eps=agent.rms_eps,
            normalize_advantage=False, policy_kwargs={**_heads(agent), **_optimizer(agent)}, **common,
        )
    if agent.algorithm in ("RecurrentA2C", "GRUA2C"):
        policy_kwargs = {
            **_heads(agent), **_optimizer(agent), "lstm_hidden_size": agent.hidden, "n_lstm_layers": 1,
            "shared_lstm": True, "enable_critic_lstm": False,
        }
        gru = agent.algorithm == "GRUA2C"
        if gru and agent.gru_init != "pytorch":
            policy_kwargs["gru_init"] = agent.gru_init
        return (GRUA2CModel if gru else RecurrentPPO)(
            GRUActorCriticPolicy if gru else "MlpLstmPolicy", env, ent_coef=agent.ent_coef, vf_coef=agent.vf_coef,
            max_grad_norm=agent.max_grad_norm, policy_kwargs=policy_kwargs, **ppo_as_a2c_kwargs(agent), **common,
        )
    if agent.algorithm == "Wolpertinger":
        common["learning_rate"] = REPLAY["learning_rate"]
        return Wolpertinger(
            "MlpPolicy", env, k_nearest=agent.k_nearest, exploration_noise=agent.exploration_noise,
            buffer_size=REPLAY["buffer_size"], batch_size=REPLAY["batch_size"], learning_starts=REPLAY["learning_starts"],
            tau=REPLAY["tau"], train_freq=(agent.n_steps, "step"), gradient_steps=REPLAY["gradient_steps"],
            policy_kwargs={"net_arch": [agent.hidden, agent.hidden]}, **common,
        )
    if agent.algorithm == "ACKTR":
        common["learning_rate"] = KFAC_SETTINGS["lr"]
        return ACKTR(
            "MlpPolicy", env, n_steps=agent.n_steps, gae_lambda=1.0, ent_coef=agent.ent_coef, vf_coef=agent.vf_coef,
            normalize_advantage=False, policy_kwargs=_heads(agent), **common,
        )
    trpo: dict[str, Any] = {"ent_coef": agent.ent_coef} if agent.algorithm == "EntropyTRPO" else {}
    return (EntropyTRPO if agent.algorithm == "EntropyTRPO" else TRPO)(
        "MlpPolicy", env, n_steps=agent.n_steps, batch_size=agent.steps_per_update, gae_lambda=1.0,
        normalize_advantage=False, policy_kwargs=_heads(agent), **trpo, **common,
    )


def make_ppo_as_a2c(agent: AgentConfig, env: VecEnv, seed: int) -> PPO:
    """Feed-forward PPO configured as A2C: the check behind ``RecurrentA2C``."""
    return PPO(
        "MlpPolicy", env, learning_rate=agent.learning_rate, gamma=agent.gamma, ent_coef=agent.ent_coef,
        vf_coef=agent.vf_coef, max_grad_norm=agent.max_grad_norm, seed=seed, device=agent.device,
        policy_kwargs={**_heads(agent), **_optimizer(agent)}, **ppo_as_a2c_kwargs(agent),
    )


class NormalizedPolicy:
    """A trained model behind the wrappers it was trained with: the last ``frames`` observations
    stacked as ``VecFrameStack`` does, the observation normalization, and (``level_actions``)
    Wolpertinger's Box actions turned into levels."""

    def __init__(self, model: BaseAlgorithm, normalizer: VecNormalize | None, frames: int = 1,
                 level_actions: bool = False) -> None:
        self.model, self.normalizer, self.frames, self.level_actions = model, normalizer, frames, level_actions

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        inner = state
        if self.frames > 1:
            stack, inner = self._stack(np.asarray(observation, dtype=np.float32), state, episode_start)
            observation = stack
        if self.normalizer is not None:
            observation = self.normalizer.normalize_obs(observation)
        actions, inner = self.model.predict(observation, state=inner, episode_start=episode_start, deterministic=deterministic)
        if self.level_actions:
            actions = box_to_levels(actions)
        return actions, ((stack, inner) if self.frames > 1 else inner)

    def _stack(self, observation: np.ndarray, state, episode_start):
        stack, inner = state if state is not None else (None, None)
        width = observation.shape[-1]
        if stack is None:
            stack = np.zeros((observation.shape[0], width * self.frames), dtype=np.float32)
        starts = np.ones(len(stack), bool) if episode_start is None else np.asarray(episode_start, bool)
        stack = np.where(starts[:, None], 0.0, np.roll(stack, -width, axis=-1)).astype(np.float32)
        stack[:, -width:] = observation
        return stack, inner


def trained_policy(model: BaseAlgorithm, env: VecEnv, agent: AgentConfig) -> NormalizedPolicy:
    """The model as a policy on the bare env, whatever wrappers :func:`make_training_env` added."""
    return NormalizedPolicy(model, env if isinstance(env, VecNormalize) else None, agent.frames,
                            agent.algorithm == "Wolpertinger")
