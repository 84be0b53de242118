"""OfflinePangLeePolarityClassification: sentence polarity (gensim 4.4.0 test data).

The reader of ``pang_lee_polarity.cor`` (fastText tags, cp1252, tokenisation spaces undone), the
stratified builder and the mteb task class.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from datasets import ClassLabel, Features, Value
from mteb import TaskMetadata
from mteb.abstasks import AbsTaskClassification

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


@_cached
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


@_cached
def _build_pang_lee(scale: str) -> dict[str, list[dict[str, Any]]]:
    cfg = _sizes("OfflinePangLeePolarityClassification", scale)
    rows = [(_truncate(t, cfg["words"]), y) for t, y in _pang_lee()]
    return _labelled_splits(rows, cfg, "text", "label")


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
