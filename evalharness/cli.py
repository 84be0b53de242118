"""The `evalharness` command. Sub-commands are thin: each parses its arguments and calls one function
of the package, so everything the CLI does is also a Python API."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _resolve_task(name: str):
    """An mteb task by name (offline tasks included); a typo gets the runner's close-match message."""
    import mteb

    from evalharness.tasks.resolve import TaskResolutionError, check_task_names

    problems = check_task_names([name])
    if problems:
        raise TaskResolutionError(problems[0])
    return mteb.get_task(name)


def cmd_prompt(args: argparse.Namespace) -> int:
    """Print exactly what the model will see for one query, and its token count."""
    from evalharness.config import load_model_config
    from evalharness.examples import ExampleError, FixedExamples, build_example_set, load_example_file
    from evalharness.instructions import applied_instruction, load_instructions, resolve_instruction
    from evalharness.prompts import PromptedText, PromptError, get_template, tokenize_prompted

    if not args.query.strip():  # what the user types is checked; benchmark data are encoded as they are
        raise PromptError("--query is empty or whitespace-only; give the text to render")
    config = load_model_config(args.model)
    template = get_template(args.template or config.template)
    task = _resolve_task(args.task)
    meta = task.metadata
    instruction, source = resolve_instruction(meta, load_instructions(args.instructions))
    if args.shots == 0:
        examples = FixedExamples({}, "none")
    elif args.examples and Path(args.examples).is_file():
        pool = load_example_file(args.examples)
        if args.shots > len(pool):
            raise ExampleError(f"--shots {args.shots} but {args.examples} has only {len(pool)} examples")
        examples = FixedExamples({meta.name: pool if args.shots < 0 else pool[: args.shots]}, "file")
    else:
        strategy = "file" if args.examples else args.strategy
        examples = build_example_set(
            strategy, shots=args.shots, seed=args.seed, root=args.examples, tasks={meta.name: task}
        )
    shots = examples.for_texts(meta.name, [args.query])[0]
    if args.passage:
        item = PromptedText("", args.query, "", is_query=False)
    else:
        prefix = template.render_prefix(shots, instruction)
        item = PromptedText(prefix, template.wrap_query(args.query, instruction), template.suffix, True)

    print(f"task: {meta.name} ({meta.type})  model: {config.name}  template: {template.name}")
    applied = applied_instruction(template, instruction, source, bool(shots))
    if applied["instruction"] is None:
        print(f"instruction: none (template {template.name} uses no task instruction)")
    else:
        where = " and ".join(applied["instruction_used_in"])
        print(f"instruction [{source}, in the {where}]: {instruction}")
    print(f"examples: {len(shots)}" + (f" ({', '.join(e.source for e in shots)})" if shots else ""))
    if args.no_tokenize:
        print("----- prompt text -----")
        print(item.text, end="")
        print("\n----- end -----")
        return 0

    from transformers import AutoTokenizer

    from evalharness.encoders.loading import resolve_source

    tokenizer = AutoTokenizer.from_pretrained(resolve_source(config.source))
    if config.backend == "sentence-transformers":
        ids = tokenizer(item.text)["input_ids"]
        limit = tokenizer.model_max_length
        note = (
            f" (window {limit}: the oldest {len(ids) - limit} tokens are dropped)" if len(ids) > limit else ""
        )
    else:
        out = tokenize_prompted(
            tokenizer,
            [item],
            query_max_length=config.query_max_length,
            passage_max_length=config.passage_max_length,
        )
        ids = out.input_ids[0]
        note = " (query truncated to the query budget)" if out.n_truncated else ""
    print("----- model input (decoded tokens, special tokens shown) -----")
    print(tokenizer.decode(ids), end="")
    print("\n----- end -----")
    prefix_tokens = len(tokenizer(item.prefix, add_special_tokens=False)["input_ids"]) if item.prefix else 0
    print(
        f"tokens: {len(ids)} (example prefix {prefix_tokens}); budgets: query {config.query_max_length}, "
        f"passage {config.passage_max_length}{note}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from evalharness.config import available_models, load_model_config

    configs = {name: load_model_config(name) for name in available_models()}
    width = max(len(c.name) for c in configs.values())
    for name, cfg in configs.items():
        print(f"{name:24s} {cfg.name:{width}s} {cfg.backend:22s} template={cfg.template} source={cfg.source}")
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    import mteb

    from evalharness.tasks.offline import OFFLINE_MINI_TASKS, register_offline_tasks

    register_offline_tasks()
    names = OFFLINE_MINI_TASKS if args.benchmark == "offline-mini" else None
    tasks = mteb.get_benchmark(args.benchmark).tasks if names is None else [mteb.get_task(n) for n in names]
    for t in tasks:
        print(f"{t.metadata.name:45s} {t.metadata.type:20s} {t.metadata.main_score}")
    return 0


def _summarise(records) -> str:
    import pandas as pd

    if not records:
        return "no results"
    df = pd.DataFrame(
        [
            {
                "task": r.task,
                "type": r.task_type,
                "cell": r.cell.label.split(" template=")[0],
                "score": r.main_score,
            }
            for r in records
        ]
    )
    table = df.pivot_table(index=["type", "task"], columns="cell", values="score", sort=False) * 100
    return table.round(2).reset_index().to_markdown(index=False)


#: Failures a user can fix: printed as one "error: ..." message (exit status 2), no traceback.
def _anticipated() -> tuple[type[BaseException], ...]:
    """Failures the CLI reports as `error:` lines (exit 2) instead of a traceback: ours share one base."""
    from evalharness.errors import EvalharnessError

    return EvalharnessError, FloatingPointError


def _full_errors() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


def _fail(err: BaseException, what: str) -> None:
    """A validation error lists its problems ("- ..." lines, all at once); others are one line."""
    from evalharness.errors import EvalharnessError

    if isinstance(err, EvalharnessError) and (err.listed or len(err.problems) > 1):
        lines = "\n".join(f"- {p.message}" for p in err.problems)
        print(f"error: the {what} configuration has problems:\n{lines}", file=sys.stderr)
    else:
        print(f"error: {err}", file=sys.stderr)
    raise SystemExit(2)


@dataclass(frozen=True)
class HydraApp:
    """One of our Hydra apps: its primary config, where its outputs go, how a config is validated
    into a plan and how a plan is executed (`run` and `train` differ only in these)."""

    command: str
    what: str  # "the <what> configuration has problems"
    config_name: str
    output_key: str  # the config key of the folder Hydra's own output folder lives under
    validate: Any  # cfg -> plan (raises an anticipated error)
    execute: Any  # (cfg, plan or None) -> text to print


def _prevalidate(app: HydraApp, overrides: Sequence[str]) -> Any:
    """Compose and validate the config before Hydra starts the job: Hydra creates its output folder
    (`results_dir/hydra/...`) and log file before our code runs, so a bad config would leave files in
    results_dir (or fail with NotADirectoryError when results_dir is a file). Returns the validated
    (config, plan), or None where Hydra must report the problem (its own override errors, sweeps:
    each multirun job validates its own config)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from evalharness.api import compose
    from evalharness.errors import EvalharnessError
    from evalharness.plan import ConfigError

    flags = [o for o in overrides if o.startswith("-")]
    plain = [o for o in overrides if not o.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(plain)
    except Exception:  # Hydra's own message, from the app below
        return None
    sweep = any(o.is_sweep_override() for o in parsed) or bool({"-m", "--multirun"} & set(flags))
    if set(flags) - {"-m", "--multirun"}:  # --cfg, --help, --info, ...: Hydra's business
        return None
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    try:
        typed = compose(app.config_name, [o for o in fixed if not o.startswith("hydra")])
    except Exception as err:  # a closed choice our dataclasses check (model.dtype=float17): exit 2 now
        if isinstance(err, EvalharnessError):
            _fail(ConfigError(err.problems), app.what)
        return None  # Hydra's and OmegaConf's own errors: Hydra reports them
    folder = Path(getattr(typed, app.output_key)).expanduser()
    if folder.exists() and not folder.is_dir():
        _fail(
            ConfigError(
                f"{app.output_key}={folder} is a file, not a folder; choose another {app.output_key}"
            ),
            app.what,
        )
    if sweep:
        return None
    try:
        return typed, app.validate(typed)
    except _anticipated() as err:
        if _full_errors():
            raise
        _fail(err, app.what)


def hydra_main(app: HydraApp, overrides: Sequence[str]) -> int:
    """`evalharness run|train key=value ...`: a Hydra app over conf/ (multirun with -m, launchers).

    The config is validated before Hydra starts, so a bad one writes nothing; the plan that validation
    returns is what the job executes (it is not validated twice)."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from evalharness.config import CONF_DIR, register_configs
    from evalharness.train.config import register_train_configs

    register_configs()
    register_train_configs()
    checked = _prevalidate(app, overrides)

    @hydra.main(config_path=str(CONF_DIR), config_name=app.config_name, version_base="1.3")
    def main_(cfg: DictConfig) -> None:
        typed = OmegaConf.to_object(cfg)
        plan = checked[1] if checked is not None and checked[0] == typed else None
        try:
            text = app.execute(typed, plan)
        except _anticipated() as err:
            if _full_errors():
                raise
            _fail(err, app.what)
        print(text)

    argv = sys.argv
    sys.argv = [f"evalharness {app.command}", *overrides]
    try:
        main_()
    finally:
        sys.argv = argv
    return 0


def _run_app() -> HydraApp:
    from evalharness.plan import validate
    from evalharness.runner import run

    def execute(cfg: Any, plan: Any) -> str:
        from evalharness.train.publish import record_evaluation

        table = _summarise(run(cfg, plan=plan))
        card = record_evaluation(cfg.model.source, table, cfg.results_dir) if table != "no results" else None
        return f"{table}\n\nscores written into the model card {card}" if card else table

    return HydraApp("run", "run", "config", "results_dir", validate, execute)


def _train_app() -> HydraApp:
    from evalharness.train.run import train, validate
    from evalharness.train.trainer import eval_command

    def execute(cfg: Any, plan: Any) -> str:
        out = train(cfg, plan)
        return f"trained model: {out}\nevaluate it with:\n  {eval_command(cfg, out)}"

    return HydraApp("train", "training", "train_config", "output_dir", validate, execute)


def cmd_report(args: argparse.Namespace) -> int:
    """Tables, deltas, Borda rank, published numbers and plots from any results folder."""
    from evalharness.reporting import write_report

    references = [r for r in args.reference or [] if r != "none"]
    path, text = write_report(
        args.results_dir,
        args.out,
        baseline=args.baseline,
        reference=references,
        benchmark=args.benchmark,
        confidence=args.ci,
        resamples=args.resamples,
        examples_effect=args.examples_effect,
    )
    print(text)
    extra = f", {path.parent / 'significance.csv'}" if (path.parent / "significance.csv").exists() else ""
    print(
        f"\nwrote {path}, {path.with_suffix('.html')}, {path.parent / 'scores.csv'}{extra} and {path.parent / 'plots'}/"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The offline models (MiniLM, SmolLM2, SmolLM2 trained by the offline preset), zero-shot vs
    few-shot, on offline-mini; ends with the report."""
    from evalharness.demo import run_demo

    logging.getLogger("evalharness").setLevel(logging.INFO)  # progress and ETA per task
    path, text = run_demo(args.results_dir, args.models, args.shots)
    print(text)
    print(f"report: {path} and {path.with_suffix('.html')}, plots in {path.parent / 'plots'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from evalharness.demo import DEMO_MODELS

    parser = argparse.ArgumentParser(prog="evalharness", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--pin-kernels",
        action="store_true",
        help="run with every CPU float library held to its AVX2 path, so CPU results are the same on any "
        "x86-64 host (about 4%% slower; the demo always does this)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prompt", help="print exactly what the model sees for one query")
    p.add_argument("--task", required=True, help="mteb task name, e.g. Banking77Classification")
    p.add_argument("--query", required=True, help="the query (or passage with --passage) text")
    p.add_argument("--shots", type=int, default=0, help="number of examples (-1: all in the file)")
    p.add_argument("--examples", help="example file, or folder of per-task files (reference formats)")
    p.add_argument("--strategy", default="train", choices=["train", "none"], help="without --examples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="smollm2-135m", help="model config name (see `evalharness models`)")
    p.add_argument("--template", help="prompt template (default: the model's)")
    p.add_argument("--instructions", help="YAML/JSON file of task -> instruction overrides")
    p.add_argument("--passage", action="store_true", help="render the text as a passage (raw + EOS)")
    p.add_argument("--no-tokenize", action="store_true", help="print the text only; load no tokenizer")
    p.set_defaults(func=cmd_prompt)

    p = sub.add_parser(
        "run", help="Hydra app: evalharness run model=... benchmark=... shots=[0,1,3] (-m for multirun)"
    )
    p.set_defaults(func=None)

    p = sub.add_parser(
        "train", help="Hydra app: few-shot contrastive training, e.g. evalharness train (offline preset)"
    )
    p.set_defaults(func=None)

    p = sub.add_parser(
        "report", help="comparison tables, Δ vs a baseline, Borda rank, plots (Markdown + HTML + PNG)"
    )
    p.add_argument("results_dir", nargs="?", default="results")
    p.add_argument("--baseline", type=int, default=0, help="shot count the Δ columns compare with")
    p.add_argument(
        "--reference",
        action="append",
        metavar="paper|DIR",
        help="published numbers next to ours, with the difference (repeatable): `paper` = the bge-en-icl "
        "paper's Tables 1, 2, 3, 8, 9 with in-domain tasks flagged; DIR = a local copy of mteb's results "
        "repository (results/<org>__<model>/<revision>/<Task>.json), matched by model name and revision and "
        "scored on our splits and subsets",
    )
    p.add_argument(
        "--benchmark",
        metavar="NAME",
        help="score cells whose manifest records no benchmark (plain mteb folders, published files) on this "
        'mteb benchmark\'s splits and subsets, e.g. "MTEB(eng, v1)"; its other tasks are left out',
    )
    p.add_argument(
        "--ci",
        type=float,
        default=0.95,
        metavar="LEVEL",
        help="confidence level of the paired bootstrap CIs and tests on every Δ (default 0.95; 0: none)",
    )
    p.add_argument(
        "--resamples",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap / permutation resamples (default 1000)",
    )
    effect_help = "per retrieval task and setting, the N queries the examples helped and hurt most (0: none)"
    p.add_argument("--examples-effect", type=int, default=5, metavar="N", help=effect_help)
    p.add_argument("--out", help="output folder (default: the results folder)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "demo",
        help="offline demo: the packaged models and SmolLM2 trained offline, 0- vs few-shot, then the report",
    )
    p.add_argument("--results-dir", default="results/demo")
    p.add_argument("--models", nargs="+", default=list(DEMO_MODELS))
    p.add_argument("--shots", nargs="+", type=int, default=[0, 1, 3])
    p.add_argument(
        "--native-kernels",
        action="store_true",
        help="use this CPU's own float kernels instead of the pinned AVX2 path the committed results "
        "were computed with (the last digits may then differ)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list model configs")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("tasks", help="list the tasks of a benchmark")
    p.add_argument("benchmark", nargs="?", default="offline-mini")
    p.set_defaults(func=cmd_tasks)
    return parser


def _quiet_library_warnings() -> None:
    """mteb's logistic-regression probe rarely converges on raw-LM vectors; one note, not hundreds."""
    import warnings

    with contextlib.suppress(ImportError):
        from sklearn.exceptions import ConvergenceWarning

        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message=".*past_key_values.*deprecated.*")


def _wants_pinned_kernels(argv: Sequence[str], at: int) -> bool:
    """`--pin-kernels` before the sub-command, or the demo (pinned unless --native-kernels): its
    committed results must come out the same on every host (evalharness/kernels.py)."""
    if "--pin-kernels" in argv[: max(at, 0)]:
        return True
    return at >= 0 and argv[at] == "demo" and "--native-kernels" not in argv[at + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    from evalharness import kernels

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose_flags = ("-v", "--verbose")
    at = next((i for i, a in enumerate(argv) if a not in (*verbose_flags, "--pin-kernels")), -1)
    if _wants_pinned_kernels(argv, at) and not kernels.is_pinned():
        if kernels.can_pin():
            return kernels.run_pinned(argv)
        print(
            "warning: this CPU cannot run the pinned AVX2 kernels (that needs x86-64 with AVX2 and FMA); "
            "computing with its own, so the last digits may differ from results computed pinned",
            file=sys.stderr,
        )
    _quiet_library_warnings()
    if at >= 0 and argv[at] in ("run", "train"):  # Hydra parses the overrides; -v is ours
        rest = argv[at + 1 :]
        if any(a in verbose_flags for a in [*argv[:at], *rest]):
            os.environ["HYDRA_FULL_ERROR"] = "1"  # tracebacks, ours and Hydra's
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        app = _run_app() if argv[at] == "run" else _train_app()
        return hydra_main(app, [a for a in rest if a not in verbose_flags])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    from evalharness.errors import EvalharnessError

    try:
        return args.func(args)
    except (EvalharnessError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
