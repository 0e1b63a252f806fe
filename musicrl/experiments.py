"""Profiles and the computations behind the chapters, cached in the results store.

Every knob a chapter uses is here, by profile, so a reader sees them in one place:
``smoke`` (seconds, for tests), ``quick`` (the default book), ``full`` (big machines).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from musicrl import baselines, multiseed, training, users
from musicrl.agents import AgentConfig
from musicrl.envs import BULLSEYE_REWARD, EPISODE_STEPS, REWARDS, EnvConfig
from musicrl.evaluation import (
    conversational_metrics,
    decimals_for,
    evaluate_policy,
    evaluate_sampled,
    final_level,
    format_ci,
    mean_ci,
    rollout,
    updates_to_convergence,
)
from musicrl.store import Store
from musicrl.training import RunResult, RunSpec, load_policy, run_dir, train_many

PROFILES = ("smoke", "quick", "full")
UPPER_BOUND = "upper bound"


@dataclass(frozen=True)
class EnvironmentChapter:
    """Settings of the chapter "The environment".

    ``reveal_after[d]`` is the depth of the relaxation bound where the exact programme is
    out of reach (every ``d`` above ``exact_up_to``); its cost grows steeply with depth.
    """

    dims: tuple[int, ...]
    exact_up_to: int = baselines.EXACT_UP_TO
    reveal_after: dict[int, int] = field(default_factory=dict)


def environment_chapter(profile: str) -> EnvironmentChapter:
    users.check_choice("profile", profile, PROFILES)
    if profile == "smoke":
        return EnvironmentChapter(dims=(2,))
    if profile == "quick":
        return EnvironmentChapter(dims=(2, 3, 4), reveal_after={3: 3, 4: 2})
    return EnvironmentChapter(dims=(2, 3, 4), reveal_after={3: 4, 4: 2})


def rating_count_table(dims: tuple[int, ...]) -> pd.DataFrame:
    """How many positions get each rating, over all targets: min-max (mean)."""
    rows = []
    for d in dims:
        for preset in users.PRESETS:
            table = users.rating_table(d, preset)
            ratings = range(users.MAX_RATING, -1, -1)
            counts = np.stack([(table == r).sum(1) for r in ratings], axis=1)
            cells = {
                f"rating {r}": f"{lo}–{hi} ({mean:.1f})" if lo != hi else f"{lo}"
                for r, lo, hi, mean in zip(ratings, counts.min(0), counts.max(0), counts.mean(0))
            }
            rows.append({"d": d, "positions": users.n_positions(d), "preset": preset, **cells})
    return pd.DataFrame(rows)


def _baseline_key(config: EnvConfig, name: str) -> tuple[str, dict]:
    return "baseline", {"config": config.to_dict(), "policy": name, "seed": 0}


def _bound_key(config: EnvConfig, reveal_after: int | None) -> tuple[str, dict]:
    return "planner", {"config": config.to_dict(), "reveal_after": reveal_after}


def _baseline_result(config: EnvConfig, name: str, store: Store) -> dict:
    def compute() -> dict:
        policy = baselines.make_baseline(name, config)
        return evaluate_policy(policy, config).summary()

    return store.get_or_compute(*_baseline_key(config, name), compute)


def baseline_summary(config: EnvConfig, name: str, store: Store | None = None) -> dict:
    """Mean, std and episodes of a baseline under the thesis's protocol (cached in the store)."""
    return _baseline_result(config, name, store or Store())


def _bound_result(config: EnvConfig, reveal_after: int | None, store: Store) -> dict:
    def compute() -> dict:
        planner = baselines.BayesPlanner(config, reveal_after=reveal_after)
        return {"mean": planner.expected_return(), "beliefs": len(planner.memo)}

    return store.get_or_compute(*_bound_key(config, reveal_after), compute)


def _baseline_tasks(chapter: EnvironmentChapter) -> list[tuple[str, EnvConfig, str | int | None]]:
    """("baseline", config, policy) and ("bound", config, reveal_after) in the table's order."""
    tasks: list[tuple[str, EnvConfig, str | int | None]] = []
    for d, preset, reward in itertools.product(chapter.dims, users.PRESETS, REWARDS):
        config = EnvConfig(d=d, preset=preset, reward=reward)
        tasks += [("baseline", config, n) for n in baselines.BASELINES if n != "optimal" or d <= chapter.exact_up_to]
        if d > chapter.exact_up_to:
            tasks.append(("bound", config, chapter.reveal_after[d]))
    return tasks


def _task_key(task: tuple[str, EnvConfig, str | int | None]) -> tuple[str, dict]:
    kind, config, arg = task
    return _baseline_key(config, arg) if kind == "baseline" else _bound_key(config, arg)


def _run_task(task: tuple[str, EnvConfig, str | int | None], store: Store) -> dict:
    kind, config, arg = task
    return _baseline_result(config, arg, store) if kind == "baseline" else _bound_result(config, arg, store)


def baseline_table(chapter: EnvironmentChapter, store: Store | None = None, progress: bool = True,
                   workers: int = 1) -> pd.DataFrame:
    """Mean and std of each baseline for every preset x reward x d of the chapter.

    Where ``d <= exact_up_to`` the optimal policy is evaluated exactly; above, the row
    ``upper bound`` gives the relaxation bound (target revealed after ``reveal_after``
    steps), and the best heuristic is the lower bound on the optimum. ``workers`` processes
    (joblib's ``n_jobs``: -1 is every core) compute what the store lacks, the bounds first
    (they take minutes each at d = 3, 4); the numbers do not depend on it.
    """
    store = store or Store()
    tasks = _baseline_tasks(chapter)
    todo = [t for t in tasks if store.get(*_task_key(t)) is None]
    parallel = workers != 1 and len(todo) > 1
    if parallel:
        todo.sort(key=lambda t: t[0] != "bound")
        done = Parallel(n_jobs=workers, return_as="generator_unordered")(delayed(_run_task)(t, store) for t in todo)
        for _ in tqdm(done, total=len(todo), desc="baselines", disable=not progress):
            pass
    rows = []
    for task in tqdm(tasks, desc="baselines", disable=not progress or parallel):
        kind, config, arg = task
        result = _run_task(task, store)
        if kind == "baseline":
            rows.append({"d": config.d, "preset": config.preset, "reward": config.reward, "policy": arg, **result})
        else:
            rows.append({"d": config.d, "preset": config.preset, "reward": config.reward, "policy": UPPER_BOUND,
                         "mean": result["mean"], "std": np.nan, "reveal_after": arg})
    return pd.DataFrame(rows, columns=["d", "preset", "reward", "policy", "mean", "std", "episodes", "reveal_after"])


def settings_frame(chapter: EnvironmentChapter) -> pd.DataFrame:
    return pd.DataFrame([{"setting": k, "value": str(v)} for k, v in asdict(chapter).items()])


# --- Training experiments: the thesis's figures 11-21 (2D), 24 and 25 (3D, 4D) ---------

STAND_INS = {
    "A2C": "A2C (SB3), feed-forward as in the thesis",
    "RecurrentA2C": "A2C with a 64-unit LSTM (sb3-contrib RecurrentPPO configured as A2C) for the thesis's GRU",
    "GRUA2C": "A2C with a 64-unit GRU shared by actor and critic (the thesis's own agent, ikostrikov's recurrent A2C)",
    "TRPO": "TRPO (sb3-contrib) for ACKTR, which SB3 does not have; feed-forward as in the thesis",
    "ACKTR": "ACKTR (ikostrikov's A2C with a K-FAC optimizer, musicrl.acktr), the thesis's own; feed-forward as in the thesis",
    "EntropyTRPO": "TRPO with the entropy bonus of the thesis's ACKTR (musicrl.agents.EntropyTRPO); a diagnostic variant",
}


@dataclass(frozen=True)
class ThesisMetrics:
    """A row of the thesis's figure 22 or 23: std and mean return over pooled checkpoints."""

    table: int
    std: float
    mean: float


@dataclass(frozen=True)
class Experiment:
    """One thesis figure as data: environment, agent and the thesis's reported results.

    ``converged`` is the number of updates after which the thesis's caption calls the
    model trained (None where it says training had not settled). ``full_updates`` is the
    ``full`` profile's budget: the thesis does not state its run lengths, so it is at
    least twice ``converged`` (and covers the updates its text mentions).
    """

    name: str
    figure: int
    caption: str
    env: EnvConfig
    agent: AgentConfig
    full_updates: int
    converged: int | None = None
    thesis: ThesisMetrics | None = None

    @property
    def stand_in(self) -> str:
        return STAND_INS[self.agent.algorithm]

    @property
    def recurrent(self) -> bool:
        return self.agent.algorithm in ("RecurrentA2C", "GRUA2C")


