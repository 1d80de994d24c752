"""maos.types -- the values the client hands out: small frozen dataclasses.

Responsibilities: Event (a stored event record), Entry (a table entry),
Task (a queue task), the results of writes, stream listings, stats, and
the markers a subscription can yield (CaughtUp, FellBehind) plus channel
Messages.  Built from decoded replies by maos._core; never sent.

Invariants: times are timezone-aware UTC datetimes (microsecond
precision, as stored); ids are uuid.UUID; data/meta/documents are plain
Python values as msgpack decodes them (maps -> dict, bin -> bytes).

Speed: a replay makes one Event per stored record, so the decoder
(maos._core.to_event) fills an Event without its constructor and leaves
`id` and `time` as the record's 16 bytes and microseconds; the first read
of either builds the uuid.UUID / datetime (the same value the constructor
would hold) and keeps it.  AppendResult.ids likewise.  Equality, repr,
hashing, dataclasses.asdict/replace and pickling see the built values.
"""
from __future__ import annotations

import datetime as _dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_US = _dt.timedelta(microseconds=1)
_SAFE = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def uuid_from_bytes(b: bytes) -> uuid.UUID:
    """uuid.UUID(bytes=b) without its argument parsing (b is 16 bytes)."""
    u = _new(uuid.UUID)
    _set(u, "int", int.from_bytes(b, "big"))
    _set(u, "is_safe", _SAFE)
    return u


def _lazy(obj: Any, name: str) -> Any:
    """The value of a field left raw by the decoder (see the file top),
    built once and kept in the instance."""
    d = object.__getattribute__(obj, "__dict__")
    raw = d.get("_raw_" + name, d)
    if raw is d:
        raise AttributeError(f"{type(obj).__name__!r} object has no attribute {name!r}")
    if name == "time":
        v: Any = EPOCH + raw * _US
    elif name == "id":
        v = uuid_from_bytes(raw)
    else:  # ids
        v = tuple(uuid_from_bytes(raw[i:i + 16]) for i in range(0, len(raw), 16))
    d[name] = v
    return v


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

    if not TYPE_CHECKING:  # for mypy, id and time are plain fields
        def __getattr__(self, name):
            return _lazy(self, name)


@dataclass(frozen=True)
class AppendResult:
    """The reply to an append (or one append of a txn)."""
    stream: str
    first_version: int
    first_position: int
    count: int
    duplicate: bool
    ids: tuple[uuid.UUID, ...]

    if not TYPE_CHECKING:  # for mypy, ids is a plain field
        def __getattr__(self, name):
            return _lazy(self, name)

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
class StreamMeta:
    """Retention of a stream or a category (stream_meta): the rule
    (max_count, max_age_ms; 0: none) and, for a stream, its first readable
    version, its head (-1: never written) and whether it is deleted."""
    max_count: int
    max_age_ms: int
    first_version: int
    head: int
    deleted: bool


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
