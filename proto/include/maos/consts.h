/*
 * maos/consts.h -- the constants the wire (maos/proto.h) and the client API
 * (maos/client.h) share: protocol version, limits, expected versions,
 * subscription and watch starting points, txn item kinds, push kinds and
 * the names of the daemon's counters.  Plain macros and enums: no
 * structure, no function, no dependency, so that maos/client.h can offer
 * them without exposing the wire's structures (maos/proto.h, msgpack).
 * proto/PROTOCOL.md says what each means on the wire.
 */
#ifndef MAOS_CONSTS_H
#define MAOS_CONSTS_H

#define MAOS_PROTOCOL_VERSION 1
#define MAOS_DEFAULT_MAX_FRAME (16u * 1024u * 1024u)
/* A reply may exceed the request frame limit by this much (envelope around
 * a maximal event); clients accept max_frame + MAOS_REPLY_SLACK. */
#define MAOS_REPLY_SLACK (64u * 1024u)
/* Event types, checkpoint names, channels, patterns: 1..255 bytes. */
#define MAOS_NAME_MAX 255
/* backup: bytes of the target directory's absolute path */
#define MAOS_PATH_MAX 1024
/* Stream names and stream prefixes (every `stream`/`prefix` field of the
 * stream ops and filters, `category`, the streams op's `after`): up to
 * 1024 bytes, room for the longest table stream, "kv." + 64 + "-" + 512. */
#define MAOS_STREAM_MAX 1024
/* Table entry keys (and key prefixes, list cursors): 1..512 bytes. */
#define MAOS_KEY_MAX 512
/* NAME of a kv.NAME table: 1..64 bytes of [A-Za-z0-9_.]. */
#define MAOS_KV_NAME_MAX 64
/* agent_status's status: 1..64 bytes. */
#define MAOS_STATUS_MAX 64
/* Queues (PROTOCOL.md "Queues"): NAME of a queue, 1..64 bytes of
 * [A-Za-z0-9_.-]; and the bounds of the queue ops' fields. */
#define MAOS_QUEUE_NAME_MAX 64
#define MAOS_CLAIM_QUEUES_MAX 16
#define MAOS_CLAIM_MAX 1000
#define MAOS_LEASE_MS_DEFAULT 30000u
#define MAOS_LEASE_MS_MAX 86400000u
#define MAOS_WAIT_MS_MAX 3600000u
#define MAOS_DELAY_MS_MAX (365ll * 86400 * 1000)
#define MAOS_BACKOFF_MAX_MS 3600000ll
#define MAOS_ATTEMPTS_DEFAULT 5u
#define MAOS_ATTEMPTS_MAX 1000u
#define MAOS_TASK_ERROR_MAX 4096
#define MAOS_CLAIMS_WAITING_MAX 64
#define MAOS_DEAD_BATCH 1000
/* read, read_all and list page sizes (limit): default and cap. */
#define MAOS_READ_LIMIT_MAX 10000
#define MAOS_READ_LIMIT_DEFAULT 1000

/* `expect` of appends (wire "any", "no_stream", "exists", or a version)
 * and of put/delete (wire "any", "absent", "exists", or a revision):
 * >= 0 is exact. */
#define MAOS_EXPECT_ANY (-1)
#define MAOS_EXPECT_NO_STREAM (-2)
#define MAOS_EXPECT_ABSENT (-2) /* put/delete: the entry must not exist */
#define MAOS_EXPECT_EXISTS (-3)

/*
 * One write of a write request.  Every write request decodes into an
 * ordered list of these (maos_request.items): append -> 1 APPEND item;
 * put, delete -> 1 item; checkpoint_save -> 1 CHECKPOINT item; txn (either
 * form) -> one per append or op, in request order.
 */
