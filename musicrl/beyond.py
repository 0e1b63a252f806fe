"""Beyond the thesis: listeners that are not deterministic, and more than four features.

The experiments of the chapter of that name, in one place:

- **Noise** (:data:`NOISE_LEVELS`). The thesis's agents of figures 14 and 16 retrained
  against a listener whose rating is off by one with probability p and whose "closer" is
  flipped with probability q, beside the yardstick that still applies (greedy on the exact
  Bayesian posterior, :class:`musicrl.baselines.FilterPolicy`) and the greedy rule that
  trusts every answer.
- **Scaling** (:data:`SCALING_AGENTS`). d = 4..8 features, where one action per position
  (625 .. 390,625) no longer works: a factored policy (one categorical per feature) and a
  Wolpertinger agent, on the same budget, beside greedy (sampled beyond d = 4) and random.

Budgets per profile are in :mod:`musicrl.profiles` (field ``beyond``); runs go through :mod:`musicrl.training` like
the thesis's, so they are cached, resumable and publishable.
"""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd

from musicrl import baselines, profiles, users
from musicrl.agents import AgentConfig
from musicrl.algorithms import ALGORITHMS, trainer_for
from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchVecEnv
from musicrl.evaluation import Policy, evaluation_targets, rollout
from musicrl.publish import load_policy, load_result, publish_finished
from musicrl.registry import experiment
from musicrl.runfiles import RunResult, RunSpec
from musicrl.stats import format_ci, mean_ci
from musicrl.store import Store
from musicrl.training import finished_runs

NOISE_LEVELS: dict[str, tuple[float, float]] = {"none": (0.0, 0.0), "low": (0.1, 0.1), "high": (0.3, 0.3)}  # (p, q)
NOISE_EXPERIMENTS = ("fig14", "fig16")  # the thesis's agents retrained under noise: LSTM-A2C on GridObs and BoardObs
SCALING_AGENTS: dict[str, AgentConfig] = {
    "factored LSTM-A2C": AgentConfig(algorithm="RecurrentA2C"),
    "factored A2C, 8 frames": AgentConfig(algorithm="A2C", frames=8),
    "Wolpertinger, 8 frames": AgentConfig(algorithm="Wolpertinger", frames=8),
}


def noise_config(env: EnvConfig, level: str) -> EnvConfig:
    users.check_choice("noise level", level, tuple(NOISE_LEVELS))
    p, q = NOISE_LEVELS[level]
    return replace(env, rating_noise=p, closer_flip=q)


def _spec(name: str, env: EnvConfig, agent: AgentConfig, updates: int, every: int, seed: int, profile: str) -> RunSpec:
    trainer = trainer_for(profiles.get(profile).training.trainer, env, agent)
    return RunSpec(name, env, agent, updates=updates, checkpoint_every=every, seed=seed, trainer=trainer)


def noise_specs(profile: str) -> list[RunSpec]:
    """Every run of the noise study: experiment x noise level x seed."""
    chosen = profiles.get(profile).beyond
    return [_spec(f"noise-{name}-{level}", noise_config(experiment(name).env, level), experiment(name).agent,
                  chosen.noise_updates, chosen.noise_every, seed, profile)
            for name in NOISE_EXPERIMENTS for level in NOISE_LEVELS for seed in chosen.noise_seeds]


def scaling_config(d: int) -> EnvConfig:
    return EnvConfig(d=d, action="MultiDiscrete")


def _slug(label: str) -> str:
    return label.replace(",", "").replace(" ", "-")


def scaling_specs(profile: str) -> list[RunSpec]:
    """Every run of the scaling study: d x agent x seed, Bullseye, WiderTopTarget, GridObs, n = 20."""
    chosen = profiles.get(profile).beyond
    return [_spec(f"scale-d{d}-{_slug(label)}", scaling_config(d), agent, chosen.scaling_updates, chosen.scaling_every, seed, profile)
            for d in chosen.dims for label, agent in SCALING_AGENTS.items() for seed in chosen.scaling_seeds]


def _noisy_baseline(config: EnvConfig, name: str, repeats: int, store: Store) -> dict:
    """A baseline against the noisy user: ``repeats`` episodes per target, each with its own noise."""
    def compute() -> dict:
        clean = replace(config, rating_noise=0.0, closer_flip=0.0)
        makers: dict[str, Callable[[], Policy]] = {
            "Bayesian filter": lambda: baselines.FilterPolicy(config),
            "greedy, trusting every answer": lambda: baselines.GreedyPolicy(clean),
            "random": lambda: baselines.RandomPolicy(clean, seed=0),
        }
        policy = makers[name]()
        returns, _ = rollout(policy, config, list(range(config.n_positions)) * repeats)
        return {"per_repeat": returns.reshape(repeats, -1).mean(axis=1).tolist()}

    key = {"config": config.to_dict(), "policy": name, "repeats": repeats}
    return store.get_or_compute("beyond-baseline", key, compute)


