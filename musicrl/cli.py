"""musicrl: build the book, evaluate baselines, list, train, sweep, publish and carry the thesis's experiments, run
"Beyond the thesis", extract the tagger's features, be the listener, serve the listening test to a class, and pool
a class's sessions (book, baselines, experiments, train, sweep, publish, carry, beyond, features, gtzan-import, listen, serve,
class-table)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from musicrl import profiles, users
from musicrl.algorithms import ALGORITHMS, TRAINERS
from musicrl.envs import REWARDS, EnvConfig
from musicrl.profiles import NAMES as PROFILES


def _book(args: argparse.Namespace) -> None:
    from musicrl import book

    if args.chapters is not None and not args.chapters:
        raise ValueError(f"--chapters needs the names of the chapters to execute: {', '.join(book.CHAPTERS)} "
                         "(without --chapters every chapter is executed)")
    if args.render_only:
        if args.chapters or args.parameter:
            raise ValueError("--render-only executes nothing: it takes neither --chapters nor -p")
        print(f"book written to {book.render()}")
        return
    chapters = tuple(args.chapters) if args.chapters else book.CHAPTERS
    from musicrl.parameters import PATHS

    given = {name: yaml.safe_load(value) for name, value in args.parameter or []}
    given = {name: str(Path(v).resolve()) if name in PATHS and isinstance(v, str) else v for name, v in given.items()}
    out = book.build(profile=args.profile, chapters=chapters, html=not args.no_html, train_missing=args.train_missing,
                     jobs=args.jobs, parameters=given)
    print(f"book written to {out}")


def _baselines(args: argparse.Namespace) -> None:
    from musicrl import baselines
    from musicrl.evaluation import evaluate_policy

    config = EnvConfig(d=args.d, preset=args.preset, reward=args.reward)
    for name in args.policies or ():
        users.check_choice("policy", name, tuple(baselines.BASELINES))  # every name before any work
    for name in args.policies or baselines.BASELINES:
        if name == "optimal" and args.d > baselines.EXACT_UP_TO:
            print(f"{name:>10}: skipped for d={args.d} (exact only up to d={baselines.EXACT_UP_TO}; use --bound)")
            continue
        result = evaluate_policy(baselines.make_baseline(name, config), config)
        print(f"{name:>10}: mean {result.mean:8.3f}  std {result.std:7.3f}")
    if args.bound is not None:
        value = baselines.BayesPlanner(config, reveal_after=args.bound).expected_return()
        print(f"{'bound':>10}: {value:8.3f}  (optimum if the target were revealed after {args.bound} steps)")


def _integer(minimum: int, what: str):
    """An argparse type: an integer >= ``minimum``, else ``"<what> >= <minimum>, got ..."``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} >= {minimum}, got {text!r}")
        return value

    return parse


_seed = _integer(0, "a seed is an integer")
_positive = _integer(1, "expected an integer")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _experiments(args: argparse.Namespace) -> None:
    from musicrl import registry

    names = [*registry.EXPERIMENTS, *registry.VARIANTS]
    frame = registry.experiments_frame(names, args.profile)
    frame.insert(2, "algorithm", [ALGORITHMS[registry.experiment(n).agent.algorithm].short for n in names])
    frame["kind"] = ["thesis's agent" if n in registry.STAND_IN_OF or registry.THESIS_AGENT.get(n) == n
                     else "stand-in" if n in registry.EXPERIMENTS else "variant" for n in names]
    frame = frame.drop(columns=["agent"]).astype(object)
    print(frame.where(frame.notna(), "–").to_string(index=False))
    print("thesis: trained after: env steps until the thesis's curve levelled off; – where the thesis does not say")


