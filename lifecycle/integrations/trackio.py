"""TrackioTracker: a Trackio run, kept locally (under ``$TRACKIO_DIR``) unless a Space is named.

The project is ``huggingface`` as in transformers (``TrackioTracker(project=...)`` for another), the
Space ``$TRACKIO_SPACE_ID`` or none (local). A new training is a new run; a resumed training, and an
evaluation after training, continue the checkpoint's run (by name, ``resume="allow"``). Trackio keeps
every log, two at one step included: the logs a stopped process made after its checkpoint stay, and
the resumed training does not make them again, so each appears once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.integrations.base import GeneralTracker

__all__ = ["TrackioTracker"]


class TrackioTracker(GeneralTracker):
    """The configuration as the run's config, each log as one Trackio log at its step."""

    name = "trackio"
    requires_logging_directory = False

    def __init__(
        self,
        run_name: str | None = None,
        *,
        project: str = "huggingface",
        space_id: str | None = None,
        **init_kwargs: Any,
    ):
        self.run_name = run_name
        self.project = project
        self.space_id = space_id
        self.init_kwargs = {"auto_log_cpu": False, "auto_log_gpu": False, **init_kwargs}
        self.run: Any = None
        self._continue: dict[str, Any] | None = None
        self._rewind: tuple[int, Sequence[Mapping[str, Any]] | None] | None = None
        #: how many logs at each step the run holds from after the checkpoint: not made again
        self._logged: Counter[int] = Counter()

    @property
    def tracker(self) -> Any:
        """The ``trackio`` run; None before ``start`` and after ``finish``."""
        return self.run

    def run_identity(self) -> dict[str, Any] | None:
        """The run's ``project``, ``name`` and ``id``."""
        if self.run is None:
            return None
        return {"project": self.project, "name": self.run.name, "id": self.run.id}

    def continue_run(self, identity: Mapping[str, Any]) -> None:
        """The next ``start`` continues the run ``identity["name"]`` of ``identity["project"]``."""
        self._continue = dict(identity)

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: the logs a continued run holds past it are not made again."""
        self._rewind = (step, history)

    def start(self) -> None:
        if self.run is not None:
            return
        import trackio

        named, self._continue = self._continue or {}, None
        rewind, self._rewind = self._rewind, None
        self.project = named.get("project") or self.project
        self.run = trackio.init(
            project=self.project,
            name=named.get("name") or self.run_name,
            space_id=self.space_id,
            resume="allow" if named else "never",
            **self.init_kwargs,
        )
        if named and rewind is not None and rewind[0] > 0:
            self._logged = self._logged_after(*rewind)

    def _logged_after(self, step: int, history: Sequence[Mapping[str, Any]] | None) -> Counter[int]:
        """Logs per step past the checkpoint at ``step`` (at ``step``, those beyond ``history``'s)."""
        from trackio.sqlite_storage import SQLiteStorage

        held = Counter(
            row["step"] for row in SQLiteStorage.get_logs(self.project, self.run.name) if row["step"] >= step
        )
        if history is not None:
            held[step] -= sum(1 for entry in history if entry.get("step") == step)
        else:
            held[step] = 0
        return +held

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.start()
        self.run.config.update(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.start()
        if self._logged[step or 0] > 0:
            self._logged[step or 0] -= 1
            self._logged = +self._logged
            return
        self.run.log(values, step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
