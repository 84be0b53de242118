"""PNG plots of a report: score vs shots per task type, per-task Δ bars, and a task × setting heat map.

Each plot takes the frames it draws (a comparison's `seed_scores` and `columns`, the per-task table, the
per-task Δ table; see evalharness.comparison), not the report, so this module never imports the report.

Figures are built with matplotlib's object-oriented API (`Figure` on the Agg canvas, no pyplot), so
nothing here needs a display or touches the caller's pyplot state or backend. Each PNG carries, in its `Description` text chunk,
a JSON list of the series it draws, so a test or a script can check what a plot shows without reading
pixels. The functions return the figures too, for the notebook.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from evalharness.taskinfo import type_key

ALL_TASKS = "all tasks"
DPI = 100


def _shot_label(shots: int) -> str:
    return "all" if shots < 0 else str(shots)


def _shot_key(shots: int) -> float:
    return math.inf if shots < 0 else shots


def shot_curves(
    seed_scores: pd.DataFrame, columns: pd.DataFrame, errors: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Long frame behind `score_vs_shots`, from a comparison's `seed_scores` and `columns`: series,
    panel (task type or "all tasks"), shots, mean over seeds of the per-seed type mean, and its min/max
    over seeds. A series is one model with one way of choosing examples; its 0-shot point is the model's
    zero-shot cell (same template). `errors` (column, group = a panel name, delta, low, high; from
    evalharness.significance) adds each point's paired CI of its Δ from the baseline as `err_low`/`err_high`
    (distances below and above the point)."""
    seeds = seed_scores
    seeds = seeds[seeds["shots"].notna()]
    if seeds.empty:
        return pd.DataFrame(
            columns=["series", "panel", "shots", "score", "low", "high", "err_low", "err_high"]
        )
    per_type = seeds.groupby(["column", "cell", "task_type"])["score"].mean().reset_index()
    overall = seeds.groupby(["column", "cell"])["score"].mean().reset_index().assign(task_type=ALL_TASKS)
    per_cell = pd.concat([per_type, overall], ignore_index=True)
    stats = per_cell.groupby(["column", "task_type"])["score"].agg(["mean", "min", "max"]).reset_index()
    cols = columns.set_index("column")
    ci = {}  # (column, panel) -> distances of the CI below and above the Δ
    for e in (errors if errors is not None else pd.DataFrame()).itertuples():
        ci[(e.column, e.group)] = (e.delta - e.low, e.high - e.delta)
    rows = []
    for model, group in columns.groupby("model", sort=False):
        group = group[group["shots"].notna()]
        zero = group[group["shots"] == 0]
        few = group[group["shots"] != 0]
        recipes = few.groupby(["strategy", "template", "set_id"], dropna=False, sort=False)
        series_list = [(f"{model} {name[0]}", sub) for name, sub in recipes] or [(model, few)]
        if len(few["template"].dropna().unique()) > 1:
            series_list = [(f"{label} [{sub['template'].iloc[0]}]", sub) for label, sub in series_list]
        for label, sub in series_list:
            same_template = zero[zero["template"] == sub["template"].iloc[0]] if not sub.empty else zero
            members = list((same_template if not same_template.empty else zero)["column"][:1]) + list(
                sub["column"]
            )
            for column in members:
                for stat in stats[stats["column"] == column].itertuples():
                    rows.append(
                        {
                            "series": label.split("/")[-1] if "/" in label else label,
                            "panel": stat.task_type,
                            "shots": int(cols.loc[column, "shots"]),
                            "score": stat.mean,
                            "low": stat.min,
                            "high": stat.max,
                            "err_low": ci.get((column, stat.task_type), (math.nan, math.nan))[0],
                            "err_high": ci.get((column, stat.task_type), (math.nan, math.nan))[1],
                        }
                    )
    return pd.DataFrame(rows)


