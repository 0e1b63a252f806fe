"""musicrl: deep reinforcement learning for music recommendation, reproduced."""

from musicrl.envs import ENV_ID, EnvConfig, PreferenceSearchEnv, PreferenceSearchVecEnv

__all__ = ["ENV_ID", "EnvConfig", "PreferenceSearchEnv", "PreferenceSearchVecEnv"]
__version__ = "0.1.0"
