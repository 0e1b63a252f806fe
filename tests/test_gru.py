"""GRU-A2C, the thesis's own agent: it remembers, and its update is the A2C loss's gradient."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.vec_env import DummyVecEnv

from musicrl import agents
from musicrl.envs import EnvConfig


class Recall(gym.Env):
    """Step 0 shows a cue (-1 or +1), step 1 shows nothing; the action at step 1 earns 1 if it names the cue."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return np.array([2 * self.cue - 1, 1], np.float32), {}

    def step(self, action):
        self.t += 1
        reward = float(action == self.cue) if self.t == 2 else 0.0
        return np.zeros(2, np.float32), reward, self.t == 2, False, {}


def _recalled(model) -> int:
    """Cues named at step 1, deterministic actions, over both cues."""
    named = 0
    for cue in (0, 1):
        _, state = model.predict(np.array([[2 * cue - 1, 1]], np.float32), episode_start=np.ones(1, bool), deterministic=True)
        action, _ = model.predict(np.zeros((1, 2), np.float32), state=state, episode_start=np.zeros(1, bool), deterministic=True)
        named += int(action[0] == cue)
    return named


def _trained(algorithm: str):
    config = agents.AgentConfig(algorithm=algorithm, n_steps=6, n_envs=8, learning_rate=3e-3, ent_coef=0.0,
                                normalize=False, device="cpu")
    env = DummyVecEnv([Recall] * config.n_envs)
    env.seed(0)
    model = agents.make_agent(config, env, seed=0)
    model.learn(300 * config.steps_per_update)
    return model


def test_gru_solves_a_memory_task_that_feed_forward_a2c_cannot():
    assert _recalled(_trained("GRUA2C")) == 2
    assert _recalled(_trained("A2C")) == 1  # the same observation at step 1 for both cues: one action for both


def _hand_loss(policy, obs, actions, starts, advantages, returns, config) -> torch.Tensor:
    """The A2C loss written out: torch.nn.GRU's equations step by step, the tanh heads, the softmax."""
    p = dict(policy.named_parameters())
    E, T, _ = obs.shape
    h = torch.zeros(E, config.hidden)
    latents = []
    for t in range(T):
        h = (1 - starts[:, t, None]) * h
        r_x, z_x, n_x = (obs[:, t] @ p["lstm_actor.weight_ih_l0"].T + p["lstm_actor.bias_ih_l0"]).chunk(3, -1)
        r_h, z_h, n_h = (h @ p["lstm_actor.weight_hh_l0"].T + p["lstm_actor.bias_hh_l0"]).chunk(3, -1)
        r, z = torch.sigmoid(r_x + r_h), torch.sigmoid(z_x + z_h)
        h = (1 - z) * torch.tanh(n_x + r * n_h) + z * h
        latents.append(h)
    latent = torch.stack(latents, 1).reshape(E * T, -1)

    def mlp(x, net):
        x = torch.tanh(x @ p[f"mlp_extractor.{net}.0.weight"].T + p[f"mlp_extractor.{net}.0.bias"])
        return torch.tanh(x @ p[f"mlp_extractor.{net}.2.weight"].T + p[f"mlp_extractor.{net}.2.bias"])

    logits = mlp(latent, "policy_net") @ p["action_net.weight"].T + p["action_net.bias"]
    values = (mlp(latent, "value_net") @ p["value_net.weight"].T + p["value_net.bias"]).squeeze(-1)
    log_probs = torch.log_softmax(logits, -1)
    chosen = log_probs.gather(1, actions[:, None]).squeeze(1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return -(advantages * chosen).mean() + config.vf_coef * ((returns - values) ** 2).mean() - config.ent_coef * entropy.mean()


def test_gru_update_is_the_a2c_loss_gradient_with_the_critic_into_the_gru():
    config = agents.AgentConfig(algorithm="GRUA2C", n_steps=5, n_envs=3, normalize=False, device="cpu")
    env_config = EnvConfig(d=2, obs="GridObs")
    model = agents.make_agent(config, agents.make_training_env(env_config, config, seed=0), seed=0)
    policy = model.policy
    rng = np.random.default_rng(1)
    E, T, k = config.n_envs, config.n_steps, model.observation_space.shape[0]
    obs = torch.as_tensor(rng.normal(size=(E, T, k)), dtype=torch.float32)
    actions = torch.as_tensor(rng.integers(0, env_config.n_positions, size=E * T))
    starts = torch.zeros(E, T)
    starts[1, 3] = 1.0  # an episode ends inside the rollout of env 1
    advantages = torch.as_tensor(rng.normal(size=E * T), dtype=torch.float32)
    returns = torch.as_tensor(rng.normal(size=E * T), dtype=torch.float32)

    zeros = torch.zeros(1, E, config.hidden)
    values, log_prob, entropy = policy.evaluate_actions(obs.reshape(E * T, k), actions, RNNStates((zeros, zeros), (zeros, zeros)),
                                                        starts.reshape(-1))
    loss = (-(advantages * log_prob).mean() + config.vf_coef * ((returns - values.flatten()) ** 2).mean()
            - config.ent_coef * entropy.mean())
    got = torch.autograd.grad(loss, list(policy.parameters()), retain_graph=True)
    expected = torch.autograd.grad(_hand_loss(policy, obs, actions, starts, advantages, returns, config), list(policy.parameters()))
    for name, a, b in zip(dict(policy.named_parameters()), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

    value_only = torch.autograd.grad(((returns - values.flatten()) ** 2).mean(), policy.lstm_actor.weight_hh_l0)[0]
    assert value_only.abs().max() > 1e-4  # the critic trains the GRU, as in ikostrikov's A2C


def test_ikostrikovs_gru_initialisation_is_a_variant_with_its_own_key():
    import torch

    from musicrl import registry
    from musicrl.agents import AgentConfig, make_agent, make_training_env

    base = registry.run_spec("fig14-gru", "full", 0)
    variant = registry.own_run_spec("fig14-gru", "full", 0, {"agent.gru_init": "orthogonal"})
    assert "gru_init" not in base.agent.to_dict() and variant.agent.to_dict()["gru_init"] == "orthogonal"
    assert variant.key != base.key and variant.name == "fig14-gru+gru_init=orthogonal"
    agent = AgentConfig(algorithm="GRUA2C", n_envs=2, n_steps=5, device="cpu", gru_init="orthogonal")
    model = make_agent(agent, make_training_env(EnvConfig(d=2), agent, 0), seed=0)
    gru = model.policy.lstm_actor
    for name, param in gru.named_parameters():
        if "weight" in name:
            torch.testing.assert_close(param.T @ param, torch.eye(param.shape[1]), atol=1e-5, rtol=0)
        else:
            assert torch.count_nonzero(param) == 0
    with pytest.raises(ValueError, match="gru_init='orthogonal' initialises GRUA2C's GRU; A2C has none"):
        AgentConfig(algorithm="A2C", gru_init="orthogonal")
