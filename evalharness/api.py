"""The Python API: what `evalharness run`, `report` and `train` do, as functions, and the few-shot
encoder for use inside `mteb.evaluate`. The CLI, the demo and the tests compose their configs here
(`run_config`, `compose`), so a config built in Python is the one the command line would build.

    import evalharness

    results = evalharness.evaluate("minilm", tasks=["OfflineLeeSTS"], shots=[0, 1], results_dir="out")
    rep = evalharness.report("out")          # tables as DataFrames: rep.tasks, rep.summary, rep.borda ...
    rep.write("out")                         # report.md, report.html, scores.csv, significance.csv, plots/
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from evalharness.config import CONF_DIR, ModelConfig, RunConfig, available_models, load_model_config


def compose(config_name: str = "config", overrides: Sequence[str] = ()) -> Any:
    """The typed config (`RunConfig`, or `TrainConfig` for "train_config") that `evalharness run|train
    <overrides>` composes from `conf/`: Hydra's defaults, groups and overrides, then the dataclasses'
    checks. Raises ValueError naming the choices for a closed choice out of range."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from evalharness.config import register_configs
    from evalharness.train.config import register_train_configs

    register_configs()
    register_train_configs()
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or an initialize block
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    else:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides))
    return OmegaConf.to_object(cfg)


def run_config(
    model: str | ModelConfig = "smollm2-135m", overrides: Sequence[str] = (), /, **fields: Any
) -> RunConfig:
    """A `RunConfig`: conf/config.yaml with `model` (a name from `evalharness models`, a YAML path or
    a `ModelConfig`), Hydra `overrides` ("examples=knn", "model.batch_size=8"), then `fields` merged
    into the typed config as Hydra would merge them (a wrong key or type fails here; `model={...}`
    edits the model config)."""
    named = isinstance(model, str) and model in available_models()
    cfg = compose("config", [*([f"model={model}"] if named else []), *overrides])
    base = OmegaConf.structured(cfg)
    if not named:
        base.model = OmegaConf.structured(
            model if isinstance(model, ModelConfig) else load_model_config(model)
        )
    return OmegaConf.to_object(OmegaConf.merge(base, fields))  # type: ignore[return-value]


def evaluate(
    model: str | ModelConfig,
    tasks: Sequence[str] | None = None,
    *,
    benchmark: str | None = None,
    shots: Sequence[int] = (0,),
    examples: str = "train",
    seeds: Sequence[int] = (0,),
    results_dir: str | Path = "results",
    overrides: Sequence[str] = (),
    **fields: Any,
) -> Any:
    """Evaluate `model` zero- and few-shot and return the results folder as `evalharness.results.Results`
    (`.main()`: the main scores, tidy; `.items`: per-query / pair / test-item values).

    Args:
        model: a bundled config name (`evalharness models`), a YAML path or a `ModelConfig`.
        tasks: mteb task names (`benchmark=custom`); None: the `benchmark`'s tasks.
        benchmark: a config from `conf/benchmark/` (offline-mini, mteb-eng-v1, air-bench-qa, ...); None:
            offline-mini, or `custom` when `tasks` are given.
        shots: examples per query, one cell per value (-1: every example of a file).
        examples: none | train | file | knn (`conf/examples/`); zero-shot cells ignore it.
        seeds: one cell per seed where examples are drawn (train, knn).
        results_dir: where mteb's result files, manifests and per-item values go; finished cells are
            skipped on a second call, as `evalharness run` skips them.
        overrides: Hydra override strings for anything else ("model.batch_size=8", "examples.root=DIR").
        **fields: config fields merged last (`overwrite=True`, `embedding_cache=None`, ...).
    """
    from evalharness.results import load
    from evalharness.runner import run

    group = [f"benchmark={benchmark or ('custom' if tasks else 'offline-mini')}", f"examples={examples}"]
    chosen: dict[str, Any] = {"shots": list(shots), "seed": list(seeds), "results_dir": str(results_dir)}
    if tasks:
        chosen["benchmark"] = {"tasks": list(tasks)}
    cfg = run_config(model, [*group, *overrides], **_merge(chosen, fields))
    run(cfg)
    return load(cfg.results_dir)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.merge(a, b))  # type: ignore[return-value]


def report(
    results_dir: str | Path,
    *,
    baseline: int = 0,
    reference: str | Sequence[str] | None = None,
    benchmark: str | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    examples_effect: int = 5,
) -> Any:
    """The report of a results folder (ours or any mteb ResultCache) as `evalharness.render.Report`:
    tables as DataFrames (`tasks`, `summary`, `delta_tasks`, `borda`, `significance.tasks`, ...) and
    `write(out_dir)` for report.md / report.html / scores.csv / significance.csv / plots, as
    `evalharness report` writes them. Arguments as the command's options (see `build_report`)."""
    from evalharness.reporting import build_report

    return build_report(
        results_dir, baseline, reference, benchmark, confidence=confidence, resamples=resamples,
        examples_effect=examples_effect,
    )  # fmt: skip


def train(overrides: Sequence[str] = (), **fields: Any) -> Path:
    """Train as `evalharness train <overrides>` does (conf/train_config.yaml; e.g. ["train=paper",
    "data.files=[/data/bge-full-data]"]); `fields` are merged last. Returns the output folder, which
    `evaluate(ModelConfig(...))` or `evalharness run model.source=<dir>` evaluates."""
    from evalharness.train.run import train as run_training

    cfg = OmegaConf.to_object(
        OmegaConf.merge(OmegaConf.structured(compose("train_config", overrides)), fields)
    )
    return run_training(cfg)


def load_model(
    model: str | ModelConfig,
    *,
    shots: int = 0,
    examples: str = "none",
    tasks: Sequence[Any] | None = None,
    seed: int = 0,
    examples_root: str | Path | None = None,
    **model_fields: Any,
) -> Any:
    """The few-shot encoder (`ICLEncoder`, an mteb encoder) for `mteb.evaluate(model, tasks)`: `shots`
    examples per query drawn by `examples` (train / knn: from `tasks`' train splits, `seed`; file:
    `examples_root`); `model_fields` override the model config (`batch_size=8`). The weights load on
    the first encode."""
    from evalharness.encoders import ICLEncoder
    from evalharness.examples import build_example_set

    config = model if isinstance(model, ModelConfig) else load_model_config(model, **model_fields)
    strategy = examples if shots else "none"
    chosen = build_example_set(strategy, shots=shots, seed=seed, root=examples_root, tasks=tasks)
    return ICLEncoder(config, examples=chosen)
