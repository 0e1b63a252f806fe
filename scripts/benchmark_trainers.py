"""Training throughput of the three trainers side by side (a benchmark, not a test).

    .venv/bin/python scripts/benchmark_trainers.py [--experiments fig21 fig14-gru fig25-gru] [--seeds 5 64]
                                                   [--updates 30] [--compile] [--device cuda] [--json PATH]

For each experiment and seed count: seed-updates/s and env steps/s of SB3 (one seed after the
other, so its rate per seed does not change with the count), the multi-seed path (CPU, bit for
bit SB3) and the device path (musicrl.devicetrainer) on the CPU, eagerly and (``--compile``)
compiled; where CUDA is present also on the GPU, eager, graph-captured, and compiled + graph.
One torch thread. Each figure is timed after a few warm-up updates (compiling and capturing
are not counted; the compile time is printed apart).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from dataclasses import replace

import torch

import musicrl  # noqa: F401  first: it keeps TensorFlow out of SB3's TensorBoard writer
from musicrl import devicetrainer, multiseed, registry
from musicrl.agents import make_agent, make_training_env
from musicrl.multiseed import SeedState

WARMUP = 4


def seed_states(name: str, seeds: int) -> list[SeedState]:
    spec = registry.run_spec(name, "quick", 0)
    states = []
    for seed in range(seeds):
        env = make_training_env(spec.env, spec.agent, seed)
        model = make_agent(replace(spec.agent, device="cpu"), env, seed=seed)
        state = SeedState(model, env, deque(maxlen=10), [])
        states.append(state)
    return states


def timed(train, seeds: int, updates: int) -> float:
    """Seed-updates per second of ``train(n)`` after its warm-up."""
    train(WARMUP)
    started = time.perf_counter()
    train(updates)
    return seeds * updates / (time.perf_counter() - started)


def sb3_rate(name: str, updates: int) -> float:
    state = seed_states(name, 1)[0]
    per_update = state.model.n_steps * state.model.n_envs  # type: ignore[attr-defined]
    return timed(lambda n: state.model.learn(n * per_update, reset_num_timesteps=False), 1, updates)


def multiseed_rate(name: str, seeds: int, updates: int) -> float:
    states = seed_states(name, seeds)
    trainer = multiseed.MultiSeedTrainer(registry.experiment(name).agent, states)
    return timed(trainer.train, seeds, updates)


def device_rate(name: str, seeds: int, updates: int, device: str, compile: bool = False, graph: bool = False) -> float:
    states = seed_states(name, seeds)
    trainer = devicetrainer.DeviceTrainer(registry.experiment(name).agent, states, device=device, graph=graph, compile=compile)

    def train(n: int) -> None:
        trainer.train(n)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)
    # a graph is captured inside train() after WARMUP updates, so the timed call must be long enough to hold it
    return timed(train, seeds, updates + (devicetrainer.WARMUP if graph else 0))


def rows(names: list[str], seed_counts: list[int], updates: int, compile: bool, cuda: str | None) -> list[dict]:
    found = []
    for name in names:
        experiment = registry.experiment(name)
        steps = experiment.agent.n_steps * experiment.agent.n_envs
        sb3 = sb3_rate(name, max(3, updates // 5))
        for seeds in seed_counts:
            figures = {"SB3 (cpu)": sb3, "multiseed (cpu)": multiseed_rate(name, seeds, max(3, updates * 5 // seeds)),
                       "device (cpu, eager)": device_rate(name, seeds, updates, "cpu")}
            if compile:
                started = time.perf_counter()
                device_rate(name, seeds, 1, "cpu", compile=True)
                print(f"  compiling for {name} x{seeds}: {time.perf_counter() - started:.0f} s (once per process)")
                figures["device (cpu, compiled)"] = device_rate(name, seeds, updates, "cpu", compile=True)
            if cuda:
                figures[f"device ({cuda}, eager)"] = device_rate(name, seeds, updates, cuda)
                figures[f"device ({cuda}, graph)"] = device_rate(name, seeds, updates * 10, cuda, graph=True)
                if compile:
                    figures[f"device ({cuda}, compiled + graph)"] = device_rate(name, seeds, updates * 10, cuda, compile=True,
                                                                               graph=True)
            for path, rate in figures.items():
                found.append({"experiment": name, "seeds": seeds, "path": path, "seed_updates_per_s": rate,
                              "env_steps_per_s": rate * steps})
                print(f"{name:10} {seeds:3} seeds  {path:32} {rate:9.1f} seed-updates/s  {rate * steps:11.0f} env steps/s",
                      flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", nargs="+", default=["fig21", "fig14-gru", "fig25-gru"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[5, 64])
    parser.add_argument("--updates", type=int, default=30, help="timed updates per figure (CUDA graphs: ten times as many)")
    parser.add_argument("--compile", action="store_true", help="also the compiled device path (a minute or two of compiling)")
    parser.add_argument("--device", default=None, help="a CUDA device for the GPU rows (default: cuda if present)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cuda = args.device or ("cuda" if torch.cuda.is_available() else None)
    print(f"torch {torch.__version__}, one thread; GPU: "
          f"{devicetrainer.describe(torch.device(cuda)) if cuda else 'none (the CUDA rows need one)'}")
    found = rows(args.experiments, args.seeds, args.updates, args.compile, cuda)
    by = {(r["experiment"], r["seeds"], r["path"]): r["seed_updates_per_s"] for r in found}
    for name in args.experiments:
        for seeds in args.seeds:
            ratio = by[(name, seeds, "device (cpu, eager)")] / by[(name, seeds, "multiseed (cpu)")]
            best = max((p for (n, s, p) in by if n == name and s == seeds), key=lambda p: by[(name, seeds, p)])
            print(f"{name} x{seeds}: device (cpu, eager) / multiseed = {ratio:.2f}; fastest: {best}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"torch": torch.__version__, "rows": found}, handle, indent=1)


if __name__ == "__main__":
    main()
