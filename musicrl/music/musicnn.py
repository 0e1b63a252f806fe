"""musicnn (Pons & Serra 2019, ISC licence) in torch, from the TensorFlow-1 checkpoints its wheel ships.

The wheel ``musicnn==0.1.0`` cannot be installed beside this project (it pins numpy < 1.17
and TensorFlow 1), so its files are read as they are: the checkpoint of ``MSD_musicnn``
(Million Song Dataset, the same top-50 Last.fm tags as compact_cnn) or ``MTT_musicnn``
(MagnaTagATune) is unpacked from the wheel into the results store and its variables are
loaded by name. The wheel is found at ``$MUSICRL_MUSICNN`` (the wheel file, or a folder
holding it or the unpacked ``musicnn`` package), else in ``<venv>/wheels/`` where ``make``
puts it (``pip download musicnn==0.1.0 --no-deps``); never fetched at run time.

Preprocessing (the package's ``batch_data``): audio at 16 kHz; librosa's mel spectrogram
(n_fft 512, hop 256, 96 bands, power 2; STFT frames centred with reflect padding, as the
2019 librosa did); rounded to float16 as the package stored it, then ``log10(10000 x + 1)``
computed in float32 (NumPy 2 would overflow in float16); patches of 187 frames (3 s), one
after the other, the last incomplete one dropped.

The network (``models.build_musicnn``): a one-channel batch norm of the input; the front end's
timbral convolutions (7 x 38 and 7 x 67 over time x mel, 204 maps each, time padded 3 + 3)
and temporal ones (128, 64 and 32 frames x 1, 51 maps each, "same" padding with the extra
frame at the end), each conv -> ReLU -> batch norm -> max over frequency; the mid end's
three 7-frame convolutions over the 561 front-end maps (64 each) with residual connections;
the back end's max and mean over time of the 753 mid-end features (interleaved: max0,
mean0, max1, ...), batch norm, Dense(200) -> ReLU -> batch norm (the "penultimate"), Dense(50)
-> sigmoid (the taggram). Batch norms in inference mode, epsilon 1e-3. Device-agnostic.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

WHEEL = "musicnn-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
TAGGERS = {"musicnn-msd": "MSD_musicnn", "musicnn-mtt": "MTT_musicnn"}
SR, HOP, N_FFT, N_MELS, PATCH = 16000, 256, 512, 96, 187
EPS = 1e-3
LAYERS = {"taggram": 50, "timbral": 408, "temporal": 153, "cnn1": 64, "cnn2": 64, "cnn3": 64, "mean_pool": 753,
          "max_pool": 753, "penultimate": 200}
VERSION = 1
HOW_TO_GET = ("musicnn's checkpoints come from its wheel: run `.venv/bin/pip download musicnn==0.1.0 --no-deps -d "
              ".venv/wheels` (make test and make book do it), or set MUSICRL_MUSICNN to the wheel file or to the unpacked "
              "musicnn package folder")


def wheel_path() -> Path | None:
    """The wheel (or unpacked package folder) to read the checkpoints from, if there is one."""
    given = os.environ.get("MUSICRL_MUSICNN")
    candidates = [Path(given)] if given else []
    candidates.append(Path(sys.prefix) / "wheels" / WHEEL)
    for path in candidates:
        if path.is_file():
            return path
        if path.is_dir():
            for inner in (path / WHEEL, path / "musicnn", path):
                if inner.is_file() or (inner.is_dir() and (inner / "MSD_musicnn" / ".index").is_file()):
                    return inner
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint(model: str, cache: Path) -> Path:
    """The folder of ``model``'s checkpoint (``.index``, ``.data-...``, ``.meta``), unpacked from the
    wheel into ``cache`` once (the wheel's sha256 checked)."""
    if model not in TAGGERS.values():
        raise ValueError(f"unknown musicnn model {model!r}; accepted: {', '.join(TAGGERS.values())}")
    source = wheel_path()
    if source is None:
        raise FileNotFoundError(f"no musicnn wheel found; {HOW_TO_GET}")
    if source.is_dir():
        return source / model
    folder = cache / f"{WHEEL_SHA256[:12]}" / model
    if (folder / ".index").is_file() and (folder / ".data-00000-of-00001").is_file():
        return folder
    if _sha256(source) != WHEEL_SHA256:
        raise ValueError(f"{source} is not musicnn 0.1.0's wheel (sha256 differs); {HOW_TO_GET}")
    from musicrl.store import atomic_folder

    cache.mkdir(parents=True, exist_ok=True)
    (cache / WHEEL_SHA256[:12]).mkdir(exist_ok=True)
    tmp = atomic_folder(cache / WHEEL_SHA256[:12], f".{model}-")
    with zipfile.ZipFile(source) as wheel:
        for name in wheel.namelist():
            if name.startswith(f"musicnn/{model}/") and not name.endswith("/"):
                (tmp / Path(name).name).write_bytes(wheel.read(name))
    tmp.replace(folder)
    return folder


def read_variables(folder: Path) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint in ``folder`` but the optimizer's (TensorFlow's reader)."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "Adam" not in name and not name.startswith(("beta1_power", "beta2_power"))}


