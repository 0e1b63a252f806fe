"""Figures of the book, in one shared seaborn style."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from musicrl import users
from musicrl.evaluation import Episode
from musicrl.stats import smooth

PALETTE = sns.color_palette("tab10")  # distinct hues: seaborn's "colorblind" has two near-identical oranges


def use_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
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


def thousands(x: float, _pos=None) -> str:
    """A tick label for update counts: 80000 -> "80k", so long budgets' ticks do not run together."""
    return f"{x / 1000:g}k" if abs(x) >= 1000 else f"{x:g}"


REFERENCE_STYLES = (("0.15", "--"), ("#8c564b", ":"), ("#7f7f7f", "-."))


def reference_lines(ax: plt.Axes, references: Mapping[str, float] | None) -> None:
    """Dashed horizontal levels (optimum, greedy, ...), each in its own colour and dash and named
    at the right edge, the names moved apart where the levels nearly coincide."""
    placed: list[float] = []
    low, high = ax.get_ylim()
    gap = 0.06 * (high - low if high > low else 1.0)
    for j, (label, level) in enumerate(sorted((references or {}).items(), key=lambda kv: -kv[1])):
        colour, dash = REFERENCE_STYLES[j % len(REFERENCE_STYLES)]
        ax.axhline(level, color=colour, ls=dash, lw=1.3, label=label)
        y = level if not placed or placed[-1] - level >= gap else placed[-1] - gap
        placed.append(y)
        ax.annotate(f"{label} {level:.0f}", xy=(1.0, y), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize="x-small", color=colour, annotation_clip=False)


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
    reference_lines(ax, references)
    ax.set(xlabel="update", ylabel="avg return, last 10 episodes")
    ax.set_title(textwrap.fill(title, 48), fontsize="medium")  # a long caption wraps instead of running into its neighbour
    ax.xaxis.set_major_formatter(FuncFormatter(thousands))
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
    reference_lines(ax, references)
    ax.set(xlabel="update", ylabel="mean return, all targets", title=title)
    ax.xaxis.set_major_formatter(FuncFormatter(thousands))
    ax.legend(loc="lower right", fontsize="small")
    return ax


def genre_palette(genres) -> dict[str, tuple]:
    """One fixed colour per genre (tab10 in the thesis's genre order), the same in every figure."""
    from musicrl.music.analysis import genre_order

    order = genre_order(genres)
    return dict(zip(order, sns.color_palette("tab10", len(order))))


def plot_pcs(coords: np.ndarray, genres, title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """The first two principal components of every song, coloured by genre (figures 26-28)."""
    ax = ax or plt.subplots(figsize=(5.2, 4.4))[1]
    palette = genre_palette(genres)
    sns.scatterplot(x=coords[:, 0], y=coords[:, 1], hue=np.asarray(genres), hue_order=list(palette), palette=palette,
                    s=14, alpha=0.75, linewidth=0, ax=ax)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize="small", markerscale=1.5)
    return ax


def plot_pcs_3d(coords: np.ndarray, genres, title: str = "") -> plt.Figure:
    """The first three principal components, coloured by genre, from two viewing angles."""
    fig = plt.figure(figsize=(11, 4.6))
    palette = genre_palette(genres)
    genres = np.asarray(genres)
    for i, azim in enumerate((-60, 30)):
        ax = fig.add_subplot(1, 2, i + 1, projection="3d")
        for genre, colour in palette.items():
            pick = genres == genre
            ax.scatter(*coords[pick, :3].T, s=8, color=colour, alpha=0.75, label=genre)
        ax.view_init(elev=20, azim=azim)
        ax.set(xlabel="PC 1", ylabel="PC 2", zlabel="PC 3")
    fig.suptitle(title)
    fig.axes[-1].legend(loc="upper left", bbox_to_anchor=(1.05, 1.0), frameon=False, fontsize="small")
    return fig


def plot_genre_distances(matrix, title: str = "", ax: plt.Axes | None = None) -> plt.Axes:
    """Heatmap of the distances between genre centres (figures 29-31)."""
    ax = ax or plt.subplots(figsize=(5.6, 4.6))[1]
    sns.heatmap(matrix, annot=True, fmt=".2f", cmap="viridis_r", square=True, cbar=False, annot_kws={"size": 7}, ax=ax)
    ax.set(title=title)
    return ax


