"""AIR-Bench through the runner: a tiny dataset in the hub layout (two QA domains, dev and test splits),
zero- and 2-shot runs scored with air-benchmark's evaluator and checked against pytrec_eval, the
submission folder read by the benchmark's own zip script, resume, dev-sampled examples, and errors."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval
from mteb.results import TaskResult
from omegaconf import OmegaConf

from evalharness.airbench import AirBenchError, all_tasks, get_task, select_tasks, task_type_label
from evalharness.airbench.data import LocalDataLoader
from evalharness.airbench.examples import AirBenchFileExamples, build_example_set
from evalharness.airbench.retriever import check_search, exact_search, search
from evalharness.config import CONF_DIR, RunConfig
from evalharness.examples import ExampleError
from evalharness.instructions import AIRBENCH_INSTRUCTION
from evalharness.plan import ConfigError, validate
from evalharness.runner import Runner

EXAMPLES = Path(__file__).parent / "data" / "airbench" / "examples"
VERSION = "AIR-Bench_24.05"
NAMES = ["AIRBench_24.05_qa_law_en", "AIRBench_24.05_qa_finance_en"]  # the benchmark's order

# domain -> corpus, dev queries (id: text, relevant docs, hard negatives), test queries
DATA = {
    "finance": {
        "corpus": {
            "f1": "Interest rates are set by the central bank to control inflation.",
            "f2": "A stock exchange is a market where shares of companies are traded.",
            "f3": "Inflation measures how fast the general price level rises.",
            "f4": "A mortgage is a loan used to buy a house, secured by the property.",
            "f5": "Diversification spreads investments to reduce risk.",
            "f6": "Bonds are debt securities that pay periodic interest.",
        },
        "dev": {
            "fd1": ("Who sets interest rates?", ["f1"], ["f3"]),
            "fd2": ("How can an investor reduce risk?", ["f5"], []),
            "fd3": ("What loan do people use to buy a home?", ["f4", "f6"], ["f2"]),
        },
        "test": {"ft1": "Where are company shares traded?", "ft2": "What do bonds pay?"},
    },
    "law": {
        "corpus": {
            "l1": "A plaintiff is the party who brings a case before a court.",
            "l2": "Copyright protects original works of authorship such as books and music.",
            "l3": "A will states how a person's property is distributed after death.",
            "l4": "Negligence is the failure to take reasonable care, causing harm.",
            "l5": "A patent grants an inventor exclusive rights to an invention.",
        },
        "dev": {
            "ld1": ("What protects books and music from copying?", ["l2"], ["l5"]),
            "ld2": ("Who starts a lawsuit?", ["l1"], []),
        },
        "test": {"lt1": "What document distributes property after death?", "lt2": "What is negligence?"},
    },
}


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_airbench_dir(root: Path) -> Path:
    """Local copies laid out like the hub repositories AIR-Bench/qa_<domain>_en (corpus, queries) and
    AIR-Bench/qrels-qa_<domain>_en-dev (dev qrels, with relevance-0 hard negatives)."""
    for domain, d in DATA.items():
        base = root / f"AIR-Bench__qa_{domain}_en" / VERSION / "default"
        _jsonl(base / "corpus.jsonl", [{"id": k, "text": v} for k, v in d["corpus"].items()])
        _jsonl(base / "dev_queries.jsonl", [{"id": k, "text": t} for k, (t, _, _) in d["dev"].items()])
        _jsonl(base / "test_queries.jsonl", [{"id": k, "text": t} for k, t in d["test"].items()])
        qrels = [
            {"qid": q, "docid": doc, "relevance": rel}
            for q, (_, pos, neg) in d["dev"].items()
            for docs, rel in ((pos, 1), (neg, 0))
            for doc in docs
        ]
        _jsonl(root / f"AIR-Bench__qrels-qa_{domain}_en-dev" / VERSION / "default" / "dev_qrels.jsonl", qrels)
    return root


@pytest.fixture(scope="module")
def air_dir(tmp_path_factory) -> Path:
    return build_airbench_dir(tmp_path_factory.mktemp("airbench-data"))


def _cfg(tmp_path: Path, model_config, air_dir: Path, **overrides) -> RunConfig:
    base = OmegaConf.structured(RunConfig)
    base.model = OmegaConf.structured(model_config)
    settings = {
        "benchmark": {
            "name": "air-bench",
            "airbench": {
                "version": VERSION,
                "task_types": ["qa"],
                "domains": ["finance", "law"],
                "languages": ["en"],
                "data_dir": str(air_dir),
            },
        },
        "examples": {"strategy": "file", "root": str(EXAMPLES), "set_id": "air"},
        "results_dir": str(tmp_path),
        "shots": [0, 2],
    }
    if "embedding_cache" in RunConfig.__dataclass_fields__:
        settings["embedding_cache"] = None  # hermetic: the in-memory cache of one run
    return OmegaConf.to_object(OmegaConf.merge(base, settings, overrides))


def _pytrec(qrels: dict, run: dict, measure: str, key: str) -> float:
    scores = pytrec_eval.RelevanceEvaluator(qrels, {measure}).evaluate(run)
    return float(np.mean([s[key] for s in scores.values()]))


def _dev_qrels(domain: str) -> dict[str, dict[str, int]]:
    return {
        q: {**{p: 1 for p in pos}, **{n: 0 for n in neg}} for q, (_, pos, neg) in DATA[domain]["dev"].items()
    }


# --------------------------------------------------------------------------------------------------
# Names, selection and errors
# --------------------------------------------------------------------------------------------------


def test_paper_configs_select_tables_2_and_3():
    """The Hydra presets select the paper's datasets: 8 QA (Table 2) and 15 Long-Doc (Table 3), 24.04."""
    from hydra import compose, initialize_config_dir

    from evalharness.airbench.run import benchmark_task_names
    from evalharness.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        qa = OmegaConf.to_object(compose("config", overrides=["benchmark=air-bench-qa-en"]))
        ld = OmegaConf.to_object(compose("config", overrides=["benchmark=air-bench-long-doc-en"]))
    qa_tasks = [get_task(n) for n in benchmark_task_names(qa)]
    ld_tasks = [get_task(n) for n in benchmark_task_names(ld)]
    assert sorted(t.domain for t in qa_tasks) == sorted(
        ["wiki", "web", "news", "healthcare", "law", "finance", "arxiv", "msmarco"]
    )
    assert len(ld_tasks) == 15 and {t.domain for t in ld_tasks} == {"arxiv", "book", "healthcare", "law"}
    assert {t.version for t in qa_tasks + ld_tasks} == {"AIR-Bench_24.04"}
    assert {t.splits for t in qa_tasks + ld_tasks} == {("test",)}
    assert "AIRBench_24.04_long-doc_healthcare_en_pubmed_100K-200K_1" in all_tasks()
    assert task_type_label("AIRBench_24.04_qa_wiki_en") == "AIR-Bench QA"
    assert task_type_label("SciFact") is None


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"version": "24.06"}, "valid versions: AIR-Bench_24.04, AIR-Bench_24.05"),
        (
            {"domains": ["wikii"]},
            "valid domains: arxiv, book, finance, healthcare, law, msmarco, news, web, wiki",
        ),
        ({"languages": ["de"]}, "valid languages: en, zh"),
        ({"task_types": ["qa"], "domains": ["book"]}, "what AIR-Bench_24.04 has: "),
        ({"splits": ["dev"]}, "valid splits: test"),
    ],
)
def test_unknown_names_list_valid_values(kwargs, expected):
    args = {"version": "AIR-Bench_24.04", **kwargs}
    with pytest.raises(AirBenchError) as err:
        select_tasks(**args)
    assert expected in str(err.value)
    if "domains" in kwargs and kwargs["domains"] == ["wikii"]:
        assert "did you mean wiki" in str(err.value)


