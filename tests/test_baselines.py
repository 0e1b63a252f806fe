from dataclasses import replace

import numpy as np
import pytest

from musicrl import baselines, users
from musicrl.envs import EPISODE_STEPS, EnvConfig
from musicrl.evaluation import evaluate_policy, example_episode, rollout

SETTINGS_2D = [EnvConfig(d=2, preset=p, reward=r) for p in ("TopTarget", "WiderTopTarget") for r in ("Bullseye", "Rating")]


@pytest.fixture(scope="module")
def planners():
    return {config: baselines.BayesPlanner(config) for config in SETTINGS_2D}


@pytest.mark.parametrize("config", SETTINGS_2D, ids=str)
def test_optimal_policy_achieves_the_programme_value_and_beats_every_baseline(config, planners):
    planner = planners[config]
    optimal = evaluate_policy(baselines.OptimalPolicy(config, planner), config)
    assert optimal.mean == pytest.approx(planner.expected_return(), abs=1e-9)
    for name in ("random", "stay", "greedy", "lookahead"):
        assert evaluate_policy(baselines.make_baseline(name, config), config).mean <= optimal.mean + 1e-9


@pytest.mark.parametrize("config", SETTINGS_2D, ids=str)
def test_relaxation_bounds_lie_above_the_optimum_and_tighten(config, planners):
    exact = planners[config].expected_return()
    bounds = [baselines.BayesPlanner(config, reveal_after=m).expected_return() for m in (0, 1, 2, 3)]
    assert bounds[0] == config.max_return
    assert all(b >= exact - 1e-9 for b in bounds)
    assert all(x >= y for x, y in zip(bounds, bounds[1:]))
    assert bounds[1] > exact  # the bound is not trivially tight


def test_stay_policy_returns_the_start_rating_reward_for_every_step():
    config = EnvConfig(d=2, preset="WiderTopTarget", reward="Rating")
    result = evaluate_policy(baselines.StayPolicy(config), config)
    start_ratings = users.rating_table(2, "WiderTopTarget")[:, 12].astype(float)
    assert np.array_equal(result.returns, EPISODE_STEPS * start_ratings**2)


def test_greedy_moves_to_the_highest_expected_reward():
    config = EnvConfig(d=2, preset="TopTarget", reward="Rating")
    episode = example_episode(baselines.GreedyPolicy(config), config, target=0)
    ratings = users.rating_table(2, "TopTarget")
    consistent = ratings[:, 12] == episode.ratings[0]
    expected = (ratings[consistent].astype(float) ** 2).mean(0)
    assert expected[episode.positions[1]] == expected.max()


def test_beliefs_always_contain_the_true_target():
    config = EnvConfig(d=3, preset="WiderTopTarget", reward="Bullseye")
    policy = baselines.RandomPolicy(config, seed=1)
    from musicrl.envs import PreferenceSearchVecEnv

    env = PreferenceSearchVecEnv(125, config, seed=0)
    env.set_options([{"target": t} for t in range(125)])
    obs, state, starts = env.reset(), None, np.ones(125, bool)
    for _ in range(EPISODE_STEPS - 1):
        actions, state = policy.predict(obs, state, starts)
        assert state.consistent[np.arange(125), np.arange(125)].all()
        obs, _, starts, _ = env.step(actions)


def test_lookahead_fixes_greedys_rating_trap_in_2d():
    config = EnvConfig(d=2, preset="TopTarget", reward="Rating")
    greedy = evaluate_policy(baselines.GreedyPolicy(config), config).mean
    lookahead = evaluate_policy(baselines.LookaheadPolicy(config), config).mean
    assert lookahead > greedy + 10


def test_random_baseline_is_seeded():
    config = EnvConfig(d=2)
    one = evaluate_policy(baselines.RandomPolicy(config, seed=3), config).returns
    two = evaluate_policy(baselines.RandomPolicy(config, seed=3), config).returns
    assert np.array_equal(one, two)


