"""Audio as the tagger expects it: mono, 12 kHz, exactly 348 000 samples (29.0 s).

Any file soundfile or librosa can decode is accepted. Stereo is averaged, any other rate
is resampled (librosa, soxr_hq), a longer clip is cut to its first 29 s and a shorter one
is zero-padded and flagged (``Clip.padded``). Missing, empty or undecodable files raise
``AudioError`` naming the file.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SR = 12_000
N_SAMPLES = 348_000


class AudioError(ValueError):
    """A clip that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # float32, shape (N_SAMPLES,)
    source_sr: int
    source_samples: int  # length at the source rate, before cutting or padding
    padded: bool  # True if the clip was shorter than 29 s and zero-padded

    @property
    def duration(self) -> float:
        return self.source_samples / self.source_sr


def sha256(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """(samples, channels last or 1-D) and the rate, by soundfile, else by librosa's audioread."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        return data.mean(axis=1), int(rate)
    except Exception as first:  # noqa: BLE001 - soundfile raises several types; fall back for mp3 etc.
        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, rate = librosa.load(str(path), sr=None, mono=True)
            return data.astype(np.float32), int(rate)
        except Exception as second:  # noqa: BLE001
            raise AudioError(f"{path}: cannot decode audio ({first}; {second})") from second


def load_clip(path: Path | str, sr: int = SR, n_samples: int = N_SAMPLES) -> Clip:
    """Read ``path`` as a mono clip of ``n_samples`` samples at ``sr`` Hz."""
    import librosa

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty")
    if path.suffix == ".npy":
        data, rate = np.load(path).astype(np.float32).reshape(-1), sr
    else:
        data, rate = _decode(path)
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    source_samples = data.size
    if rate != sr:
        data = librosa.resample(data, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    padded = source_samples * sr < n_samples * rate
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, data.size)] = data[:n_samples]
    return Clip(out, source_sr=rate, source_samples=source_samples, padded=padded)
