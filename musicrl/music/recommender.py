"""The thesis's system (section 6, figure 32): a policy proposes grid positions, each becomes a
song, and a listener answers; the ideal user of the environment answers beside it.

A session starts, as in the thesis, at the centre of the grid: the start position's song is
played first, then the policy proposes 21 positions. The policy is driven by the ideal
user's feedback (as in the thesis, whose agent was trained on simulated users and could not
take a person's answers), or with ``drive="listener"`` by the listener's own. Where a
position holds several songs one is picked (seeded); where it holds none, the nearest song
is played. ``no_repeat=True`` never plays a song twice in a session.

Listeners share one interface (``start(target)``, then ``feedback(song)`` -> ``(rating,
closer)``), so a person (the widget or ``musicrl listen``) and the simulated listeners are
interchangeable, and saved sessions of either feed the same Table 1 analysis.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from musicrl import users
from musicrl.envs import EPISODE_STEPS, EnvConfig, PreferenceSearchEnv
from musicrl.evaluation import Policy
from musicrl.music.catalogue import Catalogue
from musicrl.store import write_json_atomic
from musicrl.users import MAX_RATING, PRESETS

SESSION_VERSION = 1
THESIS_TABLE1 = {"blues": 1.14, "classical": 2.12, "country": 1.49, "disco": 1.10, "hiphop": 0.80, "jazz": 1.60,
                 "metal": 1.40, "pop": 1.43, "reggae": 1.24, "rock": 1.35}
PLAY_SECONDS = 8


class Listener(Protocol):
    """Hears the target, then every song played, and answers ``(rating 0..4, closer 0/1)``."""

    name: str

    def start(self, target: str) -> None: ...

    def feedback(self, song: str) -> tuple[int, int]: ...


class _DistanceListener:
    """Rates by percentile bands of a distance to the target (the env's rule, other distances)."""

    name = "distance"

    def __init__(self, catalogue: Catalogue, preset: str = "WiderTopTarget") -> None:
        users.check_choice("preset", preset, tuple(PRESETS))
        self.catalogue, self.preset = catalogue, preset
        self._previous: float | None = None

    def distances(self, target: int) -> np.ndarray:
        """Distance of every catalogue song to song number ``target``."""
        raise NotImplementedError

    def thresholds(self, distances: np.ndarray, target: int) -> np.ndarray:
        """Distances where ratings 4, 3, 2, 1 end: the preset's percentiles over the catalogue."""
        return np.percentile(distances, PRESETS[self.preset][1:5])

    def start(self, target: str) -> None:
        index = self.catalogue.index(target)
        self._distances = self.distances(index)
        self._thresholds = self.thresholds(self._distances, index)
        self._previous = None

    def feedback(self, song: str) -> tuple[int, int]:
        distance = self._distances[self.catalogue.index(song)]
        closer = int(self._previous is not None and distance < self._previous)
        self._previous = distance
        return int((distance <= self._thresholds).sum()), closer


class IdealListener(_DistanceListener):
    """The env's simulated user, asked about the song actually played: Manhattan distance of
    the song's grid position to the target song's, cut at the preset's percentiles of the grid."""

    name = "ideal"

    def distances(self, target: int) -> np.ndarray:
        return users.manhattan(self.catalogue.positions, self.catalogue.positions[target])

    def thresholds(self, distances: np.ndarray, target: int) -> np.ndarray:
        return users.rating_thresholds(self.catalogue.positions[target], self.preset)


class FeatureListener(_DistanceListener):
    """Rates by percentile of the Euclidean distance in the full feature space (not the 4D grid):
    the stand-in for a person, who hears the music, not its PCA."""

    name = "feature"

    def __init__(self, catalogue: Catalogue, features: np.ndarray | None = None, preset: str = "WiderTopTarget") -> None:
        super().__init__(catalogue, preset)
        self.features = catalogue.features if features is None else np.asarray(features)
        if len(self.features) != len(catalogue.ids):
            raise ValueError(f"features must have one row per catalogue song ({len(catalogue.ids)}), got {len(self.features)}")

    def distances(self, target: int) -> np.ndarray:
        return np.linalg.norm(self.features - self.features[target], axis=1)


class GenreListener(_DistanceListener):
    """Rates by genre: the target song is closest, then its genre, then the other genres by the
    distance between genre centres (in the full features), cut at the preset's percentiles."""

    name = "genre"

    def __init__(self, catalogue: Catalogue, features: np.ndarray | None = None, preset: str = "WiderTopTarget") -> None:
        from musicrl.music.analysis import distance_matrix

        super().__init__(catalogue, preset)
        self.matrix = distance_matrix(catalogue.features if features is None else np.asarray(features), catalogue.genres)

    def distances(self, target: int) -> np.ndarray:
        between = self.matrix.loc[self.catalogue.genres[target]].reindex(self.catalogue.genres).to_numpy()
        scale = self.matrix.values[self.matrix.values > 0].min() / 2
        own = np.arange(len(between)) == target
        return np.where(own, 0.0, between + scale)


class NoisyListener:
    """Another listener, perturbed by the env's noise model (:func:`musicrl.users.perturb_feedback`):
    each rating moves by +-1 with probability ``p_rating`` (kept in 0..4), each ``closer`` flips
    with probability ``p_closer``. Seeded."""

    def __init__(self, base: Listener, p_rating: float = 0.2, p_closer: float = 0.1, seed: int = 0) -> None:
        for name, p in (("p_rating", p_rating), ("p_closer", p_closer)):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        self.base, self.p_rating, self.p_closer = base, p_rating, p_closer
        self.rng = np.random.default_rng(seed)
        self.name = f"noisy {base.name} (p={p_rating:g}, q={p_closer:g})"

    def start(self, target: str) -> None:
        self.base.start(target)

    def feedback(self, song: str) -> tuple[int, int]:
        rating, closer = self.base.feedback(song)
        return users.perturb_feedback(self.rng, rating, closer, self.p_rating, self.p_closer)


@dataclass(frozen=True)
class Step:
    position: tuple[int, ...]
    song: str
    rating: int  # the listener's
    closer: int
    ideal_rating: int  # the env's ideal user, on the proposed position
    ideal_closer: int


@dataclass
class Session:
    """One listening session: the target, and every song played with both answers."""

    target: str
    listener: str
    policy: str
    steps: list[Step]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def songs(self) -> list[str]:
        return [s.song for s in self.steps]

    @property
    def steps_to_target(self) -> int | None:
        """Steps (proposals after the start song) until the target song was first played; None if never."""
        return next((i for i, s in enumerate(self.steps) if s.song == self.target), None)

    @property
    def steps_to_top_rating(self) -> int | None:
        """Steps until the ideal user first rated a proposed position 4 (what the agent is rewarded for)."""
        return next((i for i, s in enumerate(self.steps) if s.ideal_rating == MAX_RATING), None)

    @property
    def distinct_songs(self) -> int:
        return len(set(self.songs))

    @property
    def rating_difference(self) -> float:
        """Mean absolute difference between the listener's and the ideal user's ratings."""
        return float(np.mean([abs(s.rating - s.ideal_rating) for s in self.steps]))

    def to_json(self) -> dict[str, Any]:
        return {"version": SESSION_VERSION, "target": self.target, "listener": self.listener, "policy": self.policy,
                "settings": self.settings, "steps": [asdict(s) | {"position": list(s.position)} for s in self.steps]}

    @classmethod
    def from_json(cls, data: dict[str, Any], catalogue: Catalogue) -> Session:
        """A saved session, checked against ``catalogue``: the version, known clip ids, ratings 0..4,
        closer 0/1, positions of the catalogue's levels, at most ``EPISODE_STEPS + 1`` steps."""
        if not isinstance(data, dict):
            raise ValueError(f"a session is a JSON object, got {type(data).__name__}")
        where = f"session (target {data.get('target')!r})"
        for key in ("target", "listener", "policy", "steps"):
            if key not in data:
                raise ValueError(f"{where}: missing field {key!r}")
        if data.get("version", SESSION_VERSION) != SESSION_VERSION:
            raise ValueError(f"{where}: version {data.get('version')!r}; this musicrl reads version {SESSION_VERSION}")
        known = set(catalogue.ids)
        if not isinstance(data["target"], str) or data["target"] not in known:
            raise ValueError(f"{where}: unknown target clip id {data['target']!r} (not in the catalogue of {len(known)} songs)")
        if not isinstance(data["steps"], list):
            raise ValueError(f"{where}: steps must be a list of objects, got {type(data['steps']).__name__}")
        if len(data["steps"]) > EPISODE_STEPS + 1:
            raise ValueError(f"{where}: {len(data['steps'])} steps; a session has at most {EPISODE_STEPS + 1} (the start and "
                             f"{EPISODE_STEPS} proposals)")
        settings = data.get("settings", {})
        if not isinstance(settings, dict):
            raise ValueError(f"{where}: settings must be an object, got {type(settings).__name__}")
        steps = [cls._step(raw, catalogue, known, f"{where}, step {i}") for i, raw in enumerate(data["steps"])]
        if not steps:
            raise ValueError(f"{where}: no steps")
        return cls(data["target"], str(data["listener"]), str(data["policy"]), steps, dict(settings))

    @staticmethod
    def _step(raw: Any, catalogue: Catalogue, known: set, where: str) -> Step:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: a step is an object, got {type(raw).__name__}")
        if not isinstance(raw.get("song"), str) or raw["song"] not in known:
            raise ValueError(f"{where}: unknown clip id {raw.get('song')!r}")
        for key, accepted in (("rating", range(MAX_RATING + 1)), ("ideal_rating", range(MAX_RATING + 1)),
                              ("closer", (0, 1)), ("ideal_closer", (0, 1))):
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value not in accepted:
                raise ValueError(f"{where}: {key} must be an integer in {list(accepted)}, got {value!r}")
        position = raw.get("position")
        if (not isinstance(position, list) or len(position) != catalogue.k
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < catalogue.levels for v in position)):
            raise ValueError(f"{where}: position must be a list of {catalogue.k} levels in 0..{catalogue.levels - 1}, "
                             f"got {position!r}")
        return Step(tuple(position), raw["song"], raw["rating"], raw["closer"], raw["ideal_rating"], raw["ideal_closer"])

    def save(self, directory: Path | str) -> Path:
        name = f"session-{self.listener}-{self.policy}-{self.target}-{self.settings.get('started', 'x')}"
        name += "-norepeat" if self.settings.get("no_repeat") else ""
        path = Path(directory) / (re.sub(r"[^A-Za-z0-9._=-]+", "_", name) + ".json")
        write_json_atomic(path, self.to_json())
        return path


