import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from musicrl import users
from musicrl.envs import ENV_ID, EPISODE_STEPS, EnvConfig, PreferenceSearchEnv, PreferenceSearchVecEnv

CONFIGS = [
    EnvConfig(d=d, preset=p, reward=r, obs=o, action=a)
    for d in (1, 2, 3)
    for p in ("TopTarget", "WiderTopTarget")
    for r in ("Bullseye", "Rating")
    for o in ("GridObs", "BoardObs")
    for a in ("Discrete", "MultiDiscrete")
]


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_passes_gymnasium_and_sb3_checkers(config):
    gym_check_env(PreferenceSearchEnv(**config.to_dict()), skip_render_check=True)
    sb3_check_env(PreferenceSearchEnv(**config.to_dict()))


def test_registered_id_takes_keyword_arguments():
    env = gym.make(ENV_ID, d=3, preset="TopTarget", reward="Rating", obs="BoardObs")
    assert env.unwrapped.config == EnvConfig(d=3, preset="TopTarget", reward="Rating", obs="BoardObs")
    assert env.observation_space.shape == (125,)
    assert env.action_space == gym.spaces.Discrete(125)


def test_spaces():
    assert PreferenceSearchEnv(d=4).observation_space.shape == (6,)
    assert PreferenceSearchEnv(d=4, action="MultiDiscrete").action_space == gym.spaces.MultiDiscrete([5] * 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d": 0}, "d .* >= 1, got 0"),
        ({"preset": "Wide"}, "unknown preset 'Wide'; accepted: 'TopTarget', 'WiderTopTarget'"),
        ({"reward": "Dense"}, "unknown reward 'Dense'; accepted: 'Bullseye', 'Rating'"),
        ({"obs": "Pixels"}, "unknown observation 'Pixels'; accepted: 'GridObs', 'BoardObs'"),
        ({"action": "Box"}, "unknown action space 'Box'"),
    ],
)
def test_bad_configuration_names_value_and_accepted(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreferenceSearchEnv(**kwargs)


def test_target_outside_grid_at_reset_is_rejected():
    with pytest.raises(ValueError, match="outside the grid"):
        PreferenceSearchEnv(d=2).reset(options={"target": (5, 1)})


def test_episode_rules():
    env = PreferenceSearchEnv(d=2, preset="TopTarget", reward="Bullseye")
    obs, info = env.reset(options={"target": (0, 4)})
    assert obs.tolist() == [2, 2, 0, users.SimulatedUser((0, 4), "TopTarget").rating(np.array([2, 2]))]
    obs, reward, terminated, truncated, info = env.step(users.position_to_index(np.array([1, 3])))
    assert obs[:3].tolist() == [1, 3, 1] and reward == 0
    total = 0.0
    for step in range(2, EPISODE_STEPS + 1):
        obs, reward, terminated, truncated, info = env.step(4)  # (0, 4): the target
        total += reward
        assert not terminated and truncated == (step == EPISODE_STEPS)
    assert obs[-1] == 4 and obs[-2] == 0 and total == 10 * (EPISODE_STEPS - 1)


def test_same_seed_same_targets_and_options_override():
    a, b = PreferenceSearchEnv(d=3), PreferenceSearchEnv(d=3)
    targets_a = [a.reset(seed=7)[1]["target"]] + [a.reset()[1]["target"] for _ in range(5)]
    targets_b = [b.reset(seed=7)[1]["target"]] + [b.reset()[1]["target"] for _ in range(5)]
    assert targets_a == targets_b and len(set(targets_a)) > 1
    assert a.reset(options={"target": 17})[1]["target"] == 17


def test_multidiscrete_equals_discrete():
    discrete, factored = PreferenceSearchEnv(d=3), PreferenceSearchEnv(d=3, action="MultiDiscrete")
    discrete.reset(options={"target": 40})
    factored.reset(options={"target": 40})
    for index in np.random.default_rng(0).integers(0, 125, size=30):
        one = discrete.step(index)
        two = factored.step(users.index_to_position(index, 3))
        assert np.array_equal(one[0], two[0]) and one[1:4] == two[1:4]


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 3),
    preset=st.sampled_from(["TopTarget", "WiderTopTarget"]),
    reward=st.sampled_from(["Bullseye", "Rating"]),
    seed=st.integers(0, 10_000),
)
def test_board_holds_exactly_the_ratings_of_visited_positions_and_returns_are_bounded(d, preset, reward, seed):
    env = PreferenceSearchEnv(d=d, preset=preset, reward=reward, obs="BoardObs")
    grid = PreferenceSearchEnv(d=d, preset=preset, reward=reward)
    board, info = env.reset(seed=seed)
    grid.reset(options={"target": info["target"]})
    visited = {info["position"]: info["rating"]}
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(EPISODE_STEPS):
        action = int(rng.integers(0, 5**d)) if rng.random() < 0.8 else info["target"]
        board, reward_value, _, truncated, info = env.step(action)
        grid_obs = grid.step(action)[0]
        visited[action] = info["rating"]
        assert grid_obs[-1] == info["rating"]
        total += reward_value
        expected = np.full(5**d, -1.0)
        expected[list(visited)] = list(visited.values())
        assert np.array_equal(board, expected)
    assert truncated
    assert 0 <= total <= (210 if reward == "Bullseye" else 336)


