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
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

PACKAGES = ("musicrl", "numpy", "gymnasium", "torch", "stable-baselines3", "sb3-contrib", "pandas", "papermill",
            "jupyter-book", "tensorflow-cpu", "keras", "librosa", "scikit-learn")
DEFAULT_ROOT = Path(os.environ.get("MUSICRL_RESULTS", "results"))
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


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
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
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def path(self, kind: str, config: dict[str, Any]) -> Path:
        return self.root / kind / f"{config_hash(config)}.json"

    def get(self, kind: str, config: dict[str, Any]) -> Any | None:
        path = self.path(kind, config)
        if not path.exists():
            return None
        return json.loads(path.read_text())["result"]

    def get_or_compute(self, kind: str, config: dict[str, Any], compute: Callable[[], Any]) -> Any:
        found = self.get(kind, config)
        if found is not None:
            return found
        result = compute()
        self.put(kind, config, result)
        return result

    def put(self, kind: str, config: dict[str, Any], result: Any) -> None:
        write_json_atomic(self.path(kind, config), {"config": config, "versions": _versions(), "result": result})