def test_validate_reports_bad_names_and_missing_files_before_loading(tmp_path, smollm2_config, air_dir):
    cfg = _cfg(
        tmp_path,
        smollm2_config,
        air_dir,
        benchmark={"airbench": {"languages": ["xx"], "domains": ["fiance"]}},
    )
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "unknown AIR-Bench language 'xx'" in msg and "valid languages: ar, bn, de, en, es, fa, fr" in msg
    assert "unknown AIR-Bench domain 'fiance'" in msg and "did you mean finance" in msg

    partial = build_airbench_dir(tmp_path / "partial")
    (partial / "AIR-Bench__qrels-qa_law_en-dev" / VERSION / "default" / "dev_qrels.jsonl").unlink()
    for folder in partial.glob("*finance*"):
        shutil.rmtree(folder)
    cfg = _cfg(tmp_path, smollm2_config, air_dir, benchmark={"airbench": {"data_dir": str(partial)}})
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    msg = str(err.value)
    assert "task AIRBench_24.05_qa_law_en: dev qrels: no file under benchmark.airbench.data_dir" in msg
    assert "AIR-Bench__qrels-qa_law_en-dev/AIR-Bench_24.05/default/dev_qrels.jsonl" in msg
    assert "task AIRBench_24.05_qa_finance_en: none of" in msg and "as AIR-Bench__qa_finance_en" in msg


