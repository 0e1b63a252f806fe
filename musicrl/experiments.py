"""Profiles and the computations behind the chapters, cached in the results store.

Every knob a chapter uses is here, by profile, so a reader sees them in one place:
``smoke`` (seconds, for tests), ``quick`` (the default book), ``full`` (big machines).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musicrl import baselines, users
from musicrl.envs import EnvConfig, REWARDS
from musicrl.evaluation import evaluate_policy
from musicrl.store import Store

PROFILES = ("smoke", "quick", "full")
UPPER_BOUND = "upper bound"


@dataclass(frozen=True)
class EnvironmentChapter:
    """Settings of the chapter "The environment".

    ``reveal_after[d]`` is the depth of the relaxation bound where the exact programme is
    out of reach (every ``d`` above ``exact_up_to``); its cost grows steeply with depth.
    """

    dims: tuple[int, ...]
    exact_up_to: int = baselines.EXACT_UP_TO
    reveal_after: dict[int, int] = field(default_factory=dict)


def environment_chapter(profile: str) -> EnvironmentChapter:
    users.check_choice("profile", profile, PROFILES)
    if profile == "smoke":
        return EnvironmentChapter(dims=(2,))
    if profile == "quick":
        return EnvironmentChapter(dims=(2, 3, 4), reveal_after={3: 3, 4: 2})
    return EnvironmentChapter(dims=(2, 3, 4), reveal_after={3: 4, 4: 2})


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


def _baseline_result(config: EnvConfig, name: str, store: Store) -> dict:
    def compute() -> dict:
        policy = baselines.make_baseline(name, config)
        return evaluate_policy(policy, config).summary()

    return store.get_or_compute("baseline", {"config": config.to_dict(), "policy": name, "seed": 0}, compute)


def _bound_result(config: EnvConfig, reveal_after: int | None, store: Store) -> dict:
    def compute() -> dict:
        planner = baselines.BayesPlanner(config, reveal_after=reveal_after)
        return {"mean": planner.expected_return(), "beliefs": len(planner.memo)}

    return store.get_or_compute("planner", {"config": config.to_dict(), "reveal_after": reveal_after}, compute)


def baseline_table(chapter: EnvironmentChapter, store: Store | None = None, progress: bool = True) -> pd.DataFrame:
    """Mean and std of each baseline for every preset x reward x d of the chapter.

    Where ``d <= exact_up_to`` the optimal policy is evaluated exactly; above, the row
    ``upper bound`` gives the relaxation bound (target revealed after ``reveal_after``
    steps), and the best heuristic is the lower bound on the optimum.
    """
    store = store or Store()
    settings = [(d, p, r) for d in chapter.dims for p in users.PRESETS for r in REWARDS]
    rows = []
    for d, preset, reward in tqdm(settings, desc="baselines", disable=not progress):
        config = EnvConfig(d=d, preset=preset, reward=reward)
        names = [n for n in baselines.BASELINES if n != "optimal" or d <= chapter.exact_up_to]
        for name in names:
            result = _baseline_result(config, name, store)
            rows.append({"d": d, "preset": preset, "reward": reward, "policy": name, **result})
        if d > chapter.exact_up_to:
            bound = _bound_result(config, chapter.reveal_after[d], store)
            rows.append({
                "d": d, "preset": preset, "reward": reward, "policy": UPPER_BOUND,
                "mean": bound["mean"], "std": np.nan, "reveal_after": chapter.reveal_after[d],
            })
    return pd.DataFrame(rows)


def settings_frame(chapter: EnvironmentChapter) -> pd.DataFrame:
    return pd.DataFrame([{"setting": k, "value": str(v)} for k, v in asdict(chapter).items()])
