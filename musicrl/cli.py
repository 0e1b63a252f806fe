"""Command line: ``musicrl book``, ``musicrl baselines``."""

from __future__ import annotations

import argparse
import sys

from musicrl import users
from musicrl.envs import REWARDS, EnvConfig
from musicrl.experiments import PROFILES


def _book(args: argparse.Namespace) -> None:
    from musicrl import book

    chapters = tuple(args.chapters) if args.chapters else book.CHAPTERS
    out = book.build(profile=args.profile, chapters=chapters, html=not args.no_html)
    print(f"book written to {out}")


def _baselines(args: argparse.Namespace) -> None:
    from musicrl import baselines
    from musicrl.evaluation import evaluate_policy

    config = EnvConfig(d=args.d, preset=args.preset, reward=args.reward)
    for name in args.policies or baselines.BASELINES:
        if name == "optimal" and args.d > baselines.EXACT_UP_TO:
            print(f"{name:>10}: skipped for d={args.d} (exact only up to d={baselines.EXACT_UP_TO}; use --bound)")
            continue
        result = evaluate_policy(baselines.make_baseline(name, config), config)
        print(f"{name:>10}: mean {result.mean:8.3f}  std {result.std:7.3f}")
    if args.bound is not None:
        value = baselines.BayesPlanner(config, reveal_after=args.bound).expected_return()
        print(f"{'bound':>10}: {value:8.3f}  (optimum if the target were revealed after {args.bound} steps)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="musicrl", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    book = sub.add_parser("book", help="execute the chapters with papermill and build the HTML book")
    book.add_argument("--profile", default="quick", choices=PROFILES)
    book.add_argument("--chapters", nargs="*", help="chapters to execute (default: all)")
    book.add_argument("--no-html", action="store_true", help="execute notebooks only")
    book.set_defaults(run=_book)
    base = sub.add_parser("baselines", help="evaluate the baselines with the thesis's protocol")
    base.add_argument("--d", type=int, default=2)
    base.add_argument("--preset", default="WiderTopTarget", choices=tuple(users.PRESETS))
    base.add_argument("--reward", default="Bullseye", choices=REWARDS)
    base.add_argument("--policies", nargs="*")
    base.add_argument("--bound", type=int, default=None, help="also print the relaxation bound of this depth")
    base.set_defaults(run=_baselines)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except ValueError as error:
        print(f"musicrl: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
