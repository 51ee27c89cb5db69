"""The scripts in ``examples/`` run as a user runs them: with this library's Trainer, and unchanged but for
the import line with transformers'; a classification run killed after its first checkpoint and resumed
ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lifecycle.checkpoint import list_checkpoints
from tests.support.processes import REPO, child_env

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples"
CLASSIFICATION = EXAMPLES / "text_classification.py"
CAUSAL_LM = EXAMPLES / "causal_lm.py"
LIFECYCLE_IMPORT = re.compile(r"^from lifecycle import (.+)$", re.MULTILINE)
TIMING = ("_runtime", "_per_second")
#: tiny models train fastest on one thread, and a shared machine's cores are not all ours
ENV = child_env(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def with_transformers(script: Path, folder: Path) -> Path:
    """A copy of ``script`` whose one lifecycle import is transformers', as the comment above it shows."""
    text = script.read_text()
    names = LIFECYCLE_IMPORT.findall(text)
    assert len(names) == 1, f"{script.name} should import lifecycle on one line"
    assert f"# from transformers import {names[0]}\n" in text, "the comment shows the line it replaces"
    copy = folder / script.name
    copy.write_text(LIFECYCLE_IMPORT.sub(r"from transformers import \1", text))
    return copy


def command(script: Path, output_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(script), "--output_dir", str(output_dir), *args]


def run(script: Path, output_dir: Path, *args: str) -> str:
    """Run ``script`` to its end; its standard output."""
    done = subprocess.run(
        command(script, output_dir, *args),
        capture_output=True,
        text=True,
        timeout=600,
        env=ENV,
        cwd=output_dir.parent,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def results(output_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((output_dir / "all_results.json").read_text())
    return loaded


def untimed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in entry.items() if not k.endswith(TIMING)} for entry in entries]


def log_history(output_dir: Path) -> list[dict[str, Any]]:
    return untimed(json.loads((output_dir / "trainer_state.json").read_text())["log_history"])


@pytest.fixture(scope="module")
def classification(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """An uninterrupted classification run with this library: its output_dir and standard output."""
    out = tmp_path_factory.mktemp("classification") / "run"
    return out, run(CLASSIFICATION, out)


def script_for(trainer: str, script: Path, folder: Path) -> Path:
    return script if trainer == "lifecycle" else with_transformers(script, folder)


@pytest.mark.parametrize("trainer", ["lifecycle", "transformers"])
def test_text_classification(trainer: str, classification: tuple[Path, str], tmp_path: Path) -> None:
    if trainer == "lifecycle":
        out, stdout = classification
    else:
        out = tmp_path / "run"
        stdout = run(with_transformers(CLASSIFICATION, tmp_path), out)
    metrics = results(out)
    assert f"eval_accuracy = {metrics['eval_accuracy']}" in stdout
    assert metrics["eval_accuracy"] >= 0.9 and metrics["test_accuracy"] >= 0.9
    assert 0 < metrics["train_loss"] < 1
    predictions = (out / "predict_results.txt").read_text().splitlines()
    assert predictions[0] == "index\ttext\tprediction" and len(predictions) == 41

    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "BertForSequenceClassification"
    batch = tokenizer(["the film was superb", "the plot was really dull"], padding=True, return_tensors="pt")
    verdicts = [model.config.id2label[int(i)] for i in model(**batch).logits.argmax(-1)]
    assert verdicts == ["positive", "negative"]


@pytest.mark.parametrize("trainer", ["lifecycle", "transformers"])
def test_causal_lm(trainer: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    stdout = run(script_for(trainer, CAUSAL_LM, tmp_path), out)
    metrics = results(out)
    assert f"perplexity = {metrics['perplexity']}" in stdout
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["eval_loss"]))
    assert 1 < metrics["perplexity"] < 20  # from about 400 (the vocabulary) at the start
    assert len(list_checkpoints(out)) == 2  # save_total_limit

    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "GPT2LMHeadModel"
    prompt = tokenizer("the cat sees", return_tensors="pt")
    assert model(**prompt).logits.shape == (1, prompt["input_ids"].shape[1], len(tokenizer))


def test_killed_classification_resumes_to_the_same_end(
    classification: tuple[Path, str], tmp_path: Path
) -> None:
    """SIGKILL once the first checkpoint is on disk (each appears whole, by a rename), then
    ``--resume_from_checkpoint``: the log history and the final metrics equal the uninterrupted run's."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        command(CLASSIFICATION, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 300
        while not list_checkpoints(out) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{stderr[-3000:]}"
    assert list_checkpoints(out) and not (out / "all_results.json").exists()

    run(CLASSIFICATION, out, "--resume_from_checkpoint")
    uninterrupted, _ = classification
    assert log_history(out) == log_history(uninterrupted)
    assert untimed([results(out)]) == untimed([results(uninterrupted)])