NOISE_BASELINES = ("Bayesian filter", "greedy, trusting every answer", "random")


def noise_table(found: list[tuple[RunSpec, RunResult]], profile: str, store: Store | None = None) -> pd.DataFrame:
    """Each agent (final checkpoint, mean over seeds with 95% CI) and baseline (episodes per
    target with fresh noise, CI over repeats) at each noise level, and its share of the
    Bayesian filter's return: the yardstick that still applies to a noisy listener."""
    store, chosen = store or Store(), profiles.get(profile).beyond
    rows = []
    for level in NOISE_LEVELS:
        config = noise_config(replace(experiment(NOISE_EXPERIMENTS[0]).env, obs="GridObs"), level)
        values = {name: _noisy_baseline(config, name, chosen.baseline_repeats, store)["per_repeat"] for name in NOISE_BASELINES}
        for name in NOISE_EXPERIMENTS:
            seeds = [r.final.mean for s, r in found if s.name == f"noise-{name}-{level}"]
            if seeds:
                e = experiment(name)
                values[f"{ALGORITHMS[e.agent.algorithm].short} {e.env.obs} ({name})"] = seeds
        yardstick = float(np.mean(values["Bayesian filter"]))
        for label, samples in values.items():
            mean, low, high = mean_ci(samples)
            rows.append({"noise": level, "p (rating)": NOISE_LEVELS[level][0], "q (closer)": NOISE_LEVELS[level][1],
                         "policy": label, "kind": "baseline" if label in NOISE_BASELINES else "agent",
                         "mean": mean, "low": low, "high": high, "return [95% CI]": format_ci(mean, low, high),
                         "share of filter": mean / yardstick, "runs": len(samples)})
    return pd.DataFrame(rows)


def _compare(a: pd.Series, b: pd.Series) -> int:
    """+1 if a's CI lies above b's, -1 if below, 0 if they overlap (a baseline without a CI is its mean)."""
    def bounds(x: pd.Series) -> tuple[float, float]:
        low, high = float(x["low"]), float(x["high"])
        return (x["mean"] if np.isnan(low) else low), (x["mean"] if np.isnan(high) else high)

    (a_low, a_high), (b_low, b_high) = bounds(a), bounds(b)
    return 1 if a_low > b_high else -1 if a_high < b_low else 0


def _at_level(level: str) -> str:
    return "without noise" if level == "none" else f"at {level} noise"


def noise_summary(table: pd.DataFrame) -> str:
    """The noise table in words: each agent's share of the filter at every level it ran, and,
    at the highest level with an agent, whether the best agent beats the rule that trusts
    every answer and whether the filter beats it (by their 95% CIs)."""
    agents = table[table["kind"] == "agent"]
    if agents.empty:
        return "No agent of the noise study has finished under this profile yet."
    lines = [f"- **{policy}**: " + ", ".join(f"{r['share of filter']:.2f} of the filter {_at_level(r['noise'])}"
                                               for _, r in rows.iterrows())
             for policy, rows in agents.groupby("policy", sort=False)]
    level = [lv for lv in NOISE_LEVELS if lv in set(agents["noise"])][-1]
    at = table[table["noise"] == level].set_index("policy")
    best = at[at["kind"] == "agent"].sort_values("mean").iloc[-1]
    trusting, filtered = at.loc["greedy, trusting every answer"], at.loc["Bayesian filter"]
    p, q = NOISE_LEVELS[level]
    against_rule = {1: "beats", 0: "is level with", -1: "loses to"}[_compare(best, trusting)]
    against_filter = {1: "beats the filter", 0: "is level with the filter",
                      -1: "stays below the filter, which knows the noise model"}[_compare(best, filtered)]
    verdict = (f"{_at_level(level).capitalize()} (p = {p:g}, q = {q:g}) the rule that trusts every answer keeps "
               f"{trusting['share of filter']:.0%} of the filter's return. The best agent there, {best.name}, "
               f"{against_rule} that rule ({best['return [95% CI]']} against {trusting['return [95% CI]']}) and "
               f"{against_filter} ({filtered['return [95% CI]']}); the comparisons are by 95% CIs.")
    return "\n".join(lines) + "\n\n" + verdict


