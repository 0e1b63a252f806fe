"""A second forward pass of compact_cnn, in numpy (float64), written apart from the Keras port.

The front end is computed from its definition (periodic Hann window, numpy's FFT,
librosa's Slaney mel filterbank), not from the stored kernels; the blocks use the stored
conv and normalization weights with Keras 1 mode-2 batch normalization: statistics of the
batch given, per channel over clips, rows and columns.
"""

from __future__ import annotations

import librosa
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SR, N_DFT, HOP, N_MELS = 12_000, 512, 256, 96
POOLS = ((2, 4), (3, 4), (2, 5), (2, 4), (4, 4))


def log_mel(y: np.ndarray) -> np.ndarray:
    """(96, 1360) decibel mel spectrogram of one clip, maximum per clip, floor -80 dB."""
    frames = -(-len(y) // HOP)
    pad = max((frames - 1) * HOP + N_DFT - len(y), 0)
    padded = np.pad(y.astype(np.float64), (pad // 2, pad - pad // 2))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_DFT) / N_DFT)
    windows = sliding_window_view(padded, N_DFT)[::HOP][:frames]
    power = np.abs(np.fft.rfft(windows * window, axis=1)) ** 2
    mel = power @ librosa.filters.mel(sr=SR, n_fft=N_DFT, n_mels=N_MELS, fmin=0.0, fmax=SR / 2, norm="slaney").T
    db = 10 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db - db.max(), -80.0).T


def conv_same(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x (B, C, H, W), w (O, C, 3, 3): cross-correlation with zero padding 1."""
    windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), (3, 3), axis=(2, 3))
    return np.einsum("bchwij,ocij->bohw", windows, w.astype(np.float64), optimize=True) + b[None, :, None, None]


def batch_norm_mode2(h: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    mean = h.mean(axis=(0, 2, 3), keepdims=True)
    var = h.var(axis=(0, 2, 3), keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * gamma[None, :, None, None] + beta[None, :, None, None]


def max_pool(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    b, c, h, w = x.shape
    ph, pw = pool
    x = x[:, :, : h // ph * ph, : w // pw * pw]
    return x.reshape(b, c, h // ph, ph, w // pw, pw).max(axis=(3, 5))


def forward(weights, audio: np.ndarray, conv_until: int) -> dict[str, np.ndarray]:
    """Mode 2 on ``audio`` as one batch: pooled features (B, N, 32) and tags (B, N, 50), N = conv_until + 1."""
    x = np.stack([log_mel(y) for y in audio])[:, None]
    features = []
    for k in range(conv_until + 1):
        h = batch_norm_mode2(conv_same(x, weights.conv_w[k], weights.conv_b[k]), weights.gamma[k], weights.beta[k])
        x = max_pool(np.where(h > 0, h, np.expm1(np.minimum(h, 0))), POOLS[k])
        features.append(x.mean(axis=(2, 3)))
    features = np.stack(features, axis=1)
    tags = 1 / (1 + np.exp(-(features @ weights.dense_w + weights.dense_b)))
    return {"features": features, "tags": tags}
