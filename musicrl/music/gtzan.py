"""The original GTZAN download turned into this project's layout (``musicrl gtzan-import``).

GTZAN (Tzanetakis & Cook 2002) comes as ``genres/<genre>/<genre>.000NN.au`` (the Marsyas
archive) or ``.wav`` (the common re-packaging): 1000 clips of about 30 s, ten genres of 100,
22,050 Hz mono. The project reads a folder of ``<genre>/<genre>.000NN.ogg`` clips, mono at
12 kHz, exactly 29.0 s (348,000 samples; what compact_cnn takes), with a ``manifest.csv``
(:data:`MANIFEST_HEADER`). ``balanced14`` marks, per genre, the 14 clips with the lowest
track numbers: the reference set of the tagger's batch statistics and the PCA fit.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
CLIPS_PER_GENRE = 100
BALANCED = 14
SR, SAMPLES = 12000, 348000
MANIFEST_HEADER = ("track_id", "genre", "path", "n_samples", "sha256", "source_path", "source_sr", "source_sha256", "balanced14")
CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<number>\d{5})\.(?:wav|au)$")


def find_clips(source: Path | str) -> dict[str, list[Path]]:
    """The GTZAN clips under ``source`` (the folder holding ``genres/``, or ``genres/`` itself), by
    genre, in track order. No clip at all raises, naming the folder and what it expected."""
    root = Path(source)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected the GTZAN download, genres/<genre>/<genre>.000NN.wav")
    base = root / "genres" if (root / "genres").is_dir() else root
    found: dict[str, list[Path]] = {}
    for genre in GENRES:
        folder = base / genre
        if folder.is_dir():
            clips = sorted(p for p in folder.iterdir() if (m := CLIP_NAME.match(p.name)) and m["genre"] == genre)
            if clips:
                found[genre] = clips
    if not found:
        raise FileNotFoundError(f"{base}: no GTZAN clips found (expected <genre>/<genre>.000NN.wav or .au for the genres "
                                f"{', '.join(GENRES)})")
    return found


def coverage(found: dict[str, list[Path]]) -> str | None:
    """None for the complete set; else one line with the counts found per genre."""
    counts = {g: len(found.get(g, [])) for g in GENRES}
    if all(n == CLIPS_PER_GENRE for n in counts.values()):
        return None
    listed = ", ".join(f"{g} {n}" for g, n in counts.items())
    return (f"a partial GTZAN: {sum(counts.values())} of {len(GENRES) * CLIPS_PER_GENRE} clips ({listed}); every count in "
            "the book is read from the manifest, so the book builds on it")


def convert(path: Path) -> tuple[bytes, int]:
    """One clip as the project's Ogg (mono, 12 kHz, 29.0 s, zero-padded if shorter) and its source rate."""
    import librosa
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if rate != SR:
        mono = librosa.resample(mono, orig_sr=rate, target_sr=SR, res_type="soxr_hq")
    clip = np.zeros(SAMPLES, dtype=np.float32)
    clip[: min(SAMPLES, mono.size)] = mono[:SAMPLES]
    buffer = io.BytesIO()
    soundfile.write(buffer, clip, SR, format="OGG", subtype="VORBIS")
    return buffer.getvalue(), int(rate)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def import_gtzan(source: Path | str, out: Path | str, progress: Callable[[int, int], None] | None = None) -> tuple[int, str | None]:
    """Convert every clip of the download at ``source`` into ``out`` and write ``out/manifest.csv``.
    Each clip and the manifest are written atomically; a clip already converted is kept (a rerun
    resumes). Returns the number of clips and the partial-coverage line (None if complete)."""
    from musicrl.store import atomic_file

    found = find_clips(source)
    out = Path(out)
    rows, total, done = [], sum(map(len, found.values())), 0
    for genre, clips in found.items():
        (out / genre).mkdir(parents=True, exist_ok=True)
        balanced = {p.name for p in clips[:BALANCED]}
        for path in clips:
            track = path.name.rsplit(".", 1)[0]
            target = out / genre / f"{track}.ogg"
            source_bytes = path.read_bytes()
            if target.exists():
                encoded, rate = target.read_bytes(), _rate(path)
            else:
                encoded, rate = convert(path)
                fd, tmp = atomic_file(target)
                with open(fd, "wb") as handle:
                    handle.write(encoded)
                Path(tmp).replace(target)
            rows.append((track, genre, f"{genre}/{track}.ogg", SAMPLES, sha256(encoded), str(path.relative_to(Path(source))),
                         rate, sha256(source_bytes), int(path.name in balanced)))
            done += 1
            if progress:
                progress(done, total)
    manifest = out / "manifest.csv"
    fd, tmp = atomic_file(manifest)
    with open(fd, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    Path(tmp).replace(manifest)
    return len(rows), coverage(found)


def _rate(path: Path) -> int:
    import soundfile

    return int(soundfile.info(path).samplerate)
