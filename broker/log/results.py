"""Values the storage layer hands back to the server: what was appended, what to send."""

from __future__ import annotations

from typing import NamedTuple


class FileRegion(NamedTuple):
    """A byte range of a segment file to sendfile.

    ``fd`` is a ``dup()`` of the segment's ``.log`` descriptor and is owned by the caller, who
    must close it; it stays valid even if the segment is deleted or compacted meanwhile.
    """

    fd: int
    position: int
    size: int


class FetchData(NamedTuple):
    regions: list[FileRegion]  # whole batches only, in offset order
    size: int  # total bytes of regions
    high_watermark: int
    log_start_offset: int


class AppendInfo(NamedTuple):
    base_offset: int  # offset of the first record appended
    last_offset: int
    log_append_time: int  # ms, or -1 when the topic uses CreateTime
    log_start_offset: int
    batches: int
