"""Task instructions: Table 7 strings per mteb task name, v2 aliases, mteb fallbacks, overrides."""

from __future__ import annotations

import json
import logging

import mteb
import pytest
from mteb.models.abs_encoder import AbsEncoder, PromptSource
from mteb.types import PromptType

from evalharness.instructions import (
    AIRBENCH_INSTRUCTION,
    InstructionError,
    load_instructions,
    resolve_instruction,
)

CQA = (
    "Given a question, retrieve detailed question descriptions from Stackexchange "
    "that are duplicates to the given question."
)


@pytest.fixture(scope="module")
def table() -> dict[str, str]:
    return load_instructions()


@pytest.fixture(scope="module")
def v1_tasks():
    tasks = mteb.get_benchmark("MTEB(eng, v1)").tasks
    assert len(tasks) == 56
    return tasks


@pytest.fixture(scope="module")
def v2_tasks():
    return mteb.get_benchmark("MTEB(eng, v2)").tasks


def meta(name: str):
    return mteb.get_task(name).metadata


def test_every_v1_task_resolves_to_table7(table, v1_tasks):
    for task in v1_tasks:
        instruction, source = resolve_instruction(task.metadata, table)
        assert source == "table7", task.metadata.name
        assert instruction.endswith("."), task.metadata.name


# Hard-coded from the paper (arXiv 2409.15700, Table 7); keyed by mteb task name.
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ArguAna", "Given a claim, find documents that refute the claim."),
        ("Banking77Classification", "Given a online banking query, find the corresponding intents."),
        ("STS12", "Retrieve semantically similar text."),
        ("SICK-R", "Retrieve semantically similar text."),
        ("SciDocsRR", "Given a title of a scientific paper, retrieve the titles of other relevant papers."),
        ("TwitterURLCorpus", "Retrieve tweets that are semantically similar to the given tweet."),
        ("CQADupstackGisRetrieval", CQA),
        ("CQADupstackRetrieval", CQA),
        ("TRECCOVID", "Given a query, retrieve documents that answer the query."),
        ("SummEval", "Given a news summary, retrieve other semantically similar summaries."),
        (
            "EmotionClassification",
            "Classify the emotion expressed in the given Twitter message into one of the six emotions: "
            "anger, fear, joy, love, sadness, and surprise.",
        ),
    ],
)
def test_table7_spot_checks(table, name, expected):
    assert resolve_instruction(meta(name), table) == (expected, "table7")


def test_every_cqadupstack_subtask_is_listed(table):
    subtasks = [t.metadata.name for t in mteb.get_task("CQADupstackRetrieval").metadata.tasks]
    assert len(subtasks) == 12
    assert all(table[name] == CQA for name in subtasks)


def test_table_size(table):
    # 56 v1 tasks + 12 CQADupstack sub-tasks + 14 v2 aliases
    assert len(table) == 82


@pytest.mark.parametrize(
    ("v2_name", "v1_name"),
    [
        ("STS22.v2", "STS22"),
        ("ClimateFEVERHardNegatives", "ClimateFEVER"),
        ("FEVERHardNegatives", "FEVER"),
        ("HotpotQAHardNegatives", "HotpotQA"),
        ("Touche2020Retrieval.v3", "Touche2020"),
        ("BiorxivClusteringP2P.v2", "BiorxivClusteringP2P"),
        ("TwentyNewsgroupsClustering.v2", "TwentyNewsgroupsClustering"),
        ("ArXivHierarchicalClusteringP2P", "ArxivClusteringP2P"),
        ("SummEvalSummarization.v2", "SummEval"),
    ],
)
def test_v2_aliases(table, v2_name, v1_name):
    assert resolve_instruction(meta(v2_name), table) == (table[v1_name], "table7")


def test_every_v2_task_resolves_to_table7(table, v2_tasks):
    for task in v2_tasks:
        assert resolve_instruction(task.metadata, table)[1] == "table7", task.metadata.name


def test_airbench_instruction():
    assert AIRBENCH_INSTRUCTION == "Given a question, retrieve passages that answer the question."


def test_fallback_to_mteb_task_prompt(table):
    assert "NanoArguAnaRetrieval" not in table
    assert resolve_instruction(meta("NanoArguAnaRetrieval"), table) == (
        "Given a claim, find documents that refute the claim",
        "mteb-task-prompt",
    )
    # a plain-string prompt (classification) with an empty table
    assert resolve_instruction(meta("Banking77Classification"), {}) == (
        "Given a online banking query, find the corresponding intents",
        "mteb-task-prompt",
    )


