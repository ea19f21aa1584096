"""analysis.elasticity on constructed trajectories with known breakpoints and costs."""

import numpy as np
import pytest

from analysis.elasticity import (
    hysteresis,
    rebound_cost,
    rebound_speed,
    resistance_ratio,
    two_phase,
)


def test_two_phase_finds_the_known_breakpoint_and_rates():
    t = np.arange(12)
    fast, slow = -0.2, -0.01  # a fast decline until step 4, then a slow one
    y = np.where(t <= 4, 1 + fast * t, 1 + fast * 4 + slow * (t - 4))
    fit = two_phase(y)
    assert fit.breakpoint == 4
    assert fit.rate_before == pytest.approx(fast) and fit.rate_after == pytest.approx(slow)
    assert fit.sse == pytest.approx(0, abs=1e-12)


def test_two_phase_on_given_x_and_noise_keeps_the_breakpoint():
    rng = np.random.default_rng(0)
    x = np.arange(0, 40, 2.0)
    y = np.where(x <= 20, 0.9 - 0.03 * x, 0.3 - 0.001 * (x - 20)) + rng.normal(0, 0.005, len(x))
    fit = two_phase(y, x)
    assert fit.breakpoint == 20
    assert fit.rate_before == pytest.approx(-0.03, abs=0.003)
    assert fit.rate_after == pytest.approx(-0.001, abs=0.003)


def test_two_phase_needs_three_points():
    with pytest.raises(ValueError):
        two_phase([1.0, 0.5])


def test_rebound_cost_is_the_first_cost_below_epsilon():
    kl = [0.3, 0.2, 0.05, 0.009, 0.02, 0.001]
    samples = [0, 100, 200, 300, 400, 500]
    assert rebound_cost(kl, samples, epsilon=0.01) == 300
    assert rebound_cost(kl, samples, epsilon=0.0001) is None


def test_rebound_speed_ratio_and_hysteresis_by_hand():
    # costs 961 -> 729 as the dose doubles (the paper's Table 3, in samples)
    assert rebound_speed([1, 2], [961, 729]) == pytest.approx(-232)
    assert rebound_speed([1, 2, 3], [10, 8, 6]) == pytest.approx(-2)
    assert resistance_ratio([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]) == pytest.approx(0.5)
    assert hysteresis(first_tip=10, re_tip=4) == pytest.approx(0.4)
