"""Typed configs. The same dataclasses back the Hydra config groups in conf/ (registered with
Hydra's ConfigStore by the runner), so a typo in a key or a wrong type fails at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from evalharness.errors import ChoiceError

CONF_DIR = Path(__file__).resolve().parent / "conf"

# mteb: mteb's own implementation of a model it registers (evalharness/encoders/mteb_model.py)
BACKENDS = ("decoder", "sentence-transformers", "mteb")
SYMMETRIC_POLICIES = ("prompt-all", "raw")
# auto: bfloat16 on a GPU that has it, else float32 (evalharness/encoders/backends.py resolves these)
DTYPES = ("auto", "float32", "float16", "bfloat16")


@dataclass
class ModelConfig:
    """One embedding model and how to drive it.

    `source` is a hub id, a local directory, or `offline:<name>` for the models that PyPI packages
    ship (converted once into the cache directory). `name`/`revision` are what results are filed
    under, mteb-style; for hub models that mteb knows, its pinned revision is used when unset."""

    name: str = "???"
    source: str = "???"
    revision: str | None = None
    backend: str = "decoder"
    template: str = "bge-icl"
    dtype: str = "auto"
    device: str = "auto"
    # data parallel: e.g. [cuda:0, cuda:1, ...]; each encode call is split across them (decoder backend)
    devices: list[str] = field(default_factory=list)
    batch_size: int = 16  # at most this many texts per forward pass ...
    max_tokens_per_batch: int = 16384  # ... and at most this many (padded) token positions
    query_max_length: int = 512
    passage_max_length: int = 512
    normalize: bool = True
    # FlagEmbedding's MTEB runner turns normalisation off for classification; we follow it.
    normalize_classification: bool = False
    # "prompt-all": every text of a symmetric task (classification, clustering, STS, pair
    # classification, summarisation) gets prefix + instruction, as the reference runner does.
    symmetric: str = "prompt-all"
    special_tokens: list[str] = field(default_factory=list)
    # run the examples prefix once per task and reuse its key/values (decoder backend). null: on for
    # causal attention, off for a model that attends both ways (detected when it loads); false: the
    # reference's uncached computation, for parity checks; true on a bidirectional model is refused
    prefix_cache: bool | None = None
    trust_remote_code: bool = False
    meta: dict[str, Any] = field(default_factory=dict)  # ModelMeta fields (n_parameters, license, ...)

    def __post_init__(self) -> None:
        for key, value, choices in (("backend", self.backend, BACKENDS), ("dtype", self.dtype, DTYPES),
                                    ("symmetric", self.symmetric, SYMMETRIC_POLICIES)):  # fmt: skip
            if value not in choices:
                raise ChoiceError(f"model.{key}", value, choices)


def available_models() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))


def load_model_config(name_or_path: str, **overrides: Any) -> ModelConfig:
    """A model config by group name (conf/model/<name>.yaml) or YAML path, checked against the schema."""
    # a group name first: names such as "qwen3-embedding-0.6b" have a dot but are not file paths
    group_file = CONF_DIR / "model" / f"{name_or_path}.yaml"
    path = group_file if group_file.is_file() else Path(name_or_path)
    if not path.is_file():
        import difflib

        known = available_models()
        close = difflib.get_close_matches(name_or_path, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name_or_path!r}; known: {', '.join(known)}.{hint}")
    schema = OmegaConf.structured(ModelConfig)
    merged = OmegaConf.merge(schema, OmegaConf.load(path), overrides)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


@dataclass
class AirBenchConfig:
    """AIR-Bench datasets for `benchmark.name: air-bench` (evalharness/airbench). Empty lists mean
    "all that the version has"; every name is checked before any model loads."""

    version: str = "AIR-Bench_24.04"  # or AIR-Bench_24.05 (the only one with dev splits); "24.04" works too
    task_types: list[str] = field(default_factory=list)  # qa, long-doc
    domains: list[str] = field(default_factory=list)  # e.g. [wiki, web]
    languages: list[str] = field(default_factory=list)  # e.g. [en]
    datasets: list[str] = field(default_factory=list)  # e.g. [gpt3, llama2] (long-doc); qa's is "default"
    splits: list[str] = field(default_factory=list)  # dev and/or test; default: every split a dataset has
    score_splits: list[str] = field(
        default_factory=lambda: ["dev"]
    )  # scored locally (test qrels are private)
    data_dir: str | None = None  # local copies of the hub datasets (offline); null: the hub
    cache_dir: str | None = None  # datasets cache for hub loading
    search: str = "exact"  # exact | faiss
    search_top_k: int = 1000  # ranked documents kept per query (the benchmark's default)
    k_values: list[int] = field(default_factory=lambda: [1, 3, 5, 10, 50, 100, 1000])
    main_scores: dict[str, str] = field(
        default_factory=lambda: {"qa": "ndcg_at_10", "long-doc": "recall_at_10"}
    )  # the paper reports QA nDCG@10 (Table 2) and Long-Doc Recall@10 (Table 3)
    instruction: str | None = None  # null: the paper's single AIR-Bench instruction (Table 7)


@dataclass
class BenchmarkConfig:
    """Which tasks: an mteb benchmark by name (or "offline-mini"), optionally narrowed."""

    name: str = "offline-mini"
    tasks: list[str] = field(default_factory=list)  # explicit task names; replaces the benchmark's list
    task_types: list[str] = field(default_factory=list)  # e.g. [Retrieval]
    exclude: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # e.g. [eng]: subsets of multilingual tasks
    # per task, the subsets / splits to score, replacing the benchmark's (mteb's hf_subsets /
    # eval_splits): e.g. subsets={STS17: [en-en]} splits={EmotionClassification: [test]}
    subsets: dict[str, list[str]] = field(default_factory=dict)
    splits: dict[str, list[str]] = field(default_factory=dict)
    scale: str = "mini"  # offline-mini only: "mini" (demo-sized) or "full" (all the packaged data)
    airbench: AirBenchConfig = field(default_factory=AirBenchConfig)  # name "air-bench" only


@dataclass
class TasksConfig:
    """Where task data comes from when the hub is out of reach."""

    local_root: str | None = None  # holds <org>__<name> copies of hub datasets (mteb's loader reads them)
    mapping: dict[str, str] = field(default_factory=dict)  # task name -> snapshot directory


@dataclass
class ExamplesConfig:
    strategy: str = "train"  # none | file | train | knn
    root: str | None = None  # file: folder of <Task>.json/.jsonl/.csv
    set_id: str | None = None  # file: a label for the example set (e.g. v1, v2); part of the cell name
    split: str = "train"  # train/knn: the split examples come from (never an evaluated one)
    cap: bool = False  # train: shots larger than the pool take the whole pool instead of failing


@dataclass
class RunConfig:
    """One `evalharness run`: a model, a task list and a sweep over shots (x seeds)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    examples: ExamplesConfig = field(default_factory=ExamplesConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    # an int or a list of ints (Hydra multirun sweeps pass one int per job); -1 = all examples of a file
    shots: Any = field(default_factory=lambda: [0, 1, 3])
    seed: Any = 0  # an int or a list of ints (train/knn strategies)
    template: str | None = None  # default: the model's
    instructions: str | None = None  # YAML/JSON file of task -> instruction overrides
    results_dir: str = "results"
    overwrite: bool = False
    # on-disk embedding cache shared by runs and processes: "auto" = <cache dir>/embeddings,
    # a folder path, or null for an in-memory cache that lives for one run
    embedding_cache: str | None = "auto"
    corpus_chunk_size: int = 50_000  # retrieval: documents scored per chunk (bounded memory)


def register_configs() -> None:
    """Typed schemas for Hydra: conf/config.yaml builds on `base_config`, so unknown keys and wrong
    types in any group file or override fail at start with Hydra's own message."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="base_config", node=_open_maps(RunConfig))


def _open_maps(schema: type) -> Any:
    """A config schema with its free-form maps (task -> folder, task -> subsets, ...) open: Hydra
    locks the whole tree, which would turn the documented `tasks.mapping={SciFact: /data/scifact}`
    into "Key 'SciFact' is not in struct". Dataclass nodes stay locked, so typos there still fail."""
    from omegaconf import DictConfig

    node = OmegaConf.structured(schema)

    def unlock(cfg: DictConfig) -> None:
        for key in cfg:
            child = cfg._get_node(key)
            if isinstance(child, DictConfig):
                if OmegaConf.get_type(child) is dict:
                    OmegaConf.set_struct(child, False)
                else:
                    unlock(child)

    unlock(node)
    return node
