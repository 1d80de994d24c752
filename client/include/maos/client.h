/*
 * maos/client.h -- libmaos-client: a thin, hiredis-like client for maosd.
 *
 * One maos_ctx is one Unix-socket connection to maosd.  Everything is
 * blocking; waits are bounded by the context's timeout when one is set.
 *
 * Two layers:
 *  - the pipelined layer (maos_append_send, maos_txn_send, maos_flush,
 *    maos_reply_recv): queue many requests, then collect the replies, which
 *    may arrive in any order and carry the request id (rid) they answer;
 *  - the synchronous layer (maos_ping, maos_append, maos_txn, maos_read,
 *    maos_read_all, maos_streams, maos_stats_get), built on the pipelined one:
 *    send + flush + receive the reply with its own rid.  A synchronous call
 *    made while pipelined replies are still outstanding fails with
 *    MAOS_EBUSY (collect them with maos_reply_recv first).
 *
 * Errors (STYLE.md 5, 7).  Every failing call returns a negative MAOS_E*
 * (maos/errors.h) and sets ctx->err and ctx->errstr (for a server refusal,
 * errstr holds the server's message).  A successful call leaves err alone
 * when it is 0 and never writes an out-parameter on failure.
 *  - Connection errors are sticky: MAOS_ECONNECT, MAOS_EIO, MAOS_ECLOSED,
 *    MAOS_EPROTO, MAOS_ETIMEOUT (a late reply could still arrive, so the
 *    stream of replies can no longer be trusted), and a failed handshake
 *    (MAOS_EPROTOCOL_VERSION, MAOS_EHELLO_REQUIRED).  The context is dead:
 *    every later call fails at once with the same err.  Free it and
 *    connect again.  maos_err_is_fatal() tells the two kinds apart; in
 *    doubt, maos_fd(c) == -1 is the definitive "dead" test (e.g. an
 *    out-of-memory while a reply was being received also kills the
 *    context, since that reply is lost).
 *  - Everything else is per call and not sticky: server refusals
 *    (MAOS_EWRONG_EXPECTED_VERSION, MAOS_ENOT_FOUND, MAOS_EBAD_REQUEST, ...),
 *    MAOS_EINVALID_ARG (caught before anything was sent), MAOS_EBUSY,
 *    MAOS_EFRAME_TOO_LARGE (the request would exceed the server's
 *    max_frame; nothing was sent), MAOS_ELIMIT (the encoded request would
 *    break the wire's nesting/element limits, e.g. data nested close to 64
 *    levels; nothing was sent), and MAOS_ENOMEM when nothing was sent.
 *    The next call clears err.
 *
 * The library never logs, never calls exit(), never installs signal
 * handlers (writes use MSG_NOSIGNAL, so a closed peer is MAOS_ECLOSED, not
 * SIGPIPE).
 *
 * Thread-safety: a maos_ctx may be used by one thread at a time (callers
 * that share one must lock around every call, including the pipelined
 * send/recv pairs).  Distinct contexts are fully independent, and pages,
 * reply messages and stats returned by the library belong to the caller
 * and can be handed to other threads.  After fork(), only one of the two
 * processes may go on using a context; the other must maos_free() it.
 *
 * Ownership, in short: every object the library returns through a `**out`
 * is freed by the caller with the matching *_free function (each accepts
 * NULL).  Pointers inside a page or reply message (stream names, data,
 * meta, ids) are views into that object's buffer and stay valid until it
 * is freed.  Input buffers are only read during the call.
 */
#ifndef MAOS_CLIENT_H
#define MAOS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "maos/errors.h"
#include "maos/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAOS_CLIENT_VERSION "0.1.0"

/* ---- connection ----------------------------------------------------------- */

typedef struct maos_ctx {
    int err;           /* 0 or the negative MAOS_E* of the last failing call */
    char errstr[256];  /* NUL-terminated human message for err */
    struct maos_ctx_priv *priv; /* library-private */
} maos_ctx;