@dataclass(frozen=True)
class TrainingProfile:
    """Budget and seeds of a profile; ``updates=None`` means each experiment's full budget.

    ``scale`` shrinks the budget of an algorithm: in ``quick``, TRPO gets a quarter of the
    updates and ACKTR half, because their updates cost several times an A2C update here
    (and the thesis found ACKTR needed fewer updates than A2C: figure 17, 10k against 14k).
    """

    updates: int | None
    checkpoint_every: int
    seeds: tuple[int, ...]
    scale: dict[str, float] = field(default_factory=dict)
    trainer: str = "multiseed"  # where it applies (A2C and LSTM-A2C); TRPO always trains on SB3

    def budget(self, e: Experiment) -> tuple[int, int]:
        """Updates and checkpoint interval of experiment ``e`` under this profile."""
        if self.updates is None:
            return e.full_updates, min(self.checkpoint_every, e.full_updates)
        factor = self.scale.get(e.agent.algorithm, 1.0)
        return max(1, round(self.updates * factor)), max(1, round(self.checkpoint_every * factor))


TRAINING = {
    "smoke": TrainingProfile(updates=10, checkpoint_every=5, seeds=(0, 1)),
    # a TRPO update costs ~4 A2C ones, an ACKTR update (SB3 with K-FAC, one seed per process) ~4 of the multi-seed
    # path's seed-updates: their quick runs are shorter, so the quick build stays within 20 minutes
    "quick": TrainingProfile(updates=800, checkpoint_every=100, seeds=(0, 1, 2),
                             scale={"TRPO": 0.25, "EntropyTRPO": 0.25, "ACKTR": 0.5}),
    "full": TrainingProfile(updates=None, checkpoint_every=5000, seeds=(0, 1, 2, 3, 4)),
}


def _experiment(name, figure, caption, full_updates, converged=None, thesis=None, *, d=2, preset="WiderTopTarget",
                reward="Bullseye", obs="GridObs", algorithm="RecurrentA2C", n_steps=20, learning_rate=7e-4):
    env = EnvConfig(d=d, preset=preset, reward=reward, obs=obs)
    agent = AgentConfig(algorithm=algorithm, n_steps=n_steps, learning_rate=learning_rate)
    metrics = ThesisMetrics(*thesis) if thesis else None
    return Experiment(name, figure, caption, env, agent, full_updates, converged, metrics)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    _experiment("fig11", 11, "GridObs, TopTarget, n = 5", 200_000, 40_000, (22, 48, 168), preset="TopTarget", n_steps=5),
    _experiment("fig12", 12, "GridObs, WiderTopTarget, n = 5", 200_000, 80_000, (22, 66, 155), n_steps=5),
    _experiment("fig13", 13, "GridObs, WiderTopTarget, n = 10", 40_000, 20_000, (22, 41, 178), n_steps=10),
    _experiment("fig14", 14, "GridObs, WiderTopTarget, n = 20", 30_000, 14_000, (22, 8, 188)),
    _experiment("fig15", 15, "GridObs, WiderTopTarget, n = 10, learning rate 7e-5", 150_000, None, None,
                n_steps=10, learning_rate=7e-5),
    _experiment("fig16", 16, "BoardObs, n = 20, A2C with RNN", 30_000, 14_000, (22, 11, 192), obs="BoardObs"),
    _experiment("fig17", 17, "BoardObs, n = 20, ACKTR without RNN", 20_000, 10_000, (22, 23, 189),
                obs="BoardObs", algorithm="TRPO"),
    _experiment("fig18", 18, "GridObs, n = 20, Rating reward, WiderTopTarget", 30_000, 11_000, (23, 33, 300),
                reward="Rating"),
    _experiment("fig19", 19, "BoardObs, n = 20, Rating reward, WiderTopTarget", 40_000, 20_000, (23, 19, 305),
                reward="Rating", obs="BoardObs"),
    _experiment("fig20", 20, "ACKTR, BoardObs, n = 20, Rating reward, no RNN", 20_000, None, (23, 59, 280),
                reward="Rating", obs="BoardObs", algorithm="TRPO"),
    _experiment("fig21", 21, "A2C, BoardObs, n = 20, Rating reward, no RNN", 40_000, None, (23, 70, 253),
                reward="Rating", obs="BoardObs", algorithm="A2C"),
    _experiment("fig24", 24, "GridObs, 3D, n = 20", 80_000, 40_000, None, d=3),
    _experiment("fig25", 25, "GridObs, 4D, n = 20", 260_000, 130_000, None, d=4),
)}
# Not thesis figures: variants that test an explanation (run with `musicrl train <name>`).
VARIANTS: dict[str, Experiment] = {
    "fig17-entropy": replace(EXPERIMENTS["fig17"], name="fig17-entropy",
                             caption="BoardObs, n = 20, TRPO with ACKTR's entropy bonus",
                             agent=replace(EXPERIMENTS["fig17"].agent, algorithm="EntropyTRPO")),
    "fig20-entropy": replace(EXPERIMENTS["fig20"], name="fig20-entropy",
                             caption="BoardObs, n = 20, Rating reward, TRPO with ACKTR's entropy bonus",
                             agent=replace(EXPERIMENTS["fig20"].agent, algorithm="EntropyTRPO")),
}
# The thesis's own agent (GRU shared by actor and critic) on every recurrent experiment.
GRU_OF = ("fig11", "fig12", "fig13", "fig14", "fig15", "fig16", "fig18", "fig19", "fig24", "fig25")
VARIANTS.update({
    f"{name}-gru": replace(EXPERIMENTS[name], name=f"{name}-gru", caption=f"{EXPERIMENTS[name].caption}, GRU-A2C",
                           agent=replace(EXPERIMENTS[name].agent, algorithm="GRUA2C"))
    for name in GRU_OF
})
# The thesis's ACKTR (K-FAC) where the experiments above run the TRPO stand-in.
ACKTR_OF = ("fig17", "fig20")
VARIANTS.update({
    f"{name}-acktr": replace(EXPERIMENTS[name], name=f"{name}-acktr", caption=f"{EXPERIMENTS[name].caption}, ACKTR (K-FAC)",
                             agent=replace(EXPERIMENTS[name].agent, algorithm="ACKTR"))
    for name in ACKTR_OF
})
# The thesis's own agent for each thesis figure: GRU-A2C where it ran A2C with a recurrent layer,
# ACKTR (K-FAC) where it ran ACKTR, and feed-forward A2C (figure 21) as it is. The chapters lead
# with these; the stand-ins (LSTM-A2C, TRPO) keep their published runs and a section of their own.
THESIS_AGENT = {name: f"{name}-gru" if name in GRU_OF else f"{name}-acktr" if name in ACKTR_OF else name
                for name in EXPERIMENTS}
STAND_IN_OF = {agent: name for name, agent in THESIS_AGENT.items() if agent != name}


def thesis_agents(names: Iterable[str]) -> tuple[str, ...]:
    """The runs of the thesis's own agents for thesis experiments ``names``."""
    return tuple(THESIS_AGENT[name] for name in names)


_2D = tuple(n for n, e in EXPERIMENTS.items() if e.env.d == 2)
_HIGHER = ("fig14", *(n for n, e in EXPERIMENTS.items() if e.env.d > 2))
# The runs each chapter trains (or reads) under the build's profile: the thesis's agents.
CHAPTER_EXPERIMENTS = {
    "experiments_2d": thesis_agents(_2D),
    "higher_dimensions": thesis_agents(_HIGHER),
    "recommender": ("fig25-gru",),
    "conclusions": thesis_agents(EXPERIMENTS),
}
# What the conclusions judge, at the thesis's budgets: the thesis's agents and the stand-ins.
VERDICT_RUNS = (*thesis_agents(EXPERIMENTS), *STAND_IN_OF.values())
# The stand-ins each chapter still shows, in its section "Stand-ins, and why they fell short",
# always from their runs at the thesis's budgets (published), so a short build trains none.
CHAPTER_STAND_INS = {
    "experiments_2d": tuple(STAND_IN_OF[a] for a in thesis_agents(_2D) if a in STAND_IN_OF),
    "higher_dimensions": tuple(STAND_IN_OF[a] for a in thesis_agents(_HIGHER) if a in STAND_IN_OF),
}