# --------------------------------------------------------------------------------------------------
# Data, examples and search
# --------------------------------------------------------------------------------------------------


def test_local_loader_reads_the_hub_layout(air_dir):
    loader = LocalDataLoader(air_dir, VERSION)
    corpus = loader.load_corpus("qa", "finance", "en", "default")
    assert corpus["f4"] == {"text": DATA["finance"]["corpus"]["f4"]}
    assert loader.load_corpus("qa", "finance", "en", "default") is corpus  # kept for the evaluator
    assert loader.load_queries("qa", "law", "en", "default", split="test") == DATA["law"]["test"]
    assert loader.load_qrels("qa", "finance", "en", "default", split="dev") == _dev_qrels("finance")


def test_example_files_map_to_datasets(tmp_path):
    files = AirBenchFileExamples(EXAMPLES, 2)
    ex = files.examples("AIRBench_24.05_qa_finance_en")
    assert [e.source for e in ex] == ["finance.jsonl:1", "finance.jsonl:2"]
    assert ex[0].response.startswith("When inflation rises")  # `pos` is the response
    # long-doc files are `{domain}-{dataset}` with lower-case k; the datasets write K
    assert (
        len(
            AirBenchFileExamples(EXAMPLES, -1).examples(
                "AIRBench_24.04_long-doc_healthcare_en_pubmed_100K-200K_3"
            )
        )
        == 3
    )
    problems = files.check(["AIRBench_24.05_qa_finance_zh", "AIRBench_24.05_qa_wiki_en"])
    assert len(problems) == 2 and "{finance-zh,finance_zh}.jsonl" in problems[0]
    assert "{wiki-en,wiki_en,wiki}.jsonl" in problems[1]
    assert "finance.jsonl" in problems[1]  # what is available
    with pytest.raises(ExampleError, match="only 3 examples"):
        AirBenchFileExamples(EXAMPLES, 4).examples("AIRBench_24.05_qa_law_en")


def test_dev_split_examples_are_seeded_and_refused_when_dev_is_evaluated(air_dir):
    loader = LocalDataLoader(air_dir, VERSION)
    task = get_task("AIRBench_24.05_qa_finance_en")
    kwargs = dict(task=task, shots=2, loader=loader, split="dev")
    a = build_example_set("train", seed=0, eval_splits=["test"], **kwargs).for_texts(task.name, ["x"])[0]
    b = build_example_set("train", seed=0, eval_splits=["test"], **kwargs).for_texts(task.name, ["x"])[0]
    assert a == b and len(a) == 2 and all(e.source.startswith("dev:fd") for e in a)
    for e in a:  # the query's most relevant passage is the response
        qid = e.source.split(":")[1]
        assert e.query == DATA["finance"]["dev"][qid][0]
        assert e.response == DATA["finance"]["corpus"][DATA["finance"]["dev"][qid][1][0]]
    knn = build_example_set("knn", seed=0, eval_splits=["test"], **kwargs)  # per query, nearest dev pairs
    texts = list(DATA["finance"]["test"].values())
    per_text = knn.for_texts(task.name, texts, embed=lambda ts: np.array([[len(t), 1.0] for t in ts]))
    assert [len(p) for p in per_text] == [2, 2] and all(
        e.source.startswith("dev:") for p in per_text for e in p
    )
    with pytest.raises(ExampleError, match="is evaluated in this run"):
        build_example_set("train", seed=0, eval_splits=["dev", "test"], **kwargs)
    old = get_task("AIRBench_24.04_qa_finance_en")
    with pytest.raises(ExampleError, match="24.05's dev queries were taken from 24.04's test"):
        build_example_set("train", seed=0, eval_splits=["test"], **{**kwargs, "task": old})


