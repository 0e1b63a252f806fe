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
