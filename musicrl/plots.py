"""Figures of the book, in one shared seaborn style."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from musicrl import users
from musicrl.evaluation import Episode, smooth


def use_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight"})


def plot_target(target: np.ndarray, start: np.ndarray, ax: plt.Axes | None = None) -> plt.Axes:
    """The thesis's figure 9: one column per feature; crosses the target, circles the start."""
    ax = ax or plt.subplots(figsize=(1.2 + 0.8 * len(target), 3))[1]
    features = np.arange(1, len(target) + 1)
    ax.scatter(features, start, s=220, facecolors="none", edgecolors="C0", linewidths=2, label="start position")
    ax.scatter(features, target, s=120, marker="x", color="C3", linewidths=3, label="target")
    ax.set(xticks=features, yticks=range(users.LEVELS), ylim=(-0.5, users.LEVELS - 0.5), xlim=(0.4, len(target) + 0.6))
    ax.set(xlabel="feature", ylabel="level")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return ax


def plot_rating_maps(target: tuple[int, int], presets: tuple[str, ...] = tuple(users.PRESETS)) -> plt.Figure:
    """For a 2D target, the rating every position gets under each preset."""
    fig, axes = plt.subplots(1, len(presets), figsize=(4.2 * len(presets), 3.6))
    index = int(users.position_to_index(np.asarray(target)))
    for ax, preset in zip(np.atleast_1d(axes), presets):
        grid = users.rating_table(2, preset)[index].reshape(users.LEVELS, users.LEVELS)
        sns.heatmap(grid, annot=True, cbar=False, vmin=0, vmax=users.MAX_RATING, cmap="viridis", square=True, ax=ax)
        ax.set(title=preset, xlabel="feature 2 level", ylabel="feature 1 level")
    return fig


def plot_episodes(episodes: Mapping[str, Episode]) -> plt.Figure:
    """2D paths of several policies against the same target, one panel per policy."""
    fig, axes = plt.subplots(1, len(episodes), figsize=(3.2 * len(episodes), 3.4), squeeze=False)
    for ax, (name, episode) in zip(axes[0], episodes.items()):
        path = users.index_to_position(np.array(episode.positions), 2)
        target = users.index_to_position(episode.target, 2)
        jitter = np.linspace(-0.12, 0.12, len(path))[:, None]
        ax.plot(path[:, 1] + jitter[:, 0], path[:, 0] + jitter[:, 0], "-o", color="C0", ms=4, alpha=0.7)
        ax.scatter([target[1]], [target[0]], marker="x", s=150, color="C3", linewidths=3, zorder=3)
        ax.set(title=f"{name}: {episode.total:g}", xlim=(-0.5, 4.5), ylim=(4.5, -0.5), aspect="equal")
        ax.set(xticks=range(5), yticks=range(5), xlabel="feature 2 level", ylabel="feature 1 level")
    fig.tight_layout()
    return fig


def plot_curves(
    curves: Mapping[str, np.ndarray],
    references: Mapping[str, float] | None = None,
    weight: float = 0.99,
    title: str = "",
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """Training curves as in the thesis's figure 10: raw (faint) and smoothed (strong).

    ``curves`` maps a label (one per seed) to the average return of the last 10 episodes
    after each update; ``references`` draws dashed horizontal levels (e.g. the optimum).
    """
    ax = ax or plt.subplots(figsize=(7, 3.4))[1]
    for i, (label, curve) in enumerate(curves.items()):
        updates = np.arange(1, len(curve) + 1)
        ax.plot(updates, curve, color=f"C{i}", alpha=0.25, lw=0.8)
        ax.plot(updates, smooth(curve, weight), color=f"C{i}", lw=1.8, label=label)
    for j, (label, level) in enumerate((references or {}).items()):
        ax.axhline(level, color="0.3", ls=("--", ":", "-.")[j % 3], lw=1.2, label=label)
    ax.set(xlabel="update", ylabel="avg return, last 10 episodes", title=title)
    ax.legend(loc="lower right", fontsize="small", frameon=True)
    return ax


def plot_checkpoint_returns(
    checkpoints: Mapping[str, tuple[list[int], list[float]]], references: Mapping[str, float] | None = None,
    ax: plt.Axes | None = None, title: str = "",
) -> plt.Axes:
    """Mean return of each checkpoint under the exhaustive protocol, one line per label."""
    ax = ax or plt.subplots(figsize=(7, 3.4))[1]
    for i, (label, (updates, means)) in enumerate(checkpoints.items()):
        ax.plot(updates, means, "-o", color=f"C{i}", ms=3, label=label)
    for j, (label, level) in enumerate((references or {}).items()):
        ax.axhline(level, color="0.3", ls=("--", ":", "-.")[j % 3], lw=1.2, label=label)
    ax.set(xlabel="update", ylabel="mean return, all targets", title=title)
    ax.legend(loc="lower right", fontsize="small")
    return ax
