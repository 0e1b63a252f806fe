"""compact_cnn (Choi et al. 2017), the thesis's music tagger, in Keras 3.

The network of ``models.py`` in keunwoochoi/music-auto_tagging-keras (commit a3e105d),
built from its HDF5 weight files (read with h5py, never copied):

1. Log-mel front end (old kapre ``Melspectrogram``): the stored STFT kernels (n_dft 512,
   hop 256, Hann window) as a strided convolution with TensorFlow 'same' padding (1360
   frames for 348 000 samples), power, the stored 96-band mel filterbank, then
   ``10 log10(max(x, 1e-10))`` minus the maximum, clipped at -80 dB. Kapre took the
   maximum over the whole batch tensor; we take it per clip, so that a clip's
   spectrogram does not depend on its batch-mates.
2. Five blocks: Conv2D(32, 3x3, 'same') -> BatchNormalization -> ELU -> MaxPooling with
   pools (2,4), (3,4), (2,5), (2,4), (4,4). ``conv_until`` = N stops after block N.
3. Global average pooling of each block (32 values; after block 5 the map is 1x1, so it
   equals the original's Flatten), and the Dense(50, sigmoid) tag layer, which only the
   Theano file holds.

Batch normalization. Keras 1's ``mode=2`` normalizes with the statistics of the batch at
hand, at inference too, and the stored running statistics are placeholders (mean 0,
std 1). Two choices are offered (``bn``):

- ``"reference"`` (default): each block's per-channel mean and variance are estimated
  once, block by block, over a stated reference set of clips (the GTZAN ``balanced14``
  subset in the book), exactly as mode 2 computes them for that set as one batch, and
  frozen. A clip's features then do not depend on what it is batched with, and for the
  reference clips they equal mode 2 on the reference batch (tested).
- ``"clip"``: mode 2 with a batch of one (statistics over one clip's map). Faithful to
  running the original one clip at a time, and known to wash the deep layers out.

Keras 1's default ``epsilon`` of 1e-3 is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicrl.music import models_dir
from musicrl.music.audio import N_SAMPLES, SR
from musicrl.users import check_choice

TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)
BLOCKS = 5
CHANNELS = 32
POOLS = ((2, 4), (3, 4), (2, 5), (2, 4), (4, 4))
N_DFT, N_HOP, N_MELS = 512, 256, 96
EPSILON = 1e-3
BN_CHOICES = ("reference", "clip")
WEIGHT_FILES = ("weights_layer4_tensorflow.hdf5", "weights_layer4_theano.hdf5")


@dataclass(frozen=True)
class TaggerWeights:
    """The trained values: front end, five conv blocks, and the Dense(50) tag layer."""

    stft_real: np.ndarray  # (512, 257): window included
    stft_imag: np.ndarray  # (512, 257)
    mel: np.ndarray  # (257, 96): frequency bin -> mel band
    conv_w: tuple[np.ndarray, ...]  # per block (32, C, 3, 3): out, in, rows, cols (cross-correlation)
    conv_b: tuple[np.ndarray, ...]  # per block (32,)
    gamma: tuple[np.ndarray, ...]
    beta: tuple[np.ndarray, ...]
    dense_w: np.ndarray  # (32, 50)
    dense_b: np.ndarray  # (50,)
    sha256: str  # of the two weight files, in WEIGHT_FILES order

    @classmethod
    def load(cls, directory: Path | str | None = None) -> TaggerWeights:
        """Read the TensorFlow file (network) and the Theano file (its ``dense_1`` only)."""
        import h5py

        directory = Path(directory) if directory is not None else models_dir()
        paths = [directory / name for name in WEIGHT_FILES]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"compact_cnn weights not found: {', '.join(missing)}. Point MUSICRL_MODELS at the "
                "folder holding weights_layer4_tensorflow.hdf5 and weights_layer4_theano.hdf5."
            )
        digest = hashlib.sha256()
        for path in paths:
            digest.update(path.read_bytes())
        with h5py.File(paths[0], "r") as tf_file, h5py.File(paths[1], "r") as theano_file:
            blocks = tf_file["ConvBNEluDr"]
            conv_w = tuple(np.asarray(blocks[f"convolution2d_{k + 1}_W:0"]) for k in range(BLOCKS))
            conv_b = tuple(np.asarray(blocks[f"convolution2d_{k + 1}_b:0"]) for k in range(BLOCKS))
            gamma = tuple(np.asarray(blocks[f"batchnormalization_{k + 1}_gamma:0"]) for k in range(BLOCKS))
            beta = tuple(np.asarray(blocks[f"batchnormalization_{k + 1}_beta:0"]) for k in range(BLOCKS))
            return cls(
                stft_real=np.asarray(tf_file["melgram/Variable:0"])[:, 0, 0, :],
                stft_imag=np.asarray(tf_file["melgram/Variable_1:0"])[:, 0, 0, :],
                mel=np.asarray(tf_file["melgram/Variable_2:0"]),
                conv_w=conv_w,
                conv_b=conv_b,
                gamma=gamma,
                beta=beta,
                dense_w=np.asarray(theano_file["dense_1/dense_1_W"]),
                dense_b=np.asarray(theano_file["dense_1/dense_1_b"]),
                sha256=digest.hexdigest(),
            )


@dataclass(frozen=True)
class BatchStats:
    """Per-block, per-channel mean and variance of the conv outputs over a reference set."""

    mean: np.ndarray  # (5, 32)
    var: np.ndarray  # (5, 32)
    reference: str  # sha256 over the reference clips' sha256s, in order
    n_clips: int

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "reference": self.reference, "n_clips": self.n_clips}

    @classmethod
    def from_json(cls, data: dict) -> BatchStats:
        return cls(np.asarray(data["mean"], np.float32), np.asarray(data["var"], np.float32), data["reference"], data["n_clips"])


def reference_hash(clip_hashes: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(clip_hashes).encode()).hexdigest()


def _keras():
    """Keras (TensorFlow behind it), imported with the C++ start-up logs of TensorFlow (oneDNN,
    CPU features) kept off stderr: they are not errors and filled the chapters' outputs.
    ``TF_CPP_MIN_LOG_LEVEL`` no longer silences them; an import error still raises."""
    import os
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"]
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import keras
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return keras


def _check_conv_until(conv_until: int) -> None:
    if not (isinstance(conv_until, (int, np.integer)) and 0 <= conv_until < BLOCKS):
        raise ValueError(f"conv_until must be an integer 0..{BLOCKS - 1} (the block to stop after), got {conv_until!r}")


def _log_mel_layer():
    keras = _keras()
    ops = keras.ops

    class LogMel(keras.layers.Layer):
        """Old kapre's decibel mel spectrogram from stored kernels; output (batch, 96, 1360, 1)."""

        def __init__(self, weights: TaggerWeights, **kwargs):
            super().__init__(**kwargs)
            kernels = np.concatenate([weights.stft_real, weights.stft_imag], axis=1)[:, None, :]
            self.kernels = self.add_weight(shape=kernels.shape, trainable=False, name="stft")
            self.kernels.assign(kernels)
            self.filterbank = self.add_weight(shape=weights.mel.shape, trainable=False, name="mel")
            self.filterbank.assign(weights.mel)
            self.n_freq = weights.stft_real.shape[1]

        def call(self, audio):
            frames = ops.conv(ops.expand_dims(audio, -1), self.kernels, strides=N_HOP, padding="same")
            power = ops.square(frames[..., : self.n_freq]) + ops.square(frames[..., self.n_freq :])
            mel = ops.matmul(power, self.filterbank)  # (batch, frames, mels)
            db = 10.0 * ops.log(ops.maximum(mel, 1e-10)) / np.log(10.0)
            db = db - ops.max(db, axis=(1, 2), keepdims=True)
            db = ops.maximum(db, -80.0)
            return ops.expand_dims(ops.transpose(db, (0, 2, 1)), -1)

    return LogMel


