"""The device-native path: S seeds x E envs of A2C, LSTM-A2C or GRU-A2C with every tensor on one device.

Where :mod:`musicrl.multiseed` reproduces SB3 bit for bit on the CPU (its numpy env and SB3's
random streams), this trainer keeps the environment (:mod:`musicrl.tensorenv`), the running
normalization, the rollout, the sampling and the update on one device (a GPU when there is one,
else the CPU), with no host synchronisation and no data-dependent shapes inside an update, so
that an update can be captured in one CUDA graph. The semantics are the existing agents'
(the same loss, the GRU's BPTT over the rollout from its stored state, the LSTM's split of the
batch, ``VecNormalize``'s formulas in float64, the 21-step limit as terminal, per-seed gradient
clipping, RMSprop); only the random numbers are new, so its runs are new runs (trainer
``"device"``, keys of their own), compared with the published ones statistically.

**Random numbers.** A counter-based generator: every uniform is a hash of (the run's seed,
the update's number, a stream, an index), so a seed's numbers do not depend on its
batch-mates, on the device, or on where training was interrupted; resuming from a checkpoint
continues exactly. Actions and new targets are drawn by inversion (one uniform per draw).

Like the multi-seed path it trains SB3 objects: each seed's SB3 model, ``VecNormalize`` and
curve are read at the start of :meth:`DeviceTrainer.train` and written back at its end, so
checkpoints, evaluation, carry and publishing are those of every other run.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from musicrl import tensorenv
from musicrl.agents import AgentConfig
from musicrl.algorithms import ALGORITHMS, check_trainer
from musicrl.envs import EnvConfig
from musicrl.multiseed import (
    SeedState,
    StackedPolicy,
    _grouped,
    a2c_loss,
    clip_per_seed,
    load_optimizer_state,
    unroll,
    write_optimizer_state,
)

DEVICE_ENV = "MUSICRL_DEVICE"  # e.g. "cpu", "cuda", "cuda:1"; default: the first GPU if there is one
COMPILE_ENV = "MUSICRL_COMPILE"  # "1": torch.compile the rollout step and the loss (a minute or two of compiling first)
GRAPH_ENV = "MUSICRL_CUDA_GRAPH"  # "1": replay each update as one captured CUDA graph (CUDA only)
WINDOW = 10  # the curve's window of recent episodes (runfiles.CURVE_WINDOW)
WARMUP = 3  # eager updates before a CUDA graph is captured (they are real updates)


def training_device(requested: str | None = None) -> torch.device:
    """The device to train on: ``requested``, else ``$MUSICRL_DEVICE``, else the first CUDA GPU, else the CPU.
    Never part of a run's key."""
    name = requested or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r} (from {'the argument' if requested else DEVICE_ENV}); "
                         "accepted: 'cpu', 'cuda', 'cuda:<index>'") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but this torch sees no CUDA GPU; use 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not supported; accepted: 'cpu', 'cuda', 'cuda:<index>'")
    return device


def describe(device: torch.device) -> str:
    """The device in words, for the run's record (not its key)."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return "cpu"


_MASK = 0xFFFFFFFF
_MULTIPLIER = 0x45D9F3B  # < 2**27, so a 32-bit value times it stays inside int64


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (two multiply-xorshift rounds) on int64 tensors."""
    x = (((x >> 16) ^ x) * _MULTIPLIER) & _MASK
    x = (((x >> 16) ^ x) * _MULTIPLIER) & _MASK
    return (x >> 16) ^ x


def counter_uniform(keys: torch.Tensor, counter: torch.Tensor, stream: int, offsets: torch.Tensor) -> torch.Tensor:
    """Uniforms in (0, 1), shape (S, n), float32: entry (s, i) is a hash of ``keys[s]`` (S,),
    ``counter`` (a 0-d int64 tensor), ``stream`` and ``offsets[i]`` (n,), so each row depends on
    its own key only: (k + 1/2) / 2**23 for a 23-bit k, exact in float32, never 0 or 1."""
    base = _mix(_mix(_mix(keys & _MASK) ^ (counter & _MASK)) ^ stream)
    bits = _mix(base[:, None] ^ offsets)
    return ((bits >> 9).float() + 0.5) * 2.0**-23


@functools.cache
def _compiled(function: Callable) -> Callable:
    """One compiled version per function for the process, so that a new trainer (every checkpoint)
    reuses the compiled code instead of compiling again."""
    return torch.compile(function, dynamic=False)


