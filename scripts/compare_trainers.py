"""The device path's runs beside the multi-seed path's, statistically (the thesis's metric).

    .venv/bin/python scripts/compare_trainers.py [fig14-gru fig21] [--profile full] [--train] [--compile]

For each experiment: the pooled mean return over the second half's checkpoints (mean over seeds
and its 95% bootstrap CI), the final return and the collapsed seeds, for the runs of the
profile's trainer (published or local) and for ``--trainer device`` runs of the same seeds.
``--train`` trains the device runs that are missing (one process; ``--compile`` compiles first).
"""

from __future__ import annotations

import argparse

import torch

import musicrl  # noqa: F401
from musicrl import devicetrainer, publish, registry, runfiles, stats, training
from musicrl.stats import mean_ci


def summary(results: list[runfiles.RunResult]) -> str:
    mean, low, high = mean_ci([r.pooled.mean for r in results])
    final, final_low, final_high = mean_ci([r.final.mean for r in results])
    collapsed = sum(stats.collapsed(r.curve) for r in results)
    return (f"pooled {mean:6.1f} [{low:.1f}, {high:.1f}]  final {final:6.1f} [{final_low:.1f}, {final_high:.1f}]  "
            f"{collapsed}/{len(results)} collapsed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*", default=["fig14-gru", "fig21"])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--train", action="store_true", help="train the missing device runs here")
    parser.add_argument("--compile", action="store_true", help="torch.compile the device path first")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.compile:
        import os

        os.environ[devicetrainer.COMPILE_ENV] = "1"
    for name in args.experiments:
        reference = registry.run_specs([name], args.profile)
        device = registry.run_specs([name], args.profile, trainer="device")
        if args.train:
            training.train_seeds(device, progress=True)
        rows = {}
        for label, specs in ((f"{reference[0].trainer} (published)", reference), ("device", device)):
            found = [r for r in (publish.load_result(s) for s in specs) if r is not None]
            rows[label] = (found, specs)
        for label, (found, specs) in rows.items():
            shown = summary(found) if found else "no runs yet"
            wall = sum(r.wall_time for r in found[:1])
            print(f"{name:10} {label:22} {len(found)}/{len(specs)} seeds  {shown}  ({wall / 60:.0f} min for the seeds together)")


if __name__ == "__main__":
    main()
