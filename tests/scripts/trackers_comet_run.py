"""Train the tiny model reporting to Comet, then write what the run logged to ``<output_dir>/run.json``.

Run as a subprocess of ``test_trackers_comet.py`` (so that it can run without a network), with the
checkout on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.trackers import make_trainer

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    trainer = make_trainer(out, report_to="comet", run_name="comet-check")
    trainer.train()
    record = {"log_history": trainer.state.log_history, "args": trainer.args.to_dict()}
    (out / "run.json").write_text(json.dumps(record), encoding="utf-8")
