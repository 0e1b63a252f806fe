"""Probes that reload a trained policy: sampled actions, conversational metrics, entropy, TRPO's line search."""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from musicrl.algorithms import ALGORITHMS
from musicrl.evaluation import conversational_metrics, evaluate_sampled, rollout
from musicrl.publish import load_policy
from musicrl.runfiles import RunFolder, RunResult, RunSpec

SAMPLING_REPEATS = 10


def sampling_stats(spec: RunSpec, root=None, repeats: int = SAMPLING_REPEATS) -> dict[str, Any]:
    """The final checkpoint acting deterministically on every target and sampling ``repeats`` times each.

    Needs the run's weights; the published results carry it in ``extras["sampling"]``.
    """
    policy = load_policy(spec, root=root)
    _, episodes = rollout(policy, spec.env, range(spec.env.n_positions))
    missed = [ep for ep in episodes if not ep.found]
    sampled, _ = evaluate_sampled(policy, spec.env, repeats=repeats, seed=spec.seed)
    return {
        "repeats": repeats, "sampled": float(sampled.mean), "missed": len(missed) / len(episodes),
        "stuck": float(np.mean([ep.stuck for ep in missed])) if missed else float("nan"),
        "conversational": conversational_metrics(episodes),
    }


def agent_conversational(spec: RunSpec, result: RunResult | None = None, root=None) -> dict[str, float] | None:
    """SR@T and AT (:func:`musicrl.conversational_metrics`) of a run's final checkpoint,
    deterministic, one episode per target: from the published extras, else from the local weights;
    None when neither holds them (runs published before the metrics were recorded)."""
    stored = (result.extras.get("sampling") or {}).get("conversational") if result is not None else None
    if stored:
        return stored
    try:
        policy = load_policy(spec, root=root)
    except ValueError:
        return None
    return conversational_metrics(rollout(policy, spec.env, range(spec.env.n_positions))[1])


def sampled_result(result: RunResult, spec: RunSpec, repeats: int, root) -> dict[str, float]:
    stored = result.extras.get("sampling")
    return stored if stored and stored["repeats"] == repeats else sampling_stats(spec, root, repeats)


class _EntropyProbe:
    """Wraps a trained policy; records the mean entropy of its action distribution at each step."""

    def __init__(self, policy) -> None:
        self.policy, self.values = policy, cast(list[float], [])

    def predict(self, observation, state=None, episode_start=None, deterministic=False):
        import torch
        from sb3_contrib import RecurrentPPO

        model, normalizer = self.policy.model, self.policy.normalizer
        obs = torch.as_tensor(normalizer.normalize_obs(observation) if normalizer else observation, device=model.device)
        with torch.no_grad():
            if isinstance(model, RecurrentPPO):
                lstm = model.policy.lstm_actor
                shape = (lstm.num_layers, len(observation), lstm.hidden_size)
                h, c = (np.zeros(shape, np.float32), np.zeros(shape, np.float32)) if state is None else state
                starts = torch.as_tensor(np.asarray(episode_start, dtype=np.float32), device=model.device)
                distribution, _ = model.policy.get_distribution(
                    obs, (torch.as_tensor(h, device=model.device), torch.as_tensor(c, device=model.device)), starts)
            else:
                distribution = model.policy.get_distribution(obs)
        self.values.append(float(distribution.entropy().mean()))
        return self.policy.predict(observation, state=state, episode_start=episode_start, deterministic=deterministic)


def policy_entropy(spec: RunSpec, updates: int, root=None) -> float:
    """Mean entropy (nats) of a checkpoint's action distribution along its deterministic episodes on every target."""
    probe = _EntropyProbe(load_policy(spec, updates, root=root))
    rollout(probe, spec.env, range(spec.env.n_positions))
    return float(np.mean(probe.values))


def line_search_success(spec: RunSpec, root=None, every: int = 500) -> list[float]:
    """TRPO: the share of updates whose line search succeeded, per block of ``every`` updates (TensorBoard logs)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: list[float] = []
    for folder in sorted(RunFolder.of(spec, root).tensorboard().glob("*")):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        if "train/is_line_search_success" in events.Tags()["scalars"]:
            values += [e.value for e in events.Scalars("train/is_line_search_success")]
    return [float(np.mean(values[i:i + every])) for i in range(0, len(values), every)]


def run_extras(spec: RunSpec, root=None) -> dict:
    """What the book needs from a run beyond its result.json, computed while the weights exist.

    The entropy covers the checkpoints stored locally: every one, unless the run was carried
    over from another machine (then those trained since the carry, see
    :meth:`musicrl.runfiles.RunFolder.saved`).
    """
    extras: dict[str, Any] = {
        "sampling": sampling_stats(spec, root),
        "entropy": {str(u): policy_entropy(spec, u, root) for u in RunFolder.of(spec, root).saved()},
    }
    if ALGORITHMS[spec.agent.algorithm].line_search:
        extras["line_search_success"] = {"every": 500, "values": line_search_success(spec, root, 500)}
    return extras


def run_entropy(result: RunResult, spec: RunSpec, root=None) -> dict[int, float]:
    """Entropy per checkpoint: published with the run, else computed from its local checkpoints."""
    stored = result.extras.get("entropy")
    if stored:
        return {int(u): h for u, h in stored.items()}
    return {u: policy_entropy(spec, u, root) for u in spec.checkpoints}


def run_line_search(result: RunResult, spec: RunSpec, root=None, every: int = 500) -> list[float]:
    stored = result.extras.get("line_search_success")
    if stored and stored["every"] == every:
        return stored["values"]
    return line_search_success(spec, root, every)
