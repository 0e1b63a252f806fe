"""``musicrl serve``: the listening test in the browser, for a whole class, pooled live.

One process (Starlette on uvicorn) serves the pages of :mod:`musicrl.music.pages` and a small
JSON API over a :class:`~musicrl.music.classroom.ClassRoom`:

| route | who | what |
|---|---|---|
| ``GET /`` | anyone (with the class code in class mode) | the join page |
| ``POST /api/join`` | ``{"name", "code"}`` | a student, whose token comes back as a cookie |
| ``GET /session``, ``GET /api/state`` | a student | the session page and its state |
| ``POST /api/answer``, ``POST /api/next`` | a student | an answer (rating 0-4, closer 0/1); the next session |
| ``GET /audio/{track}`` | a student | a catalogue clip's excerpt (Ogg Vorbis, encoded once, range requests) |
| ``GET /teacher``, ``/api/teacher``, ``/teacher/figure.png``, ``/teacher/sessions.zip`` | the teacher's token | the live table |

Class mode: bound anywhere but 127.0.0.1, the server never serves a student
without the class code (the join page asks for it, and only a joined student's cookie opens
the rest). Errors reach the browser as ``{"error": "short message"}``, never a traceback.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import sys
import threading
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicrl.music.classroom import ClassError, ClassRoom

MAX_BODY = 16 * 1024
COOKIE = "musicrl_student"
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud in a room


def class_mode(host: str) -> bool:
    """Bound anywhere but 127.0.0.1 (even another loopback address), the server asks for the class code."""
    return host != "127.0.0.1"


def check_code(code: str | None) -> str | None:
    """A class code as the server compares it (upper case), or a ``ValueError`` saying what is accepted."""
    if code is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9]{4,32}", code):
        raise ValueError(f"--code must be 4-32 letters or digits, got {code!r}")
    return code.upper()


def make_code(length: int = 6) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


class AudioCache:
    """Each clip's excerpt encoded once into ``folder`` (one file per track), then served from disk."""

    def __init__(self, folder: Path | str, paths: dict[str, str], encode: Callable[[str], bytes] | None = None) -> None:
        from musicrl.music.listen import clip_bytes

        self.folder, self.paths, self.encode = Path(folder), dict(paths), encode or clip_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def file(self, track: str) -> Path:
        """The encoded excerpt of ``track`` (a catalogue id; anything else raises ``ClassError`` 404)."""
        if track not in self.paths:
            raise ClassError("no such track in this class's catalogue", 404)
        path = self.folder / (hashlib.sha256(track.encode()).hexdigest()[:20] + ".ogg")
        if path.exists():
            return path
        with self._guard:
            lock = self._locks.setdefault(track, threading.Lock())
        with lock:
            if not path.exists():
                from musicrl.store import atomic_file

                fd, tmp = atomic_file(path)
                with open(fd, "wb") as handle:
                    handle.write(self.encode(self.paths[track]))
                Path(tmp).replace(path)
        return path

    def ready(self) -> int:
        return len(list(self.folder.glob("*.ogg")))

    def prepare(self, tracks: list[str]) -> threading.Thread:
        """Encode ``tracks`` in a background thread (a class's first clips are then served at once)."""
        def run() -> None:
            for track in tracks:
                try:
                    self.file(track)
                except Exception as error:  # a broken clip is reported when a student asks for it
                    print(f"musicrl serve: cannot encode {track}: {error}", file=sys.stderr)

        thread = threading.Thread(target=run, name="audio-cache", daemon=True)
        thread.start()
        return thread


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 before the app reads it."""

    def __init__(self, app, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _send_error(send, 413, f"request body too large (at most {self.limit} bytes)")
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ClassError(f"request body too large (at most {self.limit} bytes)", 413)
            return message

        await self.app(scope, limited, send)


async def _send_error(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class TeacherTable:
    """The class's Table 1 and its figure, recomputed when a session has finished since the last time."""

    def __init__(self, room: ClassRoom) -> None:
        self.room, self._version, self._cached = room, -1, {"table": None, "figure": None, "sessions": 0}
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        with self._lock:
            if self.room.version != self._version:
                version = self.room.version
                sessions = self.room.finished_sessions()
                self._cached = self._compute(sessions) if sessions else {"table": None, "figure": None, "sessions": 0}
                self._version = version
            return self._cached

    def _compute(self, sessions) -> dict[str, Any]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from musicrl import plots
        from musicrl.music import recommender as rec

        table = rec.class_table(sessions, self.room.recommender, seed=self.room.seed)
        figure = plots.class_table_figure(table)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        html = table.style.format(precision=2, na_rep="–").format(precision=0, subset=["targets", "class sessions"],
                                                                  na_rep="–").to_html()
        return {"table": html, "figure": buffer.getvalue(), "sessions": len(sessions)}