class _Normalizer:
    """The S seeds' ``VecNormalize`` statistics as float64 tensors on the device (SB3's formulas)."""

    def __init__(self, envs: list[VecNormalize], device: torch.device) -> None:
        first = envs[0]
        self.gamma, self.epsilon, self.clip_obs, self.clip_reward = first.gamma, first.epsilon, first.clip_obs, first.clip_reward
        obs = [cast(RunningMeanStd, e.obs_rms) for e in envs]  # one Box observation: not a dict of them
        f64 = torch.float64
        self.obs_mean = torch.as_tensor(np.stack([o.mean for o in obs]), dtype=f64, device=device)
        self.obs_var = torch.as_tensor(np.stack([o.var for o in obs]), dtype=f64, device=device)
        self.obs_count = torch.as_tensor([o.count for o in obs], dtype=f64, device=device)
        self.ret_mean = torch.as_tensor([float(e.ret_rms.mean) for e in envs], dtype=f64, device=device)
        self.ret_var = torch.as_tensor([float(e.ret_rms.var) for e in envs], dtype=f64, device=device)
        self.ret_count = torch.as_tensor([e.ret_rms.count for e in envs], dtype=f64, device=device)
        self.returns = torch.zeros((len(envs), first.num_envs), dtype=f64, device=device)

    @staticmethod
    def _update(mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor, batch: torch.Tensor) -> None:
        """``RunningMeanStd.update`` over dim 1 of ``batch`` (S, E, ...), in place."""
        batch_mean, batch_var, n = batch.mean(1), batch.var(1, unbiased=False), batch.shape[1]
        shape = (-1,) + (1,) * (mean.dim() - 1)
        total = (count + n).reshape(shape)
        delta = batch_mean - mean
        m_2 = var * count.reshape(shape) + batch_var * n + delta.square() * count.reshape(shape) * n / total
        mean.add_(delta * n / total)
        var.copy_(m_2 / total)
        count.add_(n)

    def update_obs(self, raw: torch.Tensor) -> None:
        self._update(self.obs_mean, self.obs_var, self.obs_count, raw.double())

    def obs(self, raw: torch.Tensor) -> torch.Tensor:
        scaled = (raw.double() - self.obs_mean[:, None]) / torch.sqrt(self.obs_var[:, None] + self.epsilon)
        return scaled.clamp(-self.clip_obs, self.clip_obs).float()

    def step(self, raw: torch.Tensor, rewards: torch.Tensor, dones: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``VecNormalize.step_wait``: update the statistics, return normalized observations and rewards."""
        self.update_obs(raw)
        normalized = self.obs(raw)
        self.returns.copy_(self.returns * self.gamma + rewards)
        self._update(self.ret_mean, self.ret_var, self.ret_count, self.returns)
        scaled = (rewards / torch.sqrt(self.ret_var[:, None] + self.epsilon)).clamp(-self.clip_reward, self.clip_reward)
        self.returns.masked_fill_(dones, 0.0)
        return normalized, scaled.float()

    def write_back(self, envs: list[VecNormalize]) -> None:
        for s, env in enumerate(envs):
            obs = cast(RunningMeanStd, env.obs_rms)
            obs.mean, obs.var = self.obs_mean[s].cpu().numpy().copy(), self.obs_var[s].cpu().numpy().copy()
            obs.count = float(self.obs_count[s])
            env.ret_rms.mean = np.asarray(self.ret_mean[s].item(), dtype=np.float64)  # SB3 keeps 0-d arrays here
            env.ret_rms.var = np.asarray(self.ret_var[s].item(), dtype=np.float64)
            env.ret_rms.count = float(self.ret_count[s])
            env.returns = np.zeros(env.num_envs)  # episodes restart with the next train() (VecNormalize.reset)


class DeviceTrainer:
    """Train the seeds of one configuration together on one device, for a number of updates.

    ``train(updates)`` has the contract of :meth:`musicrl.multiseed.MultiSeedTrainer.train`
    (episodes restart at its start; losses returned as (updates, 3, seeds)). ``graph=True``
    captures one update in a CUDA graph after ``WARMUP`` eager updates (CUDA only).
    """

    STREAM_RESET, STREAM_UPDATE = 0, 1  # the targets at the start of train(); every draw of an update

    def __init__(self, agent: AgentConfig, seeds: list[SeedState], device: torch.device | str | None = None,
                 graph: bool | None = None, compile: bool | None = None) -> None:
        config: EnvConfig = seeds[0].env.unwrapped.config  # type: ignore[attr-defined]
        check_trainer("device", config, agent)
        self.agent, self.seeds, self.config = agent, seeds, config
        self.device = training_device(str(device) if device is not None else None)
        graph = os.environ.get(GRAPH_ENV) == "1" if graph is None else graph
        if graph and self.device.type != "cuda":
            raise ValueError(f"--cuda-graph (or {GRAPH_ENV}=1) replays CUDA graphs and needs a CUDA device; the device is "
                             f"{self.device} (--device cuda, or leave --cuda-graph out)")
        self.graph = graph
        self.compile = os.environ.get(COMPILE_ENV) == "1" if compile is None else compile
        if self.compile:
            self._step = _compiled(type(self)._step).__get__(self)  # type: ignore[method-assign]
            self._loss = _compiled(type(self)._loss).__get__(self)  # type: ignore[method-assign]
        self.memory = ALGORITHMS[agent.algorithm].memory
        space = seeds[0].model.action_space
        self.groups = len(space.nvec) if hasattr(space, "nvec") else 1

    # -- the state of one call to train() ------------------------------------------------------

    def _open(self) -> None:
        seeds, agent, device = self.seeds, self.agent, self.device
        S, E = len(seeds), agent.n_envs
        self.policy = StackedPolicy([s.model for s in seeds], self.memory, device=device, tanh=torch.tanh)
        self.optimizer = self._optimizer()
        self.env = tensorenv.TensorPreferenceSearch(self.config, S * E, device)
        self.normalizer = _Normalizer([s.normalized for s in seeds], device)
        long = torch.long
        self.keys = torch.as_tensor([int(s.model.seed or 0) for s in seeds], dtype=long, device=device)
        self.counter = torch.tensor(int(seeds[0].model._n_updates), dtype=long, device=device)
        T = agent.n_steps
        self.layout = (T * E * self.groups, T * E, 1)  # an update's uniforms: actions, targets, the LSTM's split
        self.offsets = torch.arange(sum(self.layout), dtype=long, device=device)
        self.ring = torch.zeros((S, WINDOW + 1), device=device)  # the last column takes the writes that are dropped
        self.ring_count = torch.as_tensor([len(s.recent) for s in seeds], dtype=long, device=device)
        for s, seed in enumerate(seeds):
            if seed.recent:
                self.ring[s, :len(seed.recent)] = torch.as_tensor(list(seed.recent), device=device)
        reset = counter_uniform(self.keys, self.counter, self.STREAM_RESET, self.offsets[:E])
        raw = self.env.reset(self.env.draw(reset.reshape(-1))).reshape(S, E, -1)
        self.normalizer.update_obs(raw)  # VecNormalize.reset, as SB3's learn() restarts episodes
        self.obs = self.normalizer.obs(raw)
        self.starts = torch.ones((S, E), device=device)
        self.episode_returns = torch.zeros((S, E), device=device)
        shape = (S, E, agent.hidden)
        self.hidden = (torch.zeros(shape, device=device), torch.zeros(shape, device=device))

    def _draws(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every uniform one update uses, drawn at once: (T, S, E, groups) for the actions, (T, S, E)
        for new targets, (S,) for the LSTM's split point."""
        S, E, T = len(self.seeds), self.agent.n_envs, self.agent.n_steps
        actions, targets, split = counter_uniform(self.keys, self.counter, self.STREAM_UPDATE, self.offsets).split(self.layout, 1)
        return (actions.reshape(S, T, E, self.groups).transpose(0, 1), targets.reshape(S, T, E).transpose(0, 1), split[:, 0])

    def _optimizer(self) -> torch.optim.Optimizer:
        agent, policy = self.agent, self.policy
        optimizer = torch.optim.RMSprop([policy[name] for name in policy.names], lr=agent.learning_rate, alpha=agent.rms_alpha,
                                        eps=agent.rms_eps, weight_decay=0, capturable=self.graph)
        load_optimizer_state(optimizer, policy, capturable=self.graph)
        return optimizer

    # -- one update: rollout, returns, loss, step (no host synchronisation) ----------------------

    def _act(self, obs: torch.Tensor, starts: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]):
        x = obs
        if self.memory is not None:
            keep = (1.0 - starts).unsqueeze(-1)
            hidden = self.policy.cell(self.policy.lstm_input(x), keep * hidden[0], keep * hidden[1])
            x = hidden[0]
        logits, values = self.policy.heads(x)
        return logits, values, hidden

    def _rollout(self) -> dict[str, Any]:
        obs, starts, hidden = self.obs, self.starts, self.hidden
        initial = (hidden[0].clone(), hidden[1].clone())  # self.hidden is overwritten in place below
        action_draws, target_draws, split_draw = self._draws()
        buffer: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "actions", "rewards", "starts", "values", "log_probs")}
        with torch.no_grad():
            for t in range(self.agent.n_steps):
                step = {**self._step(obs, starts, hidden, action_draws[t], target_draws[t]), "obs": obs, "starts": starts}
                for key in buffer:
                    buffer[key].append(step[key])
                obs, starts, hidden = step["next_obs"], step["dones"].float(), step["hidden"]
            _, last_values, _ = self._act(obs, starts, hidden)
        rollout: dict[str, Any] = {k: torch.stack(v) for k, v in buffer.items()}  # (T, S, E, ...)
        rollout["initial"], rollout["split"] = initial, split_draw
        rollout["last_values"], rollout["last_dones"] = last_values, starts
        self.obs.copy_(obs)
        self.starts.copy_(starts)
        self.hidden[0].copy_(hidden[0])
        self.hidden[1].copy_(hidden[1])
        return rollout

    def _step(self, obs: torch.Tensor, starts: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor],
              action_draws: torch.Tensor, target_draws: torch.Tensor) -> dict[str, Any]:
        """One step of the rollout: act, step the envs, count finished episodes, normalize."""
        S, E = starts.shape
        logits, values, hidden = self._act(obs, starts, hidden)
        actions, log_probs = self._sample(_grouped(logits, self.groups), action_draws)
        flat = actions.reshape(S * E, self.groups) if self.groups > 1 else actions.reshape(-1)
        raw, raw_rewards, dones = self.env.step(flat, self.env.draw(target_draws.reshape(-1)))
        raw, raw_rewards, dones = raw.reshape(S, E, -1), raw_rewards.reshape(S, E), dones.reshape(S, E)
        self.episode_returns.add_(raw_rewards)
        self._record(dones)
        self.episode_returns.masked_fill_(dones, 0.0)
        next_obs, rewards = self.normalizer.step(raw, raw_rewards, dones)
        return {"next_obs": next_obs, "dones": dones, "hidden": hidden, "actions": actions, "rewards": rewards,
                "values": values, "log_probs": log_probs}

    def _sample(self, logits: torch.Tensor, uniform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions by inversion of each categorical's CDF (one uniform per draw, as ``torch.multinomial``;
        ``uniform`` (S, E, groups)) and their log-probabilities (summed over the features for MultiDiscrete)."""
        top = logits.amax(-1, keepdim=True)
        weights = torch.exp(logits - top)
        cdf = weights.cumsum(-1)
        total = cdf[..., -1:]
        uniform = uniform.reshape(total.shape)
        actions = torch.searchsorted(cdf, uniform * total, right=True).clamp_(max=logits.shape[-1] - 1)
        chosen = logits.gather(-1, actions) - top - torch.log(total)
        actions, chosen = actions.squeeze(-1), chosen.squeeze(-1)
        return actions, (chosen if self.groups == 1 else chosen.sum(-1))

    def _record(self, dones: torch.Tensor) -> None:
        """Append the finished episodes' returns to each seed's window, in env order (SB3's deque)."""
        counts = dones.long()
        order = counts.cumsum(1) - 1
        total = counts.sum(1, keepdim=True)
        kept = dones & (total - order <= WINDOW)  # of more than WINDOW at once, only the last WINDOW count
        slots = torch.where(kept, (self.ring_count[:, None] + order) % WINDOW, WINDOW)
        self.ring.scatter_(1, slots, self.episode_returns)
        self.ring_count.add_(total[:, 0])

    def _curve_point(self) -> torch.Tensor:
        filled = self.ring_count.clamp(max=WINDOW)
        mean = self.ring[:, :WINDOW].sum(1) / filled.clamp(min=1)
        return torch.where(filled > 0, mean, torch.nan)

    def _advantages(self, rollout: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """SB3's ``compute_returns_and_advantage`` (lambda = 1), seeds as an extra axis."""
        gamma = self.agent.gamma
        rewards, values, starts = rollout["rewards"], rollout["values"], rollout["starts"]
        T = rewards.shape[0]
        advantages, last = [], torch.zeros_like(rewards[0])
        for step in reversed(range(T)):
            if step == T - 1:
                next_non_terminal, next_values = 1.0 - rollout["last_dones"], rollout["last_values"]
            else:
                next_non_terminal, next_values = 1.0 - starts[step + 1], values[step + 1]
            delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
            last = delta + gamma * next_non_terminal * last
            advantages.append(last)
        advantage = torch.stack(advantages[::-1])
        return advantage, advantage + values

    def _cut(self, rollout: dict[str, Any]) -> torch.Tensor | None:
        """Where the LSTM's state restarts (T, S, E, 1): RecurrentPPO's random split point, drawn per
        seed, as a mask (no data-dependent shapes); None for the GRU, which keeps the rollout whole."""
        if self.memory != "lstm":
            return None
        T, S, E = rollout["starts"].shape
        split = (rollout["split"] * (T * E)).long().clamp_(max=T * E - 1)
        steps = torch.arange(T, device=self.device)[:, None, None]
        envs = torch.arange(E, device=self.device)[None, None, :]
        at = (split % T)[None, :, None]
        return ((steps == at) & (envs == (split // T)[None, :, None]) & (at != 0)).unsqueeze(-1)

    def _loss(self, rollout: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The summed loss of every seed, and (3, S): policy-gradient, value and entropy loss (:func:`musicrl.multiseed.a2c_loss`)."""
        T, S, E = rollout["rewards"].shape
        advantages, returns = self._advantages(rollout)
        per_seed = lambda x: x.transpose(0, 1).reshape(S, T * E, *x.shape[3:])
        if self.memory is not None:
            obs = rollout["obs"].transpose(0, 1)  # (S, T, E, k)
            latent = unroll(self.policy, obs, rollout["starts"], rollout["initial"], self._cut(rollout))
        else:
            latent = per_seed(rollout["obs"])
        old = per_seed(rollout["log_probs"]) if self.memory is not None else None
        return a2c_loss(self.policy, latent, per_seed(rollout["actions"]), per_seed(advantages), per_seed(returns), old,
                        self.groups, self.agent)

    def _update(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of every seed; returns its losses (3, S) and curve point (S,)."""
        rollout = self._rollout()
        curve = self._curve_point()
        loss, losses = self._loss(rollout)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_per_seed(self.policy, self.agent.max_grad_norm)
        self.optimizer.step()
        self.counter.add_(1)
        return losses, curve

    # -- the loop and the write-back ------------------------------------------------------------

    def train(self, updates: int, on_update: Callable[[], None] | None = None) -> np.ndarray:
        """Train every seed ``updates`` updates; returns the losses, shape (updates, 3, seeds)."""
        self._open()
        losses, curve = [], []
        step = self._update
        # before a capture, the eager updates run on a side stream (PyTorch's whole-network capture recipe)
        side = torch.cuda.Stream(self.device) if self.graph else None
        if side is not None:
            side.wait_stream(torch.cuda.current_stream(self.device))
        for k in range(updates):
            if side is not None and k == WARMUP:
                torch.cuda.current_stream(self.device).wait_stream(side)
                step = self._capture()
            with torch.cuda.stream(side) if side is not None and k < WARMUP else contextlib.nullcontext():
                out_losses, out_curve = step()
                losses.append(out_losses.clone())
                curve.append(out_curve.clone())
            if on_update is not None:
                on_update()
        if side is not None:
            torch.cuda.current_stream(self.device).wait_stream(side)
        self._write_back(updates, torch.stack(curve).cpu().numpy() if curve else np.zeros((0, len(self.seeds))))
        return torch.stack(losses).cpu().numpy() if losses else np.zeros((0, 3, len(self.seeds)))

    def _capture(self) -> Callable[[], tuple[torch.Tensor, torch.Tensor]]:
        """One update recorded as a CUDA graph (the state tensors are updated in place), replayed per call."""
        torch.cuda.synchronize(self.device)
        graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            outputs = self._update()

        def replay() -> tuple[torch.Tensor, torch.Tensor]:
            graph.replay()
            return outputs
        return replay

    def _write_back(self, updates: int, curve: np.ndarray) -> None:
        seeds, T, E = self.seeds, self.agent.n_steps, self.agent.n_envs
        self.policy.write_back()
        write_optimizer_state(self.optimizer, self.policy)
        self.normalizer.write_back([s.normalized for s in seeds])
        ring, counts = self.ring.cpu().numpy(), self.ring_count.cpu().numpy()
        for s, seed in enumerate(seeds):
            seed.recent.clear()
            seed.recent.extend(float(ring[s, j % WINDOW]) for j in range(max(0, counts[s] - WINDOW), counts[s]))
            seed.curve.extend(float(v) for v in curve[:, s])
            seed.model.num_timesteps += updates * T * E
            seed.model._n_updates += updates
            seed.model._last_obs = None
