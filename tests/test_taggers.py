"""The chapter "A stronger tagger": its pure functions on tiny inputs with exact numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicrl.chapters import taggers
from musicrl.music import recommender as rec
from musicrl.music.catalogue import Catalogue


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(0)
    genres = np.repeat(["blues", "jazz", "rock"], 20)
    x = np.stack([{"blues": 0.0, "jazz": 5.0, "rock": -5.0}[g] + rng.normal(0, 1, 6) for g in genres])
    return Catalogue.build(x, [f"{g}.{i:05d}" for i, g in enumerate(genres)], genres, k=4)


def test_the_genre_hit_rate_counts_the_songs_after_the_start(catalogue):
    steps = [rec.Step((2, 2, 2, 2), s, 0, 0, 0, 0) for s in ("rock.00045", "blues.00001", "blues.00002", "jazz.00030")]
    session = rec.Session("blues.00000", "ideal", "greedy", steps)
    assert taggers.session_genre_hits(session, catalogue) == pytest.approx(2 / 3)


def test_occupancy_counts_empty_positions(catalogue):
    table = taggers.occupancy_table({"a": catalogue})
    row = table.loc["a"]
    assert row["positions"] == 625 and row["empty positions"] == 625 - row["occupied"]
    assert row["occupied"] == len(np.unique(catalogue.positions, axis=0))


def frames(musicnn_hits, compact_hits):
    rows = [{"catalogue": taggers.MUSICNN_PICK, "player": "greedy", "listener": "ideal", "genre hits": h} for h in musicnn_hits]
    rows += [{"catalogue": taggers.THESIS_PICK, "player": "greedy", "listener": "ideal", "genre hits": h} for h in compact_hits]
    accuracy = pd.DataFrame([{"features": taggers.MUSICNN_PICK, "PCs": "4", "classifier": "linear SVM", "accuracy": 0.6,
                              "ci half-width": 0.05},
                             {"features": taggers.THESIS_PICK, "PCs": "4", "classifier": "linear SVM", "accuracy": 0.4,
                              "ci half-width": 0.05}])
    return accuracy, pd.DataFrame(rows)


@pytest.mark.parametrize("musicnn_hits, compact_hits, expected", [
    ([0.9, 0.8, 0.85, 0.95], [0.1, 0.2, 0.15, 0.05], "held"),
    ([0.1, 0.2, 0.15, 0.05], [0.9, 0.8, 0.85, 0.95], "not held"),
    ([0.1, 0.9, 0.5, 0.5], [0.2, 0.8, 0.5, 0.5], "undecided"),
])
def test_the_verdict_compares_genre_hit_rates_on_their_cis(musicnn_hits, compact_hits, expected):
    accuracy, rows = frames(musicnn_hits, compact_hits)
    verdict = taggers.verdict(accuracy, rows, "greedy")
    assert verdict["verdict"] == expected
    assert verdict["premise: genre accuracy in 4 PCs"].endswith("(held)")
