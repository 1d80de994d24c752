"""maos.errors -- every failure of the client as an exception under maos.Error.

Responsibilities: one exception class per protocol error code of
proto/PROTOCOL.md ("Error codes"; the names and numbers of
proto/include/maos/errors.h), plus the client-side conditions of
libmaos-client (connection lost, protocol violation, untrusted server,
timeouts, invalid arguments).  ``from_reply`` turns an ``ok: false`` reply
into the matching exception.

Invariants: every exception carries ``code`` (the wire name, e.g.
``"WRONG_EXPECTED_VERSION"``), ``number`` (the C library's positive code)
and ``message``; codes are never renumbered; an unknown wire code maps to
plain ``maos.Error`` (forward compatibility), never to a crash.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional


class Error(Exception):
    """Base of every maos exception: ``code`` (wire name), ``number``, ``message``."""

    code: str = "UNKNOWN"
    number: int = 0

    def __init__(self, message: str = "", *, code: Optional[str] = None,
                 index: Optional[int] = None, actual: Optional[int] = None,
                 entry: Optional[Mapping[str, Any]] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        #: which append / op of a txn failed (0-based), else None
        self.index = index
        #: WRONG_EXPECTED_VERSION / WRONG_REVISION / NOT_FOUND of get: the
        #: current version or revision, -1 when absent; else None
        self.actual = actual
        #: WRONG_REVISION of put/delete while the entry exists: the entry
        self.entry = entry

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# ---- server refusals (PROTOCOL.md "Error codes") ----------------------------

class BadRequest(Error):
    code, number = "BAD_REQUEST", 1


class UnknownOp(Error):
    code, number = "UNKNOWN_OP", 2


class FrameTooLarge(Error):
    code, number = "FRAME_TOO_LARGE", 3


class BadFrame(Error):
    code, number = "BAD_FRAME", 4


class HelloRequired(Error):
    code, number = "HELLO_REQUIRED", 5


class ProtocolVersion(Error):
    code, number = "PROTOCOL_VERSION", 6


class WrongExpectedVersion(Error):
    """``actual``: the stream's current version, -1 if it does not exist."""
    code, number = "WRONG_EXPECTED_VERSION", 7


class NotFound(Error):
    code, number = "NOT_FOUND", 8


class Conflict(Error):
    code, number = "CONFLICT", 9


class InvalidName(Error):
    code, number = "INVALID_NAME", 10


class InvalidId(Error):
    code, number = "INVALID_ID", 11


class Limit(Error):
    code, number = "LIMIT", 12


class ReadOnly(Error):
    code, number = "READ_ONLY", 13


class Unauthorized(Error):
    code, number = "UNAUTHORIZED", 14


class Overloaded(Error):
    code, number = "OVERLOADED", 15


class ShuttingDown(Error):
    code, number = "SHUTTING_DOWN", 16


class LeaseLost(Error):
    code, number = "LEASE_LOST", 17


class Internal(Error):
    code, number = "INTERNAL", 18


class Corrupt(Error):
    code, number = "CORRUPT", 19


class WrongRevision(Error):
    """``actual``: the entry's current revision (-1: absent); ``entry`` when it exists."""
    code, number = "WRONG_REVISION", 20


class OutcomeUnknown(Error):
    """The storage write failed after it started: re-send with the same ids after a restart."""
    code, number = "OUTCOME_UNKNOWN", 21


class NoSpace(Error):
    """The daemon's file system is below its free-space reserve: nothing of
    the request was written; writes resume by themselves once space is freed."""
    code, number = "NO_SPACE", 22


class Forbidden(Error):
    """This user may not connect to the daemon (allow_uids / allow_gids), or
    the connection's rights (its uid's, intersected with its token's scopes)
    do not allow the request: the message names the scope missing, and
    nothing of the request was written."""
    code, number = "FORBIDDEN", 23


class Unauthenticated(Error):
    """The access token (``token=`` or ``MAOS_TOKEN``) is malformed, unknown,
    revoked, expired or made for another uid; or the token of a connection
    expired or was revoked (the daemon closes the connection).  Never
    retried."""
    code, number = "UNAUTHENTICATED", 24


# ---- client-side conditions (the C library's local codes) ---------------------

class ConnectionLost(Error):
    """The connection broke (I/O error, EOF, timeout) or could not be made.

    A write whose reply was lost this way may or may not be stored: re-send
    it with the same event ids (idempotent) or read to find out."""
    code, number = "CLOSED", 101


class ProtocolViolation(ConnectionLost):
    """The server sent a malformed reply or one without a promised field."""
    code, number = "PROTO", 102


class Timeout(ConnectionLost):
    code, number = "TIMEOUT", 104


class InvalidArgument(Error, ValueError):
    """Refused by the client before anything was sent."""
    code, number = "INVALID_ARG", 105


class UntrustedServer(Error):
    """The socket's directory or the server's uid is not trusted (never retried)."""
    code, number = "UNTRUSTED_SERVER", 108


SERVER_ERRORS: dict[str, type[Error]] = {
    c.code: c for c in (
        BadRequest, UnknownOp, FrameTooLarge, BadFrame, HelloRequired,
        ProtocolVersion, WrongExpectedVersion, NotFound, Conflict, InvalidName,
        InvalidId, Limit, ReadOnly, Unauthorized, Overloaded, ShuttingDown,
        LeaseLost, Internal, Corrupt, WrongRevision, OutcomeUnknown, NoSpace,
        Forbidden, Unauthenticated)
}


def from_reply(reply: Mapping[str, Any]) -> Error:
    """The exception for an ``ok: false`` reply (already checked to hold
    ``code`` and ``message`` as strings)."""
    code = reply["code"]
    cls = SERVER_ERRORS.get(code, Error)
    actual = reply.get("actual")
    index = reply.get("index")
    entry = reply.get("entry")
    return cls(reply["message"], code=code,
               index=index if isinstance(index, int) and not isinstance(index, bool) else None,
               actual=actual if isinstance(actual, int) and not isinstance(actual, bool) else None,
               entry=entry if isinstance(entry, dict) else None)
