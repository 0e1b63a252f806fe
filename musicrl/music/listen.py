"""Be the listener: the recommender with a person's answers, in JupyterLab (``ListenerPanel``)
or in a terminal (``musicrl listen``). Each finished session is saved as JSON in
``<results>/sessions/`` and feeds the Table 1 analysis like a simulated one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from musicrl.envs import EPISODE_STEPS
from musicrl.music.audio import SR, load_clip
from musicrl.music.recommender import PLAY_SECONDS, Recommender, SessionRunner
from musicrl.store import Store

TABLE = "<table style='border-collapse: separate; border-spacing: 0.9em 0.15em'>"
ANSWER_HELP = "answer with a rating 0-4 and whether it was closer than the previous song (y/n), e.g. '3 y'; q quits"


def sessions_dir(store: Store | None = None) -> Path:
    return (store or Store()).root / "sessions"


BASELINE_POLICIES = ("greedy", "lookahead", "random")


def make_policy(name: str, k: int = 4, seed: int = 0):
    """A baseline by name, or a trained 4D agent's published weights by its experiment's name
    (e.g. ``fig25-gru``, the thesis-budget run of ``seed``)."""
    from musicrl import baselines, registry
    from musicrl.envs import EnvConfig

    if name in BASELINE_POLICIES:
        return baselines.make_baseline(name, EnvConfig(d=k))
    from musicrl.publish import has_weights, load_policy

    try:
        spec = registry.run_spec(name, "full", seed)
    except (KeyError, ValueError):
        raise ValueError(f"unknown policy {name!r}: accepted are {', '.join(BASELINE_POLICIES)} or a 4D experiment with "
                         "published weights (e.g. fig25-gru)") from None
    if spec.env.d != k or not has_weights(spec):
        raise ValueError(f"{name} (seed {seed}) has no published {k}D weights; accepted are {', '.join(BASELINE_POLICIES)} "
                         "or a 4D experiment with published weights (e.g. fig25-gru)")
    return load_policy(spec)


def gtzan_recommender(policy_name: str = "greedy", layer: str = "third", k: int = 4, no_repeat: bool = False,
                      gtzan=None, models=None, store: Store | None = None, progress: bool = False, agent_seed: int = 0):
    """A recommender on the GTZAN catalogue of ``layer`` with a policy of :func:`make_policy`, and each song's audio path."""
    from musicrl.music import catalogue as catalogue_module
    from musicrl.music import features

    policy = make_policy(policy_name, k, agent_seed)
    tracks = features.read_manifest(gtzan)
    feats = features.Extractor(features.subset(tracks, balanced=True), models=models, store=store).extract(tracks, progress=progress)
    catalogue = catalogue_module.from_features(feats, layer, k)
    paths = dict(zip(feats.tracks["track_id"], feats.tracks["path"]))
    return Recommender(policy, catalogue, policy_name, no_repeat=no_repeat, layer=layer), paths


def student_target(catalogue, name: str, class_seed: int, played: int) -> tuple[str, int]:
    """The target and session seed of ``name``'s session after ``played`` others, as a served class
    draws them (:func:`musicrl.music.classroom.class_targets`): each name starts at its own place
    in the class's list, so two students rarely share a target, and a student's next sessions
    move on to other genres."""
    import hashlib

    from musicrl.music.classroom import class_targets, session_seed

    targets = class_targets(catalogue, class_seed)
    start = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    number = (start + played) % len(targets)
    return targets[number], session_seed(class_seed, number)


FIRST_HELP = "answer with a rating 0-4, e.g. '3' (no previous song to compare with yet); q quits"


def parse_answer(text: str, first: bool = False) -> tuple[int, int] | None:
    """``"3 y"`` -> (3, 1); ``"q"`` -> None. For the ``first`` song, which has no previous one,
    ``"3"`` (or ``"3 y"``, the closer ignored) -> (3, 0). Anything else raises ValueError saying what was wrong and what is accepted."""
    words = text.strip().lower().split()
    if words in (["q"], ["quit"]):
        return None
    help_text = FIRST_HELP if first else ANSWER_HELP
    if not words or len(words) > 2:
        raise ValueError(f"could not read {text.strip()!r}: {help_text}")
    rating = words[0]
    if not rating.lstrip("-").isdigit():
        raise ValueError(f"the rating must be a number 0-4, got {rating!r}: {help_text}")
    if int(rating) not in range(5):
        raise ValueError(f"the rating must be 0-4, got {int(rating)}: {help_text}")
    if first and len(words) == 1:
        return int(rating), 0
    if len(words) == 1:
        raise ValueError(f"say whether it was closer than the previous song (y or n) after the rating: {help_text}")
    if words[1] not in ("y", "n", "yes", "no"):
        raise ValueError(f"closer must be y or n, got {words[1]!r}: {help_text}")
    return int(rating), 0 if first else int(words[1].startswith("y"))


