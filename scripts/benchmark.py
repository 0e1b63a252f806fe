"""Print environment and training throughput, baseline and experiment times (a benchmark, not a test).

    .venv/bin/python scripts/benchmark.py [--seconds 2] [--dims 2 3 4] [--updates 100] [--measure-quick]
                                          [--seeds 5] [--fast-path fig21 fig14 fig25]
                                          [--large-dims 4 8 12 20] [--only-large-d]

The first figures are the issue-10 target: training throughput of SB3 against the
multi-seed fast path (musicrl.multiseed) for the MLP A2C and the LSTM-A2C agents, measured
side by side in one run, one torch thread. The 4D ratios (fig25, 625 actions) stay near
2x because a quarter of the fast path's time is ``torch.multinomial``, one call per seed
per step with that seed's own generator: SB3 pays the same per seed, and batching it would
leave SB3's random stream, which the fast path reproduces bit for bit.

The bounds above the exact range use the quick profile's depths. Training throughput is
A2C (the thesis's settings, 16 envs) on the batched VecEnv against SB3's DummyVecEnv of
single environments, measured in the same run. Experiment wall times are those recorded
by the quick profile's runs in the results store (``$MUSICRL_RESULTS`` or ``results/``);
``--measure-quick`` trains seed 0 of every quick experiment in a scratch store instead.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

import musicrl  # noqa: F401  first: it keeps TensorFlow out of SB3's TensorBoard writer
from musicrl import agents, baselines, beyond, profiles, publish, registry, training
from musicrl.algorithms import ALGORITHMS
from musicrl.envs import EnvConfig, PreferenceSearchEnv, PreferenceSearchVecEnv
from musicrl.evaluation import evaluate_policy


def steps_per_second(step, batch: int, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        count += batch
    return count / (time.perf_counter() - start)


def env_throughput(config: EnvConfig, seconds: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    single = PreferenceSearchEnv(**config.to_dict())
    single.reset(seed=0)

    def single_step() -> None:
        if single.step(int(rng.integers(config.n_positions)))[3]:
            single.reset()

    figures = {"single env": steps_per_second(single_step, 1, seconds)}
    for n in (16, 256):
        batched = PreferenceSearchVecEnv(n, config, seed=0)
        batched.reset()
        actions = rng.integers(0, config.n_positions, size=n)
        figures[f"batched N={n}"] = steps_per_second(lambda env=batched, a=actions: env.step(a), n, seconds)
    dummy = DummyVecEnv([lambda: PreferenceSearchEnv(**config.to_dict()) for _ in range(16)])
    dummy.seed(0)
    dummy.reset()
    actions = rng.integers(0, config.n_positions, size=16)
    figures["DummyVecEnv N=16"] = steps_per_second(lambda: dummy.step(actions), 16, seconds)
    return figures


def large_d_throughput(d: int, seconds: float, n: int = 256) -> tuple[float, float, float]:
    """Batched env at ``d`` features (GridObs, MultiDiscrete, random levels): steps/s, and the
    peak memory (MB) of building it and stepping it, and of one single env, by tracemalloc."""
    import tracemalloc

    config = beyond.scaling_config(d)
    rng = np.random.default_rng(0)
    batched_mb = beyond.env_memory_mb(d, n)
    tracemalloc.start()
    single = PreferenceSearchEnv(**config.to_dict())
    single.reset(seed=0)
    for _ in range(21):
        single.step(rng.integers(0, 5, size=d))
    single_mb = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    batched = PreferenceSearchVecEnv(n, config, seed=0)
    batched.reset()
    rate = steps_per_second(lambda: batched.step(rng.integers(0, 5, size=(n, d))), n, seconds)
    return rate, batched_mb, single_mb


def large_d_block(dims: list[int], seconds: float) -> None:
    print("environment beyond the thesis (GridObs, MultiDiscrete, 256 envs, random levels): "
          "steps/s, peak memory of the batched env and of one env")
    rates = {}
    for d in dims:
        rates[d], batched_mb, single_mb = large_d_throughput(d, seconds)
        relative = f"  ({rates[d] / rates[dims[0]]:.2f}x d={dims[0]})" if d != dims[0] else ""
        print(f"  d={d:<3} {rates[d]:>12,.0f} steps/s   {batched_mb:6.2f} MB   {single_mb:6.3f} MB   "
              f"(5**d = {5.0**d:.3g} positions){relative}")


def training_throughput(config: EnvConfig, updates: int) -> dict[str, float]:
    """A2C env steps per second on the batched VecEnv and on DummyVecEnv, same settings."""
    agent = agents.AgentConfig(algorithm="A2C", device="cpu")
    envs = {
        "batched VecEnv": lambda: PreferenceSearchVecEnv(agent.n_envs, config, seed=0, truncation_as_terminal=True),
        "DummyVecEnv": lambda: DummyVecEnv([lambda: PreferenceSearchEnv(**config.to_dict())] * agent.n_envs),
    }
    figures = {}
    for name, make in envs.items():
        env = VecNormalize(VecMonitor(make()), gamma=agent.gamma)
        model = agents.make_agent(agent, env, seed=0)
        model.learn(10 * agent.steps_per_update)  # warm-up
        steps = updates * agent.steps_per_update
        _, seconds = timed(lambda m=model, s=steps: m.learn(s, reset_num_timesteps=False))
        figures[name] = steps / seconds
    return figures


def _fast_path_spec(name: str):
    """A thesis experiment's quick run, or a run of the scaling study of "Beyond the thesis" (``scale-d8-...``)."""
    if name.startswith("scale-"):
        found = [s for s in beyond.scaling_specs("quick") if s.name == name and s.trainer == "multiseed"]
        if not found:
            raise SystemExit(f"--fast-path: {name!r} is not a fast-path run of the quick scaling study; choose from "
                             f"{sorted({s.name for s in beyond.scaling_specs('quick') if s.trainer == 'multiseed'})}")
        return found[0]
    return registry.run_spec(name, "quick", 0)