def plot_explained_variance(ratios: Mapping[str, np.ndarray], ax: plt.Axes | None = None) -> plt.Axes:
    """Cumulative explained variance against the number of principal components, one line per layer."""
    ax = ax or plt.subplots(figsize=(6, 3.4))[1]
    for label, ratio in ratios.items():
        ax.plot(np.arange(1, len(ratio) + 1), np.cumsum(ratio), "-o", ms=3, label=label)
    ax.axvline(4, color="0.4", ls="--", lw=1, label="4 (the thesis)")
    ax.set(xlabel="principal components", ylabel="cumulative explained variance", ylim=(0, 1.02))
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_pipeline() -> plt.Figure:
    """Our version of the thesis's figure 32: from audio to the songs a listener hears."""
    fig, ax = plt.subplots(figsize=(12, 4.2))
    ax.set(xlim=(0, 12), ylim=(0, 4.2))
    ax.axis("off")
    boxes = {
        "audio": (0.9, 3.3, "GTZAN clip\n12 kHz, 29 s"),
        "tagger": (3.3, 3.3, "compact_cnn tagger\n(Keras 3)"),
        "features": (5.9, 3.3, "50 tag features\nof one layer"),
        "pca": (8.5, 3.3, "PCA to 4D,\nquantile levels 0..4"),
        "catalogue": (10.9, 3.3, "catalogue:\nsong ↔ position"),
        "policy": (3.3, 1.0, "policy: trained agent\nor best baseline"),
        "song": (6.6, 1.0, "position → song\n(nearest if empty;\noptional no-repeat)"),
        "listener": (10.0, 1.0, "listener: a person or\nideal / feature / genre /\nnoisy simulated one"),
        "ideal": (6.6, 2.2, "ideal user on the grid\n(the environment)"),
    }
    for x, y, text in boxes.values():
        ax.text(x, y, text, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "#eef3fb", "edgecolor": "#4c72b0"})

    def arrow(a, b, label="", dy=0.0):
        (x1, y1, _), (x2, y2, _) = boxes[a], boxes[b]
        ax.annotate("", xy=(x2 - 0.95 * np.sign(x2 - x1) if x1 != x2 else x2, y2 + dy),
                    xytext=(x1 + 0.95 * np.sign(x2 - x1) if x1 != x2 else x1, y1 + dy),
                    arrowprops={"arrowstyle": "->", "color": "0.3"})
        if label:
            ax.text((x1 + x2) / 2, (y1 + y2) / 2 + dy + 0.15, label, ha="center", fontsize=8, color="0.3")

    for a, b in (("audio", "tagger"), ("tagger", "features"), ("features", "pca"), ("pca", "catalogue")):
        arrow(a, b)
    arrow("policy", "song", "position")
    arrow("song", "listener", "8 s of the song")
    ax.annotate("", xy=(7.6, 1.55), xytext=(10.5, 2.8), arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.text(9.3, 1.75, "songs at each position", fontsize=8, color="0.3")
    ax.annotate("", xy=(4.0, 1.45), xytext=(5.3, 2.0), arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.annotate("", xy=(5.5, 2.3), xytext=(3.6, 1.5), arrowprops={"arrowstyle": "->", "color": "0.6"})
    ax.text(2.4, 2.4, "position  /  closer, rating", fontsize=8, color="0.3")
    ax.annotate("", xy=(10.0, 0.3), xytext=(3.3, 0.3), arrowprops={"arrowstyle": "-", "color": "0.6", "ls": "--"})
    ax.text(6.6, 0.05, "listener's answers: recorded (and, with drive='listener', fed to the policy)", ha="center", fontsize=8, color="0.4")
    return fig


def episode_gif(policy, config, target, scale: int = 1, seconds_per_step: float = 0.6) -> bytes:
    """One episode as an animated GIF: the env's ``rgb_array`` frames, collected by gymnasium's
    ``RenderCollection`` wrapper (a column per feature: target red, position blue, both purple;
    below, the rating bar and the closer flag)."""
    import io

    from gymnasium.wrappers import RenderCollection
    from PIL import Image

    from musicrl.envs import EPISODE_STEPS, PreferenceSearchEnv

    env = RenderCollection(PreferenceSearchEnv(**config.to_dict(), render_mode="rgb_array"))
    observation, _ = env.reset(options={"target": target})
    state, start = None, True
    for _ in range(EPISODE_STEPS):
        action, state = policy.predict(observation[None], state, np.array([start]), deterministic=True)
        start = False
        observation, *_ = env.step(np.asarray(action).reshape(-1)[0])
    frames = [Image.fromarray(np.kron(frame, np.ones((scale, scale, 1), dtype=np.uint8))) for frame in env.render()]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=int(1000 * seconds_per_step), loop=0)
    return buffer.getvalue()


def _with_errors(ax: plt.Axes, frame, x: str, label: str, offset: float, **style) -> None:
    low = (frame["mean"] - frame["low"]).fillna(0).clip(lower=0)
    high = (frame["high"] - frame["mean"]).fillna(0).clip(lower=0)
    errors = np.vstack([low.to_numpy(dtype=float), high.to_numpy(dtype=float)])  # arrays: a 1-row Series warns
    ax.errorbar((frame[x] + offset).to_numpy(dtype=float), frame["mean"].to_numpy(dtype=float), yerr=errors, marker="o",
                capsize=3, label=label, **style)


def plot_noise(table) -> plt.Figure:
    """Return against the noise level for each agent and baseline (95% CIs), and each one's share of the filter's."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))  # narrow: the page shrinks it less
    levels = list(dict.fromkeys(table["noise"]))
    table = table.assign(level=table["noise"].map({n: i for i, n in enumerate(levels)}))
    policies = list(dict.fromkeys(table["policy"]))
    for k, policy in enumerate(policies):
        rows = table[table["policy"] == policy]
        style = {"linestyle": "--"} if rows["kind"].iloc[0] == "baseline" else {}
        _with_errors(left, rows, "level", policy, 0.04 * (k - len(policies) / 2), **style)
        right.plot(rows["level"], rows["share of filter"], marker="o", label=policy, **style)
    labels = [f"{n}\np={p:g}, q={q:g}" for n, p, q in table.drop_duplicates("noise")[["noise", "p (rating)", "q (closer)"]].values]
    for ax, ylabel in ((left, "mean return"), (right, "share of the Bayesian filter's return")):
        ax.set(xticks=range(len(levels)), xticklabels=labels, xlabel="noise", ylabel=ylabel)
    fig.legend(*right.get_legend_handles_labels(), loc="lower center", ncols=3, frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # the legend below both panels, not beside them
    return fig


def plot_scaling(table) -> plt.Figure:
    """Return (95% CIs over seeds) and training wall time against the number of features d."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4.2))
    policies = list(dict.fromkeys(table["policy"].str.replace(" (sampled)", "", regex=False)))
    table = table.assign(policy=table["policy"].str.replace(" (sampled)", "", regex=False))
    for k, policy in enumerate(policies):
        rows = table[table["policy"] == policy]
        style = {"linestyle": "--"} if rows["kind"].iloc[0] == "baseline" else {}
        _with_errors(left, rows, "d", policy, 0.05 * (k - len(policies) / 2), **style)
        if rows["kind"].iloc[0] == "agent":
            right.plot(rows["d"], rows["train minutes per seed"], marker="o", label=policy)
    dims = sorted(table["d"].unique())
    left.set(xticks=dims, xlabel="features d (5**d positions)", ylabel="mean return")
    right.set(xticks=dims, xlabel="features d", ylabel="train minutes per seed (one core)")
    left.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=3, frameon=False)
    return fig