def spectrogram(samples: np.ndarray, sr: int) -> np.ndarray:
    """The package's log-compressed mel spectrogram (frames, 96) of mono ``samples`` at ``sr`` Hz."""
    import librosa

    audio = np.asarray(samples, dtype=np.float32)
    if sr != SR:
        audio = librosa.resample(audio, orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS, pad_mode="reflect").T
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def patches(rep: np.ndarray) -> np.ndarray:
    """(patches, 187, 96): consecutive 3-s patches of a spectrogram, the last incomplete one dropped."""
    starts = range(0, rep.shape[0] - PATCH + 1, PATCH)
    if not len(starts):
        raise ValueError(f"a clip shorter than one patch ({PATCH} frames, 3 s) has no musicnn features")
    return np.stack([rep[s : s + PATCH] for s in starts])


class Musicnn:
    """The network with a checkpoint's variables, on ``device`` (default: the CPU)."""

    def __init__(self, variables: dict[str, np.ndarray], device: str = "cpu") -> None:
        import torch

        self.device = torch.device(device)
        self.v = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=self.device) for k, v in variables.items()}

    @classmethod
    def load(cls, tagger: str, cache: Path, device: str = "cpu") -> Musicnn:
        if tagger not in TAGGERS:
            raise ValueError(f"unknown tagger {tagger!r}; accepted: compact_cnn, {', '.join(TAGGERS)}")
        return cls(read_variables(checkpoint(TAGGERS[tagger], cache)), device)

    def _bn(self, x, name: str, axis: int = 1):
        shape = [1] * x.dim()
        shape[axis] = -1
        g, b, m, var = (self.v[f"{name}/{k}"].reshape(shape) for k in ("gamma", "beta", "moving_mean", "moving_variance"))
        return (x - m) / (var + EPS).sqrt() * g + b

    def _conv(self, x, name: str):
        import torch.nn.functional as F

        kernel = self.v[f"{name}/kernel"].permute(3, 2, 0, 1)  # TF (h, w, in, out) -> torch (out, in, h, w)
        return F.relu(F.conv2d(x, kernel, self.v[f"{name}/bias"]))

    def _front(self, x, conv: str, bn: str, pad: tuple[int, int]):
        import torch.nn.functional as F

        return self._bn(self._conv(F.pad(x, (0, 0, *pad)), conv), bn).amax(dim=3)  # (B, maps, T)

    def forward(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Every layer for a batch of patches (B, 187, 96): ``taggram`` (B, 50), ``mean_pool`` and
        ``max_pool`` (B, 753), ``penultimate`` (B, 200); ``timbral`` (B, 187, 408), ``temporal``
        (B, 187, 153), ``cnn1``..``cnn3`` (B, 187, 64)."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            x = self._bn(torch.as_tensor(batch, dtype=torch.float32, device=self.device)[:, None], "batch_normalization")
            front = [self._front(x, "conv2d", "batch_normalization_1", (3, 3)),
                     self._front(x, "conv2d_1", "batch_normalization_2", (3, 3))]
            for i, k in enumerate((128, 64, 32)):
                front.append(self._front(x, f"conv2d_{2 + i}", f"batch_normalization_{3 + i}", ((k - 1) // 2, k // 2)))
            frontend = torch.cat(front, dim=1)  # (B, 561, T)
            mid, h = [], frontend.transpose(1, 2)[:, None]  # (B, 1, T, 561)
            for i in range(3):
                out = self._bn(self._conv(F.pad(h, (0, 0, 3, 3)), f"conv2d_{5 + i}"), f"batch_normalization_{6 + i}")
                out = out.permute(0, 3, 2, 1)  # (B, 1, T, 64)
                h = out if i == 0 else out + h
                mid.append(h[:, 0])
            features = torch.cat([frontend.transpose(1, 2), *mid], dim=2)  # (B, T, 753)
            max_pool, mean_pool = features.amax(dim=1), features.mean(dim=1)
            flat = self._bn(torch.stack([max_pool, mean_pool], dim=2).reshape(len(features), -1), "batch_normalization_9")
            penultimate = self._bn(F.relu(flat @ self.v["dense/kernel"] + self.v["dense/bias"]), "batch_normalization_10")
            taggram = torch.sigmoid(penultimate @ self.v["dense_1/kernel"] + self.v["dense_1/bias"])
            out = {"taggram": taggram, "timbral": torch.cat(front[:2], 1).transpose(1, 2),
                   "temporal": torch.cat(front[2:], 1).transpose(1, 2), "cnn1": mid[0], "cnn2": mid[1], "cnn3": mid[2],
                   "mean_pool": mean_pool, "max_pool": max_pool, "penultimate": penultimate}
            return {k: v.cpu().numpy() for k, v in out.items()}

    def clip_features(self, samples: np.ndarray, sr: int, batch_size: int = 16) -> dict[str, np.ndarray]:
        """One clip's layers pooled over its patches (and over time within a patch), like compact_cnn's
        blocks: ``{layer: (width,)}`` for :data:`LAYERS`."""
        batch = patches(spectrogram(samples, sr))
        parts = [self.forward(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]
        joined = {k: np.concatenate([p[k] for p in parts]) for k in LAYERS}
        return {k: (v.mean(axis=(0, 1)) if v.ndim == 3 else v.mean(axis=0)).astype(np.float32) for k, v in joined.items()}


PUBLISHED_LAYERS = ("taggram", "penultimate")  # what published/features keeps per clip (the book's layers)


def extract(tracks, tagger: str = "musicnn-msd", store=None, progress: bool = True, device: str = "cpu",
            published: Path | str | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """``tagger``'s pooled layers of every clip of ``tracks`` (a manifest frame), cached per clip in
    the results store (key: the clip's sha256, the wheel's, the tagger, :data:`VERSION`); clips
    found in the published features (``published/features/<tagger>.json.gz``) are read from there
    for :data:`PUBLISHED_LAYERS`. Returns the tracks read, ``{track_id: {layer: vector}}`` and the
    clips that could not be read, with the reason."""
    from tqdm.auto import tqdm

    from musicrl.music.audio import SR as CLIP_SR
    from musicrl.music.audio import AudioError, load_clip, sha256
    from musicrl.store import Store

    if tagger not in TAGGERS:
        raise ValueError(f"unknown tagger {tagger!r}; accepted: compact_cnn, {', '.join(TAGGERS)}")
    store = store or Store()
    shipped = published_features(tagger, published)
    records: dict[str, dict[str, np.ndarray]] = {}
    failed: dict[str, str] = {}
    todo = []
    for row in tracks.itertuples():
        if not Path(row.path).is_file():
            failed[row.track_id] = f"{row.path}: no such audio file"
            continue
        digest = sha256(row.path)
        config = {"tagger": tagger, "wheel": WHEEL_SHA256, "clip": digest, "version": VERSION}
        found = store.get("musicnn-features", config)
        if found is None and digest in shipped:
            found = shipped[digest]
        if found is None:
            todo.append((row, config))
        else:
            records[row.track_id] = {k: np.asarray(v, dtype=np.float32) for k, v in found.items()}
    if todo:
        net = Musicnn.load(tagger, store.root / "musicnn", device)
        for row, config in tqdm(todo, desc=f"{tagger} ({len(todo)} clips)", disable=not progress):
            try:
                clip = load_clip(row.path)
            except AudioError as error:
                failed[row.track_id] = str(error)
                continue
            layers = net.clip_features(clip.samples, CLIP_SR)
            store.put("musicnn-features", config, {k: v.tolist() for k, v in layers.items()})
            records[row.track_id] = layers
    kept = tracks[tracks["track_id"].isin(list(records))].reset_index(drop=True)
    return kept, records, failed


def published_path(tagger: str, published: Path | str | None = None) -> Path:
    from musicrl.store import PUBLISHED_ROOT

    return Path(published or PUBLISHED_ROOT) / "features" / f"{tagger}.json.gz"


def published_features(tagger: str, published: Path | str | None = None) -> dict[str, dict[str, list]]:
    """The shipped features of ``tagger``: ``{clip sha256: {layer: values}}`` (empty if none)."""
    from musicrl.store import read_gzip_json

    path = published_path(tagger, published)
    if not path.is_file():
        return {}
    payload = read_gzip_json(path)
    if payload.get("wheel") != WHEEL_SHA256 or payload.get("version") != VERSION:
        return {}
    return payload["clips"]


def publish_features(tracks, records: dict[str, dict[str, np.ndarray]], tagger: str, published: Path | str | None = None) -> Path:
    """:data:`PUBLISHED_LAYERS` of every clip into ``published/features/<tagger>.json.gz``, by clip sha256."""
    from musicrl.music.audio import sha256
    from musicrl.store import versions, write_gzip_json_atomic

    clips = {sha256(row.path): {k: np.round(records[row.track_id][k], 7).tolist() for k in PUBLISHED_LAYERS}
             for row in tracks.itertuples() if row.track_id in records}
    path = published_path(tagger, published)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_gzip_json_atomic(path, {"tagger": tagger, "wheel": WHEEL_SHA256, "version": VERSION, "layers": list(PUBLISHED_LAYERS),
                                  "versions": versions(), "clips": clips})
    return path
