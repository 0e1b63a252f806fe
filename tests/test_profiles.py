"""The one profile table: every budget in one place, asked for by name, never compared by name."""

import re
from pathlib import Path

import pytest

from musicrl import baselines, profiles, registry

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


@pytest.mark.parametrize("name", [*registry.EXPERIMENTS, *registry.VARIANTS])
def test_every_profile_gives_every_experiment_a_run_budgets_grow_and_full_is_the_thesis_budget(name):
    """Computed for every experiment: a valid run under each profile (RunSpec checks itself),
    budgets that never shrink from smoke to full, as many checkpoints under a scaled budget as
    under the profile's own (curves stay comparable), and the thesis's budget at full."""
    e = registry.experiment(name)
    budgets = [profiles.get(p).training.budget(e) for p in profiles.NAMES]
    assert [u for u, _ in budgets] == sorted(u for u, _ in budgets)
    for p in profiles.NAMES:
        (spec,) = registry.run_specs([name], p, seeds=[0])
        training = profiles.get(p).training
        if training.updates is not None:  # scaled or not, the profile's number of checkpoints
            assert len(spec.checkpoints) == -(-training.updates // training.checkpoint_every)
    assert budgets[-1][0] == e.full_updates and (e.converged is None or e.full_updates >= 2 * e.converged)


def test_no_profile_asks_the_exact_optimum_beyond_what_it_solves():
    assert all(profiles.get(p).environment.exact_up_to <= baselines.EXACT_UP_TO for p in profiles.NAMES)


def test_no_code_or_chapter_compares_a_profile_by_name():
    """Only profiles.py knows what each profile means; everything else reads a field."""
    pattern = re.compile(r"""profile\s*(==|!=|in \(|is)\s*["'(]""")
    sources = [*ROOT.glob("musicrl/**/*.py"), *ROOT.glob("notebooks/*.md"), *ROOT.glob("scripts/*.py")]
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in sources if p.name != "profiles.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not offenders
