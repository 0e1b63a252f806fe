"""The thesis's experiments and our variants as data, and the training runs they stand for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from musicrl import profiles, users
from musicrl.agents import AgentConfig
from musicrl.algorithms import ALGORITHMS, trainer, trainer_for
from musicrl.envs import EnvConfig
from musicrl.runfiles import RunSpec


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
        return ALGORITHMS[self.agent.algorithm].description

    @property
    def recurrent(self) -> bool:
        return ALGORITHMS[self.agent.algorithm].recurrent


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


def _trainer(found: Experiment, profile: str, chosen: str | None) -> str:
    """The profile's trainer where it applies, else SB3; ``trainer`` asks for one (``"device"``:
    the device-native path, runs of their own), checked by :class:`RunSpec`."""
    if chosen is not None:
        return trainer(chosen).name
    return trainer_for(profiles.get(profile).training.trainer, found.env, found.agent)


def panel_title(name: str) -> str:
    """A curve panel's title: the thesis figure, the caption and the agent, named once."""
    e = experiment(name)
    agent = ALGORITHMS[e.agent.algorithm].short
    caption = e.caption if any(part.strip().startswith(agent) for part in e.caption.split(",")) else f"{e.caption}, {agent}"
    return f"thesis figure {e.figure}: {caption}"


def run_spec(name: str, profile: str, seed: int, trainer: str | None = None) -> RunSpec:
    """The training run of experiment ``name`` under ``profile`` with ``seed`` (``trainer``: see :func:`_trainer`)."""
    found = experiment(name)
    updates, every = profiles.get(profile).training.budget(found)
    return RunSpec(name, found.env, found.agent, updates=updates, checkpoint_every=every, seed=seed,
                   trainer=_trainer(found, profile, trainer))


def run_specs(names: Sequence[str], profile: str, seeds: Sequence[int] | None = None,
              overrides: dict[str, Any] | None = None, trainer: str | None = None) -> list[RunSpec]:
    """The runs of ``names`` x ``seeds`` (default: the profile's); with ``overrides``, of each
    experiment's :func:`own_variant`; ``trainer`` as :func:`run_spec`."""
    chosen = profiles.get(profile).training.seeds if seeds is None else tuple(seeds)
    if overrides:
        return [own_run_spec(name, profile, seed, overrides, trainer) for name in names for seed in chosen]
    return [run_spec(name, profile, seed, trainer) for name in names for seed in chosen]


NOT_OVERRIDABLE = {"agent.device": "agent.device picks the machine, not the experiment (a run's key never depends on the "
                                   "machine): use --trainer device --device cuda"}
OVERRIDABLE = ("updates", "checkpoint_every", *(f"env.{f}" for f in EnvConfig.__dataclass_fields__),
               *(f"agent.{f}" for f in AgentConfig.__dataclass_fields__ if f"agent.{f}" not in NOT_OVERRIDABLE))


def _typed(key: str, value: Any, kind: Any) -> Any:
    """``value`` (as YAML read it) as the field's type: ``1e-3`` (a string to YAML) is the float 0.001."""
    if kind is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{key} must be an integer, got {value!r}")
    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if kind is str and not isinstance(value, str):
        raise ValueError(f"{key} must be a name, got {value!r}")
    return value


def _field_types(config: type) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(config)


def own_variant(name: str, overrides: dict[str, Any]) -> tuple[Experiment, dict[str, int]]:
    """A researcher's variant of experiment ``name``: ``env.<field>`` and ``agent.<field>`` set as
    given (checked by the configs themselves), named ``<name>+<key>=<value>,...`` so that its
    runs have keys of their own; ``updates`` and ``checkpoint_every`` come back as the budget."""
    base = experiment(name)
    for key in overrides:
        if key in NOT_OVERRIDABLE:
            raise ValueError(f"cannot set {key}: {NOT_OVERRIDABLE[key]}")
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"cannot set {', '.join(map(repr, unknown))}; accepted: updates, checkpoint_every, "
                         f"env.<{'|'.join(EnvConfig.__dataclass_fields__)}>, agent.<{'|'.join(AgentConfig.__dataclass_fields__)}>")
    types = {f"env.{k}": v for k, v in _field_types(EnvConfig).items()} | {f"agent.{k}": v for k, v in _field_types(AgentConfig).items()}
    overrides = {k: _typed(k, v, types[k]) if k in types else v for k, v in overrides.items()}
    env = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("env.")}
    agent = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("agent.")}
    budget = {k: v for k, v in overrides.items() if "." not in k}
    for key, value in budget.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(overrides.items())).replace(" ", "")
    variant = replace(base, name=f"{name}+{label}", caption=f"{base.caption}, with {label}",
                      env=replace(base.env, **env), agent=replace(base.agent, **agent))
    if variant.env == base.env and variant.agent == base.agent and not budget:
        raise ValueError(f"--set {' '.join(f'{k}={v}' for k, v in sorted(overrides.items()))} gives {name} itself (its own "
                         f"values): train {name} without --set, whose runs it would repeat under a new name")
    return variant, budget


def own_run_spec(name: str, profile: str, seed: int, overrides: dict[str, Any], trainer: str | None = None) -> RunSpec:
    """The run of :func:`own_variant` under ``profile`` (its budget unless ``updates`` is set)."""
    variant, budget = own_variant(name, overrides)
    updates, every = profiles.get(profile).training.budget(variant)
    updates = budget.get("updates", updates)
    every = budget.get("checkpoint_every", min(every, updates))
    return RunSpec(variant.name, variant.env, variant.agent, updates=updates, checkpoint_every=every, seed=seed,
                   trainer=_trainer(variant, profile, trainer))


# Variants made as `--set` makes them whose runs are published (the page "How this reproduction
# departs from the thesis" measures one departure with each).
PUBLISHED_OWN_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (("fig14-gru", {"agent.gru_init": "orthogonal"}),)


def own_variant_specs(profile: str) -> list[RunSpec]:
    """The runs of :data:`PUBLISHED_OWN_VARIANTS` under ``profile``, every seed of it."""
    seeds = profiles.get(profile).training.seeds
    return [own_run_spec(name, profile, seed, overrides) for name, overrides in PUBLISHED_OWN_VARIANTS for seed in seeds]


def experiments_frame(names: Sequence[str], profile: str) -> pd.DataFrame:
    """The registry as a table: what each experiment runs, with its budget under ``profile``."""
    rows = []
    for name in names:
        e, spec = experiment(name), run_spec(name, profile, 0)
        rows.append({
            "experiment": name, "thesis figure": e.figure, "d": e.env.d, "preset": e.env.preset, "reward": e.env.reward,
            "observation": e.env.obs, "n": e.agent.n_steps, "learning rate": e.agent.learning_rate,
            "agent": e.stand_in, "updates": spec.updates, "env steps": spec.updates * e.agent.steps_per_update,
            "seeds": len(profiles.get(profile).training.seeds), "thesis: trained after": e.converged,
        })
    frame = pd.DataFrame(rows)
    frame["thesis: trained after"] = frame["thesis: trained after"].astype("Int64")
    return frame
