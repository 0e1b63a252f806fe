"""The build profiles: every budget a chapter or a command reads, in one table.

``smoke`` runs in seconds (the tests), ``quick`` is the default book (about 20 minutes on two
cores), ``full`` is the thesis's budgets, whose runs are published with the repository. A
profile is one :class:`Profile`, grouped by what it budgets; everything else asks
:func:`get` and reads a field, never compares a profile's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from musicrl import users


class _Algorithm(Protocol):
    @property
    def algorithm(self) -> str: ...


class Budgeted(Protocol):
    """What a budget needs of an experiment (:class:`musicrl.registry.Experiment` is one): its
    thesis budget and its agent's algorithm. A protocol, so that the profiles import no registry."""

    @property
    def full_updates(self) -> int: ...

    @property
    def agent(self) -> _Algorithm: ...


@dataclass(frozen=True)
class Training:
    """The training runs of the thesis's experiments (and the variants of :mod:`musicrl.registry`)."""

    updates: int | None
    """Updates per run; None: each experiment's own thesis budget (``Experiment.full_updates``)."""
    checkpoint_every: int
    """Updates between checkpoints (each one evaluated on every target)."""
    seeds: tuple[int, ...]
    """The seeds every experiment trains."""
    scale: dict[str, float] = field(default_factory=dict)
    """Budget factor per algorithm: in ``quick`` TRPO gets a quarter of the updates and ACKTR half,
    because their updates cost several times an A2C update here (and the thesis found ACKTR needed
    fewer updates than A2C: figure 17, 10k against 14k)."""
    trainer: str = "multiseed"
    """The trainer where it applies (A2C, LSTM-A2C and GRU-A2C); the others train on SB3."""

    def budget(self, e: Budgeted) -> tuple[int, int]:
        """Updates and checkpoint interval of experiment ``e`` under this profile."""
        if self.updates is None:
            return e.full_updates, min(self.checkpoint_every, e.full_updates)
        factor = self.scale.get(e.agent.algorithm, 1.0)
        return max(1, round(self.updates * factor)), max(1, round(self.checkpoint_every * factor))


@dataclass(frozen=True)
class Environment:
    """The chapter "The environment": its dimensions and the bounds it computes."""

    dims: tuple[int, ...]
    """The numbers of features (d) whose optimum and baselines the chapter computes."""
    exact_up_to: int = 2
    """The largest d whose optimum is solved exactly (at most :data:`musicrl.baselines.EXACT_UP_TO`,
    the largest the exact programme solves in seconds)."""
    reveal_after: dict[int, int] = field(default_factory=dict)
    """Depth of the relaxation bound per d above ``exact_up_to``; its cost grows steeply with depth."""


@dataclass(frozen=True)
class Beyond:
    """The chapter "Beyond the thesis": listener noise and more features."""

    noise_updates: int
    noise_every: int
    """Updates and checkpoint interval of the noise study's runs."""
    noise_seeds: tuple[int, ...]
    dims: tuple[int, ...]
    """The numbers of features of the scaling study."""
    scaling_updates: int
    scaling_every: int
    scaling_seeds: tuple[int, ...]
    baseline_repeats: int
    """Noisy baselines: episodes per target, each with its own noise."""


@dataclass(frozen=True)
class Music:
    """The chapter "Music features" (and the catalogue the recommender and the class lab use)."""

    per_genre: int | None
    """Clips per genre in the catalogue (None: all in the manifest)."""
    balanced_only: bool
    """Take the clips from the balanced14 subset only."""
    cv_folds: int
    cv_repeats: int
    """Repeated stratified cross-validation of the genre classifiers."""
    pcs: tuple[int | str, ...]
    """The numbers of principal components the classifiers are compared on."""