def env_memory_mb(d: int, n_envs: int = 16) -> float:
    """Peak memory (MB, tracemalloc) of building and stepping a batched GridObs/MultiDiscrete env at ``d``."""
    tracemalloc.start()
    try:
        env = PreferenceSearchVecEnv(n_envs, scaling_config(d), seed=0)
        env.reset()
        actions = np.random.default_rng(0).integers(0, users.LEVELS, size=(n_envs, d))
        for _ in range(2 * EPISODE_STEPS):
            env.step(actions)
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


STATS_VERSION = 2  # of _episode_stats' fields: cached statistics of another version are recomputed


def _first(flags) -> int | None:
    return next((k for k, flag in enumerate(flags) if flag), None)


def _episode_stats(policy, config: EnvConfig) -> dict:
    """Mean return; the share of episodes that reach a top-rated position (as
    :attr:`musicrl.evaluation.Episode.found`) and that reach the target itself, and the step at
    which those first do (step 0 is the start)."""
    returns, episodes = rollout(policy, config, evaluation_targets(config))
    stats = {"mean": float(returns.mean())}
    for name, first in (("top", [_first(r == users.MAX_RATING for r in e.ratings) for e in episodes]),
                        ("target", [_first(p == e.target for p in e.positions) for e in episodes])):
        reached = [k for k in first if k is not None]
        stats[f"{name}_found"] = len(reached) / len(first)
        stats[f"{name}_steps"] = float(np.mean(reached)) if reached else float("nan")
    return stats


def run_episode_stats(spec: RunSpec, root=None, store: Store | None = None) -> dict:
    """:func:`_episode_stats` of a run's final checkpoint: from its published extras, else computed
    from the local weights (cached in the store)."""
    result = load_result(spec, root)
    if result is not None and "episodes" in result.extras:
        return result.extras["episodes"]
    return (store or Store(root)).get_or_compute(
        "beyond-episodes", {"run": spec.key, "stats": STATS_VERSION}, lambda: _episode_stats(load_policy(spec, root=root), spec.env))


class RandomLevels:
    """A uniformly random level per feature each step (seeded); needs no table, so any d."""

    def __init__(self, d: int, seed: int = 0) -> None:
        self.d, self.rng = d, np.random.default_rng(seed)

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return self.rng.integers(0, users.LEVELS, size=(len(np.atleast_2d(observation)), self.d)), state


def _baseline_stats(d: int, name: str, store: Store) -> dict:
    config = scaling_config(d)

    def compute() -> dict:
        policy = baselines.SampledGreedyPolicy(config) if name == "greedy" else RandomLevels(d)
        return _episode_stats(policy, config)

    return store.get_or_compute("beyond-scaling-baseline", {"config": config.to_dict(), "policy": name,
                                                              "stats": STATS_VERSION}, compute)


def _mean_of_defined(values: list[float]) -> float:
    """The mean of the values that are not NaN (seeds whose episodes never got there have none), else NaN."""
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


EPISODE_COLUMNS = {"reached rating 4": "top_found", "steps to rating 4": "top_steps",
                   "reached the target": "target_found", "steps to the target": "target_steps"}


def _seed_seconds(result: RunResult) -> float:
    """Wall time per seed: the fast path trains its seeds together and records their shared time."""
    return result.wall_time / result.trainer.get("seeds_together", 1)


def scaling_table(found: list[tuple[RunSpec, RunResult]], profile: str, root=None, store: Store | None = None) -> pd.DataFrame:
    """Per d and policy: return (mean over seeds, 95% CI), share of episodes that reach a
    top-rated position and the target itself, and the step they first do (:data:`EPISODE_COLUMNS`),
    training wall time per seed (one core) and env steps per second; the env's memory."""
    store, chosen = store or Store(root), profiles.get(profile).beyond
    rows = []
    for d in chosen.dims:
        memory = env_memory_mb(d)
        for label in SCALING_AGENTS:
            done = [(s, r) for s, r in found if s.name == f"scale-d{d}-{_slug(label)}"]
            if not done:
                continue
            stats = [run_episode_stats(s, root, store) for s, _ in done]
            mean, low, high = mean_ci([r.final.mean for _, r in done])
            rows.append({"d": d, "positions": float(users.LEVELS**d), "policy": label, "kind": "agent",
                         "mean": mean, "low": low, "high": high, "return [95% CI]": format_ci(mean, low, high),
                         **{column: _mean_of_defined([x[key] for x in stats]) for column, key in EPISODE_COLUMNS.items()},
                         "train minutes per seed": np.mean([_seed_seconds(r) for _, r in done]) / 60,
                         "env steps/s": np.mean([r.env_steps / _seed_seconds(r) for _, r in done]),
                         "runs": len(done), "env memory (MB)": memory})
        for name in ("greedy", "random"):
            x = _baseline_stats(d, name, store)
            label = "greedy (sampled)" if d > 4 and name == "greedy" else name
            rows.append({"d": d, "positions": float(users.LEVELS**d), "policy": label, "kind": "baseline",
                         "mean": x["mean"], "low": np.nan, "high": np.nan, "return [95% CI]": f"{x['mean']:.0f}",
                         **{column: x[key] for column, key in EPISODE_COLUMNS.items()}, "train minutes per seed": np.nan,
                         "env steps/s": np.nan, "runs": np.nan, "env memory (MB)": memory})
    return pd.DataFrame(rows)