def fast_path_throughput(spec, updates: int, seeds: int) -> tuple[float, float]:
    """Env steps per second of training, one core: SB3 (one seed) against the multi-seed path (``seeds`` seeds)."""
    from collections import deque

    from musicrl import multiseed

    steps = updates * spec.agent.steps_per_update
    model = agents.make_agent(spec.agent, agents.make_training_env(spec.env, spec.agent, 0), seed=0)
    model.learn(10 * spec.agent.steps_per_update)  # warm-up
    _, seconds = timed(lambda: model.learn(steps, reset_num_timesteps=False))
    states = []
    for seed in range(seeds):
        env = agents.make_training_env(spec.env, spec.agent, seed)
        state = multiseed.SeedState(agents.make_agent(spec.agent, env, seed=seed), env, deque(maxlen=10), [])
        states.append(state)
    trainer = multiseed.MultiSeedTrainer(spec.agent, states)
    trainer.train(10)
    _, fast_seconds = timed(lambda: trainer.train(updates))
    return steps / seconds, seeds * steps / fast_seconds


def experiment_times(measure: bool) -> list[tuple[str, list[float]]]:
    """Wall seconds of each quick-profile experiment, per seed (recorded, or measured now)."""
    rows = []
    if measure:
        with tempfile.TemporaryDirectory() as root:
            for name in registry.EXPERIMENTS:
                result = training.train(registry.run_spec(name, "quick", 0), root, progress=False)
                rows.append((name, [result.wall_time]))
        return rows
    for name in registry.EXPERIMENTS:
        found = [publish.load_result(spec) for spec in registry.run_specs([name], "quick")]
        rows.append((name, [r.wall_time for r in found if r is not None]))
    return rows


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per throughput figure")
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 3, 4])
    parser.add_argument("--large-dims", type=int, nargs="*", default=[4, 8, 12, 20],
                        help="feature counts for the GridObs/MultiDiscrete throughput and memory block")
    parser.add_argument("--updates", type=int, default=100, help="A2C updates per training-throughput figure")
    parser.add_argument("--measure-quick", action="store_true", help="train every quick experiment (seed 0) now")
    parser.add_argument("--seeds", type=int, default=5, help="seeds the multi-seed path trains together (the full profile's 5)")
    parser.add_argument("--fast-path", nargs="*", default=["fig21", "fig14", "fig25", "fig14-gru", "fig25-gru", "scale-d8-factored-LSTM-A2C",
                                                           "scale-d8-factored-A2C-8-frames"],
                        help="runs whose agent is timed on both paths (MLP A2C, LSTM-A2C and GRU-A2C 2D and 4D, factored d = 8)")
    parser.add_argument("--only-large-d", action="store_true", help="print only the block of the environment beyond the thesis")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.only_large_d:
        large_d_block(args.large_dims, args.seconds)
        return
    print(f"training, env steps per second on one core: SB3 (1 seed) against the multi-seed path ({args.seeds} seeds), "
          f"{args.updates} updates each")
    for name in args.fast_path:
        spec = _fast_path_spec(name)
        slow, fast = fast_path_throughput(spec, args.updates, args.seeds)
        label = (name if name.startswith("scale-") else
                 f"{name} {ALGORITHMS[spec.agent.algorithm].short} {spec.env.d}D {spec.env.obs}")
        print(f"  {label:<28} SB3 {slow:>9,.0f}   multiseed {fast:>9,.0f}   ratio {fast / slow:5.2f}x")
    print(f"A2C training, env steps per second (2D GridObs, {args.updates} updates of 16 x 20 steps, 1 thread)")
    for name, value in training_throughput(EnvConfig(d=2), args.updates).items():
        print(f"  {name:<16} {value:>10,.0f}")
    print("quick-profile experiments: wall seconds per run" + (" (measured now, seed 0)" if args.measure_quick else
                                                                " (as recorded in the results store)"))
    for name, seconds in experiment_times(args.measure_quick):
        spec = registry.run_spec(name, "quick", 0)
        shown = ", ".join(f"{s:.0f}" for s in seconds) if seconds else "not run yet (make book, or --measure-quick)"
        print(f"  {name}  {spec.agent.algorithm:<12} {spec.updates:>5} updates  {shown}")
    print("environment steps per second (GridObs, random actions)")
    for d in args.dims:
        for name, value in env_throughput(EnvConfig(d=d), args.seconds).items():
            print(f"  d={d}  {name:<18} {value:>12,.0f}")
    large_d_block(args.large_dims, args.seconds)
    print("baseline evaluation (all 5**d targets, WiderTopTarget, Bullseye): mean, seconds")
    reveal = profiles.get("quick").environment.reveal_after
    for d in args.dims:
        config = EnvConfig(d=d)
        for name in baselines.BASELINES:
            if name == "optimal" and d > baselines.EXACT_UP_TO:
                planner = baselines.BayesPlanner(config, reveal_after=reveal[d])
                value, seconds = timed(planner.expected_return)
                print(f"  d={d}  {'bound m=' + str(reveal[d]):<10} {value:8.2f}  {seconds:8.2f}s")
                continue
            result, seconds = timed(lambda n=name, c=config: evaluate_policy(baselines.make_baseline(n, c), c))
            print(f"  d={d}  {name:<10} {result.mean:8.2f}  {seconds:8.2f}s")


if __name__ == "__main__":
    main()
