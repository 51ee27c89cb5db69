"""Per-step cost in CPU instructions (valgrind's callgrind): a noise-free complement to the timings.

Wall-clock ratios on shared machines swing by tens of percent between rounds; instruction counts do
not. One process runs every loop three times: a warm-up (first calls fill caches), then N and N + EXTRA
steps. Callgrind dumps its counts at each call of ``getppid``, and ``os.getppid()`` marks where each
training loop starts and ends, so set-up is left out and per-step instructions =
(I(N + EXTRA) - I(N)) / EXTRA. Needs ``valgrind``; takes several minutes (everything runs about 50
times slower under callgrind).

Loops: the MLP of ``bench_overhead`` (hand-written; the Trainer with its default callbacks, and without
the progress bar) and a near-empty step (Linear 2 -> 1 on ready batches), where what the Trainer adds
shows, also with ten no-op ``on_step_end`` callbacks (the cost of each). The Trainer zeroes gradients
through a list of the parameters made once per run; the hand-written loops call ``model.zero_grad``,
which walks the modules at each step, so the near-empty step is also written by hand the Trainer's way
(``tiny hand, parameter list``): against it, what the Trainer adds is its own bookkeeping alone.
Caveat: the progress bar redraws by wall time, so under callgrind it redraws far more often than in a
real run. Clock reads (the trace) are system calls on some virtual machines: callgrind does not
count what the kernel does.

    python bench/bench_instructions.py [--steps 50] [--extra 200] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXTRA = 200
WARM_UP = 10

RUNNER = """
import functools, json, os, sys, torch
sys.path.insert(0, {here!r})
import bench_overhead as B
torch.set_num_threads(1)
steps, extra, warm_up, names_file = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
only = sys.argv[5].split("|") if len(sys.argv) > 5 else None
mark = os.getppid  # callgrind dumps its counts before each call
names = []

class Marks(B.TrainerCallback):
    elapsed = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        mark()

    def on_train_end(self, args, state, control, **kwargs):
        mark()

B.Stopwatch = lambda device: Marks()  # the Trainer's loops mark their own start and end
data = B.Regression(4096)
batches = B.ready_batches(steps + extra)
real_args = B.TrainingArguments
loops = {{
    "hand": lambda n: (mark(), B.hand_written(n), mark()),
    "lifecycle": lambda n: B.with_lifecycle(n, data),
    "lifecycle, no progress bar": lambda n: B.with_lifecycle(n, data),
    "tiny hand": lambda n: (mark(), B.tiny_hand(batches[:n]), mark()),
    "tiny hand, parameter list": lambda n: (mark(), B.tiny_hand(batches[:n], listed=True), mark()),
    "tiny lifecycle, no progress bar": lambda n: B.tiny_lifecycle(batches[:n], progress=False),
    "tiny lifecycle + 10 no-op callbacks": lambda n: B.tiny_lifecycle(
        batches[:n], progress=False, callbacks=[B.NoOp() for _ in range(10)]
    ),
}}
sys.stdout = sys.stderr = open(os.devnull, "w")
for name, loop in loops.items():
    if only is not None and name not in only:
        continue
    bar = "no progress" not in name
    B.TrainingArguments = real_args if bar else functools.partial(real_args, disable_tqdm=True)
    for n in (warm_up, steps, steps + extra):
        loop(n)
        names.append(name)
with open(names_file, "w") as f:
    json.dump(names, f)
"""


def parts(folder: Path, stem: str) -> dict[int, int]:
    """Instructions of each dumped part, by part number."""
    found = {}
    for file in folder.glob(f"{stem}*"):
        lines = file.read_text(errors="replace").splitlines()
        part = next(int(line.split()[1]) for line in lines if line.startswith("part:"))
        found[part] = next(int(line.split()[1]) for line in lines if line.startswith("summary:"))
    return found


def measure(steps: int, extra: int = EXTRA, only: list[str] | None = None) -> dict[str, float]:
    """Instructions per training step of each loop."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        script, names_file = folder / "run.py", folder / "names.json"
        script.write_text(RUNNER.format(here=str(HERE)))
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=getppid",
             f"--callgrind-out-file={folder}/cg.out", sys.executable, str(script),
             str(steps), str(extra), str(WARM_UP), str(names_file), *(["|".join(only)] if only else [])],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0 or not names_file.exists():
            raise RuntimeError(f"the measured run failed:\n{done.stderr[-3000:]}")
        names = json.loads(names_file.read_text())
        counts = parts(folder, "cg.out")
    # part 1 runs up to the first mark; each loop is a part of its own, with set-up between them
    loops = [counts[2 + 2 * i] for i in range(len(names))]
    return {names[i]: (loops[i + 2] - loops[i + 1]) / extra for i in range(0, len(names), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50, help=f"the shorter run; the longer adds {EXTRA}")
    parser.add_argument("--extra", type=int, default=EXTRA, help="how many more steps the longer run takes")
    parser.add_argument("--quick", action="store_true", help="leave out the loop with the progress bar")
    parser.add_argument("--json", help="also write the figures to this file")
    opts = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (apt-get install valgrind)")
    quick = [
        "hand",
        "lifecycle, no progress bar",
        "tiny hand",
        "tiny hand, parameter list",
        "tiny lifecycle, no progress bar",
        "tiny lifecycle + 10 no-op callbacks",
    ]
    r = measure(opts.steps, opts.extra, quick if opts.quick else None)
    print("instructions per training step (callgrind):")
    for name, value in r.items():
        print(f"  {name:34} {value:12,.0f}")
    if "lifecycle" in r:
        print(f"  ratio, lifecycle / hand           {r['lifecycle'] / r['hand']:12.3f} x")
    print(f"  ratio, no progress bar            {r['lifecycle, no progress bar'] / r['hand']:12.3f} x")
    added = r["tiny lifecycle, no progress bar"] - r["tiny hand"]
    print(f"  added to a near-empty step        {added:12,.0f}   (no progress bar)")
    added = r["tiny lifecycle, no progress bar"] - r["tiny hand, parameter list"]
    print(f"  ... to one zeroed the same way    {added:12,.0f}   (a list of the parameters, made once)")
    each = (r["tiny lifecycle + 10 no-op callbacks"] - r["tiny lifecycle, no progress bar"]) / 10
    print(f"  each no-op callback               {each:12,.0f}")
    if opts.json:
        Path(opts.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
