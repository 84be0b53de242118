"""A trained output folder that others can load: sentence-transformers modules, a tokenizer that ends
every text with EOS by itself, and a model card.

`evalharness run` appends EOS itself whatever the tokenizer does; sentence-transformers and
FlagEmbedding's `FlagICLModel` rely on the tokenizer (bge-en-icl's own tokenizer has
`add_eos_token: true`), so the saved tokenizer is made to add EOS: then the same query string gives
the same token ids, and the same vector, in all three. The module files are the classic
sentence-transformers layout (Transformer + last-token Pooling + Normalize, as Qwen3-Embedding and
gte-Qwen2 ship), which sentence-transformers 3 to 6 load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from evalharness.prompts import PromptTemplate, special_layout

logger = logging.getLogger(__name__)

MODEL_CARD = "README.md"
EVALUATION_START, EVALUATION_END = "<!-- evalharness:evaluation -->", "<!-- /evalharness:evaluation -->"


def trained_model_name(cfg: Any) -> str:
    """The name a trained folder is evaluated under: the base model's, `-icl-`, the folder's."""
    return f"{cfg.model.name}-icl-{Path(cfg.output_dir).name}"


def eos_appending(tokenizer: Any) -> Any:
    """The tokenizer, made to end every text with EOS (keeping whatever it puts in front). Llama-style
    tokenizers have a switch for it (`add_eos_token`, what bge-en-icl sets); for the others the
    post-processor of the fast tokenizer is replaced."""
    layout = special_layout(tokenizer)
    if layout.trail[-1:] == [layout.eos_id]:
        return tokenizer
    if hasattr(tokenizer, "add_eos_token"):
        tokenizer.add_eos_token = True
        if special_layout(tokenizer).trail[-1:] == [layout.eos_id]:
            return tokenizer
    from tokenizers.processors import TemplateProcessing

    lead = tokenizer.convert_ids_to_tokens(layout.lead)
    eos = tokenizer.convert_ids_to_tokens(layout.eos_id)
    specials = dict(zip([*lead, eos], [*layout.lead, layout.eos_id], strict=True))
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=" ".join([*lead, "$A", eos]),
        pair=" ".join([*lead, "$A", eos, "$B", eos]),
        special_tokens=list(specials.items()),
    )
    if special_layout(tokenizer).trail[-1:] != [layout.eos_id]:
        logger.warning("could not make the tokenizer append EOS; sentence-transformers users must add it")
    return tokenizer


def write_sentence_transformers_modules(
    out: Path, hidden_size: int, max_seq_length: int, prompts: dict[str, str]
) -> None:
    """modules.json, sentence_bert_config.json, 1_Pooling/config.json, 2_Normalize/ and
    config_sentence_transformers.json (cosine similarity; `prompts`: one per training instruction)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": False,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": True,
        "include_prompt": True,
    }
    files = {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": max_seq_length, "do_lower_case": False},
        "1_Pooling/config.json": pooling,
        "config_sentence_transformers.json": {
            "prompts": prompts,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }
    for name, content in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    (out / "2_Normalize").mkdir(exist_ok=True)


def instructions_of(datasets: list[Any]) -> dict[str, list[str]]:
    """Each dataset's instructions, in order of first use."""
    return {ds.name: list(dict.fromkeys(r.prompt for r in ds.rows)) for ds in datasets}


def prompts_of(template: PromptTemplate, instructions: dict[str, list[str]]) -> dict[str, str]:
    """sentence-transformers prompts: for a dataset with one instruction, the text in front of a
    zero-shot query (bge-icl: `<instruct>{instruction}\\n<query>`)."""
    out = {}
    for name, texts in instructions.items():
        if len(texts) == 1:
            head = template.wrap_query("\x00", texts[0]).split("\x00")[0]
            out[name] = head
    return out


def model_card(
    cfg: Any, manifest: dict[str, Any], template: PromptTemplate, instructions: dict[str, list[str]]
) -> str:
    """README.md of the output folder: what it is, how it was made, and how to load it."""
    name = trained_model_name(cfg)
    stats = manifest["stats"]
    example_instruction = next((t[0] for t in instructions.values() if t), "Given a query, retrieve passages")
    query = template.render_query(
        "how do neural networks learn?",
        example_instruction,
    )
    recipe = [
        ("base model", cfg.model.name),
        ("preset", f"`train={manifest['preset']}` (evalharness/conf/train/{manifest['preset']}.yaml)"
                   if manifest.get("preset") else "–"),
        ("LoRA", f"r={cfg.lora.r}, alpha={cfg.lora.alpha}, dropout={cfg.lora.dropout}, modules "
                 f"{', '.join(cfg.lora.target_modules)}, layers {cfg.lora.layers or 'all'}"),
        ("steps / epochs", f"{stats.get('steps')} / {cfg.epochs}"),
        ("learning rate / warm-up", f"{cfg.learning_rate} / {cfg.warmup_steps} steps"),
        ("batch (per device)", f"{cfg.batch_size}; STS/classification/clustering "
                               f"{cfg.symmetric_batch_size or cfg.batch_size // 2}"),
        ("temperature", cfg.temperature),
        ("passages per query", f"{cfg.group_size} (classification: one per label, up to it)"
                               if cfg.class_group == "labels" else cfg.group_size),
        ("examples per query", f"k ~ U{{0..{cfg.max_examples}}} from the batch (first {cfg.zero_shot_steps} "
                               "steps without)" if cfg.zero_shot_steps else f"k ~ U{{0..{cfg.max_examples}}} from the batch"),
        ("example caps", f"query {cfg.example_query_max_tokens} ({cfg.example_cut}), response "
                         f"{cfg.example_passage_max_tokens} tokens; prefix <= {cfg.prefix_max_tokens} tokens"),
        ("max length", f"query {cfg.model.query_max_length} ({cfg.query_truncation} truncation), passage "
                       f"{cfg.model.passage_max_length}"),
        ("distillation", cfg.knowledge_distillation),
        ("train loss", f"{stats.get('train_loss', float('nan')):.4f}"),
        ("queries with examples", stats.get("queries_with_examples")),
    ]  # fmt: skip
    lines = [
        "---",
        f"base_model: {cfg.model.name}",
        "library_name: sentence-transformers",
        "pipeline_tag: feature-extraction",
        "tags: [sentence-transformers, feature-extraction, in-context-learning, bge-en-icl, evalharness]",
        "---",
        "",
        f"# {name}",
        "",
        f"An in-context-learning (few-shot) text embedder: {cfg.model.name} fine-tuned with bge-en-icl's "
        "few-shot contrastive recipe (arXiv 2409.15700) by `evalharness train` "
        f"(revision `{manifest['revision']}`; the full resolved config is in `evalharness_train.json`).",
        "",
        "## Input format",
        "",
        "A query is its task instruction and text, optionally preceded by examples, and followed by a "
        "suffix; the last token (EOS, which the tokenizer appends) is the embedding, L2-normalised. "
        "Passages are raw text.",
        "",
        f"- query: `{_code(template.query_format)}` + suffix `{_code(template.suffix)}`",
        f"- each example: `{_code(template.example_format)}`, examples joined by "
        f"`{_code(template.example_separator)}` and followed by `{_code(template.prefix_end)}`",
        "",
        "A query with one example, as the model sees it:",
        "",
        "```text",
        template.render_query(
            "how do neural networks learn?",
            example_instruction,
            [_example("what is gradient descent?", "An optimisation method that ...")],
        ),
        "```",
        "",
        "## Use",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        "model = SentenceTransformer(PATH)",
        f"queries = model.encode([{query!r}])",
        'passages = model.encode(["Neural networks learn by adjusting weights to reduce a loss ..."])',
        "print(model.similarity(queries, passages))",
        "```",
        "",
        "FlagEmbedding: `FlagICLModel(PATH, query_instruction_for_retrieval=..., "
        f"query_instruction_format={_code(template.query_format.replace('{instruction}', '{}').replace('{query}', '{}'))!r}, "
        f"suffix={_code(template.suffix)!r}, examples_for_task=[...])`.",
        "",
        "evalharness (MTEB / AIR-Bench, zero- vs few-shot):",
        "",
        "```bash",
        f"evalharness run model.source=PATH model.name={name} model.revision={manifest['revision']} "
        f"model.template={template.name}",
        "```",
        "",
        "## Recipe",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in recipe),
        "",
        "## Training data",
        "",
        "| dataset | rows | sha256 (first 16) | instructions |",
        "|---|---:|---|---|",
        *(
            f"| {ds} | {stats.get('rows', {}).get(ds, '')} | `{digest}` | "
            f"{'; '.join(instructions.get(ds, [])[:3])}{' ...' if len(instructions.get(ds, [])) > 3 else ''} |"
            for ds, digest in manifest["data"].items()
        ),
        "",
        "## Evaluation",
        "",
        EVALUATION_START,
        "Not evaluated yet: the `evalharness run` line above scores it, and writes its scores here.",
        EVALUATION_END,
        "",
    ]
    return "\n".join(lines)