@settings(max_examples=25, deadline=None)
@given(config=st.sampled_from(CONFIGS), n=st.integers(1, 9), seed=st.integers(0, 10_000))
def test_batched_env_equals_n_single_envs(config, n, seed):
    assert_batched_equals_single(config, n, seed)


def assert_batched_equals_single(config: EnvConfig, n: int, seed: int) -> None:
    """Random actions for two episodes and more: observations, rewards, dones and infos all equal."""
    batched = PreferenceSearchVecEnv(n, config, seed=seed)
    single = DummyVecEnv([lambda: PreferenceSearchEnv(**config.to_dict()) for _ in range(n)])
    single.seed(seed)
    assert np.array_equal(batched.reset(), single.reset())
    rng = np.random.default_rng(seed)
    for _ in range(2 * EPISODE_STEPS + 5):
        if config.action == "MultiDiscrete":
            actions = rng.integers(0, 5, size=(n, config.d))
        else:
            actions = rng.integers(0, 5**config.d, size=n)
        got, expected = batched.step(actions), single.step(actions)
        for x, y in zip(got[:3], expected[:3]):
            assert np.array_equal(x, y)
        for info_got, info_expected in zip(got[3], expected[3]):
            assert info_got.keys() == info_expected.keys()
            for key in info_got:
                assert np.array_equal(info_got[key], info_expected[key])


def test_batched_env_takes_per_env_targets():
    env = PreferenceSearchVecEnv(25, EnvConfig(d=2), seed=0)
    env.set_options([{"target": i} for i in range(25)])
    env.reset()
    assert [info["target"] for info in env.reset_infos] == list(range(25))


def test_batched_env_rejects_bad_input():
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        PreferenceSearchVecEnv(0)
    env = PreferenceSearchVecEnv(2, EnvConfig(d=2), seed=0)
    env.reset()
    with pytest.raises(ValueError, match="actions must lie in 0..24"):
        env.step(np.array([0, 25]))