typedef struct maos_options {
    const char *path;        /* socket path; NULL: see maos_default_socket() */
    int timeout_ms;          /* > 0: bound on connect + hello and on every
                              * later wait for the socket; 0: wait forever */
    const char *client_name; /* sent in hello for the daemon's log;
                              * NULL: "libmaos-client" */
} maos_options;

/*
 * Connect to maosd and do the hello handshake (MAOS_PROTOCOL_VERSION).
 *
 * Always returns a context, except NULL when memory for it cannot be
 * allocated.  On failure the context has err set (MAOS_ECONNECT when the
 * socket cannot be reached, MAOS_EPROTOCOL_VERSION / MAOS_EPROTO /
 * MAOS_ETIMEOUT / MAOS_ECLOSED when the handshake fails) and is dead.
 * The caller frees it with maos_free() in both cases.
 * opt may be NULL (all defaults).  opt->path is copied.
 */
maos_ctx *maos_connect_with(const maos_options *opt);
/* maos_connect_with({ .path = path }). */
maos_ctx *maos_connect(const char *path);
/* maos_connect_with({ .path = path, .timeout_ms = timeout_ms }). */
maos_ctx *maos_connect_timeout(const char *path, int timeout_ms);

/* Close the socket and free the context and everything it still holds
 * (queued output, unreceived replies).  Accepts NULL. */
void maos_free(maos_ctx *c);

/*
 * The socket path maos_connect(NULL) uses: $MAOS_SOCKET when set and not
 * empty; else, as root, /run/maos/maosd.sock; else
 * $XDG_RUNTIME_DIR/maos/maosd.sock, or /tmp/maos-$UID/maosd.sock when
 * XDG_RUNTIME_DIR is unset or empty.  Writes it NUL-terminated into
 * buf[0..len) and returns buf, or NULL when it does not fit.
 */
const char *maos_default_socket(char *buf, size_t len);

/* The socket descriptor (owned by the context: do not close it), or -1
 * when the context is dead. */
int maos_fd(const maos_ctx *c);

/* Change the wait bound of later calls (see maos_options.timeout_ms).
 * 0 or MAOS_EINVALID_ARG for a negative value. */
int maos_set_timeout(maos_ctx *c, int timeout_ms);

/* The server's frame limit from the hello reply (0 before a handshake). */
uint32_t maos_max_frame(const maos_ctx *c);
/* The server's name from hello ("maosd 0.1.0"); a NUL-terminated string
 * owned by the context, "" before a handshake. */
const char *maos_server_name(const maos_ctx *c);

/* 1 when err is a sticky connection error (the context is dead), else 0. */
int maos_err_is_fatal(int err);

/*
 * Details of the last server refusal (valid until the next call on c):
 * maos_err_actual: for MAOS_EWRONG_EXPECTED_VERSION, 1 and *actual = the
 *   stream's current version (-1 when the stream does not exist); else 0.
 * maos_err_index: for a failed maos_txn, which append (0-based) failed, or
 *   -1 when the server did not say (or the last call was not a txn).
 */
int maos_err_actual(const maos_ctx *c, int64_t *actual);
int64_t maos_err_index(const maos_ctx *c);

/* ---- writing events -------------------------------------------------------- */

/* Expected versions (same values as maos/proto.h):
 *   >= 0                  the stream's last event has exactly this version
 *   MAOS_EXPECT_ANY       no check
 *   MAOS_EXPECT_NO_STREAM the stream has no events yet
 *   MAOS_EXPECT_EXISTS    the stream has at least one event
 * These macros come from maos/proto.h. */

/* One event to append.  Only read during the call. */
typedef struct maos_event_spec {
    const uint8_t *id;  /* 16 bytes of UUID, or NULL: the server makes a
                         * UUIDv7.  Give ids to make retries idempotent. */
    const char *type;   /* NUL-terminated, 1..255 bytes of UTF-8 */
    const void *data;   /* exactly one msgpack value; NULL/0 bytes: nil */
    size_t data_len;
    const void *meta;   /* one msgpack map; NULL/0 bytes: {} */
    size_t meta_len;
} maos_event_spec;

