"""The thesis's second half: songs as positions.

``audio`` loads clips as the tagger expects them, ``tagger`` is the compact_cnn network in
Keras 3 (the only module here that imports TensorFlow), ``features`` runs it over a
catalogue of clips with a cache, and ``catalogue`` turns features into PCA coordinates and
grid positions the agent can propose.
"""

import os
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared"


def shared_path(env: str, default: Path) -> Path:
    """``$env`` if set, else ``default`` (a folder beside the clone: ``../shared/...``)."""
    return Path(os.environ[env]) if os.environ.get(env) else default


def models_dir() -> Path:
    """Where the compact_cnn weights are: ``$MUSICRL_MODELS`` or ``../shared/models/compact_cnn``."""
    return shared_path("MUSICRL_MODELS", SHARED / "models" / "compact_cnn")


def gtzan_dir() -> Path:
    """Where the GTZAN clips and manifest are: ``$MUSICRL_GTZAN`` or ``../shared/data/gtzan12k``."""
    return shared_path("MUSICRL_GTZAN", SHARED / "data" / "gtzan12k")


def samples_dir() -> Path:
    """A few real clips for tests and examples: ``$MUSICRL_SAMPLES`` or ``../shared/data/samples``."""
    return shared_path("MUSICRL_SAMPLES", SHARED / "data" / "samples")