def create_app(room: ClassRoom, audio: AudioCache, code: str | None = None, teacher_token: str | None = None):
    """The Starlette application of one class. ``code``: the class code students must give (class
    mode); None lets anyone who reaches the server join (the default on 127.0.0.1)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    from musicrl.music import pages

    teacher_token = teacher_token or secrets.token_urlsafe(18)
    table = TeacherTable(room)

    async def body(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ClassError("the request body must be JSON") from None

    def student(request: Request):
        return room.student(request.cookies.get(COOKIE))

    def teacher(request: Request) -> None:
        given = request.query_params.get("token")
        if not given:
            raise ClassError("the teacher's page needs its token: open the teacher URL that musicrl serve printed", 401)
        if not secrets.compare_digest(given, teacher_token):
            raise ClassError("wrong teacher token: open the teacher URL that musicrl serve printed", 403)

    def check_code(given: Any) -> None:
        if code is None:
            return
        if not given:
            raise ClassError("this class needs its code: ask your teacher for it", 401)
        if not isinstance(given, str) or not secrets.compare_digest(given.strip().upper(), code):
            raise ClassError("wrong class code: ask your teacher for it", 403)

    async def join_page(request: Request) -> Response:
        given = request.query_params.get("code")
        try:
            check_code(given)
        except ClassError as error:
            return HTMLResponse(pages.code_page(str(error)), status_code=error.status)
        return HTMLResponse(pages.join_page(needs_code=code is not None, code=given or ""))

    async def join(request: Request) -> Response:
        payload = await body(request)
        if not isinstance(payload, dict):
            raise ClassError("send a JSON object with your name")
        check_code(payload.get("code"))
        new = room.join(payload.get("name"))
        room.start(new)
        response = JSONResponse({"name": new.name})
        response.set_cookie(COOKIE, new.token, httponly=True, samesite="strict", max_age=12 * 3600)
        return response

    async def session_page(request: Request) -> Response:
        try:
            student(request)
        except ClassError as error:
            return HTMLResponse(pages.code_page(str(error), link=True), status_code=error.status)
        return HTMLResponse(pages.SESSION_PAGE)

    async def state(request: Request) -> Response:
        return JSONResponse(room.state(student(request)))

    async def answer(request: Request) -> Response:
        who = student(request)
        return JSONResponse(room.answer(who, await body(request)))

    async def next_session(request: Request) -> Response:
        who = student(request)
        room.start(who)
        return JSONResponse(room.state(who))

    async def clip(request: Request) -> Response:
        student(request)
        path = await run_in_threadpool(audio.file, request.path_params["track"])
        return FileResponse(path, media_type="audio/ogg", headers={"cache-control": "private, max-age=86400"})

    async def teacher_page(request: Request) -> Response:
        try:
            teacher(request)
        except ClassError as error:
            return HTMLResponse(pages.code_page(str(error)), status_code=error.status)
        return HTMLResponse(pages.TEACHER_PAGE)

    async def teacher_state(request: Request) -> Response:
        teacher(request)
        computed = await run_in_threadpool(table.get)
        return JSONResponse(room.overview() | {"table": computed["table"], "pooled": computed["sessions"],
                                               "audio_ready": audio.ready(), "audio_total": len(audio.paths)})

    async def figure(request: Request) -> Response:
        teacher(request)
        computed = await run_in_threadpool(table.get)
        if computed["figure"] is None:
            raise ClassError("no session has finished yet", 404)
        return Response(computed["figure"], media_type="image/png", headers={"cache-control": "no-store"})

    async def download(request: Request) -> Response:
        teacher(request)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(room.sessions_dir.glob("session-*.json")):
                archive.write(path, f"sessions/{path.name}")
        return Response(buffer.getvalue(), media_type="application/zip",
                        headers={"content-disposition": 'attachment; filename="class-sessions.zip"'})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def class_error(request: Request, error: Exception) -> Response:
        status = error.status if isinstance(error, ClassError) else 400
        return JSONResponse({"error": str(error)}, status_code=status)

    async def http_error(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 500)
        return JSONResponse({"error": {404: "no such page", 405: "method not allowed"}.get(status, "bad request")},
                            status_code=status)

    async def server_error(request: Request, error: Exception) -> Response:
        traceback.print_exception(error, file=sys.stderr)
        return JSONResponse({"error": "the server could not answer this request; try again"}, status_code=500)

    from starlette.exceptions import HTTPException

    routes = [Route("/", join_page), Route("/api/join", join, methods=["POST"]), Route("/session", session_page),
              Route("/api/state", state), Route("/api/answer", answer, methods=["POST"]),
              Route("/api/next", next_session, methods=["POST"]), Route("/audio/{track:path}", clip),
              Route("/teacher", teacher_page), Route("/api/teacher", teacher_state), Route("/teacher/figure.png", figure),
              Route("/teacher/sessions.zip", download), Route("/health", health)]
    app = Starlette(routes=routes, exception_handlers={ClassError: class_error, HTTPException: http_error,
                                                       Exception: server_error})
    return BodyLimit(app)


def announce(host: str, port: int, code: str | None, teacher_token: str, write: Callable[[str], None] = print) -> str:
    """Print where students join (with the code, and a QR code of the URL) and the teacher's URL."""
    shown = _reachable_address() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    join = f"http://{shown}:{port}/" + (f"?code={code}" if code else "")
    write(f"students join at   {join}" + (f"   (class code {code})" if code else ""))
    write(f"the teacher's page http://{shown}:{port}/teacher?token={teacher_token}   (keep it to yourself)")
    if code:
        try:
            import segno

            buffer = io.StringIO()
            segno.make(join, error="m").terminal(out=buffer, compact=True)
            write(buffer.getvalue())
        except Exception:  # a terminal that cannot show it still has the URL
            pass
    else:
        write("only this machine can reach it (127.0.0.1); for a classroom, --host 0.0.0.0 (class mode, with a code)")
    return join


