"""One training run on disk: its spec, its result, its folder, checkpoints and evaluations.

One :class:`RunSpec` (environment, agent, number of updates, checkpoint interval, seed)
is one training run, stored under ``<root>/runs/<name>-s<seed>-<hash>/``:

- ``checkpoints/u0001000/``: the model (SB3 zip), the observation/reward normalization
  and every random state (torch, numpy, the envs' generators) after that many updates,
  plus the curve so far; each written to a temporary directory and renamed, so a
  checkpoint is complete or absent.
- ``evals/u0001000.json``: that checkpoint's returns on every target (the thesis's protocol).
- ``tb/``: TensorBoard logs as SB3 writes them.
- ``result.json``: written last; its presence means the run is finished, and a rerun
  only reads it.

Episodes restart at every checkpoint (the partial episodes in flight are dropped), so a
run resumed from a checkpoint continues exactly as the uninterrupted run does: same seed,
same curve, same parameters.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import random
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from musicrl import devicetrainer, multiseed
from musicrl.agents import AgentConfig, algorithm_class, make_training_env
from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchVecEnv
from musicrl.evaluation import EvalResult, evaluate_policy, pool
from musicrl.store import (
    atomic_folder,
    config_hash,
    read_json_checked,
    results_root,
    write_json_atomic,
)
from musicrl.users import check_choice
from musicrl.wolpertinger import box_to_levels

CURVE_WINDOW = 10
TENSORBOARD_EVERY = 10  # updates between TensorBoard points of the fast path (writing every one costs ~10%)


# TensorBoard tags every trainer writes: the thesis's curve, and each checkpoint's deterministic
# return over every target (mean and std, the thesis's metric).
CURVE_TAG = "rollout/avg10_return"


EVAL_TAGS = ("eval/mean_return", "eval/std_return")


TRAINERS = ("sb3", "multiseed", "device")


SEED_GROUPED = ("multiseed", "device")  # trainers that train the seeds of one configuration together


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training run; its hash names the run's directory."""

    name: str
    env: EnvConfig
    agent: AgentConfig
    updates: int
    checkpoint_every: int
    seed: int = 0
    # "multiseed": the CPU fast path (musicrl.multiseed), equal to SB3 bit for bit, seeds of one config trained
    # together; "device": every tensor on a GPU or the CPU (musicrl.devicetrainer), new random streams
    trainer: str = "sb3"

    def __post_init__(self) -> None:
        check_choice("trainer", self.trainer, TRAINERS)
        if self.trainer == "multiseed" and not multiseed.supports(self.env, self.agent):
            raise ValueError(
                f"trainer 'multiseed' implements {multiseed.SUPPORTED} with Discrete or MultiDiscrete actions and "
                f"normalization; use trainer 'sb3' for {self.agent.algorithm} with {self.env.action} actions"
            )
        if self.trainer == "device" and not devicetrainer.supports(self.env, self.agent):
            works = "'multiseed' or 'sb3'" if multiseed.supports(self.env, self.agent) else "'sb3'"
            raise ValueError(
                f"trainer 'device' implements {devicetrainer.COVERS}; use --trainer {works} for "
                f"{self.agent.algorithm} with {self.env.to_dict()} and frames={self.agent.frames}"
            )
        for key in ("updates", "checkpoint_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if self.checkpoint_every * self.agent.n_steps < EPISODE_STEPS:
            raise ValueError(
                f"checkpoint_every x n_steps must be at least one episode ({EPISODE_STEPS} steps), got "
                f"{self.checkpoint_every} x {self.agent.n_steps}: episodes restart at every checkpoint"
            )
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"name must be non-empty without '/', '\\' or spaces, got {self.name!r}")

    @property
    def checkpoints(self) -> list[int]:
        """Update counts at which checkpoints are saved and evaluated; the last is the end."""
        return sorted({*range(self.checkpoint_every, self.updates, self.checkpoint_every), self.updates})

    @property
    def pooled_checkpoints(self) -> list[int]:
        """The checkpoints of the second half of training, pooled like the thesis's metrics."""
        return [u for u in self.checkpoints if 2 * u >= self.updates]

    def to_dict(self) -> dict[str, Any]:
        found = {
            "name": self.name, "env": self.env.to_dict(), "agent": self.agent.to_dict(),
            "updates": self.updates, "checkpoint_every": self.checkpoint_every, "seed": self.seed,
        }
        if self.trainer != "sb3":  # the reference path keeps the hashes it always had
            found["trainer"] = self.trainer
        return found

    @property
    def key(self) -> str:
        return f"{self.name}-s{self.seed}-{config_hash(self.to_dict())}"


