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
import json
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

from musicrl.agents import AgentConfig, algorithm_class, make_training_env, trained_policy
from musicrl.algorithms import TRAINERS, check_trainer
from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchVecEnv
from musicrl.evaluation import EvalResult, evaluate_policy, pool
from musicrl.store import (
    atomic_folder,
    config_hash,
    read_json_checked,
    results_root,
    write_json_atomic,
)

CURVE_WINDOW = 10
TENSORBOARD_EVERY = 10  # updates between TensorBoard points of the fast path (writing every one costs ~10%)


# TensorBoard tags every trainer writes: the thesis's curve, and each checkpoint's deterministic
# return over every target (mean and std, the thesis's metric).
CURVE_TAG = "rollout/avg10_return"


EVAL_TAGS = ("eval/mean_return", "eval/std_return")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training run; its hash names the run's directory."""

    name: str
    env: EnvConfig
    agent: AgentConfig
    updates: int
    checkpoint_every: int
    seed: int = 0
    trainer: str = "sb3"  # a row of musicrl.algorithms.TRAINERS

    def __post_init__(self) -> None:
        check_trainer(self.trainer, self.env, self.agent)
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

    def __init__(self, recent: deque[float] | None = None, curve: list[float] | None = None, bar: tqdm | None = None,
                 report: Callable[[int], None] | None = None) -> None:
        """Extends ``recent`` (a deque of ``CURVE_WINDOW``) and ``curve`` themselves, a run's own, not copies."""
        super().__init__()
        self.recent: deque[float] = deque(maxlen=CURVE_WINDOW) if recent is None else recent
        self.curve: list[float] = [] if curve is None else curve
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


def _base_env(env: VecEnv) -> PreferenceSearchVecEnv:
    return env.unwrapped  # type: ignore[return-value]


def checkpoint_name(updates: int) -> str:
    return f"u{updates:07d}"


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
    """The device a run trains and loads on: the CPU where its trainer says so (the multi-seed path
    reproduces SB3's CPU random streams), else the agent's ``device``. The run's key never depends on it."""
    return "cpu" if TRAINERS[spec.trainer].cpu else spec.agent.device


def load_model(spec: RunSpec, model_zip: Path, normalizer: VecNormalize | None, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv]:
    """A saved SB3 model on ``env`` (``make_training_env``'s), behind its saved observation
    normalizer if it has one: a checkpoint's and the published weights' one way in."""
    if normalizer is not None:
        normalizer.set_venv(env.venv if isinstance(env, VecNormalize) else env)
        env = normalizer
    return algorithm_class(spec.agent.algorithm).load(model_zip, env=env, device=run_device(spec)), env


PROGRESS_EVERY = 2.0  # seconds between writes of a run's progress file


