"""Wire API of the coordination service, on the same frames as the broker protocol.

Requests are ``[api_key, api_version, correlation_id, client_id, body]`` frames
(``klamm.protocol.frame``); responses ``[correlation_id, body]``. Every response body carries
``error`` (a :class:`~klamm.zk.errors.ZkErrorCode`) and, when non-zero, ``message``; all but
PING replies carry ``zxid``, the state the reply reflects (clients send the highest they saw
when they re-attach).

Bodies (``stat`` is the list form of :class:`~klamm.zk.tree.Stat`)::

    CONNECT       {session_id: int (0 = new), timeout_ms: int, password: bytes,
                   last_zxid: int, watches: {data: [path], exist: [path], child: [path]}}
                  -> {session_id, timeout_ms (negotiated), password}
                  Re-attaching re-registers the client's watches; those whose node changed
                  after last_zxid fire at once (after this response).
    PING          {} -> {}
    CLOSE         {} -> {}                    ends the session, removing its ephemerals
    CREATE        {path, data, ephemeral, sequential, makepath} -> {path}
    DELETE        {path, version, recursive} -> {}
    SET           {path, data, version} -> {stat}
    GET           {path, watch} -> {data, stat}
    EXISTS        {path, watch} -> {stat | None}
    GET_CHILDREN  {path, watch} -> {children, stat}
    MULTI         {ops: [{op: "create"|"delete"|"set"|"check", ...fields above}]}
                  -> {results: [{path} | {} | {stat} | {}]}; on failure {error, message, index}

Server pushes use correlation id ``EVENT_CORRELATION_ID`` and a body ``{"event": ...}``:
``{"event": "watch", "type": "created"|"deleted"|"changed"|"child", "path", "zxid"}``,
``{"event": "session", "state": "expired"}`` and ``{"event": "error", "message"}`` (sent just
before the server closes a connection that sent an undecodable frame). A watch event is written
before the response to any request the same client sent after the change was applied.
"""

from __future__ import annotations

from enum import IntEnum

EVENT_CORRELATION_ID = -1
API_VERSION = 0


class ZkApi(IntEnum):
    CONNECT = 100
    PING = 101
    CLOSE = 102
    CREATE = 103
    DELETE = 104
    SET = 105
    GET = 106
    EXISTS = 107
    GET_CHILDREN = 108
    MULTI = 109