@dataclass(frozen=True)
class Recommender:
    """The chapter "The recommender"."""

    targets_per_genre: int | None
    """At most this many target songs per genre in the per-genre evaluation (None: the chapter's parameter)."""
    catalogue_budget: str
    """The profile whose budget the catalogue-target runs train at when the agent plays at this
    profile's budget (no catalogue-target runs are published at the thesis's budgets)."""
    unplayable_fallback: str | None
    """The budget the agent plays at when some seed's weights at this one are neither local nor
    published (None: this profile's runs are trained by the build, so they are there)."""
    tagger_targets_per_genre: int | None = 10
    """Target songs per genre in "A stronger tagger"'s recommender comparison (None: every song),
    played on each of its five catalogues by two players and three listeners."""


@dataclass(frozen=True)
class Book:
    """What a build under this profile does with the training runs."""

    train_missing: bool
    """Train the runs the chapters need that neither results/ nor published/ holds."""
    thesis_budget: bool
    """The runs are at the thesis's budgets (the published ones the verdicts are drawn from)."""
    code_check_updates: int | None = None
    """The first updates of every published thesis-agent run that the build trains again and
    compares with the published curve, update by update (:mod:`musicrl.codecheck`); None where the
    build's runs are the published ones."""


@dataclass(frozen=True)
class Profile:
    """One build profile: the budgets of each part of the study."""

    name: str
    training: Training
    environment: Environment
    beyond: Beyond
    music: Music
    recommender: Recommender
    book: Book


PCS: tuple[int | str, ...] = (2, 3, 4, 8, 16, "all")

PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile(
        "smoke",
        Training(updates=10, checkpoint_every=5, seeds=(0, 1)),
        Environment(dims=(2,)),
        Beyond(10, 5, (0, 1), (4, 5), 10, 5, (0,), 2),
        Music(per_genre=4, balanced_only=True, cv_folds=2, cv_repeats=2, pcs=(2, 4, "all")),
        Recommender(targets_per_genre=2, catalogue_budget="smoke", unplayable_fallback=None, tagger_targets_per_genre=2),
        Book(train_missing=True, thesis_budget=False, code_check_updates=30),
    ),
    Profile(
        "quick",
        # a TRPO update costs ~4 A2C ones, an ACKTR update (SB3 with K-FAC, one seed per process) ~4 of the
        # multi-seed path's seed-updates: their quick runs are shorter, so the quick build stays within 20 minutes
        Training(updates=800, checkpoint_every=100, seeds=(0, 1, 2), scale={"TRPO": 0.25, "EntropyTRPO": 0.25, "ACKTR": 0.5}),
        Environment(dims=(2, 3, 4), reveal_after={3: 3, 4: 2}),
        # the quick build's sweep spends about a third of its CPU time on these (Wolpertinger at d = 8 most)
        Beyond(800, 200, (0, 1, 2), (4, 6, 8), 400, 200, (0, 1), 5),
        Music(per_genre=None, balanced_only=False, cv_folds=5, cv_repeats=5, pcs=PCS),
        Recommender(targets_per_genre=None, catalogue_budget="quick", unplayable_fallback=None),
        Book(train_missing=True, thesis_budget=False, code_check_updates=100),
    ),
    Profile(
        "full",
        Training(updates=None, checkpoint_every=5000, seeds=(0, 1, 2, 3, 4)),
        Environment(dims=(2, 3, 4), reveal_after={3: 4, 4: 2}),
        Beyond(15000, 2500, (0, 1, 2, 3, 4), (4, 5, 6, 7, 8), 5000, 1000, (0, 1, 2), 20),
        Music(per_genre=None, balanced_only=False, cv_folds=5, cv_repeats=50, pcs=PCS),
        Recommender(targets_per_genre=None, catalogue_budget="quick", unplayable_fallback="quick", tagger_targets_per_genre=None),
        Book(train_missing=False, thesis_budget=True),
    ),
)}
NAMES = tuple(PROFILES)
VERDICT = "full"
"""The profile whose runs (the thesis's budgets, published) every verdict on the thesis is drawn from."""


def get(name: str) -> Profile:
    """The profile called ``name`` (one of :data:`NAMES`; anything else is a clear error)."""
    users.check_choice("profile", name, NAMES)
    return PROFILES[name]
