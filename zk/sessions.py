"""Session liveness: which sessions are due to expire, given when each was last heard from.

Pure bookkeeping (the caller passes ``now`` in monotonic seconds); the server turns an
expiry into a ``CloseSessionTxn``. A session's deadline is its last sign of life plus its
timeout; any frame on its connection counts as a sign of life.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SessionState:
    session_id: int
    timeout_ms: int
    deadline: float
    closing: bool = False


class SessionTracker:
    def __init__(self, min_timeout_ms: int, max_timeout_ms: int) -> None:
        self.min_timeout_ms = min_timeout_ms
        self.max_timeout_ms = max_timeout_ms
        self.sessions: dict[int, SessionState] = {}

    def negotiate(self, requested_ms: int) -> int:
        return max(self.min_timeout_ms, min(self.max_timeout_ms, requested_ms))

    def add(self, session_id: int, timeout_ms: int, now: float) -> SessionState:
        state = SessionState(session_id, timeout_ms, now + timeout_ms / 1000)
        self.sessions[session_id] = state
        return state

    def touch(self, session_id: int, now: float) -> bool:
        """Extend the deadline; False when the session is unknown or already closing."""
        state = self.sessions.get(session_id)
        if state is None or state.closing:
            return False
        state.deadline = now + state.timeout_ms / 1000
        return True

    def alive(self, session_id: int) -> bool:
        state = self.sessions.get(session_id)
        return state is not None and not state.closing

    def expired(self, now: float) -> list[int]:
        """Sessions past their deadline, marked closing so they are reported once."""
        out = []
        for state in self.sessions.values():
            if not state.closing and state.deadline <= now:
                state.closing = True
                out.append(state.session_id)
        return out

    def mark_closing(self, session_id: int) -> None:
        if session_id in self.sessions:
            self.sessions[session_id].closing = True

    def remove(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
