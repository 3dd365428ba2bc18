"""Request handlers, one module per API family, and the dispatch table that versions them.

A handler takes (server, request) and returns a ``Reply`` when it can answer at once, an
awaitable of one when it must wait (long poll, fsync), or None when no answer is due (acks=0).
Handlers validate their body by reading it: a missing key or a wrong type raises, and the
dispatcher turns that into INVALID_REQUEST for this request only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from klamm.protocol.api import ApiKey
from klamm.protocol.frame import Request

from ..connection import HandlerResult
from . import admin, fetch, metadata, offsets, produce

if TYPE_CHECKING:
    from ..server import BrokerServer

Handler = Callable[["BrokerServer", Request], HandlerResult]


class ApiSpec(NamedTuple):
    handler: Handler
    min_version: int
    max_version: int


def _api_versions(server: "BrokerServer", request: Request) -> HandlerResult:
    from ..connection import Reply
    return Reply({"error_code": 0, "api_keys": [[int(k), s.min_version, s.max_version]
                                                for k, s in APIS.items()]})


APIS: dict[int, ApiSpec] = {
    ApiKey.PRODUCE: ApiSpec(produce.handle_produce, 0, 0),
    ApiKey.FETCH: ApiSpec(fetch.handle_fetch, 0, 0),
    ApiKey.LIST_OFFSETS: ApiSpec(offsets.handle_list_offsets, 0, 0),
    ApiKey.METADATA: ApiSpec(metadata.handle_metadata, 0, 0),
    ApiKey.API_VERSIONS: ApiSpec(_api_versions, 0, 0),
    ApiKey.CREATE_TOPICS: ApiSpec(admin.handle_create_topics, 0, 0),
    ApiKey.DELETE_TOPICS: ApiSpec(admin.handle_delete_topics, 0, 0),
    ApiKey.DESCRIBE_CONFIGS: ApiSpec(admin.handle_describe_configs, 0, 0),
    ApiKey.ALTER_CONFIGS: ApiSpec(admin.handle_alter_configs, 0, 0),
}
