"""Both ends of inter-broker authentication (``protocol.peer_auth``) on real connections.

``PeerIdentity`` is what this broker proves itself with: the cluster id, its broker id and
the cluster's peer secret. ``open_peer`` opens a connection to another broker and
authenticates it, checking that the answerer is the broker expected; the controller's
channel, the follower fetchers and the link to the controller open every connection with it.
On the serving side ``PeerAuthenticator`` answers the two steps and marks the connection's
``PeerSession`` with the proven broker id, and ``refusal`` is the dispatcher's gate:
invariant, a request only brokers send is served only on a connection proven to be the
broker it claims to come from.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from klamm.client.connection import BrokerConnection
from klamm.client.errors import KlammConnectionError
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode
from klamm.protocol.peer_auth import (ANSWERER, NONCE_BYTES, OPENER, PeerAuthRequest,
                                      PeerAuthResponse, new_nonce, proof, proof_matches,
                                      sender_claim)
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire

from .errors import held_back
from .reply import Reply
from .report_limiter import ReportLimiter

log = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused peers


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    cluster_id: str
    broker_id: int
    secret: bytes


class PeerAuthFailed(KlammConnectionError):
    """The broker at the other end could not be authenticated, or refused us: the connection
    is closed, and the caller retries as after any lost connection."""


async def open_peer(host: str, port: int, identity: PeerIdentity, *, expect: int | None,
                    client_id: str, timeout: float) -> BrokerConnection:
    """A connection to the broker at ``host:port``, authenticated both ways; ``expect``, when
    given, is the broker id that must answer there."""
    conn = await BrokerConnection.open(host, port, client_id=client_id, timeout=timeout)
    try:
        await authenticate(conn, identity, expect, timeout)
    except BaseException:
        conn.close()
        raise
    return conn


async def authenticate(conn: BrokerConnection, identity: PeerIdentity, expect: int | None,
                       timeout: float) -> int:
    """Run both steps on ``conn``; the id of the broker proven to answer there."""
    me = identity.broker_id
    ours = new_nonce()
    first = await _exchange(conn, PeerAuthRequest(me, nonce=ours), timeout)
    if expect is not None and first.broker_id != expect:
        raise PeerAuthFailed(f"{conn.address} answers as broker {first.broker_id}, not as "
                             f"broker {expect}: the cluster's metadata names another broker "
                             f"for that address")
    if first.nonce is None or len(first.nonce) != NONCE_BYTES:
        raise PeerAuthFailed(f"{conn.address} sent no usable challenge")
    theirs = first.nonce
    mine = proof(identity.secret, OPENER, identity.cluster_id, me, first.broker_id, ours,
                 theirs)
    second = await _exchange(conn, PeerAuthRequest(me, proof=mine), timeout)
    expected = proof(identity.secret, ANSWERER, identity.cluster_id, me, first.broker_id,
                     ours, theirs)
    if not proof_matches(expected, second.proof):
        raise PeerAuthFailed(f"{conn.address} claims to be broker {first.broker_id} of "
                             f"cluster {identity.cluster_id} but could not prove it (it does "
                             f"not hold the cluster's peer secret)")
    return first.broker_id


async def _exchange(conn: BrokerConnection, request: PeerAuthRequest,
                    timeout: float) -> PeerAuthResponse:
    response = await conn.request(ApiKey.SASL_AUTHENTICATE, to_wire(request), timeout=timeout)
    try:
        answer = from_wire(PeerAuthResponse, response.body)
    except MalformedMessage as exc:
        raise PeerAuthFailed(f"{conn.address} answered authentication with a malformed "
                             f"body ({exc})") from None
    if answer.error_code:
        raise PeerAuthFailed(f"{conn.address} refused to authenticate broker "
                             f"{request.broker_id}: {ErrorCode(answer.error_code).name}: "
                             f"{answer.error_message}")
    return answer


class PeerSession:
    """One connection's authentication state on the serving side."""

    __slots__ = ("broker", "challenge")

    def __init__(self) -> None:
        self.broker: int | None = None  # proven
        self.challenge: tuple[int, bytes, bytes] | None = None  # (opener, its nonce, ours)


class PeerAuthenticator:
    def __init__(self, identity: PeerIdentity) -> None:
        self.identity = identity
        self._reports = ReportLimiter(REFUSAL_LOG_INTERVAL)

    def handle(self, body: object, session: PeerSession, peer: str) -> Reply:
        """Answer one SASL_AUTHENTICATE step (a malformed body raises MalformedMessage)."""
        req = from_wire(PeerAuthRequest, body)
        me = self.identity
        if req.proof is None:
            if req.nonce is None or len(req.nonce) != NONCE_BYTES:
                raise MalformedMessage(f"PeerAuthRequest.nonce: step 1 needs {NONCE_BYTES} "
                                       f"random bytes")
            session.broker = None
            ours = new_nonce()
            session.challenge = (req.broker_id, req.nonce, ours)
            return Reply(to_wire(PeerAuthResponse(0, None, me.broker_id, ours)))
        challenge, session.challenge = session.challenge, None
        if challenge is None or challenge[0] != req.broker_id:
            return self._failed(peer, req.broker_id, "a proof without its challenge: send "
                                                     "step 1 (a nonce) first")
        opener, theirs, ours = challenge
        expected = proof(me.secret, OPENER, me.cluster_id, opener, me.broker_id, theirs, ours)
        if not proof_matches(expected, req.proof):
            return self._failed(peer, opener, "its proof does not match the cluster's peer "
                                              "secret")
        session.broker = opener
        return Reply(to_wire(PeerAuthResponse(0, proof=proof(
            me.secret, ANSWERER, me.cluster_id, opener, me.broker_id, theirs, ours))))

    def _failed(self, peer: str, claimed: int, why: str) -> Reply:
        message = f"cannot authenticate {peer} as broker {claimed} of cluster " \
                  f"{self.identity.cluster_id}: {why}"
        self._report(message)
        return Reply(to_wire(PeerAuthResponse(int(ErrorCode.SASL_AUTHENTICATION_FAILED),
                                              message)))

    def refusal(self, api_key: int, api_name: str, body: object, session: PeerSession,
                peer: str) -> Reply | None:
        """The answer for a request only a broker may send, on a connection that has not
        proven to be that broker; None when the request may go on."""
        needs_broker, claimed = sender_claim(api_key, body)
        if not needs_broker:
            return None
        if session.broker is None:
            why = (f"{api_name} is an inter-broker request: only a broker of cluster "
                   f"{self.identity.cluster_id} may send it, on a connection it has "
                   f"authenticated (SASL_AUTHENTICATE)")
        elif claimed is not None and claimed != session.broker:
            why = (f"this connection is broker {session.broker}'s; it cannot send "
                   f"{api_name} as broker {claimed}")
        else:
            return None
        self._report(f"refused {api_name} from {peer}: {why}")
        return Reply({"error_code": int(ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
                      "error_message": why})

    def _report(self, message: str) -> None:
        held = self._reports.admit(time.monotonic())
        if held is not None:
            log.warning("%s%s", message, held_back(held))
