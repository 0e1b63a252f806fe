"""The GPU check a maintainer runs in a few minutes on a machine with a CUDA GPU (`make gpu-check`).

    .venv/bin/python scripts/gpu_check.py [--updates 30000] [--no-graph] [--results DIR]

1. the device; 2. the benchmark's GPU rows (fig14-gru and fig25-gru, 5 and 64 seeds, eager and
graph-captured); 3. fig14-gru at the thesis's budget (30k updates, 5 seeds) on the device
path, its time, and the thesis metric (pooled mean return over the second half's checkpoints,
95% CI over seeds) beside the published multi-seed runs'. The new runs go to a scratch store
(or ``--results``); they are new runs, compared statistically, never published over the old.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import benchmark_trainers

import musicrl  # noqa: F401
from musicrl import devicetrainer, publish, registry, stats, training
from musicrl.stats import mean_ci


def pooled(results) -> tuple[float, float, float]:
    return mean_ci([r.pooled.mean for r in results])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=None, help="fig14-gru's budget (default: the thesis's, 30000)")
    parser.add_argument("--no-graph", action="store_true", help="train eagerly (no CUDA graph)")
    parser.add_argument("--results", default=None, help="where the new runs go (default: a scratch folder)")
    parser.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny and eager (checks the script)")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        sys.exit("gpu_check: this torch sees no CUDA GPU; the CPU figures come from `make benchmark`")
    torch.set_num_threads(1)
    name = "cpu" if args.dry_run else "cuda"
    device = torch.device(name)
    os.environ[devicetrainer.DEVICE_ENV] = name
    print(f"1. device: {devicetrainer.describe(device)}; torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)

    print("2. benchmark, GPU rows", flush=True)
    for experiment in ("fig14-gru", "fig25-gru"):
        for seeds in (5, 64):
            for graph in (False,) if args.dry_run else (False, True):
                updates = 2 if args.dry_run else 200 if graph else 20
                rate = benchmark_trainers.device_rate(experiment, seeds, updates, name, graph=graph)
                print(f"   {experiment:10} {seeds:3} seeds  {'graph' if graph else 'eager':5}  {rate:9.0f} seed-updates/s", flush=True)

    print("3. fig14-gru at the thesis's budget on the device path", flush=True)
    os.environ[devicetrainer.GRAPH_ENV] = "0" if args.no_graph or args.dry_run else "1"
    if args.dry_run:
        args.updates = args.updates or 40
    full = [registry.run_spec("fig14-gru", "full", seed) for seed in range(5)]
    specs = [replace(s, trainer="device", updates=args.updates or s.updates,
                     checkpoint_every=min(s.checkpoint_every, args.updates or s.updates)) for s in full]
    root = Path(args.results or tempfile.mkdtemp(prefix="musicrl-gpu-check-"))
    started = time.perf_counter()
    new = training.train_seeds(specs, root, progress=True, published=False)
    elapsed = time.perf_counter() - started
    print(f"   {len(specs)} seeds x {specs[0].updates} updates in {elapsed:.0f} s "
          f"({len(specs) * specs[0].updates / elapsed:.0f} seed-updates/s, evaluations included); runs in {root}")
    published = [r for r in (publish.load_result(s) for s in full) if r is not None]
    rows = [(f"device path ({name})", new)] + ([("published multi-seed path (CPU)", published)] if published else [])
    for label, results in rows:
        mean, low, high = pooled(results)
        collapsed = sum(stats.collapsed(r.curve) for r in results)
        print(f"   {label:32} pooled mean {mean:6.1f} [{low:.1f}, {high:.1f}]  ({len(results)} seeds, {collapsed} collapsed)")
    thesis = registry.experiment("fig14").thesis
    print(f"   thesis (figure 22): mean {thesis.mean if thesis else '-'}")


if __name__ == "__main__":
    main()