def load_sessions(directory: Path | str, catalogue: Catalogue, rejected: list[str] | None = None,
                  paths: list[str] | None = None) -> list[Session]:
    """Every ``session-*.json`` in ``directory``, validated against ``catalogue``. A bad file raises,
    naming it; or, if a ``rejected`` list is given, its message is appended there and the file skipped.
    ``paths``, if given, receives the file of each session returned."""
    sessions = []
    for path in sorted(Path(directory).glob("session-*.json")):
        try:
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                raise ValueError(f"not valid JSON, the file is damaged or cut off ({error})") from error
            sessions.append(Session.from_json(data, catalogue))
            if paths is not None:
                paths.append(str(path))
        except (ValueError, UnicodeDecodeError, OSError) as error:
            if rejected is None:
                raise ValueError(f"{path}: {error}") from error
            rejected.append(f"{path}: {error}")
    return sessions


class SessionRunner:
    """One session, a step at a time: ``song`` to play now, ``answer(rating, closer)`` to go on.

    The widget and ``musicrl listen`` drive it with a person's answers; ``Recommender.play``
    with a simulated listener's.
    """

    def __init__(self, recommender: Recommender, target: str, listener: str, seed: int, drive: str, started: str) -> None:
        self.recommender, self.target, self.listener, self.drive = recommender, target, listener, drive
        rec = recommender
        self.rng = np.random.default_rng(seed)
        self.env = PreferenceSearchEnv(**rec.config.to_dict())
        target_position = rec.catalogue.position_of(target)
        self.obs, info = self.env.reset(seed=seed, options={"target": target_position})
        self.state, self.start = None, True
        self.steps: list = []
        self.played: set = set()
        self.ideal = (int(info["rating"]), int(info["closer"]))  # the ideal user's answer for the current song
        self.position = tuple(int(v) for v in users.index_to_position(info["position"], rec.catalogue.k))
        self.song = self._pick(self.position)
        self.settings = {"seed": seed, "drive": drive, "no_repeat": rec.no_repeat, "preset": rec.config.preset,
                         "reward": rec.config.reward, "started": started, "catalogue": rec.catalogue_record()}

    @property
    def done(self) -> bool:
        return len(self.steps) > EPISODE_STEPS

    def _pick(self, position: tuple[int, ...]) -> str:
        cat = self.recommender.catalogue
        here = [s for s in cat.songs_at(position) if not (self.recommender.no_repeat and s in self.played)]
        if here:
            return str(self.rng.choice(sorted(here)))
        for song in cat.nearest_songs(position, len(cat.ids)):
            if not (self.recommender.no_repeat and song in self.played):
                return song
        return cat.nearest_song(position)  # every song played already: repeats are unavoidable

    def answer(self, rating: int, closer: int) -> None:
        if self.done:
            raise RuntimeError("the session is over (21 proposals after the start song)")
        if rating not in range(MAX_RATING + 1) or closer not in (0, 1):
            raise ValueError(f"rating must be 0..4 and closer 0 or 1, got {rating!r}, {closer!r}")
        self.steps.append(Step(self.position, self.song, int(rating), int(closer), *self.ideal))
        self.played.add(self.song)
        if self.done:
            return
        obs = self.obs.copy()
        if self.drive == "listener":
            obs[-2:] = (closer, rating)
        action, self.state = self.recommender.policy.predict(obs[None], self.state, np.array([self.start]), deterministic=True)
        self.start = False
        self.obs, _, _, _, info = self.env.step(int(np.asarray(action).reshape(-1)[0]))
        self.ideal = (int(info["rating"]), int(info["closer"]))
        self.position = tuple(int(v) for v in users.index_to_position(info["position"], self.recommender.catalogue.k))
        self.song = self._pick(self.position)

    def session(self) -> Session:
        return Session(self.target, self.listener, self.recommender.policy_name, list(self.steps), dict(self.settings))