def experiment(name: str) -> Experiment:
    users.check_choice("experiment", name, (*EXPERIMENTS, *VARIANTS))
    return EXPERIMENTS.get(name) or VARIANTS[name]


def _trainer(found: Experiment, profile: str, trainer: str | None) -> str:
    """The profile's trainer where it applies, else SB3; ``trainer`` asks for one (``"device"``:
    the device-native path, runs of their own), checked by :class:`RunSpec`."""
    if trainer is not None:
        return users.check_choice("trainer", trainer, training.TRAINERS)
    return TRAINING[profile].trainer if multiseed.supports(found.env, found.agent) else "sb3"


def panel_title(name: str) -> str:
    """A curve panel's title: the thesis figure, the caption and the agent, named once."""
    e = experiment(name)
    agent = SHORT_NAMES[e.agent.algorithm]
    caption = e.caption if any(part.strip().startswith(agent) for part in e.caption.split(",")) else f"{e.caption}, {agent}"
    return f"thesis figure {e.figure}: {caption}"


def curve_facts(runs: dict[str, list[RunResult]], optimal: dict[str, float], group: Sequence[str], profile: str) -> str:
    """Markdown bullets under a curve panel: per thesis figure of ``group`` with runs, when the thesis
    called its run trained, our curves' level over the last tenth (mean and the seeds' range), the
    optimum and the thesis's metric."""
    lines = []
    for name in [n for n in thesis_agents(group) if n in runs]:
        e, rs = experiment(name), runs[name]
        tail = [final_level(r.curve) for r in rs]
        said = f"trained after about {e.converged:,} updates" if e.converged else "not settled"
        lines.append(f"- **Thesis figure {e.figure}** ({e.caption}): the thesis's run was {said}. Here, over the last "
                     f"tenth of {len(rs[0].curve):,} updates the curve averages {np.mean(tail):.1f} "
                     f"(seeds {min(tail):.1f}–{max(tail):.1f}); the optimum is {optimal[name]:.1f}"
                     + (f", and the thesis's metric table gives its run {e.thesis.mean:.0f}." if e.thesis else "."))
    return "\n".join(lines) or f"Not run yet under the `{profile}` profile."


def search_gap_sentence(row: Any, steps: str) -> str:
    """Where a trained agent loses steps against greedy, from a row of the higher-dimension chapter's
    search table (``d``, ``targets with return 0``, ``steps off on the others``, ``greedy: steps off``;
    ``steps``: the agents' steps off, formatted): targets never reached, or a slower search."""
    zero, others, greedy = row["targets with return 0"], row["steps off on the others"], row["greedy: steps off"]
    missed = zero * (EPISODE_STEPS - greedy)  # beyond greedy's steps off
    slower = (1 - zero) * (others - greedy)
    cause = ("most of the gap is a slower search" if slower > 1.5 * missed else
             "most of the gap is targets never reached" if missed > 1.5 * slower else "the two share the gap")
    return (f"In {row['d']}D the agents spend {steps} of the {EPISODE_STEPS} steps off a top-rated position, greedy "
            f"{greedy:.1f}. For {zero:.1%} of the targets they never stand on one (about {missed:.1f} steps per "
            f"episode beyond greedy's); on the others they spend {others:.1f} steps off (about {slower:.1f} beyond "
            f"greedy's): {cause}.")


def loop_sentence(row: Any) -> str:
    """Whether a deterministic policy loops, from a row of :func:`sampling_table`."""
    d = experiment(row["experiment"]).env.d
    missed, stuck_share = row["targets missed (deterministic)"], row["of those, stuck on one position"]
    stuck = "none" if pd.isna(stuck_share) else f"{stuck_share:.0%}"
    verdict = "no better" if row["sampled"] - row["deterministic"] < 1 else "better"
    return (f"In {d}D the deterministic policy misses {missed:.0%} of the targets, and {stuck} of those end "
            f"stuck on one position; sampling the actions instead is {verdict} ({row['sampled']:.1f} against "
            f"{row['deterministic']:.1f}).")


def run_spec(name: str, profile: str, seed: int, trainer: str | None = None) -> RunSpec:
    """The training run of experiment ``name`` under ``profile`` with ``seed`` (``trainer``: see :func:`_trainer`)."""
    users.check_choice("profile", profile, PROFILES)
    found = experiment(name)
    updates, every = TRAINING[profile].budget(found)
    return RunSpec(name, found.env, found.agent, updates=updates, checkpoint_every=every, seed=seed,
                   trainer=_trainer(found, profile, trainer))


def run_specs(names: Sequence[str], profile: str, seeds: Sequence[int] | None = None,
              overrides: dict[str, Any] | None = None, trainer: str | None = None) -> list[RunSpec]:
    """The runs of ``names`` x ``seeds`` (default: the profile's); with ``overrides``, of each
    experiment's :func:`own_variant`; ``trainer`` as :func:`run_spec`."""
    users.check_choice("profile", profile, PROFILES)
    chosen = TRAINING[profile].seeds if seeds is None else tuple(seeds)
    if overrides:
        return [own_run_spec(name, profile, seed, overrides, trainer) for name in names for seed in chosen]
    return [run_spec(name, profile, seed, trainer) for name in names for seed in chosen]


OVERRIDABLE = ("updates", "checkpoint_every", *(f"env.{f}" for f in EnvConfig.__dataclass_fields__),
               *(f"agent.{f}" for f in AgentConfig.__dataclass_fields__))


def own_variant(name: str, overrides: dict[str, Any]) -> tuple[Experiment, dict[str, int]]:
    """A researcher's variant of experiment ``name``: ``env.<field>`` and ``agent.<field>`` set as
    given (checked by the configs themselves), named ``<name>+<key>=<value>,...`` so that its
    runs have keys of their own; ``updates`` and ``checkpoint_every`` come back as the budget."""
    base = experiment(name)
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"cannot set {', '.join(map(repr, unknown))}; accepted: updates, checkpoint_every, "
                         f"env.<{'|'.join(EnvConfig.__dataclass_fields__)}>, agent.<{'|'.join(AgentConfig.__dataclass_fields__)}>")
    env = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("env.")}
    agent = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("agent.")}
    budget = {k: v for k, v in overrides.items() if "." not in k}
    for key, value in budget.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(overrides.items())).replace(" ", "")
    variant = replace(base, name=f"{name}+{label}", caption=f"{base.caption}, with {label}",
                      env=replace(base.env, **env), agent=replace(base.agent, **agent))
    return variant, budget


def own_run_spec(name: str, profile: str, seed: int, overrides: dict[str, Any], trainer: str | None = None) -> RunSpec:
    """The run of :func:`own_variant` under ``profile`` (its budget unless ``updates`` is set)."""
    variant, budget = own_variant(name, overrides)
    updates, every = TRAINING[profile].budget(variant)
    updates = budget.get("updates", updates)
    every = budget.get("checkpoint_every", min(every, updates))
    return RunSpec(variant.name, variant.env, variant.agent, updates=updates, checkpoint_every=every, seed=seed,
                   trainer=_trainer(variant, profile, trainer))


def experiment_runs(names: Sequence[str], profile: str, root=None, address: str | None = None,
                    workers: int | None = None, progress: bool = True,
                    train_missing: bool = True) -> dict[str, list[RunResult]]:
    """Every seed's finished run of each experiment (local or published store), training (in
    parallel) what is missing; with ``train_missing=False`` missing runs are left out instead
    (:func:`missing_runs` lists them)."""
    runs: dict[str, list[RunResult]] = {name: [] for name in names}
    for spec, result in training.finished_runs(run_specs(names, profile), root, train_missing, address, workers, progress):
        runs[spec.name].append(result)
    return runs


def catalogue_target_runs(name: str, targets: Sequence[int], profile: str, root=None, seeds: Sequence[int] | None = None,
                          progress: bool = True) -> list[tuple[RunSpec, RunResult]]:
    """Experiment ``name`` trained with targets drawn from ``targets`` (flat indices, e.g. a song
    catalogue's positions) instead of uniformly; same agent, budget and seeds as ``profile``."""
    base = run_specs([name], profile, seeds)
    specs = [replace(spec, name=f"{name}-catalogue", env=replace(spec.env, targets=tuple(targets))) for spec in base]
    return list(zip(specs, train_many(specs, root=root, progress=progress)))