/*
 * Result of one append.  Event i of the append (0-based) got version
 * version + i and position position + i (an append is contiguous in the
 * global log).
 *
 * ids: IN, set by the caller before the call: NULL, or an array with room
 * for ids_cap ids; the library copies the first min(count, ids_cap) event
 * ids into it (useful to learn the ids the server generated).  The caller
 * owns that array.  In a maos_reply_msg the library sets ids to its own
 * copy (ids_cap == count), owned by the message.
 */
typedef struct maos_append_info {
    uint64_t version;   /* stream version of the first event */
    uint64_t position;  /* global position of the first event */
    uint32_t count;     /* number of events */
    int duplicate;      /* 1: idempotent re-send; nothing was written and
                         * version/position are the original ones */
    uint8_t (*ids)[16]; /* see above */
    size_t ids_cap;
} maos_append_info;

/* One append of a transaction. */
typedef struct maos_txn_append {
    const char *stream;  /* NUL-terminated */
    int64_t expect;      /* as for maos_append */
    const maos_event_spec *events;
    size_t n_events;
} maos_txn_append;

/*
 * Append n events (1..10,000) to stream, all or nothing, if the stream is at
 * the expected version.  On success returns 0 and fills *out (may be NULL;
 * out->ids/ids_cap are inputs, see maos_append_info).
 *
 * Errors: MAOS_EWRONG_EXPECTED_VERSION (maos_err_actual gives the actual
 * version), MAOS_EINVALID_NAME, MAOS_EINVALID_ID, MAOS_ECONFLICT (an id
 * reused for another event or stream), MAOS_EREAD_ONLY, MAOS_EINVALID_ARG
 * (NULL stream/type, n == 0, data or meta not one well-formed msgpack
 * value / map), MAOS_EFRAME_TOO_LARGE, MAOS_EBUSY, connection errors.
 */
int maos_append(maos_ctx *c, const char *stream, int64_t expect,
                const maos_event_spec *events, size_t n,
                maos_append_info *out);

/*
 * Append to several streams atomically (n appends, 1..100), each with its
 * own expected version: all are written or none.  out: NULL or an array of
 * n results, in the order of appends (ids/ids_cap of each are inputs).
 * On a refusal, maos_err_index(c) says which append failed and, for
 * MAOS_EWRONG_EXPECTED_VERSION, maos_err_actual its stream's version.
 * Errors as for maos_append.
 */
int maos_txn(maos_ctx *c, const maos_txn_append *appends, size_t n,
             maos_append_info *out);

/* Round trip to the server.  0 or an error. */
int maos_ping(maos_ctx *c);

/* ---- reading events --------------------------------------------------------- */

/* `from` meaning "no starting point": a forward read starts at the first
 * event, a backward read at the last.  Both names have the same value;
 * use whichever reads well for the direction. */
#define MAOS_FROM_START UINT64_MAX
#define MAOS_FROM_END UINT64_MAX

/* One stored event.  Every pointer is a view into the page that holds the
 * event and is valid until maos_page_free(page).  Strings are NOT
 * NUL-terminated: print them with "%.*s", (int)len, ptr. */
typedef struct maos_event {
    uint64_t position;     /* in the global log, from 1 */
    uint64_t version;      /* in its stream, from 0 */
    int64_t time;          /* commit time, microseconds since the epoch, UTC */
    const char *stream;
    size_t stream_len;
    const char *type;
    size_t type_len;
    uint8_t id[16];        /* UUID */
    uint8_t prev[32];      /* BLAKE2b-256 of the previous record (zeros at 1) */
    const void *data;      /* one raw msgpack value */
    size_t data_len;
    const void *meta;      /* one raw msgpack map */
    size_t meta_len;
    const void *raw;       /* the whole stored record (what prev hashes) */
    size_t raw_len;
} maos_event;

