"""evalharness/data/published.yaml, as the report loads it, against the reference transcription, figure by
figure: every published number is keyed by (table, model, training data, condition, task / category /
domain), so a figure under the wrong task, model or condition fails, not only a wrong value.

tests/data/published-results.md is a verbatim copy of the reference's Tables 1, 8, 9, 2 and 3 (its header
says where from), so this runs wherever the repository is checked out.
"""

from __future__ import annotations

import re
from pathlib import Path

import mteb
import pytest

from evalharness.reporting import load_published

REFERENCE = Path(__file__).parent / "data" / "published-results.md"

# The paper's model names -> the hub ids published.yaml uses, per training-data group of the tables
MODELS = {
    "E5-mistral-7b-instruct": "intfloat/e5-mistral-7b-instruct",
    "GritLM-7B": "GritLM/GritLM-7B",
    "SFR-Embedding": "Salesforce/SFR-Embedding-Mistral",
    "Linq-Embed-Mistral": "Linq-AI-Research/Linq-Embed-Mistral",
    "voyage-large-2-instruct": "voyageai/voyage-large-2-instruct",
    "NV-Embed-v1": "nvidia/NV-Embed-v1",
    "bge-multilingual-gemma2": "BAAI/bge-multilingual-gemma2",
    "stella_en_400M_v5": "NovaSearch/stella_en_400M_v5",
    "gte-Qwen2-7B-instruct": "Alibaba-NLP/gte-Qwen2-7B-instruct",
    "SFR-Embedding-2_R": "Salesforce/SFR-Embedding-2_R",
    "stella_en_1.5B_v5": "NovaSearch/stella_en_1.5B_v5",
    "LLM2Vec-Mistral-supervised": "McGill-NLP/LLM2Vec-Mistral-7B-Instruct-v2-mntp-supervised",
    "text-embedding-3-large": "openai/text-embedding-3-large",
}
BGE = {"full": "BAAI/bge-en-icl", "public": "BAAI/bge-en-icl-e5data"}  # "bge-en-icl" in each group
DATA_ROWS = {"w/ full data": "full", "w/ public data only": "public"}
# Table 1 column headings -> categories; Tables 2 and 3 name their domains ("arxiv (4)": arxiv)
CATEGORIES = {
    "Retr.": "Retrieval", "Rerank.": "Reranking", "Clust.": "Clustering", "PairClass.": "PairClassification",
    "Class.": "Classification", "STS": "STS", "Summ.": "Summarization", "Avg.": "Average", "Avg": "Average",
}  # fmt: skip
# The paper's dataset names (Tables 8 and 9) that are not the mteb task name
TASKS = {
    "CQADupStack": "CQADupstackRetrieval", "DBPEDIA": "DBPedia", "Natural Question": "NQ",
    "Quora": "QuoraRetrieval", "TREC-COVID": "TRECCOVID", "Sprint": "SprintDuplicateQuestions",
    "TwitterURL": "TwitterURLCorpus",
    "AmazonCounterfactual": "AmazonCounterfactualClassification",
    "AmazonPolarity": "AmazonPolarityClassification", "AmazonReviews": "AmazonReviewsClassification",
    "Banking77": "Banking77Classification", "Emotion": "EmotionClassification", "Imdb": "ImdbClassification",
    "MassiveIntent": "MassiveIntentClassification", "MassiveScenario": "MassiveScenarioClassification",
    "MTOPDomain": "MTOPDomainClassification", "MTOPIntent": "MTOPIntentClassification",
    "ToxicConversations": "ToxicConversationsClassification",
    "TweetSentimentExtraction": "TweetSentimentExtractionClassification",
    "TweetSentiment": "TweetSentimentExtractionClassification",
    "Arxiv-P2P": "ArxivClusteringP2P", "Arxiv-S2S": "ArxivClusteringS2S",
    "Biorxiv-P2P": "BiorxivClusteringP2P", "Biorxiv-S2S": "BiorxivClusteringS2S",
    "Medrxiv-P2P": "MedrxivClusteringP2P", "Medrxiv-S2S": "MedrxivClusteringS2S",
    "Reddit": "RedditClustering", "Reddit-P2P": "RedditClusteringP2P",
    "StackExchange": "StackExchangeClustering", "StackExchange-P2P": "StackExchangeClusteringP2P",
    "TwentyNewsgroups": "TwentyNewsgroupsClustering",
    "AskUbuntu": "AskUbuntuDupQuestions", "MindSmallRerank": "MindSmallReranking", "MindSmall": "MindSmallReranking",
    "StackOverflowDup": "StackOverflowDupQuestions",
}  # fmt: skip
TABLES = {
    "Table 1": "table1",
    "Table 8": "table8",
    "Table 9": "table9",
    "Table 2": "table2",
    "Table 3": "table3",
}