def playable_profile(name: str, profile: str, root=None, published=None) -> str:
    """The budget whose trained agents of ``name`` a chapter can play: ``profile``, except under
    ``full`` when some seed has neither its final checkpoint locally nor published weights
    (``musicrl publish --weights``); then ``quick``, which the build trains."""
    if profile != "full":
        return profile
    def playable(spec: RunSpec) -> bool:
        local = spec.checkpoints[-1] in training.saved_checkpoints(spec, root)
        return training.load_result(spec, root, published) is not None and (local or training.has_weights(spec, published))
    return "full" if all(playable(spec) for spec in run_specs([name], profile)) else "quick"


def experiments_frame(names: Sequence[str], profile: str) -> pd.DataFrame:
    """The registry as a table: what each experiment runs, with its budget under ``profile``."""
    rows = []
    for name in names:
        e, spec = experiment(name), run_spec(name, profile, 0)
        rows.append({
            "experiment": name, "thesis figure": e.figure, "d": e.env.d, "preset": e.env.preset, "reward": e.env.reward,
            "observation": e.env.obs, "n": e.agent.n_steps, "learning rate": e.agent.learning_rate,
            "agent": e.stand_in, "updates": spec.updates, "env steps": spec.updates * e.agent.steps_per_update,
            "seeds": len(TRAINING[profile].seeds), "thesis: trained after": e.converged,
        })
    frame = pd.DataFrame(rows)
    frame["thesis: trained after"] = frame["thesis: trained after"].astype("Int64")
    return frame


SHORT_NAMES = {"A2C": "A2C", "RecurrentA2C": "LSTM-A2C", "GRUA2C": "GRU-A2C", "TRPO": "TRPO", "EntropyTRPO": "TRPO+entropy",
               "ACKTR": "ACKTR"}
THESIS_ALGORITHM = {"A2C": "A2C", "RecurrentA2C": "A2C", "GRUA2C": "A2C", "TRPO": "ACKTR", "EntropyTRPO": "ACKTR",
                    "ACKTR": "ACKTR"}


def _baseline_config(config: EnvConfig) -> EnvConfig:
    """The config whose baselines stand for ``config``: their returns do not depend on the
    observation or the action space, so one cached result serves all of them."""
    return replace(config, obs="GridObs", action="Discrete")


def reference_levels(config: EnvConfig, profile: str, store: Store | None = None) -> dict[str, float]:
    """Mean returns of the baselines a trained agent is measured against.

    ``optimal`` (exact) where the programme is exact, otherwise the relaxation ``upper
    bound`` of the environment chapter's depth for this profile (if it has one); always
    ``greedy`` and ``lookahead``.
    """
    store = store or Store()
    config = _baseline_config(config)
    levels = {}
    if config.d <= baselines.EXACT_UP_TO:
        levels["optimal"] = _baseline_result(config, "optimal", store)["mean"]
    elif config.d in environment_chapter(profile).reveal_after:
        levels[UPPER_BOUND] = _bound_result(config, environment_chapter(profile).reveal_after[config.d], store)["mean"]
    for name in ("greedy", "lookahead"):
        levels[name] = _baseline_result(config, name, store)["mean"]
    return levels


def metrics_table(runs: dict[str, list[RunResult]], profile: str, store: Store | None = None) -> pd.DataFrame:
    """The thesis's metric tables (figures 22, 23) with ours beside them.

    For each experiment: the thesis's std and mean; ours as the mean over seeds of the
    pooled (second half of training) and final checkpoints' mean returns, each with a 95%
    bootstrap CI over seeds; the seeds' mean pooled std; and the baselines.
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        pooled = mean_ci([r.pooled.mean for r in results])
        final = mean_ci([r.final.mean for r in results])
        row = {
            "experiment": name, "figure": e.figure, "table": e.thesis.table if e.thesis else None, "d": e.env.d,
            "reward": e.env.reward, "preset": e.env.preset, "observation": e.env.obs, "n": e.agent.n_steps,
            "recurrent": e.recurrent, "thesis algorithm": THESIS_ALGORITHM[e.agent.algorithm],
            "ours": SHORT_NAMES[e.agent.algorithm], "seeds": len(results),
            "thesis std": e.thesis.std if e.thesis else np.nan, "thesis mean": e.thesis.mean if e.thesis else np.nan,
            "pooled mean": pooled[0], "pooled low": pooled[1], "pooled high": pooled[2],
            "pooled std": float(np.mean([r.pooled.std for r in results])),
            "final mean": final[0], "final low": final[1], "final high": final[2],
            **reference_levels(e.env, profile, store),
        }
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_table(runs: dict[str, list[RunResult]], weight: float = 0.99) -> pd.DataFrame:
    """Updates until the smoothed curve reaches 95% of its final level, per seed, vs the thesis.

    A seed whose curve collapsed (:func:`collapsed`, the book's one criterion) is counted in
    ``collapsed`` and left out of the median, min and max: a curve that fell and stayed low
    reaches 95% of that low level long before it fell, so its "convergence" would read as
    fast learning. ``weight`` is the smoothing of both rules (a chapter passes its own).
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        kept = [r for r in results if not collapsed(r.curve, weight)]
        found = [u for u in (updates_to_convergence(r.curve, weight) for r in kept) if u is not None]
        rows.append({
            "experiment": name, "figure": e.figure, "d": e.env.d, "positions": e.env.n_positions,
            "thesis: trained after": e.converged, "budget": len(results[0].curve),
            "ours: median": float(np.median(found)) if found else np.nan,
            "ours: min": min(found, default=np.nan), "ours: max": max(found, default=np.nan),
            "collapsed": len(results) - len(kept),
            "final level": float(np.mean([final_level(r.curve) for r in results])),
        })
    return pd.DataFrame(rows)


def search_table(runs: dict[str, list[RunResult]], store: Store | None = None) -> pd.DataFrame:
    """Where the Bullseye return is lost: steps spent off a top-rated position, agent against greedy.

    Under Bullseye a return is 10 per step on a top-rated position, so ``21 − return / 10``
    counts the steps of an episode spent elsewhere, and a return of 0 means no step landed on
    one (the target never found, or the start was top-rated and the agent left it for good:
    unlike :attr:`Episode.found`, the start does not count here). From each run's final
    checkpoint on every target (no weights needed): the steps off (mean over seeds, 95% CI),
    the share of targets with return 0, and the steps off on the others; greedy's steps off
    come from its mean return.
    """
    rows = []
    for name, results in runs.items():
        e = experiment(name)
        if e.env.reward != "Bullseye":
            raise ValueError(f"search_table reads steps from Bullseye returns; {name} uses the {e.env.reward} reward")
        off = [EPISODE_STEPS - r.final.returns / BULLSEYE_REWARD for r in results]
        missed = [float(np.mean(r.final.returns == 0)) for r in results]
        steps = mean_ci([o.mean() for o in off])
        greedy = _baseline_result(_baseline_config(e.env), "greedy", store or Store())["mean"]
        rows.append({
            "experiment": name, "figure": e.figure, "d": e.env.d, "positions": e.env.n_positions, "seeds": len(results),
            "greedy: steps off": EPISODE_STEPS - greedy / BULLSEYE_REWARD,
            "ours: steps off": steps[0], "ours: low": steps[1], "ours: high": steps[2],
            "targets with return 0": float(np.mean(missed)),
            "steps off on the others": _mean_where_any([o[r.final.returns > 0] for o, r in zip(off, results)]),
        })
    return pd.DataFrame(rows)


def _mean_where_any(groups: list[np.ndarray]) -> float:
    """Mean over the groups that hold values of each group's mean (NaN if none does)."""
    means = [g.mean() for g in groups if g.size]
    return float(np.mean(means)) if means else float("nan")


SAMPLING_REPEATS = 10


def sampling_stats(spec: RunSpec, root=None, repeats: int = SAMPLING_REPEATS) -> dict[str, float]:
    """The final checkpoint acting deterministically on every target and sampling ``repeats`` times each.

    Needs the run's weights; the published results carry it in ``extras["sampling"]``.
    """
    policy = load_policy(spec, root=root)
    _, episodes = rollout(policy, spec.env, range(spec.env.n_positions))
    missed = [ep for ep in episodes if not ep.found]
    sampled, _ = evaluate_sampled(policy, spec.env, repeats=repeats, seed=spec.seed)
    return {
        "repeats": repeats, "sampled": float(sampled.mean), "missed": len(missed) / len(episodes),
        "stuck": float(np.mean([ep.stuck for ep in missed])) if missed else float("nan"),
        "conversational": conversational_metrics(episodes),
    }


def agent_conversational(spec: RunSpec, result: RunResult | None = None, root=None) -> dict[str, float] | None:
    """SR@T and AT (:func:`musicrl.evaluation.conversational_metrics`) of a run's final checkpoint,
    deterministic, one episode per target: from the published extras, else from the local weights;
    None when neither holds them (runs published before the metrics were recorded)."""
    stored = (result.extras.get("sampling") or {}).get("conversational") if result is not None else None
    if stored:
        return stored
    try:
        policy = load_policy(spec, root=root)
    except ValueError:
        return None
    return conversational_metrics(rollout(policy, spec.env, range(spec.env.n_positions))[1])


def conversational_table(runs: dict[str, list[RunResult]], profile: str, root=None) -> pd.DataFrame:
    """Per experiment: the trained agents' SR@T and AT (mean over the seeds that have them) beside
    greedy's on the same environment; ``seeds`` counts the seeds measured (0: no weights, no record)."""
    rows, greedy_of = [], {}
    for name, results in runs.items():
        e = experiment(name)
        measured = [m for r in results if (m := agent_conversational(run_spec(name, profile, r.spec["seed"]), r, root))]
        config = _baseline_config(e.env)
        if config not in greedy_of:  # many experiments share one game; greedy plays it once
            _, episodes = rollout(baselines.make_baseline("greedy", config), config, range(config.n_positions))
            greedy_of[config] = conversational_metrics(episodes)
        greedy = greedy_of[config]
        ours = {k: float(np.mean([m[k] for m in measured])) if measured else float("nan") for k in greedy}
        rows.append({"experiment": name, "figure": e.figure, "ours": SHORT_NAMES[e.agent.algorithm], "d": e.env.d,
                     "seeds": len(measured), **{f"ours: {k}": v for k, v in ours.items()},
                     **{f"greedy: {k}": v for k, v in greedy.items()}})
    return pd.DataFrame(rows)


def _sampling(result: RunResult, spec: RunSpec, repeats: int, root) -> dict[str, float]:
    stored = result.extras.get("sampling")
    return stored if stored and stored["repeats"] == repeats else sampling_stats(spec, root, repeats)


def sampling_table(runs: dict[str, list[RunResult]], profile: str, repeats: int = SAMPLING_REPEATS, root=None) -> pd.DataFrame:
    """Each final checkpoint acting deterministically (the thesis's metric) and sampling as in training.

    Means over seeds of: the curve's last tenth, the deterministic and the sampled mean
    return (``repeats`` episodes per target), and the share of targets the deterministic
    policy never finds, and of those, the share where it ends repeating one position.
    """
    rows = []
    for name, results in runs.items():
        e, values = experiment(name), []
        for r in results:
            stats = _sampling(r, run_spec(name, profile, r.spec["seed"]), repeats, root)
            values.append((final_level(r.curve), r.final.mean, stats["sampled"], stats["missed"], stats["stuck"]))
        curve, deterministic, sampled, missed, stuck = np.nanmean(np.array(values, dtype=float), axis=0)
        rows.append({
            "experiment": name, "figure": e.figure, "ours": SHORT_NAMES[e.agent.algorithm], "observation": e.env.obs,
            "reward": e.env.reward, "curve (last tenth)": curve, "deterministic": deterministic, "sampled": sampled,
            "sampled − deterministic": sampled - deterministic, "targets missed (deterministic)": missed,
            "of those, stuck on one position": stuck,
        })
    return pd.DataFrame(rows)


class _EntropyProbe:
    """Wraps a trained policy; records the mean entropy of its action distribution at each step."""

    def __init__(self, policy) -> None:
        self.policy, self.values = policy, []

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        import torch
        from sb3_contrib import RecurrentPPO

        model, normalizer = self.policy.model, self.policy.normalizer
        obs = torch.as_tensor(normalizer.normalize_obs(observation) if normalizer else observation, device=model.device)
        with torch.no_grad():
            if isinstance(model, RecurrentPPO):
                lstm = model.policy.lstm_actor
                shape = (lstm.num_layers, len(observation), lstm.hidden_size)
                h, c = (np.zeros(shape, np.float32), np.zeros(shape, np.float32)) if state is None else state
                starts = torch.as_tensor(np.asarray(episode_start, dtype=np.float32), device=model.device)
                distribution, _ = model.policy.get_distribution(
                    obs, (torch.as_tensor(h, device=model.device), torch.as_tensor(c, device=model.device)), starts)
            else:
                distribution = model.policy.get_distribution(obs)
        self.values.append(float(distribution.entropy().mean()))
        return self.policy.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)


