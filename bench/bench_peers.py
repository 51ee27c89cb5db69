"""lifecycle's Trainer against a hand-written loop, Ignite, Lightning and transformers, on one workload.

Each loop trains the same model on the same data with the same optimizer and schedule (what each one
runs besides: :mod:`runners`), for ``--steps`` steps, on one intra-op thread, each run in a fresh
process. Runs are interleaved (hand, lifecycle, ignite, lightning, transformers, hand, ...) for
``--rounds`` rounds; the table gives each loop's median time per step, the median of its per-round
ratio to the hand-written loop of the same round, and the median of what it adds per step in µs.
A loop whose package is missing is skipped, with a line saying so. Prints Markdown; ``--readme``
also writes it into the README between the ``bench_peers`` markers.

``--sync-check`` instead trains lifecycle's Trainer on CUDA under
``torch.cuda.set_sync_debug_mode("error")`` on every step that does not log (:mod:`sync_check`).

    python bench/bench_peers.py [--workload mlp|transformer] [--steps N] [--rounds K]
        [--device cpu|cuda] [--only hand,lifecycle,...] [--logging-steps 500] [--readme README.md]
    python bench/bench_peers.py --sync-check [--workload ...] [--steps N]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from runners import RUNNERS  # noqa: E402  (a script: its folder holds its modules)
from workloads import WORKLOADS  # noqa: E402

BEGIN, END = "<!-- bench_peers output -->", "<!-- end bench_peers output -->"
#: set for every run: one intra-op thread (the OpenMP and MKL pools included)
THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def main() -> None:
    opts = parse()
    if opts.worker:
        work(opts)
    elif opts.sync_check:
        print(in_fresh_process("sync-check", opts)["report"])
    else:
        compare(opts)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="mlp")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (mlp: 3000, transformer: 1000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--only", help=f"comma-separated, from: {', '.join(RUNNERS)} (default: all)")
    parser.add_argument("--logging-steps", type=int, default=500, help="the loss is logged this often")
    parser.add_argument("--sync-check", action="store_true", help="look for host syncs in our step (CUDA)")
    parser.add_argument("--readme", type=Path, help="also write the table between the markers in this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # in a run's own process: the loop to run
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)  # where that run writes its timing
    opts = parser.parse_args()
    opts.steps = opts.steps or WORKLOADS[opts.workload].default_steps
    chosen = opts.only.split(",") if opts.only else list(RUNNERS)
    unknown = [name for name in chosen if name not in RUNNERS]
    if unknown:
        parser.error(f"--only: unknown loop {', '.join(unknown)}; choose from {', '.join(RUNNERS)}")
    opts.only = chosen
    if opts.steps < 1 or opts.rounds < 1 or opts.logging_steps < 1:
        parser.error("--steps, --rounds and --logging-steps must be at least 1")
    if opts.readme is not None and BEGIN not in opts.readme.read_text():
        parser.error(f"--readme {opts.readme}: no {BEGIN} marker to write after")
    if opts.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available here")
    return opts


# -- one run, in its own process ----------------------------------------------------------------
def work(opts: argparse.Namespace) -> None:
    """Run one loop (or the sync check) and write what it measured to ``--result``, as JSON."""
    torch.set_num_threads(1)
    workload = WORKLOADS[opts.workload]
    result: dict[str, Any]
    if opts.worker == "sync-check":
        from sync_check import sync_check

        result = {"report": sync_check(workload, opts.steps, opts.logging_steps)}
    elif opts.worker == "dispatch":
        result = dispatch_costs()
    else:
        loop = RUNNERS[opts.worker][0]
        timing = loop(workload, opts.steps, opts.device, opts.logging_steps)
        result = {
            "seconds_per_step": timing.seconds_per_step,
            "steps": timing.steps,
            "threads": timing.threads,
        }
        if opts.device == "cuda":
            result["device_name"] = torch.cuda.get_device_name()
    opts.result.write_text(json.dumps(result))


def dispatch_costs() -> dict[str, float]:
    """bench_overhead's micro-benchmark: one compiled transition, and each no-op callback on it (µs)."""
    from bench_overhead import AgainNoOp, per_transition

    n = 200_000
    bare = statistics.median(per_transition(n, []) for _ in range(5))
    with_ten = statistics.median(per_transition(n, [AgainNoOp() for _ in range(10)]) for _ in range(5))
    return {"transition_us": bare * 1e6, "noop_callback_us": (with_ten - bare) / 10 * 1e6}


