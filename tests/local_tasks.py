"""Tiny mteb tasks built in the tests (retrieval, classification, STS), each with a train split
disjoint from the evaluated test split so that examples can be sampled from it."""

from __future__ import annotations

from datasets import Dataset, DatasetDict
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskClassification, AbsTaskRetrieval, AbsTaskSTS
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

COMMON = dict(
    description="Tiny task built in the evalharness tests.",
    reference=None,
    eval_splits=["test"],
    eval_langs=["eng-Latn"],
    category="t2t",
    modalities=["text"],
    date=("2024-01-01", "2024-01-02"),
    domains=["Encyclopaedic"],
    license="cc-by-4.0",
    annotations_creators="derived",
    sample_creation="created",
    bibtex_citation="",
)

DOCS = {
    "d1": "Paris is the capital and largest city of France.",
    "d2": "Berlin is the capital of Germany.",
    "d3": "Python is a programming language that emphasises readability.",
    "d4": "Rust is a language designed for memory safety.",
    "d5": "The Nile is the longest river in Africa.",
    "d6": "Mount Everest is the highest mountain above sea level.",
    "d7": "Madrid is the capital of Spain.",
    "d8": "The Amazon is the largest rainforest on Earth.",
}
TEST_QUERIES = {
    "q1": ("What is the capital of France?", "d1"),
    "q2": ("Which language is built for memory safety?", "d4"),
    "q3": ("What is the highest mountain?", "d6"),
    "q4": ("Longest river in Africa?", "d5"),
}
TRAIN_QUERIES = {
    "t1": ("Capital city of Germany?", "d2"),
    "t2": ("Which language is known for readability?", "d3"),
    "t3": ("What is the capital of Spain?", "d7"),
}


def _retrieval_split(queries: dict[str, tuple[str, str]]) -> RetrievalSplitData:
    corpus = Dataset.from_list([{"id": k, "title": "", "text": v} for k, v in DOCS.items()])
    q = Dataset.from_list([{"id": k, "text": t} for k, (t, _) in queries.items()])
    qrels = {k: {d: 1} for k, (_, d) in queries.items()}
    return RetrievalSplitData(corpus=corpus, queries=q, relevant_docs=qrels, top_ranked=None)


class LocalRetrieval(AbsTaskRetrieval):
    metadata = TaskMetadata(
        name="LocalRetrieval",
        type="Retrieval",
        main_score="ndcg_at_10",
        dataset={"path": "local/retrieval", "revision": "1"},
        prompt={"query": "Given a question, retrieve passages that answer it"},
        **COMMON,
    )

    def load_data(self, num_proc=None, **kwargs):
        if self.data_loaded:
            return
        self.dataset = {
            "default": {"test": _retrieval_split(TEST_QUERIES), "train": _retrieval_split(TRAIN_QUERIES)}
        }
        self.data_loaded = True


CLS_TRAIN = [
    ("I love this film", 1),
    ("What a wonderful day", 1),
    ("Great service and tasty food", 1),
    ("Absolutely fantastic experience", 1),
    ("This is terrible", 0),
    ("I hate waiting in line", 0),
    ("The worst meal I ever had", 0),
    ("Awful, never again", 0),
]
CLS_TEST = [
    ("Really enjoyable and fun", 1),
    ("Such a lovely gift", 1),
    ("Horrible and rude staff", 0),
    ("Bad, boring movie", 0),
]


class LocalClassification(AbsTaskClassification):
    metadata = TaskMetadata(
        name="LocalClassification",
        type="Classification",
        main_score="accuracy",
        dataset={"path": "local/classification", "revision": "1"},
        **COMMON,
    )
    samples_per_label = 4
    n_experiments = 2

    def load_data(self, num_proc=None, **kwargs):
        if self.data_loaded:
            return
        rows = lambda data: Dataset.from_list([{"text": t, "label": y} for t, y in data])  # noqa: E731
        self.dataset = DatasetDict({"train": rows(CLS_TRAIN), "test": rows(CLS_TEST)})
        self.data_loaded = True


CLS_DEV = [
    ("Lovely, would come back", 1),
    ("Pleasant and friendly", 1),
    ("Dreadful noise all night", 0),
    ("Cold food and slow service", 0),
]


class LocalDevClassification(LocalClassification):
    """Two splits to take examples from (train, dev); only test is evaluated."""

    metadata = TaskMetadata(
        name="LocalDevClassification",
        type="Classification",
        main_score="accuracy",
        dataset={"path": "local/classification-dev", "revision": "1"},
        **COMMON,
    )

    def load_data(self, num_proc=None, **kwargs):
        if self.data_loaded:
            return
        rows = lambda data: Dataset.from_list([{"text": t, "label": y} for t, y in data])  # noqa: E731
        self.dataset = DatasetDict({"train": rows(CLS_TRAIN), "dev": rows(CLS_DEV), "test": rows(CLS_TEST)})
        self.data_loaded = True


STS_TEST = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing onions.", "Someone is cutting an onion.", 4.2),
    ("A dog runs in the park.", "The stock market fell today.", 0.2),
    ("Kids are playing football.", "Children play soccer.", 4.5),
    ("The sky is blue.", "A cat sleeps on the sofa.", 0.4),
]
STS_TRAIN = [
    ("A man is dancing.", "A man dances on stage.", 4.6),
    ("A plane takes off.", "An airplane is taking off.", 5.0),
]


class LocalSTS(AbsTaskSTS):
    metadata = TaskMetadata(
        name="LocalSTS",
        type="STS",
        main_score="cosine_spearman",
        dataset={"path": "local/sts", "revision": "1"},
        **COMMON,
    )
    min_score = 0
    max_score = 5
    local_splits = {"test": STS_TEST, "train": STS_TRAIN}

    def load_data(self, num_proc=None, **kwargs):
        if self.data_loaded:
            return
        rows = lambda data: Dataset.from_list(  # noqa: E731
            [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in data]
        )
        self.dataset = DatasetDict({name: rows(data) for name, data in self.local_splits.items()})
        self.data_loaded = True


STS_VALIDATION = [
    ("A girl is riding a horse.", "A child rides a horse.", 4.4),
    ("The train is late.", "Bananas are yellow.", 0.1),
    ("He opens the door.", "The door is opened by him.", 4.9),
]


class LocalTwoSplitSTS(LocalSTS):
    """Two evaluated splits (like EmotionClassification's validation + test) and, as real MTEB data
    do, an empty text in the test split."""

    metadata = TaskMetadata(
        name="LocalTwoSplitSTS",
        type="STS",
        main_score="cosine_spearman",
        dataset={"path": "local/sts2", "revision": "1"},
        **{**COMMON, "eval_splits": ["validation", "test"]},
    )
    local_splits = {
        "validation": STS_VALIDATION,
        "test": [*STS_TEST, ("", "An empty sentence pairs with this one.", 0.0)],
    }


def register() -> None:
    """mteb resolves task names when results are loaded; local tasks must be in its registry."""
    from mteb.get_tasks import _TASKS_REGISTRY

    for cls in (LocalRetrieval, LocalClassification, LocalDevClassification, LocalSTS, LocalTwoSplitSTS):
        _TASKS_REGISTRY[cls.metadata.name] = cls