def policy_entropy(spec: RunSpec, updates: int, root=None) -> float:
    """Mean entropy (nats) of a checkpoint's action distribution along its deterministic episodes on every target."""
    probe = _EntropyProbe(load_policy(spec, updates, root=root))
    rollout(probe, spec.env, range(spec.env.n_positions))
    return float(np.mean(probe.values))


def line_search_success(spec: RunSpec, root=None, every: int = 500) -> list[float]:
    """TRPO: the share of updates whose line search succeeded, per block of ``every`` updates (TensorBoard logs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: list[float] = []
    for folder in sorted((run_dir(spec, root) / "tb").glob("*")):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        if "train/is_line_search_success" in events.Tags()["scalars"]:
            values += [e.value for e in events.Scalars("train/is_line_search_success")]
    return [float(np.mean(values[i:i + every])) for i in range(0, len(values), every)]


def run_extras(spec: RunSpec, root=None) -> dict:
    """What the book needs from a run beyond its result.json, computed while the weights exist.

    The entropy covers the checkpoints stored locally: every one, unless the run was carried
    over from another machine (then those trained since the carry, see
    :func:`musicrl.training.saved_checkpoints`).
    """
    extras = {
        "sampling": sampling_stats(spec, root),
        "entropy": {str(u): policy_entropy(spec, u, root) for u in training.saved_checkpoints(spec, root)},
    }
    if "TRPO" in spec.agent.algorithm:
        extras["line_search_success"] = {"every": 500, "values": line_search_success(spec, root, 500)}
    return extras


def publish_runs(names: Sequence[str], profile: str, root=None, published=None, progress: bool = True) -> list[Path]:
    """Publish every finished run of ``names`` under ``profile`` (see :func:`musicrl.training.publish`).

    The published record adds what the book would otherwise need the weights for (the
    sampling statistics); runs not finished locally are skipped, published ones kept.
    """
    return training.publish_finished(run_specs(names, profile), lambda spec: run_extras(spec, root), root, published, progress)


def missing_runs(names: Sequence[str], profile: str, root=None, published=None) -> list[RunSpec]:
    """The runs of ``names`` under ``profile`` that neither the local nor the published store holds."""
    return training.missing_runs(run_specs(names, profile), root, published)


def missing_note(missing: Sequence[RunSpec], profile: str, carry_root=None) -> str:
    """Markdown naming the runs a chapter leaves out: each experiment's seeds, how far a
    run carried over from an earlier session has trained, and the command that trains or
    resumes them ("" when nothing is missing)."""
    if not missing:
        return ""
    by_name: dict[str, list[RunSpec]] = {}
    for spec in missing:
        by_name.setdefault(spec.name, []).append(spec)
    parts = []
    for name, specs in by_name.items():
        at: dict[int, list[str]] = {}
        for s in specs:
            if u := training.carried_updates(s, carry_root):
                at.setdefault(u, []).append(str(s.seed))
        carried = ", ".join(f"{'seeds' if len(seeds) > 1 else 'seed'} {', '.join(seeds)} at {u:,}" for u, seeds in at.items())
        carried = f"; carried: {carried} of {specs[0].updates:,} updates" if at else ""
        parts.append(f"{name} (seeds {', '.join(str(s.seed) for s in specs)}{carried})")
    first = next(iter(by_name))
    command = f"musicrl train {first} --profile {profile} --seed {' '.join(str(s.seed) for s in by_name[first])}"
    return (f"**Not run yet under the `{profile}` profile** ({len(missing)} runs, left out below): " + "; ".join(parts)
            + f". `{command}` trains one experiment's seeds and resumes carried ones; "
            "`musicrl publish` adds finished runs to the published results.")


def _setting(e: Experiment, sep: str = " · ") -> str:
    preset = {"TopTarget": "Top", "WiderTopTarget": "WiderTop"}.get(e.env.preset, e.env.preset)
    return f"{e.env.d}D {e.env.obs.replace('Obs', '')}, n={e.agent.n_steps}{sep}{e.env.reward}, {preset}"


def _thousands(updates: float | None) -> str:
    if updates is None or np.isnan(updates):
        return "–"
    return f"{updates:.0f}" if updates < 1000 else f"{updates / 1000:.1f}k" if updates < 10_000 else f"{updates / 1000:.0f}k"


def figure_table(runs: dict[str, list[RunResult]], profile: str, store: Store | None = None,
                 weight: float = 0.99) -> pd.DataFrame:
    """One compact row per thesis figure, for the page: the thesis's number, ours with its 95%
    CI over seeds (rounded to what the CI supports), the optimum (exact) or the bracket
    [best heuristic, upper bound], and the updates to convergence, thesis against ours
    (median over the seeds that did not collapse; those are counted), with smoothing ``weight``."""
    metrics = metrics_table(runs, profile, store).set_index("experiment")
    convergence = convergence_table(runs, weight).set_index("experiment")
    rows = []
    for name in runs:
        e, m, c = experiment(name), metrics.loc[name], convergence.loc[name]
        heuristic = max(m["greedy"], m["lookahead"])
        if "optimal" in m and not np.isnan(m.get("optimal", np.nan)):
            best = f"{m['optimal']:.1f} (optimal)"
        elif UPPER_BOUND in m and not np.isnan(m.get(UPPER_BOUND, np.nan)):
            k = decimals_for(heuristic, m[UPPER_BOUND])  # enough decimals to tell the ends apart
            best = f"[{heuristic:.{k}f}, {m[UPPER_BOUND]:.{k}f}]"
        else:
            best = f"≥ {heuristic:.0f}"
        rows.append({
            "figure": e.figure, "setting": _setting(e, "\n"),
            "thesis": f"{THESIS_ALGORITHM[e.agent.algorithm]}: {e.thesis.mean:.0f}\n(std {e.thesis.std:.0f})" if e.thesis
            else f"{THESIS_ALGORITHM[e.agent.algorithm]}: –",
            "ours": f"{SHORT_NAMES[e.agent.algorithm]}\n{int(m['seeds'])} seeds",
            "pooled mean [95% CI]": format_ci(m["pooled mean"], m["pooled low"], m["pooled high"], int(m["seeds"])).replace(" [", "\n[")
            + f"\n(std {m['pooled std']:.0f})",
            "final [95% CI]": format_ci(m["final mean"], m["final low"], m["final high"], int(m["seeds"])).replace(" [", "\n["),
            "optimum or bracket": best.replace(" (", "\n("), "greedy": f"{m['greedy']:.1f}",
            "trained after: thesis / ours": f"{_thousands(e.converged)} / {_thousands(c['ours: median'])}"
            + (f"\n({int(c['collapsed'])} of {int(m['seeds'])}\ncollapsed)" if c["collapsed"] else ""),
        })
    return pd.DataFrame(rows)


def styled(frame: pd.DataFrame, **formats):
    """A table for the page: no index, a line break where a cell holds a newline (see figure_table)."""
    return frame.style.hide(axis="index").format(lambda v: v.replace("\n", "<br>") if isinstance(v, str) else v, **formats)


def run_entropy(result: RunResult, spec: RunSpec, root=None) -> dict[int, float]:
    """Entropy per checkpoint: published with the run, else computed from its local checkpoints."""
    stored = result.extras.get("entropy")
    if stored:
        return {int(u): h for u, h in stored.items()}
    return {u: policy_entropy(spec, u, root) for u in spec.checkpoints}


def run_line_search(result: RunResult, spec: RunSpec, root=None, every: int = 500) -> list[float]:
    stored = result.extras.get("line_search_success")
    if stored and stored["every"] == every:
        return stored["values"]
    return line_search_success(spec, root, every)


def collapse_table(runs: dict[str, list[RunResult]], profile: str, root=None, weight: float = 0.99) -> pd.DataFrame:
    """Per TRPO run: the smoothed curve's peak, its final level, whether it collapsed (fell below
    half its peak after the peak, :func:`collapse_point`) and when, the policy's entropy at the
    first and last checkpoint, and the line search's success rate in the first and last tenth
    of training."""
    rows = []
    for name, results in runs.items():
        if "TRPO" not in experiment(name).agent.algorithm:
            continue
        for r in results:
            spec = run_spec(name, profile, r.spec["seed"])
            peak, peak_at, fell_at = collapse_point(r.curve, weight)
            entropy, success = run_entropy(r, spec, root), np.asarray(run_line_search(r, spec, root))
            tenth = max(1, len(success) // 10)
            rows.append({
                "experiment": name, "seed": r.spec["seed"], "peak": peak, "peak at": peak_at,
                "final level": final_level(r.curve), "collapsed at": fell_at,
                "entropy, first checkpoint": entropy[min(entropy)], "entropy, last checkpoint": entropy[max(entropy)],
                "line search ok, first tenth": float(success[:tenth].mean()) if success.size else np.nan,
                "line search ok, last tenth": float(success[-tenth:].mean()) if success.size else np.nan,
            })
    frame = pd.DataFrame(rows)
    if len(frame):
        frame["collapsed at"] = frame["collapsed at"].astype("Int64")
    return frame


def collapse_point(curve, weight: float = 0.99) -> tuple[float, int, int | None]:
    """The smoothed curve's peak, the update of the peak, and the first update after it at which
    the curve is below half the peak (None if never): the collapse criterion of the book."""
    from musicrl.evaluation import smooth

    smoothed = smooth(curve, weight)
    peak_at = int(np.nanargmax(smoothed))
    below = np.flatnonzero(smoothed[peak_at:] < 0.5 * smoothed[peak_at])
    return float(smoothed[peak_at]), peak_at + 1, (int(peak_at + below[0] + 1) if below.size else None)


def collapsed(curve, weight: float = 0.99) -> bool:
    """Whether the smoothed curve falls below half of its peak after the peak (:func:`collapse_point`)."""
    return collapse_point(curve, weight)[2] is not None


# --- Conclusions: a computed verdict on each claim of the thesis --------------------------

HELD, NOT_HELD, UNDECIDED = "held", "not held", "undecided"


def _pooled(results: Sequence[RunResult]) -> tuple[float, float, float]:
    return mean_ci([r.pooled.mean for r in results])


def _above(a: tuple[float, float, float], b: tuple[float, float, float]) -> str:
    """Whether ``a`` is above ``b``: held if a's CI lies above b's, not held if below, else undecided."""
    if a[1] > b[2]:
        return HELD
    if a[2] < b[1]:
        return NOT_HELD
    return UNDECIDED


def _reaches(ours: tuple[float, float, float], thesis: float) -> str:
    """Whether ours reaches the thesis's number: held if the CI reaches it, not held if it lies below."""
    return HELD if ours[2] >= thesis else NOT_HELD


