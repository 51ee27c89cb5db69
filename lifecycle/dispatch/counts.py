"""How often each transition fired: per edge, as plain list increments made by the running code.

``counts.edges[i]`` counts the ``i``-th declared transition; a transition *name* (``step_begin`` leaves
both ``epoch`` and ``boundary``) reads as the sum of its edges plus what a resumed run had counted
before it (set once, when a checkpoint is loaded). The object outlives recompiling the lifecycle, so a
callback added mid-run keeps the counts.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

from lifecycle.machine import Lifecycle

__all__ = ["Counts"]


class Counts(MutableMapping[str, int]):
    """Transition name -> times fired (the mapping); :attr:`edges` per declared transition."""

    def __init__(self, lifecycle: Lifecycle):
        self.keys_of_edges = [f"{t.name}:{t.source}->{t.dest or ''}" for t in lifecycle.transitions]
        self.edges = [0] * len(lifecycle.transitions)
        self.by_name: dict[str, tuple[int, ...]] = {
            name: tuple(i for i, t in enumerate(lifecycle.transitions) if t.name == name)
            for name in lifecycle.transition_names
        }
        #: per name: what earlier processes counted (a resumed run's checkpoint)
        self.base = dict.fromkeys(self.by_name, 0)

    def __getitem__(self, name: str) -> int:
        return self.base[name] + sum(self.edges[i] for i in self.by_name[name])

    def __setitem__(self, name: str, value: int) -> None:
        self.base[name] += value - self[name]

    def __delitem__(self, name: str) -> None:
        raise TypeError("a transition's count cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def edge(self, key: str) -> int:
        """How often the edge ``name:source->dest`` was taken in this process."""
        return self.edges[self.keys_of_edges.index(key)]

    def shared(self, name: str) -> bool:
        """Whether several edges carry the name ``name``."""
        return len(self.by_name.get(name, ())) > 1

    def __repr__(self) -> str:
        return f"Counts({dict(self)!r})"
