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
