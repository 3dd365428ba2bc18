"""The data tree: the coordination service's state machine.

``DataTree.apply(txn, zxid, time_ms)`` is the only mutator. It is deterministic and
all-or-nothing: it either applies the whole transaction (a ``multi`` included) and returns
its result plus the watch events it caused, or raises a :class:`~klamm.zk.errors.ZkError`
and leaves the tree exactly as it was. No I/O, no clock, no event loop: how transactions
are ordered and made durable lives elsewhere, so a replicated log can sit under it later.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import (BadArgumentsError, BadVersionError, NoChildrenForEphemeralsError,
                     NodeExistsError, NoNodeError, NotEmptyError, SessionExpiredError, ZkError)
from .txn import (CheckTxn, CloseSessionTxn, CreateSessionTxn, CreateTxn, DeleteTxn, MultiTxn,
                  Op, SetTxn, Txn)

MAX_PATH_LENGTH = 1024
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class Stat(NamedTuple):
    """Metadata of a node, as in ZooKeeper (``version`` counts data changes, ``cversion``
    counts child creations and deletions, ``ephemeral_owner`` is 0 for persistent nodes)."""

    czxid: int
    mzxid: int
    pzxid: int
    ctime: int
    mtime: int
    version: int
    cversion: int
    ephemeral_owner: int
    data_length: int
    num_children: int

    @classmethod
    def from_wire(cls, obj: Any) -> "Stat":
        return cls(*obj)


class WatchEvent(NamedTuple):
    """A change that may trigger watches: ``type`` is created|deleted|changed|child."""

    type: str
    path: str


@dataclass(slots=True)
class Node:
    data: bytes
    czxid: int
    mzxid: int
    pzxid: int
    ctime: int
    mtime: int
    version: int = 0
    cversion: int = 0
    ephemeral_owner: int = 0
    children: set[str] = field(default_factory=set)

    def stat(self) -> Stat:
        return Stat(self.czxid, self.mzxid, self.pzxid, self.ctime, self.mtime, self.version,
                    self.cversion, self.ephemeral_owner, len(self.data), len(self.children))


@dataclass(frozen=True, slots=True)
class SessionInfo:
    timeout_ms: int
    password: bytes


def validate_path(path: Any) -> str:
    """Raises BadArgumentsError unless ``path`` is an absolute, normalised node path."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadArgumentsError(f"path must be a string starting with '/', got {path!r}")
    if len(path) > MAX_PATH_LENGTH:
        raise BadArgumentsError(f"path longer than {MAX_PATH_LENGTH} characters")
    if path == "/":
        return path
    if path.endswith("/"):
        raise BadArgumentsError(f"path must not end with '/': {path!r}")
    if _CONTROL.search(path):
        raise BadArgumentsError(f"path has a control character: {path!r}")
    for part in path[1:].split("/"):
        if part in ("", ".", ".."):
            raise BadArgumentsError(f"path has an empty, '.' or '..' component: {path!r}")
    return path


def split(path: str) -> tuple[str, str]:
    """(parent, name) of a validated non-root path."""
    parent, _, name = path.rpartition("/")
    return parent or "/", name


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


Undo = list[Callable[[], None]]


def _row(path: str, n: Node) -> list[Any]:
    return [path, n.data, n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime, n.version, n.cversion,
            n.ephemeral_owner]


