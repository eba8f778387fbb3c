"""The rank test that compare and the outcome tables rest on (dlbench/parity/stats.py):
its U, its p with ties and continuity correction, and the smallest p a sample
size allows. Expected values are scipy's ``mannwhitneyu(a, b,
method="asymptotic")``, written out so the test runs without scipy."""

import pytest

from dlbench.parity.stats import _average_ranks, mann_whitney_u, smallest_p


def test_tied_values_share_the_average_of_their_ranks():
    assert _average_ranks([3.0, 1.0, 3.0, 2.0]) == [3.5, 1.0, 3.5, 2.0]
    assert _average_ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert _average_ranks([2.0, 1.0, 1.0, 3.0, 3.0]) == [3.0, 1.5, 1.5, 4.5, 4.5]
    assert _average_ranks([]) == []


def test_u_is_the_statistic_of_the_first_sample():
    assert mann_whitney_u([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])[0] == 0
    assert mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])[0] == 25


@pytest.mark.parametrize("a, b, u, p", [
    ([1, 2, 3, 4, 5], [6, 7, 8, 9, 10], 0.0, 0.012185780355344813),
    ([6, 7, 8, 9, 10], [1, 2, 3, 4, 5], 25.0, 0.012185780355344813),
    ([0, 1, 2], [3, 4, 5], 0.0, 0.08085559837005224),
    ([1.0, 2.0, 2.0, 5.0], [2.0, 3.0, 4.0], 4.0, 0.5820796519295022),  # ties across the samples
    ([3.0, 1.0, 3.0, 7.0, 2.0], [3.0, 6.0, 8.0], 3.0, 0.22169999376487637),
    ([1.0], [2.0, 3.0], 0.0, 0.5402913746074199),  # a variance below 1 is still a variance
])
def test_p_matches_scipys_asymptotic_test_with_tie_and_continuity_corrections(a, b, u, p):
    assert mann_whitney_u(a, b) == pytest.approx((u, p), rel=1e-12)


def test_a_difference_smaller_than_the_continuity_correction_gives_p_1():
    assert mann_whitney_u([1, 4], [2, 3]) == (2.0, 1.0)


def test_identical_samples_have_no_variance_and_p_1():
    assert mann_whitney_u([2.0, 2.0], [2.0, 2.0, 2.0]) == (3.0, 1.0)


def test_smallest_p_is_the_p_of_complete_separation():
    assert smallest_p(5, 5) == pytest.approx(0.012185780355344813, rel=1e-12)
    assert smallest_p(3, 3) == pytest.approx(0.08085559837005224, rel=1e-12)
    assert smallest_p(2, 2) > 0.05  # two repeats each can never be significant at 5%
    assert smallest_p(0, 4) == smallest_p(4, 0) == smallest_p(0, 0) == 1.0