def _print_result(result) -> None:
    spec = result.spec
    print(
        f"{spec['name']} seed {spec['seed']}: final {result.final.mean:.2f} (std {result.final.std:.2f}), "
        f"pooled {result.pooled.mean:.2f} (std {result.pooled.std:.2f}) over updates {result.pooled_from}; "
        f"{result.env_steps} env steps in {result.wall_time:.0f} s"
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _overrides(pairs: list[str] | None) -> dict:
    """``["agent.n_steps=10", "env.rating_noise=0.1"]`` -> their values, read as YAML."""
    found = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, e.g. agent.n_steps=10; got {pair!r}")
        found[key] = yaml.safe_load(value)
    return found


def _trainer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trainer", default=None, choices=tuple(TRAINERS),
                        help="default: the profile's (multiseed where it applies, else sb3); 'device' trains on a GPU "
                             "if there is one (runs of their own, new random streams: compare them statistically)")
    parser.add_argument("--device", default=None,
                        help="with --trainer device: cpu, cuda or cuda:N (default $MUSICRL_DEVICE, else the first GPU, else cpu)")
    parser.add_argument("--compile", action="store_true", help="with --trainer device: torch.compile the step and the loss")
    parser.add_argument("--cuda-graph", action="store_true", help="with --trainer device on CUDA: replay each update as a CUDA graph")


def _device_options(args: argparse.Namespace) -> None:
    """The device trainer's options travel as environment variables (to Ray's local workers too);
    none of them is part of a run's key."""
    from musicrl import devicetrainer

    if (args.device or args.compile or args.cuda_graph) and args.trainer != "device":
        raise ValueError("--device, --compile and --cuda-graph go with --trainer device")
    if args.device:
        devicetrainer.training_device(args.device)  # a clear error now rather than inside a worker
        os.environ[devicetrainer.DEVICE_ENV] = args.device
    if args.compile:
        os.environ[devicetrainer.COMPILE_ENV] = "1"
    if args.cuda_graph:
        device = devicetrainer.training_device(args.device)
        if device.type != "cuda":
            raise ValueError(f"--cuda-graph replays CUDA graphs and needs a CUDA device; this run's device is {device} "
                             "(--device cuda on a machine with a GPU, or leave --cuda-graph out)")
        os.environ[devicetrainer.GRAPH_ENV] = "1"


def _train(args: argparse.Namespace) -> None:
    import torch

    from musicrl import registry, runfiles, training

    torch.set_num_threads(args.threads)
    _device_options(args)
    specs = registry.run_specs([args.experiment], args.profile, args.seed, _overrides(args.set), args.trainer)
    # in this process: the seeds together where the trainer can, else one after the other
    results = training.train_seeds(specs, root=args.results, progress=not args.quiet, published=not args.weights)
    for spec, result in zip(specs, results):
        _print_result(result)
        print(f"  stored in {runfiles.RunFolder.of(spec, args.results).path}")


def _sweep(args: argparse.Namespace) -> None:
    from musicrl import publish, registry, training

    names = args.experiments or list(registry.EXPERIMENTS)
    _device_options(args)
    specs = registry.run_specs(names, args.profile, args.seeds, _overrides(args.set), args.trainer)
    local = [s for s in specs if publish.load_result(s, args.results, published=False) is not None]
    published = [s for s in specs if s not in local and publish.load_result(s, args.results) is not None]
    if local or published:
        where = args.address or "this machine"
        print(f"{len(local)} of {len(specs)} runs are finished in the results store and {len(published)} published: read, not "
              f"trained; {len(specs) - len(local) - len(published)} to train on {where}. To train a published run again, "
              "give --results an empty folder and MUSICRL_PUBLISHED=/nonexistent (its key stays the same).")
    for result in training.train_many(specs, root=args.results, address=args.address, workers=args.workers,
                                      connect_timeout=args.connect_timeout):
        _print_result(result)


def _publish(args: argparse.Namespace) -> None:
    import torch

    from musicrl import publish, registry, training
    from musicrl.store import PUBLISHED_ROOT

    torch.set_num_threads(1)
    if args.replace and not args.weights:
        raise ValueError("musicrl publish: --replace only goes with --weights (it replaces a published run by the local "
                         "one whose weights are published)")
    names = args.experiments or [*registry.EXPERIMENTS, *registry.VARIANTS]
    published = Path(args.published) if args.published else PUBLISHED_ROOT
    overrides = _overrides(args.set)
    if overrides and not args.experiments:
        raise ValueError("musicrl publish --set publishes a variant: name its experiments, e.g. fig14-gru")
    written = training.publish_runs(names, args.profile, root=args.results, published=published, progress=not args.quiet,
                                    overrides=overrides)
    files = sorted((published / "runs").glob("*.json.gz")) if (published / "runs").exists() else []
    print(f"published {len(written)} new runs; {published / 'runs'} holds {len(files)} runs, "
          f"{sum(f.stat().st_size for f in files) / 1e6:.2f} MB")
    if args.weights:
        _publish_weights(args.experiments, args.profile, args.seed, args.results, published, args.replace)
    missing = training.missing_runs(names, args.profile, root=args.results, published=published)
    if missing:
        def progress(spec) -> str:
            carried = publish.carried_updates(spec)
            return f" (carried: {carried:,} of {spec.updates:,} updates)" if carried else ""
        print(f"not run yet ({len(missing)}): " + ", ".join(f"{s.name} seed {s.seed}{progress(s)}" for s in missing))
        print("  e.g. musicrl train " + missing[0].name + f" --profile {args.profile} --seed "
              + " ".join(str(s.seed) for s in missing if s.name == missing[0].name))