def test_fallback_to_type_default():
    assert resolve_instruction(meta("STS12"), {}) == (
        "Retrieve semantically similar text.",
        "mteb-type-default",
    )
    assert resolve_instruction(meta("CQADupstackGamingRetrieval"), {}) == (
        "Retrieve text based on user query.",
        "mteb-type-default",
    )
    # a dict prompt with no "query" entry is no query instruction
    doc_only = meta("SciFact").model_copy(update={"prompt": {"document": "Represent the document"}})
    assert resolve_instruction(doc_only, {}) == ("Retrieve text based on user query.", "mteb-type-default")


@pytest.mark.filterwarnings("ignore:No prompt found on the abstask class")
def test_no_instruction_at_all_is_an_error():
    # the CQADupstack aggregate has no prompt and its class no abstask_prompt
    with pytest.raises(InstructionError, match="CQADupstackRetrieval"):
        resolve_instruction(meta("CQADupstackRetrieval"), {})


class _Encoder(AbsEncoder):
    prompt_priority = (PromptSource.CUSTOM_PROMPT, PromptSource.DEFAULT_TASK_PROMPT)

    def __init__(self, prompts_dict):
        self.prompts_dict = prompts_dict

    def encode(self, *args, **kwargs):
        raise NotImplementedError


@pytest.mark.parametrize("use_table", [True, False])
def test_agrees_with_mteb_get_instruction(table, v1_tasks, v2_tasks, use_table):
    prompts = table if use_table else {}
    encoder = _Encoder(prompts)
    for task in [*v1_tasks, *v2_tasks, mteb.get_task("NanoArguAnaRetrieval")]:
        if not use_table and task.metadata.name == "CQADupstackRetrieval":
            continue  # mteb returns "", we raise
        expected = encoder.get_instruction(task.metadata, PromptType.query)
        assert resolve_instruction(task.metadata, prompts)[0] == expected, task.metadata.name


def test_override_file_wins(tmp_path):
    path = tmp_path / "my_instructions.yaml"
    path.write_text(
        "TRECCOVID: 'Given a query on COVID-19, retrieve documents that answer the query.'\n"
        "STS22: 'Retrieve news articles on the same story.'\n"
        "ClimateFEVERHardNegatives: 'Given a climate claim, retrieve evidence.'\n"
    )
    table = load_instructions(path)
    assert resolve_instruction(meta("TRECCOVID"), table) == (
        "Given a query on COVID-19, retrieve documents that answer the query.",
        "override",
    )
    # an overridden v1 task carries its v2 alias along ...
    assert resolve_instruction(meta("STS22.v2"), table) == (
        "Retrieve news articles on the same story.",
        "override",
    )
    # ... unless the alias is overridden itself
    assert table["ClimateFEVERHardNegatives"] == "Given a climate claim, retrieve evidence."
    assert resolve_instruction(meta("ClimateFEVER"), table)[1] == "table7"
    assert resolve_instruction(meta("ArguAna"), table)[1] == "table7"


def test_json_override_and_unknown_name_warning(tmp_path, caplog):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"ArguAna": "Refute it.", "ArguAnna": "typo"}))
    with caplog.at_level(logging.WARNING, logger="evalharness.instructions"):
        table = load_instructions(str(path))
    assert table["ArguAna"] == "Refute it."
    assert "ArguAnna" in caplog.text
    assert "ArguAna'" not in caplog.text


@pytest.mark.parametrize(
    ("filename", "content", "match"),
    [
        ("missing.yaml", None, "does not exist"),
        ("list.yaml", "- ArguAna\n- NQ\n", "not a mapping"),
        ("empty_value.yaml", "ArguAna:\n", "ArguAna"),
        ("number.yaml", "ArguAna: 3\n", "ArguAna"),
        ("broken.json", "{'ArguAna': 'x'", "Cannot parse"),
        ("broken.yaml", "ArguAna: [unclosed\n", "Cannot parse"),
    ],
)
def test_bad_override_file(tmp_path, filename, content, match):
    path = tmp_path / filename
    if content is not None:
        path.write_text(content)
    with pytest.raises(InstructionError, match=match) as err:
        load_instructions(path)
    assert isinstance(err.value, ValueError)
    assert str(path) in str(err.value)
    assert "maps mteb task names to instruction strings" in str(err.value)
