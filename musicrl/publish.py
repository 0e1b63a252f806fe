"""Published runs and weights, and runs carried across sessions.

A run too long for one working session is carried over: :func:`carry` packs its last
checkpoint and evaluations into ``carry/<key>.tar.gz`` (weights included, to be committed),
and the next :func:`musicrl.training.train` of that run on any machine resumes from it. :func:`publish`
removes the carried file once the run has finished.

Finished runs are published as one gzip JSON each under ``published/runs/`` (no weights), the
agents a chapter plays as ``published/weights/<key>/``; :func:`load_result` reads a run from the
local store or the published one, :func:`load_policy` a trained policy.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from tqdm import tqdm

from musicrl import profiles
from musicrl.agents import NormalizedPolicy, make_training_env, trained_policy
from musicrl.registry import run_specs
from musicrl.runfiles import RunFolder, RunResult, RunSpec, atomic_run_folder, load_model
from musicrl.store import (
    PUBLISHED_ROOT,
    atomic_file,
    read_json_checked,
    write_gzip_json_atomic,
)

CARRY_ROOT = Path(os.environ.get("MUSICRL_CARRY", Path(__file__).resolve().parent.parent / "carry"))


def carry_path(spec: RunSpec, carry_root: Path | str | None = None) -> Path:
    return Path(carry_root if carry_root is not None else CARRY_ROOT) / f"{spec.key}.tar.gz"


def _checkpoint_in(tar: tarfile.TarFile) -> int:
    return max(int(m.name.split("/")[1][1:]) for m in tar.getmembers() if m.name.startswith("checkpoints/u"))


def carried_updates(spec: RunSpec, carry_root: Path | str | None = None) -> int:
    """Updates done by the carried checkpoint of ``spec`` (0 if none is carried)."""
    path = carry_path(spec, carry_root)
    if not path.exists():
        return 0
    with tarfile.open(path) as tar:
        return _checkpoint_in(tar)


def carry(spec: RunSpec, root: Path | str | None = None, carry_root: Path | str | None = None) -> Path | None:
    """Pack an unfinished run's last checkpoint and its evaluations so far into the carry
    folder, written atomically; None if the run has finished or has no checkpoint yet."""
    folder = RunFolder.of(spec, root)
    done = folder.latest()
    if load_result(spec, root, published=False) is not None or not done:
        return None
    path = carry_path(spec, carry_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = atomic_file(path)
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for inside in folder.carried_files(done):
                tar.add(folder.path / inside, arcname=str(inside))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def restore_carried(folder: RunFolder) -> None:
    """Unpack the carried checkpoint of the folder's run into it if it is ahead of the local ones."""
    if not carry_path(folder.spec).exists():
        return
    with tarfile.open(carry_path(folder.spec)) as tar:
        carried = _checkpoint_in(tar)
        if carried <= folder.latest():
            return
        folder.path.mkdir(parents=True, exist_ok=True)
        unpacked = Path(tempfile.mkdtemp(dir=folder.path, prefix=".carried."))
        try:
            tar.extractall(unpacked, filter="data")
            folder.adopt(unpacked, carried)
        finally:
            shutil.rmtree(unpacked, ignore_errors=True)


def published_path(spec: RunSpec, published: Path | str | None = None) -> Path:
    return Path(published if published is not None else PUBLISHED_ROOT) / "runs" / f"{spec.key}.json.gz"


def load_result(spec: RunSpec, root: Path | str | None = None, published: Path | str | None | bool = None) -> RunResult | None:
    """The finished run's result from the local store, else from the published results
    (``published=False`` skips them), or None if it has not finished."""
    found = RunFolder.of(spec, root).read_result()
    if found is None and published is not False:
        found = read_json_checked(published_path(spec, None if published is True else published), RunResult.from_json,
                                  gzipped=True)
    return found


def published_result(spec: RunSpec, published: Path | str | None = None) -> RunResult | None:
    """The run's result in the published results only (None if they do not hold it)."""
    return read_json_checked(published_path(spec, published), RunResult.from_json, gzipped=True)


def publish(spec: RunSpec, extras: dict[str, Any], root: Path | str | None = None,
            published: Path | str | None = None) -> Path:
    """Copy a finished local run into the published results (gzip JSON, no weights) with ``extras``."""
    result = load_result(spec, root, published=False)
    if result is None:
        raise ValueError(f"{spec.key} has not finished in {RunFolder.of(spec, root).path}; train it first (musicrl train {spec.name})")
    result.extras = extras
    path = published_path(spec, published)
    write_gzip_json_atomic(path, result.to_json())
    carry_path(spec).unlink(missing_ok=True)  # finished: nothing left to carry over
    return path


def unfinished(specs: Sequence[RunSpec], root: Path | str | None = None, published=None) -> list[RunSpec]:
    """The runs of ``specs`` that neither the local nor the published store holds."""
    return [spec for spec in specs if load_result(spec, root, published) is None]


def publish_finished(specs: Sequence[RunSpec], extras: Callable[[RunSpec], dict[str, Any]], root: Path | str | None = None,
                     published: Path | str | None = None, progress: bool = True) -> list[Path]:
    """:func:`publish` every run of ``specs`` finished locally and not yet published, with ``extras(spec)``."""
    written = []
    for spec in tqdm(list(specs), desc="publish", disable=not progress):
        if load_result(spec, root, published=False) is None or published_path(spec, published).exists():
            continue
        written.append(publish(spec, extras(spec), root, published))
    return written


