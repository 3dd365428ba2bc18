"""Snapshots: a CRC-checked image of the tree at one zxid, so restart replays a short log.

File ``snapshot.<zxid, 20 digits>`` = ``b"KZS1"``, u32 crc32c(body), msgpack body (the
tree's ``dump()``). Written to a temporary name, fsynced, then renamed, so a crash leaves
either the old set of snapshots or the new one; a snapshot that fails its check is skipped
and the previous one used.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Any

import crc32c
import msgpack

from .txnlog import fsync_dir

log = logging.getLogger(__name__)

MAGIC = b"KZS1"
CRC = struct.Struct(">I")
PREFIX = "snapshot."


def snapshot_files(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.glob(PREFIX + "*"):
        suffix = p.name[len(PREFIX):]
        if suffix.isdigit():
            out.append((int(suffix), p))
    return sorted(out)


def encode_snapshot(image: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(image, use_bin_type=True)
    return MAGIC + CRC.pack(crc32c.crc32c(body)) + body


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


def write_snapshot(directory: Path, zxid: int, data: bytes, keep: int = 2) -> Path:
    """Durably write ``data`` (from ``encode_snapshot``) as the snapshot at ``zxid``;
    older snapshots beyond the newest ``keep`` are removed."""
    final = directory / f"{PREFIX}{zxid:020d}"
    tmp = directory / f".{final.name}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
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
