"""Songs as grid positions: PCA to ``k`` dimensions, then ``levels`` equal-count bins per dimension.

The rule: principal components of the (centred, unscaled) features, as the thesis did,
fitted on the songs chosen by ``fit_on`` (all by default); then, per component, the cut
points are the 20th, 40th, 60th and 80th percentiles of the catalogue's coordinates, so
that every level holds a fifth of the songs along that component (quantile bins). Level 0
holds the lowest coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicrl.users import LEVELS, check_choice


@dataclass
class Catalogue:
    """song id <-> continuous coordinates <-> grid position; the nearest song to any position."""

    ids: np.ndarray  # (n,) str
    genres: np.ndarray  # (n,) str
    features: np.ndarray  # (n, D): the full features the PCA was applied to
    coords: np.ndarray  # (n, k) principal-component coordinates
    positions: np.ndarray  # (n, k) int levels 0..levels-1
    cuts: np.ndarray  # (k, levels-1) cut points per component
    components: np.ndarray  # (k, D)
    mean: np.ndarray  # (D,)
    explained_variance_ratio: np.ndarray  # (k,)

    @classmethod
    def build(cls, features: np.ndarray, ids, genres, k: int = 4, levels: int = LEVELS,
              fit_on: np.ndarray | None = None) -> Catalogue:
        from sklearn.decomposition import PCA

        features = np.asarray(features, dtype=np.float64)
        ids, genres = np.asarray(ids, dtype=str), np.asarray(genres, dtype=str)
        if features.ndim != 2 or len(features) != len(ids) or len(ids) != len(genres):
            raise ValueError(f"features must be (songs, dims) with one id and genre per song; got {features.shape}, "
                             f"{len(ids)} ids, {len(genres)} genres")
        if len(set(ids)) != len(ids):
            raise ValueError("song ids must be unique")
        fit = features if fit_on is None else features[np.asarray(fit_on, bool)]
        if not (isinstance(k, (int, np.integer)) and 1 <= k <= min(fit.shape)):
            raise ValueError(f"k must be an integer 1..{min(fit.shape)} (songs and dims of the fit set), got {k!r}")
        if not (isinstance(levels, (int, np.integer)) and levels >= 2):
            raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
        pca = PCA(n_components=k, svd_solver="full").fit(fit)
        coords = pca.transform(features)
        cuts = np.quantile(coords, np.arange(1, levels) / levels, axis=0).T
        catalogue = cls(ids, genres, features, coords, np.zeros_like(coords, dtype=int), cuts,
                        pca.components_, pca.mean_, pca.explained_variance_ratio_)
        catalogue.positions = catalogue.to_grid(coords)
        return catalogue

    @property
    def k(self) -> int:
        return self.coords.shape[1]

    @property
    def levels(self) -> int:
        return self.cuts.shape[1] + 1

    def to_grid(self, coords: np.ndarray) -> np.ndarray:
        """Levels of any coordinates (n, k) by the catalogue's cut points."""
        coords = np.atleast_2d(coords)
        return np.stack([np.searchsorted(self.cuts[j], coords[:, j], side="right") for j in range(self.k)], axis=1)

    def transform(self, features: np.ndarray) -> np.ndarray:
        """Coordinates of new feature rows in this catalogue's principal components."""
        return (np.atleast_2d(features) - self.mean) @ self.components.T

    def index(self, song_id: str) -> int:
        found = np.flatnonzero(self.ids == song_id)
        if not len(found):
            raise KeyError(f"no song {song_id!r} in the catalogue ({len(self.ids)} songs, e.g. {str(self.ids[0])!r})")
        return int(found[0])

    def position_of(self, song_id: str) -> tuple[int, ...]:
        return tuple(int(v) for v in self.positions[self.index(song_id)])

    def coords_of(self, song_id: str) -> np.ndarray:
        return self.coords[self.index(song_id)]

    def _check_position(self, position) -> np.ndarray:
        position = np.asarray(position)
        if position.shape != (self.k,) or not np.issubdtype(position.dtype, np.integer) \
                or position.min() < 0 or position.max() >= self.levels:
            raise ValueError(f"a position is {self.k} integer levels in 0..{self.levels - 1}, got {position.tolist()!r}")
        return position

    def songs_at(self, position) -> list[str]:
        """Ids of the songs whose grid position is ``position`` (possibly none)."""
        position = self._check_position(position)
        return self.ids[(self.positions == position).all(axis=1)].tolist()

    def nearest_songs(self, position, n: int = 1) -> list[str]:
        """The ``n`` songs nearest to ``position``: by Manhattan distance on the grid, ties broken by
        the Euclidean distance of the song's fractional level (its coordinate's quantile in the
        catalogue, times ``levels``, minus 0.5) to the position."""
        position = self._check_position(position)
        grid = np.abs(self.positions - position).sum(axis=1)
        fine = np.linalg.norm(self.fractional_levels() - position, axis=1)
        return self.ids[np.lexsort((fine, grid))[:n]].tolist()

    def nearest_song(self, position) -> str:
        return self.nearest_songs(position, 1)[0]

    def fractional_levels(self) -> np.ndarray:
        ranks = (np.argsort(np.argsort(self.coords, axis=0), axis=0) + 0.5) / len(self.coords)
        return ranks * self.levels - 0.5

    def occupancy(self) -> dict[str, float]:
        """How the songs fill the grid: occupied positions, and songs per occupied position."""
        _, counts = np.unique(self.positions, axis=0, return_counts=True)
        return {"positions": self.levels ** self.k, "occupied": len(counts),
                "share occupied": len(counts) / self.levels ** self.k,
                "max songs per position": int(counts.max()), "mean songs per occupied": float(counts.mean())}


LAYER_CHOICES = ("second", "third", "last", "pooled")


def from_features(feats, layer: str = "third", k: int = 4, allow_missing: bool = False) -> Catalogue:
    """The catalogue of a ``FeatureSet``: the tag features of a thesis layer ("second", "third",
    "last") or all 160 pooled features ("pooled"), PCA axes fitted on the balanced14 subset.

    If some clips have no features (``feats.failed``), this raises and names them, unless
    ``allow_missing``: a catalogue silently missing songs would bias every table built on it.
    """
    from musicrl.music.features import THESIS_LAYERS

    check_choice("layer", layer, LAYER_CHOICES)
    if feats.failed and not allow_missing:
        missing = ", ".join(f"{t} ({why})" for t, why in sorted(feats.failed.items()))
        raise ValueError(f"the catalogue is missing features for {len(feats.failed)} clip(s): {missing}; "
                         "fix or remove them, or pass allow_missing=True")
    x = feats.matrix("pooled", "all") if layer == "pooled" else feats.matrix("tags", THESIS_LAYERS[layer])
    balanced = feats.tracks["balanced14"].to_numpy(bool)
    return Catalogue.build(x, feats.tracks["track_id"], feats.tracks["genre"], k=k, fit_on=balanced if balanced.any() else None)
