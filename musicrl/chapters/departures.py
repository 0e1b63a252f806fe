"""The page "How this reproduction departs from the thesis": one row per departure, why, and its
measured effect (computed here from the published runs and the manifest) or "not measured"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from musicrl import profiles, registry
from musicrl.chapters.verdicts import pooled_ci, thesis_mean, verdict_above, verdict_reaches
from musicrl.publish import load_result
from musicrl.runfiles import RunResult
from musicrl.stats import format_ci

GRU_INIT_EXPERIMENT, GRU_INIT = registry.PUBLISHED_OWN_VARIANTS[0]
NOT_MEASURED = "not measured"


def gru_init_runs(profile: str = "full", root=None) -> tuple[list[RunResult], list[RunResult]]:
    """The published runs of ``fig14-gru`` and of its variant with ikostrikov's GRU initialisation
    (the seeds either has; empty where none is finished or published)."""
    seeds = profiles.get(profile).training.seeds
    base = [load_result(registry.run_spec(GRU_INIT_EXPERIMENT, profile, s), root) for s in seeds]
    variant = [load_result(registry.own_run_spec(GRU_INIT_EXPERIMENT, profile, s, GRU_INIT), root) for s in seeds]
    return [r for r in base if r is not None], [r for r in variant if r is not None]


def gru_init_effect(base: Sequence[RunResult], variant: Sequence[RunResult]) -> dict:
    """Pooled mean return of both (95% CIs over seeds), the verdict of the thesis's figure-14 claim
    with each, and whether the initialisation changes it."""
    if not base or not variant:
        missing = "musicrl train fig14-gru --profile full --seed 0 1 2 3 4 --set agent.gru_init=orthogonal"
        return {"measured": False, "text": f"{NOT_MEASURED} yet ({missing})"}
    ours, theirs = pooled_ci(base), pooled_ci(variant)
    thesis = thesis_mean(GRU_INIT_EXPERIMENT.split("-")[0])
    before = verdict_reaches(ours, thesis) if thesis is not None else "–"
    after = verdict_reaches(theirs, thesis) if thesis is not None else "–"
    differs = verdict_above(theirs, ours)
    text = (f"fig14-gru, {len(variant)} seeds: pooled mean {format_ci(*theirs)} with ikostrikov's initialisation against "
            f"{format_ci(*ours)} with PyTorch's ({'higher' if differs == 'held' else 'lower' if differs == 'not held' else 'the CIs overlap'}); "
            f"the figure-14 claim (reaches {thesis:g}): {before} -> {after}")
    return {"measured": True, "text": text, "changes_verdict": before != after, "before": before, "after": after,
            "variant": theirs, "base": ours}


def seed_spread(runs: dict[str, list[RunResult]]) -> tuple[int, float, float]:
    """Over the configurations with several published seeds: how many, and the median and largest
    difference between their best and worst seed's pooled mean return."""
    spreads = [max(r.pooled.mean for r in rs) - min(r.pooled.mean for r in rs) for rs in runs.values() if len(rs) > 1]
    if not spreads:
        return 0, float("nan"), float("nan")
    return len(spreads), float(np.median(spreads)), float(np.max(spreads))


def unstated_budgets() -> list[str]:
    """The thesis's experiments whose captions give no point of convergence: their budgets are ours alone."""
    return [name for name in registry.EXPERIMENTS if registry.experiment(name).converged is None]


def table(clips: int, manifest_genres: int, seeds: tuple[int, float, float], gru: dict, n_seeds: int) -> pd.DataFrame:
    """The departures, one row each: what the thesis did, what this book does, why, the measured effect."""
    configs, median, largest = seeds
    unstated = unstated_budgets()
    rows = [
        ("Data", "GTZAN, 1000 clips in 10 genres", f"{clips} of the 1000 clips ({manifest_genres} genres, uneven)",
         "not every clip could be gathered (the data folder's README)", "every count is read from the manifest; genre "
         "accuracy and the PCA axes use the balanced14 subset (14 per genre)"),
        ("Tagger", "compact_cnn's batch normalization with the statistics of the batch at hand (Keras 1 mode=2)",
         "statistics of the balanced14 reference set, frozen", "a song's features must not depend on the songs batched "
         "beside it", "measured in 'Music features' (what the batch-normalization choice changes)"),
        ("Tagger", "decibels relative to the batch's maximum", "relative to each clip's own maximum", "the same reason",
         NOT_MEASURED),
        ("Seeds", "one run per configuration", f"{n_seeds} seeds per configuration, 95% CIs",
         "one run cannot tell an effect from luck",
         f"over {configs} configurations the best and worst seed's pooled mean return differ by {median:.1f} (median), "
         f"up to {largest:.1f}"),
        ("GRU-A2C", "ikostrikov's GRU: orthogonal weights, zero biases", "PyTorch's default uniform ±1/√64",
         "SB3 and sb3-contrib build the recurrent layer with PyTorch's defaults", gru["text"]),
        ("A2C heads", "ikostrikov's value head initialised with gain √2", "SB3's value head, gain 1",
         "SB3's policies initialise their heads so", NOT_MEASURED),
        ("ACKTR", "the thesis's table marks it recurrent", "feed-forward", "its own caption and ikostrikov's ACKTR "
         "(recurrent K-FAC is not implemented there) say feed-forward", NOT_MEASURED),
        ("Budgets", "run lengths not stated", f"at least twice the caption's point of convergence; ours alone for "
         f"{len(unstated)} figures ({', '.join(unstated)})", "the thesis states no run lengths",
         "verdicts on those figures depend on our budget"),
        ("Table 1", "the author listening for about four hours", "simulated listeners (ideal, by features, by genre, "
         "noisy); a class can add its own with musicrl serve", "no listening test could be run here", NOT_MEASURED),
        ("musicnn", "(not in the thesis)", "musicnn at 12 kHz (it was trained at 16 kHz)", "the clips here are 12 kHz",
         NOT_MEASURED),
    ]
    return pd.DataFrame(rows, columns=["part", "the thesis", "this book", "why", "measured effect"])
