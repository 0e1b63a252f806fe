"""Audio loading, cached feature extraction, the catalogue and the genre analysis."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile

from musicrl import profiles
from musicrl.music import analysis, features, gtzan_dir, samples_dir
from musicrl.music.audio import N_SAMPLES, SR, AudioError, load_clip
from musicrl.music.catalogue import Catalogue
from musicrl.store import Store

HAVE_GTZAN = (gtzan_dir() / "manifest.csv").exists()
needs_gtzan = pytest.mark.skipif(not HAVE_GTZAN, reason="GTZAN clips not found")


def test_rl_imports_do_not_load_tensorflow():
    code = ("import sys, musicrl, musicrl.cli, stable_baselines3\n"
            "from torch.utils.tensorboard import SummaryWriter\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@needs_gtzan
def test_a_gtzan_clip_loads_as_the_tagger_input():
    clip = load_clip(gtzan_dir() / "jazz" / "jazz.00000.ogg")
    assert clip.samples.shape == (N_SAMPLES,) and clip.samples.dtype == np.float32
    assert clip.source_sr == SR and not clip.padded and np.abs(clip.samples).max() > 0.01


def test_an_mp3_at_44k_is_resampled_and_cut():
    clip = load_clip(samples_dir() / "bensound-cute.mp3")
    assert clip.source_sr == 44100 and clip.samples.shape == (N_SAMPLES,) and not clip.padded
    assert clip.duration > 29


def test_short_stereo_audio_is_averaged_zero_padded_and_flagged(tmp_path):
    t = np.arange(5 * SR) / SR
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "short.wav"
    soundfile.write(path, np.stack([left, 0.5 * left], axis=1), SR, subtype="FLOAT")
    clip = load_clip(path)
    assert clip.padded and clip.duration == pytest.approx(5.0)
    np.testing.assert_allclose(clip.samples[: len(t)], 0.75 * left, atol=1e-6)
    assert not clip.samples[len(t):].any()


def test_other_rates_are_resampled_to_12k(tmp_path):
    t = np.arange(30 * 22050) / 22050
    path = tmp_path / "tone.wav"
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 1000 * t), 22050)
    clip = load_clip(path)
    spectrum = np.abs(np.fft.rfft(clip.samples))
    assert clip.source_sr == 22050 and not clip.padded
    assert np.fft.rfftfreq(N_SAMPLES, 1 / SR)[spectrum.argmax()] == pytest.approx(1000, abs=1)


@pytest.mark.parametrize("content, message", [(None, "no such audio file"), (b"", "the file is empty"),
                                              (b"not audio at all" * 100, "cannot decode audio")])
def test_bad_files_raise_an_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "broken.ogg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as error:
        load_clip(path)
    assert str(path) in str(error.value)


def _catalogue_with_bad_clips(tmp_path) -> pd.DataFrame:
    good = features.subset(features.read_manifest(), per_genre=1, balanced=True).head(3)
    (tmp_path / "corrupt.ogg").write_bytes(b"\x00" * 4000)
    bad = pd.DataFrame({"track_id": ["corrupt.1", "missing.1"], "genre": ["blues", "rock"],
                        "path": [str(tmp_path / "corrupt.ogg"), str(tmp_path / "missing.ogg")], "balanced14": [False, False]})
    return pd.concat([good, bad], ignore_index=True)


@needs_gtzan
def test_extraction_skips_bad_clips_keeps_the_rest_and_reads_the_cache_on_rerun(tmp_path, monkeypatch):
    tracks = _catalogue_with_bad_clips(tmp_path)
    extractor = features.Extractor(tracks.head(3), store=Store(tmp_path / "results"), batch_size=2)
    with pytest.warns(UserWarning) as skipped:
        first = extractor.extract(tracks, progress=False)
    assert sorted(str(w.message).split(":")[0] for w in skipped) == ["skipped corrupt.1", "skipped missing.1"]
    assert list(first.tracks.track_id) == list(tracks.track_id[:3])
    assert set(first.failed) == {"corrupt.1", "missing.1"} and "missing.ogg" in first.failed["missing.1"]
    assert first.pooled.shape == (3, 5, 32) and first.tags.shape == (3, 5, 50)
    assert len(list((tmp_path / "results" / "features").glob("*.json"))) == 3

    rerun = features.Extractor(tracks.head(3), store=Store(tmp_path / "results"))
    monkeypatch.setattr(features.Extractor, "network", lambda self: pytest.fail("cached clips were recomputed"))
    with pytest.warns(UserWarning):
        second = rerun.extract(tracks, progress=False)
    np.testing.assert_array_equal(second.pooled, first.pooled)
    np.testing.assert_array_equal(second.matrix("pooled", "all"), first.pooled.reshape(3, 160))


@needs_gtzan
def test_the_cache_key_holds_the_clip_the_weights_and_the_settings(tmp_path):
    tracks = features.subset(features.read_manifest(), per_genre=1, balanced=True).head(2)
    reference = features.Extractor(tracks, store=Store(tmp_path))
    clip = features.Extractor(bn="clip", store=Store(tmp_path))
    assert reference.settings["weights"] == clip.settings["weights"] and len(reference.settings["weights"]) == 64
    assert reference.settings != clip.settings and reference.settings["reference"] != ""


def test_extractor_and_feature_choices_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown bn 'batch'"):
        features.Extractor(bn="batch", store=Store(tmp_path))
    with pytest.raises(ValueError, match="needs a non-empty reference set"):
        features.Extractor(None, store=Store(tmp_path))
    fs = features.FeatureSet(pd.DataFrame({"track_id": ["a"]}), np.zeros((1, 5, 32)), np.zeros((1, 5, 50)))
    with pytest.raises(ValueError, match="block must be 1..5 or 'all', got 0"):
        fs.matrix("tags", 0)
    with pytest.raises(ValueError, match="unknown feature kind 'logits'"):
        fs.matrix("logits", 1)
    with pytest.raises(FileNotFoundError, match="MUSICRL_GTZAN"):
        features.read_manifest(tmp_path)


@needs_gtzan
def test_manifest_counts_are_read_not_assumed():
    tracks = features.read_manifest()
    counts = tracks.groupby("genre").size()
    assert len(counts) == 10 and counts.sum() == len(tracks)
    assert (tracks[tracks.balanced14].groupby("genre").size() == 14).all()
    assert all(p.endswith(".ogg") for p in tracks.path)


def _toy(n=100, d=12, seed=0):
    rng = np.random.default_rng(seed)
    genres = np.repeat(["blues", "classical", "jazz", "rock"], n // 4)
    centres = {g: rng.normal(0, 5, d) for g in set(genres)}
    x = np.stack([centres[g] for g in genres]) + rng.normal(0, 1, (n, d))
    return x, genres, np.array([f"s{i}" for i in range(n)])


def test_catalogue_levels_are_equal_count_bins_and_lookups_round_trip():
    x, genres, ids = _toy()
    cat = Catalogue.build(x, ids, genres, k=4)
    assert cat.positions.shape == (100, 4) and cat.positions.min() == 0 and cat.positions.max() == 4
    for j in range(4):
        assert np.bincount(cat.positions[:, j], minlength=5).tolist() == [20] * 5
    np.testing.assert_array_equal(cat.to_grid(cat.coords), cat.positions)
    np.testing.assert_allclose(cat.transform(x), cat.coords, atol=1e-9)
    song = ids[17]
    assert song in cat.songs_at(cat.position_of(song))
    np.testing.assert_allclose(cat.coords_of(song), cat.coords[17])
    assert cat.nearest_song(cat.position_of(song)) in cat.songs_at(cat.position_of(song))


def test_nearest_song_to_an_empty_position_is_at_the_smallest_grid_distance():
    x, genres, ids = _toy()
    cat = Catalogue.build(x, ids, genres, k=4)
    occupied = {tuple(p) for p in cat.positions}
    empty = next(p for p in np.ndindex(5, 5, 5, 5) if p not in occupied)
    assert cat.songs_at(empty) == []
    nearest = cat.nearest_songs(empty, 3)
    distances = np.abs(cat.positions - np.array(empty)).sum(axis=1)
    assert np.abs(np.array(cat.position_of(nearest[0])) - empty).sum() == distances.min()
    assert len(set(nearest)) == 3


def test_catalogue_rejects_bad_input():
    x, genres, ids = _toy()
    cat = Catalogue.build(x, ids, genres, k=4)
    with pytest.raises(ValueError, match="4 integer levels in 0..4"):
        cat.songs_at((1, 2, 5, 0))
    with pytest.raises(ValueError, match="4 integer levels"):
        cat.nearest_song((1, 2, 3))
    with pytest.raises(KeyError, match="no song 'nope'"):
        cat.position_of("nope")
    with pytest.raises(ValueError, match="k must be an integer 1..12"):
        Catalogue.build(x, ids, genres, k=13)
    with pytest.raises(ValueError, match="unique"):
        Catalogue.build(x, np.repeat("a", 100), genres)


def test_pca_axes_can_be_fitted_on_a_subset():
    x, genres, ids = _toy()
    fit_on = np.arange(100) % 2 == 0
    a = Catalogue.build(x, ids, genres, k=2, fit_on=fit_on)
    b = Catalogue.build(x[fit_on], ids[fit_on], genres[fit_on], k=2)
    np.testing.assert_allclose(np.abs(a.components), np.abs(b.components), atol=1e-9)


def test_genre_distances_and_nearest_neighbours_on_separated_clusters():
    x, genres, _ = _toy()
    matrix = analysis.distance_matrix(x, genres)
    assert list(matrix.index) == ["blues", "classical", "jazz", "rock"]
    np.testing.assert_allclose(matrix.values, matrix.values.T)
    assert np.all(np.diag(matrix.values) == 0) and matrix.values[0, 1] > 5
    agreement = analysis.nearest_neighbour_agreement(x, genres)
    assert agreement["all clips"] == 1.0 and analysis.chance_agreement(genres)["jazz"] == pytest.approx(24 / 99)


def test_genre_accuracy_uses_the_same_folds_and_separates_clusters():
    x, genres, _ = _toy()
    first = analysis.genre_accuracy(x, genres, "linear SVM", pcs=4, folds=5, repeats=2, seed=1)
    again = analysis.genre_accuracy(x, genres, "linear SVM", pcs=4, folds=5, repeats=2, seed=1)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (10,) and first.mean() > 0.95
    noise = np.random.default_rng(0).normal(size=x.shape)
    assert analysis.genre_accuracy(noise, genres, "kNN", folds=5, repeats=2).mean() < 0.5
    table = analysis.accuracy_table({"toy": x}, genres, pcs=(2, "all"), folds=5, repeats=2)
    assert len(table) == 4 and set(table.PCs) == {"2", "all"}


@pytest.mark.parametrize("classifier", ["linear SVM", "kNN"])
def test_genre_accuracy_is_the_same_with_the_folds_on_several_workers(classifier):
    x, genres, _ = _toy()
    noise = np.random.default_rng(1).normal(size=x.shape)  # fold scores that differ, unlike the toy's separable ones
    serial = analysis.genre_accuracy(noise, genres, classifier, pcs=4, folds=5, repeats=2, seed=3)
    parallel = analysis.genre_accuracy(noise, genres, classifier, pcs=4, folds=5, repeats=2, seed=3, workers=2)
    assert len(set(serial)) > 3
    np.testing.assert_array_equal(serial, parallel)


def _matrix(order, values):
    return pd.DataFrame(values, index=order, columns=order)


def test_heatmap_statements_are_judged_by_their_rules():
    order = list(analysis.GENRES)
    rng = np.random.default_rng(0)
    points = {g: rng.normal(0, 1, 3) for g in order}
    points["classical"] = np.array([30.0, 0, 0])  # far from everything
    points["blues"], points["country"] = points["jazz"] + 0.1, points["jazz"] - 0.1
    points["rock"] = points["metal"] + 0.05
    far = analysis.distance_matrix(np.stack([points[g] for g in order]), order)
    coords = np.stack([points[g] for g in order])[:, :2]
    table = analysis.heatmap_statements({"last": far, "third": far, "second": far}, coords, order)
    held = dict(zip(table.statement, table.held))
    assert held["the genres with the lowest distance to jazz are blues and country"] == "held"
    assert held["classical has a large distance to the other genres"] == "held"
    assert held["classical has a relatively low distance to many other genres"] == "not held"
    assert held["in the second layer the distance of classical is even larger"] == "not held"  # equal, not larger
    assert held["classical music inhabits the central parts"] == "not held"


def test_top_tags_are_ranked_by_mean_probability():
    tags = np.zeros((4, 3))
    tags[:2, 2], tags[2:, 0] = 0.9, 0.8
    table = analysis.top_tags(tags, ["jazz", "jazz", "rock", "rock"], ["a", "b", "c"], n=2)
    assert table.loc["jazz", "tag 1"] == "c (0.90)" and table.loc["rock", "tag 1"] == "a (0.80)"


def test_music_chapter_profiles():
    assert profiles.get("smoke").music.per_genre == 4
    assert profiles.get("quick").music.per_genre is None and 4 in profiles.get("quick").music.pcs
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get("huge")


_HEADER = "track_id,genre,path,balanced14\n"


@pytest.mark.parametrize("body, message", [
    ("a,jazz,a.ogg,1\na,rock,b.ogg,0\n", r"duplicate track_id a \(rows 2, 3\)"),
    ("a,jazz,a.ogg\n", "row 2: 3 fields, the header has 4"),
    ("a,jazz,a.ogg,1,extra\n", "row 2: 5 fields, the header has 4"),
    ("a,jazz,a.ogg,\n", "row 2: balanced14 is ''; accepted: 0 or 1"),
    ("a,jazz,a.ogg,yes\n", "row 2: balanced14 is 'yes'"),
    ("a,jazz,a.ogg,2\n", "row 2: balanced14 is '2'"),
    ("a,,a.ogg,1\n", "row 2: empty genre"),
    ("a,jazz,,1\n", "row 2: empty path"),
])
def test_a_bad_manifest_names_the_file_and_the_row(tmp_path, body, message):
    (tmp_path / "manifest.csv").write_text(_HEADER + body)
    with pytest.raises(features.ManifestError, match=f"manifest.csv.*{message}"):
        features.read_manifest(tmp_path)


def test_an_empty_or_binary_manifest_is_named(tmp_path):
    (tmp_path / "manifest.csv").write_text("")
    with pytest.raises(features.ManifestError, match="manifest.csv: empty"):
        features.read_manifest(tmp_path)
    (tmp_path / "manifest.csv").write_bytes(b"\xff\xfe\x00\x81binary")
    with pytest.raises(features.ManifestError, match="manifest.csv: not a UTF-8 CSV file"):
        features.read_manifest(tmp_path)


def test_a_good_manifest_reads_types_and_paths(tmp_path):
    (tmp_path / "manifest.csv").write_text(_HEADER + "a,jazz,x/a.ogg,1\nb,rock,b.ogg,0\n")
    tracks = features.read_manifest(tmp_path)
    assert tracks.track_id.tolist() == ["a", "b"] and tracks.balanced14.tolist() == [True, False]
    assert tracks.path[0] == str(tmp_path / "x/a.ogg")


@needs_gtzan
def test_a_truncated_ogg_file_is_reported_as_damaged(tmp_path):
    source = (gtzan_dir() / "jazz" / "jazz.00000.ogg").read_bytes()
    path = tmp_path / "cut.ogg"
    path.write_bytes(source[: len(source) // 3])  # a download cut short: the last page is partial
    with pytest.raises(AudioError, match=r"cut.ogg: damaged Ogg file: the stream ends early"):
        load_clip(path)


def test_a_directory_a_silent_clip_and_two_failed_decoders_are_reported(tmp_path):
    (tmp_path / "folder.ogg").mkdir()
    with pytest.raises(AudioError, match="folder.ogg: a directory, not an audio file"):
        load_clip(tmp_path / "folder.ogg")
    (tmp_path / "junk.mp3").write_bytes(b"\x00" * 500)
    with pytest.raises(AudioError, match=r"cannot decode audio") as error:
        load_clip(tmp_path / "junk.mp3")
    assert "; )" not in str(error.value)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(30 * SR), SR)
    with pytest.warns(UserWarning, match="silent.wav: the clip is silent"):
        load_clip(silent)


def test_a_long_file_gives_its_first_29_seconds(tmp_path):
    t = np.arange(120 * SR) / SR
    path = tmp_path / "long.wav"
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, subtype="FLOAT")
    clip = load_clip(path)
    assert clip.duration == pytest.approx(120.0) and not clip.padded
    np.testing.assert_allclose(clip.samples, 0.3 * np.sin(2 * np.pi * 440 * t[:N_SAMPLES]), atol=1e-6)
