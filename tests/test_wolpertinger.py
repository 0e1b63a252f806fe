import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import musicrl  # noqa: F401
from musicrl import users
from musicrl.agents import AgentConfig, NormalizedPolicy, make_training_env
from musicrl.envs import EnvConfig
from musicrl.wolpertinger import LevelActions, Wolpertinger, box_to_levels, k_nearest_levels, levels_to_box


@pytest.mark.parametrize("d, k", [(1, 3), (2, 7), (3, 10), (4, 1)])
def test_k_nearest_levels_are_the_k_nearest_grid_points(d, k):
    grid = levels_to_box(users.all_positions(d).astype(np.float64))
    proto = torch.as_tensor(np.random.default_rng(d).uniform(-1.1, 1.1, size=(50, d)))
    found = k_nearest_levels(proto, k)
    assert found.shape == (50, k, d) and found.min() >= 0 and found.max() <= 4
    for row, levels in zip(proto.numpy(), found.numpy()):
        assert len({tuple(x) for x in levels}) == k
        got = np.sort(((levels_to_box(levels.astype(float)) - row) ** 2).sum(1))
        best = np.sort(((grid - row) ** 2).sum(1))[:k]
        np.testing.assert_allclose(got, best, rtol=0, atol=1e-12)


def test_level_actions_round_to_the_nearest_level():
    levels = np.array(list(itertools.product(range(5), repeat=2)))
    assert np.array_equal(box_to_levels(levels_to_box(levels)), levels)
    assert np.array_equal(box_to_levels([[-0.8, 0.3]]), [[0, 3]])
    with pytest.raises(ValueError, match="LevelActions wraps an env with MultiDiscrete actions"):
        LevelActions(make_training_env(EnvConfig(d=2), AgentConfig(normalize=False), seed=0))
    with pytest.raises(ValueError, match="Wolpertinger picks one level per feature"):
        make_training_env(EnvConfig(d=2), AgentConfig(algorithm="Wolpertinger"), seed=0)


class Bandit(gym.Env):
    """One step; reward minus the Manhattan distance of the chosen levels to (4, 0, 2)."""

    observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
    action_space = gym.spaces.MultiDiscrete([5, 5, 5])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), -float(np.abs(np.asarray(action) - [4, 0, 2]).sum()), True, False, {}


def test_wolpertinger_finds_the_best_action_of_a_bandit():
    torch.manual_seed(0)
    env = LevelActions(DummyVecEnv([Bandit] * 4))
    model = Wolpertinger("MlpPolicy", env, k_nearest=4, learning_starts=200, batch_size=64, train_freq=(1, "step"),
                         gradient_steps=1, learning_rate=3e-3, policy_kwargs={"net_arch": [32, 32]}, seed=0)
    model.learn(3000)
    action, _ = model.predict(np.zeros((1, 1), np.float32), deterministic=True)
    assert box_to_levels(action).tolist() == [[4, 0, 2]]


def test_the_evaluation_policy_stacks_frames_as_vec_frame_stack_does():
    class Echo:
        def predict(self, observation, state=None, episode_start=None, deterministic=False):
            return observation, state

    config, agent = EnvConfig(d=2), AgentConfig(n_envs=3, frames=3, normalize=False)
    env = make_training_env(config, agent, seed=0)
    policy = NormalizedPolicy(Echo(), None, frames=3)
    rng = np.random.default_rng(0)
    observation, raw = env.reset(), env.unwrapped._observations()
    stacked, state = policy.predict(raw, None, np.ones(3, bool))
    for _ in range(30):
        np.testing.assert_array_equal(stacked, observation)
        observation, _, dones, _ = env.step(rng.integers(0, 25, size=3))
        stacked, state = policy.predict(env.unwrapped._observations(), state, dones)


def test_new_agent_options_keep_the_thesis_hashes():
    assert set(AgentConfig().to_dict()) == {"algorithm", "n_steps", "n_envs", "learning_rate", "rms_alpha", "rms_eps", "gamma",
                                            "ent_coef", "vf_coef", "max_grad_norm", "hidden", "normalize", "device"}
    assert AgentConfig(algorithm="Wolpertinger", frames=4).to_dict()["k_nearest"] == 8