/*
 * A page of events.  Allocated by maos_read / maos_read_all; the caller
 * frees it with maos_page_free, which releases the events and everything
 * they point to.
 *
 * has_next: 1 when the read may go on: call again with from = next (a
 * version for maos_read, a position for maos_read_all) in the same
 * direction.  0 means the end was reached.  A maos_read_all page can hold
 * fewer events than the limit, even none, and still have has_next: the
 * server scans a bounded slice of the log per request.  Only has_next == 0
 * means the end.
 */
typedef struct maos_page {
    size_t n;
    maos_event *events;  /* n events, in read order */
    int has_next;
    uint64_t next;
    void *mem_;          /* private */
} maos_page;

void maos_page_free(maos_page *p);

/*
 * Read up to limit events of one stream starting at version `from`
 * (inclusive), forward (backward == 0) or backward.  from may be
 * MAOS_FROM_START / MAOS_FROM_END; limit 0 means MAOS_READ_LIMIT_DEFAULT,
 * and a limit above MAOS_READ_LIMIT_MAX is lowered to it (has_next then
 * says there is more).
 * On success *out is a new page (possibly with n == 0).
 * Errors: MAOS_ENOT_FOUND (no such stream), MAOS_EINVALID_NAME,
 * MAOS_EINVALID_ARG, MAOS_EBUSY, connection errors.
 */
int maos_read(maos_ctx *c, const char *stream, uint64_t from, int backward,
              uint32_t limit, maos_page **out);

/* Server-side filter for maos_read_all.  Unset parts match everything; set
 * parts must all match.  Only read during the call. */
typedef struct maos_read_filter {
    const char *stream;      /* exact stream name, or NULL */
    const char *prefix;      /* stream name prefix, or NULL */
    const char *category;    /* part of the stream before the first '-', or NULL */
    const char *const *types;/* n_types event types (any of them), or NULL */
    size_t n_types;          /* at most 64 */
    int has_since, has_until;
    int64_t since, until;    /* event time, microseconds UTC, inclusive */
} maos_read_filter;

/*
 * Read the global log ($all) from position `from` (inclusive; or
 * MAOS_FROM_START / MAOS_FROM_END), forward or backward, up to limit
 * events matching f (NULL: no filter).  See maos_page about paging.
 * Errors: MAOS_EINVALID_ARG, MAOS_ELIMIT, MAOS_EBUSY, connection errors.
 */
int maos_read_all(maos_ctx *c, const maos_read_filter *f, uint64_t from,
                  int backward, uint32_t limit, maos_page **out);

/* ---- listing streams ------------------------------------------------------- */

typedef struct maos_stream_entry {
    const char *stream;      /* view into the page, NOT NUL-terminated */
    size_t stream_len;
    uint64_t head;           /* version of the last event */
    uint64_t count;          /* number of events (head + 1) */
    uint64_t last_position;  /* position of the last event */
} maos_stream_entry;

/* Freed by maos_stream_page_free.  next is a NUL-terminated copy owned by
 * the page: pass it as `after` to get the next page (when has_next). */
typedef struct maos_stream_page {
    size_t n;
    maos_stream_entry *streams; /* in name (byte) order */
    int has_next;
    const char *next;           /* "" when !has_next */
    void *mem_;                 /* private */
} maos_stream_page;

void maos_stream_page_free(maos_stream_page *p);

/*
 * List streams whose name starts with prefix (NULL or "": all), after the
 * name `after` (exclusive; NULL or "": from the first), up to limit
 * (0: server default).  *out is a new page.
 */
int maos_streams(maos_ctx *c, const char *prefix, const char *after,
                 uint32_t limit, maos_stream_page **out);

/* ---- stats ------------------------------------------------------------------ */

/* Daemon counters; the numeric fields are MAOS_STATS_MAP of maos/proto.h.
 * A plain value: the strings are copies inside the struct. */