def load_policy(spec: RunSpec, updates: int | None = None, root: Path | str | None = None,
                published: Path | str | None = None) -> NormalizedPolicy:
    """A stored checkpoint (the last one by default) as a policy for :mod:`musicrl.evaluation`;
    the last one comes from the published weights (:func:`publish_weights`) when the local
    store lacks it."""
    updates = spec.checkpoints[-1] if updates is None else updates
    if updates not in spec.checkpoints:
        raise ValueError(f"{spec.key} saves checkpoints at updates {list(spec.checkpoints)}, not {updates}")
    folder = RunFolder.of(spec, root)
    env = make_training_env(spec.env, spec.agent, spec.seed)
    if folder.has_checkpoint(updates):
        model, env, _ = folder.load_checkpoint(updates, env)
    elif updates == spec.checkpoints[-1] and has_weights(spec, published):
        model, env = _load_weights(weights_path(spec, published), spec, env)
    else:
        env.close()
        hint = " or publish its weights (musicrl publish --weights)" if updates == spec.checkpoints[-1] else ""
        raise ValueError(f"no checkpoint at update {updates} in {folder.path} and no published weights; "
                         f"train it first (musicrl train {spec.name}){hint}")
    return trained_policy(model, env, spec.agent)


WEIGHT_FILES = ("model.zip", "normalizer.pkl")


def weights_path(spec: RunSpec, published: Path | str | None = None) -> Path:
    """Where the published final weights of ``spec`` live: ``published/weights/<key>/``."""
    return Path(published if published is not None else PUBLISHED_ROOT) / "weights" / spec.key


def has_weights(spec: RunSpec, published: Path | str | None = None) -> bool:
    return (weights_path(spec, published) / "model.zip").exists()


def _load_weights(folder: Path, spec: RunSpec, env: VecEnv) -> tuple[BaseAlgorithm, VecEnv]:
    normalizer = None
    if (folder / "normalizer.pkl").exists():
        with open(folder / "normalizer.pkl", "rb") as handle:
            normalizer = pickle.load(handle)
    return load_model(spec, folder / "model.zip", normalizer, env)


def publish_weights(spec: RunSpec, root: Path | str | None = None, published: Path | str | None = None,
                    replace_with: Callable[[RunSpec], dict[str, Any]] | None = None) -> Path:
    """Copy a finished local run's final weights (the SB3 zip and its observation normalizer,
    about 0.6 MB) to :func:`weights_path`, so that :func:`load_policy` works on a fresh clone.

    Refuses when the published result of the run differs from the local one: weights that did
    not produce the published curve and returns would not belong beside them. With
    ``replace_with`` (the published record's extras of a spec) the local run replaces the
    published result instead, so that result and weights are again one run. The fast path
    reproduces a run bit for bit only beside the same batch-mates: a run resumed beside
    others agrees to float32 ulps, and over thousands of updates one sampled action flips.
    """
    result, final = load_result(spec, root, published=False), spec.checkpoints[-1]
    folder = RunFolder.of(spec, root)
    if result is None or not folder.has_checkpoint(final):
        raise ValueError(f"{spec.key} has no finished run with its final checkpoint (update {final}) in {folder.path}; "
                         f"train it first (musicrl train {spec.name} --weights)")
    shown = published_result(spec, published)
    if shown is not None and not (np.array_equal(shown.curve, result.curve, equal_nan=True)
                                  and all(np.array_equal(a, b) for a, b in zip(shown.returns, result.returns))):
        if replace_with is None:
            raise ValueError(f"{spec.key}: the local run's curve or returns differ from the published ones, so its weights "
                             "are not those of the published result; replace the published run by it (musicrl publish "
                             f"{spec.name} --weights --replace) or retrain it with its published batch-mates")
        publish(spec, replace_with(spec), root, published)
    target = weights_path(spec, published)
    with atomic_run_folder(target) as tmp:
        shutil.copy2(folder.model_file(final), tmp / "model.zip")
        normalizer = folder.checkpoint_state(final)["normalizer"]
        if normalizer is not None:  # SB3 pickles a VecNormalize only once set_venv has given it its attributes
            env = make_training_env(spec.env, spec.agent, spec.seed)
            normalizer.set_venv(env.venv if isinstance(env, VecNormalize) else env)
            with open(tmp / "normalizer.pkl", "wb") as handle:
                pickle.dump(normalizer, handle)
            env.close()
    carry_path(spec).unlink(missing_ok=True)
    return target


def playable_profile(name: str, profile: str, root=None, published=None) -> str:
    """The budget whose trained agents of ``name`` a chapter can play: ``profile``, except where the
    profile names an ``unplayable_fallback`` (``full``: its runs are published, not trained by the
    build) and some seed has neither its final checkpoint locally nor published weights
    (``musicrl publish --weights``); then the fallback, which the build trains."""
    fallback = profiles.get(profile).recommender.unplayable_fallback
    if fallback is None:
        return profile

    def playable(spec: RunSpec) -> bool:
        local = RunFolder.of(spec, root).has_checkpoint(spec.checkpoints[-1])
        return load_result(spec, root, published) is not None and (local or has_weights(spec, published))
    return profile if all(playable(spec) for spec in run_specs([name], profile)) else fallback
