"""Ray: the runs of a sweep as Ray tasks, on a private instance of this process or a cluster.

:func:`sweep` is all :func:`musicrl.training.train_many` asks of Ray: run each task (the seeds
of one configuration, or one run) in a worker process with one CPU and hand back its output.
A private instance listens on 127.0.0.1 only (:func:`loopback_ray`); a cluster is reached at its
address within ``connect_timeout`` seconds or is one clear error (:func:`check_reachable`), and
a wrong token says so. SIGTERM stops a sweep as Ctrl-C does (:func:`sigterm_interrupts`).
Progress comes from the run folders' progress files (a shared folder on a cluster).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from musicrl.runfiles import PROGRESS_EVERY, RunFolder, RunSpec


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


def sweep(tasks: list[list[RunSpec]], work: Callable[[list[RunSpec], str], list[Any]], root: Path,
          on_done: Callable[[int, list[Any]], None], address: str | None = None, workers: int | None = None,
          progress: bool = True, connect_timeout: float = CONNECT_TIMEOUT, finished: tuple[int, int] = (0, 0)) -> bool:
    """``work(task, str(root))`` for every task as a Ray task (one CPU each), longest first as given;
    ``on_done(k, output)`` as task ``k`` finishes. Without ``address`` on a private loopback instance
    of ``workers`` CPUs, else on that cluster (whose workers must share ``root``). ``finished`` (updates,
    runs) already done counts in the progress bar. False, having trained nothing, when a private
    instance did not start in time (a busy machine): the caller trains the tasks itself."""
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
                warnings.warn(f"a local Ray instance did not start ({error}); training the {sum(map(len, tasks))} runs in "
                              "this process, one after the other", stacklevel=3)
                return False
        stack.enter_context(sigterm_interrupts())
        _wait(ray, tasks, work, root, on_done, progress, started_here, finished)
    return True


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Inside: SIGTERM raises KeyboardInterrupt, as Ctrl-C does, so that any command stops the same way
    (finished runs kept). Entered by the CLI for every command, and again by a sweep after
    ``ray.init``, whose core worker replaces the handler (it would abort the process, leaving
    its instance behind)."""
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


def _wait(ray: Any, tasks: list[list[RunSpec]], work: Callable, root: Path, on_done: Callable[[int, list[Any]], None],
          progress: bool, started_here: bool, finished: tuple[int, int]) -> None:
    """The Ray tasks submitted and awaited, the bar fed by the progress files; shuts down an instance started here."""
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(work)
        pending = {remote.remote(task, str(root)): k for k, task in enumerate(tasks)}
        done, runs = finished
        total = done + sum(spec.updates for task in tasks for spec in task)
        total_runs = runs + sum(map(len, tasks))
        with tqdm(total=total, initial=done, desc="updates", unit="update", disable=not progress) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_EVERY)
                for ref in ready:
                    k = pending.pop(ref)
                    on_done(k, ray.get(ref))
                    done += sum(spec.updates for spec in tasks[k])
                    runs += len(tasks[k])
                running = sweep_progress([spec for k in pending.values() for spec in tasks[k]], root)
                bar.n = done + running
                bar.set_postfix(runs=f"{runs}/{total_runs}", refresh=False)
                bar.refresh()
    finally:
        if started_here:
            ray.shutdown()


def sweep_progress(specs: Sequence[RunSpec], root: Path | str | None = None) -> int:
    """Updates done over ``specs``, from their progress files (a finished run counts in full)."""
    return sum(RunFolder.of(spec, root).progress() for spec in specs)
