"""FlyteTracker: the run's log history as a Flyte Deck of the task training runs in.

Works only inside a Flyte task (``@task(enable_deck=True)``, run locally or on a cluster): at
``train_end`` it adds the deck "Log History", a table of every log (as ``state.log_history``, the
same table transformers' ``FlyteCallback`` adds), and the deck "Configuration". Flyte writes the decks
into the task's ``deck.html``. Each checkpoint is copied into the task's Flyte checkpoint
(``sync_checkpoints=False``: not), so a retried task resumes from
``trainer.train(resume_from_checkpoint=current_context().checkpoint.restore())``. A resumed training's
table starts with the logs up to its checkpoint.
Needs ``flytekitplugins-deck-standard`` and ``pandas`` (extra ``flyte``).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

from lifecycle.args import ArgumentError
from lifecycle.integrations.base import GeneralTracker

__all__ = ["FlyteTracker", "in_flyte_task"]


def in_flyte_task() -> bool:
    """Whether this code runs inside a Flyte task's execution."""
    from flytekit.core.context_manager import FlyteContextManager

    state = FlyteContextManager.current_context().execution_state
    return state is not None and state.mode is not None


class FlyteTracker(GeneralTracker):
    """Collects the logs; at ``finish`` adds them, and the configuration, as decks of the task."""

    name = "flyte"
    #: what ``report_to="all"`` needs set before it takes this tracker
    needs_setup = "a Flyte task to run in"
    requires_logging_directory = False
    rewrite_metric_names = False  # the table shows the logs as logged, as ``state.log_history`` does

    def __init__(
        self, run_name: str | None = None, *, deck: str = "Log History", sync_checkpoints: bool = True
    ):
        if not in_flyte_task():
            raise ArgumentError(
                "TrainingArguments.report_to: 'flyte' works only inside a Flyte task "
                "(build the Trainer in a function decorated with @flytekit.task(enable_deck=True))"
            )
        self.run_name = run_name
        self.deck = deck
        self.sync_checkpoints = sync_checkpoints
        # the task's context: Flyte keeps it in a context variable, which the tracker's thread lacks
        self._task = contextvars.copy_context()
        self.rows: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}

    @classmethod
    def configured(cls) -> bool:
        """Whether training runs inside a Flyte task; ``report_to="all"`` needs one."""
        return in_flyte_task()

    @property
    def tracker(self) -> Any:
        """The task's ``flytekit.ExecutionParameters`` (its decks among them)."""
        from flytekit import current_context

        return self._task.run(current_context)

    def rewind(self, step: int, history: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Training (re)starts at ``step``: the table holds the logs up to there (all of a resumed run's)."""
        self.rows = [dict(entry) for entry in history or () if entry.get("step", 0) <= step]

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self.config = dict(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self.rows.append({**values, "step": step})

    def save_checkpoint(self, folder: str) -> None:
        """Copy each checkpoint into the task's Flyte checkpoint, as transformers' ``FlyteCallback`` does
        (a retried task gets it back from ``current_context().checkpoint.restore()``)."""
        if self.sync_checkpoints:
            self.tracker.checkpoint.save(folder)

    def finish(self) -> None:
        if self.rows or self.config:
            self._task.run(self._add_decks)

    def _add_decks(self) -> None:
        import pandas
        from flytekit import Deck
        from flytekitplugins.deck.renderer import TableRenderer

        table = TableRenderer()
        Deck(self.deck, table.to_html(pandas.DataFrame(self.rows)))
        settings = pandas.DataFrame(
            {"value": [str(v) for v in self.config.values()]}, index=list(self.config)
        )
        Deck("Configuration", table.to_html(settings.reset_index(names="argument")))