class TreeImage:
    """The tree as of ``zxid``, readable from another thread while the tree moves on.

    ``nodes`` is a private copy of the path -> Node dict taken at ``zxid`` (Node objects
    shared with the live tree). Before the live tree changes a node of that copy in place it
    calls ``preserve``, which records the node's row once (first change wins, so the saved
    row is the one at ``zxid``). ``rows()`` reads a node's fields *then* looks for a saved
    row: if none was saved by then, no change had started before the read (the row is saved
    before the change, and the GIL orders the two threads' steps), so the fields read are
    the ones at ``zxid``. Likewise a reader checks ``released`` after reading every row.
    Children lists are not part of a row (they follow from the paths), so changes to them
    need no saving.
    """

    __slots__ = ("zxid", "nodes", "sessions", "saved", "released")

    def __init__(self, zxid: int, nodes: dict[str, Node], sessions: list[list[Any]]) -> None:
        self.zxid = zxid
        self.nodes = nodes
        self.sessions = sessions
        self.saved: dict[str, list[Any]] = {}
        self.released = False

    def preserve(self, path: str, node: Node) -> None:
        """Called by the live tree before it changes ``node`` (at ``path``) in place."""
        if path not in self.saved and self.nodes.get(path) is node:
            self.saved[path] = _row(path, node)

    def rows(self) -> Iterator[list[Any]]:
        """Every node's row as of ``zxid``, in the copy's order (safe from any thread)."""
        saved = self.saved
        for path, node in self.nodes.items():
            row = _row(path, node)
            yield saved.get(path, row)