def in_fresh_process(name: str, opts: argparse.Namespace) -> dict[str, Any]:
    """Start this script as a worker running ``name``; its output goes to a log shown if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        result, log = Path(tmp) / "result.json", Path(tmp) / "output.log"
        command = [
            sys.executable, __file__, "--worker", name, "--result", str(result),
            "--workload", opts.workload, "--steps", str(opts.steps), "--device", opts.device,
            "--logging-steps", str(opts.logging_steps),
        ]  # fmt: skip
        paths = [str(REPO), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, **THREADS, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        with log.open("w") as output:
            done = subprocess.run(command, stdout=output, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        if done.returncode != 0:
            tail = "\n".join(log.read_text().splitlines()[-30:])
            sys.exit(f"{name}: the run failed (exit status {done.returncode}); its last lines:\n{tail}")
        answer: dict[str, Any] = json.loads(result.read_text())
        return answer


# -- the comparison -------------------------------------------------------------------------------
def compare(opts: argparse.Namespace) -> None:
    loops, missing = [], []
    for name in opts.only:
        module = RUNNERS[name][2]
        if module is not None and importlib.util.find_spec(module) is None:
            print(f"{name}: `{module}` is not installed, skipped", file=sys.stderr, flush=True)
            missing.append(module)
        else:
            loops.append(name)
    rounds: list[dict[str, dict[str, Any]]] = []
    for k in range(opts.rounds):
        rounds.append({})
        for name in loops:
            result = in_fresh_process(name, opts)
            check(name, result, opts)
            rounds[-1][name] = result
        print(f"round {k + 1}/{opts.rounds}: " + ", ".join(
            f"{n} {r['seconds_per_step'] * 1e6:.0f} µs" for n, r in rounds[-1].items()
        ), file=sys.stderr)  # fmt: skip
    dispatch = in_fresh_process("dispatch", opts) if "lifecycle-noop10" in loops else None
    text = report(opts, loops, rounds, dispatch)
    if missing:
        text += f"\n\nNot installed, not run: {', '.join(missing)} (pip install 'torch-lifecycle[bench]')."
    print(text)
    if opts.readme is not None:
        write_between_markers(opts.readme, text)


def check(name: str, result: dict[str, Any], opts: argparse.Namespace) -> None:
    """Every loop ran the steps asked for, on one thread: else its figure compares nothing."""
    if result["steps"] != opts.steps:
        sys.exit(f"{name}: ran {result['steps']} optimizer steps, not --steps {opts.steps}")
    if result["threads"] != 1:
        sys.exit(f"{name}: ran on {result['threads']} intra-op threads, not 1")


def report(
    opts: argparse.Namespace,
    loops: list[str],
    rounds: list[dict[str, dict[str, Any]]],
    dispatch: dict[str, float] | None,
) -> str:
    per_step = {n: [r[n]["seconds_per_step"] for r in rounds] for n in loops}
    hand = per_step.get("hand")
    workload = WORKLOADS[opts.workload]
    lines = [
        f"{workload.description}; SGD (lr 0.01), constant LambdaLR, one intra-op thread, {opts.device}; "
        f"{opts.steps} steps a run, the loss logged every {opts.logging_steps} steps where the loop logs; "
        f"rounds of interleaved runs: {opts.rounds}, each run in a fresh process; medians over rounds "
        "(ratios and µs added: per round, against the hand-written loop of that round).",
        "",
        "| loop | µs per step | × hand-written loop | µs added per step |",  # noqa: RUF001
        "| --- | ---: | ---: | ---: |",
    ]
    for name in loops:
        times = per_step[name]
        ratio = added = "n/a"
        if hand is not None:
            ratio = f"{statistics.median(t / h for t, h in zip(times, hand, strict=True)):.2f}"
            added = f"{statistics.median((t - h) * 1e6 for t, h in zip(times, hand, strict=True)):+.1f}"
        lines.append(f"| {RUNNERS[name][1]} | {statistics.median(times) * 1e6:,.1f} | {ratio} | {added} |")
    if "lifecycle" in loops and "lifecycle-noop10" in loops:
        pairs = zip(per_step["lifecycle-noop10"], per_step["lifecycle"], strict=True)
        each = sorted((t - d) / 10 * 1e6 for t, d in pairs)
        lines += [
            "",
            "Each added no-op `on_step_end` callback, in the training step: "
            f"{statistics.median(each):+.2f} µs (rounds from {each[0]:+.2f} to {each[-1]:+.2f} µs: where "
            "this spans zero, the machine's noise is larger than the callbacks).",
        ]
    if dispatch is not None:
        lines.append(
            f"In the dispatcher alone: one compiled transition {dispatch['transition_us']:.2f} µs, "
            f"each no-op callback on it {dispatch['noop_callback_us']:.2f} µs."
        )
    lines += ["", f"Machine: {machine(rounds)}."]
    return "\n".join(lines)


def machine(rounds: list[dict[str, dict[str, Any]]]) -> str:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    parts = [f"{cpu}, {cores} cores" if usable == cores else f"{cpu}, {usable} of {cores} cores usable"]
    gpus = {r["device_name"] for run in rounds for r in run.values() if "device_name" in r}
    parts += sorted(gpus)
    parts.append(f"Python {platform.python_version()}")
    for package in ("torch", "transformers", "pytorch-ignite", "lightning"):
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def write_between_markers(path: Path, text: str) -> None:
    before, _, rest = path.read_text().partition(BEGIN)
    _, found, after = rest.partition(END)
    if not found:
        sys.exit(f"--readme {path}: {BEGIN} has no {END} after it")
    path.write_text(f"{before}{BEGIN}\n{text}\n{END}{after}")


if __name__ == "__main__":
    main()
