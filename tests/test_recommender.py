"""The recommender: sessions, listeners, saved sessions, Table 1, catalogue targets."""

import json

import numpy as np
import pytest

from musicrl import baselines
from musicrl.envs import EnvConfig, PreferenceSearchEnv
from musicrl.music import recommender as rec
from musicrl.music.catalogue import Catalogue


@pytest.fixture(scope="module")
def catalogue():
    rng = np.random.default_rng(0)
    genres = np.repeat(["blues", "classical", "jazz", "metal", "rock"], 30)
    centres = {g: rng.normal(0, 4, 8) for g in set(genres)}
    x = np.stack([centres[g] for g in genres]) + rng.normal(0, 1, (len(genres), 8))
    return Catalogue.build(x, [f"{g}.{i:05d}" for i, g in enumerate(genres)], genres, k=4)


@pytest.fixture(scope="module")
def greedy():
    return baselines.make_baseline("greedy", EnvConfig(d=4))


def test_a_session_starts_at_the_centre_and_plays_22_songs(catalogue, greedy):
    target = catalogue.ids[7]
    session = rec.Recommender(greedy, catalogue, "greedy").play(target, rec.IdealListener(catalogue), seed=3)
    assert len(session.steps) == 22 and session.steps[0].position == (2, 2, 2, 2)
    assert all(s.song in set(catalogue.ids) for s in session.steps)
    for step in session.steps:  # the ideal user rates the proposed position
        expected = PreferenceSearchEnv(d=4)
        expected.reset(options={"target": catalogue.position_of(target)})
        assert step.ideal_rating == expected._rate(np.array(step.position))
    assert session.steps_to_top_rating is not None
    again = rec.Recommender(greedy, catalogue, "greedy").play(target, rec.IdealListener(catalogue), seed=3)
    assert again.songs == session.songs


def test_the_ideal_listener_agrees_with_the_ideal_user_where_the_song_sits_at_the_position(catalogue, greedy):
    session = rec.Recommender(greedy, catalogue).play(catalogue.ids[40], rec.IdealListener(catalogue))
    for step in session.steps:
        if catalogue.position_of(step.song) == step.position:
            assert step.rating == step.ideal_rating


def test_no_repeat_never_plays_a_song_twice(catalogue, greedy):
    plain = rec.Recommender(greedy, catalogue).play(catalogue.ids[3], rec.IdealListener(catalogue))
    fresh = rec.Recommender(greedy, catalogue, no_repeat=True).play(catalogue.ids[3], rec.IdealListener(catalogue))
    assert fresh.distinct_songs == 22 and plain.distinct_songs < 22


def test_an_empty_position_plays_the_nearest_song(catalogue, greedy):
    runner = rec.Recommender(greedy, catalogue).start(catalogue.ids[0], seed=0)
    occupied = {tuple(p) for p in catalogue.positions}
    empty = next(p for p in np.ndindex(5, 5, 5, 5) if p not in occupied)
    assert runner._pick(empty) == catalogue.nearest_song(empty)


def test_listeners_rate_by_their_own_distances(catalogue):
    target = catalogue.ids[0]
    for listener in (rec.FeatureListener(catalogue), rec.GenreListener(catalogue), rec.IdealListener(catalogue)):
        listener.start(target)
        assert listener.feedback(target) == (4, 0)
    genre = rec.GenreListener(catalogue)
    genre.start(target)
    same, other = catalogue.ids[1], catalogue.ids[-1]  # blues and rock
    assert genre.feedback(same)[0] >= genre.feedback(other)[0]
    feature = rec.FeatureListener(catalogue)
    feature.start(target)
    ratings = [feature.feedback(s)[0] for s in catalogue.ids]
    assert np.mean(np.array(ratings) == 4) == pytest.approx(0.05, abs=0.02)  # WiderTopTarget: the nearest 5 %


def test_the_noisy_listener_is_seeded_and_perturbs_at_its_rates(catalogue):
    def answers(seed):
        noisy = rec.NoisyListener(rec.IdealListener(catalogue), p_rating=0.3, p_closer=0.5, seed=seed)
        noisy.start(catalogue.ids[0])
        return [noisy.feedback(s) for s in catalogue.ids]

    clean = rec.IdealListener(catalogue)
    clean.start(catalogue.ids[0])
    truth = [clean.feedback(s) for s in catalogue.ids]
    assert answers(1) == answers(1) and answers(1) != answers(2)
    flipped = np.mean([a[1] != b[1] for a, b in zip(answers(1), truth)])
    assert 0.35 < flipped < 0.65
    with pytest.raises(ValueError, match=r"p_rating must be a probability in \[0, 1\], got 1.5"):
        rec.NoisyListener(clean, p_rating=1.5)