def test_sb3_trains_by_env_id_and_gymnasium_makes_vector_envs():
    """New-user paths: SB3 makes the env by id with render_mode='rgb_array'; gym.make_vec works."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "musicrl/PreferenceSearch-v0", n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    assert model.num_timesteps >= 64
    vec = gym.make_vec("musicrl/PreferenceSearch-v0", num_envs=2, d=3)
    observations, _ = vec.reset(seed=0)
    observations, rewards, _, _, _ = vec.step(np.array([0, 124]))
    assert observations.shape == (2, 5) and rewards.shape == (2,)
    vec.close()


def test_rgb_array_render_shows_target_position_and_rating():
    from musicrl.envs import BOARD_LEFT, BOARD_TOP, CELL, COLOURS, LEVELS, cell_centre

    env = PreferenceSearchEnv(d=3, render_mode="rgb_array")
    env.reset(seed=0, options={"target": (0, 4, 2)})
    image = env.render()
    assert image.dtype == np.uint8 and min(image.shape[:2]) >= 256 and CELL >= 32
    cell = lambda feature, level: tuple(image[cell_centre(feature, level)])
    assert cell(0, 0) == COLOURS["target"] and cell(1, 4) == COLOURS["target"]  # target only
    assert cell(2, 2) == COLOURS["both"]  # start (2, 2, 2) meets the target's level 2
    assert cell(0, 2) == COLOURS["position"]  # the position only
    env.step(np.int64(users.position_to_index(np.array([0, 4, 2]))))
    frame = env.render()
    bar = frame[BOARD_TOP + LEVELS * CELL + 8 + CELL // 4, BOARD_LEFT + 2: frame.shape[1] - 18]
    assert (bar == COLOURS["rating"]).all()  # rating 4: a full bar
    assert not np.array_equal(frame[:BOARD_TOP], image[:BOARD_TOP])  # the step number changed
    from musicrl.envs import LEGEND, legend_swatch

    for item, (_, colour) in enumerate(LEGEND):  # the legend names every colour of the board
        assert tuple(frame[legend_swatch(item, frame.shape[0])]) == COLOURS[colour]


def test_record_video_writes_an_episode(tmp_path):
    """gymnasium's RecordVideo (moviepy, pinned beside pillow) records the rgb_array frames."""
    import gymnasium as gym

    env = gym.wrappers.RecordVideo(gym.make("musicrl/PreferenceSearch-v0", render_mode="rgb_array"), str(tmp_path / "videos"),
                                   episode_trigger=lambda episode: episode == 0, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        done = terminated or truncated
    env.close()
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    assert gym.spec("musicrl/PreferenceSearch-v0").max_episode_steps == 21


def test_non_integer_actions_are_errors():
    env = PreferenceSearchEnv(d=2)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be integers .* got 3.7"):
        env.step(3.7)
    with pytest.raises(ValueError, match="actions must be integers"):
        env.step(np.array([1.0, 2.0]))
    vec = PreferenceSearchVecEnv(2, EnvConfig(d=2), seed=0)
    vec.reset()
    with pytest.raises(ValueError, match="actions must be integers"):
        vec.step(np.array([0.5, 1.0]))


def test_sizes_the_spaces_cannot_hold_are_clear_errors():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"action 'Discrete' enumerates all 5\*\*d positions .* up to d=8 .*'MultiDiscrete'"):
        gym.make("musicrl/PreferenceSearch-v0", d=9)
    with pytest.raises(ValueError, match="d=40 is too large: positions are numbered by 64-bit integers, so d <= 27"):
        gym.make("musicrl/PreferenceSearch-v0", d=40)
    with pytest.raises(ValueError, match="observation 'BoardObs'"):
        EnvConfig(d=9, obs="BoardObs", action="MultiDiscrete")
    env = PreferenceSearchEnv(d=12, action="MultiDiscrete")
    observation, info = env.reset(seed=0)
    assert observation.shape == (14,) and env.step(np.full(12, 2))[0].shape == (14,)


NOISY = [EnvConfig(d=2, rating_noise=0.3, closer_flip=0.2), EnvConfig(d=3, obs="BoardObs", rating_noise=1.0),
         EnvConfig(d=2, action="MultiDiscrete", closer_flip=0.5, bands=(2, 10, 40, 70)),
         EnvConfig(d=3, weights=(3, 1, 2), rating_noise=0.2), EnvConfig(d=9, action="MultiDiscrete", weights=(1,) * 8 + (4,))]


@pytest.mark.parametrize("config", NOISY)
def test_noisy_batched_env_equals_single_envs(config):
    assert_batched_equals_single(config, n=3, seed=7)  # infos include true_rating


