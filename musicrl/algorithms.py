"""What the package knows about each algorithm and each trainer: one table each, one row per name.

Every other module reads these tables (rl-baselines3-zoo keeps such facts as data too): the
agents build ``ALGORITHMS[name].model``, the registry and the chapters name an agent with
``short`` and the thesis's algorithm with ``thesis``, the trainers cover what ``fast`` says,
Ray starts the costliest runs first by ``cost``; a run's trainer is one of ``TRAINERS``, which
says whether it trains the seeds of a configuration together and what it covers. This module
imports no algorithm and no trainer, so that a :class:`musicrl.runfiles.RunSpec` can check
itself against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from musicrl.users import check_choice

if TYPE_CHECKING:
    from musicrl.envs import EnvConfig


class AgentConfig(Protocol):
    """What the tables read of a :class:`musicrl.agents.AgentConfig` (which reads these tables)."""

    @property
    def algorithm(self) -> str: ...

    @property
    def normalize(self) -> bool: ...

    @property
    def frames(self) -> int: ...


@dataclass(frozen=True)
class Algorithm:
    """One algorithm the agents implement."""

    name: str
    short: str  # its name in tables and legends
    thesis: str | None  # the thesis's algorithm it is, or stands in for (None: beyond the thesis)
    description: str  # what it is here, and what it stands in for
    model: str  # its SB3 class, "module:attribute" (the class a saved model is loaded with)
    memory: str | None = None  # its recurrent layer: None, "lstm" or "gru"
    fast: bool = False  # the multi-seed and device trainers implement its update
    line_search: bool = False  # its update ends in a line search (TRPO's), whose success the runs record
    cost: float = 1.0  # wall time of an update relative to A2C's, to start the longest runs first

    @property
    def recurrent(self) -> bool:
        return self.memory is not None


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("A2C", "A2C", "A2C", "A2C (SB3), feed-forward as in the thesis", "stable_baselines3:A2C", fast=True),
    Algorithm("RecurrentA2C", "LSTM-A2C", "A2C",
              "A2C with a 64-unit LSTM (sb3-contrib RecurrentPPO configured as A2C) for the thesis's GRU",
              "sb3_contrib:RecurrentPPO", memory="lstm", fast=True, cost=2.0),
    Algorithm("GRUA2C", "GRU-A2C", "A2C",
              "A2C with a 64-unit GRU shared by actor and critic (the thesis's own agent, ikostrikov's recurrent A2C)",
              "musicrl.agents:GRUA2CModel", memory="gru", fast=True, cost=2.0),
    Algorithm("TRPO", "TRPO", "ACKTR", "TRPO (sb3-contrib) for ACKTR, which SB3 does not have; feed-forward as in the thesis",
              "sb3_contrib:TRPO", line_search=True, cost=3.5),
    Algorithm("EntropyTRPO", "TRPO+entropy", "ACKTR",
              "TRPO with the entropy bonus of the thesis's ACKTR (musicrl.agents.EntropyTRPO); a diagnostic variant",
              "musicrl.agents:EntropyTRPO", line_search=True, cost=3.5),
    Algorithm("ACKTR", "ACKTR", "ACKTR",
              "ACKTR (ikostrikov's A2C with a K-FAC optimizer, musicrl.acktr), the thesis's own; feed-forward as in the thesis",
              "musicrl.acktr:ACKTR", cost=1.5),
    Algorithm("Wolpertinger", "Wolpertinger", None,
              "Wolpertinger (a continuous proto-action and its nearest grid positions on TD3's machinery), beyond the thesis",
              "musicrl.wolpertinger:Wolpertinger", cost=4.0),
)}


def algorithm(name: str) -> Algorithm:
    """The row of ``name``, or an error naming the accepted ones."""
    return ALGORITHMS[check_choice("algorithm", name, tuple(ALGORITHMS))]


def _fast(env: EnvConfig, agent: AgentConfig) -> bool:
    return ALGORITHMS[agent.algorithm].fast and env.action in ("Discrete", "MultiDiscrete") and agent.normalize


def _device(env: EnvConfig, agent: AgentConfig) -> bool:
    from musicrl.tensorenv import supports  # the tensor env's own limits (noise, d)

    return _fast(env, agent) and agent.frames == 1 and supports(env)


FAST = tuple(name for name, row in ALGORITHMS.items() if row.fast)


@dataclass(frozen=True)
class Trainer:
    """One way a run is trained. Its name is part of the run's key (except ``sb3``'s)."""

    name: str
    description: str
    covers: str  # the configurations it implements, in words (error messages)
    seed_grouped: bool  # trains the seeds of one configuration together, in one process
    cpu: bool  # trains on the CPU whatever the agent's device (its random streams are the CPU's)
    # whether it implements a configuration: decided by the configuration alone, never by the
    # machine, so that a run's trainer and key are the same everywhere
    implements: Callable[[EnvConfig, AgentConfig], bool]


TRAINERS: dict[str, Trainer] = {t.name: t for t in (
    Trainer("sb3", "SB3's learn(), one run at a time (the reference)", "every algorithm", False, False,
            lambda env, agent: True),
    Trainer("multiseed", "the seeds of one configuration in one process (musicrl.multiseed), equal to SB3 bit for bit",
            f"{FAST} with Discrete or MultiDiscrete actions and normalization", True, True, _fast),
    Trainer("device", "every tensor on a GPU or the CPU (musicrl.devicetrainer), random streams of its own",
            f"{FAST} with Discrete or MultiDiscrete actions, normalization, one frame and noiseless listeners up to d=8",
            True, False, _device),
)}


def trainer(name: str) -> Trainer:
    """The row of ``name``, or an error naming the accepted ones."""
    return TRAINERS[check_choice("trainer", name, tuple(TRAINERS))]


def trainer_for(preferred: str, env: EnvConfig, agent: AgentConfig) -> str:
    """``preferred`` (a profile's trainer) where it implements the configuration, else SB3."""
    return preferred if trainer(preferred).implements(env, agent) else "sb3"


def check_trainer(name: str, env: EnvConfig, agent: AgentConfig) -> None:
    """An error naming the trainers that would do, if ``name`` does not implement the configuration."""
    chosen = trainer(name)
    if chosen.implements(env, agent):
        return
    works = " or ".join(f"'{t}'" for t, row in TRAINERS.items() if row.implements(env, agent))
    raise ValueError(f"trainer '{name}' implements {chosen.covers}; use --trainer {works} for {agent.algorithm} with "
                     f"{env.action} actions, {env.to_dict()} and frames={agent.frames}")
