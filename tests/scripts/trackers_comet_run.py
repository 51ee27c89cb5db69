"""Train the tiny model reporting to Comet, then write what the run logged to ``<output_dir>/run.json``:
``trackers_comet_run.py OUTPUT_DIR [resume]``. With ``resume``, a second trainer resumes the run from
its first checkpoint and evaluates after training; ``run.json`` then holds that trainer's record.

Run as a subprocess of ``test_trackers_comet.py`` (so that it can run without a network), with the
checkout on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lifecycle.integrations import TrackerCallback
from tests.support.trackers import make_trainer

if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    resume = sys.argv[2:] == ["resume"]
    saving = {"save_strategy": "steps", "save_steps": 5} if resume else {}
    trainer = make_trainer(out, report_to="comet", run_name="comet-check", **saving)
    trainer.train()
    record: dict[str, object] = {"log_history": trainer.state.log_history, "args": trainer.args.to_dict()}
    if resume:
        trainer = make_trainer(out, report_to="comet", run_name="comet-check", **saving)
        trainer.train(resume_from_checkpoint=str(out / "checkpoint-5"))
        record = {"log_history": list(trainer.state.log_history), "evaluation": trainer.evaluate()}
        # an evaluation on its own leaves its trackers open; Comet archives an experiment when it ends
        (trackers,) = [cb for cb in trainer.callbacks if isinstance(cb, TrackerCallback)]
        trackers.finish(trainer.state)
    (out / "run.json").write_text(json.dumps(record), encoding="utf-8")