def _publish_weights(names: list[str], profile: str, seeds, results, published: Path, replace: bool = False) -> None:
    from musicrl import probes, publish, registry

    if not names:
        raise ValueError("musicrl publish --weights needs the experiments whose weights to publish, e.g. fig25 fig25-gru")
    for spec in registry.run_specs(names, profile, seeds):
        before = publish.published_result(spec, published)
        extras = (lambda s: probes.run_extras(s, results)) if replace else None
        target = publish.publish_weights(spec, root=results, published=published, replace_with=extras)
        after = publish.published_result(spec, published)
        if before is not None and after is not None and before.final.mean != after.final.mean:
            print(f"{spec.name} seed {spec.seed}: published result replaced, final mean {before.final.mean:.2f} -> "
                  f"{after.final.mean:.2f}")
        size = sum(f.stat().st_size for f in target.iterdir())
        print(f"{spec.name} seed {spec.seed}: final weights, {size / 1e6:.2f} MB -> {target}")
    folders = list((published / "weights").glob("*/*"))
    print(f"{published / 'weights'} holds {sum(f.stat().st_size for f in folders) / 1e6:.2f} MB")


def _carry(args: argparse.Namespace) -> None:
    from musicrl import publish, registry

    names = args.experiments or [*registry.EXPERIMENTS, *registry.VARIANTS]
    carried = []
    for spec in registry.run_specs(names, args.profile, args.seed):
        path = publish.carry(spec, root=args.results, carry_root=args.carry)
        if path is not None:
            carried.append(path)
            print(f"{spec.name} seed {spec.seed}: {publish.carried_updates(spec, args.carry):,} of {spec.updates:,} "
                  f"updates, {path.stat().st_size / 1e6:.2f} MB -> {path}")
    if not carried:
        print("nothing to carry: no unfinished run with a checkpoint")
        return
    print(f"carried {len(carried)} runs ({sum(p.stat().st_size for p in carried) / 1e6:.2f} MB); commit them, and "
          f"`musicrl train <experiment> --profile {args.profile}` resumes them on any machine")


def _beyond(args: argparse.Namespace) -> None:
    import torch

    from musicrl import beyond, training
    from musicrl.store import PUBLISHED_ROOT

    torch.set_num_threads(1)
    specs = {"noise": beyond.noise_specs, "scaling": beyond.scaling_specs}
    studies = [args.only] if args.only else list(specs)
    chosen = [spec for study in studies for spec in specs[study](args.profile)]
    if args.dims:
        dims = profiles.get(args.profile).beyond.dims
        if not set(args.dims) <= set(dims):
            raise ValueError(f"--dims: the {args.profile} profile's scaling study runs d in {list(dims)}, got {args.dims}")
        chosen = [spec for spec in chosen if not spec.name.startswith("scale") or spec.env.d in args.dims]
    found = training.finished_runs(chosen, root=args.results, address=args.address, workers=args.workers, progress=not args.quiet)
    print(f"{len(found)} of {len(chosen)} runs of {', '.join(studies)} ({args.profile}) finished")
    if args.publish:
        published = Path(args.published) if args.published else PUBLISHED_ROOT
        written = beyond.publish_runs(args.profile, root=args.results, published=published)
        print(f"published {len(written)} new runs to {published / 'runs'}")


