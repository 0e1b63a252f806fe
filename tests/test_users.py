import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicrl import users


@pytest.mark.parametrize("d", [1, 2, 3, 4])
@pytest.mark.parametrize("preset", list(users.PRESETS))
def test_thresholds_equal_numpy_percentile(d, preset):
    positions = users.all_positions(d)
    thresholds = users.rating_thresholds(positions, preset)
    for target, got in zip(positions, thresholds):
        distances = np.abs(positions - target).sum(1)
        assert np.array_equal(got, np.percentile(distances, users.PRESETS[preset][1:5]))


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_top_target_rates_exactly_one_position_four(d):
    table = users.rating_table(d, "TopTarget")
    assert np.array_equal((table == 4).sum(1), np.ones(5**d))
    assert np.array_equal(np.argmax(table == 4, axis=1), np.arange(5**d))


def test_wider_top_target_in_2d_rates_three_to_five_positions_four():
    counts = (users.rating_table(2, "WiderTopTarget") == 4).sum(1)
    assert counts.min() == 3 and counts.max() == 5


@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 4), preset=st.sampled_from(list(users.PRESETS)), seed=st.integers(0, 2**32 - 1))
def test_ratings_never_increase_with_distance(d, preset, seed):
    target = np.random.default_rng(seed).integers(0, 5, size=d)
    positions = users.all_positions(d)
    distances = users.manhattan(positions, target)
    ratings = users.rating_from_distance(distances, users.rating_thresholds(target, preset))
    order = np.argsort(distances, kind="stable")
    assert np.all(np.diff(ratings[order]) <= 0)
    assert ratings[users.position_to_index(target)] == 4


@given(d=st.integers(1, 6), data=st.data())
def test_index_and_position_round_trip(d, data):
    index = data.draw(st.integers(0, 5**d - 1))
    assert users.position_to_index(users.index_to_position(index, d)) == index


def test_row_major_index_example_from_the_spec():
    assert users.position_to_index(np.array([1, 3])) == 8


def test_simulated_user_feedback():
    user = users.SimulatedUser(target=(0, 4), preset="TopTarget")
    assert user.feedback(np.array([2, 2]), np.array([0, 4])) == (1, 4)
    assert user.feedback(np.array([0, 4]), np.array([0, 4])) == (0, 4)
    assert user.feedback(np.array([1, 3]), np.array([3, 1]))[0] == 0


@pytest.mark.parametrize("bad", [0, -1, 2.5, "2", True])
def test_bad_dimension_is_rejected(bad):
    with pytest.raises(ValueError, match="d .* must be an integer >= 1"):
        users.check_dimensions(bad)


@pytest.mark.parametrize("target", [(5, 0), (0, -1), (1, 2, 3), 25, -1, (0.5, 1)])
def test_target_outside_grid_is_rejected(target):
    with pytest.raises(ValueError, match="outside the grid"):
        users.check_target(target, 2)


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="unknown preset 'Top'.*TopTarget.*WiderTopTarget"):
        users.rating_thresholds(np.array([0, 0]), "Top")


@pytest.mark.parametrize("d, weights", [(2, (3, 1)), (3, (1, 2, 3)), (4, (9, 1, 1, 2))])
def test_weighted_thresholds_equal_numpy_percentile(d, weights):
    positions = users.all_positions(d)
    thresholds = users.rating_thresholds(positions, "WiderTopTarget", weights=weights)
    for target, got in zip(positions, thresholds):
        distances = (np.abs(positions - target) * np.array(weights)).sum(1)
        assert np.array_equal(got, np.percentile(distances, users.PRESETS["WiderTopTarget"][1:5]))


@pytest.mark.parametrize("d", [6, 8])
def test_cut_points_by_convolution_are_exact_beyond_the_thesis(d):
    positions = users.all_positions(d)
    rng = np.random.default_rng(d)
    weights = tuple(int(w) for w in rng.integers(1, 4, size=d))
    for target in positions[rng.integers(0, len(positions), size=3)]:
        for w in (None, weights):
            distances = users.manhattan(positions, target, w)
            expected = np.percentile(distances, users.PRESETS["TopTarget"][1:5])
            assert np.array_equal(users.rating_thresholds(target, "TopTarget", weights=w), expected)


@pytest.mark.parametrize("bad", [(1,), (1, 0), (1, 2.5), (1, 10), (True, 1), "ab", 3])
def test_bad_weights_are_rejected(bad):
    with pytest.raises(ValueError, match=r"weights must be 2 integers in 1..9, one per feature"):
        users.check_weights(bad, 2)