class CompactCNN:
    """The network's layers, built once; ``model(conv_until)`` wires them into a Keras model.

    >>> net = CompactCNN(TaggerWeights.load(), stats)          # bn="reference"
    >>> out = net.predict(audio)                               # dict: "features" (n, 5, 32), "tags" (n, 5, 50)
    """

    def __init__(self, weights: TaggerWeights, stats: BatchStats | None = None, bn: str = "reference") -> None:
        check_choice("bn", bn, BN_CHOICES)
        if bn == "reference" and stats is None:
            raise ValueError("bn='reference' needs BatchStats (estimate_stats over a reference set); or use bn='clip'")
        keras = _keras()
        self.weights, self.stats, self.bn = weights, stats, bn
        self.frontend = _log_mel_layer()(weights, name="melgram")
        self.frontend.build((None, N_SAMPLES))
        self.convs, self.norms, self.pools = [], [], []
        for k in range(BLOCKS):
            conv = keras.layers.Conv2D(CHANNELS, 3, padding="same", name=f"conv{k + 1}")
            conv.build((None, None, None, weights.conv_w[k].shape[1]))
            conv.set_weights([weights.conv_w[k].transpose(2, 3, 1, 0), weights.conv_b[k]])
            self.convs.append(conv)
            self.norms.append(self._norm(k))
            self.pools.append(keras.layers.MaxPooling2D(POOLS[k], name=f"pool{k + 1}"))
        self.dense = keras.layers.Dense(len(TAGS), activation="sigmoid", name="tags")
        self.dense.build((None, CHANNELS))
        self.dense.set_weights([weights.dense_w, weights.dense_b])
        self._models: dict[int, object] = {}

    def _norm(self, k: int):
        keras = _keras()
        if self.bn == "clip":
            norm = keras.layers.GroupNormalization(groups=CHANNELS, epsilon=EPSILON, name=f"bn{k + 1}")
            norm.build((None, None, None, CHANNELS))
            norm.set_weights([self.weights.gamma[k], self.weights.beta[k]])
            return norm
        stats = self.stats
        assert stats is not None  # checked in __init__: bn='reference' has BatchStats
        norm = keras.layers.BatchNormalization(epsilon=EPSILON, name=f"bn{k + 1}")
        norm.build((None, None, None, CHANNELS))
        norm.set_weights([self.weights.gamma[k], self.weights.beta[k], stats.mean[k], stats.var[k]])
        return norm

    def block(self, k: int, x, normalize: bool = True):
        """Block ``k`` on ``x`` (eager); ``normalize=False`` returns the conv output before normalization."""
        keras = _keras()
        h = self.convs[k](x)
        if not normalize:
            return h
        return self.pools[k](keras.activations.elu(self.norms[k](h, training=False)))

    def model(self, conv_until: int = BLOCKS - 1):
        """Keras model: audio (n, 348000) -> {"features": (n, B, 32), "tags": (n, B, 50)}, B = conv_until + 1."""
        _check_conv_until(conv_until)
        if conv_until not in self._models:
            keras = _keras()
            audio = keras.Input((N_SAMPLES,), name="audio")
            x, pooled = self.frontend(audio), []
            for k in range(conv_until + 1):
                x = self.block(k, x)
                pooled.append(keras.layers.GlobalAveragePooling2D(name=f"gap{k + 1}")(x))
            features = keras.ops.stack(pooled, axis=1)
            tags = keras.ops.stack([self.dense(p) for p in pooled], axis=1)
            self._models[conv_until] = keras.Model(audio, {"features": features, "tags": tags}, name=f"compact_cnn_{conv_until}")
        return self._models[conv_until]

    def predict(self, audio: np.ndarray, conv_until: int = BLOCKS - 1, batch_size: int = 8) -> dict[str, np.ndarray]:
        audio = _check_audio(audio)
        model = self.model(conv_until)
        parts = [model(audio[i : i + batch_size], training=False) for i in range(0, len(audio), batch_size)]
        return {key: np.concatenate([np.asarray(p[key]) for p in parts]) for key in ("features", "tags")}


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] != N_SAMPLES:
        raise ValueError(f"audio must have shape (clips, {N_SAMPLES}) (mono, {SR} Hz, 29 s), got {audio.shape}")
    return audio


