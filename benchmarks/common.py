"""Shared pieces of the benchmarks: the model, the data, the reference virtualenv, counters, tables."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(os.environ.get("EVALHARNESS_BENCH_DIR") or REPO / ".cache" / "bench")
MODEL_SOURCE = "offline:smollm2-135m"
TASK = "OfflineChatterbotRetrieval"

# The reference: FlagEmbedding's FlagICLModel needs transformers<5 and datasets<4, so it lives in its
# own virtualenv. torch goes first so that pip takes the CPU build (a bare torch would pull CUDA).
REFERENCE_VENV = BENCH_DIR / "flag-venv"
REFERENCE_REQUIREMENTS = ("flagembedding==1.4.2", "transformers<5", "datasets<4")
REFERENCE_TORCH = os.environ.get("BENCH_REFERENCE_TORCH", "torch==2.13.0")


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Machine and environment
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
    }


# ---------------------------------------------------------------------------------------------
# Model and data
# ---------------------------------------------------------------------------------------------


def apply_threads() -> int:
    """Torch threads for this process: $BENCH_THREADS (set by `--threads`), else torch's default (one
    per core). Child processes inherit the variable, so every side of a comparison uses the same."""
    import torch

    threads = os.environ.get("BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def model_dir() -> str:
    from evalharness.encoders.loading import resolve_source

    return resolve_source(MODEL_SOURCE)


def load_backend(**kwargs: Any):
    """Our decoder backend on SmolLM2-135M, fp32 on the CPU (the reference's CPU dtype)."""
    from evalharness.encoders.backends import DecoderBackend

    apply_threads()
    return DecoderBackend(model_dir(), dtype="float32", device="cpu", **kwargs)


def sibling_backend(backend: Any, **kwargs: Any):
    """Another backend over the same weights and tokenizer (e.g. with the prefix cache off)."""
    from evalharness.encoders.backends import DecoderBackend

    return DecoderBackend(
        model_dir(), dtype="float32", device="cpu", model=backend.model, tokenizer=backend.tokenizer, **kwargs
    )


def retrieval_data(scale: str = "mini") -> dict[str, Any]:
    """The offline retrieval task's queries, train pairs (the examples' source), corpus and instruction."""
    from evalharness.instructions import load_instructions, resolve_instruction
    from evalharness.tasks.offline import OfflineChatterbotRetrieval

    task = OfflineChatterbotRetrieval(scale=scale)
    splits = task.splits()
    instruction, _ = resolve_instruction(task.metadata, load_instructions())
    return {"task": task, "instruction": instruction, **splits}


def sample_examples(shots: int, seed: int = 0, scale: str = "mini") -> list[Any]:
    """The `train` strategy's seeded examples for the task (what the runner would put in front)."""
    from evalharness.examples import build_example_set
    from evalharness.tasks.offline import OfflineChatterbotRetrieval

    task = OfflineChatterbotRetrieval(scale=scale)
    return list(build_example_set("train", shots=shots, seed=seed, tasks={TASK: task}).examples(TASK))


_TEXT_FIELDS = ("text", "sentences", "sentence1", "sentence2")


def task_texts(obj: Any) -> list[str]:
    """Every text field of an offline task's plain-Python splits (the benchmarks' pool of real text)."""
    if isinstance(obj, dict):
        return [
            t
            for k, v in obj.items()
            for t in ([v] if k in _TEXT_FIELDS and isinstance(v, str) else task_texts(v))
        ]
    if isinstance(obj, list):
        return [t for v in obj for t in task_texts(v)]
    return []


# ---------------------------------------------------------------------------------------------
# Counting what the model actually runs
# ---------------------------------------------------------------------------------------------


class ForwardRecorder:
    """Hooks on the model that count, for every forward pass, the real and the pad positions of the
    new tokens (the cached prefix of a continuation is not recomputed, so it is not counted).

    Independent of the backend's own counters, so it also checks them."""

    def __init__(self, model: Any) -> None:
        self.real = 0
        self.padded = 0
        self.forwards = 0
        self.max_positions = 0
        self._handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, _module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        rows, width = ids.shape
        # a 2D mask marks real (1) and pad (0) positions; a 4D one (packed continuations: several
        # texts laid end to end in one row, additive -inf/0 entries) says who attends to whom, and
        # packed rows hold no padding
        padding_mask = mask is not None and mask.dim() == 2
        real = int(mask[:, -width:].sum()) if padding_mask else rows * width
        self.real += real
        self.padded += rows * width - real
        self.forwards += 1
        self.max_positions = max(self.max_positions, rows * (mask.shape[-1] if mask is not None else width))

    def reset(self) -> None:
        self.real = self.padded = self.forwards = self.max_positions = 0

    def close(self) -> None:
        self._handle.remove()

    @property
    def padded_fraction(self) -> float:
        total = self.real + self.padded
        return self.padded / total if total else 0.0


# ---------------------------------------------------------------------------------------------
# The reference's virtualenv and model copy
# ---------------------------------------------------------------------------------------------


def ensure_reference_venv(venv: Path = REFERENCE_VENV) -> Path:
    """A virtualenv with FlagEmbedding and transformers<5 (created once, ~2-3 minutes)."""
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = " ".join((REFERENCE_TORCH, *REFERENCE_REQUIREMENTS))
    if stamp.is_file() and stamp.read_text().strip() == wanted and python.exists():
        return python
    log(f"setting up the reference virtualenv {venv} ({wanted}); once, a few minutes")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, REFERENCE_TORCH], check=True)
    subprocess.run([*pip, *REFERENCE_REQUIREMENTS], check=True)
    subprocess.run([str(python), "-c", "from FlagEmbedding import FlagICLModel"], check=True)
    stamp.write_text(wanted + "\n")
    return python


