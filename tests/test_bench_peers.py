"""bench/bench_peers.py still runs: every loop trains its steps, the command prints and writes its table,
and the sync check's guard is strict exactly where a step does not log. Nothing here times anything."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from lifecycle import Trainer, TrainingArguments
from tests.support.processes import REPO, child_env

sys.path.insert(0, str(REPO / "bench"))

from runners import RUNNERS
from sync_check import SKIPPED, SyncGuard, sync_check
from workloads import WORKLOADS, sgd

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NO_CUDA)])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
@pytest.mark.parametrize("name", list(RUNNERS))
def test_each_loop_trains_the_steps_asked_for(name: str, workload: str, device: str) -> None:
    loop, _, module = RUNNERS[name]
    if module is not None:
        pytest.importorskip(module)
    timing = loop(WORKLOADS[workload], 3, device, 2)
    assert timing.steps == 3
    assert timing.seconds_per_step > 0


@pytest.mark.slow
def test_the_command_prints_and_writes_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench_peers output -->\nold\n<!-- end bench_peers output -->\ntail\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_peers.py"), "--steps", "5", "--rounds", "1",
         "--only", "hand,lifecycle", "--readme", str(readme)],
        capture_output=True, text=True, timeout=300, env=child_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = re.findall(r"^\| (.+?) \| ([\d,.]+) \| ([\d.]+) \| ([+-][\d.]+) \|$", done.stdout, re.MULTILINE)
    assert [row[0] for row in rows] == [RUNNERS["hand"][1], RUNNERS["lifecycle"][1]]
    assert rows[0][2] == "1.00" and float(rows[1][1].replace(",", "")) > 0
    assert f"torch {torch.__version__}" in done.stdout
    table = done.stdout.strip()
    assert readme.read_text() == (
        f"# x\n<!-- bench_peers output -->\n{table}\n<!-- end bench_peers output -->\ntail\n"
    )


@pytest.mark.slow
def test_a_missing_device_or_loop_is_named() -> None:
    script = str(REPO / "bench" / "bench_peers.py")
    done = subprocess.run(
        [sys.executable, script, "--only", "hand,fastai"], capture_output=True, text=True, env=child_env()
    )
    assert done.returncode == 2 and "--only: unknown loop fastai" in done.stderr
    if not torch.cuda.is_available():
        done = subprocess.run(
            [sys.executable, script, "--device", "cuda"], capture_output=True, text=True, env=child_env()
        )
        assert done.returncode == 2 and "--device cuda: CUDA is not available here" in done.stderr


def test_sync_check_runs_on_cuda_or_says_it_skipped() -> None:
    answer = sync_check(WORKLOADS["mlp"], 12, 5)
    if torch.cuda.is_available():
        assert answer.startswith("no host sync in 12 training steps"), answer
        assert "(2 logs and the summary were let sync)" in answer
    else:
        assert answer == SKIPPED


class Watched(Trainer):
    """Records the sync mode each state's work runs under."""

    def __init__(self, guard: SyncGuard, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.seen: list[tuple[str, int, bool]] = []

    def _note(self, what: str) -> None:
        self.seen.append((what, self.state.global_step, self.guard.strict))

    def forward_backward(self) -> None:
        self._note("step")
        super().forward_backward()

    def advance_schedule(self) -> None:
        super().advance_schedule()
        self._note("advance")

    def collect_train_logs(self) -> None:
        self._note("log")
        super().collect_train_logs()

    def summarize_training(self) -> None:
        self._note("finish")
        super().summarize_training()


def test_the_guard_is_strict_in_every_step_and_lenient_only_to_log(tmp_path: Path) -> None:
    modes: list[str] = []
    guard = SyncGuard(set_mode=modes.append)
    workload = WORKLOADS["mlp"]
    model = workload.model()
    args = TrainingArguments(
        tmp_path, max_steps=7, logging_steps=3, save_strategy="no", disable_tqdm=True, use_cpu=True
    )
    trainer = Watched(
        guard, model, args, train_dataset=workload.data(), optimizers=sgd(model), callbacks=[guard]
    )
    trainer.train()
    work = [strict for what, _, strict in trainer.seen if what in ("step", "advance")]
    assert len(work) == 14 and all(work)
    lenient = [(what, step) for what, step, strict in trainer.seen if not strict]
    assert lenient == [("log", 3), ("log", 6), ("finish", 7)]
    assert (guard.strict_steps, guard.logs) == (7, 2)
    assert modes[0] == "error" and modes[-1] == "default"
