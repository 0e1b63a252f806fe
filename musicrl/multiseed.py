"""The fast path: S seeds of one A2C or LSTM-A2C configuration trained in one process.

Stable-Baselines3 stays the reference. Each seed still has its SB3 model, its
``VecNormalize`` and its env, built (or loaded from a checkpoint) exactly as
:func:`musicrl.training.train` builds them; this module only replaces ``model.learn``.
It stacks the S seeds' parameters along a leading dimension and runs the rollout and the
update for all seeds in one batched call per layer (``torch.baddbmm``), so the fixed
cost of a tiny network's forward and backward pass is paid once for S seeds instead of
S times. Every step does what SB3 does, in SB3's order, with each seed's own random
streams (torch sampling, numpy batch shuffling, env targets) carried over from and back
into the SB3 objects, so checkpoints are interchangeable between the two paths.
``tests/test_multiseed.py`` trains both from the same seed and compares the parameters.

It covers the algorithms :mod:`musicrl.algorithms` marks ``fast`` (A2C, LSTM-A2C, GRU-A2C) with Discrete actions or MultiDiscrete ones (one
categorical per feature, the factored policy of the "Beyond the thesis" chapter), with or
without stacked frames. What it does not do: callbacks other than the thesis's curve, other
algorithms, GPU.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack, VecNormalize

from musicrl.agents import AgentConfig
from musicrl.algorithms import ALGORITHMS, FAST
from musicrl.envs import PreferenceSearchVecEnv

CLIP_RANGE = 0.2  # RecurrentPPO's default; with one epoch the ratio stays 1 and the clip never acts


@dataclass
class SeedState:
    """A run's live state, whichever trainer advances it: its SB3 model and env, its curve so far
    (``recent``: the last episodes' returns) and its random streams, taken from the global
    generators when it is built (right after building or loading the model)."""

    model: BaseAlgorithm
    env: VecEnv
    recent: deque
    curve: list[float]
    torch_state: torch.Tensor = field(init=False)
    numpy_state: Any = field(init=False)
    random_state: Any = field(init=False)

    def __post_init__(self) -> None:
        self.capture_global_rng()

    @property
    def normalized(self) -> VecNormalize:
        """The env behind its ``VecNormalize``, as the fast trainers need it (they train normalized configurations only)."""
        if not isinstance(self.env, VecNormalize):
            raise ValueError("the fast trainers train configurations with normalize=True only")
        return self.env

    def capture_global_rng(self) -> None:
        """Take over the global generators as they are now (at construction: right after building or
        loading the model)."""
        self.torch_state = torch.get_rng_state()
        self.numpy_state = np.random.get_state()
        self.random_state = random.getstate()

    def restore_global_rng(self) -> None:
        """Put this seed's streams into the global generators (before saving its checkpoint)."""
        torch.set_rng_state(self.torch_state)
        np.random.set_state(self.numpy_state)
        random.setstate(self.random_state)


class _Tanh(torch.autograd.Function):
    """``torch.tanh`` through numpy's SIMD tanh (within 1 ulp, several times faster on this CPU build)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.from_numpy(np.tanh(x.detach().numpy()))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)  # torch's tanh_backward


def _tanh(x: torch.Tensor) -> torch.Tensor:
    if torch.is_grad_enabled() and x.requires_grad:
        return _Tanh.apply(x)
    return torch.from_numpy(np.tanh(x.numpy()))


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))


class StackedPolicy:
    """The SB3 policy's layers with the seeds stacked along dimension 0."""

    def __init__(self, models: list[BaseAlgorithm], memory: str | None, device: torch.device | None = None,
                 tanh: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        self.models, self.memory = models, memory
        self.tanh = _tanh if tanh is None else tanh  # the device trainer passes torch.tanh
        self.names = [name for name, _ in models[0].policy.named_parameters()]
        with torch.no_grad():
            self.params = {
                name: torch.stack([dict(m.policy.named_parameters())[name].detach() for m in models])
                .to(device).clone().requires_grad_()
                for name in self.names
            }

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.params[name]

    def _mlp(self, x: torch.Tensor, net: str) -> torch.Tensor:
        x = self.tanh(_linear(x, self[f"mlp_extractor.{net}.0.weight"], self[f"mlp_extractor.{net}.0.bias"]))
        return self.tanh(_linear(x, self[f"mlp_extractor.{net}.2.weight"], self[f"mlp_extractor.{net}.2.bias"]))

    def heads(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits and values; with the LSTM (sb3-contrib) the critic does not backpropagate
        into it, with the GRU (ikostrikov) it does."""
        critic_in = latent.detach() if self.memory == "lstm" else latent
        logits = _linear(self._mlp(latent, "policy_net"), self["action_net.weight"], self["action_net.bias"])
        values = _linear(self._mlp(critic_in, "value_net"), self["value_net.weight"], self["value_net.bias"])
        return logits, values.squeeze(-1)

    def lstm_input(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self["lstm_actor.weight_ih_l0"], self["lstm_actor.bias_ih_l0"])

    def lstm_cell(self, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gates = projected + _linear(h, self["lstm_actor.weight_hh_l0"], self["lstm_actor.bias_hh_l0"])
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * self.tanh(g)
        return torch.sigmoid(o) * self.tanh(c), c

    def gru_cell(self, projected: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``torch.nn.GRU``'s step: gates (r, z, n), the reset gate applied to the recurrent part of n."""
        recurrent = _linear(h, self["lstm_actor.weight_hh_l0"], self["lstm_actor.bias_hh_l0"])
        r_x, z_x, n_x = projected.chunk(3, dim=-1)
        r_h, z_h, n_h = recurrent.chunk(3, dim=-1)
        r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
        n = self.tanh(n_x + r * n_h)
        return (1 - z) * n + z * h

    def cell(self, projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the memory; the GRU carries ``c`` unchanged (zeros), as sb3-contrib's states want."""
        return (self.gru_cell(projected, h), c) if self.memory == "gru" else self.lstm_cell(projected, h, c)

    def write_back(self) -> None:
        with torch.no_grad():
            for s, model in enumerate(self.models):
                for name, param in model.policy.named_parameters():
                    param.copy_(self.params[name][s])


def clip_per_seed(policy: StackedPolicy, max_norm: float) -> None:
    """``clip_grad_norm_`` over each seed's parameters (the seeds stacked along dimension 0)."""
    grads = [cast(torch.Tensor, policy[name].grad) for name in policy.names]  # every one set by backward()
    S = grads[0].shape[0]
    norms = torch.stack([g.reshape(S, -1).norm(dim=1) for g in grads]).norm(dim=0)
    coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view(S, *([1] * (g.dim() - 1))))


def _named_state(model: BaseAlgorithm) -> dict[str, dict] | None:
    """The SB3 model's RMSprop state by parameter name, or None before its first step."""
    state = model.policy.optimizer.state
    named = {name: state.get(param) for name, param in model.policy.named_parameters()}
    return {name: dict(value) for name, value in named.items() if value} if all(named.values()) else None


def load_optimizer_state(optimizer: torch.optim.Optimizer, policy: StackedPolicy, capturable: bool = False) -> None:
    """The seeds' SB3 RMSprop states stacked into ``optimizer`` (over ``policy``'s stacked
    parameters), if every seed's optimizer has stepped; ``capturable`` keeps ``step`` on the
    parameters' device, as a CUDA graph needs."""
    found = [_named_state(model) for model in policy.models]
    states = [st for st in found if st is not None]
    if len(states) < len(found):
        return
    for name in policy.names:
        step = states[0][name]["step"].clone()
        optimizer.state[policy[name]] = {
            "step": step.to(policy[name].device) if capturable else step,
            "square_avg": torch.stack([st[name]["square_avg"] for st in states]).to(policy[name].device).clone(),
        }


def write_optimizer_state(optimizer: torch.optim.Optimizer, policy: StackedPolicy) -> None:
    """``optimizer``'s stacked RMSprop state back into each seed's SB3 optimizer (on the CPU)."""
    for s, model in enumerate(policy.models):
        sb3 = model.policy.optimizer
        for name, param in model.policy.named_parameters():
            stacked = optimizer.state[policy[name]]
            sb3.state[param] = {"step": stacked["step"].detach().cpu().clone(),
                                "square_avg": stacked["square_avg"][s].detach().cpu().clone()}


def _normalized_logits(logits: torch.Tensor) -> torch.Tensor:
    return logits - logits.logsumexp(dim=-1, keepdim=True)  # as torch's Categorical(logits=...)


def _entropy(normalized: torch.Tensor) -> torch.Tensor:
    clamped = torch.clamp(normalized, min=torch.finfo(normalized.dtype).min)
    return -(clamped * torch.softmax(normalized, dim=-1)).sum(-1)


def _grouped(logits: torch.Tensor, groups: int) -> torch.Tensor:
    """Logits (..., A) as (..., groups, A / groups): one categorical per feature for MultiDiscrete."""
    return logits if groups == 1 else logits.unflatten(-1, (groups, -1))


def _sample(probs: torch.Tensor, generators: list[torch.Generator], groups: int) -> torch.Tensor:
    """Each seed's actions with its own generator, in SB3's order (feature by feature for MultiDiscrete)."""
    def draw(p: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return torch.multinomial(p.contiguous(), 1, True, generator=g).T[0]
    if groups == 1:
        return torch.stack([draw(probs[s], g) for s, g in enumerate(generators)])
    return torch.stack([torch.stack([draw(probs[s, :, f], g) for f in range(groups)], dim=1)
                        for s, g in enumerate(generators)])


def _log_prob(normalized: torch.Tensor, actions: torch.Tensor, groups: int) -> torch.Tensor:
    chosen = normalized.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return chosen if groups == 1 else chosen.sum(-1)


def unroll(policy: StackedPolicy, obs: torch.Tensor, starts: torch.Tensor, initial: tuple[torch.Tensor, torch.Tensor],
           cut: torch.Tensor | None = None) -> torch.Tensor:
    """The memory over a rollout from its stored state ``initial`` (each (S, E, hidden)): ``obs`` (S, T, E, k),
    ``starts`` (T, S, E); where ``cut`` (T, S, E, 1) is true the state restarts detached (RecurrentPPO's
    split of the batch; the GRU keeps every rollout whole: ``cut=None``). Returns (S, T * E, hidden)."""
    S, T, E, _ = obs.shape
    projected = policy.lstm_input(obs.reshape(S, T * E, -1)).reshape(S, T, E, -1)
    h, c = initial
    outputs = []
    for t in range(T):
        if cut is not None:
            h, c = torch.where(cut[t], h.detach(), h), torch.where(cut[t], c.detach(), c)
        keep = (1.0 - starts[t]).unsqueeze(-1)
        h, c = policy.cell(projected[:, t], keep * h, keep * c)
        outputs.append(h)
    return torch.stack(outputs, dim=1).reshape(S, T * E, -1)


def a2c_loss(policy: StackedPolicy, latent: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor,
             returns: torch.Tensor, old_log_probs: torch.Tensor | None, groups: int,
             agent: AgentConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """SB3's A2C loss of every seed, for both fast trainers: ``latent`` (S, N, features), ``actions``
    (S, N) or (S, N, groups), ``advantages``, ``returns`` and ``old_log_probs`` (S, N). With
    ``old_log_probs`` (the recurrent agents: RecurrentPPO's one epoch) the clipped ratio, else
    ``-advantage x log-probability``. Returns the summed loss and (3, S): policy-gradient, value and
    entropy loss."""
    logits, values = policy.heads(latent)
    normalized = _normalized_logits(_grouped(logits, groups))
    log_prob = _log_prob(normalized, actions, groups)
    entropy = _entropy(normalized)
    entropy_loss = -(entropy if groups == 1 else entropy.sum(-1)).mean(1)
    if old_log_probs is not None:
        ratio = torch.exp(log_prob - old_log_probs)
        clipped = torch.clamp(ratio, 1 - CLIP_RANGE, 1 + CLIP_RANGE)
        policy_loss = -torch.min(advantages * ratio, advantages * clipped).mean(1)
    else:
        policy_loss = -(advantages * log_prob).mean(1)
    value_loss = ((returns - values) ** 2).mean(1)
    loss = policy_loss + agent.ent_coef * entropy_loss + agent.vf_coef * value_loss
    return loss.sum(), torch.stack([policy_loss, value_loss, entropy_loss]).detach()


class _FrameStack:
    """The S seeds' ``VecFrameStack`` buffers as one array (same roll, reset and fill as SB3)."""

    def __init__(self, envs: list[VecNormalize], width: int) -> None:
        self.stacks = [cast(VecFrameStack, env.venv).stacked_obs for env in envs]  # VecNormalize(VecFrameStack(...))
        self.width = width
        self.stacked = np.stack([s.stacked_obs for s in self.stacks])

    def step(self, obs: np.ndarray, dones: np.ndarray) -> np.ndarray:
        self.stacked = np.roll(self.stacked, -self.width, axis=-1)
        self.stacked[dones] = 0
        self.stacked[..., -self.width:] = obs
        return self.stacked

    def write_back(self) -> None:
        for s, stack in enumerate(self.stacks):
            stack.stacked_obs = self.stacked[s].copy()


def _array_statistics(env: VecNormalize) -> RunningMeanStd:
    """The observation statistics of ``env`` (one array: the envs here have Box observations)."""
    assert isinstance(env.obs_rms, RunningMeanStd), "dict observations are not supported"
    return env.obs_rms


def _observation_size(env: PreferenceSearchVecEnv) -> int:
    shape = env.observation_space.shape
    assert shape is not None
    return shape[0]


class _Normalizer:
    """The S seeds' ``VecNormalize`` running statistics as stacked arrays (same formulas)."""

    def __init__(self, envs: list[VecNormalize]) -> None:
        self.envs = envs
        first = envs[0]
        self.gamma, self.epsilon, self.clip_obs, self.clip_reward = first.gamma, first.epsilon, first.clip_obs, first.clip_reward
        obs_rms = [_array_statistics(e) for e in envs]
        self.obs_mean = np.stack([r.mean for r in obs_rms])
        self.obs_var = np.stack([r.var for r in obs_rms])
        self.obs_count = np.array([r.count for r in obs_rms], dtype=np.float64)
        self.ret_mean = np.array([e.ret_rms.mean for e in envs], dtype=np.float64)
        self.ret_var = np.array([e.ret_rms.var for e in envs], dtype=np.float64)
        self.ret_count = np.array([e.ret_rms.count for e in envs], dtype=np.float64)
        self.returns = np.stack([e.returns for e in envs])

    @staticmethod
    def _moments(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``np.mean`` and ``np.var`` over axis 1, the same operations without their overhead."""
        n = np.intp(batch.shape[1])
        mean = np.add.reduce(batch, axis=1, keepdims=True)
        np.true_divide(mean, n, out=mean, casting="unsafe")
        centred = batch - mean
        np.multiply(centred, centred, out=centred)
        var = np.add.reduce(centred, axis=1)
        np.true_divide(var, n, out=var, casting="unsafe")
        return mean[:, 0], var

    @classmethod
    def _update(cls, mean, var, count, batch: np.ndarray):
        (batch_mean, batch_var), batch_count = cls._moments(batch), batch.shape[1]
        shape = (-1,) + (1,) * (mean.ndim - 1)
        delta = batch_mean - mean
        tot_count = count + batch_count
        new_mean = mean + delta * batch_count / tot_count.reshape(shape)
        m_a = var * count.reshape(shape)
        m_b = batch_var * batch_count
        m_2 = m_a + m_b + np.square(delta) * count.reshape(shape) * batch_count / (count + batch_count).reshape(shape)
        return new_mean, m_2 / (count + batch_count).reshape(shape), batch_count + count

    def step(self, obs: np.ndarray, rewards: np.ndarray, dones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.obs_mean, self.obs_var, self.obs_count = self._update(self.obs_mean, self.obs_var, self.obs_count, obs)
        normalized = self.obs(obs)
        self.returns = self.returns * self.gamma + rewards
        self.ret_mean, self.ret_var, self.ret_count = self._update(self.ret_mean, self.ret_var, self.ret_count, self.returns)
        scaled = np.clip(rewards / np.sqrt(self.ret_var[:, None] + self.epsilon), -self.clip_reward, self.clip_reward)
        self.returns[dones] = 0
        return normalized, scaled.astype(np.float32)

    def obs(self, obs: np.ndarray) -> np.ndarray:
        scaled = (obs - self.obs_mean[:, None]) / np.sqrt(self.obs_var[:, None] + self.epsilon)
        return np.clip(scaled, -self.clip_obs, self.clip_obs).astype(np.float32)

    def write_back(self) -> None:
        for s, env in enumerate(self.envs):
            obs_rms = _array_statistics(env)
            obs_rms.mean, obs_rms.var, obs_rms.count = self.obs_mean[s].copy(), self.obs_var[s].copy(), float(self.obs_count[s])
            ret_rms: Any = env.ret_rms  # SB3 annotates its mean as an array; VecNormalize stores numpy scalars here
            ret_rms.mean, ret_rms.var, ret_rms.count = np.float64(self.ret_mean[s]), np.float64(self.ret_var[s]), float(self.ret_count[s])
            env.returns = self.returns[s].copy()


class MultiSeedTrainer:
    """Train the seeds of one configuration together for a number of updates.

    ``train(updates)`` is ``model.learn(updates * n_steps * n_envs)`` for every seed, with
    episodes restarted at its start as :func:`musicrl.training.train` does at checkpoints.
    """

    def __init__(self, agent: AgentConfig, seeds: list[SeedState]) -> None:
        if agent.algorithm not in FAST or seeds[0].model.device.type != "cpu":
            raise ValueError(f"the multi-seed trainer implements {FAST} on the CPU, not {agent.algorithm!r} "
                             f"on {seeds[0].model.device}")
        self.agent, self.seeds = agent, seeds
        self.memory = ALGORITHMS[agent.algorithm].memory
        self.recurrent = self.memory is not None
        self.device = seeds[0].model.device
        space = seeds[0].model.action_space
        self.groups = len(space.nvec) if hasattr(space, "nvec") else 1

    def train(self, updates: int, on_update: Callable[[], None] | None = None) -> np.ndarray:
        """Train every seed ``updates`` updates; returns the losses, shape (updates, 3, seeds):
        policy-gradient, value and entropy loss, as SB3 logs them. ``on_update`` is called
        after each update (progress bars)."""
        seeds, agent = self.seeds, self.agent
        S, E, T = len(seeds), agent.n_envs, agent.n_steps
        policy = StackedPolicy([s.model for s in seeds], self.memory)
        optimizer = self._optimizer(policy)
        generators = [self._generator(s.torch_state) for s in seeds]
        shufflers = [np.random.RandomState() for _ in seeds]
        for rs, seed in zip(shufflers, seeds):
            rs.set_state(seed.numpy_state)
        obs = np.stack([cast(np.ndarray, seed.normalized.reset()) for seed in seeds])  # VecNormalize.reset: as SB3's learn() restarts
        normalizer = _Normalizer([s.normalized for s in seeds])
        bases: list[PreferenceSearchVecEnv] = [s.env.unwrapped for s in seeds]  # type: ignore[misc]
        frames = _FrameStack([s.normalized for s in seeds], _observation_size(bases[0])) if agent.frames > 1 else None
        action_shape = (S, E, self.groups) if self.groups > 1 else (S, E)
        joined = PreferenceSearchVecEnv.concatenate(bases)
        starts = np.ones((S, E), dtype=np.float32)
        episode_returns = np.zeros((S, E), dtype=np.float32)
        hidden = torch.zeros(S, E, agent.hidden, device=self.device) if self.recurrent else None
        state = (hidden, torch.zeros_like(hidden)) if hidden is not None else None
        buffer = {
            "obs": np.zeros((T, S, E, obs.shape[-1]), dtype=np.float32), "actions": np.zeros((T, *action_shape), dtype=np.int64),
            "rewards": np.zeros((T, S, E), dtype=np.float32), "starts": np.zeros((T, S, E), dtype=np.float32),
            "values": np.zeros((T, S, E), dtype=np.float32), "log_probs": np.zeros((T, S, E), dtype=np.float32),
        }
        losses = []
        for _ in range(updates):
            initial = state
            with torch.no_grad():
                for t in range(T):
                    logits, values, state = self._act(policy, obs, starts, state)
                    normalized = _normalized_logits(_grouped(logits, self.groups))
                    actions = _sample(torch.softmax(normalized, dim=-1), generators, self.groups)
                    log_probs = _log_prob(normalized, actions, self.groups)
                    actions_np = actions.cpu().numpy()
                    step = joined.step_arrays(actions_np.reshape(S * E, -1) if self.groups > 1 else actions_np.reshape(-1))
                    raw_obs, raw_rewards, dones = (x.reshape(S, E, *x.shape[1:]) for x in step)
                    if frames is not None:
                        raw_obs = frames.step(raw_obs, dones)
                    episode_returns += raw_rewards
                    new_obs, rewards = normalizer.step(raw_obs, raw_rewards, dones)
                    for s, e in zip(*np.nonzero(dones)):
                        seeds[s].recent.append(float(round(episode_returns[s, e], 6)))
                    episode_returns[dones] = 0
                    for key, value in (("obs", obs), ("actions", actions_np), ("rewards", rewards), ("starts", starts),
                                       ("values", values.cpu().numpy()), ("log_probs", log_probs.cpu().numpy())):
                        buffer[key][t] = value
                    obs, starts = new_obs, dones.astype(np.float32)
                _, last_values, _ = self._act(policy, obs, starts, state)
            for seed in seeds:
                seed.curve.append(float(np.mean(seed.recent)) if seed.recent else float("nan"))
            advantages, returns = self._advantages(buffer, last_values.cpu().numpy(), starts)
            losses.append(self._update(policy, optimizer, buffer, advantages, returns, initial, shufflers))
            if on_update is not None:
                on_update()
        joined.split_into(bases)
        if frames is not None:
            frames.write_back()
        policy.write_back()
        write_optimizer_state(optimizer, policy)
        normalizer.write_back()
        for s, seed in enumerate(seeds):
            seed.torch_state = generators[s].get_state()
            seed.numpy_state = shufflers[s].get_state()
            seed.model.num_timesteps += updates * T * E
            seed.model._n_updates += updates
            seed.model._last_obs = None
        return torch.stack(losses).numpy() if losses else np.zeros((0, 3, S))

    def _generator(self, state: torch.Tensor) -> torch.Generator:
        generator = torch.Generator(device="cpu")
        generator.set_state(state)
        return generator

    def _act(self, policy: StackedPolicy, obs: np.ndarray, starts: np.ndarray, state):
        x = torch.as_tensor(obs, device=self.device)
        if self.recurrent:
            keep = torch.as_tensor(1.0 - starts, device=self.device).unsqueeze(-1)
            h, c = policy.cell(policy.lstm_input(x), keep * state[0], keep * state[1])
            state, x = (h, c), h
        logits, values = policy.heads(x)
        return logits, values, state

    def _advantages(self, buffer: dict, last_values: np.ndarray, dones: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """SB3's ``compute_returns_and_advantage`` with the seeds as an extra axis (lambda = 1)."""
        gamma, gae_lambda = self.agent.gamma, 1.0
        rewards, values, starts = buffer["rewards"], buffer["values"], buffer["starts"]
        advantages = np.zeros_like(rewards)
        last_gae_lam = 0
        for step in reversed(range(len(rewards))):
            if step == len(rewards) - 1:
                next_non_terminal = 1.0 - dones.astype(np.float32)
                next_values = last_values
            else:
                next_non_terminal = 1.0 - starts[step + 1]
                next_values = values[step + 1]
            delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
            last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam
            advantages[step] = last_gae_lam
        return advantages, advantages + values

    def _update(self, policy, optimizer, buffer, advantages, returns, initial, shufflers) -> torch.Tensor:
        agent = self.agent
        T, S, E = buffer["actions"].shape[:3]
        as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), device=self.device)
        obs = as_tensor(buffer["obs"].transpose(1, 0, 2, 3))  # (S, T, E, k)
        actions = as_tensor(np.swapaxes(buffer["actions"], 0, 1)).reshape(S, T * E, *buffer["actions"].shape[3:])
        if self.recurrent:
            # RecurrentPPO's split of the batch (LSTM); the GRU's buffer keeps every rollout whole
            splits = [rs.randint(T * E) for rs in shufflers] if self.memory == "lstm" else [0] * S
            latent = self._unroll(policy, obs, as_tensor(buffer["starts"]), initial, splits)
        else:
            for rs in shufflers:
                rs.permutation(T * E)  # A2C's shuffle: the order only changes the sum's rounding
            latent = obs.reshape(S, T * E, -1)
        adv = as_tensor(advantages.transpose(1, 0, 2)).reshape(S, T * E)
        ret = as_tensor(returns.transpose(1, 0, 2)).reshape(S, T * E)
        old = as_tensor(buffer["log_probs"].transpose(1, 0, 2)).reshape(S, T * E) if self.recurrent else None
        loss, losses = a2c_loss(policy, latent, actions, adv, ret, old, self.groups, agent)
        optimizer.zero_grad()
        loss.backward()
        self._clip(policy)
        optimizer.step()
        return losses

    def _unroll(self, policy, obs, starts, initial, splits) -> torch.Tensor:
        """:func:`unroll`, the state restarting at each seed's RecurrentPPO split point (none for the GRU)."""
        S, T, E, _ = obs.shape
        if not any(split % T for split in splits):
            return unroll(policy, obs, starts, initial)
        cut = torch.zeros(T, S, E, 1, dtype=torch.bool)
        for s, split in enumerate(splits):
            if split % T:
                cut[split % T, s, split // T] = True
        return unroll(policy, obs, starts, initial, cut)

    def _clip(self, policy: StackedPolicy) -> None:
        clip_per_seed(policy, self.agent.max_grad_norm)

    def _optimizer(self, policy: StackedPolicy) -> torch.optim.Optimizer:
        agent = self.agent
        optimizer = torch.optim.RMSprop(
            [policy[name] for name in policy.names], lr=agent.learning_rate, alpha=agent.rms_alpha, eps=agent.rms_eps,
            weight_decay=0,
        )
        load_optimizer_state(optimizer, policy)
        return optimizer
