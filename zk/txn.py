"""Transactions: the only way the tree changes, and what the log stores.

A transaction is a deterministic command: applying the same sequence of transactions (each
with its zxid and time) to the same tree yields the same tree and the same results on every
replica. Ordering and storing them is someone else's job (``txnlog``, later a quorum); the
tree only applies them (``tree.DataTree.apply``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class CreateTxn:
    path: str
    data: bytes = b""
    ephemeral_owner: int = 0
    sequential: bool = False
    makepath: bool = False


@dataclass(frozen=True, slots=True)
class DeleteTxn:
    path: str
    version: int = -1
    recursive: bool = False


@dataclass(frozen=True, slots=True)
class SetTxn:
    path: str
    data: bytes
    version: int = -1


@dataclass(frozen=True, slots=True)
class CheckTxn:
    path: str
    version: int = -1


@dataclass(frozen=True, slots=True)
class MultiTxn:
    ops: tuple["CreateTxn | DeleteTxn | SetTxn | CheckTxn", ...]


@dataclass(frozen=True, slots=True)
class CreateSessionTxn:
    session_id: int
    timeout_ms: int
    password: bytes


@dataclass(frozen=True, slots=True)
class CloseSessionTxn:
    session_id: int


Op = Union[CreateTxn, DeleteTxn, SetTxn, CheckTxn]
Txn = Union[CreateTxn, DeleteTxn, SetTxn, CheckTxn, MultiTxn, CreateSessionTxn, CloseSessionTxn]


def encode_txn(txn: Txn) -> list[Any]:
    """A msgpack-ready list; ``decode_txn(encode_txn(t)) == t``."""
    match txn:
        case CreateTxn():
            return ["create", txn.path, txn.data, txn.ephemeral_owner, txn.sequential,
                    txn.makepath]
        case DeleteTxn():
            return ["delete", txn.path, txn.version, txn.recursive]
        case SetTxn():
            return ["set", txn.path, txn.data, txn.version]
        case CheckTxn():
            return ["check", txn.path, txn.version]
        case MultiTxn():
            return ["multi", [encode_txn(op) for op in txn.ops]]
        case CreateSessionTxn():
            return ["session", txn.session_id, txn.timeout_ms, txn.password]
        case CloseSessionTxn():
            return ["close", txn.session_id]
    raise TypeError(f"not a transaction: {txn!r}")


def decode_txn(obj: Any) -> Txn:
    try:
        kind = obj[0]
        if kind == "create":
            return CreateTxn(obj[1], bytes(obj[2]), int(obj[3]), bool(obj[4]), bool(obj[5]))
        if kind == "delete":
            return DeleteTxn(obj[1], int(obj[2]), bool(obj[3]))
        if kind == "set":
            return SetTxn(obj[1], bytes(obj[2]), int(obj[3]))
        if kind == "check":
            return CheckTxn(obj[1], int(obj[2]))
        if kind == "multi":
            ops = tuple(decode_txn(o) for o in obj[1])
            if not all(isinstance(o, (CreateTxn, DeleteTxn, SetTxn, CheckTxn)) for o in ops):
                raise ValueError("nested multi")
            return MultiTxn(ops)  # type: ignore[arg-type]
        if kind == "session":
            return CreateSessionTxn(int(obj[1]), int(obj[2]), bytes(obj[3]))
        if kind == "close":
            return CloseSessionTxn(int(obj[1]))
    except (IndexError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"malformed transaction: {exc}") from None
    raise InvalidRequestError(f"unknown transaction kind {obj[0] if obj else None!r}")
