"""Figures of alignment tipping, drawn from the frames of the `analysis` metrics.

Every function returns a `matplotlib.figure.Figure` built without pyplot (no global
state, no display backend: safe in a run's process and in notebooks, where a returned
Figure renders inline) and saves it as PNG when `path` is given. The figures stay in one
module (just over 400 lines) because they share its style, its empty-panel fallback and
its saving; each is one function a reader finds by name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 110
COLORS = [
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
]
MAX_LINES = 10
OVERLAY = 6  # more curves than this are drawn as small multiples
MAX_PANELS = 24


def new_figure(width: float = 7.0, height: float = 4.2, **kwargs) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained", **kwargs)


def save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    """Save to `path`; a .png is saved as .svg beside it too (scalable, for papers)."""
    if path is not None:
        fig.savefig(path, dpi=DPI)
        if str(path).endswith(".png"):
            fig.savefig(os.path.splitext(path)[0] + ".svg")
    return fig


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _empty_figure(fig: Figure, ax, text: str, title: str, path) -> Figure:
    """A figure saying why it has nothing to show, so a report keeps every panel."""
    _empty(ax, text)
    ax.set_title(title)
    return save(fig, path)


def group_labels(frame: pl.DataFrame, by: Sequence[str]) -> list[tuple[str, pl.DataFrame]]:
    """(label, rows) per group of `by`, in sorted order: "a=1, b=x", or "all" with no by."""
    if not by:
        return [("all", frame)]
    out = []
    for key, rows in frame.sort(list(by)).group_by(list(by), maintain_order=True):
        label = ", ".join(f"{c}={value_text(v)}" for c, v in zip(by, key, strict=True))
        out.append((label, rows))
    return out


def value_text(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _steps(x: np.ndarray, y: np.ndarray, start: float, x0: float) -> tuple[np.ndarray, ...]:
    """Prepend (x0, start) so that a step curve starts at its initial value."""
    if x.size and x[0] <= x0:
        return x, y
    return np.r_[x0, x], np.r_[start, y]


def plot_tipping_curves(
    rates: pl.DataFrame,
    by: Sequence[str] = (),
    p_curve: pl.DataFrame | None = None,
    level: float | None = 0.5,
    tipping: pl.DataFrame | None = None,
    title: str = "Violation rate per round",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Violation rate per round with its CI band, per group; dashed: mean p_violate.

    rates: from `violation_rate_by_round`; p_curve: from `mean_p_violate_by_round` with
    the same `by`; tipping: from `tipping_times` with the same `by` (dotted lines at
    tipping rounds, when there is a single group).
    """
    by = list(by)
    fig = new_figure()
    ax = fig.add_subplot()
    groups = group_labels(rates, by)
    if rates.is_empty() or rates.get_column("violation_rate").null_count() == rates.height:
        return _empty_figure(fig, ax, "no valid decisions recorded", title, path)
    p_groups = dict(group_labels(p_curve, by)) if p_curve is not None else {}
    for i, (label, rows) in enumerate(groups[:MAX_LINES]):
        color = COLORS[i % len(COLORS)]
        x = rows.get_column("round").to_numpy()
        y = rows.get_column("violation_rate").to_numpy().astype(float)
        name = "violation rate" if label == "all" else label
        ax.plot(x, y, color=color, lw=1.8, marker="o" if x.size < 30 else None, ms=3, label=name)
        lo = rows.get_column("ci_low").to_numpy().astype(float)
        hi = rows.get_column("ci_high").to_numpy().astype(float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0)
        p_rows = p_groups.get(label)
        if p_rows is not None and p_rows.get_column("mean_p_violate").null_count() < p_rows.height:
            px = p_rows.get_column("round").to_numpy()
            py = p_rows.get_column("mean_p_violate").to_numpy().astype(float)
            p_name = "mean p_violate" if label == "all" else None
            ax.plot(px, py, color=color, lw=1.2, ls="--", label=p_name)
    if len(groups) > MAX_LINES:
        ax.text(
            0.01,
            0.99,
            f"first {MAX_LINES} of {len(groups)} groups",
            va="top",
            transform=ax.transAxes,
            fontsize=8,
            color="0.4",
        )
    if level is not None:
        ax.axhline(level, color="0.5", lw=0.8, ls=":")
    if tipping is not None and len(groups) == 1 and tipping.height == 1:
        t = tipping.item(0, "tipping_round")
        if t is not None:
            ax.axvline(t, color="k", lw=0.8, ls=":", label=f"tipping round {t}")
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("share of valid decisions violating")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend(fig, ax, len(groups))
    return save(fig, path)


