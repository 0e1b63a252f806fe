"""Training runs: the thesis's curve, checkpoints, exhaustive evaluation, resume, sweeps.

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

A run too long for one working session is carried over: :func:`carry` packs its last
checkpoint and evaluations into ``carry/<key>.tar.gz`` (weights included, to be committed),
and the next :func:`train` of that run on any machine resumes from it. :func:`publish`
removes the carried file once the run has finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import shutil
import tarfile
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from musicrl import devicetrainer, multiseed
from musicrl.agents import AgentConfig, algorithm_class, make_agent, make_training_env
from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchVecEnv
from musicrl.evaluation import EvalResult, evaluate_policy, pool
from musicrl.store import (
    PUBLISHED_ROOT,
    atomic_file,
    atomic_folder,
    config_hash,
    read_json_checked,
    results_root,
    versions,
    write_gzip_json_atomic,
    write_json_atomic,
)
from musicrl.users import check_choice
from musicrl.wolpertinger import box_to_levels

CURVE_WINDOW = 10
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
            raise ValueError(
                f"trainer 'device' implements {devicetrainer.COVERS}; use trainer 'multiseed' or 'sb3' for "
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


def _checkpoint_name(updates: int) -> str:
    return f"u{updates:07d}"


def _save_checkpoint(
    folder: Path, updates: int, model: BaseAlgorithm, env: VecEnv, callback: CurveCallback, wall_time: float
) -> None:
    with _atomic_folder(folder / "checkpoints" / _checkpoint_name(updates)) as tmp:
        model.save(tmp / "model.zip")
        state = {
            "torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate(),
            "envs": _base_env(env).get_rng_state(), "recent": list(callback.recent), "curve": callback.curve,
            "normalizer": _normalizer(env), "wall_time": wall_time,
        }
        with open(tmp / "state.pkl", "wb") as handle:
            pickle.dump(state, handle)


@contextlib.contextmanager
def _atomic_folder(final: Path) -> Iterator[Path]:
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


def _load_checkpoint(folder: Path, updates: int, spec: RunSpec, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv, dict]:
    checkpoint = folder / "checkpoints" / _checkpoint_name(updates)
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
    return [u for u in spec.checkpoints if (folder / "checkpoints" / _checkpoint_name(u) / "state.pkl").exists()]


def _latest_checkpoint(folder: Path, spec: RunSpec) -> int:
    """The last complete checkpoint (0 if none); leftovers of an interrupted save are removed."""
    for partial in (folder / "checkpoints").glob(".u*"):
        shutil.rmtree(partial, ignore_errors=True)
    return max(_saved(folder, spec), default=0)


def _eval_path(folder: Path, updates: int) -> Path:
    return folder / "evals" / f"{_checkpoint_name(updates)}.json"


def _read_returns(path: Path) -> np.ndarray | None:
    """A checkpoint's stored returns; None if absent or damaged (then set aside, to be recomputed)."""
    def check(payload) -> np.ndarray:
        returns = np.asarray(payload["returns"], dtype=float)
        if returns.ndim != 1 or not len(returns):
            raise ValueError("no returns")
        return returns
    return read_json_checked(path, check)


def _evaluate(folder: Path, updates: int, model: BaseAlgorithm, env: VecEnv, spec: RunSpec) -> np.ndarray:
    path = _eval_path(folder, updates)
    if (found := _read_returns(path)) is not None:
        return found
    result = evaluate_policy(trained_policy(model, env, spec.agent), spec.env)
    write_json_atomic(path, {"updates": updates, "returns": result.returns.tolist(), **result.summary()})
    _log_evaluation(folder, updates * spec.agent.steps_per_update, result.returns)
    return result.returns


