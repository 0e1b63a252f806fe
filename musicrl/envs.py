"""The preference-search environment (thesis section 4.2), single and batched.

``PreferenceSearchEnv`` is one gymnasium environment; ``PreferenceSearchVecEnv`` steps N of
them in one numpy call and is a Stable-Baselines3 ``VecEnv``. Both follow
``environment-spec.md`` and behave identically; the tests check this on random actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from musicrl import users
from musicrl.users import LEVELS, MAX_RATING, check_choice, check_dimensions

EPISODE_STEPS = 21
REWARDS = ("Bullseye", "Rating")
OBSERVATIONS = ("GridObs", "BoardObs")
ACTIONS = ("Discrete", "MultiDiscrete")
BULLSEYE_REWARD = 10
MAX_STEP_REWARD = {"Bullseye": BULLSEYE_REWARD, "Rating": MAX_RATING**2}
ENV_ID = "musicrl/PreferenceSearch-v0"
MAX_D = 27  # positions are numbered by 64-bit integers (info, targets): 5**27 < 2**63
MAX_ENUMERATED_D = 8  # Discrete actions and BoardObs observations have one entry per position: 5**8 = 390,625


@dataclass(frozen=True)
class EnvConfig:
    """Every knob of the environment; validated on construction."""

    d: int = 2
    preset: str = "WiderTopTarget"
    reward: str = "Bullseye"
    obs: str = "GridObs"
    action: str = "Discrete"
    targets: tuple[int, ...] | None = None  # flat indices targets are drawn from (uniform over the tuple); None: all
    rating_noise: float = 0.0  # probability that the rating the agent sees is off by one (up or down, kept in 0..4)
    closer_flip: float = 0.0  # probability that the "closer" the agent sees is flipped
    bands: tuple[float, ...] | None = None  # percentiles where ratings 4, 3, 2, 1 end; None: the preset's
    weights: tuple[int, ...] | None = None  # integer weight of each feature in the user's distance; None: all 1

    def __post_init__(self) -> None:
        check_dimensions(self.d)
        check_choice("preset", self.preset, tuple(users.PRESETS))
        check_choice("reward", self.reward, REWARDS)
        check_choice("observation", self.obs, OBSERVATIONS)
        check_choice("action space", self.action, ACTIONS)
        if self.d > MAX_D:
            raise ValueError(f"d={self.d} is too large: positions are numbered by 64-bit integers, so d <= {MAX_D}")
        enumerated = [name for name, used in (("action 'Discrete'", self.action == "Discrete"),
                                              ("observation 'BoardObs'", self.obs == "BoardObs")) if used]
        if self.d > MAX_ENUMERATED_D and enumerated:
            verb = "enumerate" if len(enumerated) > 1 else "enumerates"
            raise ValueError(
                f"{' and '.join(enumerated)} {verb} all 5**d positions ({float(LEVELS**self.d):.3g} for d={self.d}); "
                f"they are supported up to d={MAX_ENUMERATED_D} ({LEVELS**MAX_ENUMERATED_D:,} positions). "
                "For more features use action='MultiDiscrete' with obs='GridObs'."
            )
        for name in ("rating_noise", "closer_flip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.bands is not None:
            object.__setattr__(self, "bands", users.check_bands(self.bands))
        if self.weights is not None:
            object.__setattr__(self, "weights", users.check_weights(self.weights, self.d))
        if self.targets is not None:
            targets = tuple(int(t) for t in self.targets)
            if not targets or min(targets) < 0 or max(targets) >= self.n_positions \
                    or any(not float(t).is_integer() for t in self.targets):
                raise ValueError(f"targets must be a non-empty sequence of flat position indices 0..{self.n_positions - 1}")
            object.__setattr__(self, "targets", targets)

    @property
    def n_positions(self) -> int:
        return LEVELS**self.d

    @property
    def max_return(self) -> int:
        return EPISODE_STEPS * MAX_STEP_REWARD[self.reward]

    def to_dict(self) -> dict[str, Any]:
        """The fields; the user options (targets, noise, bands, weights) only when set, so that the
        thesis's configurations keep their hashes."""
        fields = asdict(self)
        for name, default in (("targets", None), ("rating_noise", 0.0), ("closer_flip", 0.0), ("bands", None),
                              ("weights", None)):
            if fields[name] == default:
                del fields[name]
            elif isinstance(fields[name], tuple):
                fields[name] = list(fields[name])
        return fields

    @property
    def noisy(self) -> bool:
        return self.rating_noise > 0 or self.closer_flip > 0

    def perturb(self, rng: np.random.Generator, rating: int, closer: int, at_reset: bool = False) -> tuple[int, int]:
        """The feedback this noisy user gives (:func:`musicrl.users.perturb_feedback`)."""
        return users.perturb_feedback(rng, rating, closer, self.rating_noise, self.closer_flip, at_reset)

    def draw_targets(self, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """Target positions (levels): uniform over the grid, or over ``targets`` if set."""
        if self.targets is None:
            return rng.integers(0, LEVELS, size=self.d if size is None else (size, self.d))
        chosen = np.asarray(self.targets)[rng.integers(0, len(self.targets), size=size)]
        return users.index_to_position(chosen, self.d)


def reward_of(rating: np.ndarray, reward: str) -> np.ndarray:
    rating = np.asarray(rating)
    if reward == "Bullseye":
        return np.where(rating == MAX_RATING, BULLSEYE_REWARD, 0).astype(np.float32)
    return (rating**2).astype(np.float32)


def make_spaces(config: EnvConfig) -> tuple[spaces.Space, spaces.Box]:
    if config.action == "Discrete":
        action_space: spaces.Space = spaces.Discrete(config.n_positions)
    else:
        action_space = spaces.MultiDiscrete([LEVELS] * config.d)
    if config.obs == "GridObs":
        high = np.array([LEVELS - 1] * config.d + [1, MAX_RATING], dtype=np.float32)
        observation_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
    else:
        observation_space = spaces.Box(-1.0, float(MAX_RATING), shape=(config.n_positions,), dtype=np.float32)
    return action_space, observation_space


def check_integer_actions(actions) -> None:
    """Actions are integers: a float such as 3.7 is an error, not silently truncated."""
    kind = np.asarray(actions).dtype.kind
    if kind not in "iu":
        raise ValueError(f"actions must be integers (a flat position index, or one level per feature); got {actions!r}")


CELL = 48  # pixels per level cell: the frame is readable in a video (RecordVideo, rl_zoo3's record_video)
BOARD_LEFT, BOARD_TOP, MIN_SIDE = 56, 40, 256
COLOURS = {"empty": (225, 225, 225), "target": (214, 39, 40), "position": (31, 119, 180), "both": (148, 103, 189),
           "rating": (44, 160, 44), "closer": (255, 127, 14)}


LEGEND = (("target", "target"), ("agent", "position"), ("both", "both"))  # (label, colour) under the board
LEGEND_STEP, SWATCH = 82, 14


def legend_swatch(item: int, height: int) -> tuple[int, int]:
    """(row, column) of the centre of legend item ``item``'s colour swatch in an image ``height`` px high."""
    return height - 20 + SWATCH // 2, 8 + item * LEGEND_STEP + SWATCH // 2


def cell_centre(feature: int, level: int) -> tuple[int, int]:
    """(row, column) of the centre of a feature's level cell in :func:`render_board`'s image."""
    return BOARD_TOP + (LEVELS - 1 - level) * CELL + CELL // 2, BOARD_LEFT + feature * CELL + CELL // 2


def render_board(position: np.ndarray, target: np.ndarray, rating: int, closer: int, step: int | None = None) -> np.ndarray:
    """An RGB image (uint8, at least 256 px on each side) of one state: a column of LEVELS cells per
    feature, level 0 at the bottom (target red, position blue, both purple), labelled, below it
    the rating as a bar with its value and the closer flag in words, and a legend of the colours."""
    from PIL import Image, ImageDraw, ImageFont

    d = len(position)
    width = max(MIN_SIDE, BOARD_LEFT + d * CELL + 16)
    height = BOARD_TOP + LEVELS * CELL + 2 * CELL + 24
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=16)
    draw.text((8, 10), f"step {step}" if step is not None else "PreferenceSearch", fill=(0, 0, 0), font=font)
    for level in range(LEVELS):
        draw.text((8, BOARD_TOP + (LEVELS - 1 - level) * CELL + CELL // 2 - 9), f"lv {level}", fill=(60, 60, 60), font=font)
    for j in range(d):
        for level in range(LEVELS):
            here, wanted = position[j] == level, target[j] == level
            fill = COLOURS["both" if here and wanted else "position" if here else "target" if wanted else "empty"]
            top, left = BOARD_TOP + (LEVELS - 1 - level) * CELL, BOARD_LEFT + j * CELL
            draw.rectangle((left + 2, top + 2, left + CELL - 3, top + CELL - 3), fill=fill)
    bar_top = BOARD_TOP + LEVELS * CELL + 8
    bar_width = width - BOARD_LEFT - 16
    draw.rectangle((BOARD_LEFT, bar_top, BOARD_LEFT + bar_width, bar_top + CELL // 2), fill=COLOURS["empty"])
    if rating:
        draw.rectangle((BOARD_LEFT, bar_top, BOARD_LEFT + round(bar_width * rating / MAX_RATING), bar_top + CELL // 2),
                       fill=COLOURS["rating"])
    draw.text((8, bar_top + 4), f"{rating}/4", fill=(0, 0, 0), font=font)
    draw.text((8, bar_top + CELL // 2 + 14), f"closer: {'yes' if closer else 'no'}",
              fill=COLOURS["closer"] if closer else (90, 90, 90), font=font)
    for item, (label, colour) in enumerate(LEGEND):
        row, column = legend_swatch(item, height)
        draw.rectangle((column - SWATCH // 2, row - SWATCH // 2, column + SWATCH // 2 - 1, row + SWATCH // 2 - 1), fill=COLOURS[colour])
        draw.text((column + SWATCH // 2 + 5, row - 9), label, fill=(0, 0, 0), font=font)
    return np.asarray(image, dtype=np.uint8).copy()


class PreferenceSearchEnv(gym.Env):
    """Find a simulated user's preferred combination of feature levels.

    **Positions.** ``d`` features with 5 levels each; a position is ``(x_1..x_d)``.
    Action ``Discrete(5**d)`` picks a position by its row-major index (the thesis), or
    ``MultiDiscrete([5]*d)`` picks one level per feature. The agent jumps, it does not walk.

    **User.** At reset a target is drawn uniformly with the env's seeded generator (over all
    positions, or over the flat indices in ``targets`` if given, e.g. the positions of a song
    catalogue), or taken from ``reset(options={"target": t})`` (levels or flat index). For each position
    the user returns ``rating`` in 0..4 (cut by percentiles of the target's Manhattan
    distances to all positions: preset ``TopTarget`` or ``WiderTopTarget``) and ``closer``
    (1 if strictly nearer to the target than the previous position).

    **Episode.** Start at the centre ``(2, .., 2)``; the reset observation carries the
    start's rating with ``closer = 0``. 21 steps, then ``truncated``; never ``terminated``.

    **Noisy users** (options, off by default). With ``rating_noise`` p the rating the agent
    sees is off by one (up or down, kept in 0..4) with probability p; with ``closer_flip`` q
    the "closer" it sees is flipped with probability q; ``bands`` replaces the preset's
    percentiles; ``weights`` (integers, one per feature) make some features count more in
    the user's distance, for ratings and "closer" alike. The reward is computed from the true rating (the listener's preference does
    not change, only what it reports), which ``info["true_rating"]`` carries when noise is on.

    **Reward.** ``Bullseye``: 10 when rating is 4. ``Rating``: rating squared.

    **Observation.** ``GridObs``: ``[x_1..x_d, closer, rating]``. ``BoardObs``: one entry
    per position, -1 until visited, then the rating it got.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        d: int = 2,
        preset: str = "WiderTopTarget",
        reward: str = "Bullseye",
        obs: str = "GridObs",
        action: str = "Discrete",
        render_mode: str | None = None,
        targets: tuple[int, ...] | None = None,
        rating_noise: float = 0.0,
        closer_flip: float = 0.0,
        bands: tuple[float, ...] | None = None,
        weights: tuple[int, ...] | None = None,
    ) -> None:
        self.config = EnvConfig(d=d, preset=preset, reward=reward, obs=obs, action=action, targets=targets,
                                rating_noise=rating_noise, closer_flip=closer_flip, bands=bands, weights=weights)
        if render_mode is not None:
            check_choice("render mode", render_mode, tuple(self.metadata["render_modes"]))
        self.render_mode = render_mode
        self.action_space, self.observation_space = make_spaces(self.config)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        d = self.config.d
        if options and options.get("target") is not None:
            self.target = users.check_target(options["target"], d)
        else:
            self.target = self.config.draw_targets(self.np_random)
        self._thresholds = users.rating_thresholds(self.target, self.config.preset, self.config.bands, self.config.weights)
        self.position = users.start_position(d)
        self.steps = 0
        self.true_rating = self._rate(self.position)
        self.closer, self.rating = 0, self.true_rating
        if self.config.noisy:
            self.rating, self.closer = self.config.perturb(self.np_random, self.rating, self.closer, at_reset=True)
        if self.config.obs == "BoardObs":
            self.board = np.full(self.config.n_positions, -1.0, dtype=np.float32)
            self.board[self._index(self.position)] = self.rating
        return self._observation(), self._info()

    def step(self, action):
        check_integer_actions(action)
        if not self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)):
            raise ValueError(f"action {action!r} is not in the action space {self.action_space}")
        position = self._decode(action)
        previous_distance = users.manhattan(self.position, self.target, self.config.weights)
        self.closer = int(users.manhattan(position, self.target, self.config.weights) < previous_distance)
        self.position = position
        self.rating = self.true_rating = self._rate(position)
        if self.config.noisy:
            self.rating, self.closer = self.config.perturb(self.np_random, self.rating, self.closer)
        if self.config.obs == "BoardObs":
            self.board[self._index(position)] = self.rating
        self.steps += 1
        reward = float(reward_of(self.true_rating, self.config.reward))
        return self._observation(), reward, False, self.steps >= EPISODE_STEPS, self._info()

    def render(self) -> str | np.ndarray | None:
        """``ansi``: one line of text. ``rgb_array``: one column per feature, its 5 levels as 48 px cells
        (target red, current position blue, both purple), the step, and below a bar filled to the
        rating with its value and the closer flag (:func:`render_board`; at least 256 px a side)."""
        if self.render_mode == "rgb_array":
            return render_board(self.position, self.target, self.rating, self.closer, self.steps)
        if self.render_mode != "ansi":
            return None
        return (
            f"step {self.steps}: position {tuple(self.position.tolist())} "
            f"closer={self.closer} rating={self.rating}"
        )

    def _decode(self, action) -> np.ndarray:
        if self.config.action == "Discrete":
            return users.index_to_position(int(action), self.config.d).astype(np.int64)
        return np.asarray(action, dtype=np.int64).reshape(self.config.d)

    def _index(self, position: np.ndarray) -> int:
        return int(users.position_to_index(position))

    def _rate(self, position: np.ndarray) -> int:
        return int(users.rating_from_distance(users.manhattan(position, self.target, self.config.weights), self._thresholds))

    def _observation(self) -> np.ndarray:
        if self.config.obs == "GridObs":
            return np.array([*self.position, self.closer, self.rating], dtype=np.float32)
        return self.board.copy()

    def _info(self) -> dict[str, Any]:
        info = {
            "position": self._index(self.position),
            "target": self._index(self.target),
            "rating": self.rating,
            "closer": self.closer,
        }
        if self.config.noisy:
            info["true_rating"] = self.true_rating
        return info


class PreferenceSearchVecEnv(VecEnv):
    """``num_envs`` preference-search environments stepped together in numpy.

    Behaves exactly like ``DummyVecEnv`` over ``num_envs`` :class:`PreferenceSearchEnv`:
    env ``i`` is seeded with ``seed + i``, auto-resets after 21 steps (the last
    observation goes to ``info["terminal_observation"]``), and per-env targets can be set
    for the next reset with ``set_options([{"target": t}, ...])``.

    ``truncation_as_terminal=True`` reports the 21-step limit as a true end
    (``info["TimeLimit.truncated"] = False``), so SB3 does not bootstrap the value there:
    the convention of the code the thesis used.
    """

    def __init__(
        self,
        num_envs: int,
        config: EnvConfig | None = None,
        seed: int | None = None,
        truncation_as_terminal: bool = False,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.config = config if config is not None else EnvConfig()
        self.truncation_as_terminal = truncation_as_terminal
        action_space, observation_space = make_spaces(self.config)
        self.render_mode = None
        super().__init__(int(num_envs), observation_space, action_space)
        d, n = self.config.d, self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self.targets = np.zeros((n, d), dtype=np.int64)
        self.positions = np.zeros((n, d), dtype=np.int64)
        self.thresholds = np.zeros((n, 4))
        self.ratings = np.zeros(n, dtype=np.int64)
        self.true_ratings = self.ratings  # the same array unless the user is noisy
        self.closer = np.zeros(n, dtype=np.int64)
        self.steps = np.zeros(n, dtype=np.int64)
        self.boards = np.full((n, self.config.n_positions), -1.0, dtype=np.float32) if self.config.obs == "BoardObs" else None
        self._actions = np.zeros(n, dtype=np.int64)
        if seed is not None:
            self.seed(seed)

    def reset(self) -> np.ndarray:
        for i in range(self.num_envs):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(self._seeds[i])
        self._reset_envs(np.arange(self.num_envs), self._options)
        self._reset_seeds()
        self._reset_options()
        return self._observations()

    _STATE = ("targets", "positions", "thresholds", "ratings", "true_ratings", "closer", "steps", "boards")

    @classmethod
    def concatenate(cls, envs: list[PreferenceSearchVecEnv]) -> PreferenceSearchVecEnv:
        """One VecEnv stepping the envs of ``envs`` together, sharing their generators.

        Stepping it is stepping each of them (same draws, in the same order per env); the
        multi-seed trainer uses it to step S seeds' envs in one numpy pass, then
        :meth:`split_into` puts the state back.
        """
        first = envs[0]
        if any(e.config != first.config or e.truncation_as_terminal != first.truncation_as_terminal for e in envs):
            raise ValueError("concatenate needs VecEnvs of one configuration")
        joined = cls(sum(e.num_envs for e in envs), first.config, truncation_as_terminal=first.truncation_as_terminal)
        joined._rngs = [rng for e in envs for rng in e._rngs]
        for name in cls._STATE:
            if getattr(first, name) is not None:
                setattr(joined, name, np.concatenate([getattr(e, name) for e in envs]))
        if not first.config.noisy:
            joined.true_ratings = joined.ratings
        return joined

    def split_into(self, envs: list[PreferenceSearchVecEnv]) -> None:
        """Write this concatenation's state back into the VecEnvs it was made from."""
        start = 0
        for env in envs:
            part = slice(start, start + env.num_envs)
            for name in self._STATE:
                if getattr(self, name) is not None:
                    setattr(env, name, getattr(self, name)[part].copy())
            if not self.config.noisy:
                env.true_ratings = env.ratings
            env._rngs = self._rngs[part]
            start += env.num_envs

    def get_rng_state(self) -> list[Mapping[str, Any] | None]:
        """The state of every env's generator, for checkpoints that resume exactly."""
        return [None if rng is None else rng.bit_generator.state for rng in self._rngs]

    def set_rng_state(self, states: list[dict[str, Any] | None]) -> None:
        """Restore :meth:`get_rng_state`; pending seeds are dropped so reset() keeps it."""
        if len(states) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} generator states, got {len(states)}")
        for i, state in enumerate(states):
            if state is None:
                self._rngs[i] = None
                continue
            rng, _ = seeding.np_random(0)
            rng.bit_generator.state = state
            self._rngs[i] = rng
        self._reset_seeds()

    def step_async(self, actions: np.ndarray) -> None:
        check_integer_actions(actions)
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        return self._step(with_infos=True)

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Observations, rewards and dones of one step, without the per-env info dicts.

        The same transition as :meth:`step` (same generators, same auto-reset); the
        multi-seed trainer uses it because building 16 dicts per step costs more than the step.
        """
        self.step_async(actions)
        observations, rewards, dones, _ = self._step(with_infos=False)
        return cast(np.ndarray, observations), rewards, dones

    def _step(self, with_infos: bool) -> VecEnvStepReturn:
        positions = self._decode(self._actions)
        weights = self.config.weights
        previous = users.manhattan(self.positions, self.targets, weights)
        distances = users.manhattan(positions, self.targets, weights)
        self.closer = (distances < previous).astype(np.int64)
        self.positions = positions
        self.ratings = self.true_ratings = users.rating_from_distance(distances, self.thresholds)
        if self.config.noisy:
            self._perturb(np.arange(self.num_envs), at_reset=False)
        if self.boards is not None:
            self.boards[np.arange(self.num_envs), users.position_to_index(positions)] = self.ratings
        self.steps += 1
        rewards = reward_of(self.true_ratings, self.config.reward)
        dones = self.steps >= EPISODE_STEPS
        infos = self._infos() if with_infos else []
        observations = self._observations()
        finished = np.flatnonzero(dones)
        if finished.size:
            for i in finished if with_infos else ():
                infos[i]["TimeLimit.truncated"] = not self.truncation_as_terminal
                infos[i]["terminal_observation"] = observations[i].copy()
            self._reset_envs(finished, None, with_infos)
            observations[finished] = self._observations()[finished]
        for i in np.flatnonzero(~dones) if with_infos else ():
            infos[i]["TimeLimit.truncated"] = False
        return observations, rewards, dones, infos

    def _reset_envs(self, indices: np.ndarray, options: list[dict[str, Any]] | None, with_infos: bool = True) -> None:
        d = self.config.d
        for i in indices:
            target = options[i].get("target") if options and options[i] else None
            if target is not None:
                self.targets[i] = users.check_target(target, d)
            else:
                self.targets[i] = self.config.draw_targets(self._rngs[i])
        self.thresholds[indices] = users.rating_thresholds(self.targets[indices], self.config.preset, self.config.bands,
                                                           self.config.weights)
        self.positions[indices] = users.start_position(d)
        distances = users.manhattan(self.positions[indices], self.targets[indices], self.config.weights)
        self.ratings[indices] = users.rating_from_distance(distances, self.thresholds[indices])
        self.true_ratings[indices] = self.ratings[indices]
        self.closer[indices] = 0
        if self.config.noisy:
            self._perturb(indices, at_reset=True)
        self.steps[indices] = 0
        if with_infos:
            self.reset_infos = self._infos()
        if self.boards is not None:
            self.boards[indices] = -1.0
            self.boards[indices, users.position_to_index(self.positions[indices])] = self.ratings[indices]

    def _perturb(self, indices: np.ndarray, at_reset: bool) -> None:
        ratings, closer = self.ratings.copy(), self.closer.copy()
        for i in indices:
            ratings[i], closer[i] = self.config.perturb(self._rngs[i], int(ratings[i]), int(closer[i]), at_reset)
        self.ratings, self.closer = ratings, closer

    def _decode(self, actions: np.ndarray) -> np.ndarray:
        if self.config.action == "Discrete":
            actions = actions.reshape(self.num_envs)
            if actions.min() < 0 or actions.max() >= self.config.n_positions:
                raise ValueError(f"actions must lie in 0..{self.config.n_positions - 1}, got {actions!r}")
            return users.index_to_position(actions.astype(np.int64), self.config.d)
        actions = actions.reshape(self.num_envs, self.config.d).astype(np.int64)
        if actions.min() < 0 or actions.max() >= LEVELS:
            raise ValueError(f"MultiDiscrete actions must lie in 0..{LEVELS - 1}, got {actions!r}")
        return actions

    def _observations(self) -> np.ndarray:
        if self.boards is not None:
            return self.boards.copy()
        return np.concatenate(
            [self.positions, self.closer[:, None], self.ratings[:, None]], axis=1
        ).astype(np.float32)

    def _infos(self) -> list[dict[str, Any]]:
        positions, targets = users.position_to_index(self.positions), users.position_to_index(self.targets)
        infos = [
            {"position": int(positions[i]), "target": int(targets[i]), "rating": int(self.ratings[i]), "closer": int(self.closer[i])}
            for i in range(self.num_envs)
        ]
        if self.config.noisy:
            for i, info in enumerate(infos):
                info["true_rating"] = int(self.true_ratings[i])
        return infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"{type(self).__name__} shares one state for all envs; set_attr({attr_name!r}) is not supported")

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        method = getattr(self, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def register() -> None:
    """Register ``musicrl/PreferenceSearch-v0``; keyword arguments go to the env."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="musicrl.envs:PreferenceSearchEnv", max_episode_steps=EPISODE_STEPS)


register()