def _ci(ci: tuple[float, float, float]) -> str:
    return format_ci(*ci)


def _ranking(runs: dict[str, list[RunResult]], claim: str, order: Sequence[str], labels: Sequence[str],
             thesis: str) -> dict | None:
    """``order[0] > order[1] > ...`` as one claim: held if every step holds, not held if any step is reversed."""
    if not all(runs.get(name) for name in order):
        return None
    cis = [_pooled(runs[name]) for name in order]
    steps = [_above(a, b) for a, b in zip(cis, cis[1:])]
    verdict = NOT_HELD if NOT_HELD in steps else HELD if all(s == HELD for s in steps) else UNDECIDED
    ours = "; ".join(f"{label} {_ci(ci)}" for label, ci in zip(labels, cis))
    why = {HELD: "each CI lies above the next", NOT_HELD: "at least one step is reversed (CIs apart, wrong order)",
           UNDECIDED: "the CIs overlap: the seeds do not separate them"}[verdict]
    return {"claim": claim, "thesis": thesis, "ours (mean [95% CI])": ours, "verdict": verdict, "why": why}


def _best_of(runs: dict[str, list[RunResult]], claim: str, best: str, others: Sequence[str], labels: dict[str, str],
             thesis: str) -> dict | None:
    if not all(runs.get(name) for name in (best, *others)):
        return None
    cis = {name: _pooled(runs[name]) for name in (best, *others)}
    steps = [_above(cis[best], cis[o]) for o in others]
    verdict = NOT_HELD if NOT_HELD in steps else HELD if all(s == HELD for s in steps) else UNDECIDED
    winner = max(cis, key=lambda n: cis[n][0])
    why = {HELD: f"{labels[best]}'s CI lies above the others'",
           NOT_HELD: f"another setting's CI lies above {labels[best]}'s (highest mean: {labels[winner]})",
           UNDECIDED: f"the CIs overlap (highest mean: {labels[winner]})"}[verdict]
    ours = "; ".join(f"{labels[n]} {_ci(ci)}" for n, ci in cis.items())
    return {"claim": claim, "thesis": thesis, "ours (mean [95% CI])": ours, "verdict": verdict, "why": why}


