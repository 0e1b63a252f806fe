"""A real two-node Ray cluster on 127.0.0.1 with token authentication, joined as the README says:
the sweep trains into the shared results folder, a rerun reads the runs back, and a wrong token
is one clear error. The cluster is torn down by the test."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
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


@pytest.fixture
def cluster():
    """Head (one CPU) and one worker node (one CPU), token authentication on; yields (address, env)."""
    token = secrets.token_hex(16)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    head = _run([BIN / "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=1",
                 "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"], env)
    try:
        assert head.returncode == 0, head.stderr[-2000:]
        worker = _run([BIN / "ray", "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1", "--num-cpus=1"], env)
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield f"127.0.0.1:{port}", env
    finally:
        _run([BIN / "ray", "stop", "--force"], env, timeout=120)


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
    assert f"musicrl: error: could not reach the Ray cluster at '{address}'" in wrong.stderr
    assert "Traceback" not in wrong.stderr