@dataclass(frozen=True)
class RunFolder:
    """One run's folder, ``<root>/runs/<key>/`` (see the module's docstring): every path in it, and
    what is read from and written to it. No other module spells the layout."""

    spec: RunSpec
    path: Path

    @classmethod
    def of(cls, spec: RunSpec, root: Path | str | None = None) -> RunFolder:
        return cls(spec, Path(root if root is not None else results_root()) / "runs" / spec.key)

    # -- the layout --------------------------------------------------------------------------

    def checkpoint(self, updates: int) -> Path:
        return self.path / "checkpoints" / checkpoint_name(updates)

    def evaluation(self, updates: int) -> Path:
        return self.path / "evals" / f"{checkpoint_name(updates)}.json"

    def tensorboard(self, purpose: str = "") -> Path:
        """SB3's logs (``tb/``), or one purpose's (``tb/eval``, ``tb/curve``, ``tb/<trainer>``)."""
        return self.path / "tb" / purpose

    @property
    def result_file(self) -> Path:
        return self.path / "result.json"

    @property
    def progress_file(self) -> Path:
        return self.path / "progress.json"  # updates done, for a sweep's driver (Ray workers log nothing back)

    def carried_files(self, updates: int) -> list[Path]:
        """What a carried run takes along (:func:`musicrl.publish.carry`): the checkpoint at ``updates``
        and the evaluations up to it, as paths relative to the folder."""
        evaluations = [self.evaluation(u) for u in self.spec.checkpoints if u <= updates and self.evaluation(u).exists()]
        return [p.relative_to(self.path) for p in (self.checkpoint(updates), *evaluations)]

    def adopt(self, other: Path, updates: int) -> None:
        """Move the checkpoint at ``updates`` and the evaluations this folder lacks from ``other``, a
        folder of the same layout (an unpacked carry), into this one."""
        found = RunFolder(self.spec, other)
        for u in self.spec.checkpoints:
            if found.evaluation(u).exists() and not self.evaluation(u).exists():
                self.evaluation(u).parent.mkdir(parents=True, exist_ok=True)
                os.replace(found.evaluation(u), self.evaluation(u))
        self.checkpoint(updates).parent.mkdir(parents=True, exist_ok=True)
        os.replace(found.checkpoint(updates), self.checkpoint(updates))

    # -- checkpoints -------------------------------------------------------------------------

    def has_checkpoint(self, updates: int) -> bool:
        """Whether the checkpoint at ``updates`` is stored complete (its state is written last)."""
        return (self.checkpoint(updates) / "state.pkl").exists()

    def saved(self) -> list[int]:
        """The updates whose checkpoint (weights) is stored here. A run resumed from ``carry/`` has
        only those saved since: the carry holds its last checkpoint, not the earlier ones."""
        return [u for u in self.spec.checkpoints if self.has_checkpoint(u)]

    def latest(self) -> int:
        """The last complete checkpoint (0 if none); leftovers of an interrupted save are removed."""
        for partial in (self.path / "checkpoints").glob(".u*"):
            shutil.rmtree(partial, ignore_errors=True)
        return max(self.saved(), default=0)

    def save_checkpoint(self, updates: int, model: BaseAlgorithm, env: VecEnv, recent: Sequence[float],
                        curve: Sequence[float], wall_time: float) -> None:
        with atomic_run_folder(self.checkpoint(updates)) as tmp:
            model.save(tmp / "model.zip")
            state = {
                "torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate(),
                "envs": _base_env(env).get_rng_state(), "recent": list(recent), "curve": curve,
                "normalizer": env if isinstance(env, VecNormalize) else None, "wall_time": wall_time,
            }
            with open(tmp / "state.pkl", "wb") as handle:
                pickle.dump(state, handle)

    def checkpoint_state(self, updates: int) -> dict[str, Any]:
        """The checkpoint's random states, curve so far and observation normalizer (``state.pkl``)."""
        with open(self.checkpoint(updates) / "state.pkl", "rb") as handle:
            return pickle.load(handle)

    def model_file(self, updates: int) -> Path:
        return self.checkpoint(updates) / "model.zip"

    def load_checkpoint(self, updates: int, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv, dict]:
        """The model, its env and the saved state at ``updates``, the global generators set as saved."""
        state = self.checkpoint_state(updates)
        model, env = load_model(self.spec, self.model_file(updates), state["normalizer"], env)
        # load() reseeds the global generators from the saved seed; the saved states win.
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])
        random.setstate(state["random"])
        _base_env(env).set_rng_state(state["envs"])
        return model, env, state

    # -- evaluations -------------------------------------------------------------------------

    def returns(self, updates: int) -> np.ndarray | None:
        """A checkpoint's stored returns; None if absent or damaged (then set aside, to be recomputed)."""
        def check(payload) -> np.ndarray:
            returns = np.asarray(payload["returns"], dtype=float)
            if returns.ndim != 1 or not len(returns):
                raise ValueError("no returns")
            return returns
        return read_json_checked(self.evaluation(updates), check)

    def stored_returns(self, updates: int) -> np.ndarray:
        found = self.returns(updates)
        if found is None:
            raise RuntimeError(f"{self.path}: checkpoint {updates} has no evaluation; rerun to compute it")
        return found

    def evaluate(self, updates: int, model: BaseAlgorithm, env: VecEnv) -> np.ndarray:
        """The checkpoint's returns on every target (the thesis's protocol), computed once and stored."""
        if (found := self.returns(updates)) is not None:
            return found
        result = evaluate_policy(trained_policy(model, env, self.spec.agent), self.spec.env)
        write_json_atomic(self.evaluation(updates), {"updates": updates, "returns": result.returns.tolist(), **result.summary()})
        step = updates * self.spec.agent.steps_per_update  # the same tags on every path (tb/eval)
        log_scalars(self.tensorboard("eval"), [(EVAL_TAGS[0], float(np.mean(result.returns)), step),
                                               (EVAL_TAGS[1], float(np.std(result.returns)), step)])
        return result.returns

    def evaluate_saved(self) -> int:
        """Evaluate every saved checkpoint whose evaluation is missing (a kill between saving and
        evaluating it); return the update to resume from: the last saved checkpoint before which
        every checkpoint has its evaluation (or 0, to start afresh)."""
        spec = self.spec
        saved, resume = set(self.saved()), 0
        for updates in spec.checkpoints:
            missing = self.returns(updates) is None
            if missing and updates not in saved:
                break
            if missing:
                env = make_training_env(spec.env, spec.agent, spec.seed)
                model, env, _ = self.load_checkpoint(updates, env)
                self.evaluate(updates, model, env)
                env.close()
            if updates in saved:
                resume = updates
        return resume

    # -- the result and the progress ----------------------------------------------------------

    def read_result(self) -> RunResult | None:
        """The finished run's result, or None (unfinished, or a damaged file set aside)."""
        return read_json_checked(self.result_file, RunResult.from_json)

    def write_result(self, result: RunResult) -> None:
        """Written last and atomically: its presence means the run is finished."""
        write_json_atomic(self.result_file, result.to_json())

    def write_progress(self, updates: int) -> None:
        write_json_atomic(self.progress_file, {"updates": updates})

    def progress(self) -> int:
        """Updates done: all of them once finished, else the progress file's count (0 if none)."""
        if self.result_file.exists():
            return self.spec.updates
        try:
            return int(json.loads(self.progress_file.read_text())["updates"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0


_WRITERS: dict[str, Any] = {}


def log_scalars(folder: Path, points: Sequence[tuple[str, float, int]]) -> None:
    """``(tag, value, step)`` points into the TensorBoard log of ``folder``: one writer (one event
    file) per folder for the whole process, opened at its first point (no empty files), flushed
    after each call."""
    if not points:
        return
    key = str(folder)
    if key in _WRITERS and not folder.is_dir():  # the run folder was removed since (a clean restart): a new file
        _WRITERS.pop(key).close()
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


class ProgressFile:
    """Writes the updates done into each run folder's progress file, at most every
    ``PROGRESS_EVERY`` seconds and at every checkpoint; :meth:`RunFolder.progress` reads them."""

    def __init__(self, folders: Sequence[RunFolder], done: int) -> None:
        self.folders, self.updates, self.written = list(folders), done, 0.0

    def add(self, updates: int) -> None:
        self.updates += updates
        if time.monotonic() - self.written >= PROGRESS_EVERY:
            self.write()

    def write(self) -> None:
        for folder in self.folders:
            folder.write_progress(self.updates)
        self.written = time.monotonic()