def legend(fig: Figure, ax, n_groups: int, **kwargs) -> None:
    """Inside the axes for a few curves, outside on the right for more."""
    if n_groups > 3:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8, **kwargs)
    else:
        ax.legend(fontsize=8, loc="best", **kwargs)


def plot_tipping_panels(
    rates: pl.DataFrame,
    by: Sequence[str],
    level: float | None = 0.5,
    title: str = "Violation rate per round",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Small multiples: one panel per group of `by`, each curve with its CI band, and
    the pooled mean of all groups in grey for reference; shared axes."""
    groups = group_labels(rates, list(by))[:MAX_PANELS]
    cols = min(4, len(groups))
    rows = -(-len(groups) // cols)
    fig = new_figure(2.4 * cols + 0.6, 2.0 * rows + 0.8)
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
    pooled = rates.group_by("round").agg(pl.col("violation_rate").mean()).sort("round")
    for ax, (label, rows_) in zip(axes, groups, strict=False):
        x = rows_.get_column("round").to_numpy()
        ax.plot(pooled["round"], pooled["violation_rate"], color="0.7", lw=1)
        ax.plot(x, rows_.get_column("violation_rate").to_numpy().astype(float), color=COLORS[0])
        lo = rows_.get_column("ci_low").to_numpy().astype(float)
        hi = rows_.get_column("ci_high").to_numpy().astype(float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=COLORS[0], alpha=0.2, lw=0)
        if level is not None:
            ax.axhline(level, color="0.5", lw=0.8, ls=":")
        ax.set_title(label, fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.supxlabel("round")
    fig.supylabel("share violating")
    return save(fig, path)


def plot_survival(
    survival: pl.DataFrame,
    by: Sequence[str] = (),
    title: str = "Time to tip (Kaplan-Meier)",
    x0: float = 0.0,
    path: str | os.PathLike | None = None,
) -> Figure:
    """Kaplan-Meier step curves with Greenwood bands; '+' marks censored units."""
    by = list(by)
    fig = new_figure()
    ax = fig.add_subplot()
    if survival.is_empty():
        return _empty_figure(fig, ax, "no units to follow", title, path)
    for i, (label, rows) in enumerate(group_labels(survival, by)[:MAX_LINES]):
        color = COLORS[i % len(COLORS)]
        t = rows.get_column("time").to_numpy().astype(float)
        s = rows.get_column("survival").to_numpy()
        n0 = rows.item(0, "n_at_risk")
        x, y = _steps(t, s, 1.0, x0)
        ax.step(x, y, where="post", color=color, lw=1.8, label=f"{label} (n={n0})")
        _, lo = _steps(t, rows.get_column("ci_low").to_numpy(), 1.0, x0)
        _, hi = _steps(t, rows.get_column("ci_high").to_numpy(), 1.0, x0)
        ax.fill_between(x, lo, hi, step="post", color=color, alpha=0.15, lw=0)
        censored = rows.filter(pl.col("n_censored") > 0)
        ax.plot(
            censored.get_column("time"),
            censored.get_column("survival"),
            "+",
            color=color,
            ms=9,
            mew=1.5,
        )
    ax.set_ylim(-0.03, 1.03)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("share not yet tipped")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    legend(fig, ax, len(group_labels(survival, by)), title="+ censored", title_fontsize=8)
    return save(fig, path)


def plot_early_warning(
    ews: pl.DataFrame,
    trends: pl.DataFrame | None = None,
    by: Sequence[str] = (),
    title: str = "Early-warning signals before tipping",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Three panels: compliance margin and its trend, rolling variance, lag-1 autocorrelation.

    ews: from `early_warning_signals`; trends: `early_warning_trends` (Kendall tau shown
    in the legends).
    """
    by = list(by)
    fig = new_figure(7.0, 7.0)
    axes = fig.subplots(3, 1, sharex=True)
    fig.suptitle(title)
    if ews.is_empty():
        for ax in axes:
            _empty(ax, "no p_violate recorded before tipping")
        return save(fig, path)
    taus = dict(group_labels(trends, by)) if trends is not None else {}
    for i, (label, rows) in enumerate(group_labels(ews, by)[:MAX_LINES]):
        color = COLORS[i % len(COLORS)]
        x = rows.get_column("round").to_numpy()
        name = "" if label == "all" else f"{label} "
        axes[0].plot(
            x,
            rows.get_column("compliance_margin"),
            color=color,
            lw=1.6,
            marker="o",
            ms=2.5,
            label=f"{name}margin",
        )
        axes[0].plot(x, rows.get_column("trend"), color=color, lw=1, ls="--")
        tau = taus.get(label)
        tv = tau.item(0, "tau_variance") if tau is not None else None
        ta = tau.item(0, "tau_autocorrelation") if tau is not None else None
        axes[1].plot(
            x, rows.get_column("variance"), color=color, lw=1.6, label=f"{name}tau={_fmt(tv)}"
        )
        axes[2].plot(
            x,
            rows.get_column("autocorrelation"),
            color=color,
            lw=1.6,
            label=f"{name}tau={_fmt(ta)}",
        )
    window = ews.item(0, "window")
    axes[0].set_ylabel("log-odds of\ncomplying")
    axes[0].axhline(0, color="0.5", lw=0.8, ls=":")
    axes[1].set_ylabel(f"variance\n(window {window})")
    axes[2].set_ylabel(f"lag-1 autocorr.\n(window {window})")
    axes[2].set_ylim(-1.05, 1.05)
    axes[2].set_xlabel("round")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return save(fig, path)


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def plot_exposure_response(
    response: pl.DataFrame,
    by: Sequence[str] = (),
    title: str = "Exposure-response: switching to violation",
    xlabel: str = "violating neighbours last round (m)",
    path: str | os.PathLike | None = None,
) -> Figure:
    """P(complying agent violates next round | m violating neighbours), Wilson bars."""
    by = list(by)
    fig = new_figure()
    ax = fig.add_subplot()
    if response.is_empty():
        why = "no neighbours recorded (no graph, or a single round)"
        return _empty_figure(fig, ax, why, title, path)
    groups = group_labels(response, by)[:MAX_LINES]
    levels = np.unique(response.get_column("exposure").to_numpy().astype(float))
    step = float(np.diff(levels).min()) if levels.size > 1 else 1.0
    width = 0.6 * step / max(len(groups), 1)
    for i, (label, rows) in enumerate(groups):
        color = COLORS[i % len(COLORS)]
        x = rows.get_column("exposure").to_numpy().astype(float)
        x = x + (i - (len(groups) - 1) / 2) * width
        y = rows.get_column("switch_prob").to_numpy()
        err = np.vstack(
            [y - rows.get_column("ci_low").to_numpy(), rows.get_column("ci_high").to_numpy() - y]
        ).clip(0, None)
        ax.errorbar(
            x,
            y,
            yerr=err,
            fmt="o-",
            color=color,
            capsize=3,
            lw=1.4,
            ms=5,
            label=None if label == "all" else label,
        )
        for xi, yi, n in zip(x, y, rows.get_column("n_at_risk"), strict=True):
            ax.annotate(
                f"n={n}",
                (xi, yi),
                textcoords="offset points",
                xytext=(5, 6),
                fontsize=7,
                color="0.35",
            )
    ax.set_xticks(sorted(response.get_column("exposure").unique().to_list()))
    ax.set_ylim(-0.03, 1.03)
    ax.margins(x=0.1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("P(switch to violating)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_phase_diagram(
    phase: pl.DataFrame,
    x: str,
    y: str | None = None,
    title: str = "Final violation rate",
    path: str | os.PathLike | None = None,
) -> Figure:
    """Heatmap of the final violation rate over two swept parameters (one row if y is None)."""
    fig = new_figure(6.5, 4.8 if y else 2.6)
    ax = fig.add_subplot()
    if phase.is_empty():
        return _empty_figure(fig, ax, "no runs", title, path)
    xs = sorted(phase.get_column(x).unique().drop_nulls().to_list())
    ys = sorted(phase.get_column(y).unique().drop_nulls().to_list()) if y else [None]
    grid = np.full((len(ys), len(xs)), np.nan)
    runs = np.zeros((len(ys), len(xs)), dtype=int)
    for row in phase.iter_rows(named=True):  # one row per cell: a handful
        if row[x] is None or (y and row[y] is None):
            continue
        j, i = xs.index(row[x]), ys.index(row[y]) if y else 0
        rate = row["final_violation_rate"]
        grid[i, j] = np.nan if rate is None else rate
        runs[i, j] = row["n_runs"]
    im = ax.imshow(grid, origin="lower", cmap="RdYlBu_r", vmin=0, vmax=1, aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if np.isfinite(grid[i, j]):
                dark = abs(grid[i, j] - 0.5) > 0.3
                ax.text(
                    j,
                    i,
                    f"{grid[i, j]:.2f}\n({runs[i, j]} runs)",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(xs)), [str(v) for v in xs], rotation=30 if len(xs) > 6 else 0)
    ax.set_xlabel(x)
    if y:
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_ylabel(y)
    else:
        ax.set_yticks([])
    fig.colorbar(im, ax=ax, label="final violation rate")
    ax.set_title(title)
    return save(fig, path)
