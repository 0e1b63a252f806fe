"""A class-sized load run of ``musicrl serve`` (part of ``make benchmark``): simulated students on 127.0.0.1.

    .venv/bin/python scripts/benchmark_serve.py [--students 30] [--sessions 3] [--pause 0.3] [--kill-after 20]

Starts a real ``musicrl serve --demo`` process (a stand-in catalogue of tones the size of the
GTZAN clips here, so no feature extraction is timed), waits until every clip is encoded, then
lets ``--students`` clients (httpx, asyncio) each join and play ``--sessions`` sessions with the
ideal listener's answers: each step fetches the clip, waits a shortened listening pause (uniform
0 to 2 x ``--pause`` seconds) and answers; the teacher's page polls every 3 s. With
``--kill-after S`` the server gets SIGKILL S seconds in and is started again on the same
folder; the students' clients retry as the page does. Prints the answers' latency
(p50/p95/p99), the server's peak memory, the sessions saved, and checks that the pooled table
equals the table of the same answers replayed without a server (so without a kill).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from musicrl.envs import EPISODE_STEPS  # noqa: E402
from musicrl.music import recommender as rec  # noqa: E402
from musicrl.music import serve  # noqa: E402


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``musicrl serve --demo`` in its own process group; its resident memory sampled every 0.1 s."""

    def __init__(self, folder: Path, port: int, per_genre: int) -> None:
        self.folder, self.port, self.per_genre = folder, port, per_genre
        self.peak, self.process = 0, None
        self.start()
        threading.Thread(target=self._sample, daemon=True).start()

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "musicrl.cli", "serve", "--demo", str(self.per_genre),
                                         "--folder", str(self.folder), "--port", str(self.port)],
                                        stdout=subprocess.DEVNULL, start_new_session=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise SystemExit("the server did not start in 60 s")

    def _sample(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, psutil.Process(self.process.pid).memory_info().rss)
            except (psutil.Error, AttributeError):
                pass
            time.sleep(0.1)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)


async def retrying(request, *args, **kwargs):
    """As the session page does: retry until the server answers (it may be restarting)."""
    for attempt in range(600):
        try:
            response = await request(*args, **kwargs)
            if response.status_code < 500:
                return response, attempt
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the server did not come back in 60 s")


async def student(i: int, base: str, sessions: int, pause: float, catalogue, latencies: list, retried: list) -> None:
    rng = random.Random(i)
    listener = rec.IdealListener(catalogue)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await retrying(client.post, "/api/join", json={"name": f"student-{i:02d}"})
        for _ in range(sessions):
            state = (await retrying(client.get, "/api/state"))[0].json()
            listener.start(state["target"])
            await retrying(client.get, f"/audio/{state['target']}")
            while state["session"] is not None:
                await retrying(client.get, f"/audio/{state['song']}")
                await asyncio.sleep(rng.uniform(0, 2 * pause))
                rating, closer = listener.feedback(state["song"])
                payload = {"session": state["session"], "step": state["step"], "rating": rating,
                           "closer": 0 if state["first"] else closer, "nonce": f"{state['session']}-{state['step']}"}
                start = time.perf_counter()
                response, attempts = await retrying(client.post, "/api/answer", json=payload)
                (retried if attempts else latencies).append(time.perf_counter() - start)
                assert response.status_code == 200, response.text
                state = response.json()
            if state["more"]:
                await retrying(client.post, "/api/next")


