"""A real two-node Ray cluster on 127.0.0.1 with token authentication, joined as the README says:
the sweep trains into the shared results folder, a rerun reads the runs back, and a wrong token
is one clear error. The test stops only the nodes it started (their process groups), while
another Ray instance it started beside them keeps running."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
START_TIMEOUT = 240  # seconds for `ray start`: Ray's own node start is slow on a loaded 2-core machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(args: list, env: dict, timeout: int = START_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout)


def _start_node(args: list, env: dict, groups: list[int]) -> subprocess.CompletedProcess:
    """``ray start`` in a process group of its own, whose number goes into ``groups``: the node's
    daemons (GCS, raylet, agents, workers) stay in that group, so stopping the group stops this
    node and nothing else (``ray stop`` would stop every Ray process of the machine)."""
    process = subprocess.Popen([str(a) for a in args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    groups.append(process.pid)
    out, err = process.communicate(timeout=START_TIMEOUT)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_groups(groups: list[int]) -> None:
    """SIGTERM to each group, SIGKILL to what is left 15 s later (Ray's GCS and raylet take their time)."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        for group in groups:
            if _alive(group):
                os.killpg(group, sig)
        deadline = time.monotonic() + grace
        while any(map(_alive, groups)) and time.monotonic() < deadline:
            time.sleep(0.2)


def _head(env: dict, groups: list[int]) -> str:
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    head = _start_node([BIN / "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                        "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"], env, groups)
    assert head.returncode == 0, head.stderr[-2000:]
    return f"127.0.0.1:{port}"


def _token_env() -> dict:
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    return env


@pytest.fixture
def bystander():
    """Another Ray instance on this machine, not part of the cluster under test: it must outlive the test."""
    groups: list[int] = []
    env = _token_env()
    try:
        address = _head(env, groups)
        yield address, groups
    finally:
        _stop_groups(groups)


@pytest.fixture
def cluster(bystander):
    """Head (one CPU) and one worker node (one CPU), token authentication on; yields (address, env).
    Torn down by stopping the process groups of its own nodes only."""
    groups: list[int] = []
    env = _token_env()
    try:
        address = _head(env, groups)
        worker = _start_node([BIN / "ray", "start", f"--address={address}", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                              "--disable-usage-stats"], env, groups)
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield address, env
    finally:
        _stop_groups(groups)
        assert not any(map(_alive, groups))
        assert all(map(_alive, bystander[1])), "stopping the cluster stopped another Ray instance"
        host, port = bystander[0].split(":")
        socket.create_connection((host, int(port)), timeout=10).close()  # and its GCS still answers


def _sweep(address: str, env: dict, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run([BIN / "musicrl", "sweep", "fig21", "fig14", "--profile", "smoke", "--seeds", "0", "--address", address,
                 "--results", results, *extra], env, timeout=600)


def test_a_token_cluster_of_two_nodes_trains_into_the_shared_results(cluster, tmp_path):
    address, env = cluster
    nodes = _run([sys.executable, "-c", f"import ray; ray.init(address={address!r}, log_to_driver=False); "
                  "print(sum(n['Alive'] for n in ray.nodes()))"], env)
    assert nodes.stdout.strip().splitlines()[-1] == "2", nodes.stderr[-2000:]

    results = tmp_path / "shared-results"
    first = _sweep(address, env, results)
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name.split("-s0-")[0] for p in (results / "runs").iterdir()) == ["fig14", "fig21"]
    assert all((p / "result.json").is_file() for p in (results / "runs").iterdir())

    again = _sweep(address, env, results)
    assert again.returncode == 0 and "2 of 2 runs are finished in the results store" in again.stdout

    wrong = _sweep(address, {**env, "RAY_AUTH_TOKEN": "not-the-token"}, tmp_path / "other")
    assert wrong.returncode != 0
    assert wrong.stderr.strip().splitlines() == [
        f"musicrl: error: the Ray cluster at '{address}' refused this machine's token: set RAY_AUTH_MODE=token and the "
        "cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) as on its head (README: 'A Ray cluster')"], wrong.stderr