def _thesis_mean(name: str) -> float | None:
    e = experiment(name)
    return e.thesis.mean if e.thesis else None


def _reaches_row(claim: str, thesis: float, agent: str, results: list[RunResult]) -> dict:
    """A claim that ``agent``'s runs reach the thesis's mean return: held if the CI reaches it."""
    ci = _pooled(results)
    verdict = _reaches(ci, thesis)
    return {"claim": claim, "thesis": f"{thesis:g}", "ours (mean [95% CI])": f"{agent} {_ci(ci)}".strip(), "verdict": verdict,
            "why": "the CI reaches the thesis's mean" if verdict == HELD else "the whole CI lies below the thesis's mean"}


# The thesis's general statements: (kind, claim, thesis figures, their labels, the thesis's numbers as text).
GENERAL_CLAIMS = (
    ("best_of", "n = 20 is the best n-step length (GridObs, WiderTopTarget, Bullseye)", ("fig14", "fig12", "fig13"),
     ("n = 20", "n = 5", "n = 10"), lambda t: f"n = 20: {t('fig14'):g}; n = 10: {t('fig13'):g}; n = 5: {t('fig12'):g}"),
    ("ranking", "The RNN stabilises learning: A2C with memory beats feed-forward A2C (BoardObs, Rating)",
     ("fig19", "fig21"), ("with memory", "feed-forward"), lambda t: f"with RNN: {t('fig19'):g}; without: {t('fig21'):g}"),
    ("ranking", "Returns fall with each added feature (GridObs, Bullseye, n = 20)", ("fig14", "fig24", "fig25"),
     ("2D", "3D", "4D"), lambda t: "lower returns in 3D and 4D (no table)"),
)


def _agent_of(names: Sequence[str]) -> str:
    return " / ".join(dict.fromkeys(SHORT_NAMES[experiment(n).agent.algorithm] for n in names))


def _claim(kind: str, runs: dict[str, list[RunResult]], claim: str, names: Sequence[str],
           labels: Sequence[str]) -> dict | None:
    if kind == "best_of":
        return _best_of(runs, claim, names[0], names[1:], dict(zip(names, labels)), "")
    return _ranking(runs, claim, names, labels, "")


def _stand_in_names(names: Sequence[str]) -> tuple[str, ...]:
    return tuple(STAND_IN_OF.get(n, n) for n in names)


def _general_row(kind: str, claim: str, figures: Sequence[str], labels: Sequence[str], thesis: Callable[..., str],
                 runs: dict[str, list[RunResult]]) -> dict | None:
    faithful, stand_in = thesis_agents(figures), _stand_in_names(thesis_agents(figures))
    mine = _claim(kind, runs, claim, faithful, labels)
    other = _claim(kind, runs, claim, stand_in, labels) if stand_in != faithful else None
    return _combine(claim, thesis(_thesis_mean), mine, _agent_of(faithful), other, _agent_of(stand_in))


def _combine(claim: str, thesis: str, mine: dict | None, agent: str, other: dict | None, stand_in: str) -> dict | None:
    """One row: the verdict with the thesis's own agent, the stand-in's beside it; where the
    thesis's agent has no runs, the stand-in's verdict is the row's, marked as resting on it."""
    if mine is None and other is None:
        return None
    on_stand_in = mine is None
    lead = other if on_stand_in else mine
    assert lead is not None
    return {
        "claim": claim, "thesis": thesis, "agent": stand_in if on_stand_in else agent,
        "ours (mean [95% CI])": lead["ours (mean [95% CI])"], "verdict": lead["verdict"], "why": lead["why"],
        "stand-in": "–" if other is None or on_stand_in else f"{stand_in}: {other['ours (mean [95% CI])']}",
        "stand-in verdict": "–" if other is None or on_stand_in else other["verdict"],
        "rests on a stand-in": on_stand_in,
    }


def claims_table(runs: dict[str, list[RunResult]]) -> pd.DataFrame:
    """One row per claim of the thesis that its tables let us check: the thesis's number, the
    verdict with the thesis's own agent (GRU-A2C, ACKTR, A2C; :data:`THESIS_AGENT`) from its
    pooled mean over seeds with its 95% CI, and the stand-in's (LSTM-A2C, TRPO) beside it.
    Verdicts: ``held``, ``not held``, ``undecided`` (the CIs overlap). Where the thesis's agent
    has no runs the stand-in decides and ``rests on a stand-in`` is true; claims with no runs
    at all are left out. ``runs`` maps run names (``fig14-gru``, ``fig14``, ...) to results."""
    rows = [_general_row(*claim, runs) for claim in GENERAL_CLAIMS]
    for name in EXPERIMENTS:
        thesis = _thesis_mean(name)
        if thesis is None:
            continue
        e, agent = experiment(name), THESIS_AGENT[name]
        claim = f"Thesis figure {e.figure} ({e.caption}): {THESIS_ALGORITHM[e.agent.algorithm]} reaches a mean return of {thesis:g}"

        mine = _reaches_row(claim, thesis, "", runs[agent]) if runs.get(agent) else None
        other = _reaches_row(claim, thesis, "", runs[name]) if agent != name and runs.get(name) else None
        rows.append(_combine(claim, f"{thesis:g}", mine, _agent_of([agent]), other, _agent_of([name])))
    return pd.DataFrame([r for r in rows if r is not None],
                        columns=["claim", "thesis", "agent", "ours (mean [95% CI])", "verdict", "why", "stand-in",
                                 "stand-in verdict", "rests on a stand-in"])


VERDICT_PROFILE = "full"  # the thesis's budgets: the runs every verdict on the thesis is drawn from


def code_check_runs(profile: str, train_missing: bool = True) -> dict[str, list[RunResult]] | None:
    """This build's runs of the thesis's agents (trained if missing and ``train_missing``), or
    None under :data:`VERDICT_PROFILE`, whose runs are the judged ones."""
    if profile == VERDICT_PROFILE:
        return None
    built = experiment_runs(thesis_agents(EXPERIMENTS), profile, progress=False, train_missing=train_missing)
    return {name: results for name, results in built.items() if results}


def claims_counts(claims: pd.DataFrame) -> dict[str, int]:
    """The page's headline numbers from :func:`claims_table`: claims, verdicts of the thesis's
    agents (``n_held``, ``n_not_held``, ``n_undecided``), rows resting on a stand-in, and the
    stand-ins' own verdicts where they ran beside the thesis's agent."""
    verdicts = claims["verdict"].value_counts()
    stand_in = claims.loc[claims["stand-in verdict"] != "–", "stand-in verdict"].value_counts()
    counts = {"n_claims": len(claims), "n_on_stand_in": int(claims["rests on a stand-in"].sum()),
              "n_stand_in_judged": int(stand_in.sum())}
    for verdict in (HELD, NOT_HELD, UNDECIDED):
        key = verdict.replace(" ", "_")
        counts[f"n_{key}"] = int(verdicts.get(verdict, 0))
        counts[f"n_stand_in_{key}"] = int(stand_in.get(verdict, 0))
    return counts


def claims_styled(claims: pd.DataFrame):
    """:func:`claims_table` for the page: verdicts coloured, long cells wrapped."""
    colours = {HELD: "background-color: #d9f0d3", NOT_HELD: "background-color: #f4cccc"}
    shown = claims.assign(agent=[f"{a} (stand-in)" if s else a for a, s in zip(claims.agent, claims["rests on a stand-in"])])
    shown = shown[["claim", "thesis", "agent", "ours (mean [95% CI])", "verdict", "stand-in", "stand-in verdict"]]
    return shown.style.hide(axis="index").map(lambda v: colours.get(v, ""), subset=["verdict", "stand-in verdict"]) \
        .set_table_styles([{"selector": "td", "props": "white-space: normal; vertical-align: top; max-width: 20em"}])


