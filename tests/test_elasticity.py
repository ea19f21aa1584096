"""analysis.elasticity on constructed trajectories with known breakpoints and costs."""

import numpy as np
import polars as pl
import pytest

from analysis.elasticity import (
    by_dose,
    fine_tuning_summary,
    hysteresis,
    rebound_cost,
    rebound_speed,
    rebound_speeds,
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


def steps_frame(seed: int = 0, dose: int = 8, shift: float = 0.0) -> pl.DataFrame:
    """One seed and dose of elasticity.parquet, built by hand: base P(violate) 0.5, aligned
    to 0.3 in 2 steps; inverse back at the base at step 2 (KL 0.005 there); re-alignment
    stops at 0.35; re-tip at step 1. `shift` moves the inverse losses."""
    phases = {
        "align": ([0.5, 0.4, 0.3], [None, 0.4, 0.2], [0.0, 0.05, 0.2]),
        "inverse": (
            [0.3, 0.42, 0.5, 0.52, 0.54],
            [None, 0.8 + shift, 0.6 + shift, 0.5, 0.5],
            [0.2, 0.05, 0.005, 0.01, 0.02],
        ),
        "realign": ([0.54, 0.45, 0.35], [None, 0.5, 0.4], [0.02, 0.01, 0.05]),
        "retip": ([0.35, 0.5, 0.6], [None, 0.7, 0.6], [0.05, 0.0, 0.02]),
    }
    rows = [
        {
            "seed": seed,
            "dose": dose,
            "phase": name,
            "step": k,
            "samples": 8 * k,
            "loss": loss[k],
            "p_violate": p[k],
            "kl_base": kl[k],
            "dp_base": p[k] - 0.5,
            "kl_aligned": 0.0,
            "dp_aligned": p[k] - 0.3,
        }
        for name, (p, loss, kl) in phases.items()
        for k in range(len(p))
    ]
    return pl.DataFrame(rows)


def test_fine_tuning_summary_by_hand():
    row = fine_tuning_summary(steps_frame(), epsilon=0.01).row(0, named=True)
    assert row["p_base"] == 0.5 and row["p_aligned"] == 0.3 and row["p_realigned"] == 0.35
    # inverse P(violate) 0.3, 0.42, 0.5 | 0.5, 0.52, 0.54: lines of slope 0.1 and 0.02
    assert row["breakpoint"] == 2
    assert row["rate_before"] == pytest.approx(0.1) and row["rate_after"] == pytest.approx(0.02)
    assert row["two_phase_sse"] < row["line_sse"]
    assert row["rebound_samples"] == 16 and row["kl_base_min"] == 0.005
    assert row["tip_steps"] == 2 and row["retip_steps"] == 1 and row["hysteresis_tip"] == 0.5
    assert row["undo_ratio"] == 1.0  # back at the base in 2 steps; aligned in 2
    assert row["align_steps"] == 2 and row["realign_steps"] is None
    assert row["hysteresis_align"] is None  # re-alignment never got back to 0.3
    # inverse losses 0.8, 0.6 against the forward 0.4, 0.2 over the same 2 steps
    assert row["resistance"] == pytest.approx(0.7 / 0.3)


def test_by_dose_means_over_seeds_with_an_interval():
    steps = pl.concat([steps_frame(0), steps_frame(1, shift=0.3)])
    table = by_dose(fine_tuning_summary(steps, epsilon=0.01), n_boot=200)
    resistance = table.filter(pl.col("measure") == "resistance").row(0, named=True)
    assert resistance["seeds"] == 2
    assert resistance["mean"] == pytest.approx((0.7 / 0.3 + 1.0 / 0.3) / 2)
    low, high = 0.7 / 0.3 - 1e-12, 1.0 / 0.3 + 1e-12  # the seeds' own values
    assert low <= resistance["ci_low"] <= resistance["ci_high"] <= high
    never = table.filter(pl.col("measure") == "hysteresis_align").row(0, named=True)
    assert never["seeds"] == 0 and never["mean"] is None


def test_rebound_speed_per_seed_from_tip_steps():
    summary = pl.DataFrame({"seed": [0, 0, 1, 1], "dose": [8, 16] * 2, "tip_steps": [2.0, 4, 3, 3]})
    assert rebound_speeds(summary)["speed"].to_list() == pytest.approx([0.25, 0.0])


# -- experiment=elasticity, end to end on a small local checkpoint (backend=hf) ------------

SMALL = [
    "elasticity.data.roleplay.professions=[delivery_courier,loan_officer,site_foreman]",
    "elasticity.data.threshold.games=[price_ring]",
    "elasticity.data.threshold.thresholds=[4]",
    "elasticity.data.held_out_share=0.3",
    "elasticity.doses=[8]",
    "elasticity.seeds=[0]",
    "elasticity.tip_steps=2",
    "elasticity.drift_rounds=1",
    "reference.probes=4",
    "env.professions=[delivery_courier]",
    "run.progress=false",
]


@pytest.mark.slow
def test_the_experiment_runs_on_a_local_checkpoint_and_reports(tmp_path):
    from sim.elasticity import STEPS
    from tests.helpers import sim_run, tiny_llama

    base = tiny_llama(tmp_path / "base")
    out = tmp_path / "run"
    done = sim_run(
        "experiment=elasticity", "backend=hf", f"backend.model.path={base}", *SMALL,
        f"hydra.run.dir={out}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = pl.read_parquet(out / "elasticity.parquet")
    assert steps.schema == STEPS
    # dose 8 at batch 8 for 2 epochs: 2 steps; toward violation: tip_steps
    counts = dict(steps.group_by("phase").len().iter_rows())
    assert counts == {"align": 3, "inverse": 3, "realign": 3, "retip": 3}
    first = steps.filter(pl.col("phase") == "align").sort("step")
    # before the first step the model is the base (a fresh LoRA adds exactly 0; the
    # training copy scores it in float32 like the base, up to its rounding)
    assert first["kl_base"][0] == pytest.approx(0, abs=1e-12)
    assert first["dp_base"][0] == pytest.approx(0, abs=1e-7)
    assert first["kl_aligned"][-1] == 0 and first["kl_base"][-1] > 0
    assert steps.filter(pl.col("step") > 0)["loss"].is_finite().all()
    refs = pl.read_parquet(out / "drift" / "dose8-seed0" / "references.parquet")
    assert refs["kl_base"][0] > 0 and refs["kl_aligned"][0] == 0  # it starts aligned
    assert not (out / "checkpoints").exists()
    page = (out / "report" / "index.html").read_text()
    assert "elasticity_trajectories.png" in page and "elasticity_measures.png" in page
    assert "elasticity failed" not in page


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("backend=fixed", "error: backend=fixed: experiment=elasticity fine-tunes the model"),
        ("elasticity.doses=[0]", "error: elasticity.doses: 0 must be an integer >= 1"),
        ("elasticity.tip_steps=0", "error: elasticity.tip_steps: 0 must be an integer >= 1"),
        ("elasticity.recipe.method=ppo", "error: elasticity.recipe.method: 'ppo'"),
    ],
)
def test_bad_settings_are_one_line_before_anything_loads(tmp_path, setting, expected):
    from tests.helpers import refused_in_one_line, sim_main

    done = sim_main("experiment=elasticity", setting, f"hydra.run.dir={tmp_path / 'run'}")
    refused_in_one_line(done, expected)
    assert not (tmp_path / "run").exists()
