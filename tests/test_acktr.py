"""ACKTR (musicrl.acktr): the K-FAC step, its KL clip and schedules, and that it learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from musicrl import acktr
from musicrl.agents import AgentConfig, make_agent


def _spd(n: int, seed: int) -> torch.Tensor:
    m = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return m @ m.t() / n + 0.1 * torch.eye(n, dtype=torch.float64)


def test_the_preconditioned_step_is_the_kronecker_factored_natural_gradient():
    a, g = _spd(3, 0), _spd(2, 1)
    grad = torch.tensor([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]], dtype=torch.float64)
    d_a, q_a = acktr.eigen(a)
    d_g, q_g = acktr.eigen(g)
    step = acktr.precondition(grad, d_g, q_g, d_a, q_a, damping=0.01)
    fisher = torch.kron(g, a) + 0.01 * torch.eye(6, dtype=torch.float64)  # row-major vec(W): G ⊗ A
    expected = torch.linalg.solve(fisher, grad.flatten()).view(2, 3)
    torch.testing.assert_close(step, expected)


def test_factors_and_running_average_on_tiny_inputs():
    a = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    torch.testing.assert_close(acktr.input_factor(a), torch.tensor([[5.0, 1.0], [1.0, 2.0]]))
    g = torch.tensor([[0.5], [-0.5]])  # a mean loss's gradients: B g = ±1
    torch.testing.assert_close(acktr.output_factor(g), torch.tensor([[1.0]]))
    torch.testing.assert_close(acktr.running_average(torch.tensor(1.0), torch.tensor(3.0), 0.99), torch.tensor(1.02))
    values, _ = acktr.eigen(torch.diag(torch.tensor([1e-8, 2.0])))
    torch.testing.assert_close(values, torch.tensor([0.0, 2.0]))


def _optimizer_with_statistics(grad_scale: float, **settings) -> tuple[torch.nn.Linear, acktr.KFAC]:
    layer = torch.nn.Linear(2, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.5]]))
        layer.bias.zero_()
    optimizer = acktr.KFAC(layer, **{"momentum": 0.0, **settings})
    state = optimizer.state[layer.weight]
    state["aa"], state["gg"] = torch.eye(2), torch.tensor([[4.0]])
    layer.weight.grad = torch.tensor([[1.0, 2.0]]) * grad_scale
    layer.bias.grad = torch.tensor([1.0]) * grad_scale
    return layer, optimizer


@pytest.mark.parametrize("grad_scale, clipped", [(1e-3, False), (1.0, True)])
def test_the_kl_clip_scales_the_step(grad_scale, clipped):
    layer, optimizer = _optimizer_with_statistics(grad_scale)
    before = layer.weight.detach().clone()
    optimizer.step()
    # G ⊗ A = 4 I, damping 0.01: the step is ∇ / 4.01 (bias: ∇b / 4.01 too)
    natural_w, natural_b = torch.tensor([[1.0, 2.0]]) * grad_scale / 4.01, torch.tensor([1.0]) * grad_scale / 4.01
    vg = 0.25**2 * ((natural_w * torch.tensor([[1.0, 2.0]]) * grad_scale).sum() + (natural_b * grad_scale).sum())
    nu = min(1.0, float(np.sqrt(0.001 / float(vg))))
    assert (nu < 1.0) == clipped
    torch.testing.assert_close(layer.weight.detach() - before, -0.25 * nu * natural_w)
    torch.testing.assert_close(layer.bias.detach(), -0.25 * nu * natural_b)


def test_momentum_is_sgds_with_the_learning_rate_times_one_minus_momentum():
    layer, optimizer = _optimizer_with_statistics(1e-3, momentum=0.9)
    start = layer.weight.detach().clone()
    optimizer.step()
    layer.weight.grad = torch.tensor([[1.0, 2.0]]) * 1e-3
    layer.bias.grad = torch.tensor([1.0]) * 1e-3
    optimizer.step()
    step = torch.tensor([[1.0, 2.0]]) * 1e-3 / 4.01
    torch.testing.assert_close(layer.weight.detach() - start, -0.025 * (step + (0.9 * step + step)))


def _record_updates(optimizer: acktr.KFAC, model: torch.nn.Module, n: int) -> tuple[list[bool], list[bool]]:
    """Run ``n`` updates as ACKTR.train does; per update, whether the statistics and the eigenbases changed."""
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    stats, bases = [], []
    for _ in range(n):
        previous_aa = optimizer.state[model.weight].get("aa")
        previous_q = optimizer.state[model.weight].get("q_a")
        optimizer.recording(True)
        x = x + 1.0
        out = model(x)
        optimizer.recording(False)
        if optimizer.takes_statistics():
            optimizer.acc_stats = True
            out.sum().backward(retain_graph=True)
            optimizer.acc_stats = False
        optimizer.zero_grad()
        out.pow(2).mean().backward()
        optimizer.step()
        stats.append(previous_aa is None or not torch.equal(previous_aa, optimizer.state[model.weight]["aa"]))
        bases.append(previous_q is None or optimizer.state[model.weight]["q_a"] is not previous_q)
    return stats, bases


def test_statistics_every_ts_and_inverses_every_tf_updates():
    model = torch.nn.Linear(2, 2)
    stats, bases = _record_updates(acktr.KFAC(model, Ts=2, Tf=3), model, 7)
    assert stats == [True, False, True, False, True, False, True]
    assert bases == [True, False, False, True, False, False, True]


def test_the_optimizer_state_round_trips_through_its_state_dict():
    model = torch.nn.Linear(2, 2)
    optimizer = acktr.KFAC(model)
    _record_updates(optimizer, model, 3)
    copy = torch.nn.Linear(2, 2)
    copy.load_state_dict(model.state_dict())
    restored = acktr.KFAC(copy)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.steps == 3
    for key in ("aa", "gg", "q_a", "d_g", "momentum_buffer"):
        torch.testing.assert_close(restored.state[copy.weight][key], optimizer.state[model.weight][key])


class Match(gym.Env):
    """A contextual bandit: the observation shows one of four cues; naming it earns 1."""

    observation_space = gym.spaces.Box(0, 1, (4,), np.float32)
    action_space = gym.spaces.Discrete(4)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(4))
        return np.eye(4, dtype=np.float32)[self.cue], {}

    def step(self, action):
        return np.zeros(4, np.float32), float(action == self.cue), True, False, {}


def test_acktr_learns_a_contextual_bandit():
    env = DummyVecEnv([Match for _ in range(4)])
    model = make_agent(AgentConfig(algorithm="ACKTR", n_steps=5, n_envs=4, device="cpu"), env, seed=0)
    named = lambda: sum(int(model.predict(np.eye(4, dtype=np.float32)[[c]], deterministic=True)[0][0] == c) for c in range(4))
    before = named()
    model.learn(150 * 5 * 4)
    assert before < 4 and named() == 4
    assert model.policy.optimizer.steps == 150
