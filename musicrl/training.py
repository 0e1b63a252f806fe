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

import contextlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from musicrl import devicetrainer, multiseed, profiles
from musicrl.agents import make_agent, make_training_env
from musicrl.probes import run_extras
from musicrl.publish import carried_updates, has_weights, load_result, publish_finished, restore_carried, unfinished
from musicrl.registry import run_specs
from musicrl.runfiles import (
    CURVE_TAG,
    PROGRESS_EVERY,
    PROGRESS_FILE,
    SEED_GROUPED,
    TENSORBOARD_EVERY,
    CurveCallback,
    ProgressFile,
    RunResult,
    RunSpec,
    evaluate_checkpoint,
    evaluate_saved,
    latest_checkpoint,
    load_checkpoint,
    log_curve,
    log_scalars,
    run_device,
    run_dir,
    save_checkpoint,
    saved_checkpoints,
    stored_returns,
)
from musicrl.store import (
    config_hash,
    results_root,
    versions,
    write_json_atomic,
)


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
    if specs[0].trainer in SEED_GROUPED:
        groups = [todo] if todo else []
    else:
        groups = [[i] for i in todo]
    for group in groups:
        runs = [_open_run(specs[i], root) for i in group]
        results.update(zip(group, _checkpoint_loop(runs, progress)))
    return [results[i] for i in range(len(specs))]


@dataclass
class _OpenRun:
    spec: RunSpec
    folder: Path
    state: multiseed.SeedState
    callback: CurveCallback
    done: int
    before: float


def _open_run(spec: RunSpec, root: Path | str | None) -> _OpenRun:
    """One run's folder, model and env, built fresh or loaded from its last checkpoint; SB3 writes
    its own TensorBoard logs, the seed-grouped trainers theirs (:func:`_log_segment`)."""
    folder = run_dir(spec, root)
    restore_carried(spec, folder)
    latest_checkpoint(folder, spec)  # removes the leftovers of an interrupted save
    done = evaluate_saved(folder, spec)
    env = make_training_env(spec.env, spec.agent, spec.seed)
    if done:
        model, env, saved = load_checkpoint(folder, done, spec, env)
    else:
        tensorboard = None if spec.trainer in SEED_GROUPED else str(folder / "tb")
        model = make_agent(replace(spec.agent, device=run_device(spec)), env, seed=spec.seed, tensorboard_log=tensorboard)
        saved = {"recent": [], "curve": [], "wall_time": 0.0}
    callback = CurveCallback(saved["recent"], saved["curve"])
    state = multiseed.SeedState(model, env, callback.recent, callback.curve)  # type: ignore[arg-type]
    return _OpenRun(spec, folder, state, callback, done, saved["wall_time"])


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
                    save_checkpoint(r.folder, checkpoint, r.state.model, r.state.env, r.callback, wall)
                    evaluate_checkpoint(r.folder, checkpoint, r.state.model, r.state.env, r.spec)
                    r.done = checkpoint
                if group[0].callback.curve:
                    bar.set_postfix(avg10=f"{np.nanmean([r.callback.curve[-1] for r in group]):.1f}", refresh=False)
    results = []
    for r in runs:
        r.state.env.close()
        result = RunResult(
            spec=r.spec.to_dict(), curve=np.asarray(r.callback.curve, dtype=float), checkpoints=r.spec.checkpoints,
            returns=[stored_returns(r.folder, u) for u in r.spec.checkpoints], pooled_from=r.spec.pooled_checkpoints,
            wall_time=r.before + time.perf_counter() - started, env_steps=int(r.state.model.num_timesteps),
            versions=versions(), trainer=_trainer_record(spec, len(runs)),
        )
        write_json_atomic(r.folder / "result.json", result.to_json())
        results.append(result)
    return results


def _advance(group: list[_OpenRun], updates: int, bar: tqdm, report: ProgressFile) -> None:
    """Train ``group`` (runs at the same update) ``updates`` updates further, logging to TensorBoard:
    SB3's ``learn`` for one run, else the seeds together on the spec's trainer. A new trainer is
    one more branch here (and in :func:`_seed_trainer`)."""
    spec, done = group[0].spec, group[0].done
    if spec.trainer not in SEED_GROUPED:
        (run,) = group
        model, callback = run.state.model, run.callback
        model._last_obs = None  # restart episodes: see musicrl.runfiles
        model.tensorboard_log = str(run.folder / "tb")
        callback.bar, callback.report = bar, report.add
        model.learn(updates * spec.agent.steps_per_update, callback=callback, reset_num_timesteps=False, tb_log_name="train")
        log_curve(run.folder / "tb" / "curve", callback.curve, done, done + updates, spec.agent.steps_per_update)
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
    curve = run.callback.curve[-len(losses):] if len(losses) else []
    points = []
    for k, (row, level) in enumerate(zip(losses, curve)):
        if (done + k + 1) % TENSORBOARD_EVERY:
            continue
        step = (done + k + 1) * per_update
        points += [(tag, float(value), step) for tag, value in zip(LOSS_TAGS, row)]
        if not np.isnan(level):
            points.append((CURVE_TAG, float(level), step))
    log_scalars(run.folder / "tb" / run.spec.trainer, points)


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


