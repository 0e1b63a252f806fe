"""Training: the one place runs start, locally or on a Ray cluster.

Read top to bottom: :func:`train_seeds` trains the seeds of one configuration (:func:`train`
is one seed) through :func:`_checkpoint_loop`, the one loop that saves and evaluates every
checkpoint and writes each result; its only branch, :func:`_advance`, is how a group of runs
moves to the next checkpoint: SB3's ``learn`` one run at a time, or the seeds together on the
multi-seed or the device trainer. :func:`train_many` trains any list of runs, grouped by
configuration, in this process or over Ray workers; :func:`finished_runs` and
:func:`experiment_runs` read what is finished and train the rest. What a run writes is in
:mod:`musicrl.runfiles`, publishing and carrying in :mod:`musicrl.publish`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from musicrl import cluster, devicetrainer, multiseed
from musicrl.agents import make_agent, make_training_env
from musicrl.algorithms import ALGORITHMS, TRAINERS
from musicrl.probes import run_extras
from musicrl.publish import load_result, publish_finished, restore_carried, unfinished
from musicrl.registry import run_specs
from musicrl.runfiles import (
    CURVE_TAG,
    CURVE_WINDOW,
    TENSORBOARD_EVERY,
    CurveCallback,
    ProgressFile,
    RunFolder,
    RunResult,
    RunSpec,
    log_curve,
    log_scalars,
    run_device,
)
from musicrl.store import config_hash, results_root, versions


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


def train(spec: RunSpec, root: Path | str | None = None, progress: bool = True, published: bool = True) -> RunResult:
    """Run (or resume, or just read) one training run and return its result. ``published=False``
    trains a run even if the published results hold it (they have no weights: see :func:`musicrl.publish.publish`)."""
    return train_seeds([spec], root, progress, published)[0]


def train_seeds(specs: Sequence[RunSpec], root: Path | str | None = None, progress: bool = True,
                published: bool = True) -> list[RunResult]:
    """Train the seeds of one configuration: together (the multi-seed or the device trainer, the
    spec's ``trainer``) or one after another (SB3), each through :func:`_checkpoint_loop`.

    Finished seeds are read, unfinished ones resume from their own last checkpoint. Each run's
    ``wall_time`` is that of the process, which trained ``seeds_together`` seeds at once.
    ``published=False`` trains the seeds that only the published results hold (they have no weights).
    """
    specs = list(specs)
    _check_one_configuration(specs)
    where = None if published else False
    results = {i: r for i, s in enumerate(specs) if (r := load_result(s, root, where)) is not None}
    todo = [i for i in range(len(specs)) if i not in results]
    if TRAINERS[specs[0].trainer].seed_grouped:
        groups = [todo] if todo else []
    else:
        groups = [[i] for i in todo]
    for group in groups:
        runs = [_open_run(specs[i], root) for i in group]
        results.update(zip(group, _checkpoint_loop(runs, progress)))
    return [results[i] for i in range(len(specs))]


@dataclass
class _OpenRun:
    """A run being trained: its folder, its live state (model, env, curve, random streams; the one
    owner of each) and the checkpoint it has reached."""

    spec: RunSpec
    folder: RunFolder
    state: multiseed.SeedState
    done: int
    before: float  # wall time of the sessions before this one


def _open_run(spec: RunSpec, root: Path | str | None) -> _OpenRun:
    """One run's folder, model and env, built fresh or loaded from its last checkpoint; SB3 writes
    its own TensorBoard logs, the seed-grouped trainers theirs (:func:`_log_segment`)."""
    folder = RunFolder.of(spec, root)
    restore_carried(folder)
    folder.latest()  # removes the leftovers of an interrupted save
    done = folder.evaluate_saved()
    env = make_training_env(spec.env, spec.agent, spec.seed)
    if done:
        model, env, saved = folder.load_checkpoint(done, env)
    else:
        tensorboard = None if TRAINERS[spec.trainer].seed_grouped else str(folder.tensorboard())
        model = make_agent(replace(spec.agent, device=run_device(spec)), env, seed=spec.seed, tensorboard_log=tensorboard)
        saved = {"recent": [], "curve": [], "wall_time": 0.0}
    state = multiseed.SeedState(model, env, deque(saved["recent"], maxlen=CURVE_WINDOW), list(saved["curve"]))
    return _OpenRun(spec, folder, state, done, saved["wall_time"])


def _checkpoint_loop(runs: list[_OpenRun], progress: bool) -> list[RunResult]:
    """The one training loop: advance the runs (seeds of one configuration) checkpoint by
    checkpoint, save and evaluate each checkpoint, write each result; seeds resumed from
    different checkpoints catch up in groups. How a group advances is :func:`_advance`'s."""
    spec, started = runs[0].spec, time.perf_counter()
    label = spec.key if len(runs) == 1 else f"{spec.name} x{len(runs)} seeds"
    with tqdm(total=sum(spec.updates - r.done for r in runs), desc=label, unit="update", disable=not progress,
              leave=False) as bar:
        for checkpoint in spec.checkpoints:
            active = [r for r in runs if r.done < checkpoint]
            for done in sorted({r.done for r in active}):
                group = [r for r in active if r.done == done]
                report = ProgressFile([r.folder for r in group], done)
                _advance(group, checkpoint - done, bar, report)
                report.write()
                for r in group:
                    wall = r.before + time.perf_counter() - started
                    r.folder.save_checkpoint(checkpoint, r.state.model, r.state.env, r.state.recent, r.state.curve, wall)
                    r.folder.evaluate(checkpoint, r.state.model, r.state.env)
                    r.done = checkpoint
                if group[0].state.curve:
                    bar.set_postfix(avg10=f"{np.nanmean([r.state.curve[-1] for r in group]):.1f}", refresh=False)
    results = []
    for r in runs:
        r.state.env.close()
        result = RunResult(
            spec=r.spec.to_dict(), curve=np.asarray(r.state.curve, dtype=float), checkpoints=r.spec.checkpoints,
            returns=[r.folder.stored_returns(u) for u in r.spec.checkpoints], pooled_from=r.spec.pooled_checkpoints,
            wall_time=r.before + time.perf_counter() - started, env_steps=int(r.state.model.num_timesteps),
            versions=versions(), trainer=_trainer_record(spec, len(runs)),
        )
        r.folder.write_result(result)
        results.append(result)
    return results


def _advance(group: list[_OpenRun], updates: int, bar: tqdm, report: ProgressFile) -> None:
    """Train ``group`` (runs at the same update) ``updates`` updates further, logging to TensorBoard:
    SB3's ``learn`` for one run, else the seeds together on the spec's trainer. A new trainer is
    one more branch here (and in :func:`_seed_trainer`)."""
    spec, done = group[0].spec, group[0].done
    if not TRAINERS[spec.trainer].seed_grouped:
        (run,) = group
        model = run.state.model
        model._last_obs = None  # restart episodes: see musicrl.runfiles
        model.tensorboard_log = str(run.folder.tensorboard())
        callback = CurveCallback(run.state.recent, run.state.curve, bar, report.add)
        model.learn(updates * spec.agent.steps_per_update, callback=callback, reset_num_timesteps=False, tb_log_name="train")
        log_curve(run.folder.tensorboard("curve"), run.state.curve, done, done + updates, spec.agent.steps_per_update)
        return

    def on_update(n: int = len(group)) -> None:
        bar.update(n)
        report.add(1)
    losses = _seed_trainer(spec, [r.state for r in group]).train(updates, on_update=on_update)
    for k, r in enumerate(group):
        _log_segment(r, losses[:, :, k], done)
        r.state.restore_global_rng()


def _check_one_configuration(specs: Sequence[RunSpec]) -> None:
    def without_seed(spec: RunSpec) -> dict[str, Any]:
        return {k: v for k, v in spec.to_dict().items() if k != "seed"}

    if not specs:
        raise ValueError("train_seeds needs at least one RunSpec")
    if any(without_seed(s) != without_seed(specs[0]) for s in specs) or len({s.seed for s in specs}) < len(specs):
        raise ValueError("train_seeds trains distinct seeds of one configuration; the specs differ in more than the seed")


LOSS_TAGS = ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss")


def _log_segment(run: _OpenRun, losses: np.ndarray, done: int) -> None:
    """TensorBoard scalars of the updates just trained (``tb/multiseed``): SB3's loss tags and the
    curve, every ``TENSORBOARD_EVERY``-th update (``result.json`` has the whole curve)."""
    per_update = run.spec.agent.steps_per_update
    curve = run.state.curve[-len(losses):] if len(losses) else []
    points = []
    for k, (row, level) in enumerate(zip(losses, curve)):
        if (done + k + 1) % TENSORBOARD_EVERY:
            continue
        step = (done + k + 1) * per_update
        points += [(tag, float(value), step) for tag, value in zip(LOSS_TAGS, row)]
        if not np.isnan(level):
            points.append((CURVE_TAG, float(level), step))
    log_scalars(run.folder.tensorboard(run.spec.trainer), points)


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


def _train_quietly(specs: list[RunSpec], root: str) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    return [r.to_json() for r in train_seeds(specs, root, progress=False)]


def _cost(specs: list[RunSpec]) -> float:
    """Rough relative wall time of a task, to start the longest first."""
    spec = specs[0]
    per_seed = spec.updates * spec.agent.steps_per_update * ALGORITHMS[spec.agent.algorithm].cost * (1 + 0.2 * spec.env.d)
    return per_seed * (len(specs) / 4 if TRAINERS[spec.trainer].seed_grouped else 1)


def _tasks(specs: list[RunSpec], todo: list[int]) -> list[list[int]]:
    """One task per run, except that the seeds of one multi-seed configuration form one task."""
    groups: dict[str, list[int]] = {}
    for i in todo:
        spec = specs[i]
        if TRAINERS[spec.trainer].seed_grouped:
            key = config_hash({k: v for k, v in spec.to_dict().items() if k != "seed"})
        else:
            key = spec.key
        groups.setdefault(key, []).append(i)
    return sorted(groups.values(), key=lambda group: -_cost([specs[i] for i in group]))


def train_many(specs: Iterable[RunSpec], root: Path | str | None = None, address: str | None = None,
               workers: int | None = None, progress: bool = True,
               connect_timeout: float = cluster.CONNECT_TIMEOUT) -> list[RunResult]:
    """Train runs in parallel with Ray (:func:`musicrl.cluster.sweep`): local by default, a cluster given ``address``.

    Runs of a seed-grouped trainer (multi-seed, device) that differ only in the seed are one
    task (one process trains them together); every other run is a task of its own.

    Finished runs are read from the store without starting Ray, and ``workers=1`` on this
    machine trains in this process, one task after the other. Every worker writes to
    ``root``, which on a cluster must be a filesystem all nodes share; a cluster whose head
    does not answer within ``connect_timeout`` seconds is one clear error.
    """
    specs = list(specs)
    root = Path(root if root is not None else results_root()).resolve()
    results: dict[int, RunResult] = {i: r for i, s in enumerate(specs) if (r := load_result(s, root)) is not None}
    tasks = _tasks(specs, [i for i in range(len(specs)) if i not in results])

    def done(k: int, payloads: list[dict[str, Any]]) -> None:
        results.update((i, RunResult.from_json(p)) for i, p in zip(tasks[k], payloads))
    here = workers == 1 and address is None  # one at a time: no need for Ray's processes
    finished = (sum(specs[i].updates for i in results), len(results))
    if tasks and (here or not cluster.sweep([[specs[i] for i in t] for t in tasks], _train_quietly, root, done, address,
                                            workers, progress, connect_timeout, finished)):
        with tqdm(total=len(specs), initial=len(results), desc="runs", disable=not progress) as bar:
            for k, task in enumerate(tasks):
                done(k, _train_quietly([specs[i] for i in task], str(root)))
                bar.update(len(task))
    return [results[i] for i in range(len(specs))]


def experiment_runs(names: Sequence[str], profile: str, root=None, address: str | None = None,
                    workers: int | None = None, progress: bool = True,
                    train_missing: bool = True) -> dict[str, list[RunResult]]:
    """Every seed's finished run of each experiment (local or published store), training (in
    parallel) what is missing; with ``train_missing=False`` missing runs are left out instead
    (:func:`missing_runs` lists them)."""
    runs: dict[str, list[RunResult]] = {name: [] for name in names}
    for spec, result in finished_runs(run_specs(names, profile), root, train_missing, address, workers, progress):
        runs[spec.name].append(result)
    return runs


def catalogue_target_runs(name: str, targets: Sequence[int], profile: str, root=None, seeds: Sequence[int] | None = None,
                          progress: bool = True) -> list[tuple[RunSpec, RunResult]]:
    """Experiment ``name`` trained with targets drawn from ``targets`` (flat indices, e.g. a song
    catalogue's positions) instead of uniformly; same agent, budget and seeds as ``profile``."""
    base = run_specs([name], profile, seeds)
    specs = [replace(spec, name=f"{name}-catalogue", env=replace(spec.env, targets=tuple(targets))) for spec in base]
    return list(zip(specs, train_many(specs, root=root, progress=progress)))


def publish_runs(names: Sequence[str], profile: str, root=None, published=None, progress: bool = True,
                 overrides: dict[str, Any] | None = None) -> list[Path]:
    """Publish every finished run of ``names`` under ``profile`` (see :func:`musicrl.publish`), or of
    their variant ``overrides`` (``musicrl publish --set``).

    The published record adds what the book would otherwise need the weights for (the
    sampling statistics); runs not finished locally are skipped, published ones kept.
    """
    return publish_finished(run_specs(names, profile, overrides=overrides), lambda spec: run_extras(spec, root), root,
                            published, progress)


def missing_runs(names: Sequence[str], profile: str, root=None, published=None) -> list[RunSpec]:
    """The runs of ``names`` under ``profile`` that neither the local nor the published store holds."""
    return unfinished(run_specs(names, profile), root, published)
