"""backend=mteb: any model that mteb registers, evaluated through mteb's own implementation of it.

`mteb.get_model(name, revision)` builds the model's wrapper exactly as a plain `mteb.evaluate` run
does (its `ModelMeta.loader` and `loader_kwargs`: prompts, instruction template, pooling, dtype), and
`MtebModelEncoder` hands every `encode` to it unchanged, so a zero-shot cell scores what mteb scores.
What it adds is ours: the ModelMeta the results are filed under (the cell's experiment folder), the
NaN/inf guard, the manifest's record of the instruction, and few-shot examples where there is room.

Few-shot. mteb's wrappers take no examples. Those that put an instruction string in front of each
query (`InstructSentenceTransformerModel` and its subclasses: e5-mistral, GritLM, gte-Qwen2,
Qwen3-Embedding, NV-Embed; and wrappers such as llama-embed-nemotron's that format mteb's instruction
themselves) get the examples inside that string, rendered by the run's template with the task
instruction the wrapper formats, in front of the wrapper's own formatted instruction:

    {example 1}\\n\\n{example 2}\\n\\n{the wrapper's instruction, e.g. "Instruct: {task}\\nQuery: "}{query}

The examples go wherever the wrapper puts that instruction except the document side (queries of
retrieval tasks; for symmetric tasks, whatever texts the wrapper instructs). Other wrappers (plain
sentence-transformers models with a fixed prompt, API models) have no such string: only 0-shot is
possible there, and validation says so before anything loads. One instruction per `encode` call
means one example set per task, so the per-query `knn` strategy is refused too.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.types import PromptType

from evalharness.config import ModelConfig
from evalharness.encoders.loading import build_model_meta, load_backend
from evalharness.examples import Example, ExampleError, ExampleSet
from evalharness.prompts import PromptTemplate, get_template

logger = logging.getLogger(__name__)

# what mteb's loader decides for the model (dtype, lengths, pooling, normalisation, remote code):
# a value other than the default here would be silently ignored, so validation refuses it
IGNORED_FIELDS = (
    "dtype", "devices", "max_tokens_per_batch", "query_max_length", "passage_max_length", "normalize",
    "normalize_classification", "symmetric", "special_tokens", "prefix_cache", "trust_remote_code",
)  # fmt: skip


def registered_meta(name: str) -> Any:
    """mteb's registry entry for `name`, or None (no hub lookup: validation must not need the hub)."""
    from mteb.models.model_implementations import MODEL_REGISTRY

    return MODEL_REGISTRY.get(name)


def takes_instruction(meta: Any) -> bool:
    """Whether the model's mteb wrapper puts an instruction string in front of each query, which is
    where examples can go: `InstructSentenceTransformerModel` (built by the loader class or inside a
    loader function, as Qwen3-Embedding's is), or a wrapper whose `encode` formats mteb's instruction
    itself. The encoder checks at run time that the wrapper really did (`ExampleError` otherwise)."""
    from mteb.models.instruct_wrapper import InstructSentenceTransformerModel

    loader = meta.loader
    try:
        if not inspect.isclass(loader):
            return callable(loader) and "InstructSentenceTransformerModel(" in inspect.getsource(loader)
        if not issubclass(loader, AbsEncoder):
            return False
        if issubclass(loader, InstructSentenceTransformerModel):
            return True
        source = inspect.getsource(loader.encode)
    except (OSError, TypeError):  # no source to read: say no rather than guess
        return False
    return "format_instruction(" in source or "get_task_instruction(" in source