def _train_quietly(specs: list[RunSpec], root: str) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    return [r.to_json() for r in train_seeds(specs, root, progress=False)]


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
CONNECT_TIMEOUT = 30.0  # seconds to reach a cluster's head before a sweep gives up (musicrl sweep --connect-timeout)
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
    connect_timeout: float = CONNECT_TIMEOUT,
) -> list[RunResult]:
    """Train runs in parallel with Ray: local by default, a cluster given ``address``.

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
                    _init_ray(ray, address, workers, connect_timeout)
                except Exception as error:  # Ray gives a node 30 s to start, which a busy machine can miss
                    if address is not None or "timed out during startup" not in str(error):
                        raise
                    warnings.warn(f"a local Ray instance did not start ({error}); training the {len(todo)} runs in this "
                                  "process, one after the other", stacklevel=2)
                    _train_here(specs, todo, results, root, progress)
                    return [results[i] for i in range(len(specs))]
            stack.enter_context(_sigterm_interrupts())
            _sweep(ray, specs, todo, results, root, progress, started_here)
    return [results[i] for i in range(len(specs))]


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Inside: SIGTERM raises KeyboardInterrupt, as Ctrl-C does (Ray's core worker would abort the
    process on it instead, leaving its instance behind), so the sweep shuts Ray down and stops."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_here(specs: list[RunSpec], todo: list[int], results: dict[int, RunResult], root: Path, progress: bool) -> None:
    with tqdm(total=len(specs), initial=len(results), desc="runs", disable=not progress) as bar:
        for task in _tasks(specs, todo):
            for i, payload in zip(task, _train_quietly([specs[i] for i in task], str(root))):
                results[i] = RunResult.from_json(payload)
            bar.update(len(task))


HEAD_HELP = ("check that its head runs (ray start --head --port=PORT; for ray://HOST:PORT also --ray-client-server-port=PORT) "
             "and that this machine reaches that port (README: 'A Ray cluster')")
TOKEN_SIGNS = ("InvalidAuthToken", "UNAUTHENTICATED", "Unauthenticated", "auth token", "authentication")


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A TCP connection to the head's port within ``timeout`` seconds, or one clear error: Ray itself
    retries an unreachable head for as long as it likes."""
    import socket

    where = address.removeprefix("ray://")
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"a Ray address is HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or type(error).__name__).lower()
        raise ValueError(f"could not reach the Ray cluster at {address!r}: {reason} at {host}:{port} within {timeout:g} s; "
                         f"{HEAD_HELP}") from None


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """File descriptor 2 (Ray's C++ core writes its retries there) into ``path`` while inside."""
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "wb") as sink:
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _init_ray(ray: Any, address: str | None, workers: int | None, connect_timeout: float = CONNECT_TIMEOUT) -> None:
    if address is None:
        ray.init(**ray_init_arguments(address, workers))
        return
    import logging
    import tempfile

    check_reachable(address, connect_timeout)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ray-init.log"
        try:
            with _stderr_to(log):
                ray.init(**ray_init_arguments(address, workers), logging_level=logging.ERROR)
        except (ConnectionError, TimeoutError, RuntimeError, OSError, ValueError) as error:
            said = f"{error}\n{log.read_text(errors='replace')}"
            if any(sign in said for sign in TOKEN_SIGNS):
                raise ValueError(f"the Ray cluster at {address!r} refused this machine's token: set RAY_AUTH_MODE=token and "
                                 "the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) as on its head "
                                 "(README: 'A Ray cluster')") from None
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"could not reach the Ray cluster at {address!r} ({first[:200]}); {HEAD_HELP}; and that "
                             "RAY_AUTH_MODE=token and the token (RAY_AUTH_TOKEN or ~/.ray/auth_token) match the "
                             "cluster's") from None


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


def playable_profile(name: str, profile: str, root=None, published=None) -> str:
    """The budget whose trained agents of ``name`` a chapter can play: ``profile``, except where the
    profile names an ``unplayable_fallback`` (``full``: its runs are published, not trained by the
    build) and some seed has neither its final checkpoint locally nor published weights
    (``musicrl publish --weights``); then the fallback, which the build trains."""
    fallback = profiles.get(profile).recommender.unplayable_fallback
    if fallback is None:
        return profile

    def playable(spec: RunSpec) -> bool:
        local = spec.checkpoints[-1] in saved_checkpoints(spec, root)
        return load_result(spec, root, published) is not None and (local or has_weights(spec, published))
    return profile if all(playable(spec) for spec in run_specs([name], profile)) else fallback


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


def missing_note(missing: Sequence[RunSpec], profile: str, carry_root=None) -> str:
    """Markdown naming the runs a chapter leaves out: each experiment's seeds, how far a
    run carried over from an earlier session has trained, and the command that trains or
    resumes them ("" when nothing is missing)."""
    if not missing:
        return ""
    by_name: dict[str, list[RunSpec]] = {}
    for spec in missing:
        by_name.setdefault(spec.name, []).append(spec)
    parts = []
    for name, specs in by_name.items():
        at: dict[int, list[str]] = {}
        for s in specs:
            if u := carried_updates(s, carry_root):
                at.setdefault(u, []).append(str(s.seed))
        carried = ", ".join(f"{'seeds' if len(seeds) > 1 else 'seed'} {', '.join(seeds)} at {u:,}" for u, seeds in at.items())
        carried = f"; carried: {carried} of {specs[0].updates:,} updates" if at else ""
        parts.append(f"{name} (seeds {', '.join(str(s.seed) for s in specs)}{carried})")
    first = next(iter(by_name))
    command = f"musicrl train {first} --profile {profile} --seed {' '.join(str(s.seed) for s in by_name[first])}"
    return (f"**Not run yet under the `{profile}` profile** ({len(missing)} runs, left out below): " + "; ".join(parts)
            + f". `{command}` trains one experiment's seeds and resumes carried ones; "
            "`musicrl publish` adds finished runs to the published results.")
