"""musicnn's port held to a reference made by the wheel's own graph (``scripts/musicnn_reference.py``),
its preprocessing, and a clear error where the wheel is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from musicrl.music import musicnn

REFERENCE = Path(__file__).parent / "data" / "musicnn_reference.npz"
pytestmark = pytest.mark.skipif(musicnn.wheel_path() is None, reason=f"no musicnn wheel: {musicnn.HOW_TO_GET}")


@pytest.mark.parametrize("tagger", list(musicnn.TAGGERS))
def test_the_port_reproduces_the_original_graph(tagger, tmp_path_factory):
    reference = np.load(REFERENCE)
    net = musicnn.Musicnn.load(tagger, tmp_path_factory.getbasetemp() / "musicnn")
    clips = sorted({k.split("/")[0] for k in reference.files if k.endswith("/input")})
    assert len(clips) == 2
    for clip in clips:
        ours = net.forward(reference[f"{clip}/input"])
        np.testing.assert_allclose(ours["taggram"], reference[f"{tagger}/{clip}/taggram"], atol=1e-5, rtol=0)
        for layer in ("penultimate", "mean_pool", "max_pool"):
            np.testing.assert_allclose(ours[layer], reference[f"{tagger}/{clip}/{layer}"], atol=1e-3, rtol=1e-5)
        for layer in ("timbral", "temporal", "cnn1", "cnn2", "cnn3"):
            edges = np.concatenate([ours[layer][:, :5], ours[layer][:, -5:]], axis=1)
            np.testing.assert_allclose(edges, reference[f"{tagger}/{clip}/{layer}/edges"], atol=1e-3, rtol=1e-5)
            np.testing.assert_allclose(ours[layer].mean(axis=1), reference[f"{tagger}/{clip}/{layer}/mean"], atol=1e-4, rtol=1e-5)


def test_the_spectrogram_is_log_compressed_in_float32_and_cut_into_3_s_patches():
    sr = 16000
    t = np.arange(29 * sr) / sr
    rep = musicnn.spectrogram(np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5, sr)
    assert rep.shape == (1 + 29 * sr // musicnn.HOP, 96) and rep.dtype == np.float32 and np.isfinite(rep).all()
    assert musicnn.patches(rep).shape == (9, 187, 96)
    loud = musicnn.spectrogram(np.full(sr * 4, 0.99, np.float32) * np.sign(np.sin(2 * np.pi * 50 * t[: sr * 4])), sr)
    assert np.isfinite(loud).all()  # float16 x 10000 would overflow to inf
    with pytest.raises(ValueError, match="shorter than one patch"):
        musicnn.patches(rep[:100])


def test_a_missing_wheel_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICRL_MUSICNN", str(tmp_path / "nowhere"))
    monkeypatch.setattr(musicnn.sys, "prefix", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"pip download musicnn==0.1.0 --no-deps -d \.venv/wheels"):
        musicnn.checkpoint("MSD_musicnn", tmp_path / "cache")
    fake = tmp_path / musicnn.WHEEL
    fake.write_bytes(b"not a wheel")
    monkeypatch.setenv("MUSICRL_MUSICNN", str(fake))
    with pytest.raises(ValueError, match="is not musicnn 0.1.0's wheel"):
        musicnn.checkpoint("MSD_musicnn", tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown tagger 'vggish'; accepted: compact_cnn, musicnn-msd, musicnn-mtt"):
        musicnn.Musicnn.load("vggish", tmp_path)
