"""DVCLiveTracker: a DVCLive folder (``params.yaml``, ``metrics.json``, ``plots/metrics/<name>.tsv``).

Local by nature: no DVC experiment is saved (``save_dvc_exp=False``), no ``dvc.yaml`` written
(``dvcyaml=None``: DVCLive's default adds the run to the ``dvc.yaml`` at the root of the git
repository it runs in), and that repository is left alone (DVCLive would run ``dvc init`` on it).
``DVCLiveTracker(..., save_dvc_exp=True)`` or ``dvcyaml="dvc.yaml"`` asks for DVC's way. Each metric is
logged at the training's ``global_step`` (``live.step``), not at a count of logs. A resumed training continues
the folder (``resume=True``) after cutting, from each metric's plot, the rows a stopped process
logged after its checkpoint: the plots hold each row once, as an uninterrupted run's do. Text is not
a DVCLive metric: it is left out, with one warning.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lifecycle.integrations.base import GeneralTracker
from lifecycle.integrations.values import rewrite_names

__all__ = ["DVCLiveTracker"]

logger = logging.getLogger("lifecycle.integrations")


class DVCLiveTracker(GeneralTracker):
    """Parameters from the configuration, numbers as metrics at their step."""

    name = "dvclive"
    requires_logging_directory = True

    def __init__(
        self, run_name: str | None = None, logging_dir: str | os.PathLike[str] = "dvclive", **live_kwargs: Any
    ):
        self.run_name = run_name
        self.dir = os.fspath(logging_dir)
        self.live_kwargs = live_kwargs
        self.live: Any = None
        self._resume = False
        self._texts: set[str] = set()

    @classmethod
    def from_args(cls, args: Any) -> DVCLiveTracker:
        """``<output_dir>/dvclive``."""
        return cls(args.run_name, os.path.join(args.output_dir, "dvclive"))

    @property
    def tracker(self) -> Any:
        """The ``dvclive.Live``; None before ``start`` and after ``finish``."""
        return self.live

    def run_identity(self) -> dict[str, Any] | None:
        """The folder's name, for ``lifecycle inspect``: a resumed training continues in the folder this
        tracker is given (the name is not used to find it), with DVCLive's ``resume``."""
        return {"dir": os.path.basename(self.dir)} if self.live is not None else None

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        self._resume = True

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: at 0 the folder starts afresh, else each plot keeps the rows up
        to the checkpoint (at ``step`` itself, as many as ``history`` has)."""
        if step <= 0:
            self._resume = False
            return
        self._resume = True
        at_step: Counter[str] = Counter()
        for entry in history or ():
            if entry.get("step") == step:
                at_step.update(rewrite_names({k: v for k, v in entry.items() if k != "step"}))
        plots = Path(self.dir) / "plots" / "metrics"
        for plot in plots.rglob("*.tsv") if plots.is_dir() else ():
            name = plot.relative_to(plots).with_suffix("").as_posix()
            _cut(plot, step, at_step[name] if history is not None else None)

    def start(self) -> None:
        if self.live is None:
            from dvclive import Live

            settings = {"save_dvc_exp": False, "report": None, "dvcyaml": None, **self.live_kwargs}
            uses_dvc = settings["save_dvc_exp"] or settings["dvcyaml"]
            live = Live if uses_dvc else _without_dvc(Live)
            self.live = live(dir=self.dir, resume=self._resume, **settings)

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.live.log_params(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        self.live.step = step or 0
        for key, value in values.items():
            if not isinstance(value, str):
                self.live.log_metric(key, value, **kwargs)
            elif key not in self._texts:
                self._texts.add(key)
                logger.warning("dvclive: %r is text, which DVCLive does not log as a metric; left out", key)
        self.live.make_summary()

    def finish(self) -> None:
        if self.live is not None:
            self.live.end()
            self.live = None
            self._resume = True  # an evaluation after training adds to this folder


def _without_dvc(live: type[Any]) -> type[Any]:
    """``Live`` leaving alone the git repository it runs in: DVCLive runs ``dvc init`` on it (and stages
    the new files) to save experiments, which this tracker does not do. Overrides DVCLive's
    ``_init_dvc``, keeping only the name of the ``dvc.yaml`` it would write."""

    class LiveWithoutDVC(live):
        def _init_dvc(self) -> None:
            self._dvc_file = self._init_dvc_file()

    return LiveWithoutDVC


def _cut(plot: Path, step: int, at_step: int | None) -> None:
    """Keep the rows of ``plot`` before ``step``, and at ``step`` the first ``at_step`` (all if None)."""
    header, *rows = plot.read_text(encoding="utf-8").splitlines(keepends=True)
    kept, seen = [header], 0
    for row in rows:
        row_step = int(row.split("\t", 1)[0])
        if row_step == step:
            seen += 1
        if row_step < step or (row_step == step and (at_step is None or seen <= at_step)):
            kept.append(row)
    plot.write_text("".join(kept), encoding="utf-8")
