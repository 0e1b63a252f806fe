"""The page "How this reproduction departs from the thesis": its numbers from runs, on tiny inputs."""

from __future__ import annotations

import numpy as np

from musicrl.chapters import departures


class Run:
    """The one attribute the page reads of a run: its pooled mean return."""

    def __init__(self, mean: float) -> None:
        self.pooled = type("Pooled", (), {"mean": mean})()


def test_the_seed_spread_is_best_minus_worst_per_configuration():
    runs = {"a": [Run(1.0), Run(4.0), Run(2.0)], "b": [Run(10.0), Run(11.0)], "c": [Run(5.0)]}
    assert departures.seed_spread(runs) == (2, 2.0, 3.0)
    count, median, largest = departures.seed_spread({"c": [Run(5.0)]})
    assert count == 0 and np.isnan(median) and np.isnan(largest)


def test_the_gru_initialisation_row_says_how_to_measure_it_until_it_is():
    effect = departures.gru_init_effect([], [])
    assert not effect["measured"] and "--set agent.gru_init=orthogonal" in effect["text"]


def test_the_gru_initialisation_effect_compares_cis_and_the_verdict(monkeypatch):
    monkeypatch.setattr(departures, "thesis_mean", lambda name: 10.0)
    base = [Run(v) for v in (8.0, 8.5, 9.0, 8.2, 8.8)]
    variant = [Run(v) for v in (10.5, 11.0, 10.8, 11.2, 10.9)]
    effect = departures.gru_init_effect(base, variant)
    assert effect["measured"] and effect["before"] == "not held" and effect["after"] == "held" and effect["changes_verdict"]
    assert "higher" in effect["text"] and "not held -> held" in effect["text"]


def test_the_table_has_one_row_per_departure_and_computed_cells():
    frame = departures.table(491, 10, (14, 3.25, 9.5), {"text": "measured: x"}, 5)
    assert list(frame.columns) == ["part", "the thesis", "this book", "why", "measured effect"]
    cells = frame.set_index("part")
    assert "491 of the 1000 clips" in cells.loc["Data", "this book"]
    assert cells.loc["Seeds", "measured effect"].startswith("over 14 configurations") and "up to 9.5" in cells.loc["Seeds", "measured effect"]
    assert cells.loc["GRU-A2C", "measured effect"] == "measured: x"
