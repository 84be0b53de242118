"""Comparison tables from a results folder: per task x (model, shots), and per task-type means."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evalharness.results import load_results


def comparison_table(df: pd.DataFrame) -> pd.DataFrame:
    """Rows = tasks grouped by type; columns = model x setting; scores x100 as MTEB tables show them."""
    if df.empty:
        return pd.DataFrame()
    df = df.copy()
    df["setting"] = df.apply(_setting, axis=1)
    per_task = df.groupby(["task_type", "task", "model", "setting"])["main_score"].mean().mul(100)
    table = per_task.unstack(["model", "setting"]).sort_index(axis=1)
    means = table.groupby(level="task_type").mean()
    means.index = pd.MultiIndex.from_tuples([(t, f"mean ({t})") for t in means.index])
    overall = table.mean().to_frame().T
    overall.index = pd.MultiIndex.from_tuples([("all", "mean (tasks)")])
    out = pd.concat([table, means, overall]).round(2)
    out.columns = [f"{model.split('/')[-1]} {setting}" for model, setting in out.columns]
    out.index.names = ["type", "task"]
    return out.reset_index()


def _setting(row: pd.Series) -> str:
    if pd.isna(row["shots"]):
        return row["experiment"] or "default"
    shots = int(row["shots"])
    seed = "" if pd.isna(row["seed"]) else f" seed {int(row['seed'])}"
    return "0-shot" if shots == 0 else f"{'all' if shots < 0 else shots}-shot {row['strategy']}{seed}"


def write_report(results_dir: str | Path, out_dir: str | Path | None = None) -> tuple[Path, str]:
    df = load_results(results_dir)
    table = comparison_table(df)
    out = Path(out_dir or results_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = "# evalharness report\n\nMain score x100 per task; columns are model / setting.\n\n"
    text += table.to_markdown(index=False) if not table.empty else "_no results found_"
    path = out / "report.md"
    path.write_text(text + "\n", encoding="utf-8")
    df.to_csv(out / "scores.csv", index=False)
    return path, text