def _log_curve(folder: Path, curve: Sequence[float], start: int, end: int, per_update: int) -> None:
    """The thesis's curve for updates ``start``..``end`` in TensorBoard, every ``TENSORBOARD_EVERY``-th update."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for update in range(start + 1, end + 1):
            if update % TENSORBOARD_EVERY == 0 and not np.isnan(curve[update - 1]):
                writer.add_scalar(CURVE_TAG, float(curve[update - 1]), update * per_update)


def _log_evaluation(folder: Path, step: int, returns: np.ndarray) -> None:
    """The thesis's metric of a checkpoint in TensorBoard (``tb/eval``), the same tags on every path."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder / "tb" / "eval")) as writer:
        writer.add_scalar(EVAL_TAGS[0], float(np.mean(returns)), step)
        writer.add_scalar(EVAL_TAGS[1], float(np.std(returns)), step)


def _stored_returns(folder: Path, updates: int) -> np.ndarray:
    found = _read_returns(_eval_path(folder, updates))
    if found is None:
        raise RuntimeError(f"{folder}: checkpoint {updates} has no evaluation; rerun to compute it")
    return found


def _evaluate_saved(folder: Path, spec: RunSpec) -> int:
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
            model, env, _ = _load_checkpoint(folder, updates, spec, env)
            _evaluate(folder, updates, model, env, spec)
            env.close()
        if updates in saved:
            resume = updates
    return resume


def run_dir(spec: RunSpec, root: Path | str | None = None) -> Path:
    return Path(root if root is not None else results_root()) / "runs" / spec.key


CARRY_ROOT = Path(os.environ.get("MUSICRL_CARRY", Path(__file__).resolve().parent.parent / "carry"))


def carry_path(spec: RunSpec, carry_root: Path | str | None = None) -> Path:
    return Path(carry_root if carry_root is not None else CARRY_ROOT) / f"{spec.key}.tar.gz"


def _checkpoint_in(tar: tarfile.TarFile) -> int:
    return max(int(m.name.split("/")[1][1:]) for m in tar.getmembers() if m.name.startswith("checkpoints/u"))


def carried_updates(spec: RunSpec, carry_root: Path | str | None = None) -> int:
    """Updates done by the carried checkpoint of ``spec`` (0 if none is carried)."""
    path = carry_path(spec, carry_root)
    if not path.exists():
        return 0
    with tarfile.open(path) as tar:
        return _checkpoint_in(tar)


