"""Drawing lifecycles: DOT rendered by the real Graphviz ``dot``, Mermaid text, the trainer's callbacks on
each edge, user-added states, notebooks, and the ``lifecycle graph`` command in a fresh process."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import pytest

from lifecycle import TRAINING_LIFECYCLE, Lifecycle, State, TrainerCallback, TrainerControl, TrainerState, on
from lifecycle.cli.graph import graph_command
from lifecycle.dispatch import Dispatcher
from lifecycle.graph import GraphvizNotFound, LifecycleGraph, callback_labels
from lifecycle.machine import describe_guard
from tests.support.processes import REPO


def swa_due(state: Any, control: Any) -> bool:
    """Averaging starts at the third optimizer step."""
    return state.global_step >= 2


SWA = TRAINING_LIFECYCLE.extend(
    states=[State("swa_update", doc="weights folded into the running average")],
    transitions=[("optimizer_step", "optimize", "swa_update", swa_due), ("swa_end", "swa_update", "advance")],
    name="training+swa",
)


class Watch(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass

    @on("step_end", every=2)
    def every_other(self, event: Any) -> None:
        pass

    @on("to_log")
    def before_log(self, event: Any) -> None:
        pass


class Averager(TrainerCallback):
    def on_swa_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass


def svg_text(svg: bytes) -> str:
    """Every text run of an SVG (parsing it as XML on the way)."""
    root = ET.fromstring(svg)
    return "\n".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after checking every chunk's CRC and inflating the image data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + (width * channels * depth + 7) // 8)  # one filter byte per row
    return width, height


# -- DOT through the real dot ------------------------------------------------------------------------
@pytest.mark.needs_program("dot")
def test_svg_names_every_state_and_transition(tmp_path: Path) -> None:
    path = TRAINING_LIFECYCLE.render(tmp_path / "lifecycle.svg")
    text = svg_text(path.read_bytes())
    for state in TRAINING_LIFECYCLE.state_names:
        assert state in text.split(), state
    for name in TRAINING_LIFECYCLE.transition_names:  # internal ones are listed inside their state
        assert name in text, name
    guards = {describe_guard(t.guard) for t in TRAINING_LIFECYCLE.transitions if t.guard is not None}
    assert {"log_due", "evaluation_due", "save_due", "next_step", "window_open"} <= guards
    for guard in guards:
        assert f"[{guard}]" in text


@pytest.mark.needs_program("dot")
def test_png_decodes_with_a_sensible_size(tmp_path: Path) -> None:
    path = TRAINING_LIFECYCLE.render(tmp_path / "lifecycle.png")
    width, height = png_size(path.read_bytes())
    assert 600 < width < 4000 and 600 < height < 4000


@pytest.mark.needs_program("dot")
def test_format_argument_overrides_the_suffix_and_unknown_suffixes_are_refused(tmp_path: Path) -> None:
    out = TRAINING_LIFECYCLE.render(tmp_path / "drawing.bin", format="svg")
    assert ET.fromstring(out.read_bytes()).tag.endswith("svg")
    assert TRAINING_LIFECYCLE.render(tmp_path / "l.dot").read_text() == TRAINING_LIFECYCLE.to_dot()
    assert TRAINING_LIFECYCLE.render(tmp_path / "l.mmd").read_text() == TRAINING_LIFECYCLE.to_mermaid()
    with pytest.raises(ValueError, match=r"cannot tell the format of .*drawing\.txt"):
        TRAINING_LIFECYCLE.render(tmp_path / "drawing.txt")


def test_dot_styles_each_kind_of_state_and_edge() -> None:
    dot = TRAINING_LIFECYCLE.to_dot()
    lines = {line.split("[", 1)[0].strip(): line for line in dot.splitlines() if "[" in line}
    assert "peripheries=2" in lines['"idle"']  # rest state
    assert "shape=diamond" in lines['"train"'] and "shape=diamond" in lines['"init"']  # junctions
    assert "begin_training()" in lines['"prepare"']  # entry action shown
    assert "style=dashed" in lines['"boundary" -> "log"']  # plumbing (to_log)
    assert "style=dashed" not in lines['"advance" -> "boundary"']  # an HF event (step_end)
    assert "prediction_step" in lines['"evaluate"']  # an internal transition, inside its state
    assert "rankdir=TB" in dot


# -- Mermaid ------------------------------------------------------------------------------------------
def test_mermaid_has_every_state_and_transition() -> None:
    text = TRAINING_LIFECYCLE.to_mermaid()
    assert text.splitlines()[1] == "flowchart TD"
    for state in TRAINING_LIFECYCLE.states:
        assert f"  s_{state.name}" in text and f"<b>{state.name}</b>" in text
    for t in TRAINING_LIFECYCLE.transitions:
        if t.internal:
            assert f"⟲ {t.name}" in text
        else:
            edge = [
                ln
                for ln in text.splitlines()
                if ln.startswith(f"  s_{t.source} ") and ln.endswith(f" s_{t.dest}")
            ]
            assert any(f'"{t.name}' in ln for ln in edge), t.describe()
    assert '-.->|"to_log<br/>#1 [log_due]"| s_log' in text


# -- callbacks on edges --------------------------------------------------------------------------------
def test_callback_labels_follow_the_binding_rules_without_a_trainer() -> None:
    labels = callback_labels(TRAINING_LIFECYCLE, [Watch, Watch()])
    assert labels["step_end"] == ["Watch.on_step_end", "Watch.every_other"] * 2
    assert labels["to_log"] == ["Watch.before_log"] * 2
    assert labels["train_begin"] == []


def test_trainer_graph_lists_the_bound_callbacks_in_firing_order(tmp_path: Path) -> None:
    import torch

    from lifecycle import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), disable_tqdm=True)
    trainer = Trainer(torch.nn.Linear(2, 2), args, callbacks=[Watch, Averager], lifecycle=SWA)
    graph = trainer.lifecycle_graph()
    for name in SWA.transition_names:
        bound = [h.removeprefix("callback ") for h in trainer.dispatcher.handlers(name)]
        assert list(graph.callbacks.get(name, ())) == bound
        # the command-line path (no trainer) finds the same handlers in the same order
        assert callback_labels(SWA, trainer.callbacks)[name] == bound
    assert graph.callbacks["step_end"][:3] == (
        "DefaultFlowCallback.on_step_end",
        "Watch.on_step_end",
        "Watch.every_other",
    )
    mermaid = graph.to_mermaid()
    assert "▸ Watch.every_other" in mermaid and "▸ Averager.on_swa_end" in mermaid


class Parent(TrainerCallback):
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass

    @on("step_end")
    def tally(self, event: Any) -> None:
        pass

    @on("log")
    @on("step_end", every=2)
    def note(self, event: Any) -> None:
        pass

    @on("evaluate")
    def judge(self, event: Any) -> None:
        pass


class Mixed(Parent):
    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        pass

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:  # an override
        pass

    @on("save")
    def tally(self, event: Any) -> None:  # re-declared: bound to save now, no longer to step_end
        pass

    @on("step_end")
    def later(self, event: Any) -> None:
        pass

    def judge(self, event: Any) -> None:  # re-declared without @on: the parent's subscription holds
        pass


class IdleRunner:
    """A runner whose entry actions and effects do nothing."""

    def __init__(self) -> None:
        self.state = TrainerState()
        self.control = TrainerControl()
        self.args = None
        self.callback_kwargs: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return lambda: None


def test_dispatcher_and_graph_bind_the_same_methods_in_the_same_order() -> None:
    dispatcher = Dispatcher(SWA, IdleRunner(), [Mixed(), Watch(), Averager()])
    from_classes = callback_labels(SWA, [Mixed, Watch, Averager])
    from_instances = callback_labels(SWA, [Mixed(), Watch(), Averager()])
    for name in SWA.transition_names:
        bound = [h.removeprefix("callback ") for h in dispatcher.handlers(name)]
        assert from_classes[name] == from_instances[name] == bound, name
    assert from_classes["step_end"][:3] == ["Mixed.on_step_end", "Mixed.note", "Mixed.later"]
    assert from_classes["log"] == ["Mixed.on_log", "Mixed.note"]
    assert from_classes["save"] == ["Mixed.tally"]
    assert from_classes["evaluate"] == ["Mixed.judge"]
    assert from_classes["swa_end"] == ["Averager.on_swa_end"]


def test_user_states_are_drawn_like_the_built_in_ones() -> None:
    graph = LifecycleGraph.of(SWA)
    dot = graph.to_dot()

    def style(state: str) -> str:  # a node's attributes after its label, before its tooltip
        line = next(line for line in dot.splitlines() if line.startswith(f'  "{state}" ['))
        return line.split(">, ", 1)[1].split(", tooltip=")[0]

    assert style("swa_update") == style("train")  # both junctions: no entry action, not a rest
    assert "weights folded into the running average" in dot
    custom = next(line for line in dot.splitlines() if '"swa_update" -> "advance"' in line)
    assert "swa_end" in custom and "#8e44ad" in custom  # a user's transition: its own colour
    assert "[swa_due]" in next(line for line in dot.splitlines() if '"optimize" -> "swa_update"' in line)
    assert 's_swa_update ==>|"swa_end"| s_advance' in graph.to_mermaid()


def test_graph_round_trips_through_a_dict() -> None:
    graph = LifecycleGraph.of(SWA, callback_labels(SWA, [Watch]))
    again = LifecycleGraph.from_dict(graph.to_dict())
    assert again == graph and again.to_dot() == graph.to_dot()
    with pytest.raises(ValueError, match="not a lifecycle graph"):
        LifecycleGraph.from_dict({"name": "x"})


# -- notebooks and a missing dot ------------------------------------------------------------------------
@pytest.mark.needs_program("dot")
def test_notebooks_get_svg() -> None:
    bundle = TRAINING_LIFECYCLE._repr_mimebundle_()
    assert ET.fromstring(bundle["image/svg+xml"]).tag.endswith("svg")
    assert bundle["text/markdown"].startswith("```mermaid\n")
    assert TRAINING_LIFECYCLE._repr_svg_() == bundle["image/svg+xml"]


def test_without_dot_render_says_how_to_install_it_and_notebooks_fall_back_to_mermaid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH on which no `dot` exists
    with pytest.raises(GraphvizNotFound, match=r"apt-get install graphviz.*brew install graphviz"):
        TRAINING_LIFECYCLE.render(tmp_path / "l.svg")
    assert not (tmp_path / "l.svg").exists()
    bundle = TRAINING_LIFECYCLE._repr_mimebundle_()
    assert "image/svg+xml" not in bundle and "flowchart TD" in bundle["text/markdown"]
    assert TRAINING_LIFECYCLE._repr_svg_() is None
    assert graph_command("svg", None, [], str(tmp_path / "x.svg")) == 1


# -- the command ----------------------------------------------------------------------------------------
USER_MODULE = """
from lifecycle import TRAINING_LIFECYCLE, State, TrainerCallback, on