def _features(args: argparse.Namespace) -> None:
    from musicrl.music import features
    from musicrl.store import Store

    tracks = features.read_manifest(args.gtzan)
    chosen = features.subset(tracks, per_genre=args.per_genre, balanced=args.balanced)
    store = Store(args.results)
    if args.tagger != "compact_cnn":
        _musicnn_features(args, chosen, store)
        return
    reference = features.subset(tracks, balanced=True)
    extractor = features.Extractor(reference, bn=args.bn, store=store, models=args.models, batch_size=args.batch_size)
    result = extractor.extract(chosen, progress=not args.quiet)
    counts = result.tracks.groupby("genre").size()
    print(f"features of {len(result.tracks)} clips ({', '.join(f'{g} {n}' for g, n in counts.items())}) "
          f"in {store.root / 'features'}; {len(result.failed)} skipped, {int(result.tracks.padded.sum())} zero-padded")
    for track_id, reason in result.failed.items():
        print(f"  skipped {track_id}: {reason}")


def _musicnn_features(args: argparse.Namespace, chosen, store) -> None:
    from musicrl.music import musicnn

    kept, records, failed = musicnn.extract(chosen, args.tagger, store=store, progress=not args.quiet)
    counts = kept.groupby("genre").size()
    print(f"{args.tagger} features of {len(kept)} clips ({', '.join(f'{g} {n}' for g, n in counts.items())}) in "
          f"{store.root / 'musicnn-features'}; {len(failed)} skipped")
    for track_id, reason in failed.items():
        print(f"  skipped {track_id}: {reason}")
    if args.publish:
        print(f"published {musicnn.PUBLISHED_LAYERS} of {len(records)} clips to {musicnn.publish_features(kept, records, args.tagger)}")


def _listen(args: argparse.Namespace) -> None:
    from musicrl.music import listen
    from musicrl.store import Store

    store = Store(args.results)
    print("the tagger's features of every clip are read from the cache; the first run fills it (a few minutes, "
          "once; `musicrl features` does it ahead)")
    from musicrl.music.classroom import clean_name

    name = clean_name(args.name)
    recommender, paths = listen.gtzan_recommender(args.policy, args.layer, no_repeat=not args.repeat,
                                                  gtzan=args.gtzan, models=args.models, store=store, progress=True)
    folder = listen.sessions_dir(store)
    played = sum(1 for path in folder.glob("session-*.json") if _listener_of(path) == name)
    target, seed = listen.student_target(recommender.catalogue, name, args.seed, played)
    if args.target:
        target = args.target
    runner = recommender.start(target, name, seed=seed, drive=args.drive)
    runner.settings["class_seed"] = args.seed
    listen.terminal_session(runner, paths, folder, show_ideal=args.show_ideal)


def _listener_of(path: Path) -> str | None:
    import json

    try:
        return json.loads(path.read_text()).get("listener")
    except (OSError, ValueError, AttributeError):
        return None


def _gtzan_import(args: argparse.Namespace) -> None:
    from tqdm.auto import tqdm

    from musicrl.music import gtzan

    found = gtzan.find_clips(args.source)
    line = gtzan.coverage(found)
    if line:
        print(line)
    with tqdm(total=sum(map(len, found.values())), desc="clips", disable=args.quiet) as bar:
        count, _ = gtzan.import_gtzan(args.source, args.out, progress=lambda done, total: bar.update(done - bar.n))
    print(f"{count} clips and manifest.csv in {args.out}; use it with MUSICRL_GTZAN={Path(args.out).resolve()} "
          "(or --gtzan / -p gtzan)")


def _serve(args: argparse.Namespace) -> None:
    from musicrl.music import listen, serve
    from musicrl.music.classroom import ClassRoom
    from musicrl.store import Store

    serve.check_code(args.code)  # before the features are read
    store = Store(args.results)
    folder = Path(args.folder) if args.folder else store.root / "class"
    if args.demo is not None:
        recommender, paths = serve.demo_recommender(folder / "demo-clips", per_genre=args.demo, no_repeat=not args.repeat)
    else:
        print("the tagger's features of every clip are read from the cache; the first run fills it (about a minute, once)")
        recommender, paths = listen.gtzan_recommender(args.policy, args.layer, no_repeat=not args.repeat, gtzan=args.gtzan,
                                                      models=args.models, store=store, progress=True)
    room = ClassRoom(folder, recommender, seed=args.seed, sessions_per_student=args.sessions)
    print(f"class folder {folder}: {len(recommender.catalogue.ids)} songs, {args.sessions} sessions per student, "
          f"policy {recommender.policy_name}; finished sessions go to {room.sessions_dir}")
    try:
        serve.run(room, serve.AudioCache(folder / "audio", paths), host=args.host, port=args.port, code=args.code)
    finally:
        room.close()


