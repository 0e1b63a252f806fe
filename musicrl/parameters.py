"""The papermill parameters of each chapter, checked once in its first code cell.

``check("environment", globals())`` raises ``ValueError`` naming the first parameter whose
value is not accepted and what is, before any work starts (papermill's ``-p name value``
passes strings, lists and numbers as typed on the command line).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from musicrl.profiles import NAMES as PROFILES

LAYERS = ("second", "third", "last")


def _integer(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum), f"an integer >= {minimum}"


def _probability(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1


RECOMMENDER_AGENTS = ("fig25", "fig25-gru")  # the trained 4D agents that can play the recommender's sessions
PATHS = ("gtzan", "models", "sessions")  # folders: made absolute by musicrl book (a chapter runs in book/)
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "profile": (lambda v: v in PROFILES, f"one of {list(PROFILES)}"),
    "agent_profile": (lambda v: v is None or v in PROFILES, f"None or one of {list(PROFILES)}"),
    "agent": (lambda v: v in RECOMMENDER_AGENTS, f"one of {list(RECOMMENDER_AGENTS)}"),
    "target_seed": _integer(0),
    "seed": _integer(0),
    "k": _integer(1),
    "targets_per_genre": _integer(1),
    "workers": (lambda v: isinstance(v, int) and not isinstance(v, bool) and (v == -1 or v >= 1), "-1 (every core) or an integer >= 1"),
    "address": (lambda v: v is None or (isinstance(v, str) and bool(v)), "None or a Ray address such as 'ray://host:10001'"),
    "train_missing": (lambda v: isinstance(v, bool), "True or False"),
    "smoothing": (lambda v: _probability(v) and v < 1, "a number in [0, 1)"),
    "gtzan": (lambda v: v is None or (isinstance(v, str) and (Path(v) / "manifest.csv").is_file()),
              "None or an existing folder holding manifest.csv and the clips"),
    "models": (lambda v: v is None or (isinstance(v, str) and Path(v).is_dir()), "None or an existing folder of the tagger's weights"),
    "sessions": (lambda v: v is None or (isinstance(v, str) and Path(v).is_dir()), "None or an existing folder of saved sessions"),
    "layer": (lambda v: v in LAYERS, f"one of {list(LAYERS)}"),
    "noise": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_probability, v)),
              "two probabilities (p, q), e.g. [0.2, 0.1]"),
}
CHAPTER_PARAMETERS = {
    "environment": ("profile", "target_seed", "workers"),
    "experiments_2d": ("profile", "address", "train_missing", "smoothing"),
    "higher_dimensions": ("profile", "address", "train_missing", "smoothing"),
    "music_features": ("profile", "gtzan", "models", "k", "seed", "workers"),
    "recommender": ("profile", "agent", "agent_profile", "layer", "targets_per_genre", "noise", "seed", "gtzan", "models"),
    "beyond": ("profile", "address", "train_missing"),
    "conclusions": ("profile", "train_missing", "smoothing"),
    "teaching": ("profile", "sessions", "layer", "seed", "gtzan", "models"),
    "taggers": ("profile", "seed", "gtzan", "models"),
    "departures": ("profile",),
    "intro": ("profile",),
}


# What a kernel's namespace holds before the chapter's first cell: IPython's own names.
KERNEL_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})


def unknown(chapter: str, namespace: dict[str, Any]) -> list[str]:
    """Names in ``namespace`` that are no parameter of ``chapter`` (a misspelt ``-p``): every public
    name that is not a module, not IPython's, and not among the chapter's parameters."""
    return sorted(name for name, value in namespace.items()
                  if not name.startswith("_") and name not in KERNEL_NAMES and name not in CHAPTER_PARAMETERS[chapter]
                  and not isinstance(value, types.ModuleType))


def check(chapter: str, namespace: dict[str, Any]) -> None:
    """Raise ``ValueError`` for a name that is no parameter of ``chapter`` (papermill only warns),
    then for the first parameter whose value is not accepted."""
    extra = unknown(chapter, namespace)
    if extra:
        raise ValueError(f"unknown parameter{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} for the chapter "
                         f"{chapter!r}; accepted: {', '.join(CHAPTER_PARAMETERS[chapter])}")
    for name in CHAPTER_PARAMETERS[chapter]:
        accepted, description = RULES[name]
        value = namespace[name]
        if not accepted(value):
            raise ValueError(f"parameter {name!r} of the chapter {chapter!r} must be {description}, got {value!r} "
                             f"({type(value).__name__}); e.g. papermill -p {name} <value>")
