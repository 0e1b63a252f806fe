"""The chapter "A stronger tagger": compact_cnn's thesis layers beside musicnn's, from features to
the recommender, and the verdict on the thesis's last conclusion (better features would make a
better recommender).

Feature sets are ``{name: (n, dims)}`` arrays over the same clips, in the same order. The
recommender's quality that does not depend on a tagger is the **genre hit rate**: the share of
the songs a session plays after its start song whose genre is the target's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from musicrl.chapters.verdicts import HELD, NOT_HELD, UNDECIDED, verdict_above
from musicrl.music import analysis, features
from musicrl.music.catalogue import Catalogue
from musicrl.stats import format_ci, mean_ci

COMPACT = {"compact_cnn, second layer (tags)": ("tags", 2), "compact_cnn, third layer (tags)": ("tags", 3),
           "compact_cnn, last layer (tags)": ("tags", 5)}
MUSICNN_LAYERS = {"musicnn-msd, taggram": "taggram", "musicnn-msd, penultimate": "penultimate"}
THESIS_PICK, MUSICNN_PICK = "compact_cnn, third layer (tags)", "musicnn-msd, taggram"  # the compared catalogues
CLAIM = "Better features make a better recommender (section 7): a stronger tagger's catalogue plays more songs of the target's genre"


def feature_sets(feats: features.FeatureSet, musicnn_records: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """compact_cnn's thesis layers and musicnn's layers, on the clips both have, in ``feats``'s order."""
    ids = feats.tracks["track_id"].tolist()
    missing = [t for t in ids if t not in musicnn_records]
    if missing:
        raise ValueError(f"musicnn features missing for {len(missing)} clip(s), e.g. {missing[:3]}; run musicrl features "
                         "--tagger musicnn-msd")
    sets = {name: feats.matrix(kind, block) for name, (kind, block) in COMPACT.items()}
    sets.update({name: np.stack([musicnn_records[t][layer] for t in ids]) for name, layer in MUSICNN_LAYERS.items()})
    return sets


def catalogues(sets: dict[str, np.ndarray], feats: features.FeatureSet, k: int = 4) -> dict[str, Catalogue]:
    """Each feature set's 4-level PCA grid, axes fitted on the balanced14 clips as the thesis's layers are."""
    balanced = feats.tracks["balanced14"].to_numpy(bool)
    return {name: Catalogue.build(x, feats.tracks["track_id"], feats.tracks["genre"], k=k,
                                  fit_on=balanced if balanced.any() else None) for name, x in sets.items()}


def occupancy_table(cats: dict[str, Catalogue]) -> pd.DataFrame:
    """How each catalogue fills the 5^k grid: occupied positions, songs per position, empty share."""
    table = pd.DataFrame({name: c.occupancy() for name, c in cats.items()}).T
    table["empty positions"] = table["positions"] - table["occupied"]
    return table.astype({"positions": int, "occupied": int, "empty positions": int, "max songs per position": int})


def session_genre_hits(session, catalogue: Catalogue) -> float:
    """The share of the songs played after the start song whose genre is the target's."""
    genre = dict(zip(catalogue.ids, catalogue.genres))
    played = session.songs[1:]
    return float(np.mean([genre[s] == genre[session.target] for s in played])) if played else float("nan")