def _reachable_address() -> str:
    """This machine's address on its network (no packet is sent), for the join URL of ``--host 0.0.0.0``."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def run(room: ClassRoom, audio: AudioCache, host: str = "127.0.0.1", port: int = 8000, code: str | None = None) -> None:
    """Serve ``room`` until Ctrl-C. Bound anywhere but 127.0.0.1, a class code is always required
    (made and kept with the class if none is given)."""
    import uvicorn

    code = check_code(code)
    if class_mode(host) and not code:
        code = room.secret("code", make_code)
    teacher_token = room.secret("teacher_token", lambda: secrets.token_urlsafe(18))
    audio.prepare(room.targets)
    app = create_app(room, audio, code, teacher_token)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
    server = uvicorn.Server(config)
    original = server.startup

    async def startup(*args, **kwargs):
        await original(*args, **kwargs)
        if server.started:
            announce(host, port, code, teacher_token)
            sys.stdout.flush()

    server.startup = startup  # type: ignore[method-assign]
    server.run()


DEMO_GENRES = ("blues", "classical", "jazz", "metal", "rock")


def demo_recommender(folder: Path | str, per_genre: int = 10, seed: int = 0, no_repeat: bool = True):
    """A stand-in class catalogue for trying the server (and testing it) without GTZAN or the
    tagger: ``per_genre`` songs of five genres with random features around a centre per genre,
    each song a two-second tone (its pitch from its genre) written as Ogg into ``folder``.
    Returns the greedy recommender on it and each song's audio path."""
    import numpy as np
    import soundfile

    from musicrl import baselines
    from musicrl.envs import EnvConfig
    from musicrl.music.audio import SR
    from musicrl.music.catalogue import Catalogue
    from musicrl.music.recommender import Recommender

    rng = np.random.default_rng(seed)
    genres = np.repeat(DEMO_GENRES, per_genre)
    centres = {g: rng.normal(0, 4, 8) for g in DEMO_GENRES}
    x = np.stack([centres[g] for g in genres]) + rng.normal(0, 1, (len(genres), 8))
    ids = [f"{g}.{i % per_genre:05d}" for i, g in enumerate(genres)]
    catalogue = Catalogue.build(x, ids, genres, k=4)
    clips = Path(folder)
    clips.mkdir(parents=True, exist_ok=True)
    paths = {}
    t = np.arange(2 * SR) / SR
    for i, (song, genre) in enumerate(zip(ids, genres)):
        path = clips / f"{song}.ogg"
        if not path.exists():
            pitch = 220 * 2 ** ((DEMO_GENRES.index(genre) * 3 + i % per_genre) / 12)
            soundfile.write(path, (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), SR, format="OGG", subtype="VORBIS")
        paths[song] = str(path)
    policy = baselines.make_baseline("greedy", EnvConfig(d=4))
    return Recommender(policy, catalogue, "greedy", no_repeat=no_repeat, layer="demo"), paths
