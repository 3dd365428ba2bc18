"""Frame codec: round trips, incremental decoding, and refusal of hostile frames."""

from __future__ import annotations

import struct

import pytest

from klamm.protocol.frame import (FrameDecoder, FrameError, FrameTooLarge, RequestHeader,
                                  encode_request, encode_response, parse_request,
                                  parse_response)


def test_request_round_trips_with_payload() -> None:
    header = RequestHeader(0, 0, 7, "client-a")
    data = encode_request(header, {"acks": 1}, b"\x00raw")
    [(meta, payload)] = FrameDecoder().feed(data)
    req = parse_request(meta, payload)
    assert req.header == header and req.body == {"acks": 1} and bytes(req.payload) == b"\x00raw"


def test_decoder_reassembles_frames_split_at_every_byte() -> None:
    data = b"".join(encode_response(i, {"i": i}, b"p" * i) for i in range(5))
    dec = FrameDecoder()
    out = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i:i + 1]))
    got = [parse_response(m, p) for m, p in out]
    assert [(r.correlation_id, r.body["i"], len(r.payload)) for r in got] == \
        [(i, i, i) for i in range(5)]
    assert dec.buffered == 0


def test_oversized_frame_is_refused_from_its_prefix_alone() -> None:
    dec = FrameDecoder(max_frame_bytes=1024)
    with pytest.raises(FrameTooLarge) as info:
        dec.feed(struct.pack(">II", 1025, 0))
    assert "socket.request.max.bytes" in str(info.value)


def test_metadata_longer_than_frame_is_refused() -> None:
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">II", 6, 50) + b"xx")


@pytest.mark.parametrize("meta", [b"\xc1", b"\x93\x01\x02\x03", b"\x95\x01\x02\x03\x04\x05"])
def test_malformed_request_metadata_raises_frame_error(meta: bytes) -> None:
    frame = struct.pack(">II", 4 + len(meta), len(meta)) + meta
    [(m, p)] = FrameDecoder().feed(frame)
    with pytest.raises(FrameError):
        parse_request(m, p)
