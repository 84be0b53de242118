"""`evalharness prompt` shows exactly what the model sees; bad input fails early and clearly."""

from __future__ import annotations

import pytest
from mteb.types import PromptType

from evalharness.cli import main
from evalharness.encoders import ICLEncoder
from evalharness.examples import ExampleError, FileExamples, build_example_set
from tests import local_tasks

BANKING = "Given a online banking query, find the corresponding intents."


@pytest.fixture()
def example_dir(tmp_path):
    # a v1-style CSV whose header carries a stray tab, as MTOPIntent's does
    (tmp_path / "Banking77Classification.csv").write_text(
        "text,label\t\nWhat is my money worth in other countries?,exchange_rate\n"
        "What can I do if my card still hasn't arrived after 2 weeks?,card_arrival\n"
    )
    return tmp_path


def test_prompt_prints_the_model_input_and_token_count(example_dir, capsys, smollm2_backend):
    rc = main(
        [
            "prompt",
            "--task",
            "Banking77Classification",
            "--shots",
            "2",
            "--examples",
            str(example_dir),
            "--query",
            "How do I top up my card?",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    expected = (
        f"<instruct>{BANKING}\n<query>What is my money worth in other countries?\n<response>exchange_rate\n\n"
        f"<instruct>{BANKING}\n<query>What can I do if my card still hasn't arrived after 2 weeks?\n<response>"
        f"card_arrival\n\n<instruct>{BANKING}\n<query>How do I top up my card?\n<response><|im_end|>"
    )
    assert expected in out
    assert "instruction [table7, in the query and examples]" in out
    ids = smollm2_backend.tokenizer(expected.removesuffix("<|im_end|>"), add_special_tokens=False)[
        "input_ids"
    ]
    assert f"tokens: {len(ids) + 1} " in out


def test_prompt_with_jsonl_query_pos_file(tmp_path, capsys):
    f = tmp_path / "wiki.jsonl"
    f.write_text('{"query": "Muskoka history?", "pos": "Gary Denniss is a Canadian historian."}\n')
    rc = main(
        [
            "prompt",
            "--task",
            "ArguAna",
            "--shots",
            "1",
            "--examples",
            str(f),
            "--query",
            "q?",
            "--no-tokenize",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    claim = "Given a claim, find documents that refute the claim."
    assert (
        f"<instruct>{claim}\n<query>Muskoka history?\n<response>Gary Denniss is a Canadian historian.\n\n"
        f"<instruct>{claim}\n<query>q?\n<response>\n----- end -----"
    ) in out


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (
            ["--task", "Banking77Classificaton"],
            ["unknown task 'Banking77Classificaton'. Did you mean 'Banking77Classification'"],
        ),
        (
            ["--task", "Banking77Classification", "--shots", "5"],
            ["shots=5 but Banking77Classification.csv has only 2 examples; lower shots or add examples"],
        ),
        (
            ["--task", "ArguAna", "--shots", "1"],
            [
                "no example file for task 'ArguAna' in ",
                "tried ArguAna.json, ArguAna.jsonl, ArguAna.csv; available: Banking77Classification.csv",
                "or run this task with strategy 'none'",
            ],
        ),
        (
            ["--task", "Banking77Classification", "--shots", "1", "--template", "bge"],
            ["unknown template 'bge'; known: bge-icl, ", "Did you mean 'bge-icl'?"],
        ),
        (
            ["--task", "Banking77Classification", "--model", "smolm2"],
            ["unknown model 'smolm2'; known: bge-en-icl, ", "Did you mean smollm2-135m?"],
        ),
    ],
)
def test_prompt_bad_input(argv, fragments, example_dir, capsys):
    """Each message names the problem, what there is and the fix (words only the check writes)."""
    try:
        rc = main(["prompt", "--examples", str(example_dir), "--query", "q", "--no-tokenize", *argv])
    except SystemExit as exc:
        rc, err = 2, str(exc)
    else:
        err = capsys.readouterr().err
    assert rc == 2
    assert [f for f in fragments if f not in err] == [], err


def test_missing_and_malformed_example_files_fail_before_any_model_loads(tmp_path, smollm2_config):
    (tmp_path / "LocalRetrieval.csv").write_text('query,pos\n"ok","fine"\n"too","many","columns"\n')
    enc = ICLEncoder(smollm2_config, examples=FileExamples(tmp_path, shots=2))
    loader = [{"text": ["a query"]}]
    with pytest.raises(ExampleError, match=r"LocalRetrieval\.csv:3: expected 2 columns"):
        enc.encode(
            loader,
            task_metadata=local_tasks.LocalRetrieval.metadata,
            hf_split="test",
            hf_subset="default",
            prompt_type=PromptType.query,
        )
    with pytest.raises(
        ExampleError, match="no example file for task 'LocalSTS' in .*; available: LocalRetrieval.csv"
    ):
        enc.encode(
            loader,
            task_metadata=local_tasks.LocalSTS.metadata,
            hf_split="test",
            hf_subset="default",
            prompt_type=None,
        )
    assert enc._backend is None  # no weights were loaded


def test_train_examples_refuse_the_evaluated_split_and_overlap(smollm2_config):
    task = local_tasks.LocalClassification()
    with pytest.raises(ExampleError) as err:
        build_example_set("train", shots=2, tasks=[task], split="test")
    assert "split 'test' is one of its eval_splits" in str(err.value)
    assert "examples must come from a split other than the evaluated one" in str(err.value)
    with pytest.raises(ExampleError, match="pool of 8"):
        ICLEncoder(smollm2_config, examples=build_example_set("train", shots=9, tasks=[task])).encode(
            [{"text": ["x"]}],
            task_metadata=task.metadata,
            hf_split="test",
            hf_subset="default",
            prompt_type=None,
        )


class LeakyClassification(local_tasks.LocalClassification):
    """Its train split contains a text of the evaluated test split."""

    def load_data(self, num_proc=None, **kwargs):
        super().load_data()
        from datasets import Dataset, DatasetDict

        leaked = [*local_tasks.CLS_TRAIN, local_tasks.CLS_TEST[0]]
        train = Dataset.from_list([{"text": t, "label": y} for t, y in leaked])
        self.dataset = DatasetDict({"train": train, "test": self.dataset["test"]})


def test_examples_overlapping_the_evaluated_split_are_refused(smollm2_config):
    task = LeakyClassification()
    examples = build_example_set("train", shots=9, tasks=[task])
    enc = ICLEncoder(smollm2_config, examples=examples)
    with pytest.raises(
        ExampleError, match=r"train:8 \(query 'Really enjoyable and fun'\) also appear in the evaluated"
    ):
        enc.encode(
            [{"text": ["x"]}],
            task_metadata=task.metadata,
            hf_split="test",
            hf_subset="default",
            prompt_type=None,
        )
    assert enc._backend is None
