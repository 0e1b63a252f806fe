"""The exact code check: published runs' first updates trained again must give the published curves."""

import numpy as np
import pytest

from musicrl import codecheck, multiseed, profiles, registry
from musicrl.publish import published_result
from musicrl.runfiles import RunResult


def test_first_difference_is_the_first_update_that_differs_at_the_stored_precision():
    nan = np.nan
    assert codecheck.first_difference(np.array([nan, 1.0, 2.0001]), np.array([nan, 1.0, 2.0, 9.0])) == (None, 0.0)
    assert codecheck.first_difference(np.array([nan, 1.0, 2.5, 3.0]), np.array([nan, 1.0, 2.0, 2.0])) == (3, 1.0)
    assert codecheck.first_difference(np.array([1.0, 2.0]), np.array([nan, 2.0])) == (1, np.inf)
    with pytest.raises(ValueError, match="published curve has 1 updates, fewer than the 2 checked"):
        codecheck.first_difference(np.array([1.0, 2.0]), np.array([1.0]))


def _result(name: str, seed: int, curve: list[float], path: str = "multiseed") -> RunResult:
    return RunResult(spec={"name": name, "seed": seed}, curve=np.array(curve), checkpoints=[1], returns=[np.zeros(3)],
                     pooled_from=[1], wall_time=0.0, env_steps=0, trainer={"path": path, "seeds_together": 2})


def test_the_table_gives_each_experiment_its_earliest_difference_over_seeds():
    pairs = [(_result("fig14-gru-check", 0, [1.0, 2.0, 3.0]), _result("fig14-gru", 0, [1.0, 2.0, 3.0, 4.0])),
             (_result("fig14-gru-check", 1, [1.0, 2.5, 3.0]), _result("fig14-gru", 1, [1.0, 2.0, 3.0, 4.0])),
             (_result("fig21-check", 0, [5.0, 6.0]), _result("fig21", 0, [5.0, 6.0, 7.0]))]
    table = codecheck.check_table(pairs)
    assert table.to_dict("records") == [
        {"experiment": "fig14-gru", "agent": "GRU-A2C", "trainer": "multiseed", "seeds": 2, "updates": 3,
         "reproduced": "no", "first differing update": 2, "largest difference": 0.5},
        {"experiment": "fig21", "agent": "A2C", "trainer": "multiseed", "seeds": 1, "updates": 2,
         "reproduced": "exactly", "first differing update": None, "largest difference": 0.0}]
    assert codecheck.summary(table) == {"n_checked": 2, "n_exact": 1, "n_check_runs": 3}


def test_the_check_restarts_every_published_seed_and_none_under_the_thesis_budget():
    pairs = codecheck.check_specs("smoke", ["fig14-gru"])
    published = [s for s in registry.run_specs(["fig14-gru"], profiles.VERDICT) if published_result(s) is not None]
    assert [p for _, p in pairs] == published and len(published) == 5
    for check, original in pairs:
        assert (check.env, check.agent, check.seed, check.trainer) == (original.env, original.agent, original.seed,
                                                                       original.trainer)
        assert check.updates == check.checkpoint_every == profiles.get("smoke").book.code_check_updates
        assert check.updates <= original.checkpoint_every and check.key != original.key
    assert codecheck.check_specs("full") == [] and codecheck.check_runs("full") is None


def test_the_published_runs_reproduce_exactly_and_a_one_line_change_is_caught(tmp_path, monkeypatch):
    """fig21's five published seeds, trained again for the smoke check's updates in this process:
    equal curves. With the entropy bonus's sign flipped in the shared loss (a one-line
    regression), the check names the update where the curves part."""
    table = codecheck.check_table(codecheck.check_runs("smoke", names=["fig21"], root=tmp_path / "a", workers=1))
    assert list(table.reproduced) == ["exactly"] and table.seeds[0] == 5
    entropy = multiseed._entropy
    monkeypatch.setattr(multiseed, "_entropy", lambda normalized: -entropy(normalized))
    broken = codecheck.check_table(codecheck.check_runs("smoke", names=["fig21"], root=tmp_path / "b", workers=1))
    assert list(broken.reproduced) == ["no"] and 2 <= broken["first differing update"][0] <= 30
    assert broken["largest difference"][0] > 0


def test_the_summary_says_the_check_and_the_music_verdict_in_words():
    from musicrl.chapters import summary

    table = codecheck.check_table([(_result("fig14-gru-check", 0, [1.0, 2.5]), _result("fig14-gru", 0, [1.0, 2.0, 3.0])),
                                   (_result("fig21-check", 0, [5.0, 6.0]), _result("fig21", 0, [5.0, 6.0]))])
    assert summary.code_check_sentence(table, thesis_budget=False) == (
        "1 of 2 experiments reproduce their published curves exactly over their first 2 updates (2 runs trained again); "
        "fig14-gru first differs at update 2")
    assert summary.code_check_sentence(None, thesis_budget=False) == "the exact code check was not run in this build"
    assert summary.code_check_sentence(None, thesis_budget=True).startswith("this build is at the thesis's budgets")
    assert summary.music_verdict([{"verdict": "not held"}, {"verdict": "held"}]) == "held"
    assert summary.music_verdict(None) == summary.NOT_RUN
