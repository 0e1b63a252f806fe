"""Max difference between the Keras port and the numpy forward pass of tests/reference_tagger.py.

    .venv/bin/python scripts/port_agreement.py [--per-genre 1]

On real GTZAN clips (the first ``per-genre`` clips of each genre in balanced14, one batch),
per block: features and tags of the Keras model with statistics estimated on that batch
against numpy mode 2 on the same batch, and the per-clip variant against numpy with a
batch of one. The tests assert the same agreement (tests/test_tagger.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference_tagger

from musicrl.music import features, tagger
from musicrl.music.audio import load_clip


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--per-genre", type=int, default=1)
    args = cli.parse_args()
    tracks = features.subset(features.read_manifest(), per_genre=args.per_genre, balanced=True)
    audio = np.stack([load_clip(p).samples for p in tracks["path"]])
    weights = tagger.TaggerWeights.load()
    stats = tagger.estimate_stats(weights, audio, reference="this batch")
    ours = tagger.CompactCNN(weights, stats).predict(audio)
    numpy_batch = reference_tagger.forward(weights, audio, conv_until=4)
    clip = tagger.CompactCNN(weights, bn="clip").predict(audio)
    alone = [reference_tagger.forward(weights, audio[i : i + 1], conv_until=4) for i in range(len(audio))]
    numpy_clip = {key: np.concatenate([a[key] for a in alone]) for key in ("features", "tags")}
    print(f"{len(audio)} clips ({', '.join(tracks.track_id)})")
    print("block  max|features| reference  max|tags| reference  max|features| clip  max|tags| clip  feature scale")
    for k in range(tagger.BLOCKS):
        d = [np.abs(a[key][:, k] - b[key][:, k]).max() for a, b in ((ours, numpy_batch), (clip, numpy_clip)) for key in ("features", "tags")]
        print(f"{k + 1:>5}  {d[0]:22.2e}  {d[1]:18.2e}  {d[2]:17.2e}  {d[3]:13.2e}  {np.abs(numpy_batch['features'][:, k]).max():13.2f}")


if __name__ == "__main__":
    main()
