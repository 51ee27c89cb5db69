"""Per-step cost in CPU instructions (valgrind's callgrind): a noise-free complement to the timings.

Wall-clock ratios on shared machines swing by tens of percent between rounds; instruction counts do
not. Each loop runs twice, for N and for N + 500 steps, so start-up (imports, building the model and
the trainer) cancels out: per-step instructions = (I(N + 500) - I(N)) / 500. Needs ``valgrind``; takes
a few minutes (everything runs about 50 times slower under callgrind).

Caveat: the progress bar redraws by wall time, so under callgrind it redraws far more often than in a
real run; ``--no-progress`` measures without it.

    python bench/bench_instructions.py [--no-progress] [--steps 100]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNNER = """
import functools, os, sys, torch
sys.path.insert(0, {here!r})
import bench_overhead as B
torch.set_num_threads(1)
which, steps, progress = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if not progress:
    B.TrainingArguments = functools.partial(B.TrainingArguments, disable_tqdm=True)
data = B.Regression(4096)
sys.stdout = sys.stderr = open(os.devnull, "w")
(B.hand_written if which == "hand" else B.with_lifecycle)(steps, data)
"""


def instructions(script: Path, which: str, steps: int, progress: bool) -> int:
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, str(script),
         which, str(steps), "1" if progress else "0"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no total:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100, help="the shorter run; the longer adds 500")
    parser.add_argument("--no-progress", action="store_true", help="measure the Trainer without its tqdm bar")
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "run.py"
        script.write_text(RUNNER.format(here=str(HERE)))
        jobs = [(w, n) for w in ("hand", "lifecycle") for n in (opts.steps, opts.steps + 500)]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = list(pool.map(lambda job: instructions(script, *job, not opts.no_progress), jobs))
    hand = (counts[1] - counts[0]) / 500
    ours = (counts[3] - counts[2]) / 500
    print(
        f"instructions per training step ({'no progress bar' if opts.no_progress else 'default callbacks'}):"
    )
    print(f"  hand-written loop  {hand:12,.0f}")
    print(f"  lifecycle Trainer  {ours:12,.0f}")
    print(f"  ratio              {ours / hand:12.3f} x")


if __name__ == "__main__":
    main()