def config_problems(config: ModelConfig, *, few_shot: bool, strategy: str) -> list[str]:
    """Everything about a backend=mteb model config that would fail later or mislead, found without
    loading anything: the name, the revision, the model's kind, mteb's extras, settings mteb's loader
    owns, and whether shots>0 can reach the model."""
    from mteb.models.model_implementations import MODEL_REGISTRY

    name = config.name
    meta = registered_meta(name)
    if meta is None:
        close = difflib.get_close_matches(name, list(MODEL_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        return [
            f"model.name={name!r} is not a model that mteb registers, and backend=mteb runs mteb's own "
            f"implementation of one.{hint} (`mteb.get_model_metas()` lists them.) Any other model runs "
            "with backend=decoder or backend=sentence-transformers and model.source=..."
        ]
    problems = []
    if config.source != name:
        problems.append(
            f"model.source={config.source!r}: backend=mteb loads model.name through mteb "
            f"(mteb.get_model({name!r})); leave model.source unset (it follows model.name)"
        )
    if config.revision and config.revision != meta.revision:
        problems.append(
            f"model.revision={config.revision!r}: mteb pins {name} at revision {meta.revision} and loads "
            "only that one; leave model.revision unset"
        )
    if meta.loader is None:
        problems.append(f"model {name}: mteb registers it without an implementation to load (results only)")
    if "dense" not in meta.model_type or "text" not in meta.modalities:
        problems.append(
            f"model {name} is a {'/'.join(meta.model_type)} model over {'/'.join(meta.modalities)}; "
            "backend=mteb evaluates dense text encoders"
        )
    defaults = ModelConfig()
    changed = [f for f in IGNORED_FIELDS if getattr(config, f) != getattr(defaults, f)]
    if changed:
        problems.append(
            f"model.{', model.'.join(changed)}: backend=mteb leaves these to mteb's loader for {name} "
            "(its ModelMeta.loader_kwargs), so they would have no effect; remove them"
        )
    problems += _missing_extras(meta)
    if few_shot and not takes_instruction(meta):
        wrapper = getattr(meta.loader, "__name__", str(meta.loader))
        problems.append(
            f"model {name}: mteb's wrapper for it ({wrapper}) takes no instruction string, so few-shot "
            "examples have nowhere to go; only 0-shot is possible with backend=mteb (shots=[0])"
        )
    if few_shot and strategy == "knn":
        problems.append(
            "examples=knn picks examples per query, but an mteb wrapper takes one instruction per task; "
            "with backend=mteb use examples=train or examples=file"
        )
    return problems


def _missing_extras(meta: Any) -> list[str]:
    """mteb's own requirement check (its extras groups), made before anything loads; a private API,
    so a change in it skips the check rather than failing the run."""
    try:
        groups = meta._resolve_extras_groups()
        missing = meta._missing_dependencies(groups) if groups else []
    except Exception:  # noqa: BLE001
        return []
    if not missing:
        return []
    return [
        f"model {meta.name} needs mteb's extras {', '.join(groups)} ({'; '.join(missing)}); install them "
        f"with `pip install 'mteb[{','.join(groups)}]'` (in an environment of their own if they pin "
        "other library versions)"
    ]


class _ExamplesInInstruction:
    """While installed on a wrapper, every instruction it formats for the query side gets the
    examples in front, and the (raw, formatted) instruction is recorded for the manifest.

    Both entry points are covered: `get_task_instruction` (InstructSentenceTransformerModel, with or
    without a template) and `format_instruction` called directly (llama-embed-nemotron). A call of
    the second inside the first only reports the raw instruction, so examples are added once."""

    HOOKED = ("get_task_instruction", "format_instruction")

    def __init__(self, template: PromptTemplate, shots: Sequence[Example]) -> None:
        self.template = template
        self.shots = tuple(shots)
        self.seen: list[tuple[str, str]] = []  # (raw, formatted) instructions on the query side
        self._depth = 0
        self._raw: str | None = None

    def _attach(self, formatted: str, raw: str, prompt_type: PromptType | None) -> str:
        if prompt_type == PromptType.document or not formatted:
            return formatted  # no instruction on this text: nothing to put examples into
        self.seen.append((raw, formatted))
        return self.template.render_prefix(self.shots, raw) + formatted if self.shots else formatted

    @contextlib.contextmanager
    def installed(self, model: Any) -> Iterator[_ExamplesInInstruction]:
        own = {k: vars(model)[k] for k in self.HOOKED if k in vars(model)}
        get_task, fmt = model.get_task_instruction, model.format_instruction

        def get_task_instruction(task_metadata: Any, prompt_type: PromptType | None = None) -> str:
            self._depth += 1
            try:
                out = get_task(task_metadata, prompt_type)
            finally:
                self._depth -= 1
            raw, self._raw = (self._raw if self._raw is not None else out), None
            return self._attach(out, raw, prompt_type)

        def format_instruction(instruction: str, prompt_type: PromptType | None = None) -> str:
            out = fmt(instruction, prompt_type)
            if self._depth:
                self._raw = instruction
                return out
            return self._attach(out, instruction, prompt_type)

        model.get_task_instruction, model.format_instruction = get_task_instruction, format_instruction
        try:
            yield self
        finally:
            for k in self.HOOKED:
                vars(model).pop(k, None)
            vars(model).update(own)


def _check_vectors(vecs: Any, texts: Sequence[str], where: str, model: str) -> None:
    """Stop the task, as ICLEncoder does, on vectors no score should come from (the check only reads
    them: the wrapper's own array or tensor goes on to mteb unchanged)."""
    if hasattr(vecs, "detach"):  # a torch tensor, maybe bfloat16 (numpy has no such type)
        vecs = vecs.detach().float().cpu().numpy()
    arr = np.asarray(vecs, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise FloatingPointError(f"{where}: {model} produced NaN/inf embeddings; no score is written.")
    if len(set(texts)) > 1 and arr.size and float(np.ptp(arr, axis=0).max()) == 0.0:
        raise FloatingPointError(
            f"{where}: every text got the same embedding from {model}, so scores would be meaningless; no "
            "score is written. With examples, the instruction in front may fill the model's window so that "
            "the texts themselves are cut off: use fewer or shorter examples, or shots=[0]."
        )


class MtebModelEncoder(AbsEncoder):
    """An mteb-registered model as our encoder: ICLEncoder's interface over mteb's own wrapper."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        examples: ExampleSet | None = None,
        instructions: Mapping[str, str] | None = None,
        template: str | Mapping[str, Any] | PromptTemplate | None = None,
        experiment_kwargs: Mapping[str, Any] | None = None,
        backend: Any = None,
        cache: Any = None,
    ) -> None:
        from evalharness.examples import FixedExamples

        self.config = config
        self.template = get_template(template or config.template)
        self.examples = examples if examples is not None else FixedExamples({}, strategy="none")
        self.instructions = dict(instructions or {})  # unused: the wrapper picks its instruction
        self.mteb_model_meta = build_model_meta(config, experiment_kwargs, loader=type(self))
        self._backend = backend  # the wrapper mteb.get_model built, shared by the run's cells
        self.cache = cache  # unused: vectors come from mteb's wrapper, uncached, as a plain run's
        self.encode_calls: list[dict[str, Any]] = []
        self.empty_texts: dict[str, int] = {}
        self.carried: dict[str, dict[str, tuple[Example, ...]]] = {}  # task -> query -> examples
        self.instructions_seen: dict[str, tuple[str, str]] = {}  # task -> (raw, formatted)

    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = load_backend(self.config)
        return self._backend

    @property
    def model(self) -> Any:  # AbsEncoder convention
        return self.backend

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: PromptType | None = None,
        **kwargs: Any,
    ) -> Any:
        name = task_metadata.name
        texts = [t for batch in inputs for t in batch["text"]]
        empty = sum(1 for t in texts if not t or not t.strip())
        if empty:
            self.empty_texts[name] = self.empty_texts.get(name, 0) + empty
        shots: tuple[Example, ...] = ()
        if prompt_type != PromptType.document and texts:
            per_text = self.examples.for_texts(name, texts)
            shots = per_text[0]
            if any(s != shots for s in per_text):
                raise ExampleError(f"{name}: backend=mteb takes one example set per task, not one per query")
            if prompt_type == PromptType.query:
                self.carried.setdefault(name, {}).update(zip(texts, per_text, strict=True))
        hook = _ExamplesInInstruction(self.template, shots)
        with hook.installed(self.backend):
            vecs = self.backend.encode(
                inputs,
                task_metadata=task_metadata,
                hf_split=hf_split,
                hf_subset=hf_subset,
                prompt_type=prompt_type,
                **kwargs,
            )
        if hook.seen:
            self.instructions_seen.setdefault(name, hook.seen[0])
        if shots and not hook.seen:
            raise ExampleError(
                f"{name} ({hf_split}): mteb's wrapper for {self.config.name} put no instruction in front "
                f"of these texts, so the {len(shots)} example(s) had nowhere to go; no score is written. "
                "Run this model with shots=[0]."
            )
        _check_vectors(vecs, texts, f"{name} ({hf_split})", self.config.name)
        self.encode_calls.append(
            {
                "task": name,
                "split": hf_split,
                "subset": hf_subset,
                "prompt_type": prompt_type.value if prompt_type else None,
                "n": len(texts),
                "shots": len(shots),
            }
        )
        return vecs

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        return self.backend.similarity(embeddings1, embeddings2)  # the wrapper's own, as in a plain run

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        return self.backend.similarity_pairwise(embeddings1, embeddings2)

    def instruction_record(self, task_metadata: Any, with_examples: bool) -> dict[str, Any]:
        """The manifest's record: the instruction mteb's wrapper put in front of the query side (raw
        and as formatted), and that the examples, if any, went into it."""
        wrapper = type(self._backend).__name__ if self._backend is not None else None
        record: dict[str, Any] = {"mteb_wrapper": wrapper, "examples_in_instruction": with_examples}
        seen = self.instructions_seen.get(task_metadata.name)
        if seen is None:
            return {"instruction": None, "instruction_source": None, "instruction_used_in": [], **record}
        uses = [
            "query",
            *(["examples"] if "examples" in self.template.instruction_uses(with_examples) else []),
        ]
        return {
            "instruction": seen[0],
            "instruction_source": "mteb-model-wrapper",
            "instruction_used_in": uses,
            "instruction_formatted": seen[1],
            **record,
        }
