"""musicnn's port against its original graph: the wheel's own TensorFlow-1 training graph, executed.

    .venv/bin/python scripts/musicnn_reference.py [--write]

For each model (MSD, MTT) and a few GTZAN clips, the clip's patches go through the graph of
the wheel's ``.meta`` (``import_meta_graph`` after stripping its stored ``_output_shapes``,
which current TensorFlow rejects; ``Saver.restore`` with the checkpoint's prefix given
explicitly; ``is_training`` fed False) and through :class:`musicrl.music.musicnn.Musicnn`;
prints the largest absolute difference of the taggram and of every feature layer. With
``--write`` it stores the first patch of two clips and the graph's outputs (layers
of a time axis as their first and last five frames and their mean over time) in
``tests/data/musicnn_reference.npz``, which ``tests/test_musicnn.py`` holds the port to.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from musicrl.music import gtzan_dir, musicnn  # noqa: E402
from musicrl.music.audio import SR, load_clip  # noqa: E402
from musicrl.store import results_root  # noqa: E402

CLIPS = ("jazz.00003", "metal.00002", "classical.00010")
OUT = ROOT / "tests" / "data" / "musicnn_reference.npz"
# The graph's tensors of each layer (models.build_musicnn, read from the .meta).
TENSORS = {"taggram": "model/Sigmoid:0", "timbral": ("model/Squeeze:0", "model/Squeeze_1:0"),
           "temporal": ("model/Squeeze_2:0", "model/Squeeze_3:0", "model/Squeeze_4:0"), "cnn1": "model/transpose:0",
           "cnn2": "model/Add:0", "cnn3": "model/Add_1:0", "max_pool": "model/Max:0", "mean_pool": "model/moments/Squeeze:0",
           "penultimate": "model/batch_normalization_10/batchnorm/add_1:0"}


def original(folder: Path, batch: np.ndarray) -> dict[str, np.ndarray]:
    """The layers of the wheel's own graph for ``batch`` (B, 187, 96)."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        saver.restore(session, str(folder) + "/")
        fetch = {k: v if isinstance(v, tuple) else (v,) for k, v in TENSORS.items()}
        flat = [name for names in fetch.values() for name in names]
        values = dict(zip(flat, session.run(flat, {"model/Placeholder:0": batch, "model/Placeholder_2:0": False})))
    out = {}
    for layer, names in fetch.items():
        parts = [values[n] for n in names]
        joined = np.concatenate(parts, axis=2) if len(parts) > 1 else parts[0]
        out[layer] = joined.reshape(len(batch), *[s for s in joined.shape[1:] if s != 1])
    return out


def reduced(layers: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Layers with a time axis as their first and last five frames and their mean over time."""
    out = {}
    for k, v in layers.items():
        if v.ndim == 3:
            out[f"{k}/edges"] = np.concatenate([v[:, :5], v[:, -5:]], axis=1)
            out[f"{k}/mean"] = v.mean(axis=1)
        else:
            out[k] = v
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"store the reference in {OUT.relative_to(ROOT)}")
    args = parser.parse_args()
    cache = results_root() / "musicnn"
    stored: dict[str, np.ndarray] = {}
    for tagger, model in musicnn.TAGGERS.items():
        folder = musicnn.checkpoint(model, cache)
        port = musicnn.Musicnn.load(tagger, cache)
        worst: dict[str, float] = {}
        for clip_id in CLIPS:
            genre = clip_id.split(".")[0]
            batch = musicnn.patches(musicnn.spectrogram(load_clip(gtzan_dir() / genre / f"{clip_id}.ogg").samples, SR))
            graph, ours = original(folder, batch), port.forward(batch)
            for layer in musicnn.LAYERS:
                worst[layer] = max(worst.get(layer, 0.0), float(np.abs(graph[layer] - ours[layer]).max()))
            if clip_id in CLIPS[:2]:
                stored[f"{clip_id}/input"] = batch[:1]
                for k, v in reduced(original(folder, batch[:1])).items():
                    stored[f"{tagger}/{clip_id}/{k}"] = v
        print(f"{tagger} ({model}), {len(CLIPS)} clips, every patch: max |port - graph| "
              + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(OUT, **stored)
        print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
