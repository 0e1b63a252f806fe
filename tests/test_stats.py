"""musicrl.stats on tiny literal curves, with exact expected numbers."""

import numpy as np
import pytest

from musicrl import stats


def test_smooth_is_tensorboards_debiased_moving_average_skipping_nan():
    np.testing.assert_allclose(stats.smooth([1.0, 3.0], weight=0.5), [1.0, 1 + 2 / 1.5 * 1.0])  # (0.5*1+0.5*3)/(1-0.25)
    np.testing.assert_allclose(stats.smooth([np.nan, 2.0, 4.0], weight=0.0), [np.nan, 2.0, 4.0])


def test_final_level_and_late_rise_compare_the_last_tenths():
    curve = np.arange(1.0, 21.0)  # 20 updates: tenths of 2
    assert stats.final_level(curve) == 19.5
    assert stats.late_rise(curve) == 2.0
    assert np.isnan(stats.final_level([np.nan] * 10))


def test_updates_to_convergence_is_the_first_update_at_the_fraction_of_the_final_level():
    curve = [0.0] * 5 + [10.0] * 15
    assert stats.updates_to_convergence(curve, weight=0.0, fraction=0.95) == 6


def test_a_collapse_is_a_fall_below_half_the_peak_after_the_peak():
    assert stats.collapse_point([1.0, 4.0, 3.0, 1.5], weight=0.0) == (4.0, 2, 4)
    assert stats.collapse_point([1.0, 4.0, 3.0], weight=0.0) == (4.0, 2, None)
    assert stats.collapsed([1.0, 4.0, 1.0], weight=0.0) and not stats.collapsed([1.0, 2.0], weight=0.0)


@pytest.mark.parametrize("low, high, decimals", [(10.0, 14.0, 0), (10.0, 10.4, 1), (10.0, 10.1, 2)])
def test_decimals_follow_the_width_of_the_interval(low, high, decimals):
    assert stats.decimals_for(low, high) == decimals


def test_format_ci_rounds_to_what_the_seeds_support():
    assert stats.format_ci(190.0, 188.0, 192.0) == "190 [188, 192]"
    assert stats.format_ci(5.25, 5.2, 5.3) == "5.25 [5.20, 5.30]"
    assert stats.format_ci(7.0, 7.0, 7.0, runs=1) == "7.0 (1 run)"


def test_mean_ci_holds_the_mean_within_the_runs_range():
    mean, low, high = stats.mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and 1.0 <= low <= mean <= high <= 3.0
