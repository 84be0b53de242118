"""A report's content (`Report`) and its rendering: Markdown, and one self-contained HTML page.

`evalharness.reporting.build_report` fills a `Report` from a results folder; everything here only turns
frames into text (numbers to 2 decimals, Δ with its sign marked, counts as integers), so Markdown and
HTML show the same sections in the same order, and the same results give the same bytes.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evalharness.comparison import MEAN_TASKS, N_TASKS, Comparison
from evalharness.effect import effect_groups
from evalharness.published import ReferenceSection
from evalharness.results import Results
from evalharness.significance import Significance, intro, no_ci_reasons, pooled_texts, seed_texts, task_texts


@dataclass
class Report:
    """Everything one report shows, so Markdown and HTML render the same content."""

    results_dir: str
    baseline: int
    results: Results
    comparison: Comparison
    tasks: pd.DataFrame
    summary: pd.DataFrame
    delta_tasks: pd.DataFrame
    delta_summary: pd.DataFrame
    borda: pd.DataFrame
    notes: list[str]
    reference: list[ReferenceSection] | None = None
    reference_note: str = ""
    plots: dict[str, Path] = field(default_factory=dict)
    task_labels: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    selection_notes: list[str] = field(default_factory=list)
    repo_reference: list[tuple[str, list[ReferenceSection], str]] = field(default_factory=list)
    significance: Significance | None = None
    #: per-query gains and losses vs the baseline (evalharness.effect); empty: no kept rankings
    examples_effect: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: how the Borda table's rank stability was measured (evalharness.rank_uncertainty); "": not measured
    borda_note: str = ""

    def write(self, out_dir: str | Path, *, plots: bool = True) -> tuple[Path, str]:
        """Write report.md, report.html, scores.csv (the main scores on the selected splits and subsets,
        tidy), significance.csv and plots/*.png into `out_dir`; returns the Markdown path and text."""
        from evalharness import plots as plotting

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        if plots and not self.comparison.empty:
            self.plots = plotting.save_all(
                out / "plots",
                tasks=self.tasks,
                delta_tasks=self.delta_tasks,
                seed_scores=self.comparison.seed_scores,
                columns=self.comparison.columns,
                baseline=self.baseline,
                errors=_plot_errors(self, plotting.ALL_TASKS),
            )
        text = render_markdown(self)
        path = out / "report.md"
        path.write_text(text, encoding="utf-8")
        (out / "report.html").write_text(render_html(self), encoding="utf-8")
        self.results.main().drop(columns=["is_main", "selected"]).to_csv(out / "scores.csv", index=False)
        if self.significance is not None and not self.significance.tasks.empty:
            self.significance.tasks.to_csv(out / "significance.csv", index=False, float_format="%.6g")
        else:  # an earlier report's statistics would no longer match this report
            (out / "significance.csv").unlink(missing_ok=True)
        return path, text


def _plot_errors(rep: Report, all_tasks: str) -> pd.DataFrame | None:
    """The pooled Δ CIs, keyed by the score-vs-shots plot's panel names."""
    if rep.significance is None:
        return None
    pooled = rep.significance.pooled
    return pooled.assign(group=pooled["group"].replace({MEAN_TASKS: all_tasks}))


# ---------------------------------------------------------------------------------------------
# Tables as text: Markdown, and HTML with Δ coloured
# ---------------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or pd.isna(value):
        return "—"
    if isinstance(value, int | np.integer):
        return str(value)
    return f"{value:.2f}"


def _fmt_delta(value: Any) -> str:
    if value is None or pd.isna(value):
        return "—"
    if round(value, 2) == 0:
        return "0.00"
    return f"▲ +{value:.2f}" if value > 0 else f"▼ −{abs(value):.2f}"


def _is_delta(col: Any) -> bool:
    return (col[-1] if isinstance(col, tuple) else col) in ("Δ",) or str(col).startswith("Δ")


def _cell_text(value: Any, row: Any, is_delta: bool) -> str:
    if row == N_TASKS and not isinstance(value, str):  # the task count under the means
        return "—" if value is None or pd.isna(value) else str(int(value))
    return _fmt_delta(value) if is_delta and not isinstance(value, str) else _fmt(value)


def _flat(table: pd.DataFrame, delta: bool = False) -> pd.DataFrame:
    """Strings for Markdown: numbers to 2 decimals, Δ with its sign marked, counts as integers. Built
    column by column into a new frame, so a one-column table (a single model's zero-shot folder) works
    as well as a wide one."""
    names = [
        " ".join(str(p).split("/")[-1] for p in c if str(p)) if isinstance(c, tuple) else str(c)
        for c in table.columns
    ]
    data = {
        i: [
            _cell_text(v, row, delta or _is_delta(col))
            for v, row in zip(table[col].astype(object), table.index, strict=True)
        ]
        for i, col in enumerate(table.columns)
    }
    out = pd.DataFrame(data, index=table.index, dtype=object)
    out.columns = names
    return out.reset_index()


def _md(table: pd.DataFrame, delta: bool = False) -> str:
    if table is None or table.empty:
        return "_nothing to show_"
    flat = _flat(table, delta)
    n_index = table.index.nlevels
    text = [all(isinstance(v, str) for v in table[c]) for c in table.columns]  # notes, labels: left
    align = ["left"] * n_index + ["left" if t else "right" for t in text]
    return flat.to_markdown(index=False, disable_numparse=True, colalign=align)


def _html_table(table: pd.DataFrame, delta: bool = False, uid: str = "t") -> str:
    if table is None or table.empty:
        return "<p><em>nothing to show</em></p>"

    def cell_class(value: Any, is_d: bool) -> str:
        if not is_d or isinstance(value, str) or value is None or pd.isna(value) or round(value, 2) == 0:
            return ""
        return "color: #0a7d28; font-weight: 600" if value > 0 else "color: #b3261e; font-weight: 600"

    # a fixed id per table (pandas picks a random one), so the same results give the same page
    styler = table.style.set_uuid(uid).format(lambda v: _fmt(v) if not isinstance(v, str) else html.escape(v))
    for col in table.columns:
        is_d = delta or _is_delta(col)
        if is_d:
            styler = styler.format(_fmt_delta, subset=[col])
        styler = styler.map(lambda v, d=is_d: cell_class(v, d), subset=[col])
    if N_TASKS in table.index:
        styler = styler.format(
            lambda v: "" if pd.isna(v) else str(int(v)), subset=pd.IndexSlice[[N_TASKS], :]
        )
    return styler.to_html()


# ---------------------------------------------------------------------------------------------
# The report: its sections in order, as Markdown and as one HTML page
# ---------------------------------------------------------------------------------------------

_INTRO = (
    "Main score ×100 per task on the splits and subsets its benchmark scores (*scored on*; see *Splits and "
    "subsets*): mteb's `TaskResult.validate_and_filter_scores` with the benchmark's task, then the mean over "
    "those parts (`get_score`). Sub-tasks of an mteb aggregate task (CQADupstack's 12 forums) are averaged "
    "into one task first, as the paper does; seeds of one setting are averaged. *mean (tasks)* is the mean "
    "over tasks (the paper's Avg., mteb `Mean(Task)`), *mean (types)* the mean of the type means (mteb "
    "`Mean(TaskType)`)."
)
_PLOT_TITLES = {
    "score_vs_shots": "Score vs shots per task type",
    "delta_per_task": "Per-task Δ vs the baseline",
    "heatmap": "Task × setting heat map",
}


def _sections(rep: Report) -> list[tuple[str, str, Any, bool]]:
    """(level, title, table or text, is Δ) in report order."""
    out: list[tuple[str, str, Any, bool]] = [
        ("##", "Summary (MTEB-style)", rep.summary, False),
        (
            "##",
            "Borda rank (every model × setting as one leaderboard entry)",
            rep.borda.set_index(["rank", "model", "setting"]) if not rep.borda.empty else rep.borda,
            False,
        ),
        *([("###", "How sure each Borda rank is", rep.borda_note, False)] if rep.borda_note else []),
        ("##", f"Δ vs {rep.baseline}-shot, per type (mean of per-task Δ)", rep.delta_summary, True),
        ("##", "Per task", _labelled(rep.tasks, rep.task_labels), False),
        ("##", f"Δ vs {rep.baseline}-shot, per task", rep.delta_tasks, True),
    ]
    out += _significance_sections(rep)
    if rep.reference is not None:
        out.append(("##", "Published numbers (paper)", rep.reference_note, False))
        for sec in rep.reference:
            out.append(
                ("###", f"{sec.model}: per task (in-domain = in the model's training data)", sec.tasks, False)
            )
            out.append(("###", f"{sec.model}: per type vs the paper", sec.categories, False))
            if not sec.airbench.empty:
                out.append(
                    (
                        "###",
                        f"{sec.model}: AIR-Bench (paper: 24.04 test)",
                        sec.airbench,
                        False,
                    )
                )
    for repo, sections, note in rep.repo_reference:
        out.append(("##", f"Published numbers (mteb results: {repo})", note, False))
        for sec in sections:
            out.append(("###", f"{sec.model}: per task vs the reference", sec.tasks, False))
            out.append(("###", f"{sec.model}: per type vs the reference (same tasks)", sec.categories, False))
    return out


def _significance_sections(rep: Report) -> list[tuple[str, str, Any, bool]]:
    """The statistics' sections; where no Δ has a CI (results from elsewhere), one line saying why
    instead of a table of identical "no CI" cells."""
    sig = rep.significance
    if sig is None or sig.tasks.empty:
        return []
    title = f"Is the Δ real? Paired {100 * sig.confidence:g}% CIs and tests vs {rep.baseline}-shot"
    out: list[tuple[str, str, Any, bool]]
    if sig.tasks["delta"].isna().all():
        out = [("##", title, f"No CI or test for any Δ: {no_ci_reasons(sig)}.", False)]
    else:
        out = [
            ("##", title, intro(sig), False),
            ("###", "Per type and over all tasks (mean Δ of the tasks with a CI)", pooled_texts(sig, rep.comparison), False),
            ("###", "Per task (Δ [simultaneous CI] Holm-adjusted p)", task_texts(sig, rep.comparison), False),
        ]  # fmt: skip
    if not sig.seeds.empty:
        out.append(
            ("###", "Seeds: mean ± std over seeds (per-seed scores)", seed_texts(sig, rep.comparison), False)
        )
    return out


def _labelled(table: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """The per-task table with its "scored on" column (split · subset) in front, for display only (the
    numeric table feeds the means and plots)."""
    if table.empty or labels.empty:
        return table
    out = table.copy()
    out.insert(0, ("", "scored on"), labels.reindex(table.index).fillna("").to_numpy())
    return out


def _problems(rep: Report) -> list[str]:
    return [*rep.comparison.problems, *rep.notes]


def _effect_intro(rep: Report) -> tuple[str, str]:
    n = int(rep.examples_effect.groupby(["column", "task"]).size().max())
    return (
        f"Which queries the examples helped or hurt (vs {rep.baseline}-shot)",
        f"Per retrieval task and setting, up to {(n + 1) // 2} queries whose score gained most and as many "
        f"that lost most against the same model's {rep.baseline}-shot setting, from the kept rankings; "
        "first relevant rank: where the first relevant document ranked, before → after (—: not ranked).",
    )


def _effect_markdown(rep: Report) -> list[str]:
    if rep.examples_effect.empty:
        return []
    title, intro = _effect_intro(rep)
    lines = [f"## {title}", "", intro, ""]
    for heading, examples, table in effect_groups(rep.examples_effect):
        lines += [f"### {heading}", ""]
        if examples:
            lines += [
                "Every query carried the same examples:",
                "",
                *[f"{i}. {e}" for i, e in enumerate(examples, 1)],
                "",
            ]
        lines += [table.to_markdown(index=False, disable_numparse=True), ""]
    return lines


def _effect_html(rep: Report) -> list[str]:
    if rep.examples_effect.empty:
        return []
    esc = html.escape
    title, intro = _effect_intro(rep)
    parts = [f'<h2 id="examples-effect">{esc(title)}</h2>', f"<p>{esc(intro)}</p>"]
    for heading, examples, table in effect_groups(rep.examples_effect):
        parts.append(f"<h3>{esc(heading)}</h3>")
        if examples:
            items = "".join(f"<li>{esc(e)}</li>" for e in examples)
            parts.append(
                f"<details open><summary>Every query carried the same examples</summary><ol>{items}</ol></details>"
            )
        head = "".join(f"<th>{esc(str(c))}</th>" for c in table.columns)
        body = []
        for row in table.itertuples(index=False):
            cls = "pos" if str(row[0]).startswith("+") else "neg"
            cells = [f'<td class="{cls}">{esc(str(row[0]))}</td>'] + [
                f'<td class="text">{esc(str(v))}</td>' for v in row[1:]
            ]
            body.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(
            f'<table class="effect"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        )
    return parts


def render_markdown(rep: Report, image_dir: str = "plots") -> str:
    lines = [f"# evalharness report: `{rep.results_dir}`", "", _INTRO, ""]
    if rep.comparison.empty:
        lines += ["_no results found_", ""]
    problems = _problems(rep)
    if problems:
        lines += ["## Missing or partial results", "", *[f"- {p}" for p in problems], ""]
    if rep.selection_notes:
        lines += ["## Splits and subsets", "", *[f"- {n}" for n in rep.selection_notes], ""]
    if not rep.comparison.empty:
        for level, title, body, is_delta in _sections(rep):
            text = body if isinstance(body, str) else _md(body, is_delta)
            lines += [f"{level} {title}", "", text, ""]
        lines += _effect_markdown(rep)
        if rep.plots:
            lines += ["## Plots", ""]
            lines += [f"![{_PLOT_TITLES.get(k, k)}]({image_dir}/{p.name})" for k, p in rep.plots.items()]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th.row_heading { text-align: left; }
.problems li { color: #8a4b00; } img { max-width: 100%; border: 1px solid #e0e0e0; margin: 0.5rem 0; }
code { background: #f3f3f3; padding: 0 0.2rem; }
table.effect td.text, table.effect th { text-align: left; max-width: 40rem; } td.pos { color: #0a6b2b; } td.neg { color: #a11d1d; }
details { margin: 0.3rem 0; font-size: 0.85rem; }
"""


def render_html(rep: Report) -> str:
    """One self-contained page: inline CSS, tables, and the plots as base64 data URIs (no links)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>evalharness report: {esc(rep.results_dir)}</title><style>{_CSS}</style></head><body>",
        f"<h1>evalharness report: <code>{esc(rep.results_dir)}</code></h1>",
        f"<p>{esc(_INTRO).replace('`', '')}</p>",
    ]
    if rep.comparison.empty:
        parts.append("<p><em>no results found</em></p>")
    problems = _problems(rep)
    if problems:
        parts.append("<h2>Missing or partial results</h2><ul class='problems'>")
        parts += [f"<li>{esc(p)}</li>" for p in problems]
        parts.append("</ul>")
    if rep.selection_notes:
        parts.append("<h2>Splits and subsets</h2><ul>")
        parts += [f"<li>{esc(n)}</li>" for n in rep.selection_notes]
        parts.append("</ul>")
    if not rep.comparison.empty:
        for n, (level, title, body, is_delta) in enumerate(_sections(rep)):
            tag = "h2" if level == "##" else "h3"
            parts.append(f"<{tag}>{esc(title)}</{tag}>")
            parts.append(
                f"<p>{esc(body)}</p>" if isinstance(body, str) else _html_table(body, is_delta, f"s{n}")
            )
        parts += _effect_html(rep)
        if rep.plots:
            parts.append("<h2>Plots</h2>")
            for key, path in rep.plots.items():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                title = esc(_PLOT_TITLES.get(key, key))
                parts.append(
                    f'<figure><img alt="{title}" src="data:image/png;base64,{data}"><figcaption>{title}</figcaption></figure>'
                )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
