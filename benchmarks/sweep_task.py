"""The retrieval task of the shot-sweep benchmark: chatterbot questions over a corpus shaped like a real
retrieval task's (many more passages than queries), built offline from the data the offline tasks ship.

`OfflineChatterbotRetrieval` at mini scale has 120 short answers for 40 queries: its corpus is smaller
than its query side, so caching the corpus across settings can save little. Real retrieval tasks have
corpora 10-100x their query count (SciFact 5,183 passages / 300 queries, NFCorpus 3,633 / 323, ArguAna
8,674 / 1,406). `BenchChatterbotDistractorRetrieval` keeps the chatterbot task's questions, answers and
qrels and grows the corpus:

- test queries: the first `queries` test questions of `OfflineChatterbotRetrieval` at full scale (the
  first 40 are the mini task's test questions);
- corpus: the answers relevant to them, then the task's other answers (the answers of its other test
  questions, of its train questions and of unused ones) up to `answers`, then `distractors` passages
  drawn (seeded) from the other offline tasks' texts: Pang & Lee sentences, newsgroup posts, Lee
  documents, Rotten Tomatoes plots and reviews. A distractor that repeats a chatterbot text, or that
  contains an answer relevant to a test query as a phrase (e.g. a plot that mentions "New York City"),
  is left out, so the qrels stay exactly the chatterbot ones;
- train split (the `train` example strategy's pool): the full task's train questions with their
  answers, in a corpus of their own (train and test questions are disjoint);
- every text is cut to `max_words` words.

The task is fed to the Runner by name through mteb's task registry (what `mteb.get_task` reads), as the
tests do with their local tasks; `registered` adds it for the duration of a benchmark and restores the
registry afterwards, so nothing in evalharness changes for users.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from benchmarks.common import task_texts
from evalharness.tasks import offline
from evalharness.tasks.offline import OfflineChatterbotRetrieval

TASK_NAME = "BenchChatterbotDistractorRetrieval"

# the other offline tasks, whose texts are the distractors (name in the table -> task class)
DISTRACTOR_SOURCES: dict[str, type] = {
    "Pang & Lee": offline.OfflinePangLeePolarityClassification,
    "newsgroups": offline.OfflineMiniNewsgroupsClustering,
    "Lee": offline.OfflineLeeSTS,
    "Rotten Tomatoes": offline.OfflineRottenTomatoesPairClassification,
}


@dataclass(frozen=True)
class SweepTaskSpec:
    """Sizes of the benchmark task (hashable: the built data is cached per spec)."""

    queries: int = 60  # test queries
    answers: int | None = None  # chatterbot answers in the corpus, relevant ones first (None: all 823)
    distractors: int = 300  # passages from the other offline tasks
    max_words: int = 64  # every text cut to this many words


REALISTIC = SweepTaskSpec()


@functools.cache
def distractor_pool(max_words: int) -> tuple[tuple[str, str], ...]:
    """(text cut to `max_words`, source) for every distinct text of the other offline tasks (full scale,
    test and train splits), sorted by text; a text found in two sources keeps the first."""
    pool: dict[str, str] = {}
    for source, cls in DISTRACTOR_SOURCES.items():
        for text in task_texts(cls(scale="full").splits()):
            cut = offline._truncate(text, max_words)
            if cut:
                pool.setdefault(cut, source)
    return tuple(sorted(pool.items()))


def _phrase_pattern(phrases: set[str]) -> re.Pattern[str] | None:
    """Matches any of `phrases` as a whole phrase (not inside a longer word)."""
    alternatives = sorted((p for p in phrases if p), key=len, reverse=True)
    if not alternatives:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, alternatives)) + r")(?!\w)")


@functools.cache
def build(spec: SweepTaskSpec) -> dict[str, Any]:
    """The task's data as plain Python: {"test": split, "train": split, "sizes": {...}}, each split
    {"corpus": [{"id", "text"}], "queries": [{"id", "text"}], "relevant_docs": {qid: {doc id: 1}}}."""
    base = offline._build_chatterbot("full")
    cut = functools.partial(offline._truncate, max_words=spec.max_words)
    base_docs = [(d["id"], d["text"]) for d in base["corpus"]]
    text_of = dict(base_docs)
    queries = base["test"]["queries"][: spec.queries]
    if len(queries) < spec.queries:
        raise ValueError(f"only {len(queries)} chatterbot test questions; lower queries={spec.queries}")
    base_qrels = {q["id"]: base["test"]["relevant_docs"][q["id"]] for q in queries}
    relevant = {d for docs in base_qrels.values() for d in docs}

    corpus: dict[str, str] = {}  # text -> doc id; the same text is one passage

    def add(doc_id: str, text: str) -> None:
        corpus.setdefault(text, doc_id)

    for doc_id, text in base_docs:  # relevant answers first, then the others in the task's order
        if doc_id in relevant:
            add(doc_id, cut(text))
    n_relevant = len(corpus)
    n_answers = len(base_docs) if spec.answers is None else spec.answers
    if n_answers < n_relevant:
        raise ValueError(
            f"answers={spec.answers} < the {n_relevant} answers relevant to {spec.queries} queries"
        )
    for doc_id, text in base_docs:
        if len(corpus) >= n_answers:
            break
        add(doc_id, cut(text))
    n_answers = len(corpus)

    # distractors: no chatterbot text (question or answer), no relevant answer inside them
    chatterbot = {offline._norm(t) for _cat, q, a in offline._chatterbot_pairs() for t in (q, a)}
    relevant_phrases = _phrase_pattern({offline._norm(cut(text_of[d])) for d in relevant})
    candidates, excluded = [], Counter()
    for text, source in distractor_pool(spec.max_words):
        norm = offline._norm(text)
        if norm in chatterbot or text in corpus:
            excluded["repeat a chatterbot text"] += 1
        elif relevant_phrases is not None and relevant_phrases.search(norm):
            excluded["contain a relevant answer"] += 1
        else:
            candidates.append((text, source))
    random.Random(offline.SEED).shuffle(candidates)
    if len(candidates) < spec.distractors:
        raise ValueError(f"only {len(candidates)} distractor texts; lower distractors={spec.distractors}")
    sources = Counter()
    for i, (text, source) in enumerate(candidates[: spec.distractors]):
        add(f"x{i}", text)
        sources[source] += 1

    doc_id_of_base = {d: corpus[cut(text_of[d])] for d in relevant}
    test = {
        "corpus": [{"id": doc_id, "text": text} for text, doc_id in corpus.items()],
        "queries": [{"id": q["id"], "text": cut(q["text"])} for q in queries],
        "relevant_docs": {
            qid: {doc_id_of_base[d]: score for d, score in docs.items()} for qid, docs in base_qrels.items()
        },
    }
    train_qrels = base["train"]["relevant_docs"]
    train_docs = {d for docs in train_qrels.values() for d in docs}
    train = {
        "corpus": [{"id": d, "text": cut(t)} for d, t in base_docs if d in train_docs],
        "queries": [{"id": q["id"], "text": cut(q["text"])} for q in base["train"]["queries"]],
        "relevant_docs": {q: dict(docs) for q, docs in train_qrels.items()},
    }
    sizes = {
        **asdict(spec),
        "passages": len(corpus),
        "relevant_answers": n_relevant,
        "answers": n_answers,
        "distractors": len(corpus) - n_answers,
        "distractor_sources": dict(sources),
        "distractors_excluded": dict(excluded),
        "train_queries": len(train["queries"]),
    }
    return {"test": test, "train": train, "sizes": sizes}


class BenchChatterbotDistractorRetrieval(OfflineChatterbotRetrieval):
    """`OfflineChatterbotRetrieval`'s questions and qrels over a corpus grown with distractor passages
    (see the module docstring). One size per class (`spec`); the offline scale setting is ignored."""

    metadata = OfflineChatterbotRetrieval.metadata.model_copy(
        update={
            "name": TASK_NAME,
            "description": (
                "Benchmark task: ChatterBot question -> answer retrieval over the corpus of answers plus "
                "distractor passages from the other offline tasks (a corpus 10-20x the queries)."
            ),
        }
    )
    spec: ClassVar[SweepTaskSpec] = REALISTIC

    @classmethod
    def _builder(cls, scale: str) -> dict[str, Any]:  # type: ignore[override]
        return build(cls.spec)

    def _to_mteb(self, data: dict[str, Any]) -> Any:
        from datasets import Dataset
        from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

        return {
            "default": {
                split: RetrievalSplitData(
                    corpus=Dataset.from_list(data[split]["corpus"]),
                    queries=Dataset.from_list(data[split]["queries"]),
                    relevant_docs={q: dict(d) for q, d in data[split]["relevant_docs"].items()},
                    top_ranked=None,
                )
                for split in ("test", "train")
            }
        }


def task_class(spec: SweepTaskSpec = REALISTIC) -> type[BenchChatterbotDistractorRetrieval]:
    """The task class for `spec` (same task name, so only one can be registered at a time)."""
    if spec == BenchChatterbotDistractorRetrieval.spec:
        return BenchChatterbotDistractorRetrieval
    base = BenchChatterbotDistractorRetrieval
    return type(
        base.__name__, (base,), {"spec": spec, "__module__": __name__, "__qualname__": base.__qualname__}
    )


@contextlib.contextmanager
def registered(cls: type) -> Iterator[str]:
    """Put `cls` in mteb's task registry under its name (how the Runner finds tasks: `mteb.get_task`)
    while the block runs; the registry is restored afterwards. Yields the task name."""
    registry: dict[str, Any] = importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY
    name = cls.metadata.name
    missing = object()
    before = registry.get(name, missing)
    registry[name] = cls
    try:
        yield name
    finally:
        if before is missing:
            registry.pop(name, None)
        else:
            registry[name] = before