@dataclass
class RunResult:
    """A finished run: the curve, each checkpoint's returns, and their final/pooled summaries."""

    spec: dict[str, Any]
    curve: np.ndarray
    checkpoints: list[int]
    returns: list[np.ndarray]
    pooled_from: list[int]
    wall_time: float
    env_steps: int
    versions: dict[str, str] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=lambda: {"path": "sb3", "seeds_together": 1})
    extras: dict[str, Any] = field(default_factory=dict)  # published runs: what needed the weights (see publish)

    @property
    def final(self) -> EvalResult:
        return EvalResult(self.returns[-1], label="final")

    @property
    def pooled(self) -> EvalResult:
        chosen = [r for u, r in zip(self.checkpoints, self.returns) if u in self.pooled_from]
        return pool([EvalResult(r) for r in chosen], label="pooled")

    def to_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec, "curve": [None if np.isnan(v) else round(float(v), 3) for v in self.curve],
            "checkpoints": self.checkpoints, "returns": [r.tolist() for r in self.returns],
            "pooled_from": self.pooled_from, "wall_time": self.wall_time, "env_steps": self.env_steps,
            "versions": self.versions, "trainer": self.trainer, "extras": self.extras, "final": self.final.summary(),
            "pooled": self.pooled.summary(),
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> RunResult:
        return cls(
            spec=payload["spec"], curve=np.array([np.nan if v is None else v for v in payload["curve"]], dtype=float),
            checkpoints=list(payload["checkpoints"]), returns=[np.asarray(r, dtype=float) for r in payload["returns"]],
            pooled_from=list(payload["pooled_from"]), wall_time=payload["wall_time"],
            env_steps=payload["env_steps"], versions=payload["versions"],
            trainer=payload.get("trainer", {"path": "sb3", "seeds_together": 1}), extras=payload.get("extras", {}),
        )


class CurveCallback(BaseCallback):
    """The thesis's curve: after every update, the mean return of the last 10 episodes."""

    def __init__(self, recent: Sequence[float] = (), curve: Sequence[float] = (), bar: tqdm | None = None,
                 report: Callable[[int], None] | None = None) -> None:
        super().__init__()
        self.recent: deque[float] = deque(recent, maxlen=CURVE_WINDOW)
        self.curve: list[float] = list(curve)
        self.bar, self.report = bar, report

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.recent.append(float(info["episode"]["r"]))
        return True

    def _on_rollout_end(self) -> None:
        self.curve.append(float(np.mean(self.recent)) if self.recent else float("nan"))
        if self.report is not None:
            self.report(1)
        if self.bar is not None:
            self.bar.update(1)
            if self.recent:
                self.bar.set_postfix(avg10=f"{self.curve[-1]:.1f}", refresh=False)


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
    """The model as a policy on the bare env, whatever wrappers ``make_training_env`` added."""
    return NormalizedPolicy(model, _normalizer(env), agent.frames, agent.algorithm == "Wolpertinger")


def _base_env(env: VecEnv) -> PreferenceSearchVecEnv:
    return env.unwrapped  # type: ignore[return-value]


def _normalizer(env: VecEnv) -> VecNormalize | None:
    return env if isinstance(env, VecNormalize) else None


def checkpoint_name(updates: int) -> str:
    return f"u{updates:07d}"


def save_checkpoint(
    folder: Path, updates: int, model: BaseAlgorithm, env: VecEnv, callback: CurveCallback, wall_time: float
) -> None:
    with atomic_run_folder(folder / "checkpoints" / checkpoint_name(updates)) as tmp:
        model.save(tmp / "model.zip")
        state = {
            "torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate(),
            "envs": _base_env(env).get_rng_state(), "recent": list(callback.recent), "curve": callback.curve,
            "normalizer": _normalizer(env), "wall_time": wall_time,
        }
        with open(tmp / "state.pkl", "wb") as handle:
            pickle.dump(state, handle)


@contextlib.contextmanager
def atomic_run_folder(final: Path) -> Iterator[Path]:
    """A scratch folder beside ``final`` that replaces it only once the block has written it
    in full; an exception (or a kill) leaves ``final`` as it was."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_folder(final.parent, f".{final.name}.")
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run_device(spec: RunSpec) -> str:
    """The device a run trains and loads on: the CPU on the fast path (it reproduces SB3's CPU
    random streams), else the agent's ``device``. The run's key never depends on it."""
    return "cpu" if spec.trainer in SEED_GROUPED else spec.agent.device


def load_checkpoint(folder: Path, updates: int, spec: RunSpec, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv, dict]:
    checkpoint = folder / "checkpoints" / checkpoint_name(updates)
    with open(checkpoint / "state.pkl", "rb") as handle:
        state = pickle.load(handle)
    if state["normalizer"] is not None:
        normalizer = state["normalizer"]
        normalizer.set_venv(env.venv if isinstance(env, VecNormalize) else env)
        env = normalizer
    model = algorithm_class(spec.agent.algorithm).load(checkpoint / "model.zip", env=env, device=run_device(spec))
    # load() reseeds the global generators from the saved seed; the saved states win.
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    _base_env(env).set_rng_state(state["envs"])
    return model, env, state


def saved_checkpoints(spec: RunSpec, root: Path | str | None = None) -> list[int]:
    """The updates whose checkpoint (weights) is stored locally. A run resumed from ``carry/``
    has only those saved since: the carry holds its last checkpoint, not the earlier ones."""
    return _saved(run_dir(spec, root), spec)


def _saved(folder: Path, spec: RunSpec) -> list[int]:
    return [u for u in spec.checkpoints if (folder / "checkpoints" / checkpoint_name(u) / "state.pkl").exists()]


def latest_checkpoint(folder: Path, spec: RunSpec) -> int:
    """The last complete checkpoint (0 if none); leftovers of an interrupted save are removed."""
    for partial in (folder / "checkpoints").glob(".u*"):
        shutil.rmtree(partial, ignore_errors=True)
    return max(_saved(folder, spec), default=0)


def _eval_path(folder: Path, updates: int) -> Path:
    return folder / "evals" / f"{checkpoint_name(updates)}.json"


def _read_returns(path: Path) -> np.ndarray | None:
    """A checkpoint's stored returns; None if absent or damaged (then set aside, to be recomputed)."""
    def check(payload) -> np.ndarray:
        returns = np.asarray(payload["returns"], dtype=float)
        if returns.ndim != 1 or not len(returns):
            raise ValueError("no returns")
        return returns
    return read_json_checked(path, check)


