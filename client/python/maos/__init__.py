"""maos -- the Python client of maosd (proto/PROTOCOL.md, version 1).

    import maos
    with maos.Client() as c:
        c.append("task-1", [{"type": "created", "data": {"title": "x"}}], expect="no_stream")
        for ev in c.read("task-1"):
            print(ev.version, ev.type, ev.data)

maos.Client is blocking, maos.AsyncClient is asyncio (pipelined); both
share one protocol core (maos._core, maos._ops).  Every failure is a
maos.Error subclass carrying the protocol's `code` and `message`.
"""
from .aio import AsyncClient, AsyncSubscription
from .client import Client, Subscription
from ._core import default_socket
from .errors import (BadFrame, BadRequest, Conflict, ConnectionLost, Corrupt, Error, Forbidden,
                     FrameTooLarge, HelloRequired, Internal, InvalidArgument, InvalidId,
                     InvalidName, LeaseLost, Limit, NoSpace, NotFound, OutcomeUnknown,
                     Overloaded,
                     ProtocolVersion, ProtocolViolation, ReadOnly, ShuttingDown, Timeout,
                     Unauthenticated, Unauthorized, UnknownOp, UntrustedServer,
                     WrongExpectedVersion,
                     WrongRevision)
from .types import (AppendResult, CaughtUp, DeadResult, EnqueueResult, Entry, Event,
                    FellBehind, Message, NackResult, PutResult, QueueInfo, StreamInfo,
                    StreamMeta, Task)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncSubscription", "Client", "Subscription", "default_socket",
    "BadFrame", "BadRequest", "Conflict", "ConnectionLost", "Corrupt", "Error", "Forbidden",
    "FrameTooLarge", "HelloRequired", "Internal", "InvalidArgument", "InvalidId",
    "InvalidName", "LeaseLost", "Limit", "NoSpace", "NotFound", "OutcomeUnknown", "Overloaded",
    "ProtocolVersion", "ProtocolViolation", "ReadOnly", "ShuttingDown", "Timeout",
    "Unauthenticated", "Unauthorized", "UnknownOp", "UntrustedServer", "WrongExpectedVersion",
    "WrongRevision",
    "AppendResult", "CaughtUp", "DeadResult", "EnqueueResult", "Entry", "Event",
    "FellBehind", "Message", "NackResult", "PutResult", "QueueInfo", "StreamInfo",
    "StreamMeta", "Task",
]
