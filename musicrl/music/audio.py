"""Audio as the tagger expects it: mono, 12 kHz, exactly 348 000 samples (29.0 s).

Any file soundfile or librosa can decode is accepted. Stereo is averaged, any other rate
is resampled (librosa, soxr_hq), a longer clip is cut to its first 29 s and a shorter one
is zero-padded and flagged (``Clip.padded``). Only the first 29 s are decoded, however
long the file. Missing, empty, undecodable or truncated files (an Ogg stream whose last
page is cut short or has no end-of-stream flag) raise ``AudioError`` naming the file; a
silent clip gets a warning.
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


def check_ogg(path: Path) -> None:
    """Raise ``AudioError`` if the Ogg stream in ``path`` ends early: a page whose body runs past
    the end of the file, or a last page without the end-of-stream flag (a cut download)."""
    size, offset, last_flags = path.stat().st_size, 0, None
    with open(path, "rb") as handle:
        while offset < size:
            handle.seek(offset)
            header = handle.read(27)
            if len(header) < 27 or header[:4] != b"OggS":
                raise AudioError(f"{path}: damaged Ogg file: no page header at byte {offset} of {size}")
            last_flags, segments = header[5], header[26]
            table = handle.read(segments)
            body = sum(table)
            end = offset + 27 + segments + body
            if len(table) < segments or end > size:
                raise AudioError(f"{path}: damaged Ogg file: the stream ends early (the page at byte {offset} needs "
                                 f"{end - offset} bytes, {size - offset} are left); re-download or re-encode it")
            offset = end
    if last_flags is not None and not last_flags & 0x04:
        raise AudioError(f"{path}: damaged Ogg file: the stream ends early (no end-of-stream page)")


def _is_ogg(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == b"OggS"


def _decode(path: Path, seconds: float) -> tuple[np.ndarray, int, int]:
    """The first ``seconds`` of the file as mono samples, its rate and its length in samples,
    by soundfile, else by librosa's audioread."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)) as handle:
            rate, total = int(handle.samplerate), int(handle.frames)
            data = handle.read(frames=min(total, int(np.ceil(seconds * rate))), dtype="float32", always_2d=True)
        return data.mean(axis=1), rate, total
    except Exception as first:
        import librosa

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data, sampled = librosa.load(str(path), sr=None, mono=True, duration=seconds)
                total = round(librosa.get_duration(path=str(path)) * sampled)
            return data.astype(np.float32), int(sampled), max(int(total), data.size)
        except Exception as second:
            reasons = "; ".join(r for r in (str(first), str(second)) if r) or type(second).__name__
            raise AudioError(f"{path}: cannot decode audio ({reasons})") from second


def load_clip(path: Path | str, sr: int = SR, n_samples: int = N_SAMPLES) -> Clip:
    """Read ``path`` as a mono clip of ``n_samples`` samples at ``sr`` Hz."""
    import librosa

    path = Path(path)
    if path.is_dir():
        raise AudioError(f"{path}: a directory, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty")
    if path.suffix == ".npy":
        data, rate = np.load(path).astype(np.float32).reshape(-1), sr
        source_samples = data.size
    else:
        if _is_ogg(path):
            check_ogg(path)
        data, rate, source_samples = _decode(path, n_samples / sr + 0.1)  # a little more: the resampler's edge
    if data.size == 0:
        raise AudioError(f"{path}: the file holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    if not np.any(data):
        warnings.warn(f"{path}: the clip is silent (every sample is 0); its features say nothing about its music",
                      stacklevel=2)
    if rate != sr:
        data = librosa.resample(data, orig_sr=rate, target_sr=sr, res_type="soxr_hq")
    padded = source_samples * sr < n_samples * rate
    out = np.zeros(n_samples, dtype=np.float32)
    out[: min(n_samples, data.size)] = data[:n_samples]
    return Clip(out, source_sr=rate, source_samples=source_samples, padded=padded)