def class_table_figure(table):
    """A class's Table 1 as bars: mean rating difference per genre for the thesis's author, the
    class and each simulated listener."""
    columns = [c for c in table.columns if c not in ("targets", "class sessions")]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(columns)
    x = np.arange(len(table))
    for i, column in enumerate(columns):
        ax.bar(x + (i - (len(columns) - 1) / 2) * width, table[column].to_numpy(dtype=float), width, label=column)
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylabel("mean |rating - ideal rating|")
    ax.legend(frameon=False, fontsize=8, ncols=len(columns), loc="upper center", bbox_to_anchor=(0.5, 1.18))
    fig.tight_layout()
    return fig


def curve_grid(curves: Mapping[str, Mapping[str, np.ndarray]], levels: Mapping[str, Mapping[str, float]],
               titles: Mapping[str, str], weight: float = 0.99, columns: int = 2, empty: str = "not run yet"):
    """One :func:`plot_curves` panel per experiment of ``curves`` (experiment -> label -> curve), in
    that order, ``columns`` wide, with its ``levels`` (optimal, greedy) and title, and one legend
    below the panels so that none hides a curve; ``empty`` written on a small figure if none."""
    if not curves:
        fig, ax = plt.subplots(figsize=(6.2, 1.2))
        ax.text(0.5, 0.5, empty, ha="center", va="center")
        ax.set_axis_off()
        return fig
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.0 * columns, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, curves):
        plot_curves(curves[name], levels[name], weight=weight, ax=ax, title=titles[name])
        ax.get_legend().remove()
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncols=len(labels), frameon=False, bbox_to_anchor=(0.5, 0))
    fig.tight_layout(rect=(0, 0.5 / (3.3 * rows), 1, 1))
    return fig
