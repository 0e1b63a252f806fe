"""The device-native path (musicrl.devicetrainer), checked on the CPU: its random numbers, its
update against the SB3 policies' A2C loss, seeds independent of their batch-mates, exact resume,
and its runs against the multi-seed path's, statistically."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import interrupt_after_first_checkpoint
from sb3_contrib.common.recurrent.type_aliases import RNNStates

from musicrl import devicetrainer, registry
from musicrl.agents import AgentConfig, make_agent, make_training_env
from musicrl.devicetrainer import DeviceTrainer, counter_uniform
from musicrl.envs import EnvConfig
from musicrl.multiseed import SeedState
from musicrl.runfiles import RunFolder, RunSpec
from musicrl.stats import mean_ci
from musicrl.training import train, train_seeds


def _mix(x: int) -> int:
    for _ in range(2):
        x = (((x >> 16) ^ x) * 0x45D9F3B) & 0xFFFFFFFF
    return (x >> 16) ^ x


def test_counter_uniform_is_the_documented_hash_row_by_row():
    keys, counter, offsets = torch.tensor([0, 7]), torch.tensor(12), torch.tensor([0, 1, 2])
    got = counter_uniform(keys, counter, 3, offsets)
    for s, key in enumerate((0, 7)):
        base = _mix(_mix(_mix(key) ^ 12) ^ 3)
        expected = [((_mix(base ^ i) >> 9) + 0.5) * 2.0**-23 for i in range(3)]
        assert got[s].tolist() == pytest.approx(expected, abs=0)
    assert torch.equal(counter_uniform(keys[1:], counter, 3, offsets)[0], got[1])  # a row depends on its key only
    assert 0 < got.min() and got.max() < 1


def test_counter_uniform_looks_uniform():
    draws = counter_uniform(torch.arange(4), torch.tensor(0), 0, torch.arange(50_000)).flatten().numpy()
    counts, _ = np.histogram(draws, bins=10, range=(0, 1))
    assert abs(draws.mean() - 0.5) < 0.003 and counts.min() > 0.97 * len(draws) / 10
    assert abs(np.corrcoef(draws[:-1], draws[1:])[0, 1]) < 0.01


def _seeds(agent: AgentConfig, env: EnvConfig, seeds) -> list[SeedState]:
    states = []
    for seed in seeds:
        venv = make_training_env(env, agent, seed)
        states.append(SeedState(make_agent(replace(agent, device="cpu"), venv, seed=seed), venv, deque(maxlen=10), []))
    return states


def _params(state: SeedState) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in state.model.policy.parameters()])


@pytest.mark.parametrize("algorithm, env", [("A2C", EnvConfig(d=2, obs="BoardObs", reward="Rating")),
                                            ("GRUA2C", EnvConfig(d=2)), ("RecurrentA2C", EnvConfig(d=2)),
                                            ("GRUA2C", EnvConfig(d=3, action="MultiDiscrete"))])
def test_one_update_is_the_a2c_loss_gradient_of_each_seeds_sb3_policy(algorithm, env):
    agent = AgentConfig(algorithm=algorithm, n_steps=7, n_envs=3, device="cpu")
    states = _seeds(agent, env, (0, 1))
    trainer = DeviceTrainer(agent, states, device="cpu")
    trainer._open()
    for _ in range(2):  # a rollout that crosses an episode end (21 steps) and starts from a stored state
        rollout = trainer._rollout()
        trainer.counter.add_(1)
    rollout["split"] = torch.zeros(2)  # the LSTM's split at 0: its sequences stay whole, as the reference sees them
    loss, _ = trainer._loss(rollout)
    names = trainer.policy.names
    grads = torch.autograd.grad(loss, [trainer.policy[n] for n in names])
    advantages, returns = trainer._advantages(rollout)
    T, S, E = rollout["rewards"].shape
    for s, state in enumerate(states):
        policy = state.model.policy
        env_major = lambda x, s=s: x[:, s].transpose(0, 1).reshape(E * T, *x.shape[3:])  # SB3's sequence order
        obs, actions = env_major(rollout["obs"]), env_major(rollout["actions"])
        if algorithm == "A2C":
            values, log_prob, entropy = policy.evaluate_actions(obs, actions)
        else:
            h, c = (x[s][None] for x in rollout["initial"])
            values, log_prob, entropy = policy.evaluate_actions(obs, actions, RNNStates((h, c), (h, c)), env_major(rollout["starts"]))
        adv, ret = env_major(advantages), env_major(returns)
        reference = (-(adv * log_prob).mean() + agent.vf_coef * ((ret - values.flatten()) ** 2).mean()
                     - agent.ent_coef * entropy.mean())
        expected = torch.autograd.grad(reference, list(policy.parameters()))
        for name, got, want in zip(names, grads, expected):
            torch.testing.assert_close(got[s], want, rtol=2e-4, atol=2e-6, msg=f"seed {s}: {name}")


def test_advantages_are_n_step_returns_with_the_step_limit_as_terminal():
    agent = AgentConfig(n_steps=3, n_envs=1, gamma=0.5, device="cpu")
    trainer = DeviceTrainer(agent, _seeds(agent, EnvConfig(d=2), (0,)), device="cpu")
    rollout = {"rewards": torch.tensor([[[1.0]], [[2.0]], [[4.0]]]), "values": torch.tensor([[[0.5]], [[1.0]], [[3.0]]]),
               "starts": torch.tensor([[[0.0]], [[0.0]], [[1.0]]]),  # an episode ends after step 1
               "last_values": torch.tensor([[8.0]]), "last_dones": torch.tensor([[0.0]])}
    advantages, returns = trainer._advantages(rollout)
    assert returns.flatten().tolist() == [1 + 0.5 * 2, 2, 4 + 0.5 * 8]
    assert advantages.flatten().tolist() == [2 - 0.5, 2 - 1, 8 - 3]


def test_a_seed_trains_the_same_alone_or_among_others():
    agent = AgentConfig(algorithm="GRUA2C", n_steps=20, n_envs=4, device="cpu")
    env = EnvConfig(d=2)
    together = _seeds(agent, env, (0, 1, 2))
    alone = _seeds(agent, env, (1,))
    DeviceTrainer(agent, together, device="cpu").train(4)
    DeviceTrainer(agent, alone, device="cpu").train(4)
    torch.testing.assert_close(_params(together[1]), _params(alone[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(together[1].curve, alone[0].curve)
    assert not torch.allclose(_params(together[0]), _params(together[1]))


def _run(algorithm: str, trainer: str = "device", **budget) -> RunSpec:
    agent = AgentConfig(algorithm=algorithm, n_envs=4, n_steps=5, device="cpu")
    return RunSpec("t", EnvConfig(d=2), agent, **{"updates": 12, "checkpoint_every": 6, **budget}, seed=1, trainer=trainer)


@pytest.mark.parametrize("algorithm", ["A2C", "GRUA2C", "RecurrentA2C"])
def test_an_interrupted_device_run_resumes_to_exactly_the_uninterrupted_result(algorithm, tmp_path, monkeypatch):
    run = _run(algorithm)
    whole = train(run, tmp_path / "whole", progress=False)
    interrupt_after_first_checkpoint(monkeypatch, lambda: train(run, tmp_path / "split", progress=False))
    resumed = train(run, tmp_path / "split", progress=False)
    np.testing.assert_array_equal(resumed.curve, whole.curve)
    for a, b in zip(resumed.returns, whole.returns):
        np.testing.assert_array_equal(a, b)
    assert resumed.trainer == {"path": "device", "seeds_together": 1,
                               "device": devicetrainer.describe(devicetrainer.training_device())}
    assert (RunFolder.of(run, tmp_path / "split").path / "tb" / "device").is_dir()


def test_device_runs_have_keys_of_their_own_and_the_trainer_says_what_it_covers():
    assert _run("GRUA2C").key != _run("GRUA2C", trainer="multiseed").key
    assert registry.run_spec("fig14-gru", "full", 0, trainer="device").key != registry.run_spec("fig14-gru", "full", 0).key
    with pytest.raises(ValueError, match="trainer 'device' implements .* noiseless listeners"):
        replace(_run("GRUA2C"), env=EnvConfig(d=2, closer_flip=0.1))
    with pytest.raises(ValueError, match="trainer 'device' implements"):
        _run("TRPO")


def test_a_device_runs_key_does_not_depend_on_the_device(monkeypatch):
    on_cpu = registry.run_spec("fig25-gru", "full", 3, trainer="device").key
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv(devicetrainer.DEVICE_ENV, "cuda:1")
    assert registry.run_spec("fig25-gru", "full", 3, trainer="device").key == on_cpu


def test_the_training_device_is_asked_for_or_found_never_guessed(monkeypatch):
    monkeypatch.delenv(devicetrainer.DEVICE_ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert devicetrainer.training_device().type == expected
    monkeypatch.setenv(devicetrainer.DEVICE_ENV, "cpu")
    assert devicetrainer.training_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device 'gpu0'.*accepted: 'cpu', 'cuda'"):
        devicetrainer.training_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA GPU"):
            devicetrainer.training_device("cuda")
        with pytest.raises(ValueError, match="replays CUDA graphs and needs a CUDA device; the device is cpu"):
            DeviceTrainer(AgentConfig(device="cpu"), _seeds(AgentConfig(device="cpu"), EnvConfig(d=2), (0,)), graph=True)


# The statistical check at a small budget: 5 seeds per path, the device path's mean final return
# inside the 95% bootstrap CI of the multi-seed path's (the larger comparison is in the README).
STATISTICAL = {"fig21": 300, "fig14-gru": 300}


@pytest.mark.parametrize("name", list(STATISTICAL))
def test_device_runs_end_where_the_multiseed_runs_end(name, tmp_path):
    updates = STATISTICAL[name]
    finals = {}
    for trainer in ("multiseed", "device"):
        specs = [replace(registry.run_spec(name, "quick", seed, trainer=trainer), updates=updates, checkpoint_every=updates)
                 for seed in range(5)]
        finals[trainer] = [r.final.mean for r in train_seeds(specs, tmp_path, progress=False)]
    mean, low, high = mean_ci(finals["multiseed"])
    device_mean = float(np.mean(finals["device"]))
    assert low <= device_mean <= high, (finals, (mean, low, high))
