"""TrainerCallback and ``@on``: two ways to attach code to a lifecycle transition.

Hugging Face style — a method named ``on_<transition>`` taking ``(args, state, control, **kwargs)``;
returning a :class:`~lifecycle.TrainerControl` replaces the flags. This works for every transition,
custom ones included (``on_swa_end`` for a transition named ``swa_end``)::

    class Checkpointer(TrainerCallback):
        def on_save(self, args, state, control, **kwargs): ...

Native style — any method decorated with ``@on(name, every=N, once=N)`` receives one :class:`Event`::

    class Watch(TrainerCallback):
        @on("step_end", every=100)
        def report(self, event): print(event.state.global_step)

Order: callbacks run in the order of the trainer's callback list (``DefaultFlowCallback`` first,
then trackers, then yours, then the progress display); within one callback the ``on_<name>``
method runs first, then its ``@on`` methods in the order they were defined
(:func:`lifecycle.callbacks.binding.bindings`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

if TYPE_CHECKING:
    from lifecycle.args import TrainingArguments
    from lifecycle.control import TrainerControl
    from lifecycle.state import TrainerState

__all__ = ["HF_EVENTS", "Event", "TrainerCallback", "on"]

#: Every Hugging Face callback event, by transition name (``on_`` dropped).
HF_EVENTS: tuple[str, ...] = (
    "init_end",
    "train_begin",
    "train_end",
    "epoch_begin",
    "epoch_end",
    "step_begin",
    "pre_optimizer_step",
    "optimizer_step",
    "substep_end",
    "step_end",
    "evaluate",
    "predict",
    "save",
    "log",
    "prediction_step",
)

F = TypeVar("F", bound=Callable[..., Any])


@attrs.frozen
class Subscription:
    """What ``@on`` records on a function: the transition and its filters."""

    transition: str
    every: int | None = None
    once: int | None = None

    def admits(self, count: int) -> bool:
        """Whether the ``count``-th firing (1-based) of the transition reaches the handler."""
        if self.once is not None and count != self.once:
            return False
        return self.every is None or count % self.every == 0


def on(transition: str, *, every: int | None = None, once: int | None = None) -> Callable[[F], F]:
    """Attach a method to ``transition``; ``every=N`` keeps every N-th firing, ``once=N`` the N-th only."""
    for label, value in (("every", every), ("once", once)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ValueError(f"@on({transition!r}): {label} must be a positive int, got {value!r}")

    def mark(fn: F) -> F:
        subs = list(getattr(fn, "__lifecycle_on__", ()))
        subs.append(Subscription(transition, every, once))
        fn.__lifecycle_on__ = tuple(subs)  # type: ignore[attr-defined]
        return fn

    return mark


class Event:
    """What a native ``@on`` handler receives: the transition that fired, how often it has fired
    (``count``, this firing included), what it carries (``payload``: ``{"logs": ...}`` for ``log``,
    ``{"metrics": ...}`` for ``evaluate`` and ``predict``; what the state it leaves returned, or what
    ``emit(name, **payload)`` was given) and the trainer's state."""

    __slots__ = ("count", "payload", "trainer", "transition")

    def __init__(self, trainer: Any, transition: str, count: int, payload: Mapping[str, Any]):
        self.trainer = trainer
        self.transition = transition
        self.count = count
        self.payload = payload

    @property
    def state(self) -> TrainerState:
        return self.trainer.state

    @property
    def control(self) -> TrainerControl:
        return self.trainer.control

    @property
    def args(self) -> TrainingArguments:
        return self.trainer.args

    def __repr__(self) -> str:
        return f"Event({self.transition!r}, count={self.count}, global_step={self.state.global_step})"


def subscriptions(callback: object) -> list[tuple[str, Subscription]]:
    """``(method name, subscription)`` for each ``@on`` method of ``callback`` (a class or an instance),
    in definition order."""
    found: list[tuple[str, Subscription]] = []
    seen: set[str] = set()
    cls = callback if isinstance(callback, type) else type(callback)
    for klass in reversed(cls.__mro__):
        for name, member in vars(klass).items():
            subs = getattr(member, "__lifecycle_on__", None)
            if subs is None:
                continue
            if name in seen:  # an override re-declares; keep the most derived
                found = [(n, s) for n, s in found if n != name]
            seen.add(name)
            found.extend((name, sub) for sub in subs)
    return found


class TrainerCallback:
    """Base class: every Hugging Face ``on_*`` method, each a no-op that the trainer skips."""

    def on_init_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """At the end of ``Trainer.__init__``."""

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """Training starts (state restored, model and optimizer ready)."""

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """Training is over."""

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """An epoch starts."""

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """An epoch ends (also after a stop flag cut it short)."""

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """An optimizer step starts (its first micro-batch is next)."""

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """Gradients are ready and clipped; ``optimizer.step()`` is next."""

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """``optimizer.step()`` has run; gradients are not yet zeroed."""

    def on_substep_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """A micro-batch that does not close its accumulation window is done."""

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """An optimizer step is done; ``state.global_step`` counts it."""

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """An evaluation finished; ``kwargs['metrics']`` holds its metrics."""

    def on_predict(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """A prediction finished; ``kwargs['metrics']`` holds its metrics."""

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """A checkpoint is on disk."""

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """Logs were recorded; ``kwargs['logs']`` holds them."""

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        """One evaluation or prediction batch is done."""