class Recommender:
    """A policy on the grid of a catalogue (GridObs observations, Discrete actions)."""

    def __init__(self, policy: Policy, catalogue: Catalogue, policy_name: str = "policy", preset: str = "WiderTopTarget",
                 reward: str = "Bullseye", no_repeat: bool = False, layer: str | None = None) -> None:
        self.policy, self.catalogue, self.policy_name, self.no_repeat = policy, catalogue, policy_name, no_repeat
        self.layer = layer
        self.config = EnvConfig(d=catalogue.k, preset=preset, reward=reward)

    def catalogue_record(self) -> dict[str, Any]:
        """What a saved session records of the catalogue it was played on (pooling checks it)."""
        return catalogue_record(self.catalogue, self.layer)

    def start(self, target: str, listener: str = "you", seed: int = 0, drive: str = "ideal", started: str | None = None) -> SessionRunner:
        """A session to drive by hand; ``started`` names its file (default: the time now)."""
        import time

        users.check_choice("drive", drive, ("ideal", "listener"))
        self.catalogue.index(target)
        return SessionRunner(self, target, listener, seed, drive, started or time.strftime("%Y%m%dT%H%M%S"))

    def play(self, target: str, listener: Listener, seed: int = 0, drive: str = "ideal") -> Session:
        runner = self.start(target, listener.name, seed, drive, started=f"seed{seed}")
        listener.start(target)
        while not runner.done:
            runner.answer(*listener.feedback(runner.song))
        return runner.session()


