"""Analysis of recorded runs: polars pipelines that quantify alignment tipping.

Reads only the files a run records (never imports sim or agents; the record schema is
`envs.records`, shared with `sim.recorder`):

- `analysis.load`: lazy scans of a run or a sweep (`scan_decisions`, `read_manifests`, ...);
- `analysis.frames`: what every metric takes (decisions frames, `by` keys);
- `analysis.rates`: violation rates per round with bootstrap intervals, the p_violate curve;
- `analysis.tipping`: tipping times, PELT change points, Kaplan-Meier survival;
- `analysis.early_warning`: rolling variance and autocorrelation, Kendall trends;
- `analysis.diffusion`: exposure-response, reproduction number, cascade size;
- `analysis.sweeps`: phase diagrams and the per-run sweep table;
- `analysis.plots`: matplotlib figures of those frames;
- `analysis.report`: `write_report(path)` and `python -m analysis.report PATH`;
- `analysis.callbacks`: the Hydra callbacks that report at the end of a run or sweep;
- `analysis/notebooks/`: single_run.ipynb (TIPLAB_RUN), sweep.ipynb (TIPLAB_SWEEP).
"""