@pytest.mark.parametrize(("score_block", "query_block"), [(1 << 26, 1024), (37, 3)])
def test_exact_search_matches_brute_force_with_stable_ties(monkeypatch, score_block, query_block):
    """Exact scores, descending, equal scores by document index, whatever the tiling (the small
    blocks make the corpus tiles and query blocks smaller than the data)."""
    from evalharness.airbench import retriever

    monkeypatch.setattr(retriever, "SCORE_BLOCK", score_block)
    monkeypatch.setattr(retriever, "QUERY_BLOCK", query_block)
    rng = np.random.default_rng(0)
    q, d = rng.normal(size=(7, 5)).astype(np.float32), rng.normal(size=(40, 5)).astype(np.float32)
    d[17] = d[3]  # duplicate passages: the lower index ranks first
    scores, idx = exact_search(q, d, 10)
    full = q @ d.T
    for row in range(7):
        expected = sorted(range(40), key=lambda j: (-full[row, j], j))[:10]
        assert idx[row].tolist() == expected
        np.testing.assert_allclose(scores[row], full[row, expected], rtol=1e-5)
    assert any({3, 17} <= set(row) for row in exact_search(d[[3]], d, 5)[1].tolist())
    out = search(q, d, [f"q{i}" for i in range(7)], [f"d{j}" for j in range(40)], 1000)
    assert all(len(v) == 40 for v in out.values())  # top_k capped at the corpus size
    assert check_search("exact") == []
    assert "use one of exact, faiss" in check_search("annoy")[0]


# --------------------------------------------------------------------------------------------------
# End to end through the runner
# --------------------------------------------------------------------------------------------------


def _experiment(tmp_path: Path, name: str) -> Path:
    (folder,) = tmp_path.glob(f"results/*/*/experiments/{name}")
    return folder