def _class_table(args: argparse.Namespace) -> None:
    from musicrl import plots
    from musicrl.music import listen
    from musicrl.music import recommender as rec
    from musicrl.store import Store, write_json_atomic

    store = Store(args.results)
    recommender, _ = listen.gtzan_recommender(args.policy, args.layer, gtzan=args.gtzan, models=args.models, store=store)
    sessions, rejected = rec.load_class_sessions(args.sessions, recommender.catalogue, layer=args.layer)
    for message in rejected:
        print(f"skipped {message}", file=sys.stderr)
    table = rec.class_table(sessions, recommender, seed=args.seed)
    listeners = len({s.listener for s in sessions})
    print(f"pooled {_count(len(sessions), 'session')} of {_count(listeners, 'listener')}; skipped {_count(len(rejected), 'file')}")
    print("Table 1 of this class: per target genre, the mean absolute difference between a listener's rating and the ideal "
          "user's (0 = always the same), beside the thesis's and the simulated listeners'")
    print(table.round(2).to_string())
    out = Path(args.out) if args.out else store.root / "class"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "class-table.json", {"table": table.reset_index(names="target genre").to_dict(orient="records"),
                                                 "rejected": rejected, "sessions": len(sessions)})
    figure = plots.class_table_figure(table)
    tmp = out / ".class-table.png"
    figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    tmp.replace(out / "class-table.png")
    print(f"wrote {out / 'class-table.json'} and {out / 'class-table.png'}")


RESULTS_HELP = "results directory (default $MUSICRL_RESULTS or results/ in the repository)"
VARIANT_HELP = ("a variant of the experiment, e.g. --set agent.n_steps=10 env.rating_noise=0.1 updates=300 (its own name "
                "and run keys; see `musicrl experiments`)")


def _experiments_arguments(parser: argparse.ArgumentParser, names_help: str, profile: str) -> None:
    """The experiments a verb acts on, and under which profile."""
    parser.add_argument("experiments", nargs="*", help=names_help)
    parser.add_argument("--profile", default=profile, choices=PROFILES)


def _verb_book(sub: Any) -> None:
    """`musicrl book`: its arguments and handler."""
    book = sub.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    book.add_argument("--profile", default="quick", choices=PROFILES)
    book.add_argument("--chapters", nargs="*", help="chapters to execute (default: all)")
    book.add_argument("--no-html", action="store_true", help="execute notebooks only")
    book.add_argument("--render-only", action="store_true",
                      help="execute nothing: render the notebooks in book/ as they are (e.g. after papermill wrote one)")
    book.add_argument("--train-missing", action=argparse.BooleanOptionalAction, default=None,
                      help="train the runs that neither results/ nor published/ holds (default: yes, except --profile full, "
                           "whose chapters show the published runs and list the missing ones)")
    book.add_argument("--jobs", type=_positive, default=None,
                      help="chapters executed at once (default: one per core, at most 2); the pages do not depend on it")
    book.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                      help="a chapter parameter, as papermill's -p (VALUE read as YAML: 0.9, true, [0.2, 0.1]); "
                           "given to each chosen chapter that takes it, e.g. -p smoothing 0.95")
    book.set_defaults(run=_book)


def _verb_baselines(sub: Any) -> None:
    """`musicrl baselines`: its arguments and handler."""
    base = sub.add_parser("baselines", help="evaluate the baselines with the thesis's protocol")
    base.add_argument("--d", type=int, default=2)
    base.add_argument("--preset", default="WiderTopTarget", choices=tuple(users.PRESETS))
    base.add_argument("--reward", default="Bullseye", choices=REWARDS)
    base.add_argument("--policies", nargs="*")
    base.add_argument("--bound", type=int, default=None, help="also print the relaxation bound of this depth")
    base.set_defaults(run=_baselines)


