"""Where AIR-Bench data comes from: the hub through air-benchmark's own `DataLoader`, or local copies.

air-benchmark's `DataLoader` always calls `datasets.load_dataset("AIR-Bench/...")`, which fails on an
offline machine. `LocalDataLoader` is a drop-in subclass that reads the same files from a folder
(`benchmark.airbench.data_dir`), laid out the way the hub repositories are, so a plain
`huggingface_hub.snapshot_download` on an online machine is all the preparation it needs:

    DATA_DIR/AIR-Bench__qa_wiki_en/AIR-Bench_24.05/default/corpus.jsonl           {"id", "text"}
    DATA_DIR/AIR-Bench__qa_wiki_en/AIR-Bench_24.05/default/dev_queries.jsonl      {"id", "text"}
    DATA_DIR/AIR-Bench__qa_wiki_en/AIR-Bench_24.05/default/test_queries.jsonl
    DATA_DIR/AIR-Bench__qrels-qa_wiki_en-dev/AIR-Bench_24.05/default/dev_qrels.jsonl  {"qid", "docid", "relevance"}
    DATA_DIR/AIR-Bench__long-doc_arxiv_en/AIR-Bench_24.04/gpt3/corpus.jsonl ...

Repository folders may also be named without the `AIR-Bench__` prefix (`qa_wiki_en`), qrels may sit in
the dataset's own folder (older hub revisions kept `dev_qrels.jsonl` there), 24.04 query files may be
called `queries.jsonl` (its first revision), and the flat layout of the air-benchmark API notes
(`DATA_DIR/<version>/<type>_<domain>_<lang>/{corpus_<ds>,queries_<ds>_<split>,qrels_<ds>_<split>}.jsonl`)
is read too. Missing files are reported before any model loads, with the paths that were tried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from air_benchmark.evaluation_utils import DataLoader

from evalharness.airbench.tasks import AirBenchError, AirTask
from evalharness.jsonl import numbered_json_lines

HUB_ORG = "AIR-Bench"


class _OneSlot:
    """Keeps the last corpus loaded: example pools and the evaluator read the same dataset's corpus
    back to back, and loading a million-document corpus twice costs minutes. One slot, so memory
    holds one corpus at a time."""

    def __init__(self) -> None:
        self.key: tuple[str, ...] | None = None
        self.value: Any = None

    def get(self, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        if key != self.key:
            self.key, self.value = None, None  # free the previous corpus before reading the next
            self.value = compute()
            self.key = key
        return self.value


class HubDataLoader(DataLoader):
    """air-benchmark's hub loader, unchanged apart from keeping the last corpus."""

    def __init__(self, benchmark_version: str, cache_dir: str | None = None) -> None:
        super().__init__(benchmark_version, cache_dir=cache_dir)
        self._corpus = _OneSlot()

    def load_corpus(self, task_type: str, domain: str, language: str, dataset_name: str) -> Any:
        key = (task_type, domain, language, dataset_name)
        return self._corpus.get(key, lambda: super(HubDataLoader, self).load_corpus(*key))


def _read_jsonl(path: Path, fields: Sequence[str]) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        lines = numbered_json_lines(
            f, lambda n, err: AirBenchError(f"{path}:{n}: not valid JSON ({err}); re-download the file")
        )
        for lineno, row in lines:
            missing = [k for k in fields if k not in row]
            if missing:
                raise AirBenchError(
                    f"{path}:{lineno}: missing field(s) {', '.join(missing)} (expected {', '.join(fields)}); "
                    "the file does not have the AIR-Bench layout"
                )
            yield row


