"""A class playing the listening test: students, their sessions and every answer, persisted.

The state of a class lives in one folder: ``class.sqlite3`` (SQLite in WAL mode, one
transaction per answer, synchronous writes) and ``sessions/session-*.json``, the same files
``musicrl listen`` writes, one per finished session, so ``musicrl class-table`` and the page
"Teaching with this book" read a served class unchanged.

Nothing but the answers is stored: a session's recommender state is a function of its
target, its seed and its answers, so after a crash every running session is rebuilt by
replaying its answers (:meth:`ClassRoom.runner`) and resumes at the step it was at.

Targets follow :func:`class_targets`: the class's n-th session plays the n-th target of a
list drawn from the class seed, the genres taking turns, so a class's sessions spread over
genres as the lab's do and the same seed and order of sessions give the same targets.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from musicrl.envs import EPISODE_STEPS
from musicrl.music.recommender import Recommender, SessionRunner
from musicrl.users import MAX_RATING

NAME_LENGTH = 40
SESSIONS_PER_STUDENT = 3
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS students (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, token TEXT NOT NULL UNIQUE,
                                     joined TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY, student INTEGER NOT NULL REFERENCES students(id),
                                     number INTEGER NOT NULL, target TEXT NOT NULL, seed INTEGER NOT NULL,
                                     started TEXT NOT NULL, finished TEXT, UNIQUE (student, number));
CREATE TABLE IF NOT EXISTS answers (session INTEGER NOT NULL REFERENCES sessions(id), step INTEGER NOT NULL,
                                    rating INTEGER NOT NULL, closer INTEGER NOT NULL, nonce TEXT NOT NULL,
                                    answered TEXT NOT NULL, PRIMARY KEY (session, step));
"""


class ClassError(ValueError):
    """A request the class cannot take; ``status`` is the HTTP status a server answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def class_targets(catalogue, seed: int) -> list[str]:
    """Every catalogue song once, in the order a class plays them: each genre's songs shuffled
    (seeded), then the genres take turns (in a seeded order), so any run of consecutive
    sessions covers the genres as evenly as the catalogue allows."""
    rng = np.random.default_rng(seed)
    genres = sorted(set(catalogue.genres.tolist()))
    queues = {g: list(rng.permutation(sorted(catalogue.ids[catalogue.genres == g].tolist()))) for g in genres}
    order = [genres[i] for i in rng.permutation(len(genres))]
    targets: list[str] = []
    while any(queues.values()):
        targets += [str(queues[g].pop(0)) for g in order if queues[g]]
    return targets


def session_seed(class_seed: int, number: int) -> int:
    """The seed of the class's ``number``-th session (which song a position with several plays)."""
    return int(np.random.SeedSequence([class_seed, number]).generate_state(1)[0])


def clean_name(raw: Any) -> str:
    """A student's name as stored and shown: printable characters, spaces collapsed, at most
    ``NAME_LENGTH`` characters (HTML is escaped wherever it is shown, not here)."""
    if not isinstance(raw, str):
        raise ClassError("type a first name or a pseudonym")
    text = "".join(c for c in unicodedata.normalize("NFKC", raw) if unicodedata.category(c)[0] != "C")
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise ClassError("type a first name or a pseudonym")
    if len(text) > NAME_LENGTH:
        raise ClassError(f"a name has at most {NAME_LENGTH} characters; this one has {len(text)}")
    return text


@dataclass(frozen=True)
class Student:
    id: int
    name: str
    token: str


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


