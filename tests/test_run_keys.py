"""A run's key depends on its configuration only: a CUDA machine finds every published run."""

from __future__ import annotations

from pathlib import Path

import torch
from stable_baselines3.common.utils import get_device

from musicrl import beyond, publish, registry, runfiles

PUBLISHED = Path(__file__).resolve().parents[1] / "published" / "runs"


def _every_full_profile_key() -> set[str]:
    names = (*registry.EXPERIMENTS, *registry.VARIANTS)
    specs = registry.run_specs(names, "full") + beyond.noise_specs("full") + beyond.scaling_specs("full")
    return {spec.key for spec in specs + registry.own_variant_specs("full")}


def test_a_cuda_machine_finds_every_published_run(monkeypatch):
    published = {path.name.removesuffix(".json.gz") for path in PUBLISHED.glob("*.json.gz")}
    on_cpu = _every_full_profile_key()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device("auto").type == "cuda"  # the simulation reaches SB3's device choice
    on_cuda = _every_full_profile_key()
    assert on_cuda == on_cpu
    assert len(published) >= 190 and published <= on_cuda


def test_the_fast_path_trains_on_the_cpu_whatever_the_agents_device():
    spec = registry.run_spec("fig14-gru", "full", 0)
    assert spec.trainer == "multiseed" and spec.agent.device == "auto"
    assert runfiles.run_device(spec) == "cpu"
    assert runfiles.run_device(registry.run_spec("fig17-acktr", "full", 0)) == "auto"


def test_every_published_run_loads_by_its_key():
    """Each published file is the result of the spec whose key names it: load_result finds it by the
    key the registry computes today, and the stored configuration is that spec's."""
    names = (*registry.EXPERIMENTS, *registry.VARIANTS)
    specs = registry.run_specs(names, "full") + beyond.noise_specs("full") + beyond.scaling_specs("full")
    specs += registry.own_variant_specs("full")
    published = {path.name.removesuffix(".json.gz") for path in PUBLISHED.glob("*.json.gz")}
    loaded = 0
    for spec in (s for s in specs if s.key in published):
        result = publish.load_result(spec, root=PUBLISHED.parent / "no-local-store", published=PUBLISHED.parent)
        assert result is not None and result.spec == spec.to_dict(), spec.key
        assert len(result.returns) == len(spec.checkpoints) and len(result.curve) == spec.updates
        loaded += 1
    assert loaded == len(published)