def test_a_saved_session_replays_through_the_table1_analysis(catalogue, greedy, tmp_path):
    recommender = rec.Recommender(greedy, catalogue, "greedy")
    targets = rec.choose_targets(catalogue, per_genre=2, seed=0)
    sessions = [recommender.play(t, rec.FeatureListener(catalogue), seed=i) for ts in targets.values() for i, t in enumerate(ts)]
    for session in sessions:
        session.save(tmp_path)
    loaded = rec.load_sessions(tmp_path, catalogue)
    assert len(loaded) == len(sessions)
    table = rec.table1(rec.session_frame(loaded, catalogue))
    direct = rec.table1(rec.session_frame(sessions, catalogue))
    np.testing.assert_allclose(table["feature"], direct["feature"])
    assert table.loc["blues", "thesis (the author)"] == 1.14 and table.loc["blues", "targets"] == 2


def test_bad_saved_sessions_are_rejected_with_a_clear_message(catalogue, greedy, tmp_path):
    session = rec.Recommender(greedy, catalogue).play(catalogue.ids[0], rec.IdealListener(catalogue))
    good = session.to_json()
    bad_song = json.loads(json.dumps(good))
    bad_song["steps"][3]["song"] = "pop.99999"
    with pytest.raises(ValueError, match=r"step 3: unknown clip id 'pop.99999'"):
        rec.Session.from_json(bad_song, catalogue)
    bad_rating = json.loads(json.dumps(good))
    bad_rating["steps"][1]["rating"] = 7
    with pytest.raises(ValueError, match=r"step 1: rating must be an integer in \[0, 1, 2, 3, 4\], got 7"):
        rec.Session.from_json(bad_rating, catalogue)
    (tmp_path / "session-x.json").write_text(json.dumps(bad_rating))
    with pytest.raises(ValueError, match="session-x.json"):
        rec.load_sessions(tmp_path, catalogue)
    rejected = []
    assert rec.load_sessions(tmp_path, catalogue, rejected) == [] and "rating must be" in rejected[0]
    unknown_target = dict(good, target="nope")
    with pytest.raises(ValueError, match="unknown target clip id 'nope'"):
        rec.Session.from_json(unknown_target, catalogue)


def test_targets_per_genre_are_drawn_without_replacement(catalogue):
    targets = rec.choose_targets(catalogue, per_genre=10, seed=4)
    assert all(len(set(v)) == 10 for v in targets.values())
    assert rec.choose_targets(catalogue, per_genre=50)["jazz"] == sorted(catalogue.ids[catalogue.genres == "jazz"])
    assert targets == rec.choose_targets(catalogue, per_genre=10, seed=4)


def test_env_can_draw_targets_from_a_catalogue():
    config = EnvConfig(d=4, targets=(0, 0, 624))
    env = PreferenceSearchEnv(**config.to_dict())
    seen = {env.reset(seed=s)[1]["target"] for s in range(30)}
    assert seen == {0, 624}
    assert "targets" not in EnvConfig(d=4).to_dict()
    with pytest.raises(ValueError, match="flat position indices 0..624"):
        EnvConfig(d=4, targets=(625,))


def test_a_catalogue_missing_features_says_which():
    import pandas as pd

    from musicrl.music import catalogue as catalogue_module
    from musicrl.music.features import FeatureSet

    tracks = pd.DataFrame({"track_id": [f"s{i}" for i in range(12)], "genre": ["jazz", "rock"] * 6, "balanced14": [True] * 12})
    rng = np.random.default_rng(0)
    feats = FeatureSet(tracks, rng.normal(size=(12, 5, 32)), rng.normal(size=(12, 5, 50)), failed={"blues.00042": "cannot decode"})
    with pytest.raises(ValueError, match=r"missing features for 1 clip\(s\): blues.00042 \(cannot decode\)"):
        catalogue_module.from_features(feats)
    assert catalogue_module.from_features(feats, "pooled", allow_missing=True).features.shape == (12, 160)
    with pytest.raises(ValueError, match="unknown layer 'fourth'"):
        catalogue_module.from_features(feats, "fourth", allow_missing=True)


def test_terminal_listening_reads_answers_rejects_bad_ones_and_saves(catalogue, greedy, tmp_path):
    from musicrl.music import listen

    runner = rec.Recommender(greedy, catalogue, "greedy").start(catalogue.ids[5], "ada", seed=1, started="t0")
    answers = iter(["3 y", "five n", "2 n"] + ["1 n"] * 20)
    printed = []
    path = listen.terminal_session(runner, {s: f"/clips/{s}.ogg" for s in catalogue.ids}, tmp_path,
                                   read=lambda prompt: next(answers), write=printed.append, show_ideal=True)
    assert path is not None and path.exists()
    assert any("the rating must be a number 0-4, got 'five'" in line for line in printed)
    assert any("ideal user: rating" in line for line in printed)
    session = rec.Session.from_json(json.loads(path.read_text()), catalogue)
    assert session.listener == "ada" and [s.rating for s in session.steps[:3]] == [3, 2, 1] and len(session.steps) == 22


