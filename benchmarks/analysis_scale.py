"""The analysis metric pipeline on a large synthetic decisions table: polars vs pandas.

    python benchmarks/analysis_scale.py [--rows 10000000] [--repeat 3]

One process builds a synthetic decisions table (runs x rounds x agents, two config
columns), then computes with the `analysis` metrics (polars) and with the same computation
written in idiomatic pandas:

1. violation rate per round grouped by (model, threshold);
2. tipping times: per run, the first round the rate reaches 0.5 (and the PELT change
   point, the same ruptures call on both sides); per agent, the first violation;
3. exposure-response: P(complying agent violates next round | m violating neighbours).

It checks that both give the same numbers and prints the times and the ratio (never
asserts a time). Target on a 2-core laptop: polars >= 5x faster, all under a minute.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ruptures  # noqa: E402, F401  (imported up front: its import time is not the pipeline's)

from analysis.diffusion import exposure_response  # noqa: E402
from analysis.rates import violation_rate_by_round  # noqa: E402
from analysis.tipping import agent_tipping_times, change_point_index, tipping_times  # noqa: E402

MODELS = ["small", "large"]
THRESHOLDS = [2, 4, 6, 8]


def synthetic_decisions(rows: int, rounds: int, runs: int, seed: int = 0) -> pl.DataFrame:
    """runs x rounds x agents rows; violation probability rises logistically in each run."""
    agents = max(1, rows // (runs * rounds))
    rng = np.random.default_rng(seed)
    run = np.repeat(np.arange(runs, dtype=np.int32), rounds * agents)
    t = np.tile(np.repeat(np.arange(rounds, dtype=np.int32), agents), runs)
    agent = np.tile(np.arange(agents, dtype=np.int32), runs * rounds)
    tip = rng.uniform(0.3, 1.5, runs)[run] * rounds  # some runs never tip
    p = 0.05 + 0.9 / (1 + np.exp(-(t - tip) / (rounds / 20)))
    violated = rng.random(run.size) < p
    invalid = rng.random(run.size) < 0.01
    exposure = rng.binomial(4, p).astype(np.int32)
    return pl.DataFrame(
        {
            "run_dir": pl.Series(run).cast(pl.String),
            "model": np.array(MODELS)[run % len(MODELS)],
            "threshold": np.array(THRESHOLDS, dtype=np.int64)[(run // 2) % len(THRESHOLDS)],
            "round": t,
            "agent": agent,
            "violated": pl.Series(violated).set(pl.Series(invalid), None),
            "p_violate": p,
            "n_violating_neighbors": pl.Series(exposure).set(pl.Series(t == 0), None),
        }
    )


def polars_pipeline(d: pl.DataFrame) -> dict[str, pl.DataFrame]:
    lf = d.lazy()
    return {
        "rates": violation_rate_by_round(lf, by=["model", "threshold"], n_boot=0),
        "run_tips": tipping_times(lf, by="run_dir", level=0.5),
        "agent_tips": agent_tipping_times(lf),
        "exposure": exposure_response(lf),
    }


def pandas_pipeline(d: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same metrics in idiomatic pandas (categoricals, observed groupby, sort + shift)."""
    z = 1.959963984540054
    valid = d["violated"].notna()
    d = d.assign(k=d["violated"].fillna(0.0), n=valid.astype("int64"))
    g = (
        d.groupby(["model", "threshold", "round"], observed=True, sort=True)
        .agg(n_decisions=("k", "size"), n_valid=("n", "sum"), n_violations=("k", "sum"))
        .reset_index()
    )
    units = (
        d.loc[valid, ["model", "threshold", "round", "run_dir", "agent"]]
        .drop_duplicates()
        .groupby(["model", "threshold", "round"], observed=True, sort=True)
        .size()
    )
    g["n_units"] = units.to_numpy()
    g["violation_rate"] = g["n_violations"] / g["n_valid"]

    per_run = (
        d.groupby(["run_dir", "round"], observed=True, sort=True)
        .agg(k=("k", "sum"), n=("n", "sum"))
        .reset_index()
    )
    per_run["rate"] = per_run["k"] / per_run["n"]
    runs = per_run.groupby("run_dir", observed=True)
    run_tips = pd.DataFrame(
        {
            "first_round": runs["round"].min(),
            "last_round": runs["round"].max(),
            "tipping_round": per_run[per_run["rate"] >= 0.5]
            .groupby("run_dir", observed=True)["round"]
            .min(),
            "change_point": runs["rate"].apply(lambda r: change_point_index(r.to_numpy())),
        }
    )

    agents = d.groupby(["run_dir", "agent"], observed=True)["round"].agg(["min", "max"])
    agents["tipping_round"] = (
        d.loc[d["violated"] == 1.0].groupby(["run_dir", "agent"], observed=True)["round"].min()
    )

    s = d.sort_values(["run_dir", "agent", "round"], kind="stable")
    same = (s["run_dir"].shift(-1) == s["run_dir"]) & (s["agent"].shift(-1) == s["agent"])
    same &= s["round"].shift(-1) == s["round"] + 1
    nxt_v = s["violated"].shift(-1)
    nxt_m = s["n_violating_neighbors"].shift(-1)
    risk = same & (s["violated"] == 0.0) & nxt_v.notna() & nxt_m.notna()
    exposure = (
        pd.DataFrame({"exposure": nxt_m[risk], "switched": nxt_v[risk]})
        .groupby("exposure", sort=True)["switched"]
        .agg(n_at_risk="size", n_switched="sum")
        .reset_index()
    )
    n, phat = exposure["n_at_risk"], exposure["n_switched"] / exposure["n_at_risk"]
    center = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    exposure["switch_prob"] = phat
    exposure["ci_low"] = np.minimum(center - half, phat).clip(0, 1)
    exposure["ci_high"] = np.maximum(center + half, phat).clip(0, 1)
    return {"rates": g, "run_tips": run_tips, "agent_tips": agents, "exposure": exposure}