def _scaling_verdict(d: int, policy: str, share: float, chance: float) -> str:
    """One sentence on the best agent at the largest d: its share of greedy against random's."""
    against = f"{share:.0%} of greedy against random's {chance:.0%}"
    if share < chance + 0.1:
        return f"At d = {d} no agent searches clearly better than random ({against}) within this budget."
    if share < 0.5:
        return f"At d = {d} the best agent, {policy}, does better than random ({against}) but gets less than half of the rule's return."
    if share < 0.9:
        return f"At d = {d} the best agent, {policy}, learns to search ({against}) but stays below the rule."
    return f"At d = {d} the best agent, {policy}, comes within 10% of greedy ({against})."


def scaling_summary(table: pd.DataFrame) -> str:
    """The scaling table in words: each agent's share of greedy's return at the smallest and
    largest d it ran, random's share for scale, how its training time per seed grew, and
    whether the best agent at the largest d searches better than random."""
    base = table[table["kind"] == "baseline"]
    greedy = base[base["policy"].str.startswith("greedy")].set_index("d")["mean"]
    random = base[base["policy"] == "random"].set_index("d")["mean"]
    agents = table[table["kind"] == "agent"].assign(share=lambda t: t["mean"] / t["d"].map(greedy))
    if agents.empty:
        return "No agent of the scaling study has finished under this profile yet."
    lines = []
    for policy, rows in agents.sort_values("d").groupby("policy", sort=False):
        first, last = rows.iloc[0], rows.iloc[-1]
        lines.append(f"- **{policy}**: {first['share']:.0%} of greedy's return at d = {first['d']}, "
                     f"{last['share']:.0%} at d = {last['d']}; training {first['train minutes per seed']:.1f} → "
                     f"{last['train minutes per seed']:.1f} min per seed.")
    leaders = agents.sort_values("share").groupby("d").tail(1).sort_values("d")
    spans = [list(group) for _, group in itertools.groupby(zip(leaders["policy"], leaders["d"]), key=lambda x: x[0])]
    lines.append("- **best agent**: " + "; ".join(
        f"{span[0][0]} at d = {span[0][1]}" + (f"–{span[-1][1]}" if len(span) > 1 else "") for span in spans) + ".")
    top, best = agents["d"].max(), leaders.iloc[-1]
    verdict = _scaling_verdict(top, best["policy"], best["share"], random[top] / greedy[top])
    return "\n".join(lines) + "\n\n" + verdict


def publish_runs(profile: str, root=None, published=None) -> list:
    """Publish the finished local runs of both studies, with the episode statistics the scaling table needs."""
    def extras(spec: RunSpec) -> dict:
        return {"episodes": run_episode_stats(spec, root)} if spec.name.startswith("scale") else {}

    return publish_finished([*noise_specs(profile), *scaling_specs(profile)], extras, root, published, progress=False)


def study_runs(specs: list[RunSpec], profile: str, address: str | None = None,
               train_missing: bool = True) -> tuple[list[tuple[RunSpec, RunResult]], str | None]:
    """A study's finished runs (trained first if missing and ``train_missing``), and a note naming
    the experiments still missing under ``profile`` (None if every run has finished)."""
    found = finished_runs(specs, address=address, train_missing=train_missing, progress=False)
    finished = {spec.key for spec, _ in found}
    not_run = [spec for spec in specs if spec.key not in finished]  # read once: finished_runs loaded every result
    note = (f"**Not run yet under `{profile}`** ({len(not_run)} runs, left out): "
            + ", ".join(sorted({s.name for s in not_run}))) if not_run else None
    return found, note
