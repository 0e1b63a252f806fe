"""``musicrl serve``: the class, its persistence, its pages' API and every bad request, on the demo catalogue.

The in-process tests use Starlette's test client; the process tests start ``musicrl serve``
itself (its own process group, stopped by its PID only) on 127.0.0.1 or 127.0.0.2.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from musicrl.envs import EPISODE_STEPS
from musicrl.music import recommender as rec
from musicrl.music import serve
from musicrl.music.classroom import ClassError, ClassRoom, class_targets, clean_name

STEPS = EPISODE_STEPS + 1
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")  # httpx is what it runs on here


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return serve.demo_recommender(tmp_path_factory.mktemp("clips"))


@pytest.fixture
def room(demo, tmp_path):
    room = ClassRoom(tmp_path / "class", demo[0], seed=7)
    yield room
    room.close()


def client_for(room, demo, code=None, token="teacher-token"):
    from starlette.testclient import TestClient

    app = serve.create_app(room, serve.AudioCache(room.folder / "audio", demo[1]), code=code, teacher_token=token)
    return TestClient(app, raise_server_exceptions=False)


def ideal_answers(catalogue):
    """A simulated student who answers as the ideal listener would (the one a test can predict)."""
    listener = rec.IdealListener(catalogue)
    started = {}

    def answer(state):
        if started.get("session") != state["session"]:
            listener.start(state["target"])
            started["session"] = state["session"]
        rating, closer = listener.feedback(state["song"])
        return {"session": state["session"], "step": state["step"], "rating": rating, "closer": 0 if state["first"] else closer}

    return answer


def test_class_targets_take_turns_over_genres_and_follow_the_seed(demo):
    catalogue = demo[0].catalogue
    targets = class_targets(catalogue, 3)
    assert sorted(targets) == sorted(catalogue.ids.tolist())
    genre = dict(zip(catalogue.ids, catalogue.genres))
    assert len({genre[t] for t in targets[:5]}) == 5 and len({genre[t] for t in targets[5:10]}) == 5
    assert targets == class_targets(catalogue, 3) and targets != class_targets(catalogue, 4)


def test_names_are_cleaned_and_limited():
    assert clean_name("  Ada \n  Lovelace\x00 ") == "Ada Lovelace"
    assert clean_name("<b>x</b>") == "<b>x</b>"  # kept as typed; escaped wherever shown
    for bad, message in (("", "type a first name"), ("   ", "type a first name"), (None, "type a first name"),
                         ("x" * 10_000, "at most 40 characters; this one has 10000")):
        with pytest.raises(ClassError, match=message):
            clean_name(bad)


def test_a_class_plays_saves_pools_and_resumes_after_a_restart(demo, tmp_path):
    recommender, _ = demo
    room = ClassRoom(tmp_path / "class", recommender, seed=1, sessions_per_student=2)
    ada, bob = room.join("ada"), room.join("ada")
    assert bob.name == "ada (2)"
    answer = ideal_answers(recommender.catalogue)
    for who in (ada, bob):
        room.start(who)
    targets = [room.state(ada)["target"], room.state(bob)["target"]]
    assert targets[0] != targets[1]
    for _ in range(STEPS):
        room.answer(ada, answer(room.state(ada)))
    for _ in range(10):
        room.answer(bob, answer(room.state(bob)))
    assert room.state(ada)["session"] is None and room.state(ada)["last"]["found_at"] is not None
    bob_state = room.state(bob)
    room.close()

    again = ClassRoom(tmp_path / "class", recommender, seed=1, sessions_per_student=2)
    assert again.state(again.student(bob.token)) == bob_state
    for _ in range(STEPS - 10):
        again.answer(bob, answer(again.state(bob)))
    again.start(ada)
    for _ in range(STEPS):
        again.answer(ada, answer(again.state(ada)))
    with pytest.raises(ClassError, match="all 2 sessions") as refused:
        again.start(ada)
    assert refused.value.status == 409
    sessions, rejected = rec.load_class_sessions(again.sessions_dir, recommender.catalogue, layer="demo")
    assert len(sessions) == 3 and rejected == []
    assert {s.listener for s in sessions} == {"ada", "ada (2)"} and all(len(s.steps) == STEPS for s in sessions)
    assert all(s.settings["drive"] == "listener" and s.settings["catalogue"]["layer"] == "demo" for s in sessions)
    table = rec.class_table(sessions, recommender)
    assert table["class sessions"].sum() == 3
    again.close()
    with pytest.raises(ClassError, match="played with other settings"):
        ClassRoom(tmp_path / "class", recommender, seed=2, sessions_per_student=2)


def test_pooling_sets_aside_copies_and_other_layers(demo, tmp_path):
    recommender, _ = demo
    session = recommender.play(str(recommender.catalogue.ids[3]), rec.IdealListener(recommender.catalogue), seed=1)
    path = session.save(tmp_path)
    (tmp_path / "session-copy.json").write_text(path.read_text())
    other = rec.Session(session.target, "bo", "greedy", session.steps, {**session.settings, "catalogue": {"layer": "second", "k": 4}})
    other.save(tmp_path)
    sessions, rejected = rec.load_class_sessions(tmp_path, recommender.catalogue, layer="demo")
    assert len(sessions) == 1
    assert any("a copy of" in r and "counted once" in r for r in rejected)
    assert any("played on the 'second' layer's catalogue" in r and "--layer second" in r for r in rejected)


def play_http(client, answer, name="ada"):
    assert client.post("/api/join", json={"name": name}).status_code == 200
    state = client.get("/api/state").json()
    while state["session"] is not None:
        state = client.post("/api/answer", json=answer(state)).json()
    return state


def test_the_api_plays_a_session_and_the_teacher_sees_it(room, demo):
    client = client_for(room, demo)
    assert "Join" in client.get("/").text
    state = play_http(client, ideal_answers(demo[0].catalogue))
    assert state["sessions_played"] == 1 and state["more"] and len(state["last"]["steps"]) == STEPS
    teacher = client.get("/api/teacher", params={"token": "teacher-token"}).json()
    assert teacher["finished"] == 1 and teacher["students"][0]["name"] == "ada" and "<table" in teacher["table"]
    assert client.get("/teacher/figure.png", params={"token": "teacher-token"}).content[:4] == b"\x89PNG"
    archive = client.get("/teacher/sessions.zip", params={"token": "teacher-token"})
    import io
    import zipfile
    assert len(zipfile.ZipFile(io.BytesIO(archive.content)).namelist()) == 1
    assert client.post("/api/next").json()["number"] == 2


def test_the_ideal_answers_are_never_sent_before_the_student_answers(room, demo):
    client = client_for(room, demo)
    client.post("/api/join", json={"name": "ada"})
    state = client.get("/api/state").json()
    assert not any("ideal" in key for key in state)
    state = client.post("/api/answer", json={**ideal_answers(demo[0].catalogue)(state)}).json()
    assert not any("ideal" in key for key in state) and state["last"] is None if state["session"] is None else True


def test_audio_is_served_by_track_id_only_with_ranges(room, demo):
    client = client_for(room, demo)
    assert client.get("/audio/blues.00001").status_code == 401  # no student cookie
    client.post("/api/join", json={"name": "ada"})
    whole = client.get("/audio/blues.00001")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/ogg" and whole.content[:4] == b"OggS"
    part = client.get("/audio/blues.00001", headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == whole.content[10:20]
    assert len(list((room.folder / "audio").glob("*.ogg"))) == 1  # encoded once
    for bad in ("jazz.99999", "../class.sqlite3", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        response = client.get(f"/audio/{bad}")  # the client may normalise ../ away: then no route matches
        assert response.status_code == 404 and response.json()["error"] in ("no such track in this class's catalogue", "no such page")


@pytest.mark.parametrize("change, status, message", [
    ({"rating": 5}, 400, "rating must be an integer in 0..4, got 5"),
    ({"rating": "x"}, 400, "rating must be an integer in 0..4, got 'x'"),
    ({"rating": True}, 400, "rating must be an integer in 0..4, got True"),
    ({"closer": 2}, 400, "closer must be an integer in 0..1, got 2"),
    ({"closer": 1}, 400, "the first song has no previous one"),
    ({"step": 4}, 409, "step 4 was already answered"),
    ({"session": 99}, 404, "no session 99 of yours"),
])
def test_bad_answers_are_refused_with_the_reason(room, demo, change, status, message):
    client = client_for(room, demo)
    client.post("/api/join", json={"name": "ada"})
    state = client.get("/api/state").json()
    response = client.post("/api/answer", json={"session": state["session"], "step": 0, "rating": 3, "closer": 0} | change)
    assert response.status_code == status and message in response.json()["error"]
    assert client.get("/api/state").json()["step"] == 0


def test_two_windows_answering_one_step_keep_one_answer(room, demo):
    client = client_for(room, demo)
    client.post("/api/join", json={"name": "ada"})
    state = client.get("/api/state").json()
    first = {"session": state["session"], "step": 0, "rating": 2, "closer": 0, "nonce": "window-a"}
    assert client.post("/api/answer", json=first).status_code == 200
    assert client.post("/api/answer", json=first).json()["step"] == 1  # the same answer resent: taken once
    other = client.post("/api/answer", json=first | {"rating": 4, "nonce": "window-b"})
    assert other.status_code == 409 and "already answered (in another window?)" in other.json()["error"]
    assert room.db.execute("SELECT rating FROM answers").fetchall() == [(2,)]


def test_an_answer_to_a_finished_session_is_refused(room, demo):
    client = client_for(room, demo)
    play_http(client, ideal_answers(demo[0].catalogue))
    late = client.post("/api/answer", json={"session": 1, "step": 21, "rating": 1, "closer": 0, "nonce": "late"})
    assert late.status_code == 409 and late.json()["error"] == "this session is over; start the next one"


def test_bodies_names_and_errors_are_bounded(room, demo, monkeypatch):
    client = client_for(room, demo)
    big = client.post("/api/join", content=b"x" * (10 * 1024 * 1024), headers={"content-type": "application/json"})
    assert big.status_code == 413 and "request body too large" in big.json()["error"]
    long = client.post("/api/join", json={"name": "n" * 10_000})
    assert long.status_code == 400 and "at most 40 characters" in long.json()["error"]
    assert client.post("/api/join", content=b"{not json").json() == {"error": "the request body must be JSON"}
    html_name = "<img src=x onerror=alert(1)>"
    assert client.post("/api/join", json={"name": html_name}).status_code == 200
    for page in ("/", "/session", "/teacher?token=teacher-token"):
        assert html_name not in client.get(page).text
    assert client.get("/api/teacher", params={"token": "teacher-token"}).json()["students"][0]["name"] == html_name
    monkeypatch.setattr(room, "state", lambda student: 1 / 0)
    crash = client.get("/api/state")
    assert crash.status_code == 500 and crash.json() == {"error": "the server could not answer this request; try again"}
    assert "Traceback" not in crash.text and "ZeroDivision" not in crash.text


def test_class_mode_needs_the_code_and_the_teacher_its_token(room, demo):
    client = client_for(room, demo, code="ABCD42")
    assert client.get("/").status_code == 401 and "needs its code" in client.get("/").text
    assert client.get("/", params={"code": "WRONG1"}).status_code == 403
    assert client.get("/", params={"code": "abcd42"}).status_code == 200
    assert client.post("/api/join", json={"name": "ada"}).status_code == 401
    assert client.post("/api/join", json={"name": "ada", "code": "NOPE"}).status_code == 403
    for path in ("/api/state", "/audio/blues.00001", "/session"):
        assert client.get(path).status_code == 401
    assert client.post("/api/answer", json={}).status_code == 401
    assert client.get("/teacher").status_code == 401 and "needs its token" in client.get("/teacher").text
    assert client.get("/api/teacher", params={"token": "guess"}).status_code == 403
    assert client.get("/teacher/sessions.zip").status_code == 401
    assert client.post("/api/join", json={"name": "ada", "code": "ABCD42"}).status_code == 200
    assert client.get("/api/state").json()["step"] == 0


# a real server process ---------------------------------------------------------------------------------------------
def free_port(host="127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_server(folder: Path, port: int, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "musicrl.cli", "serve", "--demo", "--folder", str(folder),
                                "--port", str(port), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    host = extra[extra.index("--host") + 1] if "--host" in extra else "127.0.0.1"
    for _ in range(300):
        try:
            httpx.get(f"http://{host}:{port}/health", timeout=1)
            return process
        except httpx.HTTPError:
            if process.poll() is not None:
                raise AssertionError(process.stdout.read()) from None
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start in 30 s")


def stop(process: subprocess.Popen, sig=signal.SIGTERM) -> str:
    if process.poll() is None:
        os.kill(process.pid, sig)
    try:
        out, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
    return out or ""


def test_served_by_default_on_127_0_0_1_only(tmp_path):
    import psutil

    port = free_port()
    process = start_server(tmp_path / "class", port)
    try:
        listening = {c.laddr for c in psutil.Process(process.pid).net_connections(kind="inet") if c.status == "LISTEN"}
        assert listening == {("127.0.0.1", port)}
    finally:
        output = stop(process)
    assert f"students join at   http://127.0.0.1:{port}/\n" in output and "only this machine can reach it" in output


def test_class_mode_on_another_address_prints_the_code_and_refuses_without_it(tmp_path):
    port = free_port("127.0.0.2")
    process = start_server(tmp_path / "class", port, "--host", "127.0.0.2")
    base = f"http://127.0.0.2:{port}"
    try:
        assert httpx.get(f"{base}/").status_code == 401
        assert httpx.post(f"{base}/api/join", json={"name": "ada"}).status_code == 401
        assert httpx.get(f"{base}/api/state").status_code == 401
        assert httpx.get(f"{base}/audio/blues.00001").status_code == 401
        assert httpx.get(f"{base}/teacher").status_code == 401
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health")
    finally:
        output = stop(process)
    code = re.search(rf"students join at   http://127\.0\.0\.2:{port}/\?code=([A-Z0-9]+)   \(class code \1\)", output)
    assert code, output
    assert "▀" in output or "█" in output  # the QR code of the join URL


def play_class_lockstep(base: str, students: int, sessions: int, catalogue, kill_at: int | None = None, restart=None) -> None:
    """``students`` each play ``sessions`` with the ideal listener's answers, one step each in turn
    (so the order of sessions, and so their targets, is the same every time); at the
    ``kill_at``-th answer, ``restart()`` kills the server and starts it again."""
    clients = [httpx.Client(base_url=base, timeout=10) for _ in range(students)]
    answers = [ideal_answers(catalogue) for _ in range(students)]
    for i, client in enumerate(clients):
        assert client.post("/api/join", json={"name": f"student{i}"}).status_code == 200
    sent = 0
    for _ in range(sessions):
        for _ in range(STEPS):
            for client, answer in zip(clients, answers):
                state = client.get("/api/state").json()
                payload = answer(state) | {"nonce": f"{state['session']}-{state['step']}"}
                if sent == kill_at:
                    restart()
                while True:
                    try:
                        response = client.post("/api/answer", json=payload)
                        break
                    except httpx.HTTPError:
                        time.sleep(0.2)
                assert response.status_code == 200, response.text
                sent += 1
        for client in clients:
            if client.get("/api/state").json()["more"]:
                client.post("/api/next")


def test_a_server_killed_mid_class_resumes_every_session_and_pools_the_same_table(demo, tmp_path):
    recommender = serve.demo_recommender(tmp_path / "clips")[0]
    catalogue = recommender.catalogue

    def pooled(folder):
        sessions, rejected = rec.load_class_sessions(folder / "sessions", catalogue, layer="demo")
        assert rejected == []
        return sessions, rec.class_table(sessions, recommender)

    port = free_port()
    process = start_server(tmp_path / "calm", port)
    try:
        play_class_lockstep(f"http://127.0.0.1:{port}", 3, 2, catalogue)
    finally:
        stop(process)
    calm_sessions, calm_table = pooled(tmp_path / "calm")

    port = free_port()
    server = {"process": start_server(tmp_path / "killed", port)}

    def kill_and_restart():
        stop(server["process"], signal.SIGKILL)
        server["process"] = start_server(tmp_path / "killed", port)

    try:
        play_class_lockstep(f"http://127.0.0.1:{port}", 3, 2, catalogue, kill_at=STEPS * 3 + 40, restart=kill_and_restart)
    finally:
        stop(server["process"])
    killed_sessions, killed_table = pooled(tmp_path / "killed")
    assert len(killed_sessions) == len(calm_sessions) == 6
    assert [s.to_json()["steps"] for s in killed_sessions] == [s.to_json()["steps"] for s in calm_sessions]
    pd.testing.assert_frame_equal(killed_table, calm_table)


@pytest.mark.book
def test_the_teaching_chapter_pools_a_served_class_as_class_table_does(tmp_path):
    """A class served on real clips (two per genre of GTZAN, their features through the tagger),
    two students playing; then ``musicrl class-table`` on the class's folder, and the page
    "Teaching with this book" executed with it: the same table."""
    import ast
    import csv
    import json
    import shutil

    from musicrl import book
    from musicrl.cli import main
    from musicrl.music import features, gtzan_dir, listen
    from musicrl.store import Store

    ROOT = Path(__file__).resolve().parent.parent
    chosen = features.subset(features.read_manifest(), per_genre=2)
    tiny = tmp_path / "gtzan"
    tiny.mkdir()
    with open(tiny / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "genre", "path", "balanced14"])
        writer.writerows([t.track_id, t.genre, t.path, 1] for t in chosen.itertuples())
    assert gtzan_dir().is_dir()
    results, folder = tmp_path / "results", tmp_path / "class"
    recommender, _ = listen.gtzan_recommender("greedy", "third", gtzan=tiny, store=Store(results))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "musicrl.cli", "serve", "--gtzan", str(tiny), "--results", str(results),
                                "--folder", str(folder), "--port", str(port)], stdout=subprocess.DEVNULL,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, "musicrl serve stopped"
                time.sleep(0.1)
        play_class_lockstep(base, 2, 1, recommender.catalogue)
    finally:
        stop(process)
    out = tmp_path / "table"
    assert main(["class-table", str(folder), "--gtzan", str(tiny), "--results", str(results), "--out", str(out)]) == 0
    cli = pd.DataFrame(json.loads((out / "class-table.json").read_text())["table"]).set_index("target genre")

    root = tmp_path / "bookroot"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    shutil.copytree(ROOT / "book", root / "book", ignore=shutil.ignore_patterns("*.ipynb"))
    shutil.copytree(results, root / "results")
    executed = book.execute_chapter("teaching", "smoke", root=root, parameters={"sessions": str(folder), "gtzan": str(tiny)})
    notebook = json.loads(executed.read_text())
    glued = {o["metadata"]["scrapbook"]["name"]: o["data"].get("application/papermill.record/text/plain")
             for c in notebook["cells"] for o in c.get("outputs", []) if "scrapbook" in o.get("metadata", {})}
    chapter = pd.DataFrame(json.loads(ast.literal_eval(glued["class_table_json"]))).set_index("target genre")
    assert len(cli) == 2 and int(glued["class_sessions"]) == 2
    pd.testing.assert_frame_equal(chapter, cli[chapter.columns], check_dtype=False)
