import json

import numpy as np
import pytest

from musicrl import store
from musicrl.baselines import StayPolicy
from musicrl.envs import EnvConfig
from musicrl.evaluation import EvalResult, Policy, evaluate_policy, pool


def test_evaluation_runs_every_target_once():
    config = EnvConfig(d=3, reward="Bullseye")
    result = evaluate_policy(StayPolicy(config), config)
    assert result.returns.shape == (125,)
    assert result.returns[62] == 210 and result.mean == pytest.approx(210 * np.mean(result.returns == 210))
    assert isinstance(StayPolicy(config), Policy)


def test_pool_concatenates_checkpoints():
    pooled = pool([EvalResult(np.array([1.0, 3.0])), EvalResult(np.array([5.0, 7.0]))])
    assert pooled.mean == 4.0 and pooled.std == pytest.approx(np.std([1, 3, 5, 7]))
    with pytest.raises(ValueError, match="at least one"):
        pool([])


def test_store_computes_once_and_records_config_and_versions(tmp_path):
    calls = []
    results = store.Store(tmp_path)
    compute = lambda: calls.append(1) or {"value": 3}  # noqa: E731
    assert results.get_or_compute("kind", {"a": 1}, compute) == {"value": 3}
    assert results.get_or_compute("kind", {"a": 1}, compute) == {"value": 3}
    assert len(calls) == 1
    record = json.loads(results.path("kind", {"a": 1}).read_text())
    assert record["config"] == {"a": 1} and record["versions"]["numpy"] == np.__version__
    assert results.path("kind", {"a": 2}) != results.path("kind", {"a": 1})


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(TypeError):
        store.write_json_atomic(target, {"bad": object()})
    assert list(tmp_path.iterdir()) == []
