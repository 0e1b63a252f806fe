"""A results store: one JSON file per computation, keyed by the hash of its configuration.

Files are written atomically (temporary file, then rename), so an interrupted run leaves
either a complete result or none; a rerun with the same configuration reads it back.
Every record carries its configuration and the package versions that produced it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import platform
import tempfile
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("musicrl", "numpy", "gymnasium", "torch", "stable-baselines3", "sb3-contrib", "pandas", "papermill",
            "jupyter-book", "tensorflow-cpu", "keras", "librosa", "scikit-learn")
REPOSITORY = Path(__file__).resolve().parent.parent


def results_root() -> Path:
    """Where computed results go: ``MUSICRL_RESULTS`` as set now, else ``results/`` beside the
    package, whatever the working directory (a kernel started in ``book/`` writes there too)."""
    return Path(os.environ.get("MUSICRL_RESULTS") or REPOSITORY / "results")


def atomic_file(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` for an atomic write (then ``os.replace``), with the mode a
    plain ``open`` would give it under the current umask (``mkstemp`` makes every file 0600,
    which a shared results or sessions folder cannot read)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    return fd, tmp


def atomic_folder(parent: Path, prefix: str) -> Path:
    """A temporary folder in ``parent`` (for a write that ends in a rename), with the mode
    ``mkdir`` would give it under the current umask (``mkdtemp`` makes it 0700)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    return folder
# Results committed to the repository (no model weights); the book reads them like the local store.
PUBLISHED_ROOT = Path(os.environ.get("MUSICRL_PUBLISHED", Path(__file__).resolve().parent.parent / "published"))


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    return versions()


def versions() -> dict[str, str]:
    """Python and the versions of the packages the results depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def config_hash(config: dict[str, Any]) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _remove_leftovers(path: Path) -> None:
    """Temporary files of earlier writes of ``path`` that a kill left behind."""
    for leftover in path.parent.glob(f"{path.name}*.tmp"):
        leftover.unlink(missing_ok=True)


def set_aside(path: Path, reason: str) -> Path:
    """Rename a damaged file to ``<name>.corrupt`` (kept for inspection), with a warning naming it."""
    target = path.with_name(path.name + ".corrupt")
    os.replace(path, target)
    warnings.warn(f"{path} is damaged ({reason}); moved to {target.name} and recomputed", stacklevel=3)
    return target


def read_json_checked(path: Path, check: Callable[[Any], Any] = lambda payload: payload, gzipped: bool = False) -> Any | None:
    """``check(payload)`` of the JSON file at ``path``; None if the file is absent. A file that does
    not parse, or that ``check`` rejects (KeyError, TypeError, ValueError), is set aside
    (:func:`set_aside`) and None returned, so the caller recomputes it."""
    if not path.exists():
        return None
    try:
        payload = read_gzip_json(path) if gzipped else json.loads(path.read_text())
        return check(payload)
    except (OSError, EOFError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        set_aside(path, f"{type(error).__name__}: {error}"[:200])
        return None


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    fd, tmp = atomic_file(path)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_gzip_json_atomic(path: Path, payload: Any) -> None:
    """Compact JSON, gzip-compressed (reproducibly: no timestamp in the header), written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    _remove_leftovers(path)
    fd, tmp = atomic_file(path)
    try:
        with os.fdopen(fd, "wb") as handle, gzip.GzipFile(fileobj=handle, mode="wb", mtime=0, filename="") as zipped:
            zipped.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_gzip_json(path: Path) -> Any:
    with gzip.open(path, "rt") as handle:
        return json.load(handle)


class Store:
    """``get_or_compute(kind, config, fn)``: the stored result, or ``fn()`` stored first."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else results_root()

    def path(self, kind: str, config: dict[str, Any]) -> Path:
        return self.root / kind / f"{config_hash(config)}.json"

    def get(self, kind: str, config: dict[str, Any]) -> Any | None:
        return read_json_checked(self.path(kind, config), lambda payload: payload["result"])

    def get_or_compute(self, kind: str, config: dict[str, Any], compute: Callable[[], Any]) -> Any:
        found = self.get(kind, config)
        if found is not None:
            return found
        result = compute()
        self.put(kind, config, result)
        return result

    def put(self, kind: str, config: dict[str, Any], result: Any) -> None:
        write_json_atomic(self.path(kind, config), {"config": config, "versions": _versions(), "result": result})