def _verb_experiments(sub: Any) -> None:
    """`musicrl experiments`: its arguments and handler."""
    listing = sub.add_parser("experiments", help="list the thesis's training experiments and their budgets")
    listing.add_argument("--profile", default="quick", choices=PROFILES)
    listing.set_defaults(run=_experiments)


def _verb_train(sub: Any) -> None:
    """`musicrl train`: its arguments and handler."""
    train = sub.add_parser("train", help="train one experiment (resumes an interrupted run; a finished one is read)")
    train.add_argument("experiment", help="experiment name, e.g. fig14 (see `musicrl experiments`)")
    train.add_argument("--profile", default="quick", choices=PROFILES)
    train.add_argument("--seed", type=_seed, nargs="+", default=[0], help="one or more seeds (default 0)")
    train.add_argument("--results", default=None, help=RESULTS_HELP)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--weights", action="store_true",
                       help="train (resuming from carry/) even the runs published/ holds, whose results come without "
                            "weights; then `musicrl publish --weights` publishes their final checkpoints")
    train.add_argument("--threads", type=_positive, default=1,
                       help="torch threads (default 1: the networks are small, and parallel runs then share the cores)")
    train.add_argument("--set", nargs="+", metavar="KEY=VALUE", help=VARIANT_HELP)
    _trainer_arguments(train)
    train.set_defaults(run=_train)


def _verb_sweep(sub: Any) -> None:
    """`musicrl sweep`: its arguments and handler."""
    sweep = sub.add_parser("sweep", help="train experiments x seeds in parallel with Ray")
    _experiments_arguments(sweep, "experiment names (default: all)", "quick")
    sweep.add_argument("--set", nargs="+", metavar="KEY=VALUE", help=VARIANT_HELP)
    sweep.add_argument("--seeds", type=_seed, nargs="+", default=None, help="seeds (default: the profile's)")
    sweep.add_argument("--address", default=None,
                       help="Ray cluster, e.g. HEAD:6380 or ray://HEAD:10001 (default: a private local instance; README: 'A Ray cluster')")
    sweep.add_argument("--connect-timeout", type=_positive_seconds, default=30.0,
                       help="seconds to reach the cluster's head before giving up (default 30)")
    sweep.add_argument("--workers", type=_positive, default=None, help="local parallel runs (default: CPU count)")
    sweep.add_argument("--results", default=None, help="results directory, shared by all nodes on a cluster")
    _trainer_arguments(sweep)
    sweep.set_defaults(run=_sweep)


def _verb_publish(sub: Any) -> None:
    """`musicrl publish`: its arguments and handler."""
    pub = sub.add_parser("publish", help="copy finished runs (no weights) into the published results the book reads")
    _experiments_arguments(pub, "experiment names (default: all, with the variants such as fig17-entropy)", "full")
    pub.add_argument("--results", default=None, help=RESULTS_HELP)
    pub.add_argument("--published", default=None, help="published results (default $MUSICRL_PUBLISHED or <repo>/published)")
    pub.add_argument("--quiet", action="store_true", help="no progress bar")
    pub.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                     help="publish the runs of this variant of the named experiments (as train --set made them)")
    pub.add_argument("--seed", type=_seed, nargs="+", default=None, help="seeds whose weights --weights publishes (default: the profile's)")
    pub.add_argument("--weights", action="store_true",
                     help="also publish the final weights (published/weights/, ~0.6 MB a run) of the named experiments, "
                          "which need their final checkpoints in --results (musicrl train <experiment> --weights)")
    pub.add_argument("--replace", action="store_true",
                     help="with --weights: where the local run's numbers differ from the published ones (retrained beside "
                          "other batch-mates), replace the published run by the local one, so weights and numbers agree")
    pub.set_defaults(run=_publish)


def _verb_carry(sub: Any) -> None:
    """`musicrl carry`: its arguments and handler."""
    car = sub.add_parser("carry", help="pack unfinished runs' last checkpoints into carry/ to resume on another machine")
    _experiments_arguments(car, "experiments (default: all, with the variants)", "full")
    car.add_argument("--seed", type=_seed, nargs="+", default=None, help="seeds (default: the profile's)")
    car.add_argument("--results", default=None, help=RESULTS_HELP)
    car.add_argument("--carry", default=None, help="carry folder (default $MUSICRL_CARRY or <repo>/carry)")
    car.set_defaults(run=_carry)


