"""FrameReader: frames read straight into handed-out buffers, large ones without a copy."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable

import pytest

from klamm.protocol.frame import FrameError, FrameReader, FrameTooLarge, encode_response, \
    parse_response


def feed(reader: FrameReader, data: bytes, chunks: Iterable[int]) -> list[tuple[int, dict, bytes]]:
    """Deliver ``data`` as a socket would: each read fills at most the buffer offered."""
    out = []
    pos = 0
    sizes = iter(chunks)
    while pos < len(data):
        buf = reader.get_buffer()
        assert len(buf) > 0
        n = min(len(buf), next(sizes, 1 << 30), len(data) - pos)
        buf[:n] = data[pos:pos + n]
        pos += n
        for meta, payload in reader.buffer_updated(n):
            r = parse_response(meta, payload)
            out.append((r.correlation_id, r.body, bytes(r.payload)))
    return out


def frames(sizes: list[int]) -> tuple[bytes, list[tuple[int, dict, bytes]]]:
    expected = [(i, {"i": i}, bytes([i % 251]) * n) for i, n in enumerate(sizes)]
    return b"".join(encode_response(c, b, p) for c, b, p in expected), expected


def test_frames_split_at_every_byte_reassemble() -> None:
    data, expected = frames([0, 3, 40, 2000])
    reader = FrameReader(scratch_bytes=2048, direct_threshold=512)
    assert feed(reader, data, iter(lambda: 1, None)) == expected


@pytest.mark.parametrize("chunk", [7, 4096, 1 << 20])
def test_small_and_large_frames_come_out_intact_whatever_the_read_sizes(chunk: int) -> None:
    data, expected = frames([0, 10, 70_000, 5, 300_000, 64 * 1024, 1])
    reader = FrameReader(scratch_bytes=128 * 1024, direct_threshold=32 * 1024)
    assert feed(reader, data, iter(lambda: chunk, None)) == expected
    assert reader.buffered == 0


def test_random_read_sizes_keep_frame_boundaries() -> None:
    rng = random.Random(7)
    data, expected = frames([rng.choice([0, 3, 900, 40_000, 200_000]) for _ in range(60)])
    reader = FrameReader(scratch_bytes=64 * 1024, direct_threshold=16 * 1024)
    assert feed(reader, data, iter(lambda: rng.randint(1, 90_000), None)) == expected


def test_a_large_frame_is_read_into_its_own_buffer_and_never_copied() -> None:
    data, _ = frames([500_000])
    reader = FrameReader(scratch_bytes=64 * 1024, direct_threshold=16 * 1024)
    first = reader.get_buffer()
    first[:4096] = data[:4096]
    assert reader.buffer_updated(4096) == []
    direct = reader.get_buffer()
    assert len(direct) == len(data) - 4096  # exactly the rest of the frame
    direct[:] = data[4096:]
    [(meta, payload)] = reader.buffer_updated(len(direct))
    assert payload.obj is direct.obj  # the payload is a view of the buffer the socket filled


def test_oversized_frame_is_refused_before_allocating() -> None:
    reader = FrameReader(max_frame_bytes=1024)
    buf = reader.get_buffer()
    buf[:8] = struct.pack(">II", 10**9, 0)
    with pytest.raises(FrameTooLarge):
        reader.buffer_updated(8)


def test_metadata_longer_than_the_frame_is_refused() -> None:
    reader = FrameReader()
    buf = reader.get_buffer()
    buf[:10] = struct.pack(">II", 6, 50) + b"xx"
    with pytest.raises(FrameError):
        reader.buffer_updated(10)


def _receive(reader: FrameReader, data: bytes) -> list[memoryview]:
    """Deliver ``data``; return the payload views themselves (not copies)."""
    out = []
    pos = 0
    while pos < len(data):
        buf = reader.get_buffer()
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos:pos + n]
        pos += n
        out += [payload for _, payload in reader.buffer_updated(n)]
    return out


def test_large_frame_buffers_are_reused_only_once_nothing_views_them() -> None:
    reader = FrameReader(scratch_bytes=4096, direct_threshold=1024)
    [first] = _receive(reader, encode_response(1, {}, b"a" * 50_000))
    [second] = _receive(reader, encode_response(2, {}, b"b" * 40_000))
    # The first payload is still held: the second frame must not have been written over it.
    assert bytes(first) == b"a" * 50_000 and bytes(second) == b"b" * 40_000
    first_buffer, second_buffer = first.obj, second.obj
    assert first_buffer is not second_buffer
    del first, second  # the application is done with both
    [third] = _receive(reader, encode_response(3, {}, b"c" * 45_000))
    assert third.obj is first_buffer or third.obj is second_buffer
    assert bytes(third) == b"c" * 45_000
    [fourth] = _receive(reader, encode_response(4, {}, b"d" * 60_000))  # bigger than both
    assert fourth.obj is not first_buffer and fourth.obj is not second_buffer
    assert bytes(third) == b"c" * 45_000 and bytes(fourth) == b"d" * 60_000


def test_spare_buffers_nobody_views_are_let_go_after_a_run_of_small_frames() -> None:
    reader = FrameReader(scratch_bytes=4096, direct_threshold=1024, spare_idle_reads=50)
    [held] = _receive(reader, encode_response(1, {}, b"a" * 50_000))
    [dropped] = _receive(reader, encode_response(2, {}, b"b" * 40_000))
    del dropped
    assert reader.spare_bytes >= 90_000
    small = encode_response(3, {}, b"s" * 10)
    for _ in range(49):
        _receive(reader, small)
    assert reader.spare_bytes >= 90_000  # not idle for long enough yet
    _receive(reader, small)
    # The unviewed one is gone; the one the application still holds is kept (and intact).
    assert 50_000 <= reader.spare_bytes < 90_000
    assert bytes(held) == b"a" * 50_000
    del held
    for _ in range(50):
        _receive(reader, small)
    assert reader.spare_bytes == 0
    [again] = _receive(reader, encode_response(4, {}, b"c" * 30_000))  # allocates afresh
    assert bytes(again) == b"c" * 30_000 and reader.spare_bytes >= 30_000


class _Budget:
    def __init__(self, grant: bool) -> None:
        self.grant = grant
        self.reserved = 0
        self.asked: list[int] = []

    def try_reserve(self, nbytes: int) -> bool:
        self.asked.append(nbytes)
        if self.grant:
            self.reserved += nbytes
        return self.grant

    def release(self, nbytes: int) -> None:
        self.reserved -= nbytes


def test_a_large_frame_waits_for_its_budget_then_goes_on_from_where_it_stopped() -> None:
    budget = _Budget(grant=False)
    reader = FrameReader(scratch_bytes=4096, direct_threshold=1024, budget=budget)
    first = encode_response(1, {}, b"x" * 50_000)
    data = first + encode_response(2, {}, b"y")
    buf = reader.get_buffer()
    buf[:3000] = data[:3000]
    assert reader.buffer_updated(3000) == [] and reader.blocked
    assert budget.asked == [len(first) - 8]  # the declared size: metadata and payload
    budget.grant = True
    assert reader.buffer_updated(0) == [] and not reader.blocked  # now in its own buffer
    assert budget.reserved == budget.asked[-1]
    got = _receive(reader, data[3000:])
    assert [bytes(p) for p in got] == [b"x" * 50_000, b"y"]
    assert budget.reserved == 0  # given back when the frame was complete


def test_an_abandoned_frame_gives_its_reservation_back() -> None:
    budget = _Budget(grant=True)
    reader = FrameReader(scratch_bytes=4096, direct_threshold=1024, budget=budget)
    buf = reader.get_buffer()
    buf[:8] = struct.pack(">II", 10_000_004, 0)
    assert reader.buffer_updated(8) == [] and budget.reserved == 10_000_000
    reader.abandon()
    assert budget.reserved == 0


def _rss() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))


def test_a_declared_size_costs_nothing_until_the_bytes_arrive() -> None:
    """A 9-byte header claiming 100 MB used to allocate (and zero) 100 MB at once."""
    readers = [FrameReader(scratch_bytes=4096, direct_threshold=1024) for _ in range(5)]
    before = _rss()
    for reader in readers:
        buf = reader.get_buffer()
        buf[:9] = struct.pack(">II", 100_000_004, 0) + b"x"
        assert reader.buffer_updated(9) == [] and reader.buffered == 1
    assert _rss() - before < 20 << 20  # five 100 MB claims, a few pages of memory


def test_buffers_over_the_spare_limit_are_not_kept() -> None:
    reader = FrameReader(scratch_bytes=4096, direct_threshold=1024, spare_max_bytes=20_000)
    [big] = _receive(reader, encode_response(1, {}, b"a" * 50_000))
    assert bytes(big) == b"a" * 50_000 and reader.spare_bytes == 0
    [small] = _receive(reader, encode_response(2, {}, b"b" * 10_000))
    assert bytes(small) == b"b" * 10_000 and reader.spare_bytes >= 10_000
