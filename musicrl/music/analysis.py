"""What the features say about genres: centres and their distances (the thesis's heatmaps),
its statements about them, tags per genre, genre accuracy, and nearest-neighbour agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd

from musicrl.profiles import PCS
from musicrl.users import check_choice

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
CLASSIFIERS = ("kNN", "linear SVM")
CHOI = {"best pretrained layer combination": 0.898, "all five layers + MFCC": 0.781, "MFCC statistics": 0.660,
        "state of the art (2017)": 0.945}


def genre_order(genres) -> list[str]:
    present = set(np.asarray(genres))
    return [g for g in GENRES if g in present] + sorted(present - set(GENRES))


def genre_centres(coords: np.ndarray, genres) -> pd.DataFrame:
    genres = np.asarray(genres)
    order = genre_order(genres)
    return pd.DataFrame([coords[genres == g].mean(axis=0) for g in order], index=order)


def distance_matrix(coords: np.ndarray, genres) -> pd.DataFrame:
    """Euclidean distances between genre centres (the thesis's figures 29-31)."""
    centres = genre_centres(coords, genres)
    values = np.linalg.norm(centres.values[:, None] - centres.values[None], axis=-1)
    return pd.DataFrame(values, index=centres.index, columns=centres.index)


def mean_distance(matrix: pd.DataFrame) -> pd.Series:
    """Each genre's mean distance to the other genres, relative to the mean of all pairs."""
    values = matrix.values
    off = ~np.eye(len(values), dtype=bool)
    return pd.Series(values.sum(axis=1) / (len(values) - 1) / values[off].mean(), index=matrix.index)


def nearest_genres(matrix: pd.DataFrame, genre: str, n: int) -> list[str]:
    return matrix[genre].drop(genre).nsmallest(n).index.tolist()


def heatmap_statements(matrices: dict[str, pd.DataFrame], last_coords: np.ndarray | None = None, genres=None) -> pd.DataFrame:
    """The thesis's statements about figures 29-31 (and section 6.2), each checked on ``matrices``
    (keys "second", "third", "last"), with the rule used and whether it held. With the last
    layer's PCA coordinates and genres, also its statement about figure 26."""
    rows = []

    def add(section, layer, claim, rule, measured, held):
        rows.append({"thesis": section, "layer": layer, "statement": claim, "rule": rule, "ours": measured, "held": "held" if held else "not held"})

    last, third = matrices["last"], matrices["third"]
    if last_coords is not None:
        centres = genre_centres(last_coords[:, :2], genres)
        order = np.linalg.norm(centres - centres.mean(), axis=1).argsort()
        central = centres.index[order].tolist()
        add("5.2, fig. 26", "last", "classical music inhabits the central parts",
            "in the first 2 PCs, classical's centre is among the 3 genre centres nearest the mean of all centres",
            f"nearest the middle: {', '.join(central[:3])}", "classical" in central[:3])
    rel = {name: mean_distance(m) for name, m in matrices.items()}
    rank = rel["last"].rank()["classical"]
    add("5.3, fig. 29", "last", "classical has a relatively low distance to many other genres",
        "classical's mean distance to the others is in the lower half of the 10 genres",
        f"rank {rank:.0f} of {len(last)} (1 = closest)", rank <= len(last) / 2)
    jazz = nearest_genres(last, "jazz", 2)
    add("5.3, fig. 29", "last", "the genres with the lowest distance to jazz are blues and country",
        "jazz's two nearest genres are blues and country", ", ".join(jazz), set(jazz) == {"blues", "country"})
    metal_rank = rel["last"].rank()["metal"]
    metal_nearest = nearest_genres(last, "metal", 1)[0]
    add("5.3, fig. 29", "last", "metal has a large distance to most genres except for rock",
        "rock is metal's nearest genre and metal's mean distance is in the upper half",
        f"nearest {metal_nearest}; rank {metal_rank:.0f} of {len(last)}", metal_nearest == "rock" and metal_rank > len(last) / 2)
    for name in ("third", "second"):
        top = rel[name].idxmax()
        add("5.3, figs. 30-31", name, "classical has a large distance to the other genres",
            "classical has the largest mean distance to the others",
            f"largest: {top} ({rel[name].max():.2f} x the mean pair distance; classical {rel[name]['classical']:.2f})",
            top == "classical")
    add("5.3, figs. 30-31", "second vs third", "in the second layer the distance of classical is even larger",
        "classical's relative mean distance is larger in the second layer than in the third",
        f"second {rel['second']['classical']:.2f}, third {rel['third']['classical']:.2f}",
        rel["second"]["classical"] > rel["third"]["classical"])
    rock = nearest_genres(third, "rock", 3)
    add("6.2", "third", "two of the three closest genres to rock are blues and country",
        "blues and country are among rock's 3 nearest genres", ", ".join(rock), {"blues", "country"} <= set(rock))
    return pd.DataFrame(rows)


def top_tags(tags: np.ndarray, genres, names, n: int = 5) -> pd.DataFrame:
    """The ``n`` tags with the highest mean probability per genre, with that mean."""
    genres = np.asarray(genres)
    rows = {}
    for g in genre_order(genres):
        mean = tags[genres == g].mean(axis=0)
        rows[g] = [f"{names[i]} ({mean[i]:.2f})" for i in np.argsort(-mean)[:n]]
    return pd.DataFrame.from_dict(rows, orient="index", columns=[f"tag {i + 1}" for i in range(n)])


def _pipeline(classifier: str, pcs, seed: int):
    from sklearn.decomposition import PCA
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    check_choice("classifier", classifier, CLASSIFIERS)
    model = KNeighborsClassifier(n_neighbors=5) if classifier == "kNN" else SVC(kernel="linear", C=1.0)
    steps = [StandardScaler()] + ([] if pcs == "all" else [PCA(n_components=pcs, random_state=seed)]) + [model]
    return make_pipeline(*steps)


def genre_accuracy(x: np.ndarray, genres, classifier: str, pcs="all", folds: int = 5, repeats: int = 10, seed: int = 0,
                   workers: int | None = None) -> np.ndarray:
    """Accuracy on each fold of repeated stratified cross-validation (the same folds for the same
    ``seed``, ``folds`` and ``repeats``): standardize, PCA to ``pcs`` components (fitted on the
    training folds only), then kNN (k = 5) or a linear SVM (C = 1). ``workers`` processes fit the
    folds (scikit-learn's ``n_jobs``: None one, -1 one per core); the scores do not depend on it."""
    from sklearn.model_selection import RepeatedStratifiedKFold, cross_val_score

    if pcs != "all" and pcs > min(x.shape[1], len(x) * (folds - 1) // folds):
        return np.full(folds * repeats, np.nan)
    cv = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    return cross_val_score(_pipeline(classifier, pcs, seed), x, np.asarray(genres), cv=cv, n_jobs=workers)


def nearest_neighbour_agreement(x: np.ndarray, genres) -> pd.Series:
    """Per genre (and over all clips), the share of songs whose nearest other song (Euclidean in
    ``x``) has the same genre."""
    genres = np.asarray(genres)
    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    same = genres[distances.argmin(axis=1)] == genres
    return pd.Series({**{g: same[genres == g].mean() for g in genre_order(genres)}, "all clips": same.mean()})


def chance_agreement(genres) -> pd.Series:
    """What a random nearest neighbour would give: (songs of the genre - 1) / (songs - 1)."""
    genres = np.asarray(genres)
    per_genre = {g: ((genres == g).sum() - 1) / (len(genres) - 1) for g in genre_order(genres)}
    overall = sum((genres == g).mean() * share for g, share in per_genre.items())
    return pd.Series({**per_genre, "all clips": overall})


def accuracy_table(feature_sets: dict[str, np.ndarray], genres, pcs=PCS, classifiers=CLASSIFIERS,
                   folds: int = 5, repeats: int = 10, seed: int = 0, workers: int | None = None) -> pd.DataFrame:
    """Genre accuracy of every feature set x classifier x number of components, all on the same
    folds: mean, standard deviation over folds, and the 95% interval of the mean over repeats
    (``workers`` as in :func:`genre_accuracy`)."""
    rows = []
    for name, x in feature_sets.items():
        for classifier in classifiers:
            for n in pcs:
                scores = genre_accuracy(x, genres, classifier, n, folds, repeats, seed, workers)
                per_repeat = scores.reshape(repeats, folds).mean(axis=1)
                half = 1.96 * per_repeat.std(ddof=1) / np.sqrt(repeats) if repeats > 1 else np.nan
                rows.append({"features": name, "dims": x.shape[1], "classifier": classifier, "PCs": str(n),
                             "accuracy": scores.mean(), "fold std": scores.std(), "ci half-width": half})
    return pd.DataFrame(rows)