def _verb_beyond(sub: Any) -> None:
    """`musicrl beyond`: its arguments and handler."""
    far = sub.add_parser("beyond", help="train the runs of the chapter 'Beyond the thesis' (noise, more features)")
    far.add_argument("--only", choices=("noise", "scaling"), default=None, help="one study (default: both)")
    far.add_argument("--profile", default="quick", choices=PROFILES)
    far.add_argument("--dims", type=int, nargs="+", default=None,
                     help="scaling study: only these d (to split it over sessions; default: the profile's)")
    far.add_argument("--address", default=None, help="Ray cluster, e.g. ray://host:10001 (default: local)")
    far.add_argument("--workers", type=_positive, default=None, help="local parallel runs (default: CPU count)")
    far.add_argument("--results", default=None, help=RESULTS_HELP)
    far.add_argument("--publish", action="store_true", help="then copy the finished runs (no weights) to published/")
    far.add_argument("--published", default=None, help="published results (default $MUSICRL_PUBLISHED or <repo>/published)")
    far.add_argument("--quiet", action="store_true", help="no progress bar")
    far.set_defaults(run=_beyond)


def _verb_features(sub: Any) -> None:
    """`musicrl features`: its arguments and handler."""
    feats = sub.add_parser("features", help="run the compact_cnn tagger over the GTZAN clips (cached per clip)")
    feats.add_argument("--gtzan", default=None, help="clips and manifest.csv (default $MUSICRL_GTZAN or ../shared/data/gtzan12k)")
    feats.add_argument("--models", default=None, help="compact_cnn weights (default $MUSICRL_MODELS or ../shared/models/compact_cnn)")
    feats.add_argument("--bn", default="reference", choices=("reference", "clip"),
                       help="batch statistics from the balanced14 reference set (default) or per clip")
    feats.add_argument("--per-genre", type=_positive, default=None, help="only the first N clips of each genre")
    feats.add_argument("--balanced", action="store_true", help="only the balanced14 subset")
    feats.add_argument("--batch-size", type=_positive, default=16)
    feats.add_argument("--results", default=None, help=RESULTS_HELP)
    feats.add_argument("--tagger", default="compact_cnn", choices=("compact_cnn", "musicnn-msd", "musicnn-mtt"),
                       help="compact_cnn (the thesis's, default) or musicnn (Pons & Serra 2019) trained on MSD or MTT")
    feats.add_argument("--publish", action="store_true",
                       help="with a musicnn tagger: write the book's layers to published/features/<tagger>.json.gz")
    feats.add_argument("--quiet", action="store_true", help="no progress bar")
    feats.set_defaults(run=_features)


def _verb_listen(sub: Any) -> None:
    """`musicrl listen`: its arguments and handler."""
    lis = sub.add_parser("listen", help="be the listener: the recommender proposes GTZAN clips, you rate them")
    lis.add_argument("--target", default=None,
                     help="target clip id, e.g. jazz.00003 (default: drawn for your name and session from --seed, as a class's)")
    lis.add_argument("--name", required=True, help="your first name or a pseudonym, saved with the session (a class pools by it)")
    lis.add_argument("--policy", default="greedy",
                     help="greedy (default), lookahead, random, or a 4D agent with published weights (e.g. fig25-gru)")
    lis.add_argument("--layer", default="third", choices=("second", "third", "last", "pooled"))
    lis.add_argument("--repeat", action="store_true",
                     help="let the recommender play a song again (by default no song is played twice)")
    lis.add_argument("--no-repeat", action="store_true", help=argparse.SUPPRESS)  # the default; kept for old scripts
    lis.add_argument("--drive", default="ideal", choices=("ideal", "listener"),
                     help="whose answers steer the recommender: a simulated ideal listener's (default, as the thesis's "
                          "Table 1) or yours")
    lis.add_argument("--show-ideal", action="store_true",
                     help="after each answer, show the ideal listener's (off by default: it can bias yours)")
    lis.add_argument("--seed", type=_seed, default=0, help="the class seed the targets are drawn from (default 0)")
    lis.add_argument("--gtzan", default=None)
    lis.add_argument("--models", default=None)
    lis.add_argument("--results", default=None, help="results directory; sessions go to <results>/sessions")
    lis.set_defaults(run=_listen)


