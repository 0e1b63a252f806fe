"""The exact code check: the published runs' first updates trained again and compared, update by update.

A build under a short profile cannot judge the thesis's claims (its runs are far too short), but
it can check the code exactly. For each thesis agent, every published seed's configuration is
trained again for its first ``updates`` updates: the same seeds and settings, the same trainer
(on the multi-seed path a configuration's seeds together; other batch-mates change a seed's
numbers by float32 ulps, too little to flip a sampled action within the checked updates).
Nothing differs from the published run's beginning (its first checkpoint comes later), so the
curves must agree to the precision they are stored with; a one-line change to the environment, the agent, the loss or the random streams
shows as the first update that differs and by how much.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from musicrl import profiles
from musicrl.algorithms import ALGORITHMS
from musicrl.publish import published_path, published_result
from musicrl.registry import EXPERIMENTS, experiment, run_specs, thesis_agents
from musicrl.runfiles import RunResult, RunSpec
from musicrl.training import finished_runs

DECIMALS = 3  # a stored curve's precision (RunResult.to_json)
SUFFIX = "-check"


def check_specs(profile: str, names: Sequence[str] | None = None) -> list[tuple[RunSpec, RunSpec]]:
    """The runs the check trains under ``profile``, each with the published run it restarts (none where
    the profile has no ``code_check_updates``): every published seed of each thesis agent (or of
    ``names``), stopped after the profile's updates."""
    updates = profiles.get(profile).book.code_check_updates
    if updates is None:
        return []
    found = []
    for spec in run_specs(list(names or thesis_agents(EXPERIMENTS)), profiles.VERDICT):
        if updates > spec.checkpoint_every:
            raise ValueError(f"the code check compares the updates before the first checkpoint ({spec.checkpoint_every:,} "
                             f"for {spec.name}); {updates:,} is more")
        if published_path(spec).is_file():  # read once, by check_runs
            found.append((replace(spec, name=f"{spec.name}{SUFFIX}", updates=updates, checkpoint_every=updates), spec))
    return found


def first_difference(curve: np.ndarray, published: np.ndarray) -> tuple[int | None, float]:
    """Where two curves (shape (updates,), NaN before the first episode ends) first differ once
    rounded to :data:`DECIMALS`: the 1-based update (None if nowhere) and the largest absolute
    difference over the updates of ``curve`` (NaN against a number counts as infinite)."""
    ours, theirs = np.round(np.asarray(curve, float), DECIMALS), np.round(np.asarray(published, float)[:len(curve)], DECIMALS)
    if len(theirs) < len(ours):
        raise ValueError(f"the published curve has {len(theirs)} updates, fewer than the {len(ours)} checked")
    same_nan = np.isnan(ours) & np.isnan(theirs)
    gap = np.where(same_nan, 0.0, np.abs(ours - theirs))
    gap = np.where(np.isnan(gap), np.inf, gap)
    differs = np.flatnonzero(gap > 0)
    return (int(differs[0]) + 1 if len(differs) else None), float(gap.max(initial=0.0))


def check_table(pairs: Sequence[tuple[RunResult, RunResult]]) -> pd.DataFrame:
    """One row per experiment: its seeds and updates, and whether every seed's curve equals the
    published one (``pairs``: (check run, published run)), else the first update that differs
    (earliest over the seeds) and the largest difference."""
    rows: dict[str, dict] = {}
    for check, published in pairs:
        name = check.spec["name"].removesuffix(SUFFIX)
        first, gap = first_difference(check.curve, published.curve)
        row = rows.setdefault(name, {"experiment": name, "agent": ALGORITHMS[experiment(name).agent.algorithm].short,
                                     "trainer": published.trainer.get("path", "sb3"), "seeds": 0,
                                     "updates": len(check.curve), "first differing update": None, "largest difference": 0.0})
        row["seeds"] += 1
        if first is not None:
            row["first differing update"] = min(first, row["first differing update"] or first)
        row["largest difference"] = max(row["largest difference"], gap)
    frame = pd.DataFrame(list(rows.values()), columns=["experiment", "agent", "trainer", "seeds", "updates",
                                                       "first differing update", "largest difference"])
    frame["first differing update"] = frame["first differing update"].astype("Int64")
    frame.insert(5, "reproduced", np.where(frame["first differing update"].isna(), "exactly", "no"))
    return frame


def check_runs(profile: str, train_missing: bool = True, names: Sequence[str] | None = None, root=None,
               workers: int | None = None) -> list[tuple[RunResult, RunResult]] | None:
    """The check's runs (trained if missing and ``train_missing``, over ``workers`` processes) with their
    published runs, or None under a profile without a check."""
    pairs = check_specs(profile, names)
    if not pairs:
        return None
    published = {check.key: spec for check, spec in pairs}
    shown = [(result, published_result(published[check.key]))
             for check, result in finished_runs([check for check, _ in pairs], root, train_missing, workers=workers,
                                                progress=False)]
    return [(result, original) for result, original in shown if original is not None]


def summary(table: pd.DataFrame) -> dict[str, int]:
    """The table's counts, for the text: experiments checked, reproduced exactly, runs checked."""
    return {"n_checked": len(table), "n_exact": int((table["reproduced"] == "exactly").sum()),
            "n_check_runs": int(table["seeds"].sum())}