enum {
    MAOS_ITEM_APPEND = 1,
    MAOS_ITEM_PUT,
    MAOS_ITEM_DELETE,
    MAOS_ITEM_CHECKPOINT,
    /* queues: enqueue, claim, ack, nack, extend and release are also ops of
     * a txn (claim is not); dead_retry and dead_purge are requests of their
     * own */
    MAOS_ITEM_ENQUEUE,
    MAOS_ITEM_CLAIM,
    MAOS_ITEM_ACK,
    MAOS_ITEM_NACK,
    MAOS_ITEM_EXTEND,
    MAOS_ITEM_TASK_RELEASE,
    MAOS_ITEM_DEAD_RETRY,
    MAOS_ITEM_DEAD_PURGE,
    MAOS_ITEM__WIRE_END
};

/* watch: what comes first (wire `from`). */
enum {
    MAOS_WATCH_FROM_ENTRIES = 0,  /* from absent: `entries` pushes of the
                                   * table as of the reply's revision, then
                                   * the changes after it */
    MAOS_WATCH_FROM_REVISION = 1, /* from: R: the changes after revision R */
    MAOS_WATCH_FROM_NOW = 2       /* from: "now": only changes from now */
};

/* from_kind: MAOS_FROM_POSITION (from is a position), MAOS_FROM_VERSION
 * (from is a version of f->stream), MAOS_FROM_LIVE (live only). */
enum { MAOS_FROM_POSITION = 0, MAOS_FROM_VERSION = 1, MAOS_FROM_LIVE = 2 };

/* Daemon counters for the stats op: MAOS_STATS_MAP, every counter the
 * daemon sends.  MAOS_STATS_MAP_V1 is the frozen part, the fields of
 * libmaos-client's maos_stats_info (client.h): never add to it, never
 * reorder it; a new counter goes in MAOS_STATS_MAP after it (clients read
 * it by name, maos_stats_kv). */
#define MAOS_STATS_MAP_V1(X)                                                      \
    X(uptime_us)                                                               \
    X(head_position)                                                           \
    X(connections)                                                             \
    X(connections_total)                                                       \
    X(requests)                                                                \
    X(commit_groups)                                                           \
    X(commit_requests)                                                         \
    X(commit_events)                                                           \
    X(commit_max_group)                                                        \
    X(commit_errors)                                                           \
    X(commit_write_us)                                                         \
    X(subscriptions)                                                           \
    X(subscriptions_live)                                                      \
    X(subscriptions_max_lag)                                                   \
    X(push_frames)                                                             \
    X(push_events)                                                             \
    X(fell_behind)                                                             \
    X(channel_subscriptions)                                                   \
    X(channel_messages)                                                        \
    X(channel_dropped)                                                         \
    X(bytes_in)                                                                \
    X(bytes_out)                                                               \
    X(max_frame)                                                               \
    X(connections_refused)                                                     \
    X(hello_timeouts)                                                          \
    X(connections_paused)                                                      \
    X(buffered_bytes)                                                          \
    X(loop_lag_max_us)                                                         \
    X(loop_lag_p99_us)                                                         \
    X(reads_pooled)                                                            \
    X(reads_in_memory)                                                         \
    X(reads_ahead)                                                             \
    X(data_bytes)                                                              \
    X(requests_per_s)                                                          \
    X(events_per_s)

/* After protocol 1's: events_removed (events retention removed, since
 * start), log_anchor (the position the log's hash chain starts from: 0
 * for the whole log, else the stub kept of the removed events before it;
 * PROTOCOL.md "Retention"). */
#define MAOS_STATS_MAP(X)                                                      \
    MAOS_STATS_MAP_V1(X)                                                       \
    X(events_removed)                                                          \
    X(log_anchor)

#define MAOS_PUSH_MAP(X)                                                       \
    X(EVENTS, "events")                                                        \
    X(CAUGHT_UP, "caught_up")                                                  \
    X(FELL_BEHIND, "fell_behind")                                              \
    X(MESSAGE, "message")                                                      \
    X(ENTRIES, "entries")

typedef enum maos_push_kind {
    MAOS_PUSH_NONE = 0,
#define MAOS_PUSH_ENUM_(e, name) MAOS_PUSH_##e,
    MAOS_PUSH_MAP(MAOS_PUSH_ENUM_)
#undef MAOS_PUSH_ENUM_
        MAOS_PUSH__COUNT
} maos_push_kind;

#endif