def carry(spec: RunSpec, root: Path | str | None = None, carry_root: Path | str | None = None) -> Path | None:
    """Pack an unfinished run's last checkpoint and its evaluations so far into the carry
    folder, written atomically; None if the run has finished or has no checkpoint yet."""
    folder = run_dir(spec, root)
    done = _latest_checkpoint(folder, spec)
    if load_result(spec, root, published=False) is not None or not done:
        return None
    path = carry_path(spec, carry_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = atomic_file(path)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(folder / "checkpoints" / _checkpoint_name(done), arcname=f"checkpoints/{_checkpoint_name(done)}")
            for u in spec.checkpoints:
                evaluation = folder / "evals" / f"{_checkpoint_name(u)}.json"
                if u <= done and evaluation.exists():
                    tar.add(evaluation, arcname=f"evals/{evaluation.name}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _restore_carried(spec: RunSpec, folder: Path) -> None:
    """Unpack the carried checkpoint of ``spec`` into its run folder if it is ahead of the local ones."""
    if not carry_path(spec).exists():
        return
    with tarfile.open(carry_path(spec)) as tar:
        carried = _checkpoint_in(tar)
        if carried <= _latest_checkpoint(folder, spec):
            return
        folder.mkdir(parents=True, exist_ok=True)
        unpacked = Path(tempfile.mkdtemp(dir=folder, prefix=".carried."))
        try:
            tar.extractall(unpacked, filter="data")
            for evaluation in (unpacked / "evals").glob("*.json"):
                (folder / "evals").mkdir(exist_ok=True)
                if not (folder / "evals" / evaluation.name).exists():
                    os.replace(evaluation, folder / "evals" / evaluation.name)
            (folder / "checkpoints").mkdir(exist_ok=True)
            os.replace(unpacked / "checkpoints" / _checkpoint_name(carried), folder / "checkpoints" / _checkpoint_name(carried))
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)


def published_path(spec: RunSpec, published: Path | str | None = None) -> Path:
    return Path(published if published is not None else PUBLISHED_ROOT) / "runs" / f"{spec.key}.json.gz"


def load_result(spec: RunSpec, root: Path | str | None = None, published: Path | str | None | bool = None) -> RunResult | None:
    """The finished run's result from the local store, else from the published results
    (``published=False`` skips them), or None if it has not finished."""
    found = read_json_checked(run_dir(spec, root) / "result.json", RunResult.from_json)
    if found is None and published is not False:
        found = read_json_checked(published_path(spec, None if published is True else published), RunResult.from_json,
                                  gzipped=True)
    return found


def published_result(spec: RunSpec, published: Path | str | None = None) -> RunResult | None:
    """The run's result in the published results only (None if they do not hold it)."""
    return read_json_checked(published_path(spec, published), RunResult.from_json, gzipped=True)


def publish(spec: RunSpec, extras: dict[str, Any], root: Path | str | None = None,
            published: Path | str | None = None) -> Path:
    """Copy a finished local run into the published results (gzip JSON, no weights) with ``extras``."""
    result = load_result(spec, root, published=False)
    if result is None:
        raise ValueError(f"{spec.key} has not finished in {run_dir(spec, root)}; train it first (musicrl train {spec.name})")
    result.extras = extras
    path = published_path(spec, published)
    write_gzip_json_atomic(path, result.to_json())
    carry_path(spec).unlink(missing_ok=True)  # finished: nothing left to carry over
    return path


def finished_runs(specs: Sequence[RunSpec], root: Path | str | None = None, train_missing: bool = True,
                  address: str | None = None, workers: int | None = None,
                  progress: bool = True) -> list[tuple[RunSpec, RunResult]]:
    """The finished runs of ``specs`` (local or published store), in order, after training (in
    parallel, :func:`train_many`) the missing ones; ``train_missing=False`` leaves those out."""
    specs = list(specs)
    if train_missing:
        results: list[RunResult | None] = list(train_many(specs, root=root, address=address, workers=workers, progress=progress))
    else:
        results = [load_result(spec, root) for spec in specs]
    return [(spec, result) for spec, result in zip(specs, results) if result is not None]


def missing_runs(specs: Sequence[RunSpec], root: Path | str | None = None, published=None) -> list[RunSpec]:
    """The runs of ``specs`` that neither the local nor the published store holds."""
    return [spec for spec in specs if load_result(spec, root, published) is None]


def publish_finished(specs: Sequence[RunSpec], extras: Callable[[RunSpec], dict[str, Any]], root: Path | str | None = None,
                     published: Path | str | None = None, progress: bool = True) -> list[Path]:
    """:func:`publish` every run of ``specs`` finished locally and not yet published, with ``extras(spec)``."""
    written = []
    for spec in tqdm(list(specs), desc="publish", disable=not progress):
        if load_result(spec, root, published=False) is None or published_path(spec, published).exists():
            continue
        written.append(publish(spec, extras(spec), root, published))
    return written


def train(spec: RunSpec, root: Path | str | None = None, progress: bool = True, published: bool = True) -> RunResult:
    """Run (or resume, or just read) one training run and return its result. ``published=False``
    trains a run even if the published results hold it (they have no weights: see :func:`publish`)."""
    found = load_result(spec, root, published=None if published else False)
    if found is not None:
        return found
    if spec.trainer in SEED_GROUPED:
        return train_seeds([spec], root, progress, published)[0]
    started = time.perf_counter()
    folder, model, env, done, saved = _open(spec, root, tensorboard=True)
    recent, curve, before = saved["recent"], saved["curve"], saved["wall_time"]
    model.tensorboard_log = str(folder / "tb")
    bar = tqdm(total=spec.updates, initial=done, desc=spec.key, unit="update", disable=not progress, leave=False)
    callback = CurveCallback(recent, curve, bar, report=ProgressFile([folder], done).add)
    try:
        for checkpoint in [u for u in spec.checkpoints if u > done]:
            model._last_obs = None  # restart episodes: see module docstring
            steps = (checkpoint - done) * spec.agent.steps_per_update
            model.learn(steps, callback=callback, reset_num_timesteps=False, tb_log_name="train")
            _log_curve(folder / "tb" / "curve", callback.curve, done, checkpoint, spec.agent.steps_per_update)
            _save_checkpoint(folder, checkpoint, model, env, callback, before + time.perf_counter() - started)
            _evaluate(folder, checkpoint, model, env, spec)
            done = checkpoint
        _evaluate(folder, done, model, env, spec)  # a no-op unless a crash came between save and evaluation
        returns = [_stored_returns(folder, u) for u in spec.checkpoints]
    finally:
        bar.close()
        env.close()
    result = RunResult(
        spec=spec.to_dict(), curve=np.asarray(callback.curve, dtype=float), checkpoints=spec.checkpoints,
        returns=returns, pooled_from=spec.pooled_checkpoints, wall_time=before + time.perf_counter() - started,
        env_steps=int(model.num_timesteps), versions=versions(),
    )
    write_json_atomic(folder / "result.json", result.to_json())
    return result


@dataclass
class _OpenRun:
    spec: RunSpec
    folder: Path
    state: multiseed.SeedState
    callback: CurveCallback
    done: int
    before: float


def _open(spec: RunSpec, root: Path | str | None, tensorboard: bool) -> tuple[Path, BaseAlgorithm, VecEnv, int, dict]:
    """One run's folder, model and env, built fresh or loaded from its last checkpoint (``done``
    updates); ``saved`` holds the curve, recent episodes and wall time so far."""
    folder = run_dir(spec, root)
    _restore_carried(spec, folder)
    _latest_checkpoint(folder, spec)  # removes the leftovers of an interrupted save
    done = _evaluate_saved(folder, spec)
    env = make_training_env(spec.env, spec.agent, spec.seed)
    if done:
        model, env, saved = _load_checkpoint(folder, done, spec, env)
    else:
        agent = replace(spec.agent, device=run_device(spec))
        model = make_agent(agent, env, seed=spec.seed, tensorboard_log=str(folder / "tb") if tensorboard else None)
        saved = {"recent": [], "curve": [], "wall_time": 0.0}
    return folder, model, env, done, saved


def _open_run(spec: RunSpec, root: Path | str | None) -> _OpenRun:
    """One seed opened as :func:`train` opens it, for the fast path (which writes its own TensorBoard logs)."""
    folder, model, env, done, saved = _open(spec, root, tensorboard=False)
    callback = CurveCallback(saved["recent"], saved["curve"])
    state = multiseed.SeedState(model, env, callback.recent, callback.curve)  # type: ignore[arg-type]
    state.capture_global_rng()
    return _OpenRun(spec, folder, state, callback, done, saved["wall_time"])


def _check_one_configuration(specs: Sequence[RunSpec]) -> None:
    def without_seed(spec: RunSpec) -> dict[str, Any]:
        return {k: v for k, v in spec.to_dict().items() if k != "seed"}

    if not specs:
        raise ValueError("train_seeds needs at least one RunSpec")
    if any(without_seed(s) != without_seed(specs[0]) for s in specs) or len({s.seed for s in specs}) < len(specs):
        raise ValueError("train_seeds trains distinct seeds of one configuration; the specs differ in more than the seed")


def train_seeds(specs: Sequence[RunSpec], root: Path | str | None = None, progress: bool = True,
                published: bool = True) -> list[RunResult]:
    """Train the seeds of one configuration together with :mod:`musicrl.multiseed` (the fast path).

    Same store layout, checkpoints and evaluations as :func:`train`; finished seeds are
    read, unfinished ones resume from their own last checkpoint. Each run's
    ``wall_time`` is that of the process, which trained ``seeds_together`` seeds at once.
    ``published=False`` trains the seeds that only the published results hold, as :func:`train`.
    """
    specs = list(specs)
    _check_one_configuration(specs)
    where = None if published else False
    results = {i: r for i, s in enumerate(specs) if (r := load_result(s, root, where)) is not None}
    runs = [_open_run(s, root) for i, s in enumerate(specs) if i not in results]
    if runs:
        _train_together(runs, progress)
        for i, spec in enumerate(specs):
            if i not in results:
                results[i] = load_result(spec, root, False)  # type: ignore[assignment]
    return [results[i] for i in range(len(specs))]


LOSS_TAGS = ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss")
TENSORBOARD_EVERY = 10  # updates between TensorBoard points of the fast path (writing every one costs ~10%)


def _log_segment(run: _OpenRun, losses: np.ndarray, done: int) -> None:
    """TensorBoard scalars of the updates just trained (``tb/multiseed``): SB3's loss tags and the
    curve, every ``TENSORBOARD_EVERY``-th update (``result.json`` has the whole curve)."""
    from torch.utils.tensorboard import SummaryWriter

    per_update = run.spec.agent.steps_per_update
    with SummaryWriter(str(run.folder / "tb" / run.spec.trainer)) as writer:
        curve = run.callback.curve[-len(losses):] if len(losses) else []
        for k, (row, level) in enumerate(zip(losses, curve)):
            if (done + k + 1) % TENSORBOARD_EVERY:
                continue
            step = (done + k + 1) * per_update
            for tag, value in zip(LOSS_TAGS, row):
                writer.add_scalar(tag, float(value), step)
            if not np.isnan(level):
                writer.add_scalar(CURVE_TAG, level, step)


PROGRESS_FILE = "progress.json"  # updates done, for a sweep's driver (Ray workers log nothing back)
PROGRESS_EVERY = 2.0  # seconds between writes


class ProgressFile:
    """Writes ``{"updates": n}`` into each run folder's ``progress.json``, at most every
    ``PROGRESS_EVERY`` seconds and at every checkpoint; :func:`sweep_progress` reads them."""

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


def sweep_progress(specs: Sequence[RunSpec], root: Path | str | None = None) -> int:
    """Updates done over ``specs``, from their progress files (a finished run counts in full)."""
    done = 0
    for spec in specs:
        folder = run_dir(spec, root)
        if (folder / "result.json").exists():
            done += spec.updates
            continue
        try:
            done += int(json.loads((folder / PROGRESS_FILE).read_text())["updates"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return done


def _seed_trainer(spec: RunSpec, states: list[multiseed.SeedState]) -> multiseed.MultiSeedTrainer | devicetrainer.DeviceTrainer:
    if spec.trainer == "device":
        return devicetrainer.DeviceTrainer(spec.agent, states)
    return multiseed.MultiSeedTrainer(spec.agent, states)


def _trainer_record(spec: RunSpec, together: int) -> dict[str, Any]:
    """How a run was trained, for its result (never its key): the path, seeds together, the device."""
    found: dict[str, Any] = {"path": spec.trainer, "seeds_together": together}
    if spec.trainer == "device":
        found["device"] = devicetrainer.describe(devicetrainer.training_device())
    return found


def _train_together(runs: list[_OpenRun], progress: bool) -> None:
    spec, started = runs[0].spec, time.perf_counter()
    total = sum(spec.updates - r.done for r in runs)
    label = f"{spec.name} x{len(runs)} seeds"
    with tqdm(total=total, desc=label, unit="update", disable=not progress, leave=False) as bar:
        for checkpoint in spec.checkpoints:
            active = [r for r in runs if r.done < checkpoint]
            for done in sorted({r.done for r in active}):
                group = [r for r in active if r.done == done]
                trainer = _seed_trainer(spec, [r.state for r in group])
                size = len(group)
                report = ProgressFile([r.folder for r in group], done)

                def on_update(n: int = size, report: ProgressFile = report) -> None:
                    bar.update(n)
                    report.add(1)
                losses = trainer.train(checkpoint - done, on_update=on_update)
                report.write()
                for k, r in enumerate(group):
                    _log_segment(r, losses[:, :, k], done)
                    r.state.restore_global_rng()
                    wall = r.before + time.perf_counter() - started
                    _save_checkpoint(r.folder, checkpoint, r.state.model, r.state.env, r.callback, wall)
                    _evaluate(r.folder, checkpoint, r.state.model, r.state.env, r.spec)
                    r.done = checkpoint
                if group[0].callback.curve:
                    bar.set_postfix(avg10=f"{np.nanmean([r.callback.curve[-1] for r in group]):.1f}", refresh=False)
    for r in runs:
        r.state.env.close()
        result = RunResult(
            spec=r.spec.to_dict(), curve=np.asarray(r.callback.curve, dtype=float), checkpoints=r.spec.checkpoints,
            returns=[_stored_returns(r.folder, u) for u in r.spec.checkpoints], pooled_from=r.spec.pooled_checkpoints,
            wall_time=r.before + time.perf_counter() - started, env_steps=int(r.state.model.num_timesteps),
            versions=versions(), trainer=_trainer_record(spec, len(runs)),
        )
        write_json_atomic(r.folder / "result.json", result.to_json())


def load_policy(spec: RunSpec, updates: int | None = None, root: Path | str | None = None,
                published: Path | str | None = None) -> NormalizedPolicy:
    """A stored checkpoint (the last one by default) as a policy for :mod:`musicrl.evaluation`;
    the last one comes from the published weights (:func:`publish_weights`) when the local
    store lacks it."""
    updates = spec.checkpoints[-1] if updates is None else updates
    if updates not in spec.checkpoints:
        raise ValueError(f"{spec.key} saves checkpoints at updates {list(spec.checkpoints)}, not {updates}")
    folder = run_dir(spec, root)
    env = make_training_env(spec.env, spec.agent, spec.seed)
    if (folder / "checkpoints" / _checkpoint_name(updates) / "state.pkl").exists():
        model, env, _ = _load_checkpoint(folder, updates, spec, env)
    elif updates == spec.checkpoints[-1] and has_weights(spec, published):
        model, env = _load_weights(weights_path(spec, published), spec, env)
    else:
        env.close()
        hint = " or publish its weights (musicrl publish --weights)" if updates == spec.checkpoints[-1] else ""
        raise ValueError(f"no checkpoint at update {updates} in {folder} and no published weights; "
                         f"train it first (musicrl train {spec.name}){hint}")
    return trained_policy(model, env, spec.agent)


WEIGHT_FILES = ("model.zip", "normalizer.pkl")


def weights_path(spec: RunSpec, published: Path | str | None = None) -> Path:
    """Where the published final weights of ``spec`` live: ``published/weights/<key>/``."""
    return Path(published if published is not None else PUBLISHED_ROOT) / "weights" / spec.key


def has_weights(spec: RunSpec, published: Path | str | None = None) -> bool:
    return (weights_path(spec, published) / "model.zip").exists()


def _load_weights(folder: Path, spec: RunSpec, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv]:
    if (folder / "normalizer.pkl").exists():
        with open(folder / "normalizer.pkl", "rb") as handle:
            normalizer = pickle.load(handle)
        normalizer.set_venv(env.venv if isinstance(env, VecNormalize) else env)
        env = normalizer
    model = algorithm_class(spec.agent.algorithm).load(folder / "model.zip", env=env, device=run_device(spec))
    return model, env


def publish_weights(spec: RunSpec, root: Path | str | None = None, published: Path | str | None = None,
                    replace_with: Callable[[RunSpec], dict[str, Any]] | None = None) -> Path:
    """Copy a finished local run's final weights (the SB3 zip and its observation normalizer,
    about 0.6 MB) to :func:`weights_path`, so that :func:`load_policy` works on a fresh clone.

    Refuses when the published result of the run differs from the local one: weights that did
    not produce the published curve and returns would not belong beside them. With
    ``replace_with`` (the published record's extras of a spec) the local run replaces the
    published result instead, so that result and weights are again one run. The fast path
    reproduces a run bit for bit only beside the same batch-mates: a run resumed beside
    others agrees to float32 ulps, and over thousands of updates one sampled action flips.
    """
    result, final = load_result(spec, root, published=False), spec.checkpoints[-1]
    folder = run_dir(spec, root)
    checkpoint = folder / "checkpoints" / _checkpoint_name(final)
    if result is None or not (checkpoint / "state.pkl").exists():
        raise ValueError(f"{spec.key} has no finished run with its final checkpoint (update {final}) in {folder}; "
                         f"train it first (musicrl train {spec.name} --weights)")
    shown = published_result(spec, published)
    if shown is not None and not (np.array_equal(shown.curve, result.curve, equal_nan=True)
                                  and all(np.array_equal(a, b) for a, b in zip(shown.returns, result.returns))):
        if replace_with is None:
            raise ValueError(f"{spec.key}: the local run's curve or returns differ from the published ones, so its weights "
                             "are not those of the published result; replace the published run by it (musicrl publish "
                             f"{spec.name} --weights --replace) or retrain it with its published batch-mates")
        publish(spec, replace_with(spec), root, published)
    target = weights_path(spec, published)
    with _atomic_folder(target) as tmp:
        shutil.copy2(checkpoint / "model.zip", tmp / "model.zip")
        with open(checkpoint / "state.pkl", "rb") as handle:
            normalizer = pickle.load(handle)["normalizer"]
        if normalizer is not None:  # SB3 pickles a VecNormalize only once set_venv has given it its attributes
            env = make_training_env(spec.env, spec.agent, spec.seed)
            normalizer.set_venv(env.venv if isinstance(env, VecNormalize) else env)
            with open(tmp / "normalizer.pkl", "wb") as handle:
                pickle.dump(normalizer, handle)
            env.close()
    carry_path(spec).unlink(missing_ok=True)
    return target


def _train_quietly(specs: list[RunSpec], root: str) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    if specs[0].trainer in SEED_GROUPED:
        return [r.to_json() for r in train_seeds(specs, root, progress=False)]
    return [train(specs[0], root, progress=False).to_json()]


_RELATIVE_COST = {"A2C": 1.0, "RecurrentA2C": 2.0, "GRUA2C": 2.0, "TRPO": 3.5, "EntropyTRPO": 3.5, "ACKTR": 1.5, "Wolpertinger": 4.0}


def _cost(specs: list[RunSpec]) -> float:
    """Rough relative wall time of a task, to start the longest first."""
    spec = specs[0]
    per_seed = spec.updates * spec.agent.steps_per_update * _RELATIVE_COST[spec.agent.algorithm] * (1 + 0.2 * spec.env.d)
    return per_seed * (len(specs) / 4 if spec.trainer in SEED_GROUPED else 1)


def _tasks(specs: list[RunSpec], todo: list[int]) -> list[list[int]]:
    """One task per run, except that the seeds of one multi-seed configuration form one task."""
    groups: dict[str, list[int]] = {}
    for i in todo:
        spec = specs[i]
        if spec.trainer in SEED_GROUPED:
            key = config_hash({k: v for k, v in spec.to_dict().items() if k != "seed"})
        else:
            key = spec.key
        groups.setdefault(key, []).append(i)
    return sorted(groups.values(), key=lambda group: -_cost([specs[i] for i in group]))


def ray_init_arguments(address: str | None, workers: int | None = None) -> dict[str, Any]:
    """``ray.init``'s arguments: without ``address`` a private instance of this process (never a
    cluster already running on the machine, nor one that died and left its address in /tmp/ray)
    with ``workers`` CPUs, to start inside :func:`loopback_ray`; with ``address``, that cluster."""
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address is None:
        return {**init, "address": "local", "num_cpus": workers or os.cpu_count() or 1}
    return {**init, "address": address}


# Ray resolves a 127.0.0.1 node address to the machine's network address unless it runs as on a
# laptop (no cluster), and it has no authentication by default: a private instance binds every
# port to the loopback interface this way. Its agents also get two minutes to start on a busy
# machine (the default, 30 s, was too short here with both cores training).
LOOPBACK_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
SLOW_MACHINE_RAY_ENV = {"RAY_agent_register_timeout_ms": "120000"}  # a value the user set wins


@contextlib.contextmanager
def loopback_ray() -> Iterator[None]:
    """Inside: a local Ray instance started with :func:`ray_init_arguments` listens on 127.0.0.1 only."""
    from ray._private import ray_constants

    saved_env = {name: os.environ.get(name) for name in (*LOOPBACK_RAY_ENV, *SLOW_MACHINE_RAY_ENV)}
    saved = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update({name: os.environ.get(name) or value for name, value in SLOW_MACHINE_RAY_ENV.items()})
    os.environ.update(LOOPBACK_RAY_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def train_many(
    specs: Iterable[RunSpec],
    root: Path | str | None = None,
    address: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> list[RunResult]:
    """Train runs in parallel with Ray: local by default, a cluster given ``address``.

    Runs with ``trainer="multiseed"`` that differ only in the seed are one task (one
    process trains them together); every other run is a task of its own.

    Finished runs are read from the store without starting Ray, and ``workers=1`` on this
    machine trains in this process, one task after the other. Every worker writes to
    ``root``, which on a cluster must be a filesystem all nodes share.
    """
    specs = list(specs)
    root = Path(root if root is not None else results_root()).resolve()
    results: dict[int, RunResult] = {i: r for i, s in enumerate(specs) if (r := load_result(s, root)) is not None}
    todo = [i for i in range(len(specs)) if i not in results]
    if todo and workers == 1 and address is None:  # one at a time: no need for Ray's processes
        _train_here(specs, todo, results, root, progress)
    elif todo:
        import ray

        started_here = not ray.is_initialized()
        with contextlib.ExitStack() as stack:
            if started_here:
                if address is None:
                    stack.enter_context(loopback_ray())
                try:
                    _init_ray(ray, address, workers)
                except Exception as error:  # Ray gives a node 30 s to start, which a busy machine can miss
                    if address is not None or "timed out during startup" not in str(error):
                        raise
                    warnings.warn(f"a local Ray instance did not start ({error}); training the {len(todo)} runs in this "
                                  "process, one after the other", stacklevel=2)
                    _train_here(specs, todo, results, root, progress)
                    return [results[i] for i in range(len(specs))]
            _sweep(ray, specs, todo, results, root, progress, started_here)
    return [results[i] for i in range(len(specs))]


def _train_here(specs: list[RunSpec], todo: list[int], results: dict[int, RunResult], root: Path, progress: bool) -> None:
    with tqdm(total=len(specs), initial=len(results), desc="runs", disable=not progress) as bar:
        for task in _tasks(specs, todo):
            for i, payload in zip(task, _train_quietly([specs[i] for i in task], str(root))):
                results[i] = RunResult.from_json(payload)
            bar.update(len(task))


def _init_ray(ray: Any, address: str | None, workers: int | None) -> None:
    try:
        ray.init(**ray_init_arguments(address, workers))
    except (ConnectionError, TimeoutError, RuntimeError, OSError) as error:
        if address is None:
            raise
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"could not reach the Ray cluster at {address!r} ({first[:200]}); check that its head runs "
                         "(ray start --head --port=PORT; for ray://HOST:PORT also --ray-client-server-port=PORT), that this "
                         "machine reaches that port, and that RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN or "
                         "~/.ray/auth_token) match the cluster's (README: 'A Ray cluster')") from error


def _sweep(ray: Any, specs: list[RunSpec], todo: list[int], results: dict[int, RunResult], root: Path, progress: bool,
           started_here: bool) -> None:
    """The Ray tasks of the runs ``todo``, their results into ``results``; shuts down an instance started here."""
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_train_quietly)
        pending = {remote.remote([specs[i] for i in task], str(root)): task for task in _tasks(specs, todo)}
        finished = sum(specs[i].updates for i in results)
        total = sum(spec.updates for spec in specs)
        with tqdm(total=total, initial=finished, desc="updates", unit="update", disable=not progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY)
                for ref in ready:
                    task = pending.pop(ref)
                    for i, payload in zip(task, ray.get(ref)):
                        results[i] = RunResult.from_json(payload)
                    finished += sum(specs[i].updates for i in task)
                running = sweep_progress([specs[i] for task in pending.values() for i in task], root)
                bar.n = finished + running  # the workers' progress files (a shared results folder on a cluster)
                bar.set_postfix(runs=f"{len(results)}/{len(specs)}", refresh=False)
                bar.refresh()
    finally:
        if started_here:
            ray.shutdown()
