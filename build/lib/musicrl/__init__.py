"""musicrl: deep reinforcement learning for music recommendation, reproduced."""

import os as _os
import sys as _sys
import types as _types

# TensorBoard's event writer (SB3 logs through it) imports TensorFlow whenever TensorFlow
# is installed: 5 s and a screen of start-up logs for nothing. TensorBoard's own switch,
# the module ``tensorboard.compat.notf``, makes it use its built-in stub instead. The
# tagger (musicrl.music.tagger) imports TensorFlow itself, only where it runs.
_sys.modules.setdefault("tensorboard.compat.notf", _types.ModuleType("tensorboard.compat.notf"))
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from musicrl.envs import ENV_ID, EnvConfig, PreferenceSearchEnv, PreferenceSearchVecEnv  # noqa: E402

__all__ = ["ENV_ID", "EnvConfig", "PreferenceSearchEnv", "PreferenceSearchVecEnv"]
__version__ = "0.1.0"
