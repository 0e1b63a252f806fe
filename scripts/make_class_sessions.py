"""Write the example class of simulated students that the page "Teaching with this book" pools.

Eight simulated students (clearly named ``simulated-student-NN``) each play three greedy
sessions on the third layer's catalogue of the smoke profile's clips (four balanced clips
per genre, so every profile's catalogue holds their targets). Each student is a feature
listener with its own rating and closer noise, so the class's Table 1 varies as a real
class's would. Re-run it after changing the session format:

    .venv/bin/python scripts/make_class_sessions.py   # writes examples/class-sessions-simulated/
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from musicrl import baselines, profiles
from musicrl.envs import EnvConfig
from musicrl.music import catalogue, features
from musicrl.music import recommender as rec

OUT = Path(__file__).resolve().parent.parent / "examples" / "class-sessions-simulated"
STUDENTS, SESSIONS_EACH, SEED = 8, 3, 0


def main() -> None:
    chapter = profiles.get("smoke").music
    tracks = features.subset(features.read_manifest(), per_genre=chapter.per_genre, balanced=chapter.balanced_only)
    feats = features.Extractor(features.subset(tracks, balanced=True)).extract(tracks, progress=False)
    cat = catalogue.from_features(feats, "third", k=4)
    recommender = rec.Recommender(baselines.make_baseline("greedy", EnvConfig(d=4)), cat, "greedy")
    rng = np.random.default_rng(SEED)
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for student in range(1, STUDENTS + 1):
        name = f"simulated-student-{student:02d}"
        listener = rec.NoisyListener(rec.FeatureListener(cat), p_rating=0.1 * (student % 4), p_closer=0.05, seed=student)
        for target in rng.choice(sorted(cat.ids), size=SESSIONS_EACH, replace=False):
            session = recommender.play(str(target), listener, seed=student)
            replace(session, listener=name, settings={**session.settings, "simulated": True}).save(OUT)
    print(f"wrote {len(list(OUT.glob('session-*.json')))} sessions to {OUT}")


if __name__ == "__main__":
    main()
