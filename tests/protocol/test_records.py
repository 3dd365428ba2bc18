"""Record batch format: round trips, compression, CRC coverage, stamping."""

from __future__ import annotations

import pytest

from klamm.protocol.compression import Compression
from klamm.protocol.records import (CorruptBatch, build_batch, decode_records, iter_batches,
                                    read_header, set_log_append_time, stamp, validate_batch)


def records(n: int) -> list[list[object]]:
    return [[i, i * 10, b"k%d" % i if i % 2 else None, b"v" * i, (("h", b"1"),) if i == 3 else ()]
            for i in range(n)]


@pytest.mark.parametrize("codec", list(Compression))
def test_batch_round_trips_with_every_codec(codec: Compression) -> None:
    data = build_batch(records(20), 1000, 1190, compression=codec)
    header = validate_batch(data)
    assert header.records_count == 20 and header.compression is codec
    out = decode_records(data)
    assert [r.offset for r in out] == list(range(20))
    assert out[3].key == b"k3" and out[3].value == b"vvv" and out[3].headers == (("h", b"1"),)
    assert out[2].key is None and out[5].timestamp == 1050


def test_crc_covers_records_and_attributes() -> None:
    data = bytearray(build_batch(records(5), 0, 0))
    for pos in (21, 30, len(data) - 1):
        corrupt = bytearray(data)
        corrupt[pos] ^= 0x01
        with pytest.raises(CorruptBatch):
            validate_batch(corrupt)


def test_stamping_offset_and_epoch_keeps_crc_valid() -> None:
    data = bytearray(build_batch(records(5), 0, 0))
    stamp(data, 0, 1_000_000, 7)
    header = validate_batch(data)
    assert header.base_offset == 1_000_000 and header.leader_epoch == 7
    assert decode_records(data)[4].offset == 1_000_004


def test_log_append_time_rewrites_timestamps_and_crc() -> None:
    data = bytearray(build_batch(records(3), 5, 25))
    set_log_append_time(data, 0, len(data), 99_999)
    header = validate_batch(data)
    assert header.log_append_time and header.max_timestamp == 99_999
    assert {r.timestamp for r in decode_records(data)} == {99_999}


def test_iter_batches_skips_a_trailing_partial_batch() -> None:
    a, b = build_batch(records(2), 0, 0), build_batch(records(3), 0, 0)
    stream = a + b + b[:30]
    assert [h.records_count for h, _ in iter_batches(stream)] == [2, 3]


def test_truncated_or_foreign_headers_are_corrupt() -> None:
    data = build_batch(records(1), 0, 0)
    with pytest.raises(CorruptBatch):
        read_header(data[:40])
    foreign = bytearray(data)
    foreign[16] = 99
    with pytest.raises(CorruptBatch, match="magic"):
        read_header(foreign)
    with pytest.raises(CorruptBatch):
        validate_batch(data[:-1])


def test_garbage_records_section_is_reported_as_corrupt() -> None:
    from klamm.protocol.records import HEADER_SIZE

    plain = bytearray(build_batch([[0, 0, None, b"x", ()]], 0, 0))
    plain[HEADER_SIZE] = 0xC1  # never valid msgpack; decode must fail cleanly without a CRC
    with pytest.raises(CorruptBatch, match="msgpack"):
        decode_records(plain)
    packed = bytearray(build_batch([[0, 0, None, b"x", ()]], 0, 0, compression=Compression.ZSTD))
    packed[HEADER_SIZE] ^= 0xFF  # the zstd frame magic
    with pytest.raises(CorruptBatch, match="decompress"):
        decode_records(packed)


def test_a_section_is_never_inflated_past_its_limit_whatever_it_declares() -> None:
    """Before, a 2 KB zstd batch declaring a huge size was inflated in full (1.2 GB)."""
    from klamm.protocol.compression import CompressionError, compress, decompress
    from tests.support.batches import zstd_bomb

    bomb = zstd_bomb(300 << 20)
    assert len(bomb) < 64 * 1024
    with pytest.raises(CompressionError, match="inflates past"):
        decompress(Compression.ZSTD, bomb)
    for codec in (Compression.GZIP, Compression.LZ4):
        with pytest.raises(CompressionError, match="inflates past"):
            decompress(codec, compress(codec, bytes(64 << 20)), limit=1 << 20)
    assert decompress(Compression.ZSTD, compress(Compression.ZSTD, b"ok" * 1000)) == b"ok" * 1000


def test_check_records_compares_the_records_with_their_header() -> None:
    import msgpack

    from klamm.protocol.records import check_records, declared_record_count
    from tests.support.batches import forged_batch

    two = msgpack.packb([[0, 0, b"k", b"v", ()], [1, 0, b"k", b"w", ()]])
    assert declared_record_count(two, 0) == 2
    assert declared_record_count(msgpack.packb([[0, 0, None, b"", ()]] * 300), 0) == 300
    fine = forged_batch(two, count=2)
    check_records(fine, 0, validate_batch(fine), keys_required=True)
    lying = forged_batch(two, count=3)
    with pytest.raises(CorruptBatch, match="says 3 records but it holds 2"):
        check_records(lying, 0, validate_batch(lying), keys_required=False)
    keyless = forged_batch(msgpack.packb([[0, 0, None, b"v", ()]]), count=1)
    with pytest.raises(CorruptBatch, match="no key"):
        check_records(keyless, 0, validate_batch(keyless), keys_required=True)
    check_records(keyless, 0, validate_batch(keyless), keys_required=False)
    skewed = forged_batch(msgpack.packb([[5, 0, b"k", b"v", ()]]), count=1)
    with pytest.raises(CorruptBatch, match="record 0"):
        check_records(skewed, 0, validate_batch(skewed), keys_required=False)