typedef struct maos_stats_info {
#define MAOS_STATS_INFO_FIELD_(name) uint64_t name;
    MAOS_STATS_MAP(MAOS_STATS_INFO_FIELD_)
#undef MAOS_STATS_INFO_FIELD_
    char server[64];     /* "maosd 0.1.0" */
    char state[16];      /* "ok" or "read_only" */
    char durability[16]; /* "sync" or "none" */
} maos_stats_info;

/* 0 and *out filled, or an error. */
int maos_stats_get(maos_ctx *c, maos_stats_info *out);

/* ---- pipelining --------------------------------------------------------------- */

/*
 * Queue an append (same arguments and checks as maos_append) in the output
 * buffer without waiting for its reply; *rid (may be NULL) gets the request
 * id its reply will carry.  The buffer is written to the socket when it
 * grows large (while writing, replies that arrive are read and kept, so a
 * long pipeline cannot deadlock against the server); call maos_flush to
 * send everything queued.  Returns 0 or an error; after an error nothing
 * of this request was queued.
 */
int maos_append_send(maos_ctx *c, const char *stream, int64_t expect,
                     const maos_event_spec *events, size_t n, uint64_t *rid);
/* Queue a transaction (as maos_txn). */
int maos_txn_send(maos_ctx *c, const maos_txn_append *appends, size_t n,
                  uint64_t *rid);

/* Write all queued output.  0 or a connection error. */
int maos_flush(maos_ctx *c);

/* Number of requests sent or queued whose replies were not yet returned by
 * maos_reply_recv. */
size_t maos_pending(const maos_ctx *c);

/*
 * One reply.  Freed with maos_reply_msg_free; every pointer inside is owned
 * by the message.
 */
typedef struct maos_reply_msg {
    uint64_t rid;          /* the request this answers (the caller knows
                            * from it whether it was an append or a txn).
                            * 0 only for an error about a request whose rid
                            * the server could not read (see PROTOCOL.md,
                            * "Frames"); the library checks requests so this
                            * should not happen: it answers one unknown
                            * outstanding request. */
    int code;              /* 0: success; else the server's negative MAOS_E* */
    const char *errstr;    /* server message, NUL-terminated; "" on success */
    int has_actual;        /* MAOS_EWRONG_EXPECTED_VERSION: actual version */
    int64_t actual;
    int64_t index;         /* failed txn: which append; else -1 */
    size_t n_results;      /* on success: 1 for an append, n for a txn */
    maos_append_info *results; /* n_results results, ids set (see above) */
    void *mem_;            /* private */
} maos_reply_msg;

/*
 * Return the next reply, in arrival order (not necessarily send order),
 * flushing queued output first and blocking until one arrives.  A server
 * refusal is not a failure of this call: it returns 0 with (*out)->code set
 * and does not touch c->err.  Returns 0 with *out == NULL when nothing is
 * pending.  Fails only with connection errors (sticky) or MAOS_ENOMEM.
 */
int maos_reply_recv(maos_ctx *c, maos_reply_msg **out);
void maos_reply_msg_free(maos_reply_msg *m);

/* ---- small helpers ----------------------------------------------------------- */

/* Format microseconds since the epoch as RFC 3339 UTC with microseconds,
 * "2026-11-25T18:07:54.123456Z", into buf (at least 28 bytes, 32 is safe).
 * Returns the length, or MAOS_EINVALID_ARG when it does not fit. */
int maos_time_format(int64_t us, char *buf, size_t len);
/* Parse RFC 3339 ("2026-11-25T18:07:54Z", optional fraction up to 9
 * digits (truncated to microseconds), 'Z' or +hh:mm/-hh:mm, 't'/'z'/' '
 * accepted), a bare date "2026-11-25" (midnight UTC), or a plain integer
 * of microseconds since the epoch.  0 and *us set, or MAOS_EINVALID_ARG. */
int maos_time_parse(const char *text, int64_t *us);

#ifdef __cplusplus
}
#endif
#endif