def _verb_class_table(sub: Any) -> None:
    """`musicrl class-table`: its arguments and handler."""
    cls = sub.add_parser("class-table", help="pool a class's saved sessions into its Table 1 (beside the thesis and simulated listeners)")
    cls.add_argument("sessions", help="folder of saved sessions (session-*.json); bad and foreign files are named and skipped")
    cls.add_argument("--policy", default="greedy", choices=("greedy", "lookahead", "random"),
                     help="the policy of the simulated listeners' sessions")
    cls.add_argument("--layer", default="third", choices=("second", "third", "last", "pooled"))
    cls.add_argument("--seed", type=_seed, default=0)
    cls.add_argument("--gtzan", default=None)
    cls.add_argument("--models", default=None)
    cls.add_argument("--results", default=None, help="results directory (features cache); the table goes to <results>/class")
    cls.add_argument("--out", default=None, help="folder for class-table.json and class-table.png")
    cls.set_defaults(run=_class_table)


def _verb_gtzan_import(sub: Any) -> None:
    """`musicrl gtzan-import`: its arguments and handler."""
    imp = sub.add_parser("gtzan-import", help="turn the GTZAN download (genres/<genre>/<genre>.000NN.wav) into this project's "
                                              "clips (12 kHz mono Ogg, 29 s) and manifest.csv")
    imp.add_argument("source", help="the folder holding genres/ (or genres/ itself), .wav or .au clips")
    imp.add_argument("out", help="the folder to write, e.g. data/gtzan12k; then MUSICRL_GTZAN=<it>; a rerun resumes")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(run=_gtzan_import)


def _verb_serve(sub: Any) -> None:
    """`musicrl serve`: its arguments and handler."""
    srv = sub.add_parser("serve", help="the listening test for a class in the browser, pooled live into its Table 1")
    srv.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1: this machine only); any other, e.g. 0.0.0.0 for a "
                          "classroom, is class mode: students need the class code")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--code", default=None, help="the class code (letters and digits); class mode makes one if not given")
    srv.add_argument("--folder", default=None, help="the class's folder (default <results>/class); a restart resumes it")
    srv.add_argument("--sessions", type=_positive, default=3, help="sessions per student (default 3, as the lab plan)")
    srv.add_argument("--policy", default="greedy",
                     help="greedy (default), lookahead, random, or a 4D agent with published weights (e.g. fig25-gru)")
    srv.add_argument("--layer", default="third", choices=("second", "third", "last", "pooled"))
    srv.add_argument("--repeat", action="store_true", help="let the recommender play a song again (by default it never does)")
    srv.add_argument("--seed", type=_seed, default=0, help="the class seed: targets and songs are drawn from it")
    srv.add_argument("--demo", type=_positive, nargs="?", const=10, default=None, metavar="PER_GENRE",
                     help="a stand-in catalogue of tones in five genres, 10 each unless given (no GTZAN, no tagger): to try "
                          "the server")
    srv.add_argument("--gtzan", default=None)
    srv.add_argument("--models", default=None)
    srv.add_argument("--results", default=None, help="results directory (features cache; the class folder's default parent)")
    srv.set_defaults(run=_serve)


VERBS = (
    _verb_book,
    _verb_baselines,
    _verb_experiments,
    _verb_train,
    _verb_sweep,
    _verb_publish,
    _verb_carry,
    _verb_beyond,
    _verb_features,
    _verb_listen,
    _verb_class_table,
    _verb_gtzan_import,
    _verb_serve,
)


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per verb (each added by its ``_verb_*`` function)."""
    top = argparse.ArgumentParser(prog="musicrl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        verb(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from musicrl.cluster import sigterm_interrupts  # after parsing: --help needs no torch

    try:
        with sigterm_interrupts():  # a SIGTERM ends like Ctrl-C: Ray shut down, finished runs kept
            args.run(args)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"musicrl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"musicrl: interrupted: {args.command} stopped; what finished is kept, and the same command resumes the rest",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
