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
    # epochs, ids and partition indexes are int32, as Kafka sizes them; other ints int64
    (lambda b: b["partitions"][0].update(leader_epoch=2**31),
     "partitions[0].leader_epoch: 2147483648 is out of range for int32"),
    (lambda b: b.update(controller_epoch=2**63 - 1), "controller_epoch: 9223372036854775807 is "
                                                     "out of range for int32"),
    (lambda b: b["partitions"][0].update(partition_epoch=-2**31 - 1),
     "partition_epoch: -2147483649 is out of range for int32"),
    (lambda b: b["partitions"][0]["replicas"].append(2**64 - 1), "replicas[3]: "),
    (lambda b: b.update(broker_epoch=2**63), "broker_epoch: 9223372036854775808 is out of "
                                             "range for int64"),
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


def test_the_edges_of_each_integer_range_are_accepted() -> None:
    body = to_wire(_request())
    body.update(controller_epoch=2**31 - 1, broker_epoch=-2**63)
    body["partitions"][0].update(leader_epoch=-2**31, partition=2**31 - 1)
    req = from_wire(LeaderAndIsrRequest, body)
    assert (req.controller_epoch, req.broker_epoch) == (2**31 - 1, -2**63)
    assert (req.partitions[0].leader_epoch, req.partitions[0].partition) == (-2**31, 2**31 - 1)
