"""Print environment throughput and baseline evaluation times (a benchmark, not a test).

    .venv/bin/python scripts/benchmark.py [--seconds 2] [--dims 2 3 4]

The bounds above the exact range use the quick profile's depths.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from musicrl import baselines, experiments
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
        figures[f"batched N={n}"] = steps_per_second(lambda: batched.step(actions), n, seconds)
    dummy = DummyVecEnv([lambda: PreferenceSearchEnv(**config.to_dict()) for _ in range(16)])
    dummy.seed(0)
    dummy.reset()
    actions = rng.integers(0, config.n_positions, size=16)
    figures["DummyVecEnv N=16"] = steps_per_second(lambda: dummy.step(actions), 16, seconds)
    return figures


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per throughput figure")
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 3, 4])
    args = parser.parse_args()
    print("environment steps per second (GridObs, random actions)")
    for d in args.dims:
        for name, value in env_throughput(EnvConfig(d=d), args.seconds).items():
            print(f"  d={d}  {name:<18} {value:>12,.0f}")
    print("baseline evaluation (all 5**d targets, WiderTopTarget, Bullseye): mean, seconds")
    reveal = experiments.environment_chapter("quick").reveal_after
    for d in args.dims:
        config = EnvConfig(d=d)
        for name in baselines.BASELINES:
            if name == "optimal" and d > baselines.EXACT_UP_TO:
                planner = baselines.BayesPlanner(config, reveal_after=reveal[d])
                value, seconds = timed(planner.expected_return)
                print(f"  d={d}  {'bound m=' + str(reveal[d]):<10} {value:8.2f}  {seconds:8.2f}s")
                continue
            result, seconds = timed(lambda: evaluate_policy(baselines.make_baseline(name, config), config))
            print(f"  d={d}  {name:<10} {result.mean:8.2f}  {seconds:8.2f}s")


if __name__ == "__main__":
    main()