def test_bad_baseline_requests_are_rejected():
    with pytest.raises(ValueError, match="unknown baseline 'smart'; accepted: 'random', 'stay'"):
        baselines.make_baseline("smart", EnvConfig())
    with pytest.raises(ValueError, match="baselines read GridObs observations"):
        baselines.GreedyPolicy(EnvConfig(obs="BoardObs"))
    with pytest.raises(ValueError, match="reveal_after must be None or in 0..21"):
        baselines.BayesPlanner(EnvConfig(), reveal_after=22)


def test_planners_refuse_a_noisy_listener_and_the_naive_baselines_face_one():
    from musicrl.evaluation import rollout

    noisy = EnvConfig(d=2, rating_noise=0.2, closer_flip=0.1)
    for name in ("lookahead", "optimal"):
        with pytest.raises(ValueError, match="deterministic user"):
            baselines.make_baseline(name, noisy)
    clean = EnvConfig(d=2)
    targets = list(range(25)) * 2
    for name in ("random", "stay", "greedy"):  # no feedback used, or every answer trusted: as built for the clean user
        on_noise, _ = rollout(baselines.make_baseline(name, noisy), noisy, targets)
        as_clean, _ = rollout(baselines.make_baseline(name, clean), noisy, targets)
        np.testing.assert_array_equal(on_noise, as_clean)


@pytest.mark.parametrize("d, preset, reward", [(2, "WiderTopTarget", "Bullseye"), (2, "TopTarget", "Rating"), (3, "WiderTopTarget", "Bullseye")])
def test_the_filter_is_greedy_for_a_deterministic_user(d, preset, reward):
    config = EnvConfig(d=d, preset=preset, reward=reward, weights=(2,) + (1,) * (d - 1) if reward == "Rating" else None)
    filtered = evaluate_policy(baselines.FilterPolicy(config), config)
    greedy = evaluate_policy(baselines.GreedyPolicy(config), config)
    np.testing.assert_array_equal(filtered.returns, greedy.returns)


def test_the_filter_copes_with_noise_where_greedy_on_consistency_cannot():
    from musicrl.evaluation import rollout

    noisy = EnvConfig(d=2, rating_noise=0.2, closer_flip=0.1)
    targets = list(range(25)) * 8
    filtered, _ = rollout(baselines.FilterPolicy(noisy), noisy, targets)
    naive, _ = rollout(baselines.GreedyPolicy(EnvConfig(d=2)), noisy, targets)  # believes every answer
    assert filtered.mean() > naive.mean() + 10
    likelihood = baselines.rating_likelihood(0.2)
    np.testing.assert_allclose(likelihood.sum(axis=0), 1.0)
    assert likelihood[0, 0] == pytest.approx(0.9) and likelihood[2, 1] == pytest.approx(0.1)


@pytest.mark.parametrize("config", [EnvConfig(d=2), EnvConfig(d=2, reward="Rating", preset="TopTarget", weights=(2, 1)),
                                    EnvConfig(d=3, action="MultiDiscrete")])
def test_sampled_greedy_is_greedy_when_its_samples_cover_everything(config):
    sampled = evaluate_policy(baselines.SampledGreedyPolicy(config, candidates=125, belief_sample=125), config)
    greedy = evaluate_policy(baselines.GreedyPolicy(replace(config, action="Discrete")), replace(config, action="Discrete"))
    np.testing.assert_array_equal(sampled.returns, greedy.returns)


def test_sampled_greedy_finds_targets_at_d_6():
    config = EnvConfig(d=6, action="MultiDiscrete")
    policy = baselines.SampledGreedyPolicy(config, candidates=64, belief_sample=64)
    returns, episodes = rollout(policy, config, range(0, 5**6, 997))
    assert returns.mean() > 100 and all(e.found for e in episodes)
    with pytest.raises(ValueError, match="SampledGreedyPolicy reads GridObs from a deterministic user with d <= 8"):
        baselines.SampledGreedyPolicy(EnvConfig(d=9, action="MultiDiscrete"))
