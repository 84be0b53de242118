"""The report of one results folder: `build_report` (load, compare, tabulate, published numbers) and
`write_report` (Markdown, HTML, scores.csv and PNGs), the one call the CLI and the demo make.

The work is done in modules of their own, and every name of the report's API stays importable from
here: `evalharness.comparison` (the per-task table, MTEB-style means, Δ, Borda rank), `evalharness.published`
(the paper's numbers and a local mteb results repository next to ours), `evalharness.render` (the
`Report` and its Markdown / HTML) and `evalharness.plots` (the PNGs, from the report's frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evalharness import effect
from evalharness import selection as sel
from evalharness.comparison import (
    MEAN_TASKS,
    MEAN_TYPES,
    N_TASKS,
    SETTING,
    Comparison,
    borda,
    compare,
    deltas,
    summary,
    task_labels,
    task_table,
    wide,
)
from evalharness.published import (
    PAPER_BENCHMARK,
    Published,
    ReferenceSection,
    load_published,
    published_task_table,
    reference,
    results_reference,
)
from evalharness.rank_uncertainty import with_stability
from evalharness.render import Report, render_html, render_markdown
from evalharness.results import load
from evalharness.significance import significance
from evalharness.taskinfo import TYPE_ORDER

__all__ = [
    "MEAN_TASKS", "MEAN_TYPES", "N_TASKS", "PAPER_BENCHMARK", "SETTING", "TYPE_ORDER", "Comparison",
    "Published", "ReferenceSection", "Report", "borda", "build_report", "compare", "deltas", "load_published",
    "published_task_table", "reference", "references", "render_html", "render_markdown", "results_reference",
    "summary", "task_labels", "task_table", "write_report",
]  # fmt: skip


def references(reference: str | Sequence[str] | None) -> tuple[bool, list[Path]]:
    """`--reference` values -> (the paper's tables?, results-repository folders). "none" means nothing;
    any other value than "paper" must be an existing folder."""
    values = [reference] if isinstance(reference, str) else list(reference or [])
    values = [v for v in values if v and v != "none"]
    repos = [Path(v) for v in values if v != "paper"]
    for repo in repos:
        if not repo.is_dir():
            raise FileNotFoundError(
                f"--reference {repo}: not 'paper' and no such folder (expected a copy of mteb's results "
                "repository, e.g. `git clone https://github.com/embeddings-benchmark/results`)"
            )
    return "paper" in values, repos


def build_report(
    results_dir: str | Path,
    baseline: int = 0,
    reference_set: str | Sequence[str] | None = None,
    benchmark: str | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    examples_effect: int = 5,
) -> Report:
    """Load, compare and tabulate one results folder. `reference_set`: "paper" and/or paths of mteb
    results repositories; `benchmark`: the mteb benchmark whose splits and subsets score cells that
    record none (see evalharness.selection); `confidence` / `resamples`: the paired CIs and tests of
    every Δ (evalharness.significance; confidence=0 leaves them out); `examples_effect`: how many
    queries with the largest gains (and as many with the largest losses) each retrieval task's
    few-shot settings list (evalharness.effect; 0 leaves the section out)."""
    check_statistics(confidence, resamples)
    if examples_effect < 0:
        raise ValueError(
            f"--examples-effect {examples_effect}: use 0 (leave the section out) or more, e.g. 5"
        )
    paper, repos = references(reference_set)
    if benchmark:
        sel.check_benchmark(benchmark)
    results = load(results_dir, benchmark)
    comp = compare(results)
    table = task_table(comp)
    delta_long, notes = deltas(comp, baseline)
    delta_tasks = wide(comp, delta_long, "delta") if not delta_long.empty else pd.DataFrame()
    # Δ of the means over the same tasks: the mean of the per-task Δ
    delta_summary = summary(delta_tasks).drop(index=[N_TASKS]) if not delta_tasks.empty else pd.DataFrame()
    info, warnings = sel.notes(results.selections)
    refs, ref_note = reference(comp) if paper and not comp.empty else (None, "")
    ranked, borda_note = with_stability(results, comp, confidence=confidence, resamples=resamples)
    repo_refs = (
        [(str(repo), *results_reference(comp, results, repo)) for repo in repos] if not comp.empty else []
    )
    return Report(
        str(results_dir),
        baseline,
        results,
        comp,
        table,
        summary(table),
        delta_tasks,
        delta_summary,
        ranked,
        [*warnings, *notes],
        refs,
        ref_note,
        task_labels=task_labels(comp, table.index) if not table.empty else pd.Series(dtype=object),
        selection_notes=info,
        repo_reference=repo_refs,
        significance=significance(results, comp, baseline, confidence=confidence, resamples=resamples)
        if confidence and not comp.empty
        else None,
        examples_effect=effect.examples_effect(results, comp, baseline, examples_effect),
        borda_note=borda_note,
    )


def check_statistics(confidence: float, resamples: int) -> None:
    """Bad --ci / --resamples values, before anything is read."""
    if not (confidence == 0 or 0 < confidence < 1):
        raise ValueError(
            f"--ci {confidence}: use a confidence level between 0 and 1, e.g. --ci 0.95 (0: no CIs)"
        )
    if resamples < 100:
        raise ValueError(
            f"--resamples {resamples}: use at least 100 (e.g. --resamples 1000); fewer give unstable CIs"
        )


def write_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    baseline: int = 0,
    reference: str | Sequence[str] | None = None,
    plots: bool = True,
    benchmark: str | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    examples_effect: int = 5,
) -> tuple[Path, str]:
    """Write report.md, report.html, scores.csv (the main scores on the selected splits and subsets,
    tidy) and plots/*.png into `out_dir` (default: the results folder). `reference`: "paper" and/or
    folders of mteb's results repository; `benchmark`: see `build_report`. Returns the Markdown path and
    text."""
    rep = build_report(
        results_dir,
        baseline,
        reference,
        benchmark,
        confidence=confidence,
        resamples=resamples,
        examples_effect=examples_effect,
    )
    return rep.write(out_dir or results_dir, plots=plots)
