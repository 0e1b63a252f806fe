"""Reference levels of an environment (optimum, greedy, random, upper bound), cached in the results store."""

from __future__ import annotations

from dataclasses import replace

from musicrl import baselines, profiles
from musicrl.envs import EnvConfig
from musicrl.evaluation import evaluate_policy
from musicrl.store import Store

UPPER_BOUND = "upper bound"


def baseline_key(config: EnvConfig, name: str) -> tuple[str, dict]:
    return "baseline", {"config": config.to_dict(), "policy": name, "seed": 0}


def bound_key(config: EnvConfig, reveal_after: int | None) -> tuple[str, dict]:
    return "planner", {"config": config.to_dict(), "reveal_after": reveal_after}


def baseline_result(config: EnvConfig, name: str, store: Store) -> dict:
    def compute() -> dict:
        policy = baselines.make_baseline(name, config)
        return evaluate_policy(policy, config).summary()

    return store.get_or_compute(*baseline_key(config, name), compute)


def baseline_summary(config: EnvConfig, name: str, store: Store | None = None) -> dict:
    """Mean, std and episodes of a baseline under the thesis's protocol (cached in the store)."""
    return baseline_result(config, name, store or Store())


def bound_result(config: EnvConfig, reveal_after: int | None, store: Store) -> dict:
    def compute() -> dict:
        planner = baselines.BayesPlanner(config, reveal_after=reveal_after)
        return {"mean": planner.expected_return(), "beliefs": len(planner.memo)}

    return store.get_or_compute(*bound_key(config, reveal_after), compute)


def baseline_config(config: EnvConfig) -> EnvConfig:
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
    config = baseline_config(config)
    levels = {}
    if config.d <= baselines.EXACT_UP_TO:
        levels["optimal"] = baseline_result(config, "optimal", store)["mean"]
    elif config.d in profiles.get(profile).environment.reveal_after:
        levels[UPPER_BOUND] = bound_result(config, profiles.get(profile).environment.reveal_after[config.d], store)["mean"]
    for name in ("greedy", "lookahead"):
        levels[name] = baseline_result(config, name, store)["mean"]
    return levels
