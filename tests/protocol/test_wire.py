import msgpack
import pytest

from klamm.protocol.cluster_api import (AlterPartitionResponse, BrokerEndpoint,
                                        LeaderAndIsrPartition, LeaderAndIsrRequest,
                                        UpdateMetadataRequest)
from klamm.protocol.frame import pack, unpack
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire


def _request() -> LeaderAndIsrRequest:
    return LeaderAndIsrRequest(
        controller_id=1, controller_epoch=3, broker_epoch=77,
        partitions=[LeaderAndIsrPartition("orders", 0, "abc", 2, 5, [2, 3], 9, [2, 3, 1])],
        leaders=[BrokerEndpoint(2, "127.0.0.1", 9093, None)])


def test_a_message_survives_msgpack_both_ways() -> None:
    req = _request()
    assert from_wire(LeaderAndIsrRequest, unpack(pack(to_wire(req)))) == req


def test_fields_with_defaults_may_be_absent_and_unknown_keys_are_ignored() -> None:
    body = to_wire(_request())
    del body["full"]
    body["added_by_a_newer_peer"] = 1
    assert from_wire(LeaderAndIsrRequest, body).full is False
    assert from_wire(AlterPartitionResponse, {"error_code": 41}).partitions == []


@pytest.mark.parametrize("mutate, where", [
    (lambda b: b.pop("controller_epoch"), "LeaderAndIsrRequest.controller_epoch: missing"),
    (lambda b: b.update(controller_epoch="3"), "controller_epoch: expected int, got str"),
    (lambda b: b.update(controller_epoch=True), "controller_epoch: expected int, got bool"),
    (lambda b: b["partitions"][0]["isr"].append("x"), "partitions[0].isr[2]: expected int"),
    (lambda b: b.update(partitions={}), "partitions: expected a list, got dict"),
    (lambda b: b["leaders"][0].update(rack=5), "leaders[0].rack: expected str, got int"),
])
def test_malformed_bodies_name_the_offending_field(mutate, where) -> None:  # type: ignore[no-untyped-def]
    body = to_wire(_request())
    mutate(body)
    with pytest.raises(MalformedMessage) as err:
        from_wire(LeaderAndIsrRequest, body)
    assert where in str(err.value)


def test_a_body_that_is_not_a_map_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="expected a map, got list"):
        from_wire(UpdateMetadataRequest, msgpack.unpackb(msgpack.packb([1, 2])))
