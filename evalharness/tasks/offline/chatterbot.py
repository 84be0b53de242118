"""OfflineChatterbotRetrieval: question -> answer retrieval over the chatterbot-corpus 1.3.3 files.

The reader (conversations of ``chatterbot_corpus/data/english/*.yml``), the builder (questions grouped
and split, the shared corpus) and the mteb task class sit together: the task is what the data becomes.
"""

from __future__ import annotations

import random
from typing import Any

from datasets import Dataset
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

from evalharness.tasks.offline.common import (
    _COMMON_METADATA,
    CHATTERBOT,
    SEED,
    _cached,
    _clean,
    _norm,
    _OfflineTask,
    _sizes,
    _truncate,
)


@_cached
def _chatterbot_pairs() -> tuple[tuple[str, str, str], ...]:
    """(category, question, answer) for every conversation in the English corpus, files in name order.
    Only the first two turns of a conversation are used."""
    import yaml

    root = CHATTERBOT.file("data", "english")
    pairs = []
    for path in sorted(root.glob("*.yml")):
        # BaseLoader keeps every scalar a string (safe_load would turn a bare `yes` into True)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader) or {}
        for conv in data.get("conversations") or []:
            if isinstance(conv, list) and len(conv) >= 2:
                pairs.append((path.stem, str(conv[0]), str(conv[1])))
    return tuple(pairs)


_MAX_ANSWERS_PER_QUESTION = 5


@_cached
def _build_chatterbot(scale: str) -> dict[str, Any]:
    cfg = _sizes("OfflineChatterbotRetrieval", scale)
    words = cfg["words"]
    # group on the untruncated texts, so that both scales split the same questions the same way
    groups: dict[str, dict[str, Any]] = {}
    for _cat, question, answer in _chatterbot_pairs():
        q, a = _clean(question), _clean(answer)
        if not q or not a or _norm(a) == _norm(q):
            continue
        group = groups.setdefault(_norm(q), {"text": q, "answers": []})
        if a not in group["answers"]:
            group["answers"].append(a)
    # questions with many interchangeable answers ("Tell me a joke": 30) are not useful queries
    keys = [k for k, g in groups.items() if len(g["answers"]) <= _MAX_ANSWERS_PER_QUESTION]
    rng = random.Random(SEED)
    rng.shuffle(keys)
    n_test = min(cfg["test"], len(keys))
    test_keys = keys[:n_test]
    # a train question whose answer is word for word a test question would put that test query into
    # a few-shot example: leave such questions out of train
    test_texts = {_truncate(groups[k]["text"], words) for k in test_keys}
    rest = [
        k for k in keys[n_test:] if not any(_truncate(a, words) in test_texts for a in groups[k]["answers"])
    ]
    train_keys = rest if cfg["train"] is None else rest[: cfg["train"]]
    unused = rest[len(train_keys) :]

    corpus: dict[str, str] = {}  # truncated answer text -> doc id

    def add(answer: str) -> str:
        text = _truncate(answer, words)
        if text not in corpus:
            corpus[text] = f"d{len(corpus)}"
        return corpus[text]

    for key in test_keys + train_keys:
        for a in groups[key]["answers"]:
            add(a)
    for a in (a for key in unused for a in groups[key]["answers"]):
        if cfg["corpus"] is not None and len(corpus) >= cfg["corpus"]:
            break
        add(a)

    def split(keys_: list[str], prefix: str) -> dict[str, Any]:
        queries = [
            {"id": f"{prefix}{i}", "text": _truncate(groups[k]["text"], words)} for i, k in enumerate(keys_)
        ]
        qrels = {f"{prefix}{i}": {add(a): 1 for a in groups[k]["answers"]} for i, k in enumerate(keys_)}
        return {"queries": queries, "relevant_docs": qrels}

    test, train = split(test_keys, "test-q"), split(train_keys, "train-q")
    return {
        "corpus": [{"id": doc_id, "text": text} for text, doc_id in corpus.items()],
        "test": test,
        "train": train,
    }


class OfflineChatterbotRetrieval(_OfflineTask, AbsTaskRetrieval):
    """Question -> answer retrieval over the ChatterBot English conversation corpus.

    Source: chatterbot-corpus 1.3.3 (https://pypi.org/project/chatterbot-corpus/1.3.3/),
    ``chatterbot_corpus/data/english/*.yml``; licence BSD-3-Clause.
    Queries are the first turns of the conversations (questions grouped case-insensitively; those with
    more than 5 distinct answers dropped); the corpus holds the second turns (answers). A question's
    relevant documents are all answers it was given. Test and train questions are disjoint; they share
    the corpus, which also holds distractor answers of unused questions.
    """

    metadata = TaskMetadata(
        name="OfflineChatterbotRetrieval",
        description=(
            "Retrieve the chatbot's answer to a user message from the ChatterBot English corpus "
            "(question -> answer, qrels = the answers given to that question in the corpus)."
        ),
        reference=CHATTERBOT.pypi_url,
        dataset=CHATTERBOT.dataset("chatterbot_corpus/data/english/*.yml"),
        type="Retrieval",
        main_score="ndcg_at_10",
        date=("2016-01-01", "2024-12-31"),
        domains=["Written", "Constructed"],
        task_subtypes=["Question answering"],
        license="bsd-3-clause",
        annotations_creators="derived",
        dialect=[],
        sample_creation="created",
        prompt={"query": "Given a user message, retrieve the chatbot reply that answers it"},
        **_COMMON_METADATA,
    )
    _builder = staticmethod(_build_chatterbot)

    def _to_mteb(self, data: dict[str, Any]) -> Any:
        corpus = Dataset.from_list(data["corpus"])
        return {
            "default": {
                split: RetrievalSplitData(
                    corpus=corpus,
                    queries=Dataset.from_list(data[split]["queries"]),
                    relevant_docs={q: dict(d) for q, d in data[split]["relevant_docs"].items()},
                    top_ranked=None,
                )
                for split in ("test", "train")
            }
        }