def reference_model_dir(source: str, dest: Path = BENCH_DIR / "smollm2-135m-tf4") -> Path:
    """A copy of the checkpoint that transformers 4 loads with the same weights and tokenizer.

    transformers 5 saves `tokenizer_class: TokenizersBackend` (unknown to transformers 4: use
    PreTrainedTokenizerFast, which reads the same tokenizer.json) and keeps RoPE's base in
    `rope_parameters` (transformers 4 reads the top-level `rope_theta` and would otherwise silently
    use its default of 10000). The weights are linked, not copied."""
    src = Path(source)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        target = dest / f.name
        if f.suffix == ".safetensors":
            if not target.exists():
                target.symlink_to(f.resolve())
        elif f.name not in ("tokenizer_config.json", "config.json") and f.is_file():
            shutil.copy2(f, target)
    tok = json.loads((src / "tokenizer_config.json").read_text())
    tok["tokenizer_class"] = "PreTrainedTokenizerFast"
    tok.pop("backend", None)
    if isinstance(tok.get("extra_special_tokens"), list):  # transformers 5's name for them
        tok["additional_special_tokens"] = tok.pop("extra_special_tokens")
    (dest / "tokenizer_config.json").write_text(json.dumps(tok, indent=2))
    cfg = json.loads((src / "config.json").read_text())
    rope = cfg.get("rope_parameters") or {}
    if "rope_theta" in rope:
        cfg["rope_theta"] = rope["rope_theta"]
        if rope.get("rope_type", "default") == "default":
            cfg["rope_scaling"] = None
    if "dtype" in cfg:
        cfg.setdefault("torch_dtype", cfg["dtype"])
    (dest / "config.json").write_text(json.dumps(cfg, indent=2))
    return dest


class ReferenceWorker:
    """benchmarks/flag_worker.py running in the reference virtualenv, one process for every k, so
    that reference and ours can be timed back to back per setting. Vectors come back as .npy files."""

    def __init__(self, job: dict[str, Any], work: Path) -> None:
        python = ensure_reference_venv()
        work.mkdir(parents=True, exist_ok=True)
        self.work = work
        job_path = work / "job.json"
        job_path.write_text(json.dumps({**job, "out_dir": str(work)}), encoding="utf-8")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "TQDM_DISABLE": "1",
            "PYTHONWARNINGS": "ignore",
        }
        env.pop("PYTHONPATH", None)
        self.log_path = work / "worker.log"  # FlagEmbedding's progress bars and warnings
        self._log = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).with_name("flag_worker.py")), str(job_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
        )
        self.info = self._reply("@@ready ")

    def _reply(self, marker: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(marker):
                return json.loads(line[len(marker) :])
        self._log.flush()
        tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(
            f"the reference worker exited with {self.proc.wait()}; {self.log_path} ends:\n{tail}"
        )

    def encode(self, k: int) -> dict[str, Any]:
        import numpy as np

        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"k": k}) + "\n")
        self.proc.stdin.flush()
        result = self._reply("@@result ")
        result["vectors"] = np.load(self.work / f"vectors_k{k}.npy")
        return result

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self._log.close()


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-markdown table (printed, and pasted into the README as is)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join(lines)


def save_json(name: str, obj: Any) -> Path:
    path = BENCH_DIR / "results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    return path
