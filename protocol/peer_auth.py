"""Inter-broker authentication: a connection proves it belongs to a broker of the cluster.

Every broker of a cluster knows the cluster's peer secret, kept in the coordination service
beside the cluster id. Whoever may reach the coordination service can read it: that service
is the trust boundary, as ZooKeeper is Kafka's, so its port is for brokers and operators
only. Before its first inter-broker request, a broker opening a connection to another broker
runs a challenge-response on it, in two SASL_AUTHENTICATE exchanges::

    1. {broker_id, nonce}  ->  {error_code, broker_id (of the answering broker), nonce}
    2. {broker_id, proof}  ->  {error_code, proof}

Each proof is an HMAC-SHA256 keyed by the secret over the role (opener or answerer), the
cluster id, both broker ids and both nonces. Neither side sends anything a listener could
replay on another connection, and each learns who the other is: the opener checks that the
answerer is the broker it meant to reach (a follower does not fetch from an impostor).

Invariant (kept by the broker's dispatcher): a connection counts as broker N's only after
N's proof checked out, and the requests only brokers send (``sender_claim``) are served only
on such a connection, and only when the broker id they claim to come from is N.

Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from .api import ApiKey
from .wire import int32, message

NONCE_BYTES = 32
OPENER = "opener"
ANSWERER = "answerer"

# Requests that only brokers send, and the body field naming the sender.
BROKER_ONLY: dict[int, str] = {
    ApiKey.LEADER_AND_ISR: "controller_id",
    ApiKey.UPDATE_METADATA: "controller_id",
    ApiKey.STOP_REPLICA: "controller_id",
    ApiKey.CONTROLLED_SHUTDOWN: "broker_id",
    ApiKey.ALTER_PARTITION: "broker_id",
}
# Requests that consumers send too; a replica id >= 0 makes them a follower's.
REPLICA_ONLY_WHEN_SET: dict[int, str] = {
    ApiKey.FETCH: "replica_id",
    ApiKey.OFFSET_FOR_LEADER_EPOCH: "replica_id",
}


@message
class PeerAuthRequest:
    broker_id: int32  # the opener's
    nonce: bytes | None = None  # step 1
    proof: bytes | None = None  # step 2


@message
class PeerAuthResponse:
    error_code: int
    error_message: str | None = None
    broker_id: int32 = -1  # step 1: the answerer's
    nonce: bytes | None = None  # step 1: the answerer's
    proof: bytes | None = None  # step 2: the answerer's


def new_secret() -> str:
    return secrets.token_hex(32)


def new_nonce() -> bytes:
    return secrets.token_bytes(NONCE_BYTES)


def proof(secret: bytes, role: str, cluster_id: str, opener: int, answerer: int,
          opener_nonce: bytes, answerer_nonce: bytes) -> bytes:
    """What ``role`` sends to prove it holds ``secret`` on this one connection."""
    text = b"\0".join((b"klamm-peer-auth-1", role.encode(), cluster_id.encode(),
                       str(opener).encode(), str(answerer).encode(), opener_nonce,
                       answerer_nonce))
    return hmac.new(secret, text, hashlib.sha256).digest()


def proof_matches(expected: bytes, given: bytes | None) -> bool:
    return given is not None and hmac.compare_digest(expected, given)


def sender_claim(api_key: int, body: Any) -> tuple[bool, int | None]:
    """``(only a broker may send this, the broker id the body claims)``; the id is None when
    the body does not carry a usable one (its handler then refuses it as malformed)."""
    field = BROKER_ONLY.get(api_key)
    if field is not None:
        return True, _int_field(body, field)
    field = REPLICA_ONLY_WHEN_SET.get(api_key)
    if field is not None:
        claimed = _int_field(body, field)
        if claimed is not None and claimed >= 0:
            return True, claimed
    return False, None


def _int_field(body: Any, field: str) -> int | None:
    if not isinstance(body, dict):
        return None
    value = body.get(field)
    return value if type(value) is int else None
