"""The one profile table: every budget in one place, asked for by name, never compared by name."""

import re
from pathlib import Path

import pytest

from musicrl import profiles, registry

ROOT = Path(__file__).resolve().parent.parent


def test_every_profile_budgets_every_part_of_the_study():
    assert profiles.NAMES == ("smoke", "quick", "full")
    for name in profiles.NAMES:
        p = profiles.get(name)
        assert p.name == name and p.training.seeds and p.environment.dims and p.beyond.dims and p.music.pcs
    assert profiles.get(profiles.VERDICT).book.thesis_budget
    assert [profiles.get(n).book.train_missing for n in profiles.NAMES] == [True, True, False]


def test_an_unknown_profile_names_the_accepted_ones():
    with pytest.raises(ValueError, match=r"profile.*'huge'.*smoke.*quick.*full"):
        profiles.get("huge")


def test_the_quick_profile_shortens_trpo_and_acktr_and_full_runs_the_thesis_budget():
    quick, full = profiles.get("quick").training, profiles.get("full").training
    fig14, fig17, acktr = (registry.experiment(n) for n in ("fig14", "fig17", "fig17-acktr"))
    assert quick.budget(fig14) == (800, 100) and quick.budget(fig17) == (200, 25) and quick.budget(acktr) == (400, 50)
    assert full.budget(fig14) == (30_000, 5000) and full.budget(fig17) == (20_000, 5000)


def test_no_code_or_chapter_compares_a_profile_by_name():
    """Only profiles.py knows what each profile means; everything else reads a field."""
    pattern = re.compile(r"""profile\s*(==|!=|in \(|is)\s*["'(]""")
    sources = [*ROOT.glob("musicrl/**/*.py"), *ROOT.glob("notebooks/*.md"), *ROOT.glob("scripts/*.py")]
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in sources if p.name != "profiles.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders
