"""A real data-parallel run: two ``torchrun`` processes on the CPU (gloo)."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lifecycle import Trainer, TrainerCallback, TrainingArguments
from lifecycle.checkpoint import list_checkpoints, verify_checkpoint
from lifecycle.checkpoint.contents import read_resume
from lifecycle.cli.inspect import inspect_command
from tests.support.processes import SCRIPTS, child_env
from tests.support.seen import Indexed, Noting
from tests.support.sequences import Sequences, Tagger, pad_batch, token_metrics

pytestmark = pytest.mark.slow


def torchrun(out: Path, *arguments: str) -> list[dict[str, Any]]:
    """Run ``tests/scripts/distributed_run.py out *arguments`` on two ranks; what each rank wrote."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(SCRIPTS / "distributed_run.py"), str(out), *arguments]  # fmt: skip
    env = child_env(OMP_NUM_THREADS="1")
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("the ranks hung: they did not agree on when to stop")
    written = sorted(p.name for p in out.glob("rank*.json"))
    assert done.returncode == 0, f"results written: {written}\n{done.stderr[-4000:]}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Two ranks that evaluate at step 1, save at step 2, log and stop at step 3: the run folder, and
    what each rank wrote."""
    out = tmp_path_factory.mktemp("stopped")
    zero, one = torchrun(out, "stop")
    return out / "run", zero, one


def test_two_ranks_share_the_data_agree_to_stop_and_save_once(
    stopped: tuple[Path, dict[str, Any], dict[str, Any]],
) -> None:
    run, zero, one = stopped

    # rank 1 alone asked to stop at step 3; the flag was all-reduced, so rank 0 stopped there too
    assert zero["global_step"] == one["global_step"] == 3
    # and for an evaluation at step 1 (a collective now): rank 0 evaluated with it, to the same loss
    assert zero["evaluated"] == one["evaluated"] and [step for step, _ in zero["evaluated"]] == [1]
    assert (zero["world_process_zero"], one["world_process_zero"]) == (True, False)

    # DistributedDataParallel kept the replicas identical, and they did learn
    assert zero["params"] == one["params"] and zero["params"] != zero["initial"]
    assert zero["losses"] == one["losses"] and len(zero["losses"]) == 1  # the mean over ranks, at step 3

    # each rank trained on its own share of the examples
    assert len(zero["seen"]) == len(one["seen"]) == 3 * 4
    assert not set(zero["seen"]) & set(one["seen"])

    # one checkpoint at step 2, written by rank 0 alone, whole
    saved = list_checkpoints(run)
    assert [p.name for p in saved] == ["checkpoint-2"]
    verify_checkpoint(saved[0])
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no leftovers


def test_each_rank_resumes_its_own_random_draws_and_loss_exactly(tmp_path: Path) -> None:
    full = torchrun(tmp_path / "full", "dropout")
    checkpoint = tmp_path / "full" / "run" / "checkpoint-4"
    assert (checkpoint / "resume-rank1.json").is_file()  # rank 1's generators and loss, beside rank 0's
    report = io.StringIO()
    assert inspect_command(str(checkpoint), out=report) == 0  # listed in the manifest, intact
    assert "for each of 2 ranks" in report.getvalue()
    resumed = torchrun(tmp_path / "resumed", "dropout", str(checkpoint))

    # the ranks drew different dropout masks, yet DistributedDataParallel kept them identical
    assert full[0]["params"] == full[1]["params"]
    # step 4 is inside an epoch and between logs (every 3): every rank's draws and loss since the
    # log at step 3 must come back for the resumed run to end exactly where the uninterrupted one did
    assert resumed[0]["params"] == full[0]["params"]
    assert resumed[0]["log_history"] == full[0]["log_history"]


def test_gradients_are_all_reduced_once_per_accumulation_window(tmp_path: Path) -> None:
    zero, one = torchrun(tmp_path, "accumulate")
    # three windows (2, 2 and 1 micro-batches), one all-reduce each, at the window's last micro-batch
    assert zero["reductions"] == one["reductions"] == [0, 1, 2]
    assert zero["params"] == one["params"]  # the one all-reduce per window keeps the replicas equal


def without_timings(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if not k.endswith(("_runtime", "_per_second"))}


def test_ranks_evaluate_and_predict_their_shares_as_one_process_would(tmp_path: Path) -> None:
    zero, one = torchrun(tmp_path, "evaluate")
    # the same weights, data and batches in this one process
    args = TrainingArguments(str(tmp_path / "alone"), per_device_eval_batch_size=4, report_to="none")
    data = Sequences(11)
    alone = Trainer(Tagger(), args, data_collator=pad_batch, eval_dataset=data, compute_metrics=token_metrics)
    metrics = alone.evaluate()
    predicted = alone.predict(data)
    logits, index = predicted.predictions

    # 3 batches (4, 4, 3 rows): each rank ran 2, rank 1 its one real batch and one it kept nothing of
    assert zero["batches"] == one["batches"] == 2
    for rank in (zero, one):
        assert rank["index"] == index.tolist() == list(range(11))  # every row once, in dataset order
        assert rank["logits"] == logits.tolist()  # widths differed by rank: padded to the widest
        assert rank["labels"] == predicted.label_ids.tolist()
        assert without_timings(rank["evaluate"]) == without_timings(metrics)
        assert without_timings(rank["predict"]) == without_timings(predicted.metrics)
    assert metrics["eval_rows"] == 11 and "eval_loss" in metrics and "test_accuracy" in predicted.metrics
    assert len({len(row) for row in logits.tolist()}) == 1 and (predicted.label_ids == -100).any()


class OnTrainBegin(TrainerCallback):
    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.action()


def noting_trainer(out: Path, model: Noting, **changes: Any) -> Trainer:
    """One process training ``model`` as tests/scripts/distributed_run.py's ranks do (40 examples,
    batches of 4, ten steps)."""
    settings = {"max_steps": 10, "logging_steps": 1, "save_strategy": "no", **changes}
    args = TrainingArguments(str(out), per_device_train_batch_size=4, learning_rate=0.1, report_to="none",
                             disable_tqdm=True, **settings)  # fmt: skip
    return Trainer(model, args, train_dataset=Indexed(40))


def test_a_two_rank_checkpoint_resumes_on_one_process_with_the_rest_of_the_epoch(
    stopped: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run, zero, one = stopped
    copy = shutil.copytree(run, tmp_path / "run")
    model = Noting()
    trainer = noting_trainer(copy, model, logging_steps=3)
    carried: list[float] = []
    trainer.add_callback(OnTrainBegin(lambda: carried.append(float(trainer.run.loss.total))))  # type: ignore[union-attr]
    with caplog.at_level(logging.WARNING):
        trainer.train(resume_from_checkpoint=str(copy / "checkpoint-2"))
    assert "world size 2 → 1" in caplog.text and "global_step goes on from 2" in caplog.text
    # the loss of steps 1 and 2, not yet logged, is the two ranks' mean, as the log at step 3 wants it
    totals = [read_resume(copy / "checkpoint-2", rank).loss.total for rank in (0, 1)]
    assert totals[0] != totals[1] and carried == [pytest.approx(sum(totals) / 2, rel=1e-6)]
    # before the checkpoint each rank trained on two batches of 4; alone, the epoch's 10 batches go on
    # from the fifth: the 24 examples neither rank had reached, each once
    before = zero["seen"][:8] + one["seen"][:8]
    assert sorted(before + model.seen[:24]) == list(range(40))


def test_a_one_process_checkpoint_resumes_on_two_ranks_with_the_rest_of_the_epoch(tmp_path: Path) -> None:
    alone = Noting()
    noting_trainer(tmp_path / "alone", alone, save_strategy="steps", save_steps=4).train()
    checkpoint = shutil.copytree(tmp_path / "alone" / "checkpoint-4", tmp_path / "run" / "checkpoint-4")
    zero, one = torchrun(tmp_path, "stop", str(checkpoint))
    # four batches of 4 alone; then the two ranks share the epoch's other 24 examples, 3 batches each
    assert sorted(alone.seen[:16] + zero["seen"][:12] + one["seen"][:12]) == list(range(40))
    assert zero["global_step"] == one["global_step"] == 10
