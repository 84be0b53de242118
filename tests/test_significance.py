"""The report's statistics on every Δ (evalharness/significance.py): built from the per-item values a
run keeps, consistent with the Δ table, reproducible, and explicit where they cannot be computed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evalharness import per_item, significance, stats
from evalharness.comparison import MEAN_TASKS
from evalharness.plan import validate
from evalharness.reporting import build_report, write_report
from evalharness.results import load
from evalharness.runner import Runner
from tests import local_tasks
from tests.configs import run_config

REPO = Path(__file__).resolve().parent.parent
TASKS = ["LocalRetrieval", "LocalSTS", "OfflineRottenTomatoesPairClassification"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, minilm_config, minilm_backend):
    """0-shot and 1-shot (two seeds) on a retrieval, an STS and a pair-classification task."""
    local_tasks.register()
    tmp = tmp_path_factory.mktemp("significance")
    cfg = run_config(
        minilm_config,
        {"benchmark": {"name": "custom", "tasks": TASKS}, "results_dir": str(tmp / "out"), "shots": [0, 1],
         "seed": [0, 1], "examples": {"strategy": "train"}, "embedding_cache": None},
        {},
    )  # fmt: skip
    Runner(validate(cfg), backend=minilm_backend).run()
    return tmp / "out"


def test_every_delta_gets_a_ci_and_a_test_consistent_with_the_delta_table(sweep):
    rep = build_report(sweep, resamples=500)
    sig = rep.significance
    rows = sig.tasks.set_index("task")
    assert set(rows.index) == set(TASKS) and rows["note"].isin(["", significance.DISAGREE]).all()
    assert rows["ci_level"].eq(1 - 0.05 / 3).all()  # simultaneous for the column's three tasks
    (column,) = rep.delta_tasks.columns
    for task in TASKS:
        row = rows.loc[task]
        table_delta = rep.delta_tasks.xs(task, level="task")[column].iloc[0]
        # the Δ the table prints, up to mteb rounding each score to 5 decimals (x100: 1e-3)
        assert row["delta"] == pytest.approx(table_delta, abs=1.01e-3)
        assert row["low"] <= row["delta"] <= row["high"]
        assert 0 < row["p"] <= 1 and row["p"] <= row["p_holm"] <= 1
    assert rows.loc["LocalRetrieval", "test"] == "permutation"  # seeds averaged per query: one paired test
    assert rows.loc["LocalSTS", "test"] == "bootstrap"  # a correlation per seed, pooled
    assert rows.loc["LocalRetrieval", "unit"] == "query" and rows.loc["LocalSTS", "unit"] == "pair"
    # Holm over the column's three tasks
    assert list(rows["p_holm"]) == pytest.approx(stats.holm(list(rows["p"])))
    overall = sig.pooled.set_index("group").loc[MEAN_TASKS]
    assert overall["n_tasks"] == 3
    assert overall["delta"] == pytest.approx(rows["delta"].mean(), abs=1e-9)
    assert overall["low"] <= overall["delta"] <= overall["high"]
    # seeds: mean ± std with the per-seed scores
    seeds = sig.seeds.set_index("task")
    per_seed = rep.comparison.seed_scores
    retrieval = per_seed[(per_seed["task"] == "LocalRetrieval") & per_seed["shots"].eq(1)]["score"]
    assert seeds.loc["LocalRetrieval", "mean"] == pytest.approx(retrieval.mean())
    assert seeds.loc["LocalRetrieval", "std"] == pytest.approx(retrieval.std(ddof=1))


def test_the_retrieval_delta_is_the_paired_test_of_the_per_query_values(sweep):
    """Recomputed from the stored files: the seeds' per-query nDCG averaged, against 0-shot, through
    scipy via stats.paired_delta with the report's seed, gives the report's numbers exactly."""
    rep = build_report(sweep, resamples=500)
    row = rep.significance.tasks.set_index("task").loc["LocalRetrieval"]

    def values(pattern):
        (folder,) = sweep.glob(f"results/*/*/experiments/{pattern}")
        (part,) = per_item.read(folder / "per_item" / "LocalRetrieval.json")["parts"]
        return np.asarray(part["values"])

    few = (values("*seed_0__shots_1_*") + values("*seed_1__shots_1_*")) / 2
    zero = values("examples_none__shots_0_*")
    d = stats.paired_delta(
        stats.Sample("mean", few, parts=np.zeros(len(few), int)),
        stats.Sample("mean", zero, parts=np.zeros(len(zero), int)),
        resamples=500,
        seed=stats.task_seed("LocalRetrieval"),
    )
    low, high = stats.interval(d, row["ci_level"])  # the bootstrap's percentiles at the Bonferroni level
    assert (row["delta"], row["low"], row["high"], row["p"]) == pytest.approx(
        (100 * d.delta, 100 * low, 100 * high, d.p_value), abs=1e-9
    )
    assert (low, high) == pytest.approx(
        tuple(
            np.percentile(d.distribution, [100 * (1 - row["ci_level"]) / 2, 100 * (1 + row["ci_level"]) / 2])
        ),
        abs=1e-12,
    )


def test_a_correlation_compares_each_seed_and_averages_their_distributions(sweep):
    """STS with two 1-shot seeds: each seed's Spearman Δ against the one 0-shot setting, their bootstrap
    distributions averaged resample by resample; the Δ is the mean of the two, the p the averaged
    distribution's two-sided tail, the CI its percentiles at the column's level."""
    rep = build_report(sweep, resamples=500)
    row = rep.significance.tasks.set_index("task").loc["LocalSTS"]

    def sample(pattern):
        (folder,) = sweep.glob(f"results/*/*/experiments/{pattern}")
        (part,) = per_item.read(folder / "per_item" / "LocalSTS.json")["parts"]
        return stats.Sample(
            "spearman", part["values"], part["gold"], parts=np.zeros(len(part["values"]), int)
        )

    zero = sample("examples_none__shots_0_*")
    seed = stats.task_seed("LocalSTS")
    each = [
        stats.paired_delta(sample(f"*seed_{s}__shots_1_*"), zero, resamples=500, seed=seed) for s in (0, 1)
    ]
    averaged = (each[0].distribution + each[1].distribution) / 2
    level = row["ci_level"]
    assert row["delta"] == pytest.approx(100 * (each[0].delta + each[1].delta) / 2, abs=1e-9)
    assert row["p"] == pytest.approx(significance.bootstrap_p(averaged), abs=1e-12)
    assert (row["low"], row["high"]) == pytest.approx(
        tuple(100 * np.percentile(averaged, [100 * (1 - level) / 2, 100 * (1 + level) / 2])), abs=1e-9
    )
    assert each[0].delta != pytest.approx(each[1].delta)  # two different seeds, so the mean matters


def test_reports_are_reproducible_and_shown(sweep, tmp_path):
    a = write_report(sweep, tmp_path / "a", resamples=300)[1]
    b = write_report(sweep, tmp_path / "b", resamples=300)[1]
    assert a == b
    assert "## Is the Δ real? Paired 95% CIs and tests vs 0-shot" in a
    assert "### Per task (Δ [simultaneous CI] Holm-adjusted p)" in a and " p=" in a
    assert (tmp_path / "a" / "significance.csv").read_text() == (
        tmp_path / "b" / "significance.csv"
    ).read_text()
    assert "<h2>Is the Δ real?" in (tmp_path / "a" / "report.html").read_text()
    text = write_report(sweep, tmp_path / "a", confidence=0)[1]  # --ci 0: no statistics, none left over
    assert "Is the Δ real?" not in text and not (tmp_path / "a" / "significance.csv").exists()


def test_results_without_per_item_values_still_report_and_say_why(sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    for folder in copy.glob("results/*/*/experiments/*/per_item"):
        shutil.rmtree(folder)
    results = load(copy)
    assert results.items.empty and len(results.items_missing) == 3 * 3
    assert set(results.items_missing["reason"]) == {per_item.NO_FILE}
    rep = build_report(copy, resamples=200)
    rows = rep.significance.tasks
    assert rows["delta"].isna().all() and rows["note"].eq(per_item.NO_FILE).all()
    text = write_report(copy, tmp_path / "rep")[1]
    assert f"No CI or test for any Δ: {per_item.NO_FILE} (3 of 3 Δs)." in text
    assert rep.delta_tasks.notna().all().all()  # the Δ table itself is unchanged


def test_the_tidy_frame_gains_the_per_item_table(sweep):
    results = load(sweep)
    items = results.items
    sts = items[(items["task"] == "LocalSTS") & (items["shots"] == 0)]
    assert len(sts) == len(local_tasks.STS_TEST) and set(sts["kind"]) == {"spearman"}
    pair = items[(items["task"] == "OfflineRottenTomatoesPairClassification") & (items["shots"] == 0)]
    assert set(pair["column"]) == set(per_item.SIGNS)  # one row per pair and scoring function
    retrieval = items[(items["task"] == "LocalRetrieval") & (items["shots"] == 0)]
    main = results.main()
    score = main[(main["task"] == "LocalRetrieval") & (main["shots"] == 0)]["score"].iloc[0]
    assert round(retrieval["value"].mean(), 5) == pytest.approx(score, abs=1e-12)


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--ci", "1.5"], "--ci 1.5: use a confidence level between 0 and 1"),
     (["--resamples", "10"], "--resamples 10: use at least 100")],
)  # fmt: skip
def test_bad_statistics_options_are_clear_errors(sweep, tmp_path, flags, message):
    out = subprocess.run(
        [sys.executable, "-m", "evalharness.cli", "report", str(sweep), "--out", str(tmp_path / "r"), *flags],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


def test_the_committed_demo_report_shows_cis_and_significance_marks():
    """The demo keeps per-item values for every task (test_demo pins that the committed folder is what
    the code produces), so every Δ of its report has a CI and a Holm-adjusted p, and some are marked."""
    import re

    section = (
        (REPO / "results" / "demo" / "report.md").read_text(encoding="utf-8").split("## Is the Δ real?")[1]
    )
    cells = re.findall(
        r"([+-]\d+\.\d\d) \[([+-]\d+\.\d\d), ([+-]\d+\.\d\d)\] p=([\d.e-]+)( \(bootstrap p\))?( \*)?",
        section,
    )
    assert len(cells) == 3 * 2 * 5  # 3 models x 2 few-shot settings x 5 tasks
    assert all(float(low) <= float(d) <= float(high) for d, low, high, *_ in cells)
    assert any(mark for *_, mark in cells) and not all(mark for *_, mark in cells)
    assert "no CI:" not in section


def test_settings_that_are_not_on_the_same_units_get_a_reason_not_a_crash(sweep, tmp_path):
    """Files from elsewhere may disagree: STS gold scores that differ between two settings, or a
    retrieval cell with a query the other lacks."""
    import json

    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    (zero,) = copy.glob("results/*/*/experiments/examples_none__shots_0_*")
    sts = zero / "per_item" / "LocalSTS.json"
    data = json.loads(sts.read_text())
    data["parts"][0]["gold"][0] += 0.1
    sts.write_text(json.dumps(data))
    retrieval = zero / "per_item" / "LocalRetrieval.json"
    data = json.loads(retrieval.read_text())
    for key in ("ids", "values"):
        data["parts"][0][key] = data["parts"][0][key][1:]
    retrieval.write_text(json.dumps(data))
    rows = build_report(copy, resamples=200).significance.tasks.set_index("task")
    assert rows.loc["LocalSTS", "note"].startswith("no paired comparison: paired samples have different gold")
    assert rows.loc["LocalRetrieval", "note"] == "the settings were scored on different queries"
    assert rows.loc["OfflineRottenTomatoesPairClassification", "note"] == ""