def test_zero_and_two_shot_runs_score_dev_and_write_submission(
    tmp_path, smollm2_config, smollm2_backend, air_dir
):
    from air_benchmark.evaluation_utils import Evaluator
    from scripts.zip_results import zip_results  # air-benchmark's own submission script

    cfg = _cfg(tmp_path, smollm2_config, air_dir)
    plan = validate(cfg)
    names = plan.names
    assert names == NAMES
    embedded: list[list] = []
    original = smollm2_backend.embed

    def recording(items, *args, **kwargs):
        embedded.append(list(items))
        return original(items, *args, **kwargs)

    smollm2_backend.embed = recording
    try:
        records = Runner(plan, backend=smollm2_backend).run()
    finally:
        del smollm2_backend.embed
    assert [(r.cell.shots, r.task, r.task_type) for r in records] == [
        (0, NAMES[0], "AIR-Bench QA"), (0, NAMES[1], "AIR-Bench QA"),
        (2, NAMES[0], "AIR-Bench QA"), (2, NAMES[1], "AIR-Bench QA"),
    ]  # fmt: skip

    # few-shot changes the query side only: the 2-shot cell embeds no passage (all from the cache)
    # and its queries are the zero-shot query bodies behind the examples prefix
    items = [it for call in embedded for it in call]
    passages = [it for it in items if not it.is_query]
    corpus_texts = [t for d in DATA.values() for t in d["corpus"].values()]
    assert sorted(p.body for p in passages) == sorted(corpus_texts)
    assert all(p.prefix == "" and p.suffix == "" for p in passages)
    queries = [it for it in items if it.is_query]
    zero = [q for q in queries if q.prefix == ""]
    two = [q for q in queries if q.prefix]
    n_queries = sum(len(d["dev"]) + len(d["test"]) for d in DATA.values())
    assert len(zero) == len(two) == n_queries
    assert sorted(q.body for q in zero) == sorted(q.body for q in two)
    assert all(AIRBENCH_INSTRUCTION in q.body for q in queries)
    assert any("What does a central bank do" in q.prefix for q in two)

    search_root = tmp_path / "air-bench"
    for exp in (
        "examples_none__shots_0__template_bge-icl",
        "examples_file__set_air__shots_2__template_bge-icl",
    ):
        folder = _experiment(tmp_path, exp)
        manifest = json.loads((folder / "manifest.json").read_text())
        (retriever_dir,) = search_root.glob(f"*/*/*__{exp}")
        for name, domain in zip(NAMES, ("law", "finance"), strict=True):
            result = TaskResult.from_disk(folder / f"{name}.json")
            assert list(result.scores) == ["dev"]
            (scores,) = result.scores["dev"]
            assert scores["main_score"] == scores["ndcg_at_10"]
            assert {"ndcg_at_1", "map_at_10", "recall_at_100", "precision_at_3", "mrr_at_10"} <= set(scores)
            assert scores["languages"] == ["eng-Latn"]
            # the same rankings, scored directly with pytrec_eval
            dev_file = retriever_dir / "NoReranker" / "qa" / domain / "en_default_dev.json"
            info, rankings = Evaluator.load_search_results(str(dev_file))
            assert info["split"] == "dev" and set(rankings) == set(DATA[domain]["dev"])
            qrels = _dev_qrels(domain)
            assert scores["ndcg_at_10"] == pytest.approx(
                _pytrec(qrels, rankings, "ndcg_cut.10", "ndcg_cut_10"), abs=1e-5
            )
            assert scores["recall_at_10"] == pytest.approx(
                _pytrec(qrels, rankings, "recall.10", "recall_10"), abs=1e-5
            )
            entry = manifest["tasks"][name]
            assert entry["main_score_name"] == "ndcg_at_10" and entry["main_score"] == scores["ndcg_at_10"]
            assert entry["instruction"] == AIRBENCH_INSTRUCTION and entry["instruction_source"] == "table7"
            assert len(entry["examples"]) == (2 if "shots_2" in exp else 0)
            assert entry["submission"]["test_files"]

        # the submission: air-benchmark's zip script finds the test files (dev files stay out)
        zipped = tmp_path / "zipped" / exp
        assert zip_results(str(retriever_dir.parent), str(zipped), retriever_dir.name)
        with zipfile.ZipFile(zipped / f"{retriever_dir.name}_NoReranker.zip") as z:
            assert sorted(z.namelist()) == ["qa/finance/en_default_test.json", "qa/law/en_default_test.json"]
            data = json.loads(z.read("qa/law/en_default_test.json"))
        assert {k: data[k] for k in ("model_name", "reranker_name", "benchmark_version", "split")} == {
            "model_name": retriever_dir.name, "reranker_name": "NoReranker", "benchmark_version": VERSION,
            "split": "test",
        }  # fmt: skip
        assert set(data["search_results"]) == set(DATA["law"]["test"])
        assert all(len(docs) == len(DATA["law"]["corpus"]) for docs in data["search_results"].values())

    # a re-run finds everything done and loads no data and no model
    rerun = Runner(plan, backend=None)
    again = rerun.run()
    assert all(r.skipped for r in again) and len(again) == 4 and rerun.backend is None


def test_dev_sampled_examples_when_only_test_is_run(tmp_path, minilm_config, minilm_backend, air_dir):
    cfg = _cfg(
        tmp_path,
        minilm_config,
        air_dir,
        benchmark={"airbench": {"splits": ["test"], "domains": ["finance"]}},
        examples={"strategy": "train", "split": "dev", "root": None, "set_id": None},
        shots=[2],
    )
    plan = validate(cfg)
    names = plan.names
    (record,) = Runner(plan, backend=minilm_backend).run()
    assert record.main_score is None  # test only: no local score, a submission file
    folder = _experiment(tmp_path, "examples_train__seed_0__shots_2__template_plain")
    entry = json.loads((folder / "manifest.json").read_text())["tasks"][names[0]]
    assert [e["source"][:6] for e in entry["examples"]] == ["dev:fd", "dev:fd"]
    assert not (folder / f"{names[0]}.json").exists()
    assert entry["outputs"] and all((tmp_path / p).exists() for p in entry["outputs"])
    bad = _cfg(tmp_path, minilm_config, air_dir, examples={"strategy": "train", "split": "dev", "root": None})
    with pytest.raises(ConfigError, match="is evaluated in this run"):
        validate(bad)


