"""Tagger features for a catalogue of clips, cached in the results store.

For every clip the tagger gives, per block k = 1..5, the 32 pooled values of the block
(Choi's transfer-learning features; 160 for all five) and the Dense(50) tag layer applied
to them (the thesis's "50 features per layer"). The thesis's "second, third and last
layer" are blocks 2, 3 and 5 (``THESIS_LAYERS``).

A clip's features are cached under the hash of (clip sha256, weights sha256, settings),
one JSON per clip, so a rebuild is free and an interrupted run keeps every finished batch.
A clip that cannot be read is reported and skipped; the others are still processed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musicrl.music import gtzan_dir
from musicrl.music.audio import SR, AudioError, Clip, load_clip, sha256
from musicrl.store import Store
from musicrl.users import check_choice

VERSION = 1
BLOCKS = 5
THESIS_LAYERS = {"second": 2, "third": 3, "last": 5}  # thesis name -> block (1-based)
MANIFEST_COLUMNS = ("track_id", "genre", "path", "balanced14")
MFCC_SETTINGS = {"n_mfcc": 20, "n_fft": 512, "hop_length": 256, "stats": "mean,std of mfcc, delta, delta2", "version": 1}


class ManifestError(ValueError):
    """A manifest.csv that cannot be read as a catalogue; the message names the file and the row."""


def read_manifest(root: Path | str | None = None) -> pd.DataFrame:
    """The clips of a catalogue folder: ``track_id, genre, path`` (absolute), ``balanced14`` (bool).

    The file is checked once: every row has each column of the header, a non-empty
    ``track_id`` (unique), ``genre`` and ``path``, and ``balanced14`` is 0 or 1.
    """
    import csv

    root = Path(root) if root is not None else gtzan_dir()
    manifest = root / "manifest.csv"
    if not manifest.is_file():
        raise FileNotFoundError(f"no manifest.csv in {root}; set MUSICRL_GTZAN to the folder of the GTZAN clips and their "
                                "manifest, or make one from the GTZAN download with musicrl gtzan-import (README: 'Data, models and results')")
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ManifestError(f"{manifest}: not a UTF-8 CSV file ({error})") from None
    if not rows:
        raise ManifestError(f"{manifest}: empty; expected a header with at least {list(MANIFEST_COLUMNS)}")
    header = rows[0]
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{manifest}: missing columns {missing}; expected at least {list(MANIFEST_COLUMNS)}")
    records: list = []
    seen: dict = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ManifestError(f"{manifest}, row {line}: {len(row)} fields, the header has {len(header)}")
        record = dict(zip(header, (v.strip() for v in row)))
        for column in ("track_id", "genre", "path"):
            if not record[column]:
                raise ManifestError(f"{manifest}, row {line}: empty {column}")
        if record["balanced14"] not in ("0", "1"):
            raise ManifestError(f"{manifest}, row {line}: balanced14 is {record['balanced14']!r}; accepted: 0 or 1")
        seen.setdefault(record["track_id"], []).append(line)
        records.append({"track_id": record["track_id"], "genre": record["genre"], "path": str(root / record["path"]),
                        "balanced14": record["balanced14"] == "1"})
    duplicates = {k: v for k, v in seen.items() if len(v) > 1}
    if duplicates:
        listed = ", ".join(f"{k} (rows {', '.join(map(str, v))})" for k, v in list(duplicates.items())[:5])
        raise ManifestError(f"{manifest}: duplicate track_id {listed}; each clip must appear once")
    return pd.DataFrame(records, columns=list(MANIFEST_COLUMNS))


def subset(tracks: pd.DataFrame, per_genre: int | None = None, balanced: bool = False) -> pd.DataFrame:
    """The balanced subset and/or the first ``per_genre`` clips of each genre (manifest order)."""
    if balanced:
        tracks = tracks[tracks["balanced14"]]
    if per_genre is not None:
        tracks = tracks.groupby("genre", sort=False).head(per_genre)
    return tracks.reset_index(drop=True)


@dataclass
class FeatureSet:
    """Features of the clips that could be read, in catalogue order, and the clips that could not."""

    tracks: pd.DataFrame  # track_id, genre, path, balanced14, padded
    pooled: np.ndarray  # (n, 5, 32)
    tags: np.ndarray  # (n, 5, 50)
    failed: dict[str, str] = field(default_factory=dict)  # track_id -> reason
    settings: dict = field(default_factory=dict)

    def matrix(self, kind: str, block: int | str) -> np.ndarray:
        """``kind`` "tags" or "pooled"; ``block`` 1..5, or "all" (the five concatenated)."""
        check_choice("feature kind", kind, ("tags", "pooled"))
        values = self.tags if kind == "tags" else self.pooled
        if block == "all":
            return values.reshape(len(values), -1)
        if not (isinstance(block, (int, np.integer)) and 1 <= block <= BLOCKS):
            raise ValueError(f"block must be 1..{BLOCKS} or 'all', got {block!r}")
        return values[:, block - 1]

    def select(self, mask: np.ndarray) -> FeatureSet:
        mask = np.asarray(mask, bool)
        return FeatureSet(self.tracks[mask].reset_index(drop=True), self.pooled[mask], self.tags[mask], self.failed, self.settings)


def _load_batch(rows: pd.DataFrame) -> tuple[list, list[Clip], dict[str, str]]:
    loaded, failed = [], {}
    for row in rows.itertuples():
        try:
            loaded.append((row, load_clip(row.path)))
        except AudioError as error:
            failed[row.track_id] = str(error)
    return [r for r, _ in loaded], [c for _, c in loaded], failed


def _hashes(tracks: pd.DataFrame) -> list[str | None]:
    return [sha256(p) if Path(p).is_file() else None for p in tracks["path"]]


class Extractor:
    """Runs the tagger over clips with a per-clip cache. TensorFlow is only imported if a clip is missing.

    ``bn="reference"`` estimates batch statistics once over ``reference`` (cached too);
    ``bn="clip"`` normalizes every clip on its own (see ``musicrl.music.tagger``).
    """

    def __init__(self, reference: pd.DataFrame | None = None, bn: str = "reference", store: Store | None = None,
                 models: Path | str | None = None, batch_size: int = 16) -> None:
        from musicrl.music import tagger

        check_choice("bn", bn, tagger.BN_CHOICES)
        if bn == "reference" and (reference is None or len(reference) == 0):
            raise ValueError("bn='reference' needs a non-empty reference set of clips (e.g. the balanced14 subset)")
        self.bn, self.store, self.models, self.batch_size = bn, store or Store(), models, batch_size
        self.weights = tagger.TaggerWeights.load(models)
        self.reference = reference if bn == "reference" else None
        hashes = _hashes(self.reference) if self.reference is not None else []
        if self.reference is not None and any(h is None for h in hashes):
            raise FileNotFoundError(f"reference clips missing: {[p for p, h in zip(self.reference['path'], hashes) if h is None]}")
        self.reference_hash = tagger.reference_hash([h for h in hashes if h is not None]) if hashes else ""
        self._net = None

    @property
    def settings(self) -> dict:
        return {"weights": self.weights.sha256, "bn": self.bn, "reference": self.reference_hash,
                "frontend": "dB max per clip", "version": VERSION}

    def stats(self):
        from musicrl.music import tagger

        config = {k: v for k, v in self.settings.items() if k != "bn"}

        def compute():
            audio = np.stack([load_clip(p).samples for p in tqdm(self.reference["path"], desc="reference clips", leave=False)])
            return tagger.estimate_stats(self.weights, audio, self.reference_hash, chunk=self.batch_size).to_json()

        return tagger.BatchStats.from_json(self.store.get_or_compute("tagger-stats", config, compute))

    def network(self):
        from musicrl.music import tagger

        if self._net is None:
            stats = self.stats() if self.bn == "reference" else None
            self._net = tagger.CompactCNN(self.weights, stats, bn=self.bn)
        return self._net

    def extract(self, tracks: pd.DataFrame, progress: bool = True) -> FeatureSet:
        hashes = _hashes(tracks)
        failed = {t: f"{p}: no such audio file" for t, p, h in zip(tracks["track_id"], tracks["path"], hashes) if h is None}
        configs = {t: {**self.settings, "clip": h} for t, h in zip(tracks["track_id"], hashes) if h is not None}
        records = {t: self.store.get("features", c) for t, c in configs.items()}
        todo = tracks[[records.get(t, 0) is None for t in tracks["track_id"]]]
        batches = range(0, len(todo), self.batch_size)
        for start in tqdm(batches, desc=f"tagger ({len(todo)} clips)", disable=not progress or not len(todo)):
            rows, clips, bad = _load_batch(todo.iloc[start : start + self.batch_size])
            failed.update(bad)
            if not clips:
                continue
            out = self.network().predict(np.stack([c.samples for c in clips]), batch_size=self.batch_size)
            for i, (row, clip) in enumerate(zip(rows, clips)):
                record = {"pooled": out["features"][i].tolist(), "tags": out["tags"][i].tolist(),
                          "padded": clip.padded, "duration": clip.duration}
                self.store.put("features", configs[row.track_id], record)
                records[row.track_id] = record
        for track_id, reason in failed.items():
            warnings.warn(f"skipped {track_id}: {reason}", stacklevel=2)
        return _feature_set(tracks, records, failed, self.settings)


def _feature_set(tracks: pd.DataFrame, records: dict, failed: dict, settings: dict) -> FeatureSet:
    ok = tracks[[records.get(t) is not None and t not in failed for t in tracks["track_id"]]].reset_index(drop=True)
    chosen = [records[t] for t in ok["track_id"]]
    ok = ok.assign(padded=[r["padded"] for r in chosen])
    pooled = np.array([r["pooled"] for r in chosen], dtype=np.float32).reshape(len(ok), BLOCKS, -1)
    tags = np.array([r["tags"] for r in chosen], dtype=np.float32).reshape(len(ok), BLOCKS, -1)
    return FeatureSet(ok, pooled, tags, dict(failed), settings)


def mfcc_statistics(tracks: pd.DataFrame, store: Store | None = None, progress: bool = True) -> np.ndarray:
    """The MFCC baseline (librosa): mean and std of 20 MFCCs, their deltas and delta-deltas (120 values)."""
    import librosa

    store = store or Store()
    rows = []
    for path in tqdm(tracks["path"], desc="MFCC", disable=not progress):
        def compute(path=path):
            y = load_clip(path).samples
            m = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, n_fft=512, hop_length=256)
            stack = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)])
            return np.concatenate([stack.mean(axis=1), stack.std(axis=1)]).tolist()

        rows.append(store.get_or_compute("mfcc", {**MFCC_SETTINGS, "clip": sha256(path)}, compute))
    return np.asarray(rows)
