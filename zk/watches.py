"""Watch registrations and which of them a change triggers (one-shot, per session).

Pure bookkeeping. ``exists`` and ``get`` register data watches (an ``exists`` watch on a
missing node fires when it is created); ``get_children`` registers child watches. A change
fires each matching registration once and removes it, ZooKeeper's rules:

    created  -> data watches on the path
    changed  -> data watches on the path
    deleted  -> data and child watches on the path
    child    -> child watches on the (parent) path
"""

from __future__ import annotations

from collections.abc import Iterable

from .tree import WatchEvent

DATA = "data"
CHILD = "child"


class WatchManager:
    def __init__(self) -> None:
        self._data: dict[str, set[int]] = {}
        self._child: dict[str, set[int]] = {}

    def add(self, kind: str, path: str, session_id: int) -> None:
        table = self._data if kind == DATA else self._child
        table.setdefault(path, set()).add(session_id)

    def trigger(self, events: Iterable[WatchEvent]) -> list[tuple[int, WatchEvent]]:
        """(session, event) pairs to deliver, in event order; each registration fires once."""
        out: list[tuple[int, WatchEvent]] = []
        for event in events:
            tables = {"created": (self._data,), "changed": (self._data,),
                      "deleted": (self._data, self._child), "child": (self._child,)}[event.type]
            fired: set[int] = set()
            for table in tables:
                fired |= table.pop(event.path, set())
            out.extend((s, event) for s in sorted(fired))
        return out

    def remove_session(self, session_id: int) -> None:
        for table in (self._data, self._child):
            for path in [p for p, s in table.items() if session_id in s]:
                table[path].discard(session_id)
                if not table[path]:
                    del table[path]

    def count(self) -> int:
        return sum(len(s) for s in self._data.values()) + sum(
            len(s) for s in self._child.values())
