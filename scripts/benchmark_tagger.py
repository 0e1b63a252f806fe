"""Clips per second through the compact_cnn tagger, all five blocks at once, and peak memory.

    .venv/bin/python scripts/benchmark_tagger.py [--batch-size 16] [--threads N]

Measures, in a scratch results store (nothing cached): loading and decoding every staged
GTZAN clip, estimating the batch statistics over the balanced14 reference set, and the
tagger over all clips; then extrapolates to the full 1000-clip GTZAN at the measured rate.
Peak memory is the process's maximum resident set size. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--batch-size", type=int, default=16)
    cli.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    args = cli.parse_args()

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    from musicrl.music import features
    from musicrl.music.audio import load_clip
    from musicrl.store import Store

    tracks = features.read_manifest()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        for path in tracks["path"]:
            load_clip(path)
        decode = time.perf_counter() - start
        extractor = features.Extractor(features.subset(tracks, balanced=True), store=Store(scratch), batch_size=args.batch_size)
        start = time.perf_counter()
        extractor.network()
        stats = time.perf_counter() - start
        start = time.perf_counter()
        result = extractor.extract(tracks, progress=False)
        total = time.perf_counter() - start
    n = len(result.tracks)
    rate = n / total
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"clips: {n} staged ({len(result.failed)} unreadable); batch size {args.batch_size}")
    print(f"decode only:              {decode:6.1f} s  ({len(tracks) / decode:.0f} clips/s)")
    print(f"reference statistics:     {stats:6.1f} s  ({len(extractor.reference)} clips, 5 blocks, incl. graph build)")
    print(f"tagger, all 5 blocks:     {total:6.1f} s  ({rate:.1f} clips/s, decoding included)")
    print(f"staged clips, end to end: {stats + total:6.1f} s  (target <= 120 s)")
    print(f"1000 clips at this rate:  {stats + 1000 / rate:6.1f} s  (target <= 300 s)")
    print(f"peak memory (max RSS):    {peak:6.0f} MB")
    assert np.isfinite(result.pooled).all()


if __name__ == "__main__":
    main()