Key = tuple[str, str, str, str, str]  # (table, model, training data, condition, task/category/domain)


def reference_tables(path: Path = REFERENCE) -> dict[str, list[list[str]]]:
    """table key -> rows of cells (header first), from the Markdown sections `## n. Table k: ...`."""
    tables: dict[str, list[list[str]]] = {}
    key = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            match = re.match(r"## \d+\. (Table \d+):", line)
            key = TABLES.get(match.group(1)) if match else None
            if key:
                tables[key] = []
        elif key and line.startswith("|") and not re.fullmatch(r"[|\-: ]+", line):
            tables[key].append([c.strip().replace("**", "") for c in line.strip().strip("|").split("|")])
    return tables


def _v1_task(paper_name: str) -> str:
    return TASKS.get(paper_name, paper_name)


def _model_condition(name: str, data: str) -> tuple[str, str]:
    """ "bge-en-icl (few-shot)" -> (the group's bge-en-icl id, few-shot); others are as published."""
    match = re.fullmatch(r"(.+?) \((zero-shot|few-shot)\)", name)
    if match:
        assert match.group(1) == "bge-en-icl", name
        return BGE[data], match.group(2)
    return MODELS[name], "published"


def reference_figures(tables: dict[str, list[list[str]]]) -> tuple[dict[Key, float], dict[Key, float]]:
    """Every figure of the reference keyed like ours, and the per-dataset tables' average rows (which
    repeat Table 1's averages) keyed as Table 1 figures."""
    figures: dict[Key, float] = {}
    averages: dict[Key, float] = {}

    def put(target: dict[Key, float], key: Key, text: str) -> None:
        assert key not in target, f"{key} twice in the reference"
        target[key] = float(text)

    # Tables 1, 2, 3: one row per model and condition, grouped by training data
    for table in ("table1", "table2", "table3"):
        header, *rows = tables[table]
        columns = [CATEGORIES.get(h.split(" (")[0], h.split(" (")[0]) for h in header[1:]]
        data = None
        for name, *values in rows:
            if name in DATA_ROWS:
                data = DATA_ROWS[name]
                assert not any(values)
                continue
            assert data is not None and len(values) == len(columns), (table, name)
            model, condition = _model_condition(name, data)
            for column, value in zip(columns, values, strict=True):
                put(figures, (table, model, data, condition, column), value)

    # Table 8: datasets x (five published models, bge-en-icl 0-shot, few-shot); Δ and training data added
    header, *rows = tables["table8"]
    assert header[-2:] == ["Δ", "Training data"]
    columns = [
        (BGE["full"], "zero-shot") if h == "bge-en-icl 0-shot" else
        (BGE["full"], "few-shot") if h == "bge-en-icl few-shot" else (MODELS[h], "published")
        for h in header[1:-2]
    ]  # fmt: skip
    for name, *values in rows:
        for (model, condition), value in zip(columns, values[:-2], strict=True):
            if name == "MTEB Average (56)":
                put(averages, ("table1", model, "full", condition, "Average"), value)
            else:
                put(figures, ("table8", model, "full", condition, _v1_task(name)), value)

    # Table 9: bge-en-icl trained on public data only, zero- and few-shot (and the task type)
    header, *rows = tables["table9"]
    assert header[:4] == ["Dataset", "Type", "Zero-shot", "Few-shot"]
    for name, _, zero, few, _ in rows:
        for condition, value in (("zero-shot", zero), ("few-shot", few)):
            if name == "Average (56)":
                put(averages, ("table1", BGE["public"], "public", condition, "Average"), value)
            else:
                put(figures, ("table9", BGE["public"], "public", condition, _v1_task(name)), value)
    return figures, averages