def choose_targets(catalogue: Catalogue, per_genre: int = 10, seed: int = 0) -> dict[str, list[str]]:
    """``per_genre`` target songs of every genre, drawn without replacement (all of a smaller genre)."""
    rng = np.random.default_rng(seed)
    out = {}
    for genre in sorted(set(catalogue.genres)):
        songs = sorted(catalogue.ids[catalogue.genres == genre])
        out[genre] = sorted(rng.choice(songs, size=min(per_genre, len(songs)), replace=False).tolist())
    return out


def session_frame(sessions: list[Session], catalogue: Catalogue) -> pd.DataFrame:
    """One row per session: genre of the target, listener, rating difference, steps to target, distinct songs."""
    genre = dict(zip(catalogue.ids, catalogue.genres))
    return pd.DataFrame([{
        "target": s.target, "genre": genre[s.target], "listener": s.listener, "policy": s.policy,
        "rating difference": s.rating_difference, "found": s.steps_to_target is not None,
        "steps to target": np.nan if s.steps_to_target is None else s.steps_to_target,
        "steps to rating 4": np.nan if s.steps_to_top_rating is None else s.steps_to_top_rating,
        "distinct songs": s.distinct_songs,
        "no repeat": s.settings.get("no_repeat", False),
    } for s in sessions])