def check_same(pl_out: dict, pd_out: dict) -> None:
    """Both pipelines give the same numbers (raises AssertionError if not)."""
    a = pl_out["rates"].sort("model", "threshold", "round")
    b = pd_out["rates"].sort_values(["model", "threshold", "round"])
    for col in ("n_units", "n_decisions", "n_valid", "n_violations", "violation_rate"):
        assert np.allclose(a[col].to_numpy(), b[col].to_numpy()), col
    a = pl_out["run_tips"].sort(pl.col("run_dir").cast(pl.Int64))
    b = pd_out["run_tips"].reindex(a["run_dir"].to_list())
    for col, other in [("tipping_round", "tipping_round"), ("change_point_round", "change_point"),
                       ("last_round", "last_round")]:  # fmt: skip
        assert a[col].fill_null(-1).to_list() == b[other].fillna(-1).astype(int).tolist(), col
    a = pl_out["agent_tips"]
    b = pd_out["agent_tips"]
    assert a.height == len(b)
    assert a["tipping_round"].null_count() == b["tipping_round"].isna().sum()
    assert a["tipping_round"].sum() == b["tipping_round"].sum()
    assert a["last_round"].sum() == b["max"].sum()
    a, b = pl_out["exposure"], pd_out["exposure"]
    assert a["n_at_risk"].to_list() == b["n_at_risk"].tolist()
    assert a["n_switched"].to_list() == b["n_switched"].astype(int).tolist()
    assert np.allclose(a["ci_low"].to_numpy(), b["ci_low"].to_numpy())


def timed(fn, arg, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn(arg)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--rows", type=int, default=10_000_000, help="decisions (default 1e7)")
    parser.add_argument("--rounds", type=int, default=200, help="rounds per run")
    parser.add_argument("--runs", type=int, default=40, help="runs (configs x seeds)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N timings, each side")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    d = synthetic_decisions(args.rows, args.rounds, args.runs)
    built = time.perf_counter() - start
    pdf = d.to_pandas()
    pdf["run_dir"] = pdf["run_dir"].astype("category")
    pdf["model"] = pdf["model"].astype("category")
    pdf["violated"] = pdf["violated"].astype("float64")  # 1.0 / 0.0 / NaN: pandas' fast path
    pdf["n_violating_neighbors"] = pdf["n_violating_neighbors"].astype("float64")
    agents = d.height // (args.runs * args.rounds)
    print(f"rows: {d.height:,}  runs: {args.runs}  rounds: {args.rounds}  agents/run: {agents:,}")
    print(f"synthetic table built in {built:.1f} s; polars threads: {pl.thread_pool_size()}")

    t_pl, out_pl = timed(polars_pipeline, d, args.repeat)
    t_pd, out_pd = timed(pandas_pipeline, pdf, args.repeat)
    check_same(out_pl, out_pd)
    print("results: polars and pandas agree")
    print(f"polars: {t_pl:.2f} s   pandas: {t_pd:.2f} s   ratio pandas/polars: {t_pd / t_pl:.1f}x")
    total = time.perf_counter() - start
    print(f"whole benchmark: {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
