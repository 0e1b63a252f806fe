import re

import pytest

from musicrl import publish
from musicrl.cli import main


def test_baselines_command_prints_every_baseline(capsys):
    assert main(["baselines", "--d", "2", "--preset", "TopTarget", "--reward", "Bullseye", "--bound", "2"]) == 0
    out = capsys.readouterr().out
    for name in ("random", "stay", "greedy", "lookahead", "optimal", "bound"):
        assert name in out
    assert "mean  194.000" in out


def test_bad_input_gives_a_clear_error(capsys):
    assert main(["baselines", "--d", "0"]) == 2
    assert "d (the number of features) must be an integer >= 1, got 0" in capsys.readouterr().err


def test_features_command_reports_counts_and_a_missing_catalogue(tmp_path, capsys):
    from musicrl.music import gtzan_dir

    assert main(["features", "--gtzan", str(tmp_path)]) == 2
    assert "no manifest.csv in" in capsys.readouterr().err
    if (gtzan_dir() / "manifest.csv").exists():
        assert main(["features", "--per-genre", "1", "--balanced", "--quiet", "--results", str(tmp_path)]) == 0
        out = capsys.readouterr().out
        assert "features of 10 clips (blues 1," in out and "0 skipped" in out


def test_listen_command_plays_a_session_from_the_terminal(tmp_path, capsys, monkeypatch):
    import numpy as np

    from musicrl import baselines
    from musicrl.envs import EnvConfig
    from musicrl.music import listen
    from musicrl.music.catalogue import Catalogue
    from musicrl.music.recommender import Recommender

    rng = np.random.default_rng(0)
    ids = [f"jazz.{i:05d}" for i in range(60)]
    catalogue = Catalogue.build(rng.normal(size=(60, 6)), ids, ["jazz"] * 60, k=4)
    toy = Recommender(baselines.make_baseline("greedy", EnvConfig(d=4)), catalogue, "greedy")
    monkeypatch.setattr(listen, "gtzan_recommender", lambda *a, **k: (toy, {i: f"/clips/{i}.ogg" for i in ids}))
    monkeypatch.setattr("builtins.input", lambda prompt="": "2 n")
    assert main(["listen", "--target", "jazz.00004", "--name", "ada", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "target: listen to /clips/jazz.00004.ogg" in out and "session saved to" in out
    assert len(list((tmp_path / "sessions").glob("session-ada-*.json"))) == 1
    assert main(["listen", "--target", "pop.00001", "--name", "ada", "--results", str(tmp_path)]) == 2
    assert "no song 'pop.00001'" in capsys.readouterr().err


def _toy_listen(monkeypatch, genres=("jazz", "rock", "pop")):
    import numpy as np

    from musicrl import baselines
    from musicrl.envs import EnvConfig
    from musicrl.music import listen
    from musicrl.music.catalogue import Catalogue
    from musicrl.music.recommender import Recommender

    rng = np.random.default_rng(0)
    ids = [f"{g}.{i:05d}" for g in genres for i in range(20)]
    catalogue = Catalogue.build(rng.normal(size=(len(ids), 6)), ids, [i.split(".")[0] for i in ids], k=4)
    toy = Recommender(baselines.make_baseline("greedy", EnvConfig(d=4)), catalogue, "greedy", layer="third")
    monkeypatch.setattr(listen, "gtzan_recommender", lambda *a, **k: (toy, {i: f"/clips/{i}.ogg" for i in ids}))
    return catalogue


def test_listen_draws_each_student_their_own_targets_over_genres(tmp_path, capsys, monkeypatch):
    import json

    _toy_listen(monkeypatch)
    monkeypatch.setattr("builtins.input", lambda prompt="": "2 n")
    for name in ("s1", "s2", "s1", "s1"):
        assert main(["listen", "--name", name, "--results", str(tmp_path)]) == 0
    saved = [json.loads(p.read_text()) for p in sorted((tmp_path / "sessions").glob("session-*.json"))]
    targets = {name: [s["target"] for s in saved if s["listener"] == name] for name in ("s1", "s2")}
    assert targets["s2"][0] != targets["s1"][0]
    assert len({t.split(".")[0] for t in targets["s1"]}) == 3  # one student's three sessions: three genres
    assert all(s["settings"]["catalogue"]["layer"] == "third" and s["settings"]["class_seed"] == 0 for s in saved)
    with pytest.raises(SystemExit):
        main(["listen", "--results", str(tmp_path)])
    assert "the following arguments are required: --name" in capsys.readouterr().err


def test_ctrl_c_in_listen_saves_the_answers_as_q_does(tmp_path, capsys, monkeypatch):
    import json

    _toy_listen(monkeypatch)
    answers = iter(["3", "2 y"])

    def read(prompt=""):
        try:
            return next(answers)
        except StopIteration:
            raise KeyboardInterrupt from None

    monkeypatch.setattr("builtins.input", read)
    assert main(["listen", "--name", "ada", "--results", str(tmp_path)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    (saved,) = (tmp_path / "sessions").glob("session-ada-*.json")
    data = json.loads(saved.read_text())
    assert len(data["steps"]) == 2 and data["settings"]["stopped_early"] is True


def test_beyond_command_trains_and_publishes_a_study(tmp_path, capsys):
    args = ["beyond", "--only", "scaling", "--profile", "smoke", "--quiet", "--results", str(tmp_path / "results")]
    assert main([*args, "--dims", "4", "--workers", "1"]) == 0
    assert "3 of 3 runs of scaling (smoke) finished" in capsys.readouterr().out
    assert main([*args, "--publish", "--published", str(tmp_path / "published")]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 runs of scaling (smoke) finished" in out and "published 6 new runs" in out
    assert len(list((tmp_path / "published" / "runs").glob("scale-d5-Wolpertinger-8-frames-s0-*.json.gz"))) == 1
    with pytest.raises(SystemExit):
        main(["beyond", "--only", "loud"])
    assert main([*args, "--dims", "9"]) == 2
    assert "musicrl: error: --dims: the smoke profile's scaling study runs d in [4, 5], got [9]" in capsys.readouterr().err


def test_carry_command_packs_unfinished_runs_only(tmp_path, capsys):
    import shutil

    from musicrl import registry, runfiles

    results, carry = tmp_path / "results", tmp_path / "carry"
    args = ["--profile", "smoke", "--results", str(results)]
    assert main(["train", "fig14", "--seed", "0", "1", "--quiet", *args]) == 0
    run = registry.run_spec("fig14", "smoke", 1)
    folder = runfiles.RunFolder.of(run, results).path
    (folder / "result.json").unlink()
    shutil.rmtree(folder / "checkpoints" / "u0000010")
    capsys.readouterr()
    assert main(["carry", "fig14", "--seed", "0", "1", "--carry", str(carry), *args]) == 0
    out = capsys.readouterr().out
    assert "fig14 seed 1: 5 of 10 updates" in out and "fig14 seed 0" not in out and "carried 1 runs" in out
    assert [p.name for p in carry.iterdir()] == [f"{run.key}.tar.gz"]
    assert main(["carry", "fig13", "--seed", "0", "--carry", str(carry), *args]) == 0
    assert "nothing to carry" in capsys.readouterr().out


def test_class_table_command_pools_a_folder_and_names_a_corrupt_and_a_foreign_file(tmp_path, capsys, monkeypatch):
    import json

    import numpy as np

    from musicrl import baselines
    from musicrl.envs import EnvConfig
    from musicrl.music import listen
    from musicrl.music import recommender as rec
    from musicrl.music.catalogue import Catalogue

    rng = np.random.default_rng(0)
    ids = [f"{g}.{i:05d}" for g in ("jazz", "metal", "pop") for i in range(20)]
    catalogue = Catalogue.build(rng.normal(size=(60, 6)), ids, [i.split(".")[0] for i in ids], k=4)
    toy = rec.Recommender(baselines.make_baseline("greedy", EnvConfig(d=4)), catalogue, "greedy")
    monkeypatch.setattr(listen, "gtzan_recommender", lambda *a, **k: (toy, {}))
    sessions = tmp_path / "class"
    for i, target in enumerate(["jazz.00001", "metal.00002", "pop.00003"]):
        session = toy.play(target, rec.FeatureListener(catalogue), seed=i)
        session.listener = f"student{i}"
        session.save(sessions)
    (sessions / "session-cut.json").write_text('{"target": "jazz.00001", "steps": [')
    (sessions / "notes.txt").write_text("bring headphones")
    out = tmp_path / "out"
    assert main(["class-table", str(sessions), "--out", str(out), "--results", str(tmp_path / "results")]) == 0
    captured = capsys.readouterr()
    assert "session-cut.json: not valid JSON, the file is damaged or cut off" in captured.err
    assert "notes.txt: not a saved session" in captured.err
    assert "pooled 3 sessions of 3 listeners; skipped 2 files" in captured.out
    written = json.loads((out / "class-table.json").read_text())
    assert written["sessions"] == 3 and len(written["rejected"]) == 2
    assert {row["target genre"] for row in written["table"]} >= {"jazz", "metal", "pop"}
    assert "genre" in written["table"][0]  # the simulated genre listener's column beside the class's
    assert (out / "class-table.png").stat().st_size > 0


def test_train_and_publish_weights_commands(tmp_path, capsys, monkeypatch):

    results, published = str(tmp_path / "results"), tmp_path / "published"
    monkeypatch.setattr(publish, "PUBLISHED_ROOT", published)
    assert main(["publish", "--profile", "smoke", "--weights", "--published", str(published)]) == 2
    assert "needs the experiments whose weights to publish" in capsys.readouterr().err
    assert main(["publish", "fig25", "--profile", "smoke", "--replace", "--published", str(published)]) == 2
    assert "--replace only goes with --weights" in capsys.readouterr().err
    assert main(["train", "fig25", "--profile", "smoke", "--seed", "0", "--weights", "--quiet", "--results", results]) == 0
    command = ["publish", "fig25", "--profile", "smoke", "--weights", "--results", results, "--published", str(published), "--quiet"]
    assert main(command) == 2  # seed 1 has not trained
    assert "fig25-s1-" in capsys.readouterr().err
    assert main([*command, "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "published 0 new runs" in out and "fig25 seed 0: final weights" in out
    assert len(list((published / "weights").glob("fig25-s0-*/model.zip"))) == 1


def test_experiments_lists_the_agent_and_every_variant_train_accepts(capsys):
    assert main(["experiments", "--profile", "quick"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "fig17-acktr" in lines and "fig11-gru" in lines and "fig17-entropy" in lines
    assert "ACKTR" in lines["fig17-acktr"] and "thesis's agent" in lines["fig17-acktr"]
    assert "TRPO" in lines["fig17"] and "stand-in" in lines["fig17"]
    assert "A2C" in lines["fig21"] and "thesis's agent" in lines["fig21"]


def test_book_parameters_are_checked_before_any_work(capsys, monkeypatch):
    from musicrl import book

    monkeypatch.setattr(book, "train_for", lambda *a, **k: pytest.fail("trained despite a bad parameter"))
    assert main(["book", "--profile", "smoke", "--chapters", "conclusions", "-p", "smothing", "0.9"]) == 2
    assert "no chosen chapter takes the parameter 'smothing'; conclusions: profile, train_missing, smoothing" in capsys.readouterr().err
    assert main(["book", "--profile", "smoke", "--chapters", "conclusions", "-p", "smoothing", "1.5"]) == 2
    assert "'smoothing' of the chapter 'conclusions' must be a number in [0, 1), got 1.5" in capsys.readouterr().err
    assert book.chapter_parameters(("conclusions", "experiments_2d"), {"smoothing": 0.9, "address": None}) == {
        "conclusions": {"smoothing": 0.9}, "experiments_2d": {"smoothing": 0.9, "address": None}}


def test_listener_answers_say_what_was_wrong_and_the_first_needs_no_closer():
    from musicrl.music.listen import parse_answer

    assert parse_answer("3", first=True) == parse_answer("3 y", first=True) == (3, 0)
    assert parse_answer("3 y") == (3, 1) and parse_answer("q") is None
    for text, first, message in (("5 y", False, "the rating must be 0-4, got 5"), ("x y", False, "must be a number 0-4, got 'x'"),
                                 ("3 maybe", False, "closer must be y or n, got 'maybe'"),
                                 ("3", False, "say whether it was closer"), ("3 y n", True, "could not read '3 y n'")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_answer(text, first=first)


def test_a_stopped_session_keeps_its_answers_and_the_ideal_answer_stays_hidden(tmp_path, monkeypatch):
    import json

    import numpy as np

    from musicrl import baselines
    from musicrl.envs import EnvConfig
    from musicrl.music import listen
    from musicrl.music.catalogue import Catalogue
    from musicrl.music.recommender import Recommender

    ids = [f"jazz.{i:05d}" for i in range(60)]
    catalogue = Catalogue.build(np.random.default_rng(0).normal(size=(60, 6)), ids, ["jazz"] * 60, k=4)
    toy = Recommender(baselines.make_baseline("greedy", EnvConfig(d=4)), catalogue, "greedy", no_repeat=True)
    answers, shown = iter(["2", "9 y", "3 y", "q"]), []
    runner = toy.start("jazz.00004", "ada", drive="listener")
    path = listen.terminal_session(runner, {i: f"/{i}.ogg" for i in ids}, tmp_path, read=lambda _: next(answers),
                                   write=shown.append)
    saved = json.loads(path.read_text())
    assert [s["rating"] for s in saved["steps"]] == [2, 3] and saved["settings"]["stopped_early"] is True
    assert saved["settings"]["drive"] == "listener" and "your answers steer the recommender" in shown[1].lower()
    assert any("the rating must be 0-4, got 9" in line for line in shown)
    assert not any("ideal user" in line for line in shown) and "stopped early, 2 of 22 steps" in shown[-1]
    assert listen.terminal_session(toy.start("jazz.00004"), {i: "" for i in ids}, tmp_path, read=lambda _: "q",
                                   write=shown.append) is None


def test_sweep_says_which_runs_it_reads_instead_of_training(tmp_path, capsys):
    args = ["sweep", "fig14-gru", "--profile", "smoke", "--seeds", "0", "--workers", "1", "--results", str(tmp_path)]
    assert main(args) == 0
    assert "read, not trained" not in capsys.readouterr().out
    assert main(args) == 0
    assert "1 of 1 runs are finished in the results store and 0 published: read, not trained; 0 to train" in capsys.readouterr().out
    published = ["sweep", "fig14", "--profile", "full", "--seeds", "0", "--workers", "1", "--results", str(tmp_path)]
    assert main(published) == 0
    assert "0 of 1 runs are finished in the results store and 1 published" in capsys.readouterr().out


def test_a_researchers_variant_trains_under_its_own_name_and_key(tmp_path, capsys):
    from musicrl import registry

    args = ["train", "fig14-gru", "--profile", "smoke", "--quiet", "--results", str(tmp_path),
            "--set", "agent.n_steps=10", "env.rating_noise=0.1", "updates=6", "checkpoint_every=3"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fig14-gru+n_steps=10,checkpoint_every=3,rating_noise=0.1,updates=6 seed 0" in out  # keys sorted
    spec = registry.own_run_spec("fig14-gru", "smoke", 0, {"agent.n_steps": 10, "env.rating_noise": 0.1, "updates": 6,
                                                              "checkpoint_every": 3})
    assert (spec.agent.n_steps, spec.env.rating_noise, spec.updates, spec.checkpoint_every) == (10, 0.1, 6, 3)
    assert spec.key != registry.run_spec("fig14-gru", "smoke", 0).key and spec.trainer == "multiseed"
    published = tmp_path / "published"
    assert main(["publish", "fig14-gru", "--profile", "smoke", "--results", str(tmp_path), "--published", str(published),
                 "--quiet", "--set", "agent.n_steps=10", "env.rating_noise=0.1", "updates=6", "checkpoint_every=3"]) == 0
    assert "published 1 new runs" in capsys.readouterr().out
    assert (published / "runs" / f"{spec.key}.json.gz").is_file()
    assert main(["publish", "--profile", "smoke", "--set", "agent.n_steps=10"]) == 2
    assert "publish --set publishes a variant: name its experiments" in capsys.readouterr().err
    assert main(["train", "fig14", "--profile", "smoke", "--set", "agent.nsteps=10"]) == 2
    assert "cannot set 'agent.nsteps'; accepted: updates, checkpoint_every, env.<d|" in capsys.readouterr().err
    assert main(["train", "fig14", "--profile", "smoke", "--set", "agent.n_steps=0"]) == 2
    assert "n_steps must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["train", "fig14", "--profile", "smoke", "--set", "n_steps"]) == 2
    assert "--set takes KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("agent.vf_coef=x", "agent.vf_coef must be a number, got 'x'"),
    ("agent.gamma=abc", "agent.gamma must be a number, got 'abc'"),
    ("agent.gamma=2", "gamma must be a number in (0, 1], got 2.0"),
    ("agent.ent_coef=-1e-2", "ent_coef must be a number >= 0, got -0.01"),
    ("agent.max_grad_norm=0", "max_grad_norm must be a number > 0, got 0.0"),
    ("agent.n_steps=2.5", "agent.n_steps must be an integer, got 2.5"),
    ("agent.normalize=3", "agent.normalize must be true or false, got 3"),
    ("agent.n_steps=20", "gives fig14-gru itself (its own values): train fig14-gru without --set"),
    ("agent.ent_coef=1e-2", "gives fig14-gru itself (its own values)"),
    ("agent.device=cuda", "cannot set agent.device: agent.device picks the machine, not the experiment"),
])
def test_set_values_are_typed_and_checked_before_any_work(setting, message, capsys, tmp_path):
    assert main(["train", "fig14-gru", "--profile", "smoke", "--results", str(tmp_path), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert err.startswith("musicrl: error: ") and message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()


def test_set_reads_numbers_in_exponent_form_by_the_fields_type():
    from musicrl import registry
    from musicrl.cli import _overrides

    spec = registry.run_specs(["fig14-gru"], "smoke", [0], _overrides(["agent.learning_rate=1e-3", "agent.max_grad_norm=1e1"]))[0]
    assert spec.agent.learning_rate == 0.001 and spec.agent.max_grad_norm == 10.0
    assert spec.name == "fig14-gru+learning_rate=0.001,max_grad_norm=10.0"


def test_help_names_every_command_and_counts_read_as_english(capsys):
    from musicrl.cli import _count, parser

    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert name in parser().description
    assert (_count(1, "session"), _count(3, "listener"), _count(0, "file")) == ("1 session", "3 listeners", "0 files")


def test_book_checks_paths_and_chapters_before_any_work_and_renders_without_executing(tmp_path, capsys, monkeypatch):
    from musicrl import book

    assert main(["book", "--chapters", "music_features", "-p", "gtzan", str(tmp_path / "nonexistent")]) == 2
    err = capsys.readouterr().err
    assert "parameter 'gtzan' of the chapter 'music_features' must be None or an existing folder holding manifest.csv" in err
    assert len(err.splitlines()) == 1
    assert main(["book", "--chapters"]) == 2
    assert "--chapters needs the names of the chapters to execute: environment, " in capsys.readouterr().err
    assert main(["book", "--render-only", "--chapters", "environment"]) == 2
    assert "--render-only executes nothing" in capsys.readouterr().err
    rendered, executed = [], []
    monkeypatch.setattr(book, "build_html", lambda root=book.ROOT: rendered.append(root) or root / "_build" / "html")
    monkeypatch.setattr(book, "execute_chapter", lambda *a, **k: executed.append(a))
    monkeypatch.setattr(book, "write_placeholder", lambda name, root=book.ROOT: executed.append(("placeholder", name)))
    assert main(["book", "--render-only"]) == 0
    assert rendered == [book.ROOT] and all(e[0] == "placeholder" for e in executed)


def test_small_refusals_name_what_works(capsys, monkeypatch, tmp_path):
    from musicrl import baselines

    computed = []
    monkeypatch.setattr(baselines, "make_baseline", lambda *a, **k: computed.append(a) or None)
    assert main(["baselines", "--d", "2", "--policies", "greedy", "foo"]) == 2
    assert computed == [] and "unknown policy 'foo'; accepted: 'random', 'stay', 'greedy'" in capsys.readouterr().err
    assert main(["beyond", "--dims", "12", "--profile", "smoke"]) == 2
    assert capsys.readouterr().err.startswith("musicrl: error: --dims: the smoke profile's scaling study runs d in [4, 5]")
    assert main(["train", "fig17", "--profile", "smoke", "--trainer", "device", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "use --trainer 'sb3' for TRPO" in err and "multiseed" not in err.split("use --trainer")[1]
    assert main(["train", "fig14", "--profile", "smoke", "--trainer", "device", "--device", "cpu", "--cuda-graph",
                 "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--cuda-graph replays CUDA graphs and needs a CUDA device; this run's device is cpu" in err and "graph=True" not in err
    assert main(["experiments", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "<NA>" not in out and "– where the thesis does not say" in out


def test_ctrl_c_and_sigterm_end_a_command_with_one_line(tmp_path, capsys, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import time

    from musicrl import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_many", interrupted)
    assert main(["sweep", "fig14", "--profile", "smoke", "--seeds", "0", "--results", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.startswith("musicrl: interrupted: sweep stopped; what finished is kept") and "Traceback" not in err
    process = subprocess.Popen([sys.executable, "-m", "musicrl.cli", "train", "fig14", "--profile", "quick", "--seed", "0",
                                "--results", str(tmp_path / "term"), "--quiet"], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    for _ in range(600):
        if (tmp_path / "term" / "runs").is_dir():
            break
        time.sleep(0.1)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "musicrl: interrupted: train stopped" in stderr and "Traceback" not in stderr
