"""Analysis of recorded runs: polars pipelines that quantify alignment tipping.

Reads only the files a run records (never imports sim, agents or envs):

- `analysis.schema`: the on-disk schema shared with `sim.recorder`;
- `analysis.load`: lazy scans of a run or a sweep (`scan_decisions`, `read_manifests`, ...);
- `analysis.metrics`: violation rates with bootstrap CIs, tipping times, survival,
  early-warning signals, diffusion (exposure-response, R_t, cascades), phase diagrams;
- `analysis.plots`: matplotlib figures of those frames;
- `analysis.report`: `write_report(path)` and `python -m analysis.report PATH`;
- `analysis/notebooks/`: single_run.ipynb (TIPLAB_RUN), sweep.ipynb (TIPLAB_SWEEP).

Kept free of imports here: `sim.recorder` imports `analysis.schema` on every run.
"""
