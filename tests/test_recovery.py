"""Interrupted runs and damaged files: every rerun resumes or recomputes, to the same numbers."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from musicrl import publish, registry, runfiles, training
from musicrl.store import Store


def _same(a: runfiles.RunResult, b: runfiles.RunResult) -> None:
    np.testing.assert_array_equal(a.curve, b.curve)
    assert a.checkpoints == b.checkpoints and a.env_steps == b.env_steps
    for x, y in zip(a.returns, b.returns):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module", params=["fig14", "fig17"])  # the multi-seed path and the SB3 path
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    spec = registry.run_spec(request.param, "smoke", 0)
    return spec, root, training.train(spec, root, progress=False)


def _copy(trained, tmp_path):
    spec, root, result = trained
    shutil.copytree(root, tmp_path / "runs-copy")
    return spec, tmp_path / "runs-copy", result


def test_a_kill_between_checkpoint_and_evaluation_resumes(trained, tmp_path):
    """Defect 1: result.json, every evaluation and the last checkpoint gone: the rerun evaluates the
    saved checkpoint, retrains the lost one, and ends with the uninterrupted numbers."""
    spec, root, result = _copy(trained, tmp_path)
    folder = runfiles.RunFolder.of(spec, root).path
    (folder / "result.json").unlink()
    for evaluation in (folder / "evals").glob("*.json"):
        evaluation.unlink()
    shutil.rmtree(folder / "checkpoints" / f"u{spec.checkpoints[-1]:07d}")
    _same(training.train(spec, root, progress=False), result)
    assert sorted(p.name for p in (folder / "evals").glob("*.json")) == [f"u{u:07d}.json" for u in spec.checkpoints]


@pytest.mark.parametrize("content", ["", '{"spec": {', '{"foo": 1}', "[1, 2]", "null"])
def test_a_damaged_result_is_set_aside_and_recomputed(trained, tmp_path, content):
    """Defect 2: a truncated, foreign or empty result.json is named, renamed .corrupt and recomputed."""
    spec, root, result = _copy(trained, tmp_path)
    path = runfiles.RunFolder.of(spec, root).path / "result.json"
    path.write_text(content)
    with pytest.warns(UserWarning, match=f"{path}.*moved to result.json.corrupt"):
        again = training.train(spec, root, progress=False)
    _same(again, result)
    assert path.with_name("result.json.corrupt").read_text() == content
    assert publish.load_result(spec, root, published=False) is not None


def test_a_damaged_evaluation_is_recomputed(trained, tmp_path):
    spec, root, result = _copy(trained, tmp_path)
    folder = runfiles.RunFolder.of(spec, root).path
    (folder / "result.json").unlink()
    (folder / "evals" / f"u{spec.checkpoints[0]:07d}.json").write_text('{"returns": ')
    with pytest.warns(UserWarning, match="u0000005.json is damaged"):
        _same(training.train(spec, root, progress=False), result)


def test_a_damaged_store_file_is_set_aside_and_recomputed(tmp_path):
    store = Store(tmp_path)
    assert store.get_or_compute("kind", {"a": 1}, lambda: [1, 2]) == [1, 2]
    path = store.path("kind", {"a": 1})
    path.write_text('{"result": [1,')
    with pytest.warns(UserWarning, match="is damaged"):
        assert store.get_or_compute("kind", {"a": 1}, lambda: [3]) == [3]
    assert json.loads(path.read_text())["result"] == [3]
    assert path.with_name(path.name + ".corrupt").exists()


def test_leftover_temporary_files_are_removed_on_the_next_write(tmp_path):
    store = Store(tmp_path)
    path = store.path("kind", {"a": 2})
    path.parent.mkdir(parents=True)
    (path.parent / f"{path.name}abc123.tmp").write_text("")  # what a SIGKILL during a write leaves
    store.put("kind", {"a": 2}, 5)
    assert not list(path.parent.glob("*.tmp")) and store.get("kind", {"a": 2}) == 5


KILLER = """
import os, signal, sys
from pathlib import Path
from musicrl import evaluation, publish, registry, runfiles, store, training

name, root, point = sys.argv[1], sys.argv[2], sys.argv[3]
spec = registry.run_spec(name, "smoke", 0)
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
if point == "training":  # the second checkpoint is never saved: killed while training towards it
    save, calls = runfiles.RunFolder.save_checkpoint, []
    def killing_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            die()
        return save(*args, **kwargs)
    runfiles.RunFolder.save_checkpoint = killing_save
elif point == "evaluation":  # the first checkpoint is saved, its evaluation never written
    runfiles.RunFolder.evaluate = lambda *args, **kwargs: die()
elif point == "result":  # half of result.json's temporary file written, then killed
    write = runfiles.write_json_atomic
    def killing_write(path, payload):
        if Path(path).name == "result.json":
            Path(str(path) + "xyz.tmp").write_text('{"spec": {"na')
            die()
        return write(path, payload)
    runfiles.write_json_atomic = killing_write
training.train(spec, root, progress=False)
"""


@pytest.mark.parametrize("point", ["training", "evaluation", "result"])
def test_a_sigkilled_training_process_reruns_to_the_uninterrupted_numbers(trained, tmp_path, point):
    """A real subprocess SIGKILLed at ``point`` (on both paths, through ``trained``), then rerun:
    the result equals the uninterrupted run's field by field, and no temporary file is left."""
    import subprocess
    import sys

    spec, _, result = trained
    name = spec.name
    root = tmp_path / "results"
    killed = subprocess.run([sys.executable, "-c", KILLER, name, str(root), point], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert publish.load_result(spec, root, published=False) is None
    rerun = subprocess.run([sys.executable, "-c", KILLER, name, str(root), "none"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    again = publish.load_result(spec, root, published=False)
    _same(again, result)
    assert again.spec == result.spec and again.pooled_from == result.pooled_from and again.versions == result.versions
    assert not list(runfiles.RunFolder.of(spec, root).path.rglob("*.tmp"))