def _code(text: str) -> str:
    return text.replace("\n", "\\n")


def _example(query: str, response: str) -> Any:
    from evalharness.examples import Example

    return Example(query, response)


def publish(out: Path, cfg: Any, manifest: dict[str, Any], hidden_size: int) -> None:
    """The sentence-transformers files and the model card of a trained folder (its tokenizer saved by
    `eos_appending` first)."""
    from evalharness.prompts import get_template

    template = get_template(cfg.template or cfg.model.template)
    instructions = manifest.get("instructions", {})
    prompts = prompts_of(template, instructions)
    write_sentence_transformers_modules(out, hidden_size, cfg.model.query_max_length, prompts)
    (out / MODEL_CARD).write_text(model_card(cfg, manifest, template, instructions), encoding="utf-8")


def config_from_manifest(manifest: dict[str, Any]) -> Any:
    """The TrainConfig a folder was trained with, also from manifests written before the batch switches
    (their one `example_max_tokens` cut the raw texts)."""
    from omegaconf import OmegaConf

    from evalharness.train.config import TrainConfig

    config = dict(manifest["config"])
    if "example_max_tokens" in config:
        cap = config.pop("example_max_tokens")
        config |= {"example_query_max_tokens": cap, "example_passage_max_tokens": cap, "example_cut": "raw"}
    config = {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), config))


def record_evaluation(source: str, table: str, results_dir: str) -> Path | None:
    """Write an `evalharness run`'s scores into the card of the trained folder it evaluated (the
    section between the card's evaluation markers; the latest run's). Nothing for other models."""
    from datetime import date

    from evalharness.encoders.loading import resolve_source
    from evalharness.train.config import MANIFEST

    try:
        folder = Path(resolve_source(source))
    except (ValueError, OSError):
        return None
    card = folder / MODEL_CARD
    if not ((folder / MANIFEST).is_file() and card.is_file()):
        return None
    text = card.read_text(encoding="utf-8")
    if EVALUATION_START not in text or EVALUATION_END not in text:
        return None
    head, rest = text.split(EVALUATION_START, 1)
    _, tail = rest.split(EVALUATION_END, 1)
    body = (
        f"`evalharness run` on {date.today().isoformat()} (results: `{results_dir}`); main scores × 100, "
        "one column per setting (shots, examples, template):\n\n" + table
    )
    try:
        card.write_text(f"{head}{EVALUATION_START}\n{body}\n{EVALUATION_END}{tail}", encoding="utf-8")
    except OSError as err:
        logger.warning("could not write the scores into %s: %s", card, err)
        return None
    return card