async def teacher(base: str, token: str, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while not stop.is_set():
            try:
                await client.get("/api/teacher", params={"token": token})
            except httpx.HTTPError:
                pass
            await asyncio.sleep(3)


async def load(base: str, token: str, args, catalogue, server: Server) -> tuple[list, list, float]:
    latencies: list = []
    retried: list = []
    stop = asyncio.Event()
    poller = asyncio.create_task(teacher(base, token, stop))
    killer = None
    if args.kill_after:
        async def kill_and_restart():
            await asyncio.sleep(args.kill_after)
            server.kill()
            print(f"SIGKILL after {args.kill_after} s; restarting on the same folder")
            await asyncio.to_thread(server.start)
        killer = asyncio.create_task(kill_and_restart())
    start = time.perf_counter()
    await asyncio.gather(*(student(i, base, args.sessions, args.pause, catalogue, latencies, retried) for i in range(args.students)))
    elapsed = time.perf_counter() - start
    stop.set()
    await poller
    if killer:
        await killer
    return latencies, retried, elapsed


def replayed_without_a_server(sessions: list, recommender) -> list:
    """Each saved session's answers given again to a fresh recommender with the same target and seed."""
    out = []
    for session in sessions:
        runner = recommender.start(session.target, session.listener, seed=session.settings["seed"], drive="listener",
                                   started=session.settings["started"])
        for step in session.steps:
            runner.answer(step.rating, step.closer)
        out.append(runner.session())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--pause", type=float, default=0.3, help="mean listening pause per song, seconds (shortened)")
    parser.add_argument("--songs-per-genre", type=int, default=98, help="5 genres; 98 -> 490 songs, as the GTZAN clips here")
    parser.add_argument("--kill-after", type=float, default=0, help="SIGKILL the server after this many seconds (0: never)")
    args = parser.parse_args()
    if not 1 <= args.students <= 60 or not 1 <= args.sessions <= 5:
        raise SystemExit("--students 1..60 and --sessions 1..5: a bounded load on 127.0.0.1")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        port = free_port()
        server = Server(folder, port, args.songs_per_genre)
        base = f"http://127.0.0.1:{port}"
        import sqlite3

        with sqlite3.connect(folder / "class.sqlite3") as db:
            (token,) = db.execute("SELECT value FROM meta WHERE key = 'teacher_token'").fetchone()
        while True:
            s = httpx.get(f"{base}/api/teacher", params={"token": token}).json()
            if s["audio_ready"] >= s["audio_total"]:
                break
            time.sleep(0.5)
        recommender, _ = serve.demo_recommender(folder / "demo-clips", per_genre=args.songs_per_genre)
        latencies, retried, elapsed = asyncio.run(load(base, token, args, recommender.catalogue, server))
        server.stop()

        sessions, rejected = rec.load_class_sessions(folder / "sessions", recommender.catalogue, layer="demo")
        expected = args.students * args.sessions
        complete = sum(len(s.steps) == EPISODE_STEPS + 1 for s in sessions)
        same = replayed_without_a_server(sessions, recommender)
        played = lambda ss: [(s.target, s.listener, s.to_json()["steps"]) for s in ss]
        equal_sessions = played(same) == played(sessions)
        try:
            pd.testing.assert_frame_equal(rec.class_table(sessions, recommender), rec.class_table(same, recommender))
            equal_table = True
        except AssertionError:
            equal_table = False
        ms = np.array(latencies) * 1000
        print(f"musicrl serve, {args.students} students x {args.sessions} sessions, {len(recommender.catalogue.ids)} songs, "
              f"pause {args.pause} s mean, {os.cpu_count()} cores, kill after {args.kill_after or 'never'}")
        print(f"  answers {len(latencies) + len(retried)} in {elapsed:.1f} s; latency p50 {np.percentile(ms, 50):.1f} ms, "
              f"p95 {np.percentile(ms, 95):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms, max {ms.max():.1f} ms"
              + (f"; {len(retried)} answer(s) retried across the restart" if retried else ""))
        print(f"  server peak memory {server.peak / 2**20:.0f} MiB")
        print(f"  sessions saved {len(sessions)} of {expected}, complete {complete}, lost {expected - complete}; "
              f"set aside {len(rejected)}; same sessions and pooled table as the answers replayed without a server: "
              f"{equal_sessions and equal_table}")
        if complete != expected or not (equal_sessions and equal_table):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
