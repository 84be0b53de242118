"""OfflineMiniNewsgroupsClustering: alt.atheism vs sci.space messages (gensim 4.4.0 test data).

``mini_newsgroup`` is a zlib-compressed pickled sklearn Bunch; it is read with a restricted unpickler
(no sklearn needed, no arbitrary classes). The bodies are cleaned of everything that names the group
(headers, quotes, attributions, signatures, e-mail addresses), then split stratified; the mteb task
class clusters the whole test split.
"""

from __future__ import annotations

import io
import pickle
import re
import zlib
from typing import Any, ClassVar

from datasets import ClassLabel, Features, Value
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskClustering

from evalharness.tasks.offline.common import (
    _COMMON_METADATA,
    _GENSIM_DATA,
    GENSIM,
    _cached,
    _clean,
    _labelled_splits,
    _OfflineTask,
    _sizes,
    _truncate,
)


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


@_cached
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


_NG_MIN_WORDS = 8


@_cached
def _build_newsgroups(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflineMiniNewsgroupsClustering", scale)
    _names, *raw = _newsgroups()
    rows, seen = [], set()
    for body, label in raw:  # filter on the untruncated bodies: both scales split the same messages
        if len(body.split()) < _NG_MIN_WORDS or body in seen:
            continue
        seen.add(body)
        rows.append((_truncate(body, cfg["words"]), label))
    return _labelled_splits(rows, cfg, "sentences", "labels")


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
