"""``musicrl gtzan-import`` on a synthetic GTZAN download: the tree shape, rates and names of the original."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile

from musicrl.cli import main
from musicrl.music import features, gtzan


def write_download(root, genres=("blues", "jazz"), numbers=range(16), seconds=2.0, suffix="wav"):
    """``genres/<genre>/<genre>.000NN.wav`` at 22,050 Hz, a tone per clip (some stereo, one longer than 29 s)."""
    for g, genre in enumerate(genres):
        folder = root / "genres" / genre
        folder.mkdir(parents=True, exist_ok=True)
        for n in numbers:
            length = 30.0 if n == 0 else seconds
            t = np.arange(int(22050 * length)) / 22050
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * g + n) * t).astype(np.float32)
            data = np.stack([tone, tone], axis=1) if n % 2 else tone
            soundfile.write(folder / f"{genre}.{n:05d}.{suffix}", data, 22050)
    (root / "genres" / genres[0] / "notes.txt").write_text("not a clip")


def test_a_download_becomes_the_projects_clips_and_manifest(tmp_path, capsys):
    write_download(tmp_path / "download")
    out = tmp_path / "gtzan12k"
    assert main(["gtzan-import", str(tmp_path / "download"), str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "a partial GTZAN: 32 of 1000 clips (blues 16, classical 0, country 0, disco 0, hiphop 0, jazz 16," in printed
    assert f"32 clips and manifest.csv in {out}" in printed
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == gtzan.MANIFEST_HEADER and len(rows) == 32
    assert [r["track_id"] for r in rows[:3]] == ["blues.00000", "blues.00001", "blues.00002"]
    assert {r["source_sr"] for r in rows} == {"22050"} and rows[5]["source_path"] == "genres/blues/blues.00005.wav"
    assert [r["balanced14"] for r in rows[:16]] == ["1"] * 14 + ["0"] * 2
    info = soundfile.info(out / "jazz" / "jazz.00003.ogg")
    assert (info.samplerate, info.channels, info.frames) == (12000, 1, 348000)
    tracks = features.read_manifest(out)
    assert tracks.groupby("genre").size().to_dict() == {"blues": 16, "jazz": 16} and tracks["balanced14"].sum() == 28
    before = (out / "blues" / "blues.00000.ogg").stat().st_mtime_ns
    assert main(["gtzan-import", str(tmp_path / "download" / "genres"), str(out), "--quiet"]) == 0  # genres/ itself; resumes
    assert (out / "blues" / "blues.00000.ogg").stat().st_mtime_ns == before


def test_marsyas_au_files_are_read_too(tmp_path):
    write_download(tmp_path / "download", genres=("rock",), numbers=range(2), suffix="au")
    count, partial = gtzan.import_gtzan(tmp_path / "download", tmp_path / "out")
    assert count == 2 and "rock 2" in partial


def test_a_missing_download_is_one_clear_message(tmp_path, capsys):
    assert main(["gtzan-import", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "nothing: no such folder; expected the GTZAN download, genres/<genre>/<genre>.000NN.wav" in capsys.readouterr().err
    (tmp_path / "empty" / "genres" / "blues").mkdir(parents=True)
    assert main(["gtzan-import", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "empty/genres: no GTZAN clips found (expected <genre>/<genre>.000NN.wav or .au" in err and len(err.splitlines()) == 1
    with pytest.raises(FileNotFoundError, match="or make one from the GTZAN download with musicrl gtzan-import"):
        features.read_manifest(tmp_path / "out")
