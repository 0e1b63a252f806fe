"""The tables of the chapter "The environment"."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from musicrl import baselines, users
from musicrl.envs import REWARDS, EnvConfig
from musicrl.profiles import Environment
from musicrl.reference import UPPER_BOUND, baseline_key, baseline_result, bound_key, bound_result
from musicrl.store import Store


def rating_count_table(dims: tuple[int, ...]) -> pd.DataFrame:
    """How many positions get each rating, over all targets: min-max (mean)."""
    rows = []
    for d in dims:
        for preset in users.PRESETS:
            table = users.rating_table(d, preset)
            ratings = range(users.MAX_RATING, -1, -1)
            counts = np.stack([(table == r).sum(1) for r in ratings], axis=1)
            cells = {
                f"rating {r}": f"{lo}–{hi} ({mean:.1f})" if lo != hi else f"{lo}"
                for r, lo, hi, mean in zip(ratings, counts.min(0), counts.max(0), counts.mean(0))
            }
            rows.append({"d": d, "positions": users.n_positions(d), "preset": preset, **cells})
    return pd.DataFrame(rows)


def _baseline_tasks(chapter: Environment) -> list[tuple[str, EnvConfig, str | int | None]]:
    """("baseline", config, policy) and ("bound", config, reveal_after) in the table's order."""
    tasks: list[tuple[str, EnvConfig, str | int | None]] = []
    for d, preset, reward in itertools.product(chapter.dims, users.PRESETS, REWARDS):
        config = EnvConfig(d=d, preset=preset, reward=reward)
        tasks += [("baseline", config, n) for n in baselines.BASELINES if n != "optimal" or d <= chapter.exact_up_to]
        if d > chapter.exact_up_to:
            tasks.append(("bound", config, chapter.reveal_after[d]))
    return tasks


def _task_key(task: tuple[str, EnvConfig, str | int | None]) -> tuple[str, dict]:
    kind, config, arg = task
    return baseline_key(config, str(arg)) if kind == "baseline" else bound_key(config, _depth(arg))


def _run_task(task: tuple[str, EnvConfig, str | int | None], store: Store) -> dict:
    kind, config, arg = task
    return baseline_result(config, str(arg), store) if kind == "baseline" else bound_result(config, _depth(arg), store)


def _depth(arg: str | int | None) -> int | None:
    """A bound task's argument: the depth after which the target is revealed (None: never)."""
    if isinstance(arg, str):
        raise TypeError(f"a bound task takes a depth, got {arg!r}")
    return arg


def baseline_table(chapter: Environment, store: Store | None = None, progress: bool = True,
                   workers: int = 1) -> pd.DataFrame:
    """Mean and std of each baseline for every preset x reward x d of the chapter.

    Where ``d <= exact_up_to`` the optimal policy is evaluated exactly; above, the row
    ``upper bound`` gives the relaxation bound (target revealed after ``reveal_after``
    steps), and the best heuristic is the lower bound on the optimum. ``workers`` processes
    (joblib's ``n_jobs``: -1 is every core) compute what the store lacks, the bounds first
    (they take minutes each at d = 3, 4); the numbers do not depend on it.
    """
    store = store or Store()
    tasks = _baseline_tasks(chapter)
    todo = [t for t in tasks if store.get(*_task_key(t)) is None]
    parallel = workers != 1 and len(todo) > 1
    if parallel:
        todo.sort(key=lambda t: t[0] != "bound")
        done = Parallel(n_jobs=workers, return_as="generator_unordered")(delayed(_run_task)(t, store) for t in todo)
        for _ in tqdm(done, total=len(todo), desc="baselines", disable=not progress):
            pass
    rows = []
    for task in tqdm(tasks, desc="baselines", disable=not progress or parallel):
        kind, config, arg = task
        result = _run_task(task, store)
        if kind == "baseline":
            rows.append({"d": config.d, "preset": config.preset, "reward": config.reward, "policy": arg, **result})
        else:
            rows.append({"d": config.d, "preset": config.preset, "reward": config.reward, "policy": UPPER_BOUND,
                         "mean": result["mean"], "std": np.nan, "reveal_after": arg})
    return pd.DataFrame(rows, columns=["d", "preset", "reward", "policy", "mean", "std", "episodes", "reveal_after"])


def settings_frame(chapter: Environment) -> pd.DataFrame:
    return pd.DataFrame([{"setting": k, "value": str(v)} for k, v in asdict(chapter).items()])


def baseline_value(table: pd.DataFrame, d: int, preset: str, reward: str, policy: str) -> float:
    """The mean return of ``policy`` on one setting, from :func:`baseline_table`."""
    row = table[(table.d == d) & (table.preset == preset) & (table.reward == reward) & (table.policy == policy)]
    return float(row["mean"].iloc[0])


def values_2d(table: pd.DataFrame) -> dict[str, float]:
    """The 2D values the chapter's text quotes, named ``v2_<preset>_<reward>_<policy>``."""
    return {f"v2_{preset}_{reward}_{policy}": baseline_value(table, 2, preset, reward, policy)
            for preset in users.PRESETS for reward in ("Bullseye", "Rating")
            for policy in ("optimal", "greedy", "lookahead", "random")}


def bracket_table(table: pd.DataFrame, chapter: Environment) -> pd.DataFrame:
    """Above ``exact_up_to``: per setting, the best heuristic, the relaxation bound and the gap
    between them (the bracket that holds the optimum); empty if the chapter computes none."""
    rows = []
    for d in [d for d in chapter.dims if d > chapter.exact_up_to]:
        for preset in users.PRESETS:
            for reward in ("Bullseye", "Rating"):
                best = max(baseline_value(table, d, preset, reward, p) for p in ("greedy", "lookahead"))
                bound = baseline_value(table, d, preset, reward, UPPER_BOUND)
                rows.append({"d": d, "preset": preset, "reward": reward, "best heuristic": best, "upper bound": bound,
                             "gap": bound - best})
    return pd.DataFrame(rows)