def test_hub_loader_path_on_2404_writes_a_submission_only(
    tmp_path, monkeypatch, minilm_config, minilm_backend
):
    """With no data_dir the run goes through air-benchmark's own hub DataLoader (here fed by a stand-in
    for `datasets.load_dataset` with 24.04's split names): test split only, so no local score."""
    import air_benchmark.evaluation_utils.data_loader as hub

    asked = []

    def fake_load_dataset(path, name, split, cache_dir=None, token=None):
        asked.append((path, name, split))
        domain = path.split("_")[1]
        assert path == f"AIR-Bench/qa_{domain}_en" and name == "AIR-Bench_24.04"
        if split == "corpus_default":
            return [{"id": k, "text": v} for k, v in DATA[domain]["corpus"].items()]
        assert split == "queries_default"  # 24.04's name for the test queries
        return [{"id": k, "text": v} for k, v in DATA[domain]["test"].items()]

    monkeypatch.setattr(hub.datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    cfg = _cfg(
        tmp_path,
        minilm_config,
        tmp_path,
        benchmark={"airbench": {"version": "AIR-Bench_24.04", "domains": ["law"], "data_dir": None}},
        shots=[0],
    )
    plan = validate(cfg)
    names = plan.names
    assert names == ["AIRBench_24.04_qa_law_en"]
    (record,) = Runner(plan, backend=minilm_backend).run()
    assert record.main_score is None and record.task_type == "AIR-Bench QA"
    (test_file,) = tmp_path.glob("air-bench/*/*/*/NoReranker/qa/law/en_default_test.json")
    data = json.loads(test_file.read_text())
    assert data["benchmark_version"] == "AIR-Bench_24.04" and set(data["search_results"]) == set(
        DATA["law"]["test"]
    )
    assert ("AIR-Bench/qa_law_en", "AIR-Bench_24.04", "corpus_default") in asked


# --------------------------------------------------------------------------------------------------
# The written rankings against an independent exact search on vectors the test controls
# --------------------------------------------------------------------------------------------------

RANK_TOP_K = 5  # far below the corpus size, so truncation and mis-assignment change the rankings
RANK_DIM = 8
TOPICS = ["apple", "bond", "cash", "debt", "equity", "fund", "gold", "hedge", "index", "loan", "yield", "margin",
          "option", "pension", "quota", "rate"]  # fmt: skip
RANK_CORPUS = {f"d{j:02d}": f"passage {j:02d} about {TOPICS[j % len(TOPICS)]}" for j in range(24)}
RANK_CORPUS["d19"] = RANK_CORPUS["d07"]  # a duplicate passage: two documents tied exactly
RANK_DEV = {f"q{i:02d}": f"dev question {i:02d} on {TOPICS[(3 * i) % len(TOPICS)]}" for i in range(6)}
RANK_TEST = {f"t{i:02d}": f"test question {i:02d} on {TOPICS[(5 * i + 1) % len(TOPICS)]}" for i in range(5)}
TIED_QUERY = "q02"  # its vector sits next to the duplicate passage's: d07 and d19 rank 1 and 2, tied


def _hash_vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=RANK_DIM)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _rank_vectors() -> dict[str, np.ndarray]:
    """text -> unit vector: hash-seeded, except the tied query, placed near the duplicate passage."""
    table = {t: _hash_vector(t) for t in [*RANK_CORPUS.values(), *RANK_DEV.values(), *RANK_TEST.values()]}
    near = table[RANK_CORPUS["d07"]] + 0.05 * _hash_vector("offset")
    table[RANK_DEV[TIED_QUERY]] = (near / np.linalg.norm(near)).astype(np.float32)
    return table


class LookupBackend:
    """Stands in for a model: each text's vector is looked up in `table` by the raw text (a query's
    body is the instruction-wrapped query, so it is found by the one query text it contains). The test
    thus knows every vector the search sees, independently of the code under test."""

    tokens_encoded = 0
    n_truncated = 0

    def __init__(self, table: dict[str, np.ndarray], queries: list[str]) -> None:
        self.table, self.queries = table, queries

    def embed(self, items, batch_size=None, *args, **kwargs) -> np.ndarray:
        rows = []
        for item in items:
            if item.is_query:
                (text,) = [q for q in self.queries if q in item.body]
            else:
                text = item.body
            rows.append(self.table[text])
        return np.stack(rows)