class ClassRoom:
    """The students and sessions of one class in ``folder`` (created, or resumed if it exists).

    ``settings`` (policy, layer, seed, ...) are stored with the class; a folder made with other
    settings is refused rather than mixed. Thread-safe: one lock around every change.
    """

    def __init__(self, folder: Path | str, recommender: Recommender, seed: int = 0,
                 sessions_per_student: int = SESSIONS_PER_STUDENT, settings: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.sessions_dir = self.folder / "sessions"
        self.sessions_dir.mkdir(parents=True, exist_ok=True)
        self.recommender, self.seed, self.per_student = recommender, seed, sessions_per_student
        self.targets = class_targets(recommender.catalogue, seed)
        self.lock = threading.RLock()
        self.db = sqlite3.connect(self.folder / "class.sqlite3", check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        self.settings = {"seed": seed, "sessions_per_student": sessions_per_student, "policy": recommender.policy_name,
                         "no_repeat": recommender.no_repeat, "catalogue": recommender.catalogue_record(), **(settings or {})}
        self._check_settings()
        self._runners: dict[int, SessionRunner] = {}
        self.version = 0  # counts finished sessions, for caches of the class table
        self._write_finished()

    def _check_settings(self) -> None:
        stored = self.db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
        mine = json.dumps(self.settings, sort_keys=True)
        if stored is None:
            self.db.execute("INSERT INTO meta VALUES ('settings', ?)", (mine,))
        elif json.loads(stored[0]) != json.loads(mine):
            raise ClassError(f"{self.folder} holds a class played with other settings ({stored[0]}), not {mine}; "
                             "start a new class in another folder (--folder) or use the class's own settings")

    def secret(self, key: str, make) -> str:
        """A value kept with the class (its code, the teacher's token), made once by ``make()``."""
        with self.lock:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (key, make()))
                row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return row[0]

    # students -----------------------------------------------------------------------------
    def join(self, raw_name: Any) -> Student:
        """A new student; a name already taken gets a number (``ada (2)``), so pooled sessions stay apart."""
        name = clean_name(raw_name)
        with self.lock:
            taken = {row[0] for row in self.db.execute("SELECT name FROM students")}
            unique, n = name, 2
            while unique in taken:
                unique, n = f"{name} ({n})", n + 1
            token = secrets.token_urlsafe(24)
            cursor = self.db.execute("INSERT INTO students (name, token, joined) VALUES (?, ?, ?)", (unique, token, _now()))
            return Student(int(cursor.lastrowid or 0), unique, token)

    def student(self, token: Any) -> Student:
        row = self.db.execute("SELECT id, name, token FROM students WHERE token = ?", (str(token),)).fetchone() if token else None
        if row is None:
            raise ClassError("join the class first: open the join page and type your name", 401)
        return Student(*row)

    # sessions -----------------------------------------------------------------------------
    def _current(self, student: Student) -> tuple | None:
        return self.db.execute("SELECT id, number, target, seed, started, finished FROM sessions WHERE student = ? "
                               "ORDER BY number DESC LIMIT 1", (student.id,)).fetchone()

    def start(self, student: Student) -> int:
        """The student's running session, or a new one if the last is finished (at most ``per_student``)."""
        with self.lock:
            current = self._current(student)
            if current is not None and current[5] is None:
                return int(current[0])
            number = 1 if current is None else current[1] + 1
            if number > self.per_student:
                raise ClassError(f"you have played all {self.per_student} sessions of this class; thank you", 409)
            (count,) = self.db.execute("SELECT COUNT(*) FROM sessions").fetchone()
            target = self.targets[count % len(self.targets)]
            cursor = self.db.execute("INSERT INTO sessions (student, number, target, seed, started) VALUES (?, ?, ?, ?, ?)",
                                     (student.id, number, target, session_seed(self.seed, count), _now()))
            return int(cursor.lastrowid or 0)

    def runner(self, session_id: int) -> SessionRunner:
        """The session's recommender state: kept in memory, rebuilt from the stored answers after a restart."""
        with self.lock:
            if session_id not in self._runners:
                row = self.db.execute("SELECT s.target, s.seed, st.name FROM sessions s JOIN students st ON st.id = s.student "
                                      "WHERE s.id = ?", (session_id,)).fetchone()
                if row is None:
                    raise ClassError(f"no session {session_id}", 404)
                target, seed, name = row
                runner = self.recommender.start(target, name, seed=seed, drive="listener", started=f"class-s{session_id:04d}")
                runner.settings.update(class_seed=self.seed, served=True)
                for rating, closer in self.db.execute("SELECT rating, closer FROM answers WHERE session = ? ORDER BY step",
                                                      (session_id,)):
                    runner.answer(rating, closer)
                self._runners[session_id] = runner
            return self._runners[session_id]

    def state(self, student: Student) -> dict[str, Any]:
        """What the student's page shows: the session, its step, the target and the song to play."""
        with self.lock:
            current = self._current(student)
            played = 0 if current is None else current[1] - (current[5] is None)
            base = {"name": student.name, "sessions_played": played, "sessions_per_student": self.per_student,
                    "steps": EPISODE_STEPS + 1}
            if current is None or current[5] is not None:
                last = None if current is None else self._summary(int(current[0]))
                return base | {"session": None, "more": played < self.per_student, "last": last}
            runner = self.runner(int(current[0]))
            return base | {"session": int(current[0]), "number": int(current[1]), "step": len(runner.steps),
                           "target": runner.target, "song": runner.song, "first": not runner.steps, "more": True}

    def _summary(self, session_id: int) -> dict[str, Any]:
        """A finished session as its end page shows it: now the ideal listener's answers may be seen."""
        runner = self.runner(session_id)
        found = runner.session().steps_to_target
        return {"session": session_id, "target": runner.target, "found_at": found,
                "steps": [{"song": s.song, "rating": s.rating, "closer": s.closer, "ideal_rating": s.ideal_rating,
                           "ideal_closer": s.ideal_closer} for s in runner.steps]}

    def answer(self, student: Student, payload: Any) -> dict[str, Any]:
        """Take ``{"session", "step", "rating", "closer", "nonce"}``: checked, stored in one transaction,
        then the recommender moves on. The same answer sent twice (same ``nonce``) is taken once;
        another answer to a step already answered (a second window) is refused with 409."""
        session_id, step, rating, closer, nonce = _answer_fields(payload)
        with self.lock:
            row = self.db.execute("SELECT student, finished FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None or row[0] != student.id:
                raise ClassError(f"no session {session_id} of yours", 404)
            stored = self.db.execute("SELECT nonce FROM answers WHERE session = ? AND step = ?", (session_id, step)).fetchone()
            if stored is not None and stored[0] == nonce:
                return self.state(student)
            if row[1] is not None:
                raise ClassError("this session is over; start the next one", 409)
            runner = self.runner(session_id)
            if step != len(runner.steps):
                raise ClassError(f"step {step} was already answered (in another window?); this session is at step "
                                 f"{len(runner.steps)}", 409)
            if step == 0 and closer:
                raise ClassError("the first song has no previous one: no 'closer' on it, only a rating")
            finishing = step == EPISODE_STEPS
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?)", (session_id, step, rating, closer, nonce, _now()))
                if finishing:
                    self.db.execute("UPDATE sessions SET finished = ? WHERE id = ?", (_now(), session_id))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            runner.answer(rating, closer)
            if finishing:
                runner.session().save(self.sessions_dir)
                self.version += 1
            return self.state(student)

    def _write_finished(self) -> None:
        """After a crash: the JSON of every finished session (rewriting one is harmless: same name, same content)."""
        for (session_id,) in self.db.execute("SELECT id FROM sessions WHERE finished IS NOT NULL").fetchall():
            self.runner(int(session_id)).session().save(self.sessions_dir)

    # the teacher's view ------------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        """Students with their sessions (running at step n, or finished), for the teacher's page."""
        with self.lock:
            students = self.db.execute("SELECT id, name, joined FROM students ORDER BY id").fetchall()
            rows = self.db.execute("SELECT s.id, s.student, s.number, s.target, s.finished, COUNT(a.step) FROM sessions s "
                                   "LEFT JOIN answers a ON a.session = s.id GROUP BY s.id ORDER BY s.id").fetchall()
        sessions = [{"session": r[0], "student": r[1], "number": r[2], "target": r[3], "finished": r[4] is not None,
                     "answered": r[5]} for r in rows]
        return {"students": [{"id": s[0], "name": s[1], "joined": s[2],
                              "sessions": [x for x in sessions if x["student"] == s[0]]} for s in students],
                "running": sum(not s["finished"] for s in sessions), "finished": sum(s["finished"] for s in sessions),
                "steps": EPISODE_STEPS + 1}

    def finished_sessions(self) -> list:
        with self.lock:
            ids = [int(r[0]) for r in self.db.execute("SELECT id FROM sessions WHERE finished IS NOT NULL ORDER BY id")]
            return [self.runner(i).session() for i in ids]

    def close(self) -> None:
        self.db.close()


def _answer_fields(payload: Any) -> tuple[int, int, int, int, str]:
    if not isinstance(payload, dict):
        raise ClassError("an answer is a JSON object with session, step, rating and closer")
    values = []
    for key, accepted in (("session", None), ("step", range(EPISODE_STEPS + 1)), ("rating", range(MAX_RATING + 1)),
                          ("closer", (0, 1))):
        value = payload.get(key, 0 if key == "closer" else None)
        if isinstance(value, bool) or not isinstance(value, int) or (accepted is not None and value not in accepted):
            what = "an integer" if accepted is None else f"an integer in {accepted[0]}..{accepted[-1]}"
            raise ClassError(f"{key} must be {what}, got {value!r}")
        values.append(value)
    nonce = payload.get("nonce", "")
    if not isinstance(nonce, str) or len(nonce) > 64:
        raise ClassError("nonce must be a string of at most 64 characters")
    return values[0], values[1], values[2], values[3], nonce or secrets.token_hex(8)
