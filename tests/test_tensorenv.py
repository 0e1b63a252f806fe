"""The tensor environment equals the numpy one step for step (tensorenv.TensorPreferenceSearch)."""

import numpy as np
import pytest
import torch

from musicrl import users
from musicrl.envs import EnvConfig, PreferenceSearchVecEnv
from musicrl.tensorenv import TensorPreferenceSearch, supports

CONFIGS = [
    EnvConfig(d=2),
    EnvConfig(d=2, obs="BoardObs"),
    EnvConfig(d=3, preset="TopTarget", reward="Rating"),
    EnvConfig(d=3, obs="BoardObs", action="MultiDiscrete", reward="Rating"),
    EnvConfig(d=4, action="MultiDiscrete"),
    EnvConfig(d=4, targets=(0, 7, 311, 624)),
    EnvConfig(d=3, bands=(2, 10, 40, 70), weights=(1, 2, 3)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c.to_dict()))
def test_steps_equal_the_numpy_env_on_random_actions_and_targets(config):
    n = 6
    numpy_env = PreferenceSearchVecEnv(n, config, seed=3)
    tensor_env = TensorPreferenceSearch(config, n)
    expected = numpy_env.reset()
    observed = tensor_env.reset(torch.as_tensor(users.position_to_index(numpy_env.targets)))
    np.testing.assert_array_equal(observed.numpy(), expected)
    rng = np.random.default_rng(0)
    for _ in range(70):  # three episodes and some
        if config.action == "Discrete":
            actions = rng.integers(0, config.n_positions, size=n)
        else:
            actions = rng.integers(0, users.LEVELS, size=(n, config.d))
        obs, rewards, dones = numpy_env.step_arrays(actions)
        next_targets = torch.as_tensor(users.position_to_index(numpy_env.targets))
        t_obs, t_rewards, t_dones = tensor_env.step(torch.as_tensor(actions), next_targets)
        np.testing.assert_array_equal(t_obs.numpy(), obs)
        np.testing.assert_array_equal(t_rewards.numpy(), rewards)
        np.testing.assert_array_equal(t_dones.numpy(), dones)


def test_draw_is_uniform_over_the_grid_or_the_target_list():
    env = TensorPreferenceSearch(EnvConfig(d=2, targets=(3, 9, 20)), 4)
    assert env.draw(torch.tensor([0.0, 0.34, 0.67, 0.999999])).tolist() == [3, 9, 20, 20]
    grid = TensorPreferenceSearch(EnvConfig(d=2), 2)
    assert grid.draw(torch.tensor([0.0, 0.99999])).tolist() == [0, 24]


def test_noisy_listeners_are_refused_with_the_reason():
    noisy = EnvConfig(d=2, rating_noise=0.1)
    assert not supports(noisy)
    with pytest.raises(ValueError, match="noiseless listeners.*rating_noise=0.1"):
        TensorPreferenceSearch(noisy, 2)
