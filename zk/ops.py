"""Operations of a ``multi`` transaction, as the client builds them (paths before chroot)."""

from __future__ import annotations

from typing import NamedTuple, Union


class Create(NamedTuple):
    path: str
    data: bytes = b""
    ephemeral: bool = False
    sequential: bool = False
    makepath: bool = False


class Delete(NamedTuple):
    path: str
    version: int = -1
    recursive: bool = False


class SetData(NamedTuple):
    path: str
    data: bytes
    version: int = -1


class Check(NamedTuple):
    path: str
    version: int


MultiOp = Union[Create, Delete, SetData, Check]