def table1(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean absolute rating difference per genre (rows) and listener (columns), beside the thesis's."""
    table = frame.pivot_table(index="genre", columns="listener", values="rating difference", aggfunc="mean")
    table.insert(0, "thesis (the author)", pd.Series(THESIS_TABLE1))
    table.insert(1, "targets", frame.groupby("genre")["target"].nunique())
    return table


def simulate(recommender: Recommender, listeners: list[Listener], targets: dict[str, list[str]], seed: int = 0,
             drive: str = "ideal") -> list[Session]:
    """One session per listener and target song (the session seed is ``seed`` + the target's rank)."""
    return [recommender.play(t, listener, seed=seed + i, drive=drive)
            for listener in listeners for songs in targets.values() for i, t in enumerate(songs)]


def ranking_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """Per listener: Spearman's rank correlation of its per-genre differences with the thesis's, and
    the genres that agree best and worst with the ideal user (the thesis: hiphop best, classical worst)."""
    from scipy.stats import spearmanr

    thesis = table["thesis (the author)"]
    rows = []
    for listener in table.columns.drop(["thesis (the author)", "targets"]):
        ours = table[listener].dropna()
        rho = spearmanr(ours, thesis.reindex(ours.index)).statistic if len(ours) > 2 else np.nan
        rows.append({"listener": listener, "rank correlation with the thesis": rho,
                     "agrees best": ours.idxmin(), "agrees worst": ours.idxmax()})
    rows.append({"listener": "thesis (the author)", "rank correlation with the thesis": 1.0,
                 "agrees best": thesis.idxmin(), "agrees worst": thesis.idxmax()})
    return pd.DataFrame(rows)


def catalogue_targets(catalogue: Catalogue) -> tuple[int, ...]:
    """Flat grid indices of the catalogue's songs, one per song: targets drawn from them follow the songs."""
    return tuple(int(i) for i in users.position_to_index(catalogue.positions))


CLASS_LISTENER = "class"


def catalogue_record(catalogue: Catalogue, layer: str | None) -> dict[str, Any]:
    """The tagger layer, dimensions, number of songs and a fingerprint of the songs' positions."""
    import hashlib

    digest = hashlib.sha256("\n".join(f"{i} {list(p)}" for i, p in zip(catalogue.ids, catalogue.positions.tolist())).encode())
    return {"layer": layer, "k": int(catalogue.k), "songs": len(catalogue.ids), "fingerprint": digest.hexdigest()[:12]}


def session_identity(session: Session) -> str:
    """The same answers to the same songs by the same listener, started at the same time: a copy."""
    import hashlib

    content = {k: v for k, v in session.to_json().items() if k != "settings"} | {"started": session.settings.get("started")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def pool_check(sessions: list[Session], paths: list[str], catalogue: Catalogue, layer: str | None) -> tuple[list[Session], list[str]]:
    """The sessions that may be pooled into one table of ``catalogue`` (``layer``), and why the
    others may not: a session played on another layer or number of dimensions (each session
    records its catalogue; files written before sessions recorded it are taken as played on
    this one), or a copy of a session already pooled (counted once)."""
    kept, rejected, seen = [], [], {}  # type: list[Session], list[str], dict[str, str]
    for session, path in zip(sessions, paths):
        played = session.settings.get("catalogue") or {}
        if layer is not None and played.get("layer") not in (None, layer):
            rejected.append(f"{path}: played on the {played['layer']!r} layer's catalogue, this table is of the {layer!r} "
                            f"layer's (pool it with --layer {played['layer']})")
            continue
        if played.get("k") not in (None, catalogue.k):
            rejected.append(f"{path}: played on a {played['k']}-dimensional grid, this table's is {catalogue.k}-dimensional")
            continue
        identity = session_identity(session)
        if identity in seen:
            rejected.append(f"{path}: a copy of {seen[identity]} (counted once)")
            continue
        seen[identity] = path
        kept.append(session)
    return kept, rejected


def sessions_folder(folder: Path | str) -> Path:
    """Where a class's session files are: ``folder`` itself, or a served class's ``folder/sessions``."""
    folder = Path(folder)
    return folder / "sessions" if (folder / "class.sqlite3").is_file() and (folder / "sessions").is_dir() else folder


def load_class_sessions(directory: Path | str, catalogue: Catalogue, layer: str | None = None) -> tuple[list[Session], list[str]]:
    """The saved sessions of a class in ``directory`` (every student's ``session-*.json``, or a
    ``musicrl serve`` class folder's ``sessions/``) and the
    messages of the files set aside: damaged or wrongly typed sessions, foreign files, sessions
    played on another layer's catalogue than ``layer`` (None: any) and copies (see :func:`pool_check`)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder of saved sessions (musicrl listen and the ListenerPanel "
                                f"save them to <results>/sessions, musicrl serve to <class folder>/sessions)")
    folder = sessions_folder(folder)
    rejected = [f"{path}: not a saved session (expected session-*.json, as musicrl listen and the ListenerPanel write)"
                for path in sorted(folder.iterdir())
                if path.is_file() and not (path.name.startswith("session-") and path.suffix == ".json")]
    paths: list[str] = []
    sessions, set_aside = pool_check(load_sessions(folder, catalogue, rejected, paths), paths, catalogue, layer)
    return sessions, rejected + set_aside


def class_table(sessions: list[Session], recommender: Recommender, seed: int = 0) -> pd.DataFrame:
    """Table 1 of a class: the people's sessions pooled as the listener ``class``, beside the thesis's
    column and the simulated feature and genre listeners on the same target songs."""
    if not sessions:
        raise ValueError("no valid session to pool; each student saves one with musicrl listen or the ListenerPanel")
    from dataclasses import replace as replaced

    catalogue = recommender.catalogue
    people = [replaced(s, listener=CLASS_LISTENER) for s in sessions]
    genre = dict(zip(catalogue.ids, catalogue.genres))
    targets: dict[str, list[str]] = {}
    for target in sorted({s.target for s in sessions}):
        targets.setdefault(str(genre[target]), []).append(target)
    simulated = simulate(recommender, [FeatureListener(catalogue), GenreListener(catalogue)], targets, seed)
    table = table1(session_frame(people + simulated, catalogue))
    table.insert(2, "class sessions", session_frame(people, catalogue).groupby("genre").size())
    return table


def standard_listeners(catalogue: Catalogue, noise: tuple[float, float], seed: int = 0) -> list[Listener]:
    """The chapter's four simulated listeners: ideal, by features, by genre, and the ideal one with
    ``noise`` (p_rating, p_closer)."""
    return [IdealListener(catalogue), FeatureListener(catalogue), GenreListener(catalogue),
            NoisyListener(IdealListener(catalogue), *noise, seed=seed)]


def play_catalogues(catalogues: dict[str, Catalogue], players: dict[str, Policy], per_genre: int,
                    noise: tuple[float, float], seed: int = 0) -> tuple[pd.DataFrame, dict[tuple[str, str], pd.DataFrame]]:
    """Every player's sessions with :func:`standard_listeners` on each catalogue (the same
    :func:`choose_targets` for every player): all sessions as one frame (columns ``layer`` and
    ``player`` added), and the Table 1 of each (catalogue, player)."""
    frames, tables = [], {}
    for name, catalogue in catalogues.items():
        targets = choose_targets(catalogue, per_genre, seed)
        for player, policy in players.items():
            sessions = simulate(Recommender(policy, catalogue, player), standard_listeners(catalogue, noise, seed), targets, seed)
            frame = session_frame(sessions, catalogue).assign(layer=name, player=player)
            frames.append(frame)
            tables[name, player] = table1(frame)
    return pd.concat(frames, ignore_index=True), tables
