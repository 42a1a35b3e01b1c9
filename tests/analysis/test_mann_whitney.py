"""The Mann-Whitney U test against published values and against brute force."""

from __future__ import annotations

import itertools
import math

import pytest

from immutable_sdk.core.analysis import mann_whitney as mw
from immutable_sdk.core.analysis.mann_whitney import mann_whitney, ranks

# SciPy's documentation example (scipy.stats.mannwhitneyu): ages of males and females; it
# gives U = 17, exact two-sided p = 0.1111..., asymptotic p = 0.11134688653314041.
MALES = [19, 22, 16, 29, 24]
FEMALES = [20, 11, 17, 12]


def test_the_textbook_example_exact() -> None:
    test = mann_whitney(MALES, FEMALES)
    assert (test.u, test.method) == (17.0, "exact")
    assert test.p_two_sided == pytest.approx(1 / 9)
    assert test.p_greater == pytest.approx(1 / 18)  # 7 of the 126 assignments have U >= 17
    assert test.effect == pytest.approx(17 / 20)


def test_the_textbook_example_with_the_normal_approximation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mw, "EXACT_MAX", 0)
    test = mann_whitney(MALES, FEMALES)
    assert test.method == "normal"
    assert test.p_two_sided == pytest.approx(0.11134688653314041, rel=1e-9)


def test_two_samples_that_do_not_overlap() -> None:
    # Every one of C(10, 5) = 252 rank assignments is equally likely: only one gives U = 25.
    test = mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert test.u == 25 and test.effect == 1.0
    assert test.p_greater == pytest.approx(1 / 252) and test.p_less == 1.0


def brute_force_p_greater(first: list[float], second: list[float]) -> float:
    pooled = [*first, *second]
    r = ranks(pooled)
    n1 = len(first)
    observed = sum(r[:n1])
    splits = list(itertools.combinations(range(len(pooled)), n1))
    return sum(1 for s in splits if sum(r[i] for i in s) >= observed - 1e-9) / len(splits)


@pytest.mark.parametrize(
    ("first", "second"),
    [([1.5, 3.2, 4.8], [2.0, 2.5, 0.3, 9.9]), ([5, 1, 8, 7, 3, 6], [2, 4, 9, 0.5])],
)
def test_exact_p_values_agree_with_brute_force(first: list[float], second: list[float]) -> None:
    assert mann_whitney(first, second).p_greater == pytest.approx(
        brute_force_p_greater(first, second)
    )


def test_ties_use_average_ranks_and_the_corrected_variance() -> None:
    assert ranks([3, 1, 3, 2]) == [3.5, 1.0, 3.5, 2.0]
    first, second = [1, 2, 2, 3, 3, 3], [2, 3, 4, 4, 5, 5]
    test = mann_whitney(first, second)
    assert test.method == "normal"  # ties: no exact distribution
    # By hand: ranks 1, 3, 3, 6.5, 6.5, 6.5 -> R1 = 26.5, U1 = 26.5 - 21 = 5.5; mean 18;
    # ties of sizes 3 (the 2s) and 4 (the 3s) and 2 and 2: sum t^3 - t = 24 + 60 + 6 + 6 = 96;
    # variance = 36/12 * (13 - 96/132) = 36.8181...; z for "less" = (18 - 5.5 - 0.5) / sd.
    assert test.u == 5.5
    sd = math.sqrt(36 / 12 * (13 - 96 / 132))
    assert test.p_less == pytest.approx(0.5 * math.erfc((12 / sd) / math.sqrt(2)))


def test_equal_samples_give_no_evidence() -> None:
    test = mann_whitney([1.0] * 6, [1.0] * 6)
    assert (test.p_greater, test.p_less, test.effect) == (1.0, 1.0, 0.5)
