"""Fetched bytes -> ConsumerRecords: decoding, positions, partial tails, corruption."""

from __future__ import annotations

import json

import pytest

from klamm.client.consumer.records import (PartitionRecords, RecordDeserializationError,
                                           scan_batches)
from klamm.client.structs import TopicPartition
from klamm.protocol.compression import Compression
from klamm.protocol.errors import CorruptMessageError
from klamm.protocol.records import CRC_START, build_batch

TP = TopicPartition("t", 3)


def batch(base: int, values: list[bytes | None], *, ts: int = 1000, ts_step: int = 0,
          key: bytes | None = None, headers: tuple = (), **kw: object) -> bytes:
    recs = [[i, i * ts_step, key, v, headers] for i, v in enumerate(values)]
    return build_batch(recs, ts, ts + ts_step * (len(values) - 1), base_offset=base,
                       **kw)  # type: ignore[arg-type]


def records_of(data: bytes, position: int = 0, **kw: object) -> PartitionRecords:
    view = memoryview(data)
    positions, next_offset, error = scan_batches(view, TP)
    return PartitionRecords(TP, 0, view, positions, next_offset, error=error,
                            **kw)  # type: ignore[arg-type]


def take_all(part: PartitionRecords, position: int = 0, step: int = 1000) -> list:
    out: list = []
    while not part.exhausted:
        got = part.take(step, position)
        if got:
            position = got[-1].offset + 1
        out += got
    return out


def test_records_carry_partition_offsets_timestamps_keys_and_headers() -> None:
    data = batch(10, [b"a", b"b", None], ts=5000, ts_step=7, key=b"k",
                 headers=(("h", b"1"),))
    recs = take_all(records_of(data))
    assert [(r.topic, r.partition, r.offset, r.timestamp, r.timestamp_type) for r in recs] == [
        ("t", 3, 10, 5000, 0), ("t", 3, 11, 5007, 0), ("t", 3, 12, 5014, 0)]
    assert [r.value for r in recs] == [b"a", b"b", None]
    assert all(r.key == b"k" and r.headers == (("h", b"1"),) for r in recs)


def test_log_append_time_batches_give_every_record_the_broker_time() -> None:
    data = batch(0, [b"x", b"y"], ts=1, ts_step=1, log_append_time=True)
    recs = take_all(records_of(data))
    assert {(r.timestamp, r.timestamp_type) for r in recs} == {(2, 1)}


def test_a_record_timestamped_before_the_first_keeps_its_own_timestamp() -> None:
    # What the producer builds for send(ts=100), send(ts=90), send(ts=100): the batch's
    # first and max timestamps are equal, yet the middle record is older.
    data = build_batch([[0, 0, None, b"a", ()], [1, -10, None, b"b", ()],
                        [2, 0, None, b"c", ()]], 100, 100)
    assert [r.timestamp for r in take_all(records_of(data))] == [100, 90, 100]


def test_records_that_are_not_arrays_are_reported_as_corrupt() -> None:
    data = build_batch([{"offset": 0}], 100, 100)  # type: ignore[list-item]
    with pytest.raises(CorruptMessageError, match="t-3 batch at offset 0"):
        take_all(records_of(data))


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.LZ4, Compression.ZSTD])
def test_compressed_batches_decode(codec: Compression) -> None:
    values = [b"v%d" % i * 20 for i in range(300)]
    data = batch(100, values[:150], compression=codec) + batch(250, values[150:],
                                                               compression=codec)
    recs = take_all(records_of(data), step=64)
    assert [r.value for r in recs] == values
    assert [r.offset for r in recs] == list(range(100, 400))


def test_records_before_the_position_inside_the_first_batch_are_skipped() -> None:
    data = batch(0, [b"%d" % i for i in range(10)]) + batch(10, [b"10", b"11"])
    part = records_of(data)
    assert [r.offset for r in part.take(100, 7)] == [7, 8, 9, 10, 11]
    assert part.exhausted and part.next_offset == 12


def test_take_respects_max_records_across_batches() -> None:
    data = b"".join(batch(b, [b"."] * 5) for b in (0, 5, 10))
    part = records_of(data)
    sizes = []
    position = 0
    while not part.exhausted:
        got = part.take(4, position)
        position = got[-1].offset + 1
        sizes.append(len(got))
    assert sizes == [4, 4, 4, 3]


def test_a_trailing_partial_batch_is_ignored_and_fetched_again() -> None:
    whole = batch(0, [b"a", b"b"])
    cut = batch(2, [b"c"])[:-5]
    positions, next_offset, error = scan_batches(memoryview(whole + cut), TP)
    assert positions == [0] and next_offset == 2 and error is None
    assert [r.value for r in take_all(records_of(whole + cut))] == [b"a", b"b"]
    assert scan_batches(memoryview(cut), TP) == ([], -1, None)


def test_a_corrupt_batch_raises_after_the_records_before_it() -> None:
    good = batch(0, [b"a", b"b"])
    bad = bytearray(batch(2, [b"c", b"d"]))
    bad[-1] ^= 0xFF
    part = records_of(good + bytes(bad))
    assert [r.value for r in part.take(100, 0)] == [b"a", b"b"]
    with pytest.raises(CorruptMessageError, match=r"t-3 batch at offset 2: CRC mismatch"):
        part.take(100, 2)


def test_crc_checks_can_be_turned_off_but_undecodable_records_still_raise() -> None:
    data = bytearray(batch(0, [b"abc"]))
    data[CRC_START] ^= 0x01  # attributes byte: still codec NONE, CRC now wrong
    assert [r.value for r in take_all(records_of(bytes(data), check_crcs=False))] == [b"abc"]
    garbage = bytearray(batch(0, [b"abc"]))
    garbage[61:] = b"\xc1" * (len(garbage) - 61)  # 0xc1 is never valid msgpack
    with pytest.raises(CorruptMessageError, match="do not decode"):
        records_of(bytes(garbage), check_crcs=False).take(10, 0)


def test_an_impossible_header_stops_framing_after_the_good_batches() -> None:
    good = batch(0, [b"a"])
    bad = bytearray(batch(1, [b"b"]))
    bad[16] = 99  # magic
    part = records_of(good + bytes(bad))
    assert [r.value for r in part.take(10, 0)] == [b"a"]
    with pytest.raises(CorruptMessageError, match="magic 99"):
        part.take(10, 1)


def test_deserializers_apply_and_a_failure_names_the_offset_after_earlier_records() -> None:
    data = batch(0, [b'{"n": 1}', b"not json", b'{"n": 3}'], key=b"k")
    part = records_of(data, key_deserializer=bytes.decode, value_deserializer=json.loads)
    got = part.take(10, 0)
    assert [(r.key, r.value) for r in got] == [("k", {"n": 1})]
    with pytest.raises(RecordDeserializationError, match="offset 1.*seek to 2") as info:
        part.take(10, 1)
    assert info.value.offset == 1 and info.value.tp == TP


def test_null_values_skip_the_deserializer() -> None:
    part = records_of(batch(0, [None, b"1"]), value_deserializer=int)
    assert [r.value for r in part.take(10, 0)] == [None, 1]


def test_handed_out_lists_are_not_shared_with_the_decoder() -> None:
    part = records_of(batch(0, [b"a", b"b"]) + batch(2, [b"c"]))
    first = part.take(2, 0)
    first.append("junk")  # the application owns the list it got
    assert [r.value for r in part.take(10, 2)] == [b"c"]
    assert part.exhausted