def swa_due(state, control):
    return state.global_step >= 2

SWA = TRAINING_LIFECYCLE.extend(
    states=[State("swa_update")],
    transitions=[("optimizer_step", "optimize", "swa_update", swa_due), ("swa_end", "swa_update", "advance")],
)

class Averager(TrainerCallback):
    def on_swa_end(self, args, state, control, **kwargs):
        pass

    @on("step_end", every=10)
    def report(self, event):
        pass
"""

PROBE = """
import sys
from lifecycle.cli import main
rc = main(sys.argv[1:])
print(f"\\nRC={rc} TORCH={'torch' in sys.modules}")
"""


def run_cli(tmp_path: Path, *argv: str) -> tuple[str, str]:
    (tmp_path / "user_swa.py").write_text(textwrap.dedent(USER_MODULE))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    tail = done.stdout.rsplit("\n", 2)[-2]
    assert "TORCH=False" in tail, f"the command imported torch: {tail}"
    return done.stdout, done.stderr


def test_graph_command_draws_a_user_lifecycle_with_callbacks_without_torch(tmp_path: Path) -> None:
    out, err = run_cli(
        tmp_path,
        "graph",
        "--format",
        "mermaid",
        "--lifecycle",
        "user_swa:SWA",
        "--callbacks",
        "user_swa:Averager",
    )
    assert "RC=0" in out, err
    assert 's_swa_update ==>|"swa_end<br/>▸ Averager.on_swa_end"| s_advance' in out
    assert "▸ Averager.report" in out


@pytest.mark.needs_program("dot")
def test_graph_command_writes_svg_by_the_output_suffix(tmp_path: Path) -> None:
    out, err = run_cli(tmp_path, "graph", "-o", "drawing.svg")
    assert "RC=0" in out, err
    assert "optimizer_step" in svg_text((tmp_path / "drawing.svg").read_bytes())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lifecycle", "user_swa:NOPE"], "'user_swa:NOPE': module 'user_swa' has no attribute 'NOPE'"),
        (["--lifecycle", "no_such_module:X"], "cannot import module 'no_such_module'"),
        (["--lifecycle", "user_swa"], "expected MODULE:ATTR"),
        (["--lifecycle", "user_swa:swa_due"], "is a function, not a Lifecycle"),
        (["--callbacks", "user_swa:SWA"], "is not a TrainerCallback class or instance"),
    ],
)
def test_graph_command_names_what_is_wrong(tmp_path: Path, argv: list[str], message: str) -> None:
    out, err = run_cli(tmp_path, "graph", *argv)
    assert "RC=1" in out
    assert message in err


def test_default_lifecycle_is_drawable_from_a_plain_lifecycle_object() -> None:
    small = Lifecycle(states=["init", State("idle", rest=True)], transitions=[("init_end", "init", "idle")])
    assert 's_init -->|"init_end"| s_idle' in small.to_mermaid()


MERMAID_DIR = os.environ.get("LIFECYCLE_MERMAID_DIR", "")  # a folder where `npm install mermaid@11 jsdom` ran
PARSE = """
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window; globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
let text = ""; for await (const chunk of process.stdin) text += chunk;
try { await mermaid.parse(text); console.log("VALID"); } catch (e) { console.log("INVALID " + e.message); }
"""


@pytest.mark.needs_program("node")
@pytest.mark.skipif(
    not Path(MERMAID_DIR, "node_modules", "mermaid").is_dir(),
    reason="set LIFECYCLE_MERMAID_DIR to a folder with mermaid and jsdom installed by npm",
)
@pytest.mark.parametrize("broken", [False, True])
def test_mermaid_parses_with_mermaid_itself(tmp_path: Path, broken: bool) -> None:
    text = LifecycleGraph.of(SWA, callback_labels(SWA, [Watch, Averager])).to_mermaid()
    if broken:  # the check must be able to fail
        text = text.replace("s_step(", "s_step{{", 1)
    script = Path(MERMAID_DIR, "parse_lifecycle.mjs")
    script.write_text(PARSE)
    done = subprocess.run(["node", str(script)], input=text, capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("INVALID" if broken else "VALID"), done.stdout + done.stderr
