"""maos.types -- the values the client hands out: small frozen dataclasses.

Responsibilities: Event (a stored event record), Entry (a table entry),
Task (a queue task), the results of writes, stream listings, stats, and
the markers a subscription can yield (CaughtUp, FellBehind) plus channel
Messages.  Built from decoded replies by maos._core; never sent.

Invariants: times are timezone-aware UTC datetimes (microsecond
precision, as stored); ids are uuid.UUID; data/meta/documents are plain
Python values as msgpack decodes them (maps -> dict, bin -> bytes).
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def us_to_datetime(us: int) -> _dt.datetime:
    """Microseconds since the Unix epoch -> aware UTC datetime (exact)."""
    return EPOCH + _dt.timedelta(microseconds=us)


def datetime_to_us(t: _dt.datetime) -> int:
    """Aware datetime -> microseconds since the Unix epoch (exact).  A naive
    datetime is refused: its zone is unknown."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware one")
    d = t - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


@dataclass(frozen=True)
class Event:
    """One stored event (PROTOCOL.md "Stored event records")."""
    position: int
    stream: str
    version: int
    id: uuid.UUID
    type: str
    data: Any
    meta: dict[Any, Any]
    time: _dt.datetime
    prev: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True)
class AppendResult:
    """The reply to an append (or one append of a txn)."""
    stream: str
    first_version: int
    first_position: int
    count: int
    duplicate: bool
    ids: tuple[uuid.UUID, ...]

    @property
    def last_version(self) -> int:
        return self.first_version + self.count - 1

    @property
    def last_position(self) -> int:
        return self.first_position + self.count - 1


@dataclass(frozen=True)
class StreamInfo:
    stream: str
    head: int
    count: int
    last_position: int


@dataclass(frozen=True)
class Entry:
    """A table entry (PROTOCOL.md "Entry")."""
    table: str
    key: str
    revision: int
    created_revision: int
    created: _dt.datetime
    updated: _dt.datetime
    data: dict[Any, Any]
    bound: bool


@dataclass(frozen=True)
class PutResult:
    revision: int
    created_revision: int


@dataclass(frozen=True)
class Task:
    """A queue task (PROTOCOL.md "Task")."""
    id: uuid.UUID
    queue: str
    state: str
    attempt: int
    max_attempts: int
    priority: int
    data: Any
    meta: dict[Any, Any]
    enqueued: _dt.datetime
    not_before: Optional[_dt.datetime]
    dedupe_key: Optional[str]
    ordering_key: Optional[str]
    last_error: Optional[str]
    result: Any
    token: int
    lease_until: Optional[_dt.datetime]
    history: tuple[int, ...]


@dataclass(frozen=True)
class EnqueueResult:
    task_ids: tuple[uuid.UUID, ...]
    duplicates: tuple[bool, ...]
    revision: int


@dataclass(frozen=True)
class NackResult:
    revision: int
    state: str


@dataclass(frozen=True)
class DeadResult:
    count: int
    more: bool


@dataclass(frozen=True)
class QueueInfo:
    queue: str
    ready: int
    delayed: int
    blocked: int
    leased: int
    done: int
    dead: int
    waiting: int
    oldest_ready: Optional[_dt.datetime]


@dataclass(frozen=True)
class CaughtUp:
    """A subscription reached the live end (yielded with markers=True)."""
    next: int


@dataclass(frozen=True)
class FellBehind:
    """The daemon serves the subscription from disk again, still gap-free."""
    next: int


@dataclass(frozen=True)
class Message:
    """A channel message (at-most-once, never stored)."""
    channel: str
    payload: Any
