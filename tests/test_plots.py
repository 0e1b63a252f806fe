import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from musicrl import plots


def test_long_training_curves_label_their_updates_in_thousands():
    """An 80k-update panel a third of a page wide had its tick labels run into each other."""
    fig, ax = plt.subplots(figsize=(5.2, 3.5))
    plots.plot_curves({"seed 0": np.linspace(0, 190, 80_000)}, {"greedy": 198.1}, ax=ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if 0 <= t.get_position()[0] <= 80_000]
    plt.close(fig)
    assert "0" in labels and "80k" in labels and all(len(label) <= 4 for label in labels)
    assert plots.thousands(500) == "500" and plots.thousands(2500) == "2.5k" and plots.thousands(260_000) == "260k"