class DataTree:
    """All nodes keyed by path, plus open sessions and each session's ephemeral paths.

    Invariants: every node but ``/`` has its parent in the tree and is listed in the
    parent's ``children``; ``ephemerals[s]`` is exactly the set of nodes owned by ``s``;
    ephemeral nodes have no children; ``last_zxid`` is the zxid of the last applied txn.
    Not thread-safe; one owner applies transactions.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"/": Node(b"", 0, 0, 0, 0, 0)}
        self.sessions: dict[int, SessionInfo] = {}
        self.ephemerals: dict[int, set[str]] = {}
        self.last_zxid = 0
        self._image: TreeImage | None = None  # copy-on-write image being written, if any

    # -- reads ---------------------------------------------------------------------------

    def get(self, path: str) -> tuple[bytes, Stat]:
        node = self._node(path)
        return node.data, node.stat()

    def exists(self, path: str) -> Stat | None:
        node = self.nodes.get(validate_path(path))
        return node.stat() if node else None

    def get_children(self, path: str) -> tuple[list[str], Stat]:
        node = self._node(path)
        return sorted(node.children), node.stat()

    def _node(self, path: str) -> Node:
        node = self.nodes.get(validate_path(path))
        if node is None:
            raise NoNodeError(f"no node {path}")
        return node

    def __len__(self) -> int:
        return len(self.nodes)

    # -- the state machine ---------------------------------------------------------------

    def apply(self, txn: Txn, zxid: int, time_ms: int) -> tuple[Any, list[WatchEvent]]:
        """Apply ``txn`` as transaction ``zxid``; all or nothing (see module docstring).

        Results: create -> created path, set -> Stat, delete/check/session -> None,
        multi -> list of per-op results. A failing multi raises the op's error with an
        ``index`` attribute naming the op.
        """
        if zxid <= self.last_zxid:
            raise ValueError(f"zxid {zxid} not after {self.last_zxid}")
        events: list[WatchEvent] = []
        undo: Undo = []
        try:
            result = self._apply(txn, zxid, time_ms, events, undo)
        except BaseException:
            for action in reversed(undo):
                action()
            raise
        self.last_zxid = zxid
        return result, events

    def _apply(self, txn: Txn, zxid: int, time_ms: int, events: list[WatchEvent],
               undo: Undo) -> Any:
        match txn:
            case MultiTxn():
                results = []
                for index, op in enumerate(txn.ops):
                    try:
                        results.append(self._apply_op(op, zxid, time_ms, events, undo))
                    except ZkError as exc:
                        exc.index = index  # type: ignore[attr-defined]
                        raise
                return results
            case CreateSessionTxn():
                if txn.session_id in self.sessions:
                    raise BadArgumentsError(f"session {txn.session_id:#x} already exists")
                self.sessions[txn.session_id] = SessionInfo(txn.timeout_ms, txn.password)
                self.ephemerals[txn.session_id] = set()
                undo.append(lambda: self._forget_session(txn.session_id))
                return None
            case CloseSessionTxn():
                info = self.sessions.get(txn.session_id)
                if info is None:
                    raise SessionExpiredError(f"session {txn.session_id:#x} is not open")
                for path in sorted(self.ephemerals[txn.session_id], reverse=True):
                    self._delete(path, -1, False, zxid, events, undo)
                del self.sessions[txn.session_id]
                owned = self.ephemerals.pop(txn.session_id)
                undo.append(lambda: self._restore_session(txn.session_id, info, owned))
                return None
        return self._apply_op(txn, zxid, time_ms, events, undo)

    def _forget_session(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
        self.ephemerals.pop(session_id, None)

    def _restore_session(self, session_id: int, info: SessionInfo, owned: set[str]) -> None:
        self.sessions[session_id] = info
        self.ephemerals[session_id] = owned

    def _apply_op(self, op: Op, zxid: int, time_ms: int, events: list[WatchEvent],
                  undo: Undo) -> Any:
        match op:
            case CreateTxn():
                return self._create(op, zxid, time_ms, events, undo)
            case DeleteTxn():
                self._delete(validate_path(op.path), op.version, op.recursive, zxid, events,
                             undo)
                return None
            case SetTxn():
                node = self._node(op.path)
                self._check_version(op.path, node, op.version)
                if self._image is not None:
                    self._image.preserve(op.path, node)
                old = (node.data, node.version, node.mzxid, node.mtime)
                node.data, node.version, node.mzxid, node.mtime = (
                    op.data, node.version + 1, zxid, time_ms)
                undo.append(lambda: self._restore_data(node, old))
                events.append(WatchEvent("changed", op.path))
                return node.stat()
            case CheckTxn():
                self._check_version(op.path, self._node(op.path), op.version)
                return None
        raise BadArgumentsError(f"not an operation: {op!r}")

    @staticmethod
    def _restore_data(node: Node, old: tuple[bytes, int, int, int]) -> None:
        node.data, node.version, node.mzxid, node.mtime = old

    @staticmethod
    def _check_version(path: str, node: Node, version: int) -> None:
        if version != -1 and node.version != version:
            raise BadVersionError(f"{path} is at version {node.version}, expected {version}")

    def _create(self, op: CreateTxn, zxid: int, time_ms: int, events: list[WatchEvent],
                undo: Undo) -> str:
        path = validate_path(op.path)
        if path == "/":
            raise NodeExistsError("the root node always exists")
        if op.ephemeral_owner and op.ephemeral_owner not in self.sessions:
            raise SessionExpiredError(f"session {op.ephemeral_owner:#x} is not open")
        parent_path, name = split(path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            if not op.makepath:
                raise NoNodeError(f"parent {parent_path} of {path} does not exist")
            self._create(CreateTxn(parent_path, makepath=True), zxid, time_ms, events, undo)
            parent = self.nodes[parent_path]
        if parent.ephemeral_owner:
            raise NoChildrenForEphemeralsError(f"{parent_path} is ephemeral")
        if op.sequential:
            name = f"{name}{parent.cversion:010d}"
            path = join(parent_path, name)
        if path in self.nodes:
            raise NodeExistsError(f"node {path} already exists")
        if self._image is not None:
            self._image.preserve(parent_path, parent)
        self.nodes[path] = Node(op.data, zxid, zxid, zxid, time_ms, time_ms,
                                ephemeral_owner=op.ephemeral_owner)
        old_parent = (parent.cversion, parent.pzxid)
        parent.children.add(name)
        parent.cversion += 1
        parent.pzxid = zxid
        if op.ephemeral_owner:
            self.ephemerals[op.ephemeral_owner].add(path)
        undo.append(lambda: self._uncreate(path, parent, name, old_parent, op.ephemeral_owner))
        events.append(WatchEvent("created", path))
        events.append(WatchEvent("child", parent_path))
        return path

    def _uncreate(self, path: str, parent: Node, name: str, old: tuple[int, int],
                  owner: int) -> None:
        del self.nodes[path]
        parent.children.discard(name)
        parent.cversion, parent.pzxid = old
        if owner and owner in self.ephemerals:
            self.ephemerals[owner].discard(path)

    def _delete(self, path: str, version: int, recursive: bool, zxid: int,
                events: list[WatchEvent], undo: Undo) -> None:
        if path == "/":
            raise BadArgumentsError("the root node cannot be deleted")
        node = self._node(path)
        self._check_version(path, node, version)
        if node.children:
            if not recursive:
                raise NotEmptyError(f"{path} has {len(node.children)} children")
            for child in sorted(node.children):
                self._delete(join(path, child), -1, True, zxid, events, undo)
        parent_path, name = split(path)
        parent = self.nodes[parent_path]
        if self._image is not None:
            self._image.preserve(parent_path, parent)
        old_parent = (parent.cversion, parent.pzxid)
        del self.nodes[path]
        parent.children.discard(name)
        parent.cversion += 1
        parent.pzxid = zxid
        owner = node.ephemeral_owner
        if owner:
            self.ephemerals[owner].discard(path)
        undo.append(lambda: self._undelete(path, node, parent, name, old_parent))
        events.append(WatchEvent("deleted", path))
        events.append(WatchEvent("child", parent_path))

    def _undelete(self, path: str, node: Node, parent: Node, name: str,
                  old: tuple[int, int]) -> None:
        self.nodes[path] = node
        parent.children.add(name)
        parent.cversion, parent.pzxid = old
        if node.ephemeral_owner and node.ephemeral_owner in self.ephemerals:
            self.ephemerals[node.ephemeral_owner].add(path)

    # -- snapshots -----------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """A msgpack-ready image of the whole tree (children are implied by paths)."""
        return {
            "zxid": self.last_zxid,
            "nodes": [_row(p, n) for p, n in self.nodes.items()],
            "sessions": [[s, i.timeout_ms, i.password] for s, i in self.sessions.items()],
        }

    def freeze(self) -> "TreeImage":
        """Start a copy-on-write image of the tree as it is now, for a snapshot.

        Costs one C-level copy of the path -> node dict; the image's rows are read later,
        in another thread, while this tree keeps applying transactions: until ``thaw``, the
        tree saves a node's fields before it first changes them in place. One at a time."""
        if self._image is not None:
            raise RuntimeError("a snapshot image is already open")
        self._image = TreeImage(self.last_zxid, dict(self.nodes),
                                [[s, i.timeout_ms, i.password]
                                 for s, i in self.sessions.items()])
        return self._image

    def thaw(self, image: "TreeImage") -> None:
        """End copy-on-write for ``image`` (from the thread that applies transactions, once
        nothing reads the image any more); the image refuses to be read afterwards."""
        image.released = True
        if self._image is image:
            self._image = None

    @classmethod
    def load(cls, image: dict[str, Any]) -> "DataTree":
        tree = cls()
        tree.nodes = {}
        tree.last_zxid = int(image["zxid"])
        for s, timeout_ms, password in image["sessions"]:
            tree.sessions[s] = SessionInfo(timeout_ms, bytes(password))
            tree.ephemerals[s] = set()
        for p, data, czxid, mzxid, pzxid, ctime, mtime, version, cversion, owner in (
                image["nodes"]):
            tree.nodes[p] = Node(bytes(data), czxid, mzxid, pzxid, ctime, mtime, version,
                                 cversion, owner)
            if owner:
                tree.ephemerals.setdefault(owner, set()).add(p)
        for p in tree.nodes:
            if p != "/":
                parent, name = split(p)
                tree.nodes[parent].children.add(name)
        return tree

    def walk(self) -> Iterator[str]:
        return iter(sorted(self.nodes))
