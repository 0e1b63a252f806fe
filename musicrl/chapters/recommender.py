"""The chapter "The recommender": what not repeating a song changes."""

from __future__ import annotations

from typing import Any

import pandas as pd

from musicrl.evaluation import Policy
from musicrl.music import recommender as rec
from musicrl.music.catalogue import Catalogue


def no_repeat_comparison(catalogue: Catalogue, policy: Policy, name: str, per_genre: int,
                         seed: int = 0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The recommender with and without ``no_repeat`` against the feature and the ideal listener:
    per listener the distinct songs, the share of sessions that play the target and the rating
    difference to the ideal user; and the values the chapter's text quotes."""
    targets = rec.choose_targets(catalogue, per_genre, seed)
    rows = []
    for flag in (False, True):
        recommender = rec.Recommender(policy, catalogue, name, no_repeat=flag)
        sessions = rec.simulate(recommender, [rec.FeatureListener(catalogue), rec.IdealListener(catalogue)], targets, seed)
        frame = rec.session_frame(sessions, catalogue)
        for listener, part in frame.groupby("listener"):
            rows.append({"no repeat": flag, "listener": listener, "distinct songs": part["distinct songs"].mean(),
                         "target played": part.found.mean(),
                         "rating difference to the ideal user": part["rating difference"].mean()})
    compare = pd.DataFrame(rows)
    ideal = compare[compare.listener == "ideal"].set_index("no repeat")
    quoted = {
        "distinct_norepeat": float(compare[compare["no repeat"]]["distinct songs"].mean()),
        "found_plain": float(ideal.loc[False, "target played"]), "found_norepeat": float(ideal.loc[True, "target played"]),
        "diff_plain": float(ideal.loc[False, "rating difference to the ideal user"]),
        "diff_norepeat": float(ideal.loc[True, "rating difference to the ideal user"]),
    }
    return compare, quoted
