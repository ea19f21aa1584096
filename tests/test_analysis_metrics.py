"""Every metric against a small case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from analysis_fixtures import decisions_frame

from analysis.diffusion import cascade_size, exposure_response, reproduction_number
from analysis.early_warning import early_warning_signals, early_warning_trends, kendall_tau
from analysis.rates import mean_p_violate_by_round, violation_rate_by_round
from analysis.sweeps import phase_diagram
from analysis.tipping import (
    agent_tipping_times,
    change_point_index,
    change_points,
    median_time_to_tip,
    survival_curve,
    tipping_times,
)

Z95 = 1.959963984540054


def frame(**cols):
    return decisions_frame(cols)


def rate_series(rates, n_agents=10, run="r"):
    """A run whose violation rate in round t is rates[t] (rates in multiples of 1/n)."""
    rows = {"round": [], "agent": [], "violated": [], "run_id": []}
    for t, r in enumerate(rates):
        k = round(r * n_agents)
        for a in range(n_agents):
            rows["round"].append(t)
            rows["agent"].append(a)
            rows["violated"].append(a < k)
            rows["run_id"].append(run)
    return decisions_frame(rows)


# --------------------------------------------------------------------------- rates


def test_violation_rate_counts_valid_decisions_per_round_and_group():
    d = pl.concat(
        [
            frame(
                round=[0, 0, 1, 1],
                agent=[0, 1, 0, 1],
                violated=[True, False, True, None],
                run_id=["a"] * 4,
            ).with_columns(th=pl.lit(2)),
            frame(
                round=[0, 0, 1, 1],
                agent=[0, 1, 0, 1],
                violated=[False, False, True, True],
                run_id=["b"] * 4,
            ).with_columns(th=pl.lit(4)),
        ]
    )
    out = violation_rate_by_round(d, by="th", n_boot=0)
    assert out.columns == [
        "th",
        "round",
        "n_units",
        "n_decisions",
        "n_valid",
        "n_violations",
        "violation_rate",
        "ci_low",
        "ci_high",
    ]
    assert out.get_column("violation_rate").to_list() == [0.5, 1.0, 0.0, 1.0]
    assert out.get_column("n_valid").to_list() == [2, 1, 2, 2]
    assert out.get_column("n_units").to_list() == [2, 1, 2, 2]
    assert out.get_column("ci_low").null_count() == 4
    pooled = violation_rate_by_round(d, n_boot=0)
    assert pooled.get_column("violation_rate").to_list() == [0.25, 1.0]  # 1 + 2 of 3 valid


def test_bootstrap_two_units_spans_their_rates():
    # unit A never violates, unit B always: replicate rates are 0, 1/2, 1 w.p. 1/4, 1/2, 1/4
    d = frame(round=[0, 0], agent=[0, 1], violated=[False, True])
    out = violation_rate_by_round(d, unit="agent", n_boot=2000, seed=1)
    assert out.item(0, "violation_rate") == 0.5
    assert out.item(0, "ci_low") == 0.0
    assert out.item(0, "ci_high") == 1.0
    narrow = violation_rate_by_round(d, n_boot=2000, ci=0.4, seed=1)  # 30%..70%: the middle
    assert narrow.item(0, "ci_low") == narrow.item(0, "ci_high") == 0.5


def test_bootstrap_interval_matches_binomial_width():
    rng = np.random.default_rng(0)
    n_agents, n_rounds = 400, 5
    v = rng.random((n_rounds, n_agents)) < 0.3
    t, a = np.meshgrid(np.arange(n_rounds), np.arange(n_agents), indexing="ij")
    d = frame(round=t.ravel(), agent=a.ravel(), violated=v.ravel())
    out = violation_rate_by_round(d, n_boot=1000, seed=3)
    half = (out["ci_high"] - out["ci_low"]) / 2
    expected = Z95 * np.sqrt(out["violation_rate"] * (1 - out["violation_rate"]) / n_agents)
    assert np.allclose(half.to_numpy(), expected.to_numpy(), rtol=0.15)
    assert (out["ci_low"] <= out["violation_rate"]).all()
    assert (out["violation_rate"] <= out["ci_high"]).all()
    again = violation_rate_by_round(d, n_boot=1000, seed=3)
    assert again.equals(out)


def test_bootstrap_over_items_and_runs():
    d = pl.concat(
        [
            frame(
                round=[0] * 4,
                agent=[0, 1, 2, 3],
                group=[0, 0, 1, 1],
                violated=[True, True, False, False],
                run_id=["a"] * 4,
            ),
            frame(
                round=[0] * 4,
                agent=[0, 1, 2, 3],
                group=[0, 0, 1, 1],
                violated=[True, True, True, True],
                run_id=["b"] * 4,
            ),
        ]
    )
    items = violation_rate_by_round(d, unit="item", n_boot=500)
    assert items.item(0, "n_units") == 4  # (run, item) pairs
    runs = violation_rate_by_round(d, unit="run", n_boot=2000)
    assert runs.item(0, "n_units") == 2
    assert runs.item(0, "violation_rate") == 0.75
    assert (runs.item(0, "ci_low"), runs.item(0, "ci_high")) == (0.5, 1.0)
    with pytest.raises(ValueError, match="unit"):
        violation_rate_by_round(d, unit="planet")


def test_mean_p_violate_and_compliance_margin():
    d = frame(
        round=[0, 0, 1, 1, 2],
        agent=[0, 1, 0, 1, 0],
        violated=[False] * 5,
        p_violate=[0.2, 0.5, 0.0, None, None],
    )
    out = mean_p_violate_by_round(d, eps=1e-6)
    assert out.get_column("mean_p_violate").to_list()[:2] == [pytest.approx(0.35), 0.0]
    assert out.item(0, "compliance_margin") == pytest.approx(math.log(4) / 2)
    assert out.item(1, "compliance_margin") == pytest.approx(math.log((1 - 1e-6) / 1e-6))
    assert out.get_column("n_p").to_list() == [2, 1, 0]
    assert out.item(2, "compliance_margin") is None


# --------------------------------------------------------------------------- tipping


def test_tipping_round_is_first_crossing_and_never_is_null():
    d = pl.concat([rate_series([0, 0.2, 0.5, 0.8], 10, "up"), rate_series([0.1] * 4, 10, "flat")])
    out = tipping_times(d, by="run_id").sort("run_id")
    assert out.get_column("tipping_round").to_list() == [None, 2]
    assert out.get_column("tipped").to_list() == [False, True]
    assert out.get_column("last_round").to_list() == [3, 3]
    high = tipping_times(d, by="run_id", level=0.7).sort("run_id")
    assert high.get_column("tipping_round").to_list() == [None, 3]
    assert tipping_times(d.filter(pl.col("run_id") == "up")).item(0, "tipping_round") == 2


def test_change_point_of_a_step_series():
    rng = np.random.default_rng(0)
    x = np.r_[np.full(10, 0.1), np.full(10, 0.8)] + rng.normal(0, 0.02, 20)
    assert change_points(x) == [10]
    assert change_point_index(x) == 10
    assert change_points(np.full(10, 0.3)) == []
    assert change_point_index(np.array([0.0, 1.0])) is None
    # through tipping_times: the rate steps from 0.1 to 0.8 at round 12 (and a blip stays out)
    rates = [0.1] * 12 + [0.8] * 8
    rates[5] = 0.2
    out = tipping_times(rate_series(rates))
    assert out.item(0, "change_point_round") == 12
    assert out.item(0, "tipping_round") == 12


def test_change_point_picks_the_largest_shift():
    x = np.r_[np.zeros(6), np.full(6, 0.2), np.full(6, 0.9)]
    assert change_points(x) == [6, 12]
    assert change_point_index(x) == 12


def test_agent_tipping_times_first_violation_or_p_level():
    d = frame(
        round=[0, 1, 2, 0, 1, 2],
        agent=[0, 0, 0, 1, 1, 1],
        violated=[False, True, True, False, None, False],
        p_violate=[0.1, 0.4, 0.6, 0.1, 0.2, 0.3],
    )
    out = agent_tipping_times(d)
    assert out.get_column("tipping_round").to_list() == [1, None]
    assert out.get_column("last_round").to_list() == [2, 2]
    by_p = agent_tipping_times(d, on="p_violate", level=0.5)
    assert by_p.get_column("tipping_round").to_list() == [2, None]


def test_kaplan_meier_with_censoring():
    # tips at 2, 4, 4; censored after 3 and after 5 (observed without tipping)
    times = pl.DataFrame({"tipping_round": [2, 4, None, None, 4], "last_round": [9, 9, 3, 5, 9]})
    km = survival_curve(times)
    assert km.get_column("time").to_list() == [2, 3, 4, 5]
    assert km.get_column("n_at_risk").to_list() == [5, 4, 3, 1]
    assert km.get_column("n_events").to_list() == [1, 0, 2, 0]
    assert km.get_column("n_censored").to_list() == [0, 1, 0, 1]
    s = [0.8, 0.8, 0.8 * (1 / 3), 0.8 / 3]
    assert km.get_column("survival").to_list() == pytest.approx(s)
    # Greenwood at t=2: S^2 * 1/(5*4) -> se = 0.8 * sqrt(0.05)
    se = 0.8 * math.sqrt(0.05)
    assert km.item(0, "ci_low") == pytest.approx(0.8 - Z95 * se)
    assert km.item(0, "ci_high") == 1.0  # clipped
    assert median_time_to_tip(km).item(0, "median_time_to_tip") == 4


def test_kaplan_meier_by_group_and_never_tipping():
    times = pl.DataFrame(
        {"g": ["a", "a", "b"], "tipping_round": [1, None, None], "last_round": [3, 3, 3]}
    )
    km = survival_curve(times, by="g")
    assert km.rows() == [
        ("a", 1, 2, 1, 0, 0.5, pytest.approx(0.0), pytest.approx(1.0)),
        ("a", 3, 1, 0, 1, 0.5, pytest.approx(0.0), pytest.approx(1.0)),
        ("b", 3, 1, 0, 1, 1.0, 1.0, 1.0),
    ]
    assert median_time_to_tip(km, by="g").get_column("median_time_to_tip").to_list() == [1, None]


# --------------------------------------------------------------------------- early warning


def margin_run(margins, tip_at=None):
    """One agent whose compliance margin in round t is margins[t]; violates from tip_at."""
    p = [1 / (1 + math.exp(m)) for m in margins]
    n = len(margins)
    violated = [tip_at is not None and t >= tip_at for t in range(n)]
    return frame(round=list(range(n)), agent=[0] * n, violated=violated, p_violate=p)


def test_early_warning_indicators_by_hand():
    m = [0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 9.0]
    ews = early_warning_signals(margin_run(m, tip_at=6), by=(), window=3, bandwidth=0)
    assert ews.get_column("round").to_list() == [0, 1, 2, 3, 4, 5]  # round 6 tipped: dropped
    assert ews.get_column("compliance_margin").to_list() == pytest.approx(m[:6])
    # variance over trailing 3 values: var(0,1,0)=1/3, var(1,0,2)=1, var(0,2,0)=4/3, var(2,0,3)=7/3
    variance = ews.get_column("variance").to_list()
    assert variance[:2] == [None, None]
    assert variance[2:] == pytest.approx([1 / 3, 1, 4 / 3, 7 / 3])
    # lag-1 autocorrelation over the trailing 3 pairs ending at round 3: x=(0,1,0), y=(1,0,2)
    x, y = np.array([0, 1, 0.0]), np.array([1, 0, 2.0])
    r = ((x - x.mean()) * (y - y.mean())).sum() / math.sqrt(
        ((x - x.mean()) ** 2).sum() * ((y - y.mean()) ** 2).sum()
    )
    assert r == pytest.approx(-0.8660254)
    assert ews.item(3, "autocorrelation") == pytest.approx(r)
    assert ews.get_column("autocorrelation").to_list()[:3] == [None, None, None]
    trends = early_warning_trends(ews, by=())
    # variance 1/3, 1, 4/3, 7/3 rises monotonically: tau = 1
    assert trends.item(0, "tau_variance") == pytest.approx(1.0)
    assert trends.item(0, "n_points") == 4
    assert trends.item(0, "tipping_round") == 6


def test_detrending_removes_a_linear_trend():
    m = [10.0 - t for t in range(9)]
    ews = early_warning_signals(margin_run(m), by=(), window=3, bandwidth=3)
    inner = ews.filter(pl.col("round").is_between(1, 7))
    assert inner.get_column("residual").to_list() == pytest.approx([0.0] * 7)


def test_kendall_tau_by_hand():
    f = pl.DataFrame(
        {"g": [1] * 4 + [2] * 4, "t": [0, 1, 2, 3] * 2, "y": [1.0, 3, 2, 4, 4, 3, 2, 1]}
    )
    out = kendall_tau(f, "t", "y", by="g")
    # g=1: pairs C=5, D=1 -> 4/6; g=2: all discordant -> -1
    assert out.get_column("tau").to_list() == pytest.approx([4 / 6, -1.0])
    ties = pl.DataFrame({"t": [0, 1, 2], "y": [1.0, 1.0, 2.0]})
    # C=2, D=0, n0=3, ties in y=1: 2/sqrt(3*2)
    assert kendall_tau(ties, "t", "y").item(0, "tau") == pytest.approx(2 / math.sqrt(6))


def test_early_warning_without_p_violate_is_empty():
    d = frame(round=[0, 1], agent=[0, 0], violated=[False, True])
    ews = early_warning_signals(d)
    assert ews.height == 0
    assert early_warning_trends(ews).height == 0


# --------------------------------------------------------------------------- diffusion


def diffusion_case():
    # three agents; exposure is recorded on the next round's row
    return frame(
        round=[0, 0, 0, 1, 1, 1, 2, 2, 2],
        agent=[0, 1, 2] * 3,
        violated=[False, False, True, True, False, True, True, True, None],
        n_violating_neighbors=[None, None, None, 1, 0, 0, 1, 2, 1],
    )


def test_exposure_response_by_hand():
    out = exposure_response(diffusion_case())
    # at risk: (a0, t0 -> m=1, switches), (a1, t0 -> m=0, stays), (a1, t1 -> m=2, switches)
    assert out.select("exposure", "n_at_risk", "n_switched", "switch_prob").rows() == [
        (0, 1, 0, 0.0),
        (1, 1, 1, 1.0),
        (2, 1, 1, 1.0),
    ]
    # Wilson interval for 1/1: low = 1 / (1 + z^2), high = 1
    assert out.item(1, "ci_low") == pytest.approx(1 / (1 + Z95**2))
    assert out.item(1, "ci_high") == pytest.approx(1.0)
    assert out.item(0, "ci_low") == 0.0  # 0/1: the interval starts at 0, never above
    assert (out["ci_low"] <= out["switch_prob"]).all()
    assert (out["switch_prob"] <= out["ci_high"]).all()


def test_exposure_response_without_neighbours_is_empty():
    d = frame(round=[0, 1], agent=[0, 0], violated=[False, True])
    assert exposure_response(d).height == 0


def test_transitions_pair_only_an_agents_consecutive_rounds():
    d = frame(
        run_id=["r1", "r1", "r1", "r1", "r2", "r2"],
        agent=[0, 0, 1, 1, 0, 0],
        round=[0, 2, 0, 1, 0, 1],  # r1's agent 0 skips round 1
        violated=[False, True, False, True, False, False],
        n_violating_neighbors=[None, 1, None, 2, None, 0],
    )
    out = exposure_response(d)
    assert out.select("exposure", "n_at_risk", "n_switched").rows() == [(0, 1, 0), (2, 1, 1)]


def test_reproduction_number_by_hand():
    out = reproduction_number(diffusion_case())
    # t0: violators {a2}, new at t1 {a0} -> R=1; t1: violators {a0,a2}, new at t2 {a1} -> 1/2
    assert out.select("round", "n_violators", "n_new_violators", "r_effective").rows() == [
        (0, 1, 1, 1.0),
        (1, 2, 1, 0.5),
    ]
    none = frame(round=[0, 1], agent=[0, 0], violated=[False, False])
    assert reproduction_number(none).item(0, "r_effective") is None


def test_cascade_size_by_hand():
    out = cascade_size(diffusion_case(), by=())
    assert out.row(0) == (3, 1, 3, 1.0, 1.0)  # final rate over valid last rows: a0, a1
    d = frame(round=[0, 0, 1, 1], agent=[0, 1, 0, 1], violated=[False, False, True, False])
    assert cascade_size(d).select("cascade_size", "final_violation_rate").row(0) == (0.5, 0.5)


def test_phase_diagram_by_hand():
    runs = []
    spec = [
        (2, "a", 0, [True, True]),
        (2, "a", 1, [True, False]),
        (2, "b", 0, [False, False]),
        (4, "a", 0, [False, False]),
    ]
    for i, (x, y, s, last) in enumerate(spec):
        runs.append(
            frame(
                round=[0, 0, 1, 1],
                agent=[0, 1, 0, 1],
                violated=[True, True, *last],
                run_id=[f"r{i}"] * 4,
            ).with_columns(x=pl.lit(x), y=pl.lit(y), s=pl.lit(s))
        )
    out = phase_diagram(pl.concat(runs), "x", "y")
    assert out.rows() == [
        (2, "a", 2, 0.75, pytest.approx(math.sqrt(0.125))),
        (2, "b", 1, 0.0, None),
        (4, "a", 1, 0.0, None),
    ]
    both = phase_diagram(pl.concat(runs), "x", last_rounds=2)
    assert both.get_column("final_violation_rate").to_list() == pytest.approx(
        [(1 + 0.75 + 0.5) / 3, 0.5]
    )


def test_transitions_need_consecutive_rounds():
    # agent 0 has no row for round 1: its round 0 -> round 2 is not a transition
    d = frame(round=[0, 2, 0, 1], agent=[0, 0, 1, 1], violated=[False, True, False, True],
              n_violating_neighbors=[None, 1, None, 1])  # fmt: skip
    out = exposure_response(d)
    assert out.select("exposure", "n_at_risk", "n_switched").rows() == [(1, 1, 1)]
    r = reproduction_number(d)
    assert r.select("round", "n_violators", "n_new_violators").rows() == [(0, 0, 1)]