def _expected_rankings(
    table: dict[str, np.ndarray], corpus: dict[str, str], queries: dict[str, str]
) -> dict[str, list[tuple[str, float]]]:
    """Brute force in float64 with numpy: every document scored by inner product, best first, equal
    scores by the document's position in the corpus file (the code's tie rule), top RANK_TOP_K kept."""
    ids = list(corpus)
    docs = np.stack([table[corpus[d]] for d in ids]).astype(np.float64)
    out = {}
    for qid, text in queries.items():
        scores = (docs * table[text].astype(np.float64)).sum(axis=1)  # the same sum for equal rows
        order = sorted(range(len(ids)), key=lambda j: (-scores[j], j))
        kept = [float(scores[j]) for j in order[: RANK_TOP_K + 1]]
        # the data are unambiguous: neighbouring scores are far apart unless tied exactly, and no tie
        # straddles the cut (which of two documents tied at the k-th score is kept is unspecified)
        assert all(a == b or a - b > 1e-4 for a, b in zip(kept, kept[1:], strict=False)), qid
        assert kept[-2] != kept[-1], qid
        out[qid] = [(ids[j], float(scores[j])) for j in order[:RANK_TOP_K]]
    return out


def _write_rank_dataset(root: Path, order: np.ndarray | None) -> tuple[dict, dict, dict]:
    """AIR-Bench__qa_finance_en (24.05, dev + test) from the RANK_* data, each file's rows in `order`
    (a permutation seed) or as listed; dev qrels mark each query's rank-2 and rank-7 documents."""
    rng = np.random.default_rng(order) if order is not None else None

    def arranged(d: dict[str, str]) -> dict[str, str]:
        keys = list(d) if rng is None else [list(d)[i] for i in rng.permutation(len(d))]
        return {k: d[k] for k in keys}

    corpus, dev, test = arranged(RANK_CORPUS), arranged(RANK_DEV), arranged(RANK_TEST)
    base = root / "AIR-Bench__qa_finance_en" / VERSION / "default"
    _jsonl(base / "corpus.jsonl", [{"id": k, "text": v} for k, v in corpus.items()])
    _jsonl(base / "dev_queries.jsonl", [{"id": k, "text": v} for k, v in dev.items()])
    _jsonl(base / "test_queries.jsonl", [{"id": k, "text": v} for k, v in test.items()])
    table = _rank_vectors()
    ids = list(RANK_CORPUS)
    qrels = []
    for qid, text in RANK_DEV.items():
        scores = np.stack([table[RANK_CORPUS[d]] for d in ids]) @ table[text]
        ranked = sorted(range(len(ids)), key=lambda j: (-scores[j], j))
        qrels += [{"qid": qid, "docid": ids[ranked[1]], "relevance": 1}]
        qrels += [{"qid": qid, "docid": ids[ranked[6]], "relevance": 1}]
    _jsonl(root / "AIR-Bench__qrels-qa_finance_en-dev" / VERSION / "default" / "dev_qrels.jsonl", qrels)
    return corpus, dev, test