def estimate_stats(weights: TaggerWeights, audio: np.ndarray, reference: str, chunk: int = 8) -> BatchStats:
    """Mode 2's statistics of ``audio`` taken as one batch, block by block (float64 sums)."""
    audio = _check_audio(audio)
    net = CompactCNN(weights, bn="reference", stats=BatchStats(np.zeros((BLOCKS, CHANNELS)), np.ones((BLOCKS, CHANNELS)), "", 0))
    inputs = [np.asarray(net.frontend(audio[i : i + chunk])) for i in range(0, len(audio), chunk)]
    means, variances = np.zeros((BLOCKS, CHANNELS)), np.zeros((BLOCKS, CHANNELS))
    for k in range(BLOCKS):
        total, squares, count = np.zeros(CHANNELS), np.zeros(CHANNELS), 0
        for x in inputs:
            h = np.asarray(net.block(k, x, normalize=False), dtype=np.float64)
            total += h.sum(axis=(0, 1, 2))
            squares += np.square(h).sum(axis=(0, 1, 2))
            count += h.shape[0] * h.shape[1] * h.shape[2]
        means[k] = total / count
        variances[k] = squares / count - np.square(means[k])
        net.norms[k].set_weights([weights.gamma[k], weights.beta[k], means[k].astype(np.float32), variances[k].astype(np.float32)])
        inputs = [np.asarray(net.block(k, x)) for x in inputs]
    return BatchStats(means.astype(np.float32), variances.astype(np.float32), reference, len(audio))