def code_check_table(build: dict[str, list[RunResult]], published: dict[str, list[RunResult]]) -> pd.DataFrame:
    """This build's short runs beside the same seeds' published full-budget runs over the same
    first updates: does the code still learn as it did? Per experiment: the updates of the short
    run, the mean over its seeds of the curve's last tenth (:func:`final_level`), the same window
    of the published curves (same seeds), and the difference."""
    rows = []
    for name, results in build.items():
        reference = {r.spec["seed"]: r for r in published.get(name, [])}
        updates = len(results[0].curve)
        ours = [final_level(r.curve) for r in results]
        theirs = [final_level(reference[r.spec["seed"]].curve[:updates]) for r in results if r.spec["seed"] in reference]
        rows.append({
            "experiment": name, "agent": SHORT_NAMES[experiment(name).agent.algorithm], "updates": updates,
            "seeds": len(results), "this build": float(np.mean(ours)),
            "published, same updates": float(np.mean(theirs)) if theirs else np.nan,
            "difference": float(np.mean(ours) - np.mean(theirs)) if theirs else np.nan,
        })
    return pd.DataFrame(rows, columns=["experiment", "agent", "updates", "seeds", "this build", "published, same updates",
                                       "difference"])


def gru_table(runs: dict[str, list[RunResult]], weight: float = 0.99) -> pd.DataFrame:
    """The thesis's agent (GRU-A2C) beside our LSTM stand-in and the thesis, per experiment of
    ``GRU_OF`` that has both: pooled mean [95% CI], seeds collapsed, and whether the GRU closes
    the gap (its CI reaches the thesis's mean) and beats the LSTM."""
    rows = []
    for name in GRU_OF:
        lstm, gru = runs.get(name), runs.get(f"{name}-gru")
        if not lstm or not gru:
            continue
        thesis = _thesis_mean(name)
        lstm_ci, gru_ci = _pooled(lstm), _pooled(gru)
        rows.append({
            "experiment": name, "setting": experiment(name).caption,
            "thesis": np.nan if thesis is None else thesis,
            "LSTM-A2C": _ci(lstm_ci), "LSTM collapsed": f"{sum(collapsed(r.curve, weight) for r in lstm)} of {len(lstm)}",
            "GRU-A2C": _ci(gru_ci), "GRU collapsed": f"{sum(collapsed(r.curve, weight) for r in gru)} of {len(gru)}",
            "GRU reaches the thesis": "–" if thesis is None else _reaches(gru_ci, thesis),
            "GRU above LSTM": _above(gru_ci, lstm_ci),
            "gru mean": gru_ci[0], "lstm mean": lstm_ci[0],
        })
    return pd.DataFrame(rows)


def gru_reading(gru: pd.DataFrame, missing: Sequence[str] = ()) -> str:
    """The sentence that reads :func:`gru_table`: where the GRU reaches the thesis, falls short,
    and lies above the LSTM; ``missing`` names the GRU runs not published yet."""
    if gru.empty:
        return f"No GRU-A2C run is published yet ({', '.join(missing)})."
    reached = gru[gru["GRU reaches the thesis"] == HELD].experiment.tolist()
    short = gru[gru["GRU reaches the thesis"] == NOT_HELD].experiment.tolist()
    above = gru[gru["GRU above LSTM"] == HELD].experiment.tolist()
    judged = int(gru["GRU reaches the thesis"].ne("–").sum())
    return (f"At the thesis's budgets the GRU reaches the thesis's number in {len(reached)} of {judged} experiments"
            + (f" ({', '.join(reached)})" if reached else "") + (f" and falls short in {', '.join(short)}" if short else "")
            + f"; its interval lies above the LSTM's in {len(above)} of {len(gru)}" + (f" ({', '.join(above)})" if above else "")
            + "." + (f" Not published yet: {', '.join(missing)}." if missing else ""))


def diagnosis_reading(diagnosis: pd.DataFrame) -> str:
    """The sentence that reads :func:`memory_diagnosis`: the memory and experiment that miss most targets."""
    if diagnosis.empty:
        return ""
    worst = diagnosis.sort_values("targets never found").iloc[-1]
    return (f"The largest share of targets never found is {worst['memory']}'s in {worst.experiment} "
            f"({worst['targets never found']:.0%} of them, mean over {worst.seeds} seeds, {worst.collapsed} collapsed): "
            "a target the final policy never reaches scores 0 for all 21 steps, which is where a mean return far below "
            "the thesis's comes from.")


def memory_comparison(names: Sequence[str], weight: float = 0.99, root=None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """GRU-A2C beside the LSTM stand-in for the recurrent experiments among ``names`` (thesis
    names or their runs), from the runs at the thesis's budgets (:data:`VERDICT_PROFILE`,
    local or published): :func:`gru_table`, :func:`memory_diagnosis` and the sentences that
    read them."""
    figures = [n for n in GRU_OF if n in names or THESIS_AGENT[n] in names]
    found = experiment_runs([*figures, *thesis_agents(figures)], VERDICT_PROFILE, root, progress=False, train_missing=False)
    found = {name: results for name, results in found.items() if results}
    gru = gru_table(found, weight)
    missing = [THESIS_AGENT[n] for n in figures if THESIS_AGENT[n] not in found]
    diagnosis = memory_diagnosis(found, VERDICT_PROFILE, weight, root)
    return gru, diagnosis, " ".join(filter(None, (gru_reading(gru, missing), diagnosis_reading(diagnosis))))


def memory_styled(gru: pd.DataFrame, diagnosis: pd.DataFrame):
    """The two tables of :func:`memory_comparison` for the page."""
    first = gru.drop(columns=["gru mean", "lstm mean"]).style.hide(axis="index").format(precision=0, subset=["thesis"],
                                                                                       na_rep="–")
    second = diagnosis.style.hide(axis="index").format(precision=1, subset=["worst seed", "best seed"]).format(
        "{:.0%}", subset=["targets never found"]).format(precision=2, subset=["entropy, last checkpoint"], na_rep="–")
    return first, second


def memory_diagnosis(runs: dict[str, list[RunResult]], profile: str, weight: float = 0.99, root=None) -> pd.DataFrame:
    """Where a recurrent agent loses return, per experiment of ``GRU_OF`` and memory (LSTM, GRU):
    seeds collapsed, the final checkpoint's share of targets never found (return 0) and spread
    of the seeds' pooled means, and the policy's entropy at the last checkpoint (nats; from the
    published extras or the local weights, NaN where neither holds it)."""
    rows = []
    for name in GRU_OF:
        for memory, key in (("LSTM-A2C", name), ("GRU-A2C", f"{name}-gru")):
            results = runs.get(key)
            if not results:
                continue
            entropies = []
            for r in results:
                stored = r.extras.get("entropy")
                if stored:
                    entropies.append(stored[max(stored, key=int)])
                    continue
                try:
                    spec = run_spec(key, profile, r.spec["seed"])
                    entropies.append(policy_entropy(spec, spec.checkpoints[-1], root))
                except ValueError:  # published without the entropy, and no weights here
                    pass
            pooled = [r.pooled.mean for r in results]
            rows.append({
                "experiment": name, "memory": memory, "seeds": len(results),
                "collapsed": sum(collapsed(r.curve, weight) for r in results),
                "targets never found": float(np.mean([np.mean(np.asarray(r.returns[-1]) == 0) for r in results])),
                "worst seed": min(pooled), "best seed": max(pooled),
                "entropy, last checkpoint": float(np.mean(entropies)) if entropies else np.nan,
            })
    return pd.DataFrame(rows)


def wall_minutes(runs: dict[str, list[RunResult]]) -> float:
    """Minutes of wall time the runs took: seeds trained together in one process (the fast
    path, ``trainer["seeds_together"] > 1``) share one wall time, counted once per experiment;
    a run carried across machines counts its recorded time."""
    total = 0.0
    for results in runs.values():
        together = [r for r in results if r.trainer.get("seeds_together", 1) > 1]
        total += max((r.wall_time for r in together), default=0.0)
        total += sum(r.wall_time for r in results if r.trainer.get("seeds_together", 1) <= 1)
    return total / 60
