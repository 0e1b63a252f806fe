"""The full profile's published runs as tables (a report, not a test).

    .venv/bin/python scripts/full_profile_status.py

Prints, from the local store and ``published/``: one row per experiment (the thesis's
number, ours with a 95% CI over seeds, the optimum or bracket, updates to convergence, and
whether the curves still rose at the end of the budget), the TRPO collapse table, and the
runs still missing with the command that trains them.
"""

from __future__ import annotations

import musicrl  # noqa: F401  first: keeps TensorFlow out of SB3's TensorBoard writer
from musicrl import publish, registry, stats, training
from musicrl.chapters import experiments_2d, tables


def main() -> None:
    names = [*registry.EXPERIMENTS, *registry.VARIANTS]
    runs = training.experiment_runs(names, "full", train_missing=False, progress=False)
    runs = {name: rs for name, rs in runs.items() if rs}
    table = tables.figure_table(runs, "full")
    table.insert(0, "experiment", list(runs))
    rises = {name: [stats.late_rise(r.curve) for r in rs] for name, rs in runs.items()}
    table["last tenth − tenth before"] = [stats.format_ci(*stats.mean_ci(v), len(v)) for v in rises.values()]
    print(table.replace("\n", " ", regex=True).to_markdown(index=False))
    trpo = {name: rs for name, rs in runs.items() if "TRPO" in registry.experiment(name).agent.algorithm}
    if trpo:
        print()
        print(experiments_2d.collapse_table(trpo, "full").round(3).to_markdown(index=False))
    missing = training.missing_runs(names, "full")
    print(f"\nnot run yet: {len(missing)} runs")
    for name in dict.fromkeys(s.name for s in missing):
        seeds = " ".join(str(s.seed) for s in missing if s.name == name)
        carried = [f"seed {s.seed} at {u:,}" for s in missing if s.name == name and (u := publish.carried_updates(s))]
        note = f"   # carried: {', '.join(carried)} updates" if carried else ""
        print(f"  musicrl train {name} --profile full --seed {seeds}{note}")


if __name__ == "__main__":
    main()