def evaluate_checkpoint(folder: Path, updates: int, model: BaseAlgorithm, env: VecEnv, spec: RunSpec) -> np.ndarray:
    path = _eval_path(folder, updates)
    if (found := _read_returns(path)) is not None:
        return found
    result = evaluate_policy(trained_policy(model, env, spec.agent), spec.env)
    write_json_atomic(path, {"updates": updates, "returns": result.returns.tolist(), **result.summary()})
    _log_evaluation(folder, updates * spec.agent.steps_per_update, result.returns)
    return result.returns


_WRITERS: dict[str, Any] = {}


def log_scalars(folder: Path, points: Sequence[tuple[str, float, int]]) -> None:
    """``(tag, value, step)`` points into the TensorBoard log of ``folder``: one writer (one event
    file) per folder for the whole process, opened at its first point (no empty files), flushed
    after each call."""
    if not points:
        return
    key = str(folder)
    if key not in _WRITERS:
        from torch.utils.tensorboard import SummaryWriter

        _WRITERS[key] = SummaryWriter(key)
    writer = _WRITERS[key]
    for tag, value, step in points:
        writer.add_scalar(tag, value, step)
    writer.flush()


def log_curve(folder: Path, curve: Sequence[float], start: int, end: int, per_update: int) -> None:
    """The thesis's curve for updates ``start``..``end`` in TensorBoard, every ``TENSORBOARD_EVERY``-th update."""
    log_scalars(folder, [(CURVE_TAG, float(curve[update - 1]), update * per_update) for update in range(start + 1, end + 1)
                         if update % TENSORBOARD_EVERY == 0 and not np.isnan(curve[update - 1])])


def _log_evaluation(folder: Path, step: int, returns: np.ndarray) -> None:
    """The thesis's metric of a checkpoint in TensorBoard (``tb/eval``), the same tags on every path."""
    log_scalars(folder / "tb" / "eval", [(EVAL_TAGS[0], float(np.mean(returns)), step),
                                         (EVAL_TAGS[1], float(np.std(returns)), step)])


def stored_returns(folder: Path, updates: int) -> np.ndarray:
    found = _read_returns(_eval_path(folder, updates))
    if found is None:
        raise RuntimeError(f"{folder}: checkpoint {updates} has no evaluation; rerun to compute it")
    return found


def evaluate_saved(folder: Path, spec: RunSpec) -> int:
    """Evaluate every saved checkpoint whose evaluation is missing (a kill between saving and
    evaluating it); return the update to resume from: the last saved checkpoint before which
    every checkpoint has its evaluation (or 0, to start afresh)."""
    saved, resume = set(_saved(folder, spec)), 0
    for updates in spec.checkpoints:
        missing = _read_returns(_eval_path(folder, updates)) is None
        if missing and updates not in saved:
            break
        if missing:
            env = make_training_env(spec.env, spec.agent, spec.seed)
            model, env, _ = load_checkpoint(folder, updates, spec, env)
            evaluate_checkpoint(folder, updates, model, env, spec)
            env.close()
        if updates in saved:
            resume = updates
    return resume


def run_dir(spec: RunSpec, root: Path | str | None = None) -> Path:
    return Path(root if root is not None else results_root()) / "runs" / spec.key


PROGRESS_FILE = "progress.json"  # updates done, for a sweep's driver (Ray workers log nothing back)


PROGRESS_EVERY = 2.0  # seconds between writes


class ProgressFile:
    """Writes ``{"updates": n}`` into each run folder's ``progress.json``, at most every
    ``PROGRESS_EVERY`` seconds and at every checkpoint; :func:`musicrl.training.sweep_progress` reads them."""

    def __init__(self, folders: Sequence[Path], done: int) -> None:
        self.folders, self.updates, self.written = list(folders), done, 0.0

    def add(self, updates: int) -> None:
        self.updates += updates
        if time.monotonic() - self.written >= PROGRESS_EVERY:
            self.write()

    def write(self) -> None:
        for folder in self.folders:
            write_json_atomic(folder / PROGRESS_FILE, {"updates": self.updates})
        self.written = time.monotonic()