def score_vs_shots(
    seed_scores: pd.DataFrame, columns: pd.DataFrame, errors: pd.DataFrame | None = None
) -> Figure | None:
    """One panel per task type (plus all tasks): mean score against the number of examples; with
    `errors`, error bars: the paired CI of each point's Δ from the baseline, drawn around the point."""
    curves = shot_curves(seed_scores, columns, errors)
    if curves.empty:
        return None
    panels = sorted((p for p in curves["panel"].unique() if p != ALL_TASKS), key=type_key) + [ALL_TASKS]
    shots = sorted(curves["shots"].unique(), key=_shot_key)
    pos = {s: i for i, s in enumerate(shots)}
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    names = list(dict.fromkeys(curves["series"]))
    colours = {name: f"C{i % 10}" for i, name in enumerate(names)}  # one colour per series in every panel
    for ax, panel in zip(axes.flat, panels, strict=False):
        for series, line in curves[curves["panel"] == panel].groupby("series", sort=False):
            line = line.sort_values("shots", key=lambda s: s.map(_shot_key))
            x = [pos[s] for s in line["shots"]]
            ax.plot(x, line["score"], marker="o", label=series, color=colours[series])
            if (line["high"] > line["low"]).any():
                ax.fill_between(x, line["low"], line["high"], alpha=0.2, color=colours[series])
            bars = line["err_low"].notna().to_numpy()
            if bars.any():
                ax.errorbar(
                    [xi for xi, b in zip(x, bars, strict=True) if b],
                    line["score"][bars],
                    yerr=[line["err_low"][bars], line["err_high"][bars]],
                    fmt="none",
                    capsize=2,
                    elinewidth=0.8,
                    color=colours[series],
                )
        ax.set_title(panel, fontsize=9)
        ax.set_xticks(range(len(shots)), [_shot_label(s) for s in shots])
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("score ×100", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("shots", fontsize=8)
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(
        list(legend.values()),
        list(legend),
        loc="lower center",
        ncol=min(4, len(legend)),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.08 if nrows == 1 else 0.05, 1, 1))
    fig._evalharness_series = sorted(curves["series"].unique())  # type: ignore[attr-defined]
    fig._evalharness_panels = panels  # type: ignore[attr-defined]
    return fig


