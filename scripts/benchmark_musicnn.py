"""Clips per second through musicnn (the torch port, every layer) beside compact_cnn, and peak memory.

    .venv/bin/python scripts/benchmark_musicnn.py [--clips 40] [--threads 1]

Runs both taggers over the first ``--clips`` clips of the manifest in a scratch results store
(nothing cached), one process after the other so that each peak memory is its own, and prints
the clips per second (decoding included) and each run's peak resident memory. A benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE = """
import json, resource, sys, tempfile, time
import torch
torch.set_num_threads({threads})
from musicrl.music import features, musicnn
from musicrl.store import Store
tracks = features.read_manifest().head({clips})
with tempfile.TemporaryDirectory() as scratch:
    store = Store(scratch)
    start = time.perf_counter()
    if "{tagger}" == "compact_cnn":
        extractor = features.Extractor(features.subset(features.read_manifest(), balanced=True), store=store)
        extractor.network()
        start = time.perf_counter()
        extractor.extract(tracks, progress=False)
    else:
        musicnn.Musicnn.load("{tagger}", store.root / "musicnn")
        start = time.perf_counter()
        musicnn.extract(tracks, "{tagger}", store=store, progress=False, published="/nonexistent")
    seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--clips", type=int, default=40)
    cli.add_argument("--threads", type=int, default=1)
    args = cli.parse_args()
    print(f"{args.clips} GTZAN clips (29 s, 12 kHz), {args.threads} thread(s), decoding included, model load excluded")
    for tagger in ("compact_cnn", "musicnn-msd"):
        out = subprocess.run([sys.executable, "-c", ONE.format(threads=args.threads, clips=args.clips, tagger=tagger)],
                             capture_output=True, text=True, cwd=ROOT, env={"TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(args.threads),
                                                                           **__import__("os").environ})
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{tagger:>12}: {args.clips / result['seconds']:5.2f} clips/s ({result['seconds']:.1f} s), peak memory "
              f"{result['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