class LocalDataLoader(DataLoader):
    """Reads AIR-Bench corpus, queries and qrels from local copies of the hub datasets (module doc)."""

    def __init__(self, root: str | Path, benchmark_version: str) -> None:
        super().__init__(benchmark_version)
        self.root = Path(root).expanduser()
        self._corpus = _OneSlot()

    # -- where each file may be -----------------------------------------------------------------

    def _repo_dirs(self, repo: str) -> list[Path]:
        return [self.root / f"{HUB_ORG}__{repo}", self.root / repo]

    def _flat_dir(self, task_type: str, domain: str, language: str) -> Path:
        return self.root / self.benchmark_version / f"{task_type}_{domain}_{language}"

    def corpus_paths(self, task_type: str, domain: str, language: str, dataset_name: str) -> list[Path]:
        repo = f"{task_type}_{domain}_{language}"
        hub = [d / self.benchmark_version / dataset_name / "corpus.jsonl" for d in self._repo_dirs(repo)]
        flat = self._flat_dir(task_type, domain, language) / f"corpus_{dataset_name.replace('-', '_')}.jsonl"
        return [*hub, flat]

    def queries_paths(
        self, task_type: str, domain: str, language: str, dataset_name: str, split: str
    ) -> list[Path]:
        repo = f"{task_type}_{domain}_{language}"
        names = [f"{split}_queries.jsonl"]
        if self.benchmark_version == "AIR-Bench_24.04":
            names.append("queries.jsonl")  # 24.04 had test queries only, first named queries.jsonl
        hub = [d / self.benchmark_version / dataset_name / n for d in self._repo_dirs(repo) for n in names]
        ds = dataset_name.replace("-", "_")
        flat = self._flat_dir(task_type, domain, language) / f"queries_{ds}_{split}.jsonl"
        return [*hub, flat]

    def qrels_paths(
        self, task_type: str, domain: str, language: str, dataset_name: str, split: str
    ) -> list[Path]:
        base = f"{task_type}_{domain}_{language}"
        repos = [f"qrels-{base}-dev"] if split == "dev" else [f"qrels-{base}"]
        repos.append(base)
        names = [f"{split}_qrels.jsonl"]
        if self.benchmark_version == "AIR-Bench_24.04":
            names.append("qrels.jsonl")
        hub = [
            d / self.benchmark_version / dataset_name / n
            for repo in repos
            for d in self._repo_dirs(repo)
            for n in names
        ]
        ds = dataset_name.replace("-", "_")
        flat = self._flat_dir(task_type, domain, language) / f"qrels_{ds}_{split}.jsonl"
        return [*hub, flat]

    def _first(self, paths: list[Path], what: str) -> Path:
        for p in paths:
            if p.is_file():
                return p
        shown = "\n    ".join(str(p) for p in paths)
        raise AirBenchError(
            f"{what}: no file under benchmark.airbench.data_dir={self.root}; tried\n    {shown}\n"
            "  Copy the hub dataset there (docs/airbench.md, section 'Offline') or fix data_dir."
        )

    # -- air-benchmark's DataLoader interface --------------------------------------------------------

    def load_corpus(self, task_type: str, domain: str, language: str, dataset_name: str) -> dict[str, dict]:
        key = (task_type, domain, language, dataset_name)
        return self._corpus.get(key, lambda: self._read_corpus(*key))

    def _read_corpus(self, task_type: str, domain: str, language: str, dataset_name: str) -> dict[str, dict]:
        path = self._first(
            self.corpus_paths(task_type, domain, language, dataset_name),
            f"corpus of {self.benchmark_version}/{task_type}/{domain}/{language}/{dataset_name}",
        )
        return {str(r["id"]): {"text": r["text"]} for r in _read_jsonl(path, ("id", "text"))}

    def load_queries(
        self, task_type: str, domain: str, language: str, dataset_name: str, split: str = "test"
    ) -> dict[str, str]:
        path = self._first(
            self.queries_paths(task_type, domain, language, dataset_name, split),
            f"{split} queries of {self.benchmark_version}/{task_type}/{domain}/{language}/{dataset_name}",
        )
        return {str(r["id"]): r["text"] for r in _read_jsonl(path, ("id", "text"))}

    def load_qrels(
        self, task_type: str, domain: str, language: str, dataset_name: str, split: str = "dev"
    ) -> dict[str, dict[str, int]]:
        path = self._first(
            self.qrels_paths(task_type, domain, language, dataset_name, split),
            f"{split} qrels of {self.benchmark_version}/{task_type}/{domain}/{language}/{dataset_name}",
        )
        qrels: dict[str, dict[str, int]] = {}
        for r in _read_jsonl(path, ("qid", "docid", "relevance")):
            qrels.setdefault(str(r["qid"]), {})[str(r["docid"])] = int(r["relevance"])
        return qrels

    def missing_files(self, task: AirTask, splits: Sequence[str], scored: Sequence[str]) -> list[str]:
        """One message per file a run of `task` would need and cannot find (never raises)."""
        args = (task.task_type, task.domain, task.language, task.dataset)
        repo = f"{task.task_type}_{task.domain}_{task.language}"
        folders = [*self._repo_dirs(repo), self._flat_dir(task.task_type, task.domain, task.language)]
        if not any(f.is_dir() for f in folders):  # nothing of this dataset: one line, not one per file
            return [
                f"task {task.name}: none of {', '.join(str(f) for f in folders)} exists under "
                f"benchmark.airbench.data_dir; copy the hub dataset {HUB_ORG}/{repo} there as "
                f"{HUB_ORG}__{repo} (docs/airbench.md, section 'Offline')"
            ]
        wanted = [(self.corpus_paths(*args), "corpus")]
        wanted += [(self.queries_paths(*args, s), f"{s} queries") for s in splits]
        wanted += [(self.qrels_paths(*args, s), f"{s} qrels") for s in splits if s in scored]
        problems = []
        for paths, what in wanted:
            try:
                self._first(paths, f"task {task.name}: {what}")
            except AirBenchError as err:
                problems.append(str(err))
        return problems


def make_loader(version: str, data_dir: str | None, cache_dir: str | None = None) -> DataLoader:
    """A local loader when `data_dir` is set, else air-benchmark's hub loader."""
    if data_dir:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise AirBenchError(
                f"benchmark.airbench.data_dir={data_dir} is not a folder; create it with the hub "
                "datasets (docs/airbench.md, section 'Offline') or unset it to read from the hub"
            )
        return LocalDataLoader(root, version)
    return HubDataLoader(version, cache_dir=cache_dir)
