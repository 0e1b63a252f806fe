"""Where training time goes: SB3 (the reference) against the multi-seed fast path.

    .venv/bin/python scripts/profile_training.py [--updates 200] [--seeds 5] [--experiments fig21 fig14 fig25]

Each experiment's agent trains ``--updates`` updates under cProfile, once with SB3's
``learn`` (one seed) and once with :class:`musicrl.multiseed.MultiSeedTrainer`
(``--seeds`` seeds together). The table gives each part's share of the profiled time and
its microseconds per env step; the profiler's own overhead inflates the Python-heavy
parts, so the last column (env steps per second, measured without the profiler) is the
figure to quote. One torch thread.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections import deque

import torch

from musicrl import multiseed, registry
from musicrl.agents import make_agent, make_training_env
from musicrl.algorithms import ALGORITHMS

# part -> functions (file suffix, function name) whose cumulative time it is; subtracting
# nested parts is done below so that every second is counted once.
SB3_PARTS = {
    "env": [("vec_monitor.py", "step_wait"), ("vec_monitor.py", "reset")],
    "normalization": [("vec_normalize.py", "step_wait"), ("vec_normalize.py", "reset")],
    "policy forward (acting)": [("policies.py", "forward"), ("policies.py", "predict_values")],
    "sampling (acting)": [("<built-in method torch.multinomial>", "")],
    "rollout buffer": [("buffers.py", "add"), ("buffers.py", "compute_returns_and_advantage"), ("buffers.py", "get")],
    "callbacks": [("callbacks.py", "on_step"), ("callbacks.py", "on_rollout_end"), ("callbacks.py", "on_rollout_start")],
    "forward (update)": [("policies.py", "evaluate_actions")],
    "backward": [("_tensor.py", "backward")],
    "optimizer": [("optimizer.py", "wrapper"), ("clip_grad.py", "_no_grad_wrapper"), ("optimizer.py", "zero_grad")],
}
FAST_PARTS = {
    "env": [("envs.py", "step_arrays"), ("vec_normalize.py", "reset")],
    "normalization": [("multiseed.py", "step")],
    "policy forward (acting)": [("multiseed.py", "_act")],
    "sampling (acting)": [("<built-in method torch.multinomial>", "")],
    "rollout buffer": [("multiseed.py", "_advantages")],
    "forward (update)": [("multiseed.py", "_update")],
    "backward": [("_tensor.py", "backward")],
    "optimizer": [("optimizer.py", "wrapper"), ("multiseed.py", "_clip"), ("optimizer.py", "zero_grad")],
}
SB3_NESTED = {"normalization": ["env"], "policy forward (acting)": ["sampling (acting)"]}  # part: parts inside it, whose time it must not count twice
FAST_NESTED = {"forward (update)": ["backward", "optimizer"]}


def _cumulative(stats: pstats.Stats, targets: list[tuple[str, str]]) -> float:
    total = 0.0
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for suffix, name in targets:
            if (name and filename.endswith(suffix) and function == name) or (not name and function == suffix):
                total += cumulative
    return total


def _parts(profile: cProfile.Profile, table: dict, nested: dict, total: float) -> dict[str, float]:
    stats = pstats.Stats(profile)
    found = {part: _cumulative(stats, targets) for part, targets in table.items()}
    for part, inside in nested.items():
        if part in found:
            found[part] -= sum(found.get(p, 0.0) for p in inside)
    found["other (loop, conversions)"] = total - sum(found.values())
    return found


def _seed_state(spec, seed: int) -> multiseed.SeedState:
    env = make_training_env(spec.env, spec.agent, seed)
    model = make_agent(spec.agent, env, seed=seed)
    state = multiseed.SeedState(model, env, deque(maxlen=10), [])
    return state


def profile(name: str, updates: int, seeds: int) -> list[dict]:
    spec = registry.run_spec(name, "quick", 0)
    steps = updates * spec.agent.steps_per_update
    rows = []

    env = make_training_env(spec.env, spec.agent, 0)
    model = make_agent(spec.agent, env, seed=0)
    model.learn(10 * spec.agent.steps_per_update)
    start = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    plain = steps / (time.perf_counter() - start)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(model.learn, steps, reset_num_timesteps=False)
    rows.append(("SB3, 1 seed", _parts(profiler, SB3_PARTS, SB3_NESTED, time.perf_counter() - start), steps, plain))

    trainer = multiseed.MultiSeedTrainer(spec.agent, [_seed_state(spec, s) for s in range(seeds)])
    trainer.train(10)
    start = time.perf_counter()
    trainer.train(updates)
    fast = seeds * steps / (time.perf_counter() - start)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.runcall(trainer.train, updates)
    rows.append((f"multiseed, {seeds} seeds", _parts(profiler, FAST_PARTS, FAST_NESTED, time.perf_counter() - start), seeds * steps, fast))
    return [{"experiment": name, "path": path, "parts": parts, "steps": n, "steps_per_s": rate} for path, parts, n, rate in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--experiments", nargs="+", default=["fig21", "fig14", "fig25"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.experiments:
        rows = profile(name, args.updates, args.seeds)
        e = registry.experiment(name)
        print(f"\n{name} ({ALGORITHMS[e.agent.algorithm].short}, {e.env.d}D {e.env.obs}, n={e.agent.n_steps}), "
              f"{args.updates} updates")
        parts = list(dict.fromkeys(p for row in rows for p in row["parts"]))
        print(f"  {'part':<28}" + "".join(f"{row['path']:>30}" for row in rows))
        for part in parts:
            cells = []
            for row in rows:
                seconds = row["parts"].get(part)
                total = sum(row["parts"].values())
                cells.append("" if seconds is None else f"{100 * seconds / total:5.1f}%  {1e6 * seconds / row['steps']:6.2f} us/step")
            print(f"  {part:<28}" + "".join(f"{c:>30}" for c in cells))
        print(f"  {'env steps/s (no profiler)':<28}" + "".join(f"{row['steps_per_s']:>30,.0f}" for row in rows))
        print(f"  fast path / SB3: {rows[1]['steps_per_s'] / rows[0]['steps_per_s']:.2f}x")


if __name__ == "__main__":
    main()