def test_quitting_before_the_first_answer_saves_nothing(catalogue, greedy, tmp_path):
    from musicrl.music import listen

    runner = rec.Recommender(greedy, catalogue).start(catalogue.ids[5])
    assert listen.terminal_session(runner, {s: s for s in catalogue.ids}, tmp_path, read=lambda p: "q", write=lambda line: None) is None
    assert not list(tmp_path.iterdir())
    assert listen.parse_answer(" 4 YES ") == (4, 1)


def test_the_listener_panel_records_answers_and_the_ideal_users(catalogue, greedy, tmp_path, monkeypatch):
    from musicrl.music import listen
    from musicrl.store import Store

    monkeypatch.setattr(listen, "clip_bytes", lambda path, seconds=8: f"audio of {path}".encode())
    panel = listen.ListenerPanel(rec.Recommender(greedy, catalogue), {s: s for s in catalogue.ids}, catalogue.ids[9],
                                 listener="ada", store=Store(tmp_path))
    assert "Step 0 of 21" in panel.status.value and panel.song_audio.value == f"audio of {panel.runner.song}".encode()
    panel.rating.value, panel.closer.value = 2, 1
    panel.submit.click()
    assert "<td>2</td><td>yes</td>" in panel.log.value
    while not panel.runner.done:
        panel.answer(1, 0)
    assert panel.saved is not None and panel.saved.parent == tmp_path / "sessions" and panel.submit.disabled
    assert len(rec.load_sessions(tmp_path / "sessions", catalogue)) == 1


def _variant(good, change):
    data = json.loads(json.dumps(good))
    change(data)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d.__setitem__("steps", "abc"), "steps must be a list of objects, got str"),
    (lambda d: d["steps"].__setitem__(2, "x"), "step 2: a step is an object, got str"),
    (lambda d: d.__setitem__("target", ["a"]), "unknown target clip id"),
    (lambda d: d["steps"][1].__setitem__("position", 3), "step 1: position must be a list of"),
    (lambda d: d.__setitem__("settings", [1]), "settings must be an object, got list"),
    (lambda d: d.__setitem__("steps", d["steps"] * 2), "steps; a session has at most 22"),
    (lambda d: d.__setitem__("version", 9), "version 9; this musicrl reads version 1"),
])
def test_wrongly_typed_sessions_are_rejected_and_the_rest_loaded(catalogue, greedy, tmp_path, change, message):
    good = rec.Recommender(greedy, catalogue).play(catalogue.ids[0], rec.IdealListener(catalogue)).to_json()
    (tmp_path / "session-good.json").write_text(json.dumps(good))
    (tmp_path / "session-bad.json").write_text(json.dumps(_variant(good, change)))
    (tmp_path / "session-list.json").write_text("[1, 2]")
    (tmp_path / "session-null.json").write_text("null")
    rejected = []
    loaded = rec.load_sessions(tmp_path, catalogue, rejected)
    assert len(loaded) == 1 and len(rejected) == 3
    assert any("session-bad.json" in r and message in r for r in rejected), rejected
    assert any("session-null.json" in r and "a session is a JSON object, got NoneType" in r for r in rejected)


def test_a_class_folder_pools_into_table1_naming_corrupt_and_foreign_files(catalogue, greedy, tmp_path):
    recommender = rec.Recommender(greedy, catalogue, "greedy")
    targets = rec.choose_targets(catalogue, per_genre=2, seed=1)
    for i, target in enumerate(t for ts in targets.values() for t in ts):
        session = recommender.play(target, rec.NoisyListener(rec.FeatureListener(catalogue), seed=i), seed=i)
        session.listener = f"student{i % 3}"
        session.save(tmp_path)
    (tmp_path / "session-broken.json").write_text('{"target": "blues.00000", "steps": [')
    (tmp_path / "notes.txt").write_text("bring headphones")
    sessions, rejected = rec.load_class_sessions(tmp_path, catalogue)
    assert len(sessions) == 10 and len(rejected) == 2
    assert any("notes.txt: not a saved session" in r for r in rejected)
    assert any("session-broken.json" in r for r in rejected)
    table = rec.class_table(sessions, recommender)
    assert table["class sessions"].sum() == 10 and set(table.dropna(subset=["class"]).index) == set(targets)
    assert {"thesis (the author)", "class", "feature", "genre"} <= set(table.columns)
    with pytest.raises(ValueError, match="no valid session to pool"):
        rec.class_table([], recommender)
    with pytest.raises(FileNotFoundError, match="no such folder of saved sessions"):
        rec.load_class_sessions(tmp_path / "nope", catalogue)
    from musicrl import plots
    assert plots.class_table_figure(table).axes
