"""Snapshots: a CRC-checked image of the tree at one zxid, so restart replays a short log.

File ``snapshot.<zxid, 20 digits>`` = ``b"KZS1"``, u32 crc32c(body), msgpack body (the
tree's ``dump()``). Written to a temporary name, fsynced, then renamed, so a crash leaves
either the old set of snapshots or the new one; a snapshot that fails its check is skipped
and the previous one used.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import crc32c
import msgpack

from .files import fsync_dir, numbered_files

if TYPE_CHECKING:
    from .tree import TreeImage

log = logging.getLogger(__name__)

MAGIC = b"KZS1"
CRC = struct.Struct(">I")
PREFIX = "snapshot."
CHUNK_ROWS = 1024


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    return numbered_files(directory, PREFIX)


def encode_snapshot(image: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(image, use_bin_type=True)
    return MAGIC + CRC.pack(crc32c.crc32c(body)) + body


def _array_items(packed: bytes, count: int) -> bytes:
    """The items of a msgpack array of ``count`` items, without its header (msgpack spec:
    fixarray up to 15 items, array 16 up to 65535, array 32 beyond)."""
    return packed[1 if count < 16 else 3 if count < 0x10000 else 5:]


def encode_image(image: "TreeImage", chunk_rows: int = CHUNK_ROWS) -> list[bytes]:
    """``encode_snapshot(image as dump())`` as a list of pieces, built a chunk of rows at a
    time: run in a thread, it lets the event loop take the GIL between chunks, and it never
    holds more than one chunk of row objects (little for the garbage collector to chase).
    Raises RuntimeError when the image was released before every row was read."""
    packer = msgpack.Packer(use_bin_type=True)
    body = [packer.pack_map_header(3), packer.pack("zxid"), packer.pack(image.zxid),
            packer.pack("nodes"), packer.pack_array_header(len(image.nodes))]
    rows = image.rows()
    while chunk := list(itertools.islice(rows, chunk_rows)):
        body.append(_array_items(packer.pack(chunk), len(chunk)))
    if image.released:
        raise RuntimeError("snapshot image released while it was being read")
    body += [packer.pack("sessions"), packer.pack(image.sessions)]
    crc = 0
    for piece in body:
        crc = crc32c.crc32c(piece, crc)
    return [MAGIC + CRC.pack(crc), *body]


def decode_snapshot(data: bytes) -> dict[str, Any]:
    """Raises ValueError when the bytes are not an intact snapshot."""
    if data[:4] != MAGIC or len(data) < 8:
        raise ValueError("not a snapshot file")
    (crc,) = CRC.unpack_from(data, 4)
    body = data[8:]
    if crc32c.crc32c(body) != crc:
        raise ValueError("snapshot checksum mismatch")
    image: dict[str, Any] = msgpack.unpackb(body, raw=False, use_list=True,
                                            strict_map_key=False)
    return image


def write_snapshot(directory: Path, zxid: int, data: bytes | Sequence[bytes],
                   keep: int = 2) -> Path:
    """Durably write ``data`` (from ``encode_snapshot``, or the pieces from
    ``encode_image``) as the snapshot at ``zxid``; older snapshots beyond the newest
    ``keep`` are removed."""
    final = directory / f"{PREFIX}{zxid:020d}"
    tmp = directory / f".{final.name}.tmp"
    with open(tmp, "wb") as f:
        for piece in [data] if isinstance(data, bytes) else data:
            f.write(piece)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fsync_dir(directory)
    for _, old in snapshot_files(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def load_latest(directory: Path) -> dict[str, Any] | None:
    """The newest intact snapshot's image, or None when there is none."""
    for _, path in reversed(snapshot_files(directory)):
        try:
            return decode_snapshot(path.read_bytes())
        except (ValueError, OSError, msgpack.UnpackException) as exc:
            log.warning("snapshot %s unusable (%s); trying an older one", path.name, exc)
    return None
