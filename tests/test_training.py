"""Training runs: curve, checkpoints, evaluation, exact resume, free reruns, Ray sweep."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import interrupt_after_first_checkpoint

from musicrl import cluster, probes, publish, runfiles, training
from musicrl.agents import AgentConfig, NormalizedPolicy, algorithm_class
from musicrl.envs import EnvConfig
from musicrl.evaluation import evaluate_policy
from musicrl.publish import load_policy, load_result
from musicrl.runfiles import CurveCallback, RunFolder, RunSpec
from musicrl.training import train, train_many

ENV = EnvConfig(d=2, preset="WiderTopTarget", reward="Bullseye", obs="GridObs")


def spec(algorithm="A2C", seed=1, updates=12, every=6, **env):
    agent = AgentConfig(algorithm=algorithm, n_envs=4, n_steps=5, device="cpu")
    config = EnvConfig(**{**ENV.to_dict(), **env})
    return RunSpec("t", config, agent, updates=updates, checkpoint_every=every, seed=seed)


def parameters(run_spec, root, updates):
    folder = RunFolder.of(run_spec, root).path / "checkpoints" / f"u{updates:07d}"
    model = algorithm_class(run_spec.agent.algorithm).load(folder / "model.zip", device="cpu")
    return torch.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize("algorithm", ["A2C", "RecurrentA2C", "TRPO", "ACKTR"])
def test_interrupted_run_resumes_to_exactly_the_uninterrupted_result(algorithm, tmp_path, monkeypatch):
    run = spec(algorithm)
    whole = train(run, tmp_path / "whole", progress=False)

    interrupt_after_first_checkpoint(monkeypatch, lambda: train(run, tmp_path / "split", progress=False))
    folder = RunFolder.of(run, tmp_path / "split").path
    assert not (folder / "result.json").exists()
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["u0000006", "u0000012"]
    assert sorted(p.name for p in (folder / "evals").iterdir()) == ["u0000006.json"]

    (folder / "checkpoints" / ".u0000018.partial").mkdir()  # what a killed save leaves behind
    resumed = train(run, tmp_path / "split", progress=False)
    assert not list((folder / "checkpoints").glob(".*"))
    np.testing.assert_array_equal(resumed.curve, whole.curve)
    for a, b in zip(resumed.returns, whole.returns):
        np.testing.assert_array_equal(a, b)
    assert torch.equal(parameters(run, tmp_path / "split", 12), parameters(run, tmp_path / "whole", 12))


def test_resume_from_a_checkpoint_gives_the_same_result(tmp_path):
    run = spec("RecurrentA2C", updates=18)
    whole = train(run, tmp_path, progress=False)
    folder = RunFolder.of(run, tmp_path).path
    (folder / "result.json").unlink()
    shutil.rmtree(folder / "checkpoints" / "u0000018")
    shutil.rmtree(folder / "checkpoints" / "u0000012")
    (folder / "evals" / "u0000018.json").unlink()
    (folder / "evals" / "u0000012.json").unlink()
    again = train(run, tmp_path, progress=False)
    np.testing.assert_array_equal(again.curve, whole.curve)
    np.testing.assert_array_equal(again.final.returns, whole.final.returns)


@pytest.mark.parametrize("trainer", ["sb3", "multiseed"])
def test_a_carried_run_resumes_on_a_fresh_store_to_the_uninterrupted_result(trainer, tmp_path, monkeypatch):
    """What a session commits of an unfinished run (carry/) is all another machine needs."""
    monkeypatch.setattr(publish, "CARRY_ROOT", tmp_path / "carry")
    run = replace(spec("RecurrentA2C", updates=18), trainer=trainer)
    whole = train(run, tmp_path / "whole", progress=False)
    assert publish.carry(run, tmp_path / "whole") is None  # finished: nothing to carry
    unfinished = tmp_path / "session1"
    shutil.copytree(RunFolder.of(run, tmp_path / "whole").path, RunFolder.of(run, unfinished).path)
    folder = RunFolder.of(run, unfinished).path
    (folder / "result.json").unlink()
    shutil.rmtree(folder / "checkpoints" / "u0000018")
    (folder / "evals" / "u0000018.json").unlink()
    path = publish.carry(run, unfinished)
    assert path == tmp_path / "carry" / f"{run.key}.tar.gz" and publish.carried_updates(run) == 12
    assert publish.carry(spec(seed=9), unfinished) is None  # never trained: no checkpoint

    resumed = train(run, tmp_path / "session2", progress=False)  # an empty store on "another machine"
    np.testing.assert_array_equal(resumed.curve, whole.curve)
    for a, b in zip(resumed.returns, whole.returns):
        np.testing.assert_array_equal(a, b)
    fresh = RunFolder.of(run, tmp_path / "session2").path
    assert sorted(p.name for p in (fresh / "checkpoints").iterdir()) == ["u0000012", "u0000018"]  # resumed, not retrained
    assert sorted(p.name for p in (fresh / "evals").iterdir()) == ["u0000006.json", "u0000012.json", "u0000018.json"]
    assert not list(fresh.glob(".carried.*"))
    assert runfiles.RunFolder.of(run, tmp_path / "session2").saved() == [12, 18]
    extras = probes.run_extras(run, tmp_path / "session2")  # the weights of update 6 stayed on the first machine
    assert sorted(extras["entropy"]) == ["12", "18"]
    publish.publish(run, extras, tmp_path / "session2", tmp_path / "published")
    assert not path.exists() and publish.carried_updates(run) == 0


def test_a_finished_run_is_read_back_without_training(tmp_path, monkeypatch):
    run = spec()
    first = train(run, tmp_path, progress=False)
    monkeypatch.setattr(training, "make_agent", lambda *a, **k: pytest.fail("a finished run must not train again"))
    second = train(run, tmp_path, progress=False)
    np.testing.assert_array_equal(second.curve, first.curve)
    assert second.final.summary() == first.final.summary()


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    a = train(spec(seed=3), tmp_path / "a", progress=False)
    b = train(spec(seed=3), tmp_path / "b", progress=False)
    c = train(spec(seed=4), tmp_path / "c", progress=False)
    np.testing.assert_array_equal(a.curve, b.curve)
    assert not np.array_equal(a.curve, c.curve, equal_nan=True)


def test_run_records_curve_checkpoints_evaluations_and_tensorboard(tmp_path):
    run = spec("RecurrentA2C", updates=12, every=6)
    result = train(run, tmp_path, progress=False)
    folder = RunFolder.of(run, tmp_path).path
    assert result.curve.shape == (12,)
    assert np.isnan(result.curve[0]) and np.isfinite(result.curve[-1])  # no episode ends in the first 5 steps
    assert result.checkpoints == [6, 12] and result.pooled_from == [6, 12]
    assert result.env_steps == 12 * run.agent.steps_per_update
    assert all(r.shape == (25,) for r in result.returns)
    assert list((folder / "tb").rglob("events.out.tfevents*"))
    stored = json.loads((folder / "result.json").read_text())
    assert stored["spec"] == run.to_dict() and "torch" in stored["versions"]
    assert stored["final"]["mean"] == pytest.approx(float(np.mean(result.returns[-1])))
    assert not [p for p in folder.rglob("*") if p.name.startswith(".")]


def test_stored_evaluation_is_the_checkpoints_deterministic_return_on_every_target(tmp_path):
    import pickle

    run = spec("RecurrentA2C")
    result = train(run, tmp_path, progress=False)
    folder = RunFolder.of(run, tmp_path).path / "checkpoints" / "u0000012"
    model = algorithm_class("RecurrentA2C").load(folder / "model.zip", device="cpu")
    normalizer = pickle.loads((folder / "state.pkl").read_bytes())["normalizer"]
    again = evaluate_policy(NormalizedPolicy(model, normalizer), run.env)
    np.testing.assert_array_equal(again.returns, result.returns[-1])


def test_curve_point_is_the_mean_of_the_last_ten_episodes():
    callback = CurveCallback()
    returns = [float(r) for r in range(14)]
    callback.locals = {"infos": [{"episode": {"r": r}} for r in returns[:4]] + [{}]}
    callback._on_step()
    callback._on_rollout_end()
    callback.locals = {"infos": [{"episode": {"r": r}} for r in returns[4:]]}
    callback._on_step()
    callback._on_rollout_end()
    assert callback.curve == [np.mean(returns[:4]), np.mean(returns[4:])]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"updates": 0}, "updates must be an integer >= 1, got 0"),
        ({"every": 2}, r"checkpoint_every x n_steps must be at least one episode \(21 steps\), got 2 x 5"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_bad_run_specs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        spec(**kwargs)
    with pytest.raises(ValueError, match="name must be non-empty"):
        RunSpec("a/b", ENV, AgentConfig(), updates=2, checkpoint_every=2)


def test_checkpoints_include_the_end_and_pool_the_second_half():
    run = spec(updates=25, every=6)
    assert run.checkpoints == [6, 12, 18, 24, 25]
    assert run.pooled_checkpoints == [18, 24, 25]


def test_ray_sweep_trains_locally_into_the_same_store(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # a cluster that is gone: a local sweep must not try to join it
    specs = [spec(seed=5), spec("TRPO", seed=6)]
    results = train_many(specs, root=tmp_path, workers=2, progress=False)
    for run, result in zip(specs, results):
        stored = load_result(run, tmp_path)
        assert stored is not None and result.spec == run.to_dict()
        np.testing.assert_array_equal(stored.curve, result.curve)
    alone = train(specs[0], tmp_path / "alone", progress=False)
    np.testing.assert_allclose(alone.curve, results[0].curve, rtol=1e-5, equal_nan=True)


def test_local_ray_is_a_private_instance_on_the_loopback_interface(monkeypatch):
    import ray

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")
    with cluster.loopback_ray():
        ray.init(**cluster.ray_init_arguments(None, workers=1))
        try:
            assert [n["NodeManagerAddress"] for n in ray.nodes()] == ["127.0.0.1"]
            assert ray.cluster_resources()["CPU"] == 1
        finally:
            ray.shutdown()
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in __import__("os").environ  # put back as it was
    assert cluster.ray_init_arguments("ray://head:10001")["address"] == "ray://head:10001"


def test_one_worker_trains_in_this_process_without_ray(tmp_path, monkeypatch):
    import ray

    monkeypatch.setattr(ray, "init", lambda **kwargs: pytest.fail("workers=1 must not start Ray"))
    specs = [spec(seed=5), replace(spec("RecurrentA2C", seed=6), trainer="multiseed"),
             replace(spec("RecurrentA2C", seed=7), trainer="multiseed")]
    results = train_many(specs, root=tmp_path, workers=1, progress=False)
    for run, result in zip(specs, results):
        assert load_result(run, tmp_path).spec == result.spec == run.to_dict()
    assert results[1].trainer == {"path": "multiseed", "seeds_together": 2}


@pytest.mark.parametrize("algorithm", ["A2C", "RecurrentA2C", "ACKTR"])
def test_a_loaded_checkpoint_reproduces_its_stored_evaluation(algorithm, tmp_path):
    run = spec(algorithm, obs="BoardObs", reward="Rating")
    result = train(run, tmp_path, progress=False)
    for updates, stored in zip(run.checkpoints, result.returns):
        np.testing.assert_array_equal(evaluate_policy(load_policy(run, updates, tmp_path), run.env).returns, stored)
    with pytest.raises(ValueError, match=r"checkpoints at updates \[6, 12\], not 7"):
        load_policy(run, 7, tmp_path)
    with pytest.raises(ValueError, match="no checkpoint at update 12"):
        load_policy(run, root=tmp_path / "elsewhere")


def test_an_unreachable_cluster_is_one_clear_error(monkeypatch):
    import socket

    class FakeRay:
        @staticmethod
        def init(**kwargs):
            raise ConnectionError("Failed to connect to the cluster\\nlong trace")

    monkeypatch.setattr(cluster, "check_reachable", lambda address, timeout: None)  # the port answers; Ray does not
    with pytest.raises(ValueError, match=r"could not reach the Ray cluster at 'ray://10\.0\.0\.9:10001' \(Failed to connect"):
        cluster._init_ray(FakeRay, "ray://10.0.0.9:10001", None)

    class RefusedToken:
        @staticmethod
        def init(**kwargs):
            import os
            os.write(2, b"[core] InvalidAuthToken: the token does not match\n" * 20)
            raise ConnectionError("Failed to connect to GCS")

    with pytest.raises(ValueError, match=r"^the Ray cluster at 'h:1' refused this machine's token: set RAY_AUTH_MODE=token"):
        cluster._init_ray(RefusedToken, "h:1", None)
    monkeypatch.undo()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ValueError, match=rf"^could not reach the Ray cluster at '127.0.0.1:{port}': connection refused at "):
        cluster.check_reachable(f"127.0.0.1:{port}", 5)
    with pytest.raises(ValueError, match="a Ray address is HOST:PORT or ray://HOST:PORT, got 'nowhere'"):
        cluster.check_reachable("nowhere", 5)


def test_tensorboard_keeps_one_event_file_per_run_and_purpose(tmp_path):
    run = replace(spec("A2C", seed=0, updates=100, every=25), trainer="multiseed")
    train_many([run, replace(run, seed=1)], root=tmp_path, workers=1, progress=False)
    for seed in (0, 1):
        tb = RunFolder.of(replace(run, seed=seed), tmp_path).path / "tb"
        files = sorted(p.relative_to(tb).parent.as_posix() for p in tb.rglob("events.out.tfevents*"))
        assert files == ["eval", "multiseed"], files
        assert all(p.stat().st_size > 100 for p in tb.rglob("events.out.tfevents*"))


@pytest.mark.parametrize("trainer, algorithm", [("sb3", "A2C"), ("multiseed", "A2C"), ("sb3", "ACKTR"), ("device", "GRUA2C")])
def test_every_trainer_logs_the_same_curve_and_evaluation_tags(trainer, algorithm, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from musicrl.runfiles import CURVE_TAG, EVAL_TAGS

    run = replace(spec(algorithm, updates=100, every=50), trainer=trainer)
    result = train_many([run], root=tmp_path, workers=1, progress=False)[0]
    scalars: dict[str, list] = {}
    for folder in (RunFolder.of(run, tmp_path).path / "tb").iterdir():
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(events.Scalars(tag))
    assert CURVE_TAG in scalars and set(EVAL_TAGS) <= set(scalars)
    evaluated = sorted((e.step, e.value) for e in scalars[EVAL_TAGS[0]])
    per_update = run.agent.steps_per_update
    assert evaluated == [(u * per_update, pytest.approx(float(np.mean(r)))) for u, r in zip(result.checkpoints, result.returns)]


def test_a_local_ray_that_does_not_start_trains_the_runs_in_this_process(tmp_path, monkeypatch):
    import ray

    def slow_start(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen because ...")

    monkeypatch.setattr(ray, "init", slow_start)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.warns(UserWarning, match="a local Ray instance did not start .* training the 1 runs in this process"):
        result = train_many([spec(seed=3)], root=tmp_path, workers=2, progress=False)[0]
    np.testing.assert_array_equal(load_result(spec(seed=3), tmp_path).curve, result.curve)


def test_runs_report_their_updates_for_a_sweeps_progress_bar(tmp_path, monkeypatch):
    """Ray workers log nothing back: each run writes its updates done into progress.json, which the
    sweep's driver sums (a finished run counts in full, an unstarted one as zero)."""
    monkeypatch.setattr(runfiles, "PROGRESS_EVERY", 0.0)
    written = []
    write = runfiles.write_json_atomic
    monkeypatch.setattr(runfiles, "write_json_atomic",
                        lambda path, payload: (written.append(payload) if path.name == "progress.json" else None, write(path, payload)))
    sb3, together = spec(updates=12, every=6), replace(spec(updates=12, every=6), trainer="multiseed")
    unstarted = spec(seed=9)
    train(sb3, tmp_path, progress=False)
    assert [p["updates"] for p in written][:3] == [1, 2, 3] and written[-1]["updates"] == 12
    assert cluster.sweep_progress([sb3, unstarted], tmp_path) == 12
    folder = RunFolder.of(together, tmp_path).path
    folder.mkdir(parents=True)
    (folder / "progress.json").write_text('{"updates": 7}')
    assert cluster.sweep_progress([sb3, together, unstarted], tmp_path) == 19
