"""Request handlers, one module per API family, and the dispatch table that versions them.

Each family is an object built with the narrow parts of the broker it uses (the replica
manager, the metadata cache, the topic admin, the controller), never the whole server. A
handler takes a request and returns a ``Reply`` when it can answer at once, an awaitable of
one when it must wait (a coordination write, an fsync), a ``PendingReply`` that an event fills
(long poll, acks=all), or None when no answer is due (acks=0). Handlers validate their body by
reading it: a missing key or a wrong type raises, and the dispatcher turns that into
INVALID_REQUEST for this request only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from klamm.protocol.api import ApiKey
from klamm.protocol.frame import Request

from ..reply import HandlerResult, Reply
from .admin import AdminApi
from .cluster import ControllerApi, ControllerEpochGuard, ControllerRequestsApi
from .fetch import FetchApi
from .metadata import MetadataApi
from .offsets import OffsetsApi
from .produce import ProduceApi

if TYPE_CHECKING:
    from ..server import BrokerServer

Handler = Callable[[Request], HandlerResult]


class ApiSpec(NamedTuple):
    handler: Handler
    min_version: int
    max_version: int


def build_apis(server: "BrokerServer") -> dict[int, ApiSpec]:
    """The dispatch table of one broker."""
    replicas = server.replicas
    produce = ProduceApi(replicas, server.metrics, server.spawn)
    fetch = FetchApi(replicas, server.metrics, lambda: server.stopping, server.fetch_fds)
    offsets = OffsetsApi(replicas)
    assert server.logs is not None, "the apis are built once the logs are loaded"
    metadata = MetadataApi(server.metadata, server.admin, server.config, server.logs.health)
    admin = AdminApi(server.admin, server.config, server.explicit_config_keys,
                     server.apply_topic_config)
    guard = ControllerEpochGuard(lambda: server.broker_epoch)
    from_controller = ControllerRequestsApi(guard, replicas, server.metadata,
                                            server.topic_configs)
    to_controller = ControllerApi(server.controller)
    apis: dict[int, ApiSpec] = {
        ApiKey.PRODUCE: ApiSpec(produce.handle, 0, 0),
        ApiKey.FETCH: ApiSpec(fetch.handle, 0, 0),
        ApiKey.LIST_OFFSETS: ApiSpec(offsets.list_offsets, 0, 0),
        ApiKey.METADATA: ApiSpec(metadata.handle, 0, 0),
        ApiKey.DESCRIBE_CLUSTER: ApiSpec(metadata.describe_cluster, 0, 0),
        ApiKey.LEADER_AND_ISR: ApiSpec(from_controller.leader_and_isr, 0, 0),
        ApiKey.STOP_REPLICA: ApiSpec(from_controller.stop_replica, 0, 0),
        ApiKey.UPDATE_METADATA: ApiSpec(from_controller.update_metadata, 0, 0),
        ApiKey.CONTROLLED_SHUTDOWN: ApiSpec(to_controller.controlled_shutdown, 0, 0),
        ApiKey.CREATE_TOPICS: ApiSpec(admin.create_topics, 0, 0),
        ApiKey.DELETE_TOPICS: ApiSpec(admin.delete_topics, 0, 0),
        ApiKey.CREATE_PARTITIONS: ApiSpec(admin.create_partitions, 0, 0),
        ApiKey.ALTER_PARTITION_REASSIGNMENTS: ApiSpec(admin.alter_partition_reassignments, 0,
                                                      0),
        ApiKey.LIST_PARTITION_REASSIGNMENTS: ApiSpec(admin.list_partition_reassignments, 0,
                                                     0),
        ApiKey.OFFSET_FOR_LEADER_EPOCH: ApiSpec(offsets.offset_for_leader_epoch, 0, 0),
        ApiKey.DESCRIBE_CONFIGS: ApiSpec(admin.describe_configs, 0, 0),
        ApiKey.ALTER_CONFIGS: ApiSpec(admin.alter_configs, 0, 0),
        ApiKey.ALTER_PARTITION: ApiSpec(to_controller.alter_partition, 0, 0),
        ApiKey.ELECT_LEADERS: ApiSpec(to_controller.elect_leaders, 0, 0),
    }

    def api_versions(request: Request) -> HandlerResult:
        return Reply({"error_code": 0, "api_keys": [[int(k), s.min_version, s.max_version]
                                                    for k, s in sorted(apis.items())]})

    def per_connection(request: Request) -> HandlerResult:
        raise AssertionError("the dispatcher answers SASL_AUTHENTICATE, with its connection")

    apis[ApiKey.API_VERSIONS] = ApiSpec(api_versions, 0, 0)
    apis[ApiKey.SASL_AUTHENTICATE] = ApiSpec(per_connection, 0, 0)
    return apis