def our_figures() -> dict[Key, float]:
    pub = load_published()
    ours: dict[Key, float] = {}
    for frame, column in ((pub.tasks, "task"), (pub.categories, "category"), (pub.airbench, "domain")):
        for row in frame.itertuples():
            key = (row.table, row.model, row.data, row.condition, getattr(row, column))
            assert key not in ours, f"{key} twice in published.yaml"
            ours[key] = row.score
    return ours


def _differences(ours: dict[Key, float], ref: dict[Key, float]) -> list[str]:
    out = [
        f"{k}: ours {ours[k]}, reference {ref[k]}"
        for k in sorted(ours.keys() & ref.keys())
        if ours[k] != ref[k]
    ]
    out += [
        f"{k}: in the reference ({ref[k]}), not in published.yaml" for k in sorted(ref.keys() - ours.keys())
    ]
    out += [
        f"{k}: in published.yaml ({ours[k]}), not in the reference" for k in sorted(ours.keys() - ref.keys())
    ]
    return out


@pytest.fixture(scope="module")
def reference():
    return reference_tables()


def test_the_reference_copy_is_complete_and_its_names_resolve(reference):
    """The copy holds the five tables in full, and every paper dataset name maps to one distinct task of
    MTEB(eng, v1) (so the figure-by-figure comparison below cannot pass by skipping rows)."""
    assert set(reference) == set(TABLES.values())
    figures, averages = reference_figures(reference)
    per_table = {t: sum(k[0] == t for k in figures) for t in TABLES.values()}
    assert per_table == {
        "table1": 18 * 8,
        "table8": 56 * 7,
        "table9": 56 * 2,
        "table2": 10 * 9,
        "table3": 12 * 5,
    }
    assert len(averages) == 7 + 2
    v1 = {t.metadata.name for t in mteb.get_benchmark("MTEB(eng, v1)").tasks}
    for table in ("table8", "table9"):
        tasks = [row[0] for row in reference[table][1:] if "Average" not in row[0]]
        assert len({_v1_task(t) for t in tasks}) == 56 and {_v1_task(t) for t in tasks} == v1


def test_every_transcribed_figure_equals_the_reference_figure_under_the_same_key(reference):
    """Tables 1, 2, 3, 8 and 9: the same set of (table, model, data, condition, task/category/domain)
    keys on both sides and the same value under each."""
    figures, _ = reference_figures(reference)
    ours = our_figures()
    assert len(ours) == len(figures) == 798
    problems = _differences(ours, figures)
    assert not problems, "published.yaml differs from tests/data/published-results.md:\n" + "\n".join(
        problems
    )


def test_per_dataset_average_rows_equal_our_table1_averages(reference):
    """Table 8's and 9's average rows (the paper's MTEB average per column) are Table 1's averages."""
    _, averages = reference_figures(reference)
    ours = our_figures()
    assert {k: ours.get(k) for k in averages} == averages


def test_task_types_and_in_domain_flags_follow_the_reference(reference):
    """Table 9's Type column is each task's type in our table, and Table 8's Training data column
    (`full`, `public (inferred)`, `—`) is bge-en-icl's in-domain flag per task."""
    pub = load_published()
    types = dict(zip(pub.tasks["task"], pub.tasks["task_type"], strict=False))
    for name, kind, *_ in reference["table9"][1:]:
        if name != "Average (56)":
            assert types[_v1_task(name)] == kind, name
    flags = pub.in_domain[BGE["full"]]
    expected = {"full": "full", "public (inferred)": "public"}
    ref = {_v1_task(r[0]): expected[r[-1]] for r in reference["table8"][1:] if r[-1] in expected}
    assert flags == ref
    assert all(r[-1] in (*expected, "—", "") for r in reference["table8"][1:])