def recommender_rows(cats: dict[str, Catalogue], players: dict, targets_per_genre: int, seed: int = 0) -> pd.DataFrame:
    """One row per (catalogue, player, listener, target) session: the ideal, feature and genre
    listeners on each catalogue's own songs, the same targets for every catalogue (drawn on the
    first), with the rating difference, steps to the target and the genre hit rate."""
    from musicrl.music import recommender as rec

    first = next(iter(cats.values()))
    targets = rec.choose_targets(first, targets_per_genre, seed)
    frames = []
    for name, cat in cats.items():
        listeners: list[rec.Listener] = [rec.IdealListener(cat), rec.FeatureListener(cat), rec.GenreListener(cat)]
        for player, policy in players.items():
            sessions = rec.simulate(rec.Recommender(policy, cat, player), listeners, targets, seed)
            frame = rec.session_frame(sessions, cat).assign(catalogue=name, player=player,
                                                            **{"genre hits": [session_genre_hits(s, cat) for s in sessions]})
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def recommender_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per catalogue and player: genre hit rate and the ideal listener's share of targets found
    (mean [95% CI] over targets), mean steps to the target where found, and Table 1's columns
    (mean rating difference) for the feature and genre listeners."""
    out = []
    for (name, player), part in rows.groupby(["catalogue", "player"], sort=False):
        ideal = part[part.listener == "ideal"]
        out.append({"catalogue": name, "player": player,
                    "genre hit rate": format_ci(*mean_ci(ideal["genre hits"])),
                    "targets found": format_ci(*mean_ci(ideal["found"].astype(float))),
                    "steps to target": ideal["steps to target"].mean(),
                    "Table 1, feature": part[part.listener == "feature"]["rating difference"].mean(),
                    "Table 1, genre": part[part.listener == "genre"]["rating difference"].mean()})
    return pd.DataFrame(out)


def verdict(accuracy: pd.DataFrame, rows: pd.DataFrame, player: str, pcs: str = "4") -> dict:
    """The verdict on :data:`CLAIM`: musicnn's catalogue against the thesis's (third layer) on the
    genre hit rate of ``player``'s sessions with the ideal listener (CIs over targets); the premise,
    genre accuracy in ``pcs`` components, beside it (CIs over repeats)."""
    def hits(name: str) -> tuple[float, float, float]:
        part = rows[(rows.catalogue == name) & (rows.player == player) & (rows.listener == "ideal")]
        return mean_ci(part["genre hits"])

    def acc(name: str) -> tuple[float, float, float]:
        row = accuracy[(accuracy.features == name) & (accuracy.PCs == pcs) & (accuracy.classifier == "linear SVM")].iloc[0]
        return row.accuracy, row.accuracy - row["ci half-width"], row.accuracy + row["ci half-width"]

    ours, thesis = hits(MUSICNN_PICK), hits(THESIS_PICK)
    premise = verdict_above(acc(MUSICNN_PICK), acc(THESIS_PICK))
    result = verdict_above(ours, thesis)
    why = {HELD: "musicnn's catalogue plays more songs of the target's genre (the CIs do not overlap)",
           NOT_HELD: "musicnn's catalogue plays fewer songs of the target's genre (the CIs do not overlap)",
           UNDECIDED: "the CIs of the genre hit rates overlap"}[result]
    return {"claim": CLAIM, "player": player, "musicnn (taggram)": format_ci(*ours), "compact_cnn (third layer)": format_ci(*thesis),
            "verdict": result, "why": why,
            "premise: genre accuracy in 4 PCs": f"{format_ci(*acc(MUSICNN_PICK))} vs {format_ci(*acc(THESIS_PICK))} ({premise})"}


def accuracy_figure(accuracy: pd.DataFrame, pcs):
    """Linear-SVM genre accuracy against the number of principal components, one line per feature
    set, with its 95% CI over repeats."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    svm = accuracy[accuracy.classifier == "linear SVM"]
    for i, (name, part) in enumerate(svm.groupby("features", sort=False)):
        part = part.set_index("PCs").reindex([str(p) for p in pcs])
        ax.errorbar(range(len(part)), part.accuracy, yerr=part["ci half-width"], fmt="-o" if "musicnn" in name else "--s",
                    ms=3, capsize=2, label=name, color=f"C{i}")
    ax.set(xticks=range(len(pcs)), xticklabels=[str(p) for p in pcs], xlabel="principal components", ylabel="accuracy",
           title="genre accuracy (linear SVM, balanced14, cross-validated)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    fig.tight_layout()
    return fig


def statements_side_by_side(compact_matrices: dict[str, pd.DataFrame], musicnn_matrices: dict[str, pd.DataFrame],
                            compact_last: np.ndarray, musicnn_last: np.ndarray, genres) -> pd.DataFrame:
    """The thesis's heatmap statements judged on compact_cnn's layers and on musicnn's, where
    musicnn's taggram stands for the last layer (both are the 50 MSD tags) and its penultimate
    layer for the third; the second layer has no counterpart, so its rows are compact_cnn's only."""
    ours = analysis.heatmap_statements(compact_matrices, compact_last, genres)
    theirs = analysis.heatmap_statements({"last": musicnn_matrices["last"], "third": musicnn_matrices["third"],
                                          "second": musicnn_matrices["third"]}, musicnn_last, genres)
    has_counterpart = ~ours["layer"].str.contains("second")
    return pd.DataFrame({"thesis": ours["thesis"], "statement": ours["statement"], "rule": ours["rule"],
                         "compact_cnn": ours["ours"] + " (" + ours["held"] + ")",
                         "musicnn-msd": np.where(has_counterpart, theirs["ours"] + " (" + theirs["held"] + ")", "–")})