def test_noise_perturbs_what_the_agent_sees_at_the_stated_rates_but_not_the_reward():
    config = EnvConfig(d=2, rating_noise=0.3, closer_flip=0.2)
    env = PreferenceSearchEnv(**config.to_dict())
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    off = flipped = rewards_ok = 0
    steps = 4000
    clean = PreferenceSearchEnv(d=2)
    for t in range(steps):
        if t % EPISODE_STEPS == 0:
            _, info = env.reset()
            clean.reset(options={"target": info["target"]})
            clean.position = env.position.copy()
        action = int(rng.integers(25))
        _, reward, _, _, info = env.step(action)
        _, clean_reward, _, _, clean_info = clean.step(action)
        off += info["rating"] != info["true_rating"]
        flipped += info["closer"] != clean_info["closer"]
        rewards_ok += reward == clean_reward and info["true_rating"] == clean_info["rating"]
    assert rewards_ok == steps
    assert 0.2 < off / steps < 0.3  # 0.3, less the moves clipped at 0 or 4
    assert abs(flipped / steps - 0.2) < 0.03


def test_user_options_keep_the_thesis_hashes_and_are_checked():
    assert EnvConfig(d=2).to_dict() == {"d": 2, "preset": "WiderTopTarget", "reward": "Bullseye", "obs": "GridObs", "action": "Discrete"}
    assert EnvConfig(d=2, rating_noise=0.1).to_dict()["rating_noise"] == 0.1
    with pytest.raises(ValueError, match=r"rating_noise must be a probability in \[0, 1\], got 1.5"):
        EnvConfig(rating_noise=1.5)
    with pytest.raises(ValueError, match="bands must be 4 increasing percentiles"):
        EnvConfig(bands=(10, 5, 30, 50))
    wide = users.rating_thresholds(np.array([2, 2]), "WiderTopTarget", bands=(20, 40, 60, 80))
    assert (wide > users.rating_thresholds(np.array([2, 2]), "WiderTopTarget")).any()


def test_an_episode_renders_as_an_animated_gif():
    import io

    from PIL import Image

    from musicrl import baselines, plots

    config = EnvConfig(d=2)
    gif = plots.episode_gif(baselines.make_baseline("random", config, seed=1), config, target=7)
    image = Image.open(io.BytesIO(gif))
    frame = PreferenceSearchEnv(d=2, render_mode="rgb_array")
    frame.reset(seed=0)
    assert image.format == "GIF" and image.size == frame.render().shape[1::-1] and image.n_frames > 3


def test_a_heavier_feature_costs_more_rating_and_counts_in_closer():
    env = PreferenceSearchEnv(d=2, action="MultiDiscrete", weights=(4, 1))
    env.reset(seed=0, options={"target": [2, 2]})
    off_heavy = env.step(np.array([3, 2]))[4]
    off_light = env.step(np.array([2, 4]))[4]
    assert off_heavy["rating"] < off_light["rating"]
    assert off_light["closer"] == 1  # distance 2 after 4: nearer for this user, farther for the thesis's
    with pytest.raises(ValueError, match="weights must be 2 integers in 1..9"):
        EnvConfig(d=2, weights=(1, 2, 3))
    assert EnvConfig(d=2, weights=[2, 1]).to_dict()["weights"] == [2, 1]


@pytest.mark.parametrize("d", [10, 20])
def test_grid_multidiscrete_memory_does_not_grow_with_the_grid(d):
    import tracemalloc

    tracemalloc.start()
    env = PreferenceSearchVecEnv(64, EnvConfig(d=d, action="MultiDiscrete"), seed=0)
    env.reset()
    for _ in range(2 * 21):
        observations = env.step(np.random.default_rng(0).integers(0, 5, size=(64, d)))[0]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert observations.shape == (64, d + 2) and env.ratings.max() <= 4
    assert peak < 2e6  # bytes; 5**10 float32 entries alone would be 39 MB


def test_the_registered_env_declares_its_episode_length():
    import gymnasium as gym

    import musicrl.envs

    assert gym.spec(musicrl.envs.ENV_ID).max_episode_steps == musicrl.envs.EPISODE_STEPS == 21