def terminal_session(runner: SessionRunner, paths: dict[str, str], results: Path,
                     read: Callable[[str], str] | None = None, write: Callable[[str], None] | None = None,
                     show_ideal: bool = False) -> Path | None:
    """The loop of ``musicrl listen``: print the clip to play, read the answer; with ``show_ideal``,
    show the ideal user's answer after the person's. ``q`` (or the end of input) stops and saves
    the steps answered so far, marked ``stopped_early``, and so do Ctrl-C and Ctrl-D; nothing is saved
    before the first answer."""
    read, write = read or input, write or print
    steers = ("your answers steer the recommender" if runner.drive == "listener" else
              "the recommender is steered by a simulated ideal listener; your answers are recorded beside its own "
              "(--drive listener lets yours steer)")
    write(f"target: listen to {paths[runner.target]}")
    write(f"then, for each song, play its first {PLAY_SECONDS} s and {ANSWER_HELP}. {steers.capitalize()}.")
    while not runner.done:
        step = len(runner.steps)
        write(f"step {step:2d} of 21: play {paths[runner.song]}  (position {runner.position})")
        while True:
            try:
                answer = parse_answer(read("rating> " if step == 0 else "rating closer> "), first=step == 0)
                break
            except ValueError as error:
                write(str(error))
            except (EOFError, KeyboardInterrupt):  # Ctrl-C or Ctrl-D: stop as 'q' does, keeping the answers
                write("")
                answer = None
                break
        if answer is None:
            if not runner.steps:
                write("stopped before the first answer; nothing saved")
                return None
            runner.settings["stopped_early"] = True
            break
        ideal = runner.ideal
        runner.answer(*answer)
        target = "  <- the target song" if runner.steps[-1].song == runner.target else ""
        shown = f";  ideal user: rating {ideal[0]}, closer {'yes' if ideal[1] else 'no'}" if show_ideal else ""
        write(f"  you: rating {answer[0]}, closer {'yes' if answer[1] else 'no'}{shown}{target}")
    path = runner.session().save(results)
    early = f" (stopped early, {len(runner.steps)} of {EPISODE_STEPS + 1} steps answered)" if runner.settings.get("stopped_early") else ""
    write(f"session saved to {path}{early}")
    return path


def clip_bytes(path: str, seconds: float = PLAY_SECONDS) -> bytes:
    """The first ``seconds`` of a clip as Ogg Vorbis bytes (for an audio player)."""
    import io

    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, load_clip(path).samples[: int(seconds * SR)], SR, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


class ListenerPanel:
    """An ipywidgets panel: hear each proposed clip, answer with buttons, see the ideal user's answer.

    >>> panel = ListenerPanel(recommender, paths, target="jazz.00003", listener="ada")
    >>> panel.widget   # display it in JupyterLab
    """

    HEADER = "<tr><th>step</th><th>song</th><th>you</th><th>closer</th><th>ideal user</th><th>closer</th></tr>"

    def __init__(self, recommender: Recommender, paths: dict[str, str], target: str, listener: str = "you",
                 seed: int = 0, store: Store | None = None) -> None:
        import ipywidgets as w

        self.runner = recommender.start(target, listener, seed)
        self.paths, self.results = paths, sessions_dir(store)
        self.saved: Path | None = None
        self.rows: list[str] = []
        self.rating = w.ToggleButtons(options=[("0", 0), ("1", 1), ("2", 2), ("3", 3), ("4", 4)], description="rating")
        self.closer = w.ToggleButtons(options=[("closer", 1), ("not closer", 0)], value=0, description="")
        self.submit = w.Button(description="answer", button_style="primary")
        self.submit.on_click(lambda _: self.answer(self.rating.value, self.closer.value))
        self.target_audio = w.Audio(value=clip_bytes(paths[target]), format="ogg", autoplay=False, loop=False)
        self.song_audio = w.Audio(value=b"", format="ogg", autoplay=False, loop=False)
        self.status, self.log = w.HTML(), w.HTML()
        self.widget = w.VBox([w.HTML(f"<b>Target</b> ({target}): listen first."), self.target_audio, self.status,
                              self.song_audio, w.HBox([self.rating, self.closer, self.submit]), self.log])
        self._show()

    def _show(self) -> None:
        if self.runner.done:
            self.status.value = f"<b>Done.</b> Session saved to <code>{self.saved}</code>."
            self.submit.disabled = True
            return
        self.status.value = f"<b>Step {len(self.runner.steps)} of 21</b>: song {self.runner.song}"
        self.song_audio.value = clip_bytes(self.paths[self.runner.song])

    def answer(self, rating: int, closer: int) -> None:
        ideal, song = self.runner.ideal, self.runner.song
        self.runner.answer(rating, closer)
        self.rows.append(f"<tr><td>{len(self.runner.steps) - 1}</td><td>{song}</td><td>{rating}</td>"
                         f"<td>{'yes' if closer else 'no'}</td><td>{ideal[0]}</td><td>{'yes' if ideal[1] else 'no'}</td></tr>")
        self.log.value = f"{TABLE}{self.HEADER}{''.join(self.rows)}</table>"
        if self.runner.done:
            self.saved = self.runner.session().save(self.results)
        self._show()


def example_players(session, paths: dict[str, str]) -> str:
    """HTML of a recorded session, one row per step with a small audio player (for the rendered book)."""
    import base64

    rows = []
    for i, step in enumerate(session.steps):
        source = "data:audio/ogg;base64," + base64.b64encode(clip_bytes(paths[step.song])).decode()
        mark = " (target)" if step.song == session.target else ""
        rows.append(f"<tr><td>{i}</td><td>{step.position}</td><td>{step.song}{mark}</td><td>{step.rating}</td><td>{step.ideal_rating}</td>"
                    f"<td><audio controls preload='none' style='height:1.8em;width:12em' src='{source}'></audio></td></tr>")
    head = "<tr><th>step</th><th>position</th><th>song</th><th>listener</th><th>ideal user</th><th>first 8 s</th></tr>"
    return f"{TABLE}{head}{''.join(rows)}</table>"