def delta_per_task(delta_tasks: pd.DataFrame, baseline: int) -> Figure | None:
    """Horizontal bars of Δ vs the baseline per task (the per-task Δ table), one panel per model, one bar
    colour per setting."""
    table = delta_tasks
    if table.empty:
        return None
    models = list(dict.fromkeys(table.columns.get_level_values("model")))
    tasks = [f"{task}" for _, task in table.index]
    height = max(2.0, 0.28 * len(tasks) * max(1, table.shape[1] / len(models)) ** 0.5 + 1.0)
    fig = Figure(figsize=(4.2 * len(models), height))
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)
    types = [t for t, _ in table.index]
    boundaries = [i - 0.5 for i in range(1, len(types)) if types[i] != types[i - 1]]
    tasks = [
        f"{task} ({kind})" if i == 0 or types[i - 1] != kind else task
        for i, (kind, task) in enumerate(table.index)
    ]
    axes[0, 0].invert_yaxis()  # first task on top; the axes share y, so once is enough
    series = []
    for ax, model in zip(axes[0], models, strict=True):
        sub = table[model]
        n = sub.shape[1]
        width = 0.8 / n
        y = np.arange(len(tasks))
        for i, setting in enumerate(sub.columns):
            ax.barh(
                y - 0.4 + width * (i + 0.5), sub[setting].fillna(0).to_numpy(), height=width, label=setting
            )
            series.append(f"{model.split('/')[-1]} · {setting}")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(y, tasks, fontsize=7)
        for boundary in boundaries:
            ax.axhline(boundary, color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(model.split("/")[-1], fontsize=9)
        ax.set_xlabel(f"Δ vs {baseline}-shot (×100)", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig._evalharness_series = series  # type: ignore[attr-defined]
    return fig


def heatmap(tasks: pd.DataFrame, delta_tasks: pd.DataFrame, baseline: int) -> Figure:
    """Rows tasks, columns model × setting (the per-task table); the text is the score, the colour its Δ
    vs the model's baseline (the per-task Δ table; blue better, red worse), so the pattern of gains shows
    at a glance across tasks whose absolute scores differ a lot."""
    scores = tasks
    delta = delta_tasks.reindex(index=scores.index, columns=scores.columns) if not delta_tasks.empty else None
    if delta is not None:
        baseline_cols = [c for c in scores.columns if c not in delta_tasks.columns]
        for c in baseline_cols:
            delta[c] = np.where(scores[c].notna(), 0.0, np.nan)
        colour, cmap = delta.to_numpy(dtype=float), "RdBu"
        vmax = float(np.nanmax(np.abs(colour))) if np.isfinite(colour).any() else 1.0
        vmin, vmax = -(vmax or 1.0), vmax or 1.0
        label = f"Δ vs {baseline}-shot (×100)"
    else:
        colour, cmap, vmin, vmax = scores.to_numpy(dtype=float), "viridis", None, None
        label = "score ×100"
    rows, cols = scores.shape
    fig = Figure(figsize=(max(4.0, 1.1 * cols + 3.0), max(2.0, 0.32 * rows + 1.6)))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(colour), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    values = scores.to_numpy(dtype=float)
    for i in range(rows):
        for j in range(cols):
            if np.isfinite(values[i, j]):
                dark = vmax is not None and np.isfinite(colour[i, j]) and abs(colour[i, j]) > 0.6 * vmax
                ax.text(j, i, f"{values[i, j]:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    col_labels = [f"{m.split('/')[-1]}\n{s}" for m, s in scores.columns]
    ax.set_xticks(range(cols), col_labels, fontsize=7, rotation=30, ha="right")
    ax.set_yticks(range(rows), [t for _, t in scores.index], fontsize=7)
    fig.colorbar(image, ax=ax, label=label, shrink=0.8)
    fig.tight_layout()
    fig._evalharness_series = [label.replace("\n", " ") for label in col_labels]  # type: ignore[attr-defined]
    return fig


def _save(fig: Figure, path: Path, title: str) -> Path:
    """PNG with a 256-colour palette (a third of the size; the HTML page embeds every plot) and the
    series list in its text chunks. Saved to the bounding box of everything drawn (plus a margin):
    `tight_layout` does not make room for a colour bar's label, which a one-column heat map with long
    task names pushed past the right edge."""
    from PIL import Image, PngImagePlugin

    meta = {"series": getattr(fig, "_evalharness_series", [])}
    if hasattr(fig, "_evalharness_panels"):
        meta["panels"] = fig._evalharness_panels
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.1)
    info = PngImagePlugin.PngInfo()
    for key, value in {"Title": title, "Description": json.dumps(meta), "Software": "evalharness"}.items():
        info.add_text(key, value)
    image = Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="PNG", optimize=True, pnginfo=info)
    return path


def save_all(
    out_dir: Path,
    *,
    tasks: pd.DataFrame,
    delta_tasks: pd.DataFrame,
    seed_scores: pd.DataFrame,
    columns: pd.DataFrame,
    baseline: int,
    errors: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write the report's PNGs from its frames (the per-task table, the per-task Δ table, a comparison's
    `seed_scores` and `columns`); returns {plot key: path} for the ones that have something to show."""
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Path] = {}
    makers: dict[str, Callable[[], Figure | None]] = {
        "score_vs_shots": lambda: score_vs_shots(seed_scores, columns, errors),
        "delta_per_task": lambda: delta_per_task(delta_tasks, baseline),
        "heatmap": lambda: heatmap(tasks, delta_tasks, baseline),
    }
    for key, make in makers.items():
        fig = make()
        if fig is not None:
            saved[key] = _save(fig, out_dir / f"{key}.png", key.replace("_", " "))
    return saved
