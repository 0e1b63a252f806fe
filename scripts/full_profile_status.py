"""The full profile's published runs as tables (a report, not a test).

    .venv/bin/python scripts/full_profile_status.py

Prints, from the local store and ``published/``: one row per experiment (the thesis's
number, ours with a 95% CI over seeds, the optimum or bracket, updates to convergence, and
whether the curves still rose at the end of the budget), the TRPO collapse table, and the
runs still missing with the command that trains them.
"""

from __future__ import annotations

import musicrl  # noqa: F401  first: keeps TensorFlow out of SB3's TensorBoard writer
from musicrl import evaluation, experiments, training


def main() -> None:
    names = [*experiments.EXPERIMENTS, *experiments.VARIANTS]
    runs = experiments.experiment_runs(names, "full", train_missing=False, progress=False)
    runs = {name: rs for name, rs in runs.items() if rs}
    table = experiments.figure_table(runs, "full")
    table.insert(0, "experiment", list(runs))
    rises = {name: [evaluation.late_rise(r.curve) for r in rs] for name, rs in runs.items()}
    table["last tenth − tenth before"] = [evaluation.format_ci(*evaluation.mean_ci(v), len(v)) for v in rises.values()]
    print(table.replace("\n", " ", regex=True).to_markdown(index=False))
    trpo = {name: rs for name, rs in runs.items() if "TRPO" in experiments.experiment(name).agent.algorithm}
    if trpo:
        print()
        print(experiments.collapse_table(trpo, "full").round(3).to_markdown(index=False))
    missing = experiments.missing_runs(names, "full")
    print(f"\nnot run yet: {len(missing)} runs")
    for name in dict.fromkeys(s.name for s in missing):
        seeds = " ".join(str(s.seed) for s in missing if s.name == name)
        carried = [f"seed {s.seed} at {u:,}" for s in missing if s.name == name and (u := training.carried_updates(s))]
        note = f"   # carried: {', '.join(carried)} updates" if carried else ""
        print(f"  musicrl train {name} --profile full --seed {seeds}{note}")


if __name__ == "__main__":
    main()