@pytest.mark.parametrize("order", [None, 7], ids=["files-as-listed", "files-shuffled"])
@pytest.mark.parametrize(
    ("score_block", "query_block"), [(1 << 26, 1024), (24, 4)], ids=["one-tile", "tiles-of-6-blocks-of-4"]
)
def test_written_rankings_equal_an_exact_search_on_known_vectors(
    tmp_path, monkeypatch, minilm_config, order, score_block, query_block
):
    """Through the runner and air-benchmark's Evaluator (dev and test queries searched together, then
    split), with a backend whose vectors the test knows: every written ranking is the top 5 of an
    independent numpy search for that query's own vector (ids, order, scores), on the dev and the test
    split, whatever the order of the rows in the data files and however the search tiles the corpus
    (tiles of 6 documents and blocks of 4 queries exercise the running top-k merge)."""
    from air_benchmark.evaluation_utils import Evaluator

    from evalharness.airbench import retriever

    monkeypatch.setattr(retriever, "SCORE_BLOCK", score_block)
    monkeypatch.setattr(retriever, "QUERY_BLOCK", query_block)
    data = tmp_path / "data"
    corpus, dev, test = _write_rank_dataset(data, order)
    if order is not None:  # the shuffle moved the rows (and the tied pair's order), or it tests nothing
        assert list(dev) != sorted(dev) and list(test) != sorted(test)
        assert list(corpus).index("d19") < list(corpus).index("d07")
    table = _rank_vectors()
    cfg = _cfg(
        tmp_path,
        minilm_config,
        data,
        benchmark={"airbench": {"domains": ["finance"], "search_top_k": RANK_TOP_K}},
        examples={"strategy": "none", "root": None, "set_id": None},
        shots=[0],
    )
    plan = validate(cfg)
    backend = LookupBackend(table, [*RANK_DEV.values(), *RANK_TEST.values()])
    (record,) = Runner(plan, backend=backend).run()

    written = {}
    for split, queries in (("dev", dev), ("test", test)):
        (path,) = tmp_path.glob(f"air-bench/*/*/*/NoReranker/qa/finance/en_default_{split}.json")
        info, written[split] = Evaluator.load_search_results(str(path))
        assert info["split"] == split
        assert set(written[split]) == set(queries)  # each split holds its own queries, no other
        for qid, ranking in _expected_rankings(table, corpus, queries).items():
            got = written[split][qid]
            assert list(got) == [d for d, _ in ranking], (split, qid)
            assert [got[d] for d, _ in ranking] == pytest.approx([s for _, s in ranking], abs=1e-5)
    # the tie: equal scores, and the document listed first in the corpus file ranks first
    tied = written["dev"][TIED_QUERY]
    assert list(tied)[:2] == [d for d in corpus if d in ("d07", "d19")] and tied["d07"] == tied["d19"]

    # the stored nDCG@10 is that of the expected rankings (air-benchmark rounds to 4 decimals)
    expected_dev = {q: dict(r) for q, r in _expected_rankings(table, corpus, dev).items()}
    qrels = LocalDataLoader(data, VERSION).load_qrels("qa", "finance", "en", "default", split="dev")
    ndcg = _pytrec({q: dict(d) for q, d in qrels.items()}, expected_dev, "ndcg_cut.10", "ndcg_cut_10")
    assert 0 < ndcg < 1 and record.main_score == pytest.approx(ndcg, abs=5e-5)


def test_dev_per_query_values_give_back_the_main_score(tmp_path, minilm_config, minilm_backend, air_dir):
    """The per-query nDCG@10 kept beside an AIR-Bench dev result: one value per dev query with qrels,
    their mean is the main score (air-benchmark rounds it to 5 decimals), and the file is one of the
    outputs a re-run requires."""
    from evalharness import per_item

    cfg = _cfg(tmp_path, minilm_config, air_dir, shots=[0], examples={"strategy": "none", "root": None})
    plan = validate(cfg)
    records = Runner(plan, backend=minilm_backend).run()
    folder = _experiment(tmp_path, "examples_none__shots_0__template_plain")
    manifest = json.loads((folder / "manifest.json").read_text())
    for record, domain in zip(records, ("law", "finance"), strict=True):
        entry = manifest["tasks"][record.task]
        data = per_item.read(folder / entry["per_item"])
        assert (data["kind"], data["unit"], data["metric"]) == ("mean", "query", "ndcg_at_10")
        (part,) = data["parts"]
        assert part["split"] == "dev" and part["ids"] == sorted(DATA[domain]["dev"])
        mean = float(np.mean(part["values"]))
        assert round(mean, 5) == pytest.approx(record.main_score, abs=1e-12)
        assert mean == pytest.approx(record.main_score, abs=5e-6)
        assert any(o.endswith(entry["per_item"]) for o in entry["outputs"])
    (folder / entry["per_item"]).unlink()  # the last task's file gone: that task is redone
    again = Runner(plan, backend=minilm_backend).run()
    assert [r.skipped for r in again] == [True, False] and (folder / entry["per_item"]).exists()
