/*
 * maos/client.h -- libmaos-client: a thin, hiredis-like client for maosd.
 *
 * One maos_ctx is one Unix-socket connection to maosd.  The synchronous
 * calls block; the asynchronous ones (maos_async_*) and maos_process never
 * do (event loops: see "Asynchronous requests"); every wait for the server
 * is bounded (see "Timeouts" below: by default 10 s to connect and say
 * hello, 30 s without progress on a request), so a server that accepts
 * and never answers cannot hang the caller.  Before a single byte is
 * sent, the library checks who owns the socket's directory and who runs
 * the server (see "Trust" below).
 *
 * Layers, all over one pipeline in which every request has its own request
 * id (rid) and every reply is matched to its request by rid:
 *  - asynchronous requests (maos_async_*): every one-round-trip request,
 *    queued without waiting, its callback run from maos_process; any
 *    number in flight, completing in any order;
 *  - the synchronous layer (maos_ping, maos_append, maos_read, maos_put,
 *    ...): the same request, then a wait for its own reply only.  It may be
 *    called while other requests (async, pipelined) are in flight, from a
 *    callback too; it does not take their replies;
 *  - the older pipelined layer (maos_append_send, maos_txn_send,
 *    maos_flush, maos_reply_recv): appends and txns whose replies are
 *    collected with maos_reply_recv;
 *  - subscriptions: pushes the daemon sends on its own, taken blocking
 *    (maos_next) or from an event loop (maos_fd + maos_process, with loop
 *    hooks and header-only adapters such as maos/adapters/libuv.h).
 *
 * Errors (docs/ARCHITECTURE.md "House rules").  Every failing call returns a negative MAOS_E*
 * (maos/errors.h) and sets ctx->err and ctx->errstr (for a server refusal,
 * errstr holds the server's message).  A successful call leaves err alone
 * when it is 0 and never writes an out-parameter on failure.
 *  - Connection errors are sticky: MAOS_ECONNECT, MAOS_EIO, MAOS_ECLOSED,
 *    MAOS_EPROTO (a malformed reply, or one that lacks a field the
 *    protocol promises for its request: PROTOCOL.md, maos_reply_check),
 *    MAOS_ETIMEOUT (a late reply could still arrive, so the stream of
 *    replies can no longer be trusted), MAOS_EUNTRUSTED_SERVER (see
 *    "Trust"), and a failed handshake (MAOS_EPROTOCOL_VERSION,
 *    MAOS_EHELLO_REQUIRED).  The context is dead:
 *    every later call fails at once with the same err.  Free it and
 *    connect again.  maos_err_is_fatal() tells the two kinds apart; in
 *    doubt, maos_is_dead(c) is the definitive "dead" test (e.g. an
 *    out-of-memory while a reply was being received also kills the
 *    context, since that reply is lost).
 *  - Everything else is per call and not sticky: server refusals
 *    (MAOS_EWRONG_EXPECTED_VERSION, MAOS_ENOT_FOUND, MAOS_EBAD_REQUEST, ...),
 *    MAOS_EINVALID_ARG (caught before anything was sent),
 *    MAOS_EFRAME_TOO_LARGE (the request would exceed the server's
 *    max_frame; nothing was sent), MAOS_ELIMIT (the encoded request would
 *    break the wire's nesting/element limits, e.g. data nested close to 64
 *    levels; nothing was sent), and MAOS_ENOMEM when nothing was sent.
 *    The next call clears err.
 *  - With reconnect on (see "Reconnect and resume"), connection errors
 *    fail the call that meets them (except a request safe to send twice,
 *    or not written yet: the library sends it again after reconnecting,
 *    see "Asynchronous requests") but the context reconnects; it dies
 *    only when reconnecting gives up, the handshake is refused, the reply
 *    stream is broken (MAOS_EPROTO) or the server is not trusted
 *    (MAOS_EUNTRUSTED_SERVER is never retried).
 *  - maos_next's MAOS_ETIMEOUT ("nothing arrived in time") is the one
 *    timeout that is not a connection error.
 *
 * The library never logs, never calls exit(), never installs signal
 * handlers (writes use MSG_NOSIGNAL, so a closed peer is MAOS_ECLOSED, not
 * SIGPIPE).
 *
 * Threads: the library starts none, except the keeper of maos_worker_run
 * (its own context, ended before maos_worker_run returns).
 *
 * Thread-safety: a maos_ctx may be used by one thread at a time (callers
 * that share one must lock around every call, including the pipelined
 * send/recv pairs; maos_process runs its callbacks on the calling thread,
 * inside that call).  Distinct contexts are fully independent, and pages,
 * deliveries and stats returned by the library belong to the caller
 * and can be handed to other threads (a maos_result of maos_reply_recv
 * too, but its getters may touch its context: call them on the context's
 * thread).  After fork(), only one of the two
 * processes may go on using a context; the other must maos_free() it.
 *
 * Ownership, in short: every object the library returns through a `**out`
 * is freed by the caller with the matching *_free function (each accepts
 * NULL).  Pointers inside a page, delivery or result (stream names, data,
 * meta: maos_str and const char * fields) are views into that object's
 * buffer and stay valid until it is freed.  Input buffers are only read
 * during the call; the one exception are output buffers passed in an
 * input struct (maos_txn_append.ids, maos_txn_item.ids), written on
 * success before the call returns.
 */
#ifndef MAOS_CLIENT_H
#define MAOS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "maos/consts.h"
#include "maos/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAOS_CLIENT_VERSION "0.1.0"

/*
 * The client API is self-contained: it includes maos/consts.h (the
 * protocol's constants: MAOS_EXPECT_*, MAOS_FROM_*, MAOS_WATCH_FROM_*,
 * MAOS_ITEM_*, MAOS_PUSH_*, limits) and maos/errors.h, never the wire's
 * structures (maos/proto.h, msgpack-c): every type below is the client's
 * own, so the wire library can change without changing this ABI.
 */

/* Bytes owned by someone else (the page, delivery or result that holds
 * them): NOT NUL-terminated, print with "%.*s", (int)s.len, s.ptr.  A
 * field that is absent has len 0 (and ptr may be NULL). */
typedef struct maos_str {
    const char *ptr;
    size_t len;
} maos_str;

/* The answer to one request: lent to an async callback, or owned by the
 * caller from maos_reply_recv.  Opaque; read with the maos_result_*
 * getters ("Asynchronous requests"). */
typedef struct maos_result maos_result;

/* ---- connection ----------------------------------------------------------- */

typedef struct maos_ctx {
    int err;           /* 0 or the negative MAOS_E* of the last failing call */
    char errstr[256];  /* NUL-terminated human message for err */
    struct maos_ctx_priv *priv; /* library-private */
} maos_ctx;

/*
 * Timeouts.  Two bounds, both on by default:
 *  - connect + hello: one deadline for the whole connect phase (socket
 *    checks, connect(), hello and its reply), on the first connect and on
 *    every reconnect attempt.  Default MAOS_CONNECT_TIMEOUT_DEFAULT_MS.
 *  - requests: after the handshake, a call fails when nothing at all
 *    happens on the socket (no byte written or read) for timeout_ms while
 *    it waits for the server (an inactivity bound: a large reply that keeps
 *    arriving is never cut off).  Default MAOS_REQUEST_TIMEOUT_DEFAULT_MS.
 * Either ends in MAOS_ETIMEOUT, a sticky connection error ("timed out: no
 * reply from PATH for N ms (request timeout)"; with reconnect on, the
 * context reconnects).  The outcome of a write in flight is then unknown:
 * retry it with event ids.  MAOS_TIMEOUT_NONE asks for no bound.
 * maos_next's own timeout_ms argument is separate: it bounds the wait for
 * a delivery, which may rightly take for ever.
 */
#define MAOS_TIMEOUT_NONE (-1)
#define MAOS_CONNECT_TIMEOUT_DEFAULT_MS 10000
#define MAOS_REQUEST_TIMEOUT_DEFAULT_MS 30000

/*
 * Trust.  The library refuses to talk to a socket another local user could
 * have put in its way (for instance /tmp/maos-$UID, created by someone else
 * before the daemon started, with a fake server that would receive the
 * caller's events and claim they were stored).  On every connect,
 * reconnects included:
 *  1. before connect(): the socket's directory must be a real directory
 *     (lstat: not a symlink) owned by a trusted uid and not writable by
 *     group or others.  A sticky directory writable by others (/tmp
 *     itself) is accepted only when the socket file in it is a socket (not
 *     a symlink) owned by a trusted uid;
 *  2. after connect(), before any byte is sent (hello included): the
 *     server's uid (SO_PEERCRED) must be a trusted uid.
 * Trusted uids: the caller's effective uid, root, server_uid below (or
 * $MAOS_SERVER_UID), and the owner of /run/maos when /run is owned by root
 * and writable by no one else (only root can have created it there:
 * systemd's RuntimeDirectory=maos gives it to the `maos` service user, so
 * the packaged daemon needs no configuration).  A refusal is
 * MAOS_EUNTRUSTED_SERVER, sticky and never retried, with errstr naming the
 * path, the directory and the uid it found.  maosd refuses to serve in a
 * directory that fails the same test for its own uid (daemon/server.c
 * ensure_socket_dir; with socket_group it lets the group write).
 */

typedef struct maos_options {
    const char *path;        /* socket path; NULL: see maos_default_socket() */
    int timeout_ms;          /* request bound (see "Timeouts"): > 0 ms; 0:
                              * MAOS_REQUEST_TIMEOUT_DEFAULT_MS;
                              * MAOS_TIMEOUT_NONE: none */
    const char *client_name; /* sent in hello for the daemon's log;
                              * NULL: "libmaos-client" */
    int reconnect;           /* 1: reconnect and resume after a lost
                              * connection (see "Reconnect and resume") */
    int reconnect_max_ms;    /* give up after this long without a
                              * connection; 0: MAOS_RECONNECT_MAX_MS */
    int connect_timeout_ms;  /* connect + hello bound: > 0 ms; 0: timeout_ms
                              * when that is > 0, else
                              * MAOS_CONNECT_TIMEOUT_DEFAULT_MS;
                              * MAOS_TIMEOUT_NONE: none */
    uid_t server_uid;        /* one more uid the server may run as (see
                              * "Trust"); 0: $MAOS_SERVER_UID when set (a
                              * decimal uid), else none */
    int client_ids;          /* MAOS_CLIENT_IDS: 1: every event appended
                              * without an id gets a UUIDv7 made by the
                              * library, so that every append and txn is
                              * safe to re-send: with reconnect on, the
                              * library re-sends those in flight when the
                              * connection is lost (see "Asynchronous
                              * requests"); maos_append_ids and the like
                              * give the ids stored, as usual */
} maos_options;
#define MAOS_CLIENT_IDS 1

/*
 * Connect to maosd and do the hello handshake (MAOS_PROTOCOL_VERSION).
 *
 * Always returns a context, except NULL when memory for it cannot be
 * allocated.  On failure the context has err set (MAOS_ECONNECT when the
 * socket cannot be reached or MAOS_SERVER_UID is not a number,
 * MAOS_EUNTRUSTED_SERVER when the socket's directory or the server's uid
 * is not trusted, MAOS_EPROTOCOL_VERSION / MAOS_EPROTO / MAOS_ETIMEOUT /
 * MAOS_ECLOSED when the handshake fails, MAOS_EUNAUTHENTICATED when the
 * daemon refuses the access token of $MAOS_TOKEN or maos_connect_token)
 * and is dead.
 * The caller frees it with maos_free() in both cases.
 * opt may be NULL (all defaults).  opt->path is copied.
 */
maos_ctx *maos_connect_with(const maos_options *opt);
/*
 * The same without blocking, for event loops: returns at once (NULL only
 * out of memory) with a context that is connecting: the socket connect
 * and the hello handshake are begun now and completed by maos_process as
 * the loop reports the socket (maos_loop_ops / maos_loop_hooks, told at
 * once when installed).  While the daemon is not there yet (no socket,
 * refused), attempts are made as reconnects are (see "Reconnect and
 * resume": at once, then after 50 ms doubling up to 2 s) until
 * connect_timeout_ms after this call (MAOS_TIMEOUT_NONE: for ever); then
 * the context dies with the last error ("gave up connecting").  Requests
 * issued meanwhile (async ones, maos_subscribe's async form, ...) are
 * queued and sent after the handshake; a synchronous call waits for the
 * connection (blocking, as on a reconnect).  Not connected yet is not an
 * error: test maos_is_dead(c), not c->err, and maos_fd(c) is -1 until an
 * attempt began.  A refusal that no retry can mend (an untrusted socket
 * or server, a refused hello) kills the context at once.  Whether
 * reconnects follow later is opt->reconnect's business, as always;
 * maos_reconnects() does not count this first connect.
 */
maos_ctx *maos_async_connect(const maos_options *opt);
/*
 * maos_connect_with / maos_async_connect saying hello with an access token
 * (its text, as `maosctl token create` printed it; copied, and sent again
 * on every reconnect).  token NULL or "": $MAOS_TOKEN when set and not
 * empty, else none -- which is what maos_connect_with and
 * maos_async_connect do.  The connection then has the token's scopes
 * within what its uid may do.  A token the daemon does not take (unknown,
 * revoked, expired, for another uid, malformed) fails the handshake with
 * MAOS_EUNAUTHENTICATED, never retried.
 */
maos_ctx *maos_connect_token(const maos_options *opt, const char *token);
maos_ctx *maos_async_connect_token(const maos_options *opt, const char *token);
/* maos_connect_with({ .path = path }). */
maos_ctx *maos_connect(const char *path);
/* maos_connect_with({ .path = path, .timeout_ms = timeout_ms }): timeout_ms
 * bounds the connect phase and requests alike (0: the defaults). */
maos_ctx *maos_connect_timeout(const char *path, int timeout_ms);

/* Close the socket and free the context and everything it still holds
 * (queued output, unreceived replies).  Accepts NULL. */
void maos_free(maos_ctx *c);

/*
 * The socket path maos_connect(NULL) uses: $MAOS_SOCKET when set and not
 * empty; else, as root, /run/maos/maosd.sock; else
 * $XDG_RUNTIME_DIR/maos/maosd.sock, or /tmp/maos-$UID/maosd.sock when
 * XDG_RUNTIME_DIR is unset or empty (the trust checks above refuse that
 * directory when someone else created it).  Writes it NUL-terminated into
 * buf[0..len) and returns buf, or NULL when it does not fit.
 */
const char *maos_default_socket(char *buf, size_t len);

/* The socket descriptor (owned by the context: do not close it), or -1
 * when the context is dead or reconnecting.  It changes on a reconnect. */
int maos_fd(const maos_ctx *c);

/* Change the request bound of later calls (as maos_options.timeout_ms: > 0
 * ms, 0 the default, MAOS_TIMEOUT_NONE none); reconnects keep the connect
 * bound given at connect time.  0 or MAOS_EINVALID_ARG for another
 * negative value. */
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
/*
 * maos_err_entry: after maos_put or maos_delete failed with
 * MAOS_EWRONG_REVISION on an entry that exists, 0 and *out = that entry as
 * the daemon found it (a page of one, owned by the caller: free it with
 * maos_table_page_free), so a compare-and-set loop retries from it without
 * a maos_get.  MAOS_ENOT_FOUND when the last call's refusal carried no
 * entry (the entry is absent, the call was not such a refusal, or it was a
 * txn: its earlier items' writes were rolled back); MAOS_ENOMEM; MAOS_EPROTO (connection dropped) for a
 * malformed entry.  Valid until the next call on c.
 */
struct maos_table_page;
int maos_err_entry(maos_ctx *c, struct maos_table_page **out);

/* ---- writing events -------------------------------------------------------- */

/* Expected versions (maos/consts.h):
 *   >= 0                  the stream's last event has exactly this version
 *   MAOS_EXPECT_ANY       no check
 *   MAOS_EXPECT_NO_STREAM the stream has no events yet
 *   MAOS_EXPECT_EXISTS    the stream has at least one event
 * These macros come from maos/consts.h. */

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
 * Result of one append (output only).  Event i of the append (0-based) got
 * version version + i and position position + i (an append is contiguous
 * in the global log).  The events' ids (the caller's, or those the server
 * made) come through a separate buffer: maos_append_ids,
 * maos_txn_append.ids, maos_result_append_ids.
 */
typedef struct maos_append_info {
    uint64_t version;   /* stream version of the first event */
    uint64_t position;  /* global position of the first event */
    uint32_t count;     /* number of events */
    int duplicate;      /* 1: idempotent re-send; nothing was written and
                         * version/position are the original ones */
} maos_append_info;

/* One append of a transaction.  Only read during the call, except ids. */
typedef struct maos_txn_append {
    const char *stream;  /* NUL-terminated */
    int64_t expect;      /* as for maos_append */
    const maos_event_spec *events;
    size_t n_events;
    uint8_t (*ids)[16];  /* NULL, or the caller's array with room for
                          * n_events ids: on success (maos_txn, sync only)
                          * it gets the stored events' ids, in order */
} maos_txn_append;

/*
 * Append n events (1..10,000) to stream, all or nothing, if the stream is at
 * the expected version.  On success returns 0 and fills *out (may be NULL).
 *
 * Errors: MAOS_EWRONG_EXPECTED_VERSION (maos_err_actual gives the actual
 * version), MAOS_EINVALID_NAME, MAOS_EINVALID_ID, MAOS_ECONFLICT (an id
 * reused for another event or stream), MAOS_EOUTCOME_UNKNOWN (the storage
 * write failed after it started: the append may be stored; re-send it with
 * the same event ids after maosd restarts), MAOS_EREAD_ONLY (refused, not
 * written), MAOS_EINVALID_ARG
 * (NULL stream/type, n == 0, data or meta not one well-formed msgpack
 * value / map), MAOS_EFRAME_TOO_LARGE, connection errors.
 */
int maos_append(maos_ctx *c, const char *stream, int64_t expect,
                const maos_event_spec *events, size_t n,
                maos_append_info *out);
/* maos_append, and on success ids (NULL, or the caller's array with room
 * for n ids) gets the stored events' ids in order: the caller's, or those
 * the server (or MAOS_CLIENT_IDS) made. */
int maos_append_ids(maos_ctx *c, const char *stream, int64_t expect,
                    const maos_event_spec *events, size_t n, maos_append_info *out,
                    uint8_t (*ids)[16]);

/*
 * Append to several streams atomically (n appends, 1..100), each with its
 * own expected version: all are written or none.  out: NULL or an array of
 * n results, in the order of appends; appends[i].ids, when set, gets the
 * ids of append i.  maos_txn_send and maos_async_txn ignore .ids (read
 * them from the result: maos_result_append_ids).
 * On a refusal, maos_err_index(c) says which append failed and, for
 * MAOS_EWRONG_EXPECTED_VERSION, maos_err_actual its stream's version.
 * Errors as for maos_append.
 */
int maos_txn(maos_ctx *c, const maos_txn_append *appends, size_t n,
             maos_append_info *out);

/* The outcome of one append of maos_append_batch. */
typedef struct maos_batch_outcome {
    int status;          /* 0: written (or an idempotent re-send), info set;
                          * else why this append was refused (negative
                          * MAOS_E*: MAOS_EWRONG_EXPECTED_VERSION,
                          * MAOS_ECONFLICT, ...) and nothing of it written */
    maos_append_info info;
    int has_actual;      /* MAOS_EWRONG_EXPECTED_VERSION: the stream's */
    int64_t actual;      /* version (-1: no stream) */
    char message[256];   /* the refusal's text (status != 0) */
} maos_batch_outcome;

/*
 * Many independent appends in one request (PROTOCOL.md "append_batch"):
 * n appends (1..10,000, their events 1..10,000 in all), each checked and
 * written on its own, in order (a stream may come more than once: a later
 * append sees the earlier), each all or none -- not a transaction: one
 * append's refusal does not stop the others.  Every written append is
 * durable when this returns (as maos_append).  The cheap way to send many
 * small appends: one frame and one reply instead of n.
 *
 * Returns 0 when the request was answered: out[i] (an array of n, the
 * caller's) then holds each append's outcome, and appends[i].ids, when
 * set, gets the ids of a written append i.  A negative return is a refusal
 * of the whole request before anything was written (MAOS_EBAD_REQUEST,
 * MAOS_EINVALID_NAME, MAOS_ELIMIT, MAOS_EFORBIDDEN: maos_err_index says
 * which append), MAOS_EOUTCOME_UNKNOWN (the storage write failed: any of
 * them may be stored), MAOS_EREAD_ONLY, MAOS_EINVALID_ARG or a connection
 * error.  Same thread rules as maos_append.
 */
int maos_append_batch(maos_ctx *c, const maos_txn_append *appends, size_t n,
                      maos_batch_outcome *out);

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
 * MAOS_EINVALID_ARG, connection errors.
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
 * Errors: MAOS_EINVALID_ARG, MAOS_ELIMIT, connection errors.
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

/*
 * Daemon counters (PROTOCOL.md "stats"), two ways:
 *
 * maos_stats_info, a plain value (the strings are copies inside it), is
 * FROZEN: its fields are the counters of protocol 1 as of libmaos-client
 * 1.0 (MAOS_STATS_MAP_V1 of maos/consts.h, a list never changed), in this
 * order, for ever (the struct never grows, so a program built
 * against it keeps working with any later library).  Counters a later
 * daemon adds are not in it: read them by name with the key/value form.
 *
 * maos_stats_kv, the extensible form: every counter the daemon sent
 * (numbers: uint; texts: server, state, durability, data_dir, ...), in the
 * daemon's order, including those this library does not know.  Iterate
 * with maos_stats_next or look one up with maos_stats_find /
 * maos_stats_text.  Owned by the caller (maos_stats_kv_free); names and
 * texts are NUL-terminated views into it.
 */
typedef struct maos_stats_info {
#define MAOS_STATS_INFO_FIELD_(name) uint64_t name;
    MAOS_STATS_MAP_V1(MAOS_STATS_INFO_FIELD_) /* maos/consts.h: frozen */
#undef MAOS_STATS_INFO_FIELD_
    char server[64];     /* "maosd 0.1.0" */
    char state[16];      /* "ok" or "read_only" */
    char durability[16]; /* "sync" or "none" */
    char data_dir[256];  /* the daemon's data directory ("" from an older
                          * daemon; cut at 255 bytes) */
    uint8_t head_hash[32]; /* BLAKE2b-256 of the record at head_position,
                            * as the daemon stored it (zeros: empty log);
                            * maosctl verify checks the newest event
                            * against it */
} maos_stats_info;

/* 0 and *out filled, or an error. */
int maos_stats_get(maos_ctx *c, maos_stats_info *out);

typedef struct maos_stats_kv maos_stats_kv;
/* Every counter: 0 and *out (free with maos_stats_kv_free), or an error.
 * The same request as maos_stats_get. */
int maos_stats_get_kv(maos_ctx *c, maos_stats_kv **out);
/* The next numeric counter, from the first: 1 with *name (may be NULL)
 * and *value (may be NULL) set, or 0 after the last one (and on every
 * later call).  maos_stats_rewind starts over. */
int maos_stats_next(maos_stats_kv *kv, const char **name, uint64_t *value);
void maos_stats_rewind(maos_stats_kv *kv);
/* One numeric counter by name: 0 and *value, or MAOS_ENOT_FOUND (not
 * sent by this daemon: older, or no such counter), MAOS_EINVALID_ARG. */
int maos_stats_find(const maos_stats_kv *kv, const char *name, uint64_t *value);
/* One text by name (server, state, durability, data_dir): a
 * NUL-terminated view into kv, or NULL when not sent. */
const char *maos_stats_text(const maos_stats_kv *kv, const char *name);
/* Accepts NULL. */
void maos_stats_kv_free(maos_stats_kv *kv);

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
 * Return the next reply, in arrival order (not necessarily send order),
 * flushing queued output first and blocking until one arrives, as a
 * maos_result (the one reply type of the library, as an async callback
 * gets it; read it with maos_result_rid, maos_result_status,
 * maos_result_errstr / _actual / _index, maos_result_count,
 * maos_result_append and maos_result_append_ids).  The caller owns it:
 * free it with maos_result_free, before maos_free(c).  A server refusal
 * is not a failure of this call: it returns 0 with maos_result_status
 * set and does not touch c->err.  Returns 0 with *out == NULL when
 * nothing is pending.  Fails only with connection errors (sticky) or
 * MAOS_ENOMEM.
 * maos_result_rid tells which request it answers (the caller knows from
 * it whether it was an append or a txn); 0 only for an error about a
 * request whose rid the server could not read (see PROTOCOL.md,
 * "Frames"), which the library's checks should prevent: it answers one
 * unknown outstanding request.
 * The library remembers which request each rid was (append or txn): a
 * reply to a request it did not send or already answered, or one that
 * lacks a field promised for that request (an append reply without
 * first_version, a txn reply without results, ...), is MAOS_EPROTO.
 */
int maos_reply_recv(maos_ctx *c, maos_result **out);
/* Free a result of maos_reply_recv.  Accepts NULL.  (A callback's result
 * is the library's: never free it.) */
void maos_result_free(maos_result *r);

/* ---- subscriptions and channels ------------------------------------------------ */

/*
 * A subscription asks maosd to push events to this connection: first the
 * stored events matching a filter from a starting point, then live ones,
 * each exactly once and in position order.  A channel subscription gets
 * messages published on matching channels while it exists (at most once,
 * never stored).  Several subscriptions of both kinds may share a context.
 *
 * Pushes arrive on the same socket as replies, unsolicited and interleaved
 * with them.  Whichever call reads the socket (a synchronous call waiting
 * for its reply, maos_reply_recv, maos_next, maos_process) sorts them out:
 * replies go to the caller that waits for them, pushes are decoded into
 * deliveries and queued on the context, in arrival order, until the caller
 * takes them with maos_next or maos_process.  Nothing is dropped, except
 * pushes for a subscription the caller has unsubscribed.  The queue only
 * grows while the caller makes other calls without taking deliveries; the
 * daemon stops sending (and, for event subscriptions, goes back to disk
 * reads without loss) when the socket is not read, so a caller that takes
 * its deliveries keeps the queue short.  maos_queued() tells its length.
 *
 * Subscription ids (`sub`) are chosen by the library: 1, 2, 3, ... per
 * context, never reused, and stable across reconnects (the ids the server
 * assigns are mapped internally).
 *
 * Positions: every delivery of an event subscription carries `next`, the
 * next position the subscription will consider; all positions below it
 * were considered.  To resume after a restart of the caller, save the
 * position of the last event processed (maos_checkpoint_save) and
 * subscribe again from that position + 1.
 */

/*
 * A table entry as read (get, list, a watch's ENTRIES delivery): every
 * maos_str is a view into the page or delivery that holds it.
 */
typedef struct maos_table_entry {
    maos_str table;            /* "kv.plan", "sessions", ... */
    maos_str key;
    uint64_t revision;         /* position of its last change's event */
    uint64_t created_revision;
    int64_t created;           /* microseconds since the epoch */
    int64_t updated;
    maos_str data;             /* the document: one raw msgpack map */
    int bound;                 /* 1: deleted when its writer's connection
                                * closes */
    maos_str raw;              /* the whole entry, one raw msgpack map */
} maos_table_entry;

/*
 * A task as read (claim, task_get, dead_list, a claim_start delivery, a
 * worker's task): every maos_str is a view into the page or delivery that
 * holds it.
 */
typedef struct maos_task_info {
    uint8_t id[16];
    maos_str queue;
    maos_str state;            /* "ready", "delayed", "blocked", "leased",
                                * "done", "dead" */
    uint64_t attempt;
    uint64_t max_attempts;
    int64_t priority;
    maos_str data;             /* one raw msgpack value */
    maos_str meta;             /* one raw msgpack map */
    int64_t enqueued;          /* µs since the epoch */
    int64_t not_before;
    maos_str dedupe_key;       /* len 0: none */
    maos_str ordering_key;
    maos_str last_error;
    maos_str result;           /* one raw msgpack value (nil: none) */
    uint64_t token;            /* the claim's fencing token */
    int64_t lease_until;       /* µs */
    uint32_t n_history;
    maos_str history;          /* one raw msgpack array of n_history
                                * positions (the task's events) */
} maos_task_info;

/* One queue's figures (maos_queue_stats). */
typedef struct maos_queue_stat {
    maos_str queue;
    uint64_t ready, delayed, blocked, leased, done, dead, waiting;
    int64_t oldest_ready;      /* µs; 0: none ready */
} maos_queue_stat;

/* A delivery's kind is a maos_push_kind of maos/consts.h:
 *   MAOS_PUSH_EVENTS       events (n >= 1) of an event subscription
 *   MAOS_PUSH_CAUGHT_UP    the subscription has delivered everything stored
 *                          and now gets live events
 *   MAOS_PUSH_FELL_BEHIND  this connection read too slowly; the daemon went
 *                          back to reading from disk (still gap-free) and
 *                          sends CAUGHT_UP again when it is live
 *   MAOS_PUSH_MESSAGE      a channel message
 *   MAOS_PUSH_ENTRIES      a watch's entries (maos_watch) */

/*
 * One push.  Allocated by the library, freed by the caller with
 * maos_delivery_free (maos_next), or lent to a callback for the duration of
 * the call (maos_process).  Every pointer inside (events and what they
 * point to, channel, payload) is a view into the delivery's own memory:
 * one allocation per push, no per-event malloc.
 */
typedef struct maos_delivery {
    maos_push_kind kind;
    uint64_t sub;          /* the subscription it belongs to */
    uint64_t next;         /* events / caught_up / fell_behind: see above */
    size_t n;              /* events: n events in position order */
    maos_event *events;
    const char *channel;   /* message: the channel (NOT NUL-terminated) */
    size_t channel_len;
    const void *payload;   /* message: one raw msgpack value */
    size_t payload_len;
    /* MAOS_PUSH_ENTRIES (a watch's entries as of `revision`, in pages;
     * more == 0 on the last page; its changes follow as EVENTS) */
    size_t n_entries;
    maos_table_entry *entries; /* views into the delivery */
    uint64_t revision;
    int more;
    int first;             /* 1 on the first page of the entries: a
                            * second first page (see maos_watch) starts
                            * the table over */
    /* MAOS_DELIVERY_TASKS: the answer to maos_claim_start, whose rid is in
     * `sub`: n_tasks claimed tasks (views into the delivery), or none when
     * the wait ran out; code != 0: the claim failed (a refusal, or
     * MAOS_ECLOSED when the connection was lost before the answer: claim
     * again) */
    size_t n_tasks;
    maos_task_info *tasks;
    int code;
    void *mem_;            /* private */
} maos_delivery;

/* The kind of a maos_claim_start answer (not a push kind of the wire). */
#define MAOS_DELIVERY_TASKS ((maos_push_kind)MAOS_PUSH__COUNT)

void maos_delivery_free(maos_delivery *d);
/* The wire name of a push kind ("events", "caught_up", ...), static; NULL
 * for MAOS_DELIVERY_TASKS and values out of range. */
const char *maos_push_name(maos_push_kind k);

/*
 * Subscribe to events matching f (NULL: every event; the same filter as
 * maos_read_all) from:
 *   MAOS_FROM_POSITION, from   the first stored event at position >= from
 *                              (1 is the start of the log)
 *   MAOS_FROM_VERSION, from    version `from` of f->stream onwards (needs
 *                              an exact f->stream); a version not written
 *                              yet is waited for, lower versions written
 *                              meanwhile are not delivered, and a
 *                              reconnect keeps waiting for that version
 *   MAOS_FROM_LIVE, 0          only events committed after this call
 * (the constants are in maos/consts.h).  Synchronous: returns once the
 * daemon has accepted the subscription, with *sub (may be NULL) set; the
 * events come as deliveries.  Pushes that arrive meanwhile are queued.
 * Errors: MAOS_EINVALID_ARG (bad from_kind, FROM_VERSION without a stream,
 * NULL type), MAOS_EBAD_REQUEST / MAOS_EINVALID_NAME / MAOS_ELIMIT from the
 * daemon (bad filter, too many subscriptions), connection
 * errors.
 */
int maos_subscribe(maos_ctx *c, const maos_read_filter *f, int from_kind,
                   uint64_t from, uint64_t *sub);

/*
 * Subscribe to channel messages: pattern is a channel name or a glob
 * ('*' matches any run of characters, '?' one character, e.g. "task.*").  Messages published while the
 * subscription exists are delivered at most once; there is no history.
 * *sub (may be NULL) gets the id.  Errors as maos_subscribe.
 */
int maos_subscribe_channel(maos_ctx *c, const char *pattern, uint64_t *sub);

/*
 * Stop a subscription of either kind.  Deliveries of it still queued are
 * discarded, and none is returned after this call, even when it fails.
 * Errors: MAOS_ENOT_FOUND (no such subscription on this context, e.g.
 * unsubscribed twice), connection errors (with reconnect on,
 * a connection lost during the call is not an error here: the
 * subscription is gone either way).
 */
int maos_unsubscribe(maos_ctx *c, uint64_t sub);

/*
 * Publish payload (one msgpack value of len bytes; NULL/0: nil) on
 * channel.  *receivers (may be NULL) gets the number of channel
 * subscriptions it was queued to.  At most once: nothing is stored, a
 * subscriber that is disconnected or too slow misses it.
 * Errors: MAOS_EINVALID_ARG (NULL channel, bad msgpack), MAOS_EINVALID_NAME,
 * MAOS_EFRAME_TOO_LARGE, connection errors.
 */
int maos_publish(maos_ctx *c, const char *channel, const void *payload,
                 size_t len, uint64_t *receivers);

/*
 * Named checkpoints, stored durably by the daemon (e.g. "agent-7/tasks").
 * save: set name to position (overwrites).  get: 0 and *position, or
 * MAOS_ENOT_FOUND when the name was never saved.
 */
int maos_checkpoint_save(maos_ctx *c, const char *name, uint64_t position);
int maos_checkpoint_get(maos_ctx *c, const char *name, uint64_t *position);

/*
 * Online backup: the daemon makes dir (an absolute path that must not
 * exist, in a directory the daemon may write in) holding a consistent copy
 * of the whole store, taken between two commit groups while writers run
 * (they wait for a flush and hard links, not for a copy);
 * `maosd --data-dir dir` starts from it as it is.  *position (may be NULL)
 * gets the head the copy holds: every event up to it, none after it.  On
 * the data directory's file system the copy is hard links (instant, no
 * space); elsewhere the files are copied by the daemon before it answers
 * (minutes for a large store: give the context a long request timeout or
 * MAOS_TIMEOUT_NONE, as maosctl backup does; on MAOS_ETIMEOUT the copy
 * goes on in the daemon).
 * Errors: MAOS_EINVALID_ARG (NULL or relative dir), MAOS_ECONFLICT (dir
 * exists), MAOS_ENOT_FOUND (its parent does not), MAOS_EBAD_REQUEST (the
 * daemon may not write there), MAOS_EINTERNAL (I/O: the message says),
 * MAOS_EREAD_ONLY, connection errors.
 */
int maos_backup(maos_ctx *c, const char *dir, uint64_t *position);

/* ---- retention (PROTOCOL.md "stream_meta", "Retention") -------------------- */

/*
 * What to change with maos_stream_meta; a zeroed struct changes nothing
 * and only reports.  Caller-owned, read during the call only.
 *   set, max_count, max_age_ms  the retention rule (replaces the old one):
 *                    keep the last max_count events and/or the events
 *                    younger than max_age_ms (0: no such limit; both 0
 *                    with set: no rule)
 *   clear            remove the rule (not with set)
 *   truncate_before  (has_truncate_before) remove the versions below it
 *                    (at most head + 1; streams only)
 *   delete_stream    remove every event; the stream reads as deleted
 *                    until it is written again, versions go on
 * Removed events disappear from reads of the stream at once, and from
 * read_all and subscriptions of the whole log when the daemon's removal
 * pass reaches them (started at once, bounded work per pass).
 */
typedef struct maos_stream_meta_set {
    int set;
    uint64_t max_count;
    uint64_t max_age_ms;
    int clear;
    int has_truncate_before;
    uint64_t truncate_before;
    int delete_stream;
} maos_stream_meta_set;

/* What the daemon reports: the rule, and for a stream its first readable
 * version, its head (-1: never written) and whether it is deleted (for a
 * category: 0, -1, 0).  is_stream: the report is a stream's (from the
 * request; maos_result_stream_meta, which has no request, says 1 only for
 * a stream ever written). */
typedef struct maos_stream_meta_info {
    uint64_t max_count;
    uint64_t max_age_ms;
    int is_stream;
    uint64_t first_version;
    int64_t head;
    int deleted;
} maos_stream_meta_info;

/*
 * Change (set may be NULL: report only) and report the retention of
 * stream, or of every stream of category when stream is NULL (a stream's
 * own rule wins over its category's).  *out (may be NULL) gets the result.
 * Streams starting with '$' are maosd's own: a rule yes, truncate and
 * delete no (MAOS_EINVALID_NAME).  Errors: MAOS_EINVALID_ARG (neither or both of
 * stream and category, set and clear, truncate on a category),
 * MAOS_ENOT_FOUND (truncate or delete of a stream never written),
 * MAOS_EBAD_REQUEST (truncate_before past head + 1), connection errors.
 */
int maos_stream_meta(maos_ctx *c, const char *stream, const char *category,
                     const maos_stream_meta_set *set, maos_stream_meta_info *out);

/*
 * read_all of the whole log with the stubs of removed events (verify):
 * a stub is an event with the position, time, version, stream, type, id
 * and prev of the one removed, no data, and maos_event_removed() true.
 * Pages as maos_read_all (forward only, no filter).
 */
int maos_read_log(maos_ctx *c, uint64_t from, uint32_t limit, maos_page **out);

/*
 * Compact the whole store now: RocksDB rewrites its table files without
 * what was overwritten or deleted (the data of removed events among it),
 * so their space comes back at once, not at RocksDB's own pace.  Returns
 * when it is done (seconds to minutes on a large store: give it a long
 * timeout).  Root and the daemon's own user only (MAOS_EUNAUTHORIZED).
 */
int maos_compact(maos_ctx *c);

/* ---- signed checkpoints (PROTOCOL.md "Signed checkpoints") ----------------- */

/*
 * The daemon's ed25519 public key (32 bytes into key), which signs the
 * `checkpoint` events of stream $chain and chain_sign's answers.
 * MAOS_ENOT_FOUND: the daemon has no key (a store opened --read-only
 * before its first normal start).  Save it somewhere the daemon's user
 * cannot write, and check with it later (maosctl verify --pubkey).
 */
int maos_pubkey(maos_ctx *c, uint8_t key[32]);
/*
 * The daemon signs the hash of the stored record at position (it reads
 * and hashes the record itself; it never signs a hash it is given):
 * hash (32 bytes), *head (may be NULL: the log's head when it signed) and
 * sig (64 bytes, ed25519 over "maos-export-1", position and head as 8
 * bytes big-endian each, and hash: PROTOCOL.md "Signed checkpoints") are
 * written.  MAOS_ENOT_FOUND: no event there (or
 * no key).  Synchronous only, as maos_pubkey (tools, not agents' hot path).
 */
int maos_chain_sign(maos_ctx *c, uint64_t position, uint8_t hash[32], uint8_t sig[64],
                    uint64_t *head);
/* 1 when e is the stub of a removed event, with hash (may be NULL) set
 * to the BLAKE2b-256 of the record it replaced (what the next record's
 * prev links to); 0 for an event. */
int maos_event_removed(const maos_event *e, uint8_t hash[32]);
/* Decode one stored record (the bytes maos_event.raw points to, or a
 * record saved elsewhere, e.g. by `maosctl export`) into *e, whose pointers
 * are views into raw: valid while raw is.  0, or MAOS_EPROTO when raw is
 * not one whole record.  No context; safe from any thread. */
int maos_event_decode(const void *raw, size_t len, maos_event *e);

/*
 * Every figure of the daemon (stats, commit-write and request-time
 * histograms, RocksDB compaction and stall state) in the Prometheus text
 * exposition format.  0 and *text (NUL-terminated; the caller frees it
 * with free()), or an error.
 */
int maos_metrics(maos_ctx *c, char **text);

/*
 * Access tokens (PROTOCOL.md "Access control"; needs scope admin).
 *
 * maos_token_create: a token named name (1..64 bytes of [A-Za-z0-9_.-],
 * unique) with scopes[0..n_scopes) ("read:session-42-", "kv.write:kv.plan/",
 * "admin", ...: at most 64) and, with session not NULL, the scopes of that
 * session (its streams, kv keys, queues, channels, agents: PROTOCOL.md);
 * expires_ms after now (0: never); usable only by connections of uid
 * (-1: any uid).  The token's text, "maos_" and 43 base64url characters,
 * goes into token (MAOS_TOKEN_TEXT_SIZE bytes, NUL-terminated): it is shown
 * this once, the daemon keeps only its hash.  Errors: MAOS_EINVALID_ARG,
 * MAOS_EBAD_REQUEST (a scope that does not parse: the message says which),
 * MAOS_EINVALID_NAME, MAOS_ECONFLICT (the name exists), MAOS_ELIMIT,
 * MAOS_EFORBIDDEN, connection errors.
 *
 * maos_token_list: every token as a JSON array of {name, scopes, created,
 * expires, last_used (µs since the epoch; 0: never / not since the daemon
 * started), uid (-1: any), session (null: none)}, never the secret.  *json
 * is NUL-terminated; the caller frees it with free().
 *
 * maos_token_revoke: the token is deleted and every connection that said
 * hello with it is closed before the reply (they get MAOS_EUNAUTHENTICATED
 * then the connection drops; an expired token's connections are closed
 * the same way within about a second); *closed (may be NULL) gets how
 * many.
 * MAOS_ENOT_FOUND for an unknown name.
 *
 * To connect with a token: maos_connect_token, or MAOS_TOKEN in the
 * environment (read by every connect function when no token is given).
 */
#define MAOS_TOKEN_TEXT_SIZE 49
int maos_token_create(maos_ctx *c, const char *name, const char *const *scopes,
                      size_t n_scopes, uint64_t expires_ms, int64_t uid, const char *session,
                      char token[MAOS_TOKEN_TEXT_SIZE]);
int maos_token_list(maos_ctx *c, char **json);
int maos_token_revoke(maos_ctx *c, const char *name, uint64_t *closed);

/*
 * Blocking consumption: the next delivery of any subscription, queued ones
 * first, waiting up to timeout_ms (< 0: forever; 0: only what is already
 * queued or readable now).  Returns 0 and *out (free it with
 * maos_delivery_free), or:
 *   MAOS_ETIMEOUT  nothing arrived in time.  Unlike everywhere else this
 *                  timeout is NOT a connection error: the context lives on
 *                  and maos_next can be called again;
 *   connection errors (sticky; with reconnect on, maos_next reconnects
 *   instead, within timeout_ms per call, and fails only when it gives up);
 *   MAOS_EINVALID_ARG, MAOS_ENOMEM.
 * Queued output of pipelined requests is flushed first; their replies are
 * kept for maos_reply_recv.
 */
int maos_next(maos_ctx *c, int timeout_ms, maos_delivery **out);

/* Number of deliveries queued on the context. */
size_t maos_queued(const maos_ctx *c);

/* ---- tables ------------------------------------------------------------------ */

/*
 * Tables (PROTOCOL.md "Tables"): `sessions`, `agents`, `locks` and user
 * tables `kv.NAME` (created on first use).  An entry is a key (1..512
 * bytes of UTF-8) and a document (one msgpack map), with its revision (the
 * log position of the event that recorded its last change: every put and
 * delete appends `put` / `deleted` to the stream `kv.NAME-KEY`,
 * `session-KEY`, `agent-KEY` or `lock-KEY`), its created revision and
 * times.  maos_table_entry is the entry as read: its strings are views
 * into the page or delivery that holds it.
 *
 * expect (put, delete): MAOS_EXPECT_ANY, MAOS_EXPECT_ABSENT (must not
 * exist), MAOS_EXPECT_EXISTS, or a revision (compare-and-set).  A mismatch
 * is MAOS_EWRONG_REVISION, and maos_err_actual gives the current revision
 * (-1 when absent); get and delete of a missing entry are MAOS_ENOT_FOUND.
 * The agents table is written by the agent calls below only.
 */

/* Entries read (get: n == 1; list: a page).  Freed by
 * maos_table_page_free.  has_next: pass next (a key, NUL-terminated, owned
 * by the page) as `after` for the next page.  revision: the log head the
 * page was read at (one consistent snapshot per page). */
typedef struct maos_table_page {
    size_t n;
    maos_table_entry *entries;
    int has_next;
    const char *next;
    uint64_t revision;
    void *mem_;          /* private */
} maos_table_page;

void maos_table_page_free(maos_table_page *p);

/* Write doc (one msgpack map, len bytes) at table/key.  bind: the entry
 * lives as long as this connection (deleted by maosd when it closes, for
 * whatever reason).  *revision (may be NULL): the new revision.  Errors:
 * MAOS_EWRONG_REVISION (maos_err_actual), MAOS_EINVALID_NAME (table, key),
 * MAOS_EINVALID_ARG (doc not a map), MAOS_EUNAUTHORIZED (agents),
 * connection errors. */
int maos_put(maos_ctx *c, const char *table, const char *key, const void *doc,
             size_t len, int64_t expect, int bind, uint64_t *revision);
/* One entry as a page of one.  MAOS_ENOT_FOUND when absent. */
int maos_get(maos_ctx *c, const char *table, const char *key, maos_table_page **out);
/* Delete; *revision: that of the `deleted` event. */
int maos_delete(maos_ctx *c, const char *table, const char *key, int64_t expect,
                uint64_t *revision);
/* Entries with keys starting with prefix (NULL/"": all), after the key
 * `after` (NULL: from the first), at most limit (0: 1000; capped at
 * 10,000), whose document matches where (a msgpack map field -> value,
 * NULL/0: all; a field matches when equal, or when it is an array that
 * contains the value). */
int maos_list(maos_ctx *c, const char *table, const char *prefix, const char *after,
              const void *where, size_t where_len, uint32_t limit,
              maos_table_page **out);
int maos_count(maos_ctx *c, const char *table, const char *prefix, const void *where,
               size_t where_len, uint64_t *count, uint64_t *revision);
/*
 * Watch a table's entries with keys starting with prefix, as a
 * subscription (same ids, deliveries, maos_next / maos_process,
 * maos_unsubscribe):
 *   MAOS_WATCH_FROM_ENTRIES, 0   first MAOS_PUSH_ENTRIES deliveries (the
 *                                entries as of one revision, in pages),
 *                                then every later change
 *   MAOS_WATCH_FROM_REVISION, R  the changes after revision R
 *   MAOS_WATCH_FROM_NOW, 0       changes from now
 * Changes are MAOS_PUSH_EVENTS deliveries of the entries' streams, types
 * `put` and `deleted`, data {table, key, data, created_revision, bound};
 * an event's position is the entry's new revision.  After a reconnect
 * the watch goes on after the last change delivered (its entries are not
 * sent again).  One exception: when the connection was lost before the
 * last page of the entries (more == 0) was received, the library watches
 * again with new entries, from the first key, as of a new revision (the
 * changes after the old one would come without the rest of the table):
 * an ENTRIES delivery with `first` set after pages of the same watch
 * starts the table over (drop what the earlier pages gave).
 */
int maos_watch(maos_ctx *c, const char *table, const char *prefix, int from_kind,
               uint64_t revision, uint64_t *sub);
/*
 * One item of a txn (maos_txn_items): kind is a MAOS_ITEM_* of
 * maos/consts.h and says which fields are read.  Strings NUL-terminated.
 * Only read during the call, except ids (an output buffer).
 *   APPEND        append (stream, expect, events; its .ids too)
 *   PUT           table, key, doc/doc_len (one msgpack map), expect, bind
 *   DELETE        table, key, expect
 *   CHECKPOINT    name, position
 *   ENQUEUE       queue, n_tasks tasks: payloads datas[i]/lens[i] and
 *                 options opts[i] (opts NULL: defaults), as maos_enqueue_n;
 *                 ids: NULL or room for n_tasks: the task ids
 *   ACK           task, token, result/result_len (one msgpack value or
 *                 NULL/0)
 *   NACK          task, token, error (NULL: none), retry_after_ms (< 0:
 *                 the task's backoff)
 *   EXTEND        task, token, lease_ms
 *   TASK_RELEASE  task, token
 */
struct maos_task_opts;
typedef struct maos_txn_item {
    int kind;
    const maos_txn_append *append;
    const char *table, *key;
    const void *doc;
    size_t doc_len;
    int64_t expect;            /* MAOS_EXPECT_ANY (0 is a revision!),
                                * _ABSENT, _EXISTS or a revision */
    int bind;
    const char *name;
    uint64_t position;
    const char *queue;
    size_t n_tasks;
    const void *const *datas;
    const size_t *lens;
    const struct maos_task_opts *opts;
    uint8_t (*ids)[16];
    uint8_t task[16];
    uint64_t token;
    const void *result;
    size_t result_len;
    const char *error;
    int64_t retry_after_ms;
    uint32_t lease_ms;
} maos_txn_item;

/* One atomic write of appends, puts, deletes, checkpoints and queue
 * items (1..100): all or nothing.  revisions (NULL, or n of them): per
 * item, the revision written (APPEND: the first position).  A refusal
 * names the item: maos_err_index; a failing queue item (LEASE_LOST
 * included) fails the txn.  Errors as the single calls, and
 * MAOS_EINVALID_ARG (n, an unknown kind, a missing field). */
int maos_txn_items(maos_ctx *c, const maos_txn_item *items, size_t n,
                   uint64_t *revisions);
/* What one item of a txn did (maos_txn_items_ex); output only (ENQUEUE's
 * ids go to maos_txn_item.ids). */
typedef struct maos_item_result {
    uint64_t revision;     /* APPEND: its first position; PUT, DELETE,
                            * CHECKPOINT and the queue items but EXTEND: the
                            * revision written (ENQUEUE: of the last
                            * `enqueued` event, 0 when every task was a
                            * duplicate) */
    int64_t lease_until;   /* EXTEND: the new lease end, µs */
    char state[8];         /* NACK: "ready", "delayed" or "dead"; else "" */
    uint32_t n_ids;        /* ENQUEUE: its number of tasks */
} maos_item_result;
/* maos_txn_items with every item's result: results is NULL or n of them,
 * written only on success. */
int maos_txn_items_ex(maos_ctx *c, const maos_txn_item *items, size_t n,
                      maos_item_result *results);

/* ---- agents, locks, sessions --------------------------------------------------- */

/* An agent to register.  Strings NUL-terminated (NULL: absent); details
 * one msgpack map (NULL/0: {}).  Only read during the call. */
typedef struct maos_agent_spec {
    const char *id;       /* key rules */
    const char *session;  /* the session it works in (key rules), or NULL */
    const char *name, *kind;
    const char *const *tags; /* capabilities, n_tags strings */
    size_t n_tags;
    const void *details;
    size_t details_len;
} maos_agent_spec;

/*
 * Register this connection's agent: the agents entry `id`, status
 * "online", bound to the connection: when it closes (exit, crash,
 * SIGKILL) maosd marks it "offline" with last_seen.  One agent per
 * context; the library registers it again after a reconnect.  Events
 * appended on this context then carry meta.agent = id, stamped by maosd.
 * Errors: MAOS_ECONFLICT (the id is held by another live process: the
 * message names its pid), MAOS_EINVALID_NAME, MAOS_EBAD_REQUEST.
 */
int maos_agent_register(maos_ctx *c, const maos_agent_spec *a, uint64_t *revision);
/* Set this context's agent's status ("idle", "busy", any 1..64 bytes) and
 * detail (one msgpack value, NULL/0: none).  MAOS_ENOT_FOUND without one. */
int maos_agent_status(maos_ctx *c, const char *status, const void *detail, size_t len);
/* Remove an agent entry: this context's own, or an offline one
 * (MAOS_EUNAUTHORIZED for another live connection's). */
int maos_agent_deregister(maos_ctx *c, const char *id);

/*
 * Locks: the entry `locks`/name, bound to this connection, created only
 * when absent; *token (the entry's revision) is the fencing token, higher
 * for every later holder.  wait_ms: 0 try once (MAOS_EWRONG_REVISION when
 * held, maos_err_actual = the holder's token); > 0 or < 0 (forever): wait
 * to be told by push that the holder went away (unlock, exit, crash), then
 * try again; MAOS_ETIMEOUT (not sticky) when the wait ends first.  The
 * lock is freed by maos_unlock, or when the connection closes.  Other
 * subscriptions' deliveries stay queued while it waits.
 */
int maos_lock(maos_ctx *c, const char *name, int wait_ms, uint64_t *token);
int maos_unlock(maos_ctx *c, const char *name, uint64_t token);

/*
 * Sessions: entries of `sessions` with the document {id, state: "open" |
 * "closed", created, closed?, result?, metadata}.  create: id NULL makes a
 * UUIDv7; id_out (NULL or 37 bytes) gets it.  close sets state "closed",
 * the time and result (one msgpack value, NULL/0: none); update replaces
 * metadata (a map).  Both compare-and-set on the revision they read.
 * List by state with maos_list(c, "sessions", ..., where {state: ...}).
 * Events of a session carry meta.session = its id (the caller's choice).
 */
int maos_session_create(maos_ctx *c, const char *id, const void *metadata, size_t len,
                        char id_out[37], uint64_t *revision);
int maos_session_close(maos_ctx *c, const char *id, const void *result, size_t len,
                       uint64_t *revision);
int maos_session_update(maos_ctx *c, const char *id, const void *metadata, size_t len,
                        uint64_t *revision);

/* ---- event-loop integration -------------------------------------------------- */

/*
 * Callbacks of maos_process.  Each gets a delivery lent for the duration of
 * the call (do not free it; copy what must outlive the call).  A NULL
 * callback discards the deliveries of its kind.  Callbacks may make any
 * call on c (maos_checkpoint_save, maos_unsubscribe, appends, ...) except
 * maos_free and maos_process.
 */
typedef struct maos_push_handlers {
    /* events, a watch's entries (d->kind MAOS_PUSH_ENTRIES) and the
     * answers of maos_claim_start (d->kind MAOS_DELIVERY_TASKS) */
    void (*on_events)(maos_ctx *c, const maos_delivery *d, void *user);
    void (*on_state)(maos_ctx *c, const maos_delivery *d, void *user);   /* caught_up, fell_behind */
    void (*on_message)(maos_ctx *c, const maos_delivery *d, void *user);
} maos_push_handlers;

/*
 * Non-blocking: write what the socket takes of the queued output, read
 * what is readable on maos_fd(c) now (a bounded amount per call, for
 * fairness), complete async requests past their timeout, then run the
 * callbacks of the async requests completed at that point and hand every
 * delivery queued at that point to h's callbacks, in order.  Returns the
 * number of callbacks and deliveries handled (0 is normal: a partial
 * frame, or nothing yet), or a negative error: connection errors are
 * sticky as usual (the callbacks of the requests in flight still run,
 * with MAOS_ECONNECTION, before it returns); with reconnect on, a lost
 * connection is not an error here: maos_process begins a reconnect when
 * the backoff allows (connect, then hello and the re-subscribes pipelined:
 * their answers are read by later calls, nothing waits) and fails only
 * when it gives up.  MAOS_EINVALID_ARG when h is NULL or when called from
 * one of its own callbacks.
 */
int maos_process(maos_ctx *c, const maos_push_handlers *h, void *user);

/*
 * How the library tells an event loop what to watch (hiredis-style
 * adapter hooks; see maos/adapters/libuv.h for a ready one).
 *
 * update(data, fd, wake_ms) is called whenever what the loop should do
 * changes: watch fd for reading (-1: no socket, while reconnecting or once
 * the context is dead) and call maos_process when it is readable; and, when
 * wake_ms >= 0, also call maos_process after wake_ms milliseconds even if
 * nothing is readable (0: soon; used when deliveries were queued by a
 * synchronous call, during reconnect backoff, and once the context died so
 * that maos_process can report it; the next request timeout; 1 while
 * output waits for a full socket, since update cannot ask for
 * writability: loops that issue async requests should prefer
 * maos_loop_ops).  It is called from inside library calls (maos_process,
 * synchronous calls): it must only arm or disarm watchers, never call back
 * into the library.
 */
typedef struct maos_loop_hooks {
    void *data;
    void (*update)(void *data, int fd, int wake_ms);
} maos_loop_hooks;

/* Install hooks (copied; NULL removes them).  update is called once at
 * once with the current state.  0 or MAOS_EINVALID_ARG. */
int maos_set_loop_hooks(maos_ctx *c, const maos_loop_hooks *h);

/*
 * Loop operations for asynchronous requests (hiredis' addRead / delRead /
 * addWrite / delWrite / scheduleTimer).  With them installed the library
 * never blocks in maos_process or in a maos_async_* call: it says what to
 * watch and the loop calls maos_process when something happens.
 *
 *   add_read / del_read    watch fd for readability, or stop;
 *   add_write / del_write  watch fd for writability (output that did not
 *                          fit in the socket buffer), or stop;
 *   timer(data, ms)        call maos_process once after ms milliseconds
 *                          (0: soon), replacing any earlier timer; ms -1
 *                          cancels it.  Used for request timeouts,
 *                          reconnect backoff and work queued by calls made
 *                          outside maos_process.
 * The fd changes on a reconnect: the library calls del_* for the old one
 * (still open at that moment) before add_* for the new one.  Each op is
 * called only when what to watch changes, from inside library calls, and
 * must only arm or disarm watchers, never call back into the library.
 * Any op may be NULL (not needed by that loop).  Installed alongside
 * maos_loop_hooks (both are told), or alone.
 */
typedef struct maos_loop_ops {
    void *data;
    void (*add_read)(void *data, int fd);
    void (*del_read)(void *data, int fd);
    void (*add_write)(void *data, int fd);
    void (*del_write)(void *data, int fd);
    void (*timer)(void *data, int ms);
} maos_loop_ops;

/* Install ops (copied; NULL removes them).  The current state is told at
 * once.  0 or MAOS_EINVALID_ARG. */
int maos_set_loop_ops(maos_ctx *c, const maos_loop_ops *ops);

/* ---- asynchronous requests ---------------------------------------------------- */

/*
 * Every request of the synchronous API that is one round trip has a
 * non-blocking form, maos_async_NAME(c, cb, privdata, <the arguments of
 * maos_NAME but its out-parameters>).  It checks its arguments, queues the
 * request (writing what the socket takes now; the rest when the loop says
 * the socket is writable) and returns at once:
 *   0          queued: cb(c, status, r, privdata) will run exactly once,
 *              from maos_process (or maos_free), on the thread that calls
 *              it;
 *   < 0        nothing was queued and cb will never run (MAOS_EINVALID_ARG,
 *              MAOS_EFRAME_TOO_LARGE, MAOS_ELIMIT, MAOS_ENOMEM, or the
 *              sticky error of a dead context); c->err / errstr say why.
 * Any number may be in flight, mixed with synchronous calls (which wait for
 * their own reply only) and with subscriptions; replies are matched by
 * request id, so they may complete in any order.
 *
 * status in the callback:
 *   0                     success: read the answer from r (below);
 *   a server refusal      (MAOS_ENOT_FOUND, MAOS_EWRONG_EXPECTED_VERSION,
 *                         ...): maos_result_errstr / _actual / _index;
 *   MAOS_ETIMEOUT         the request's timeout passed first (the
 *                         context's request timeout when it was issued:
 *                         maos_set_timeout before a call gives that call
 *                         its own bound).  The connection lives on; a
 *                         reply that comes later is dropped (a claim's
 *                         tasks in it are released at once, and a lock
 *                         it took -- maos_async_lock, _lock_wait -- is
 *                         deleted with its token, by requests of the
 *                         library's own that maos_async_inflight counts
 *                         until answered).  For a write the outcome is
 *                         unknown;
 *   MAOS_ECONNECTION      the connection was lost (or the context freed)
 *                         with the request in flight: its outcome is
 *                         unknown (it may or may not have been applied).
 *                         With reconnect on, the library does not report
 *                         this for requests it can send again safely: it
 *                         re-sends them after the reconnect, and their
 *                         callback runs once with the answer.  Safe are
 *                         reads (read, read_all, streams, get, list,
 *                         count, task_get, queue_stats, dead_list),
 *                         checkpoint_get, stats, ping, and appends and txns
 *                         whose every event carries an id (the daemon
 *                         answers a re-send with duplicate = 1, never a
 *                         second write; see MAOS_CLIENT_IDS).  Requests
 *                         issued while the context is reconnecting are
 *                         sent after the handshake;
 *   a sticky error        the context died (reconnect off, or given up):
 *                         every request in flight gets MAOS_ECONNECTION,
 *                         c->err holds the reason.
 *
 * r is lent for the duration of the callback (never NULL); what the
 * maos_result_* getters return is the caller's (pages: free them with their
 * *_free).  The callback may make any call on c (synchronous ones block
 * the loop, as everywhere), issue more async requests, but not maos_free
 * or maos_process.  Deliveries keep their own handlers (maos_process);
 * replies of requests are handed out before the deliveries queued at the
 * same time.
 *
 * Every request of the synchronous API has its async form, those of
 * several round trips too (maos_async_lock_wait, maos_async_session_close
 * and _update: the library chains the requests, the callback runs once
 * with the last answer).  Only these have none: maos_worker_run (a loop
 * of its own: build it from maos_async_claim, _ack, _nack, _extend) and
 * the legacy maos_claim_start (use maos_async_claim).  Answers the sync
 * form returns through out-parameters are read from r: maos_stats_get_kv
 * -> maos_result_stats_kv, maos_append_ids -> maos_result_append_ids,
 * maos_txn_items_ex -> maos_result_txn_item; ids buffers in the input
 * (maos_txn_append.ids, maos_txn_item.ids) are not written by async
 * forms, which read their input during the call only.
 *
 * Thread-safety: as every call on c (one thread at a time); callbacks run
 * on the thread that calls maos_process.
 */
typedef void (*maos_callback)(maos_ctx *c, int status, maos_result *r, void *privdata);

/* The request id of the request r answers (the async call's *rid). */
uint64_t maos_result_rid(const maos_result *r);
/* 0 or the request's negative MAOS_E* (the callback's status). */
int maos_result_status(const maos_result *r);
/* The server's message for a refusal (or the library's for a local
 * status), NUL-terminated, valid during the callback; "" on success. */
const char *maos_result_errstr(const maos_result *r);
/* As maos_err_actual / maos_err_index, for this request's refusal. */
int maos_result_actual(const maos_result *r, int64_t *actual);
int64_t maos_result_index(const maos_result *r);

/* The scalar answers, by request (0 for what the request does not give). */
typedef struct maos_result_fields {
    uint64_t revision;   /* put, delete, count, checkpoint_save: 0 */
    uint64_t count;      /* count, dead_retry, dead_purge */
    uint64_t position;   /* checkpoint_get */
    uint64_t receivers;  /* publish */
    uint64_t sub;        /* subscribe, subscribe_channel, watch: the id */
    int64_t lease_until; /* extend */
    char state[16];      /* nack */
    int more;            /* dead_retry, dead_purge */
} maos_result_fields;
/* 0 and *out, or MAOS_EINVALID_ARG when status was not 0. */
int maos_result_fields_get(const maos_result *r, maos_result_fields *out);
/* Typed answers: 0 and the value (pages: a new page, the caller's), or
 * MAOS_EINVALID_ARG (status was not 0, or r answers another request),
 * MAOS_ENOMEM, MAOS_EPROTO (malformed: the connection is dropped). */
int maos_result_append(const maos_result *r, size_t i, maos_append_info *out); /* append: i 0; txn: i-th */
/* The ids of append i (as maos_result_append): ids gets the first
 * min(count, cap) of them.  0 or as maos_result_append. */
int maos_result_append_ids(const maos_result *r, size_t i, uint8_t (*ids)[16], size_t cap);
/* Outcome i of an append_batch answer (maos_async_append_batch), as
 * maos_append_batch fills it; ids (NULL, or room for cap) gets the ids of
 * a written append.  0, or MAOS_EINVALID_ARG (out NULL, i out of range,
 * the request refused whole, or another request), MAOS_EPROTO. */
int maos_result_batch(const maos_result *r, size_t i, maos_batch_outcome *out,
                      uint8_t (*ids)[16], size_t cap);
/* Number of append results: 1 for an append, n for a txn or an
 * append_batch of n appends, 0 for a refusal or another request. */
size_t maos_result_count(const maos_result *r);
int maos_result_page(const maos_result *r, maos_page **out);                 /* read, read_all */
int maos_result_streams(const maos_result *r, maos_stream_page **out);
int maos_result_stats(const maos_result *r, maos_stats_info *out);
int maos_result_stats_kv(const maos_result *r, maos_stats_kv **out);
int maos_result_stream_meta(const maos_result *r, maos_stream_meta_info *out);
int maos_result_table_page(const maos_result *r, struct maos_table_page **out); /* get, list */
struct maos_task_page;
int maos_result_task_page(const maos_result *r, struct maos_task_page **out); /* claim, task_get, dead_list */

int maos_async_ping(maos_ctx *c, maos_callback cb, void *privdata);
int maos_async_append(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                      int64_t expect, const maos_event_spec *events, size_t n);
int maos_async_txn(maos_ctx *c, maos_callback cb, void *privdata,
                   const maos_txn_append *appends, size_t n);
/* maos_append_batch without waiting: the callback's result holds one
 * outcome per append (maos_result_count, maos_result_batch). */
int maos_async_append_batch(maos_ctx *c, maos_callback cb, void *privdata,
                            const maos_txn_append *appends, size_t n);
int maos_async_read(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                    uint64_t from, int backward, uint32_t limit);
int maos_async_read_all(maos_ctx *c, maos_callback cb, void *privdata,
                        const maos_read_filter *f, uint64_t from, int backward,
                        uint32_t limit);
int maos_async_streams(maos_ctx *c, maos_callback cb, void *privdata, const char *prefix,
                       const char *after, uint32_t limit);
int maos_async_stats(maos_ctx *c, maos_callback cb, void *privdata);
int maos_async_checkpoint_save(maos_ctx *c, maos_callback cb, void *privdata,
                               const char *name, uint64_t position);
int maos_async_checkpoint_get(maos_ctx *c, maos_callback cb, void *privdata,
                              const char *name);
int maos_async_publish(maos_ctx *c, maos_callback cb, void *privdata, const char *channel,
                       const void *payload, size_t len);
int maos_async_backup(maos_ctx *c, maos_callback cb, void *privdata, const char *dir);
int maos_async_stream_meta(maos_ctx *c, maos_callback cb, void *privdata,
                           const char *stream, const char *category,
                           const maos_stream_meta_set *set);
int maos_async_read_log(maos_ctx *c, maos_callback cb, void *privdata, uint64_t from,
                        uint32_t limit);
int maos_async_compact(maos_ctx *c, maos_callback cb, void *privdata);
/* Subscriptions: the subscription exists (its deliveries are routed) from
 * the moment the daemon accepts it; fields.sub gives its id.  A refused one
 * is forgotten.  Resumed after reconnects as a synchronous one. */
int maos_async_subscribe(maos_ctx *c, maos_callback cb, void *privdata,
                         const maos_read_filter *f, int from_kind, uint64_t from);
int maos_async_subscribe_channel(maos_ctx *c, maos_callback cb, void *privdata,
                                 const char *pattern);
int maos_async_watch(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                     const char *prefix, int from_kind, uint64_t revision);
/* Gone locally at once (as maos_unsubscribe); cb says what the daemon said. */
int maos_async_unsubscribe(maos_ctx *c, maos_callback cb, void *privdata, uint64_t sub);
int maos_async_put(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                   const char *key, const void *doc, size_t len, int64_t expect, int bind);
int maos_async_get(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                   const char *key);
int maos_async_delete(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                      const char *key, int64_t expect);
int maos_async_list(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                    const char *prefix, const char *after, const void *where,
                    size_t where_len, uint32_t limit);
int maos_async_count(maos_ctx *c, maos_callback cb, void *privdata, const char *table,
                     const char *prefix, const void *where, size_t where_len);
int maos_async_agent_status(maos_ctx *c, maos_callback cb, void *privdata,
                            const char *status, const void *detail, size_t len);
int maos_async_agent_deregister(maos_ctx *c, maos_callback cb, void *privdata,
                                const char *id);
/* maos_lock with wait_ms 0 (one try: MAOS_EWRONG_REVISION when held). */
int maos_async_lock(maos_ctx *c, maos_callback cb, void *privdata, const char *name);
int maos_async_unlock(maos_ctx *c, maos_callback cb, void *privdata, const char *name,
                      uint64_t token);
int maos_async_ack(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                   uint64_t token, const void *result, size_t len);
int maos_async_nack(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                    uint64_t token, const char *error, int64_t retry_after_ms);
int maos_async_extend(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16],
                      uint64_t token, uint32_t lease_ms);
int maos_async_task_release(maos_ctx *c, maos_callback cb, void *privdata,
                            const uint8_t id[16], uint64_t token);
int maos_async_task_get(maos_ctx *c, maos_callback cb, void *privdata, const uint8_t id[16]);
int maos_async_dead_list(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                         const uint8_t *after, uint32_t limit);
int maos_async_dead_retry(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                          const uint8_t *id);
int maos_async_dead_purge(maos_ctx *c, maos_callback cb, void *privdata, const char *queue);
struct maos_task_opts;
int maos_async_enqueue(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                       const void *data, size_t len, const struct maos_task_opts *o);
int maos_async_enqueue_n(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                         const void *const *datas, const size_t *lens,
                         const struct maos_task_opts *opts, size_t n);
/* The answer to an enqueue of n tasks: ids (n * 16 bytes) and duplicates
 * (n), each may be NULL.  MAOS_EINVALID_ARG when n is not its count. */
int maos_result_enqueue(const maos_result *r, size_t n, uint8_t *ids, int *duplicates);

/* maos_claim (the task page: maos_result_task_page; the request timeout
 * stretched by wait_ms, as the sync claim's). */
int maos_async_claim(maos_ctx *c, maos_callback cb, void *privdata,
                     const char *const *queues, size_t n, uint32_t lease_ms, uint32_t wait_ms,
                     uint32_t max, int bind);
int maos_async_queue_stats(maos_ctx *c, maos_callback cb, void *privdata, const char *queue);
/* The figures of a queue_stats answer: *out (malloc'ed array of *n, free()
 * it; the names point into it). */
int maos_result_queue_stats(const maos_result *r, maos_queue_stat **out, size_t *n);
/* maos_txn_items: items is read during the call only (its ids buffers
 * are not written: read them with maos_result_txn_item). */
int maos_async_txn_items(maos_ctx *c, maos_callback cb, void *privdata,
                         const maos_txn_item *items, size_t n);
/* Item i (0-based) of a txn_items answer: *out (may be NULL) as
 * maos_txn_items_ex gives it, and ids (NULL, or room for cap) the first
 * min(n, cap) ids of an APPEND (its events) or ENQUEUE (its tasks) item.
 * MAOS_EINVALID_ARG (not such an answer, i out of range). */
int maos_result_txn_item(const maos_result *r, size_t i, maos_item_result *out,
                         uint8_t (*ids)[16], size_t cap);
/* maos_agent_register: the agent is this context's (re-registered after
 * reconnects) once the daemon accepted it; a refused one leaves the one
 * before.  fields.revision: its revision. */
struct maos_agent_spec;
int maos_async_agent_register(maos_ctx *c, maos_callback cb, void *privdata,
                              const struct maos_agent_spec *a);
/* maos_session_create: id_out (NULL or 37 bytes) gets the id at once (the
 * library makes it when id is NULL); fields.revision. */
int maos_async_session_create(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                              const void *metadata, size_t len, char id_out[37]);
/* maos_session_close / _update: a get, then a compare-and-set put, again
 * (up to 100 times) when another writer came in between; the callback
 * gets the put's answer (fields.revision), or the first failure
 * (MAOS_ENOT_FOUND: no such session; MAOS_EWRONG_REVISION after 100
 * attempts). */
int maos_async_session_close(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                             const void *result, size_t len);
int maos_async_session_update(maos_ctx *c, maos_callback cb, void *privdata, const char *id,
                              const void *metadata, size_t len);
/* maos_lock with a wait (wait_ms > 0: up to that long; < 0: for ever;
 * 0: one try, as maos_async_lock): put; when held, the library watches the
 * lock's entry (a watch of its own: no delivery reaches the caller's
 * handlers) and puts again when the holder goes away.  The callback runs
 * once: 0 and fields.revision (the fencing token), MAOS_ETIMEOUT (the wait
 * ran out; not sticky), another refusal, MAOS_ECONNECTION (maos_free, or
 * the context died, while waiting).  The wait is kept across reconnects. */
int maos_async_lock_wait(maos_ctx *c, maos_callback cb, void *privdata, const char *name,
                         int wait_ms);

/* Number of requests with a completion still to run (sync, async and the
 * library's own), for tests and curiosity. */
size_t maos_async_inflight(const maos_ctx *c);

/* ---- reconnect and resume -------------------------------------------------- */

/*
 * With reconnect on (maos_options.reconnect or maos_set_reconnect), a lost
 * connection (the daemon restarted, the socket broke, a wait timed out) does
 * not kill the context.  The call that notices fails with the connection
 * error unless the library can send it again (below); replies of legacy
 * pipelined requests (maos_append_send) in flight are lost and
 * maos_pending() drops to 0.
 * Then the library reconnects: at once, then after 50 ms doubling up to
 * 2 s between attempts, and gives up (the context is dead, with the last
 * error) when an attempt fails reconnect_max_ms or more after the loss
 * (attempts are made only while the caller calls in; one that comes back
 * late still gets one try).  After a new hello it
 * subscribes every subscription again:
 *  - event subscriptions from the `next` of the last push received, so
 *    the caller sees no gap and no duplicate across the reconnect
 *    (deliveries queued before the loss are still delivered);
 *  - channel subscriptions again; messages published while disconnected
 *    are lost (at most once).
 * Subscription ids do not change.  If the daemon refuses a re-subscription
 * the context dies with that error.  A subscribe (or watch) still waiting
 * for its answer at the loss is kept too: it is safe to send again, since
 * the lost connection's subscriptions died with it, so the library sends
 * it again on the new connection and maos_subscribe returns (or the async
 * callback runs) once that answer came, as if nothing happened -- with
 * one difference for MAOS_FROM_LIVE and MAOS_WATCH_FROM_NOW: "now" is
 * then the new connection's, events of the outage are not delivered.  The
 * exception: a loss caused by a request timeout (MAOS_ETIMEOUT: the
 * server took too long; asking it again could wait again, for ever)
 * fails the subscribe with that error, as before.
 *
 * Who reconnects: maos_next (within its timeout; it keeps trying on later
 * calls), maos_process (begins one attempt when the backoff allows, never
 * waiting: the handshake -- hello, the agent, every re-subscribe, then the
 * requests kept from the lost connection -- is sent at once and completes
 * as its answers are read), and any other synchronous call (blocking until
 * connected or given up).  Async requests issued while reconnecting are
 * queued and sent after the handshake.  The first connect
 * (maos_connect_with) is not retried; maos_async_connect's is (above).  While reconnecting, maos_fd(c) is -1
 * (or the new socket once an attempt began) but the context is not dead:
 * use maos_is_dead().
 *
 * Requests in flight when the connection is lost: those safe to send twice
 * (see "Asynchronous requests": reads, checkpoint_get, stats, ping, appends
 * and txns whose every event has an id) and those not written to the
 * socket yet are sent again on the new connection, with their callback or
 * synchronous caller none the wiser (a re-sent append may come back with
 * duplicate = 1); the others fail: a synchronous call with the connection
 * error, an async one with MAOS_ECONNECTION (outcome unknown).
 */
#define MAOS_RECONNECT_MAX_MS 30000
#define MAOS_RECONNECT_MIN_DELAY_MS 50
#define MAOS_RECONNECT_MAX_DELAY_MS 2000

/* on: 1 or 0; max_ms as maos_options.reconnect_max_ms.  0 or
 * MAOS_EINVALID_ARG. */
int maos_set_reconnect(maos_ctx *c, int on, int max_ms);

/* 1 when the context is dead (a sticky error; free it), else 0 (also while
 * reconnecting). */
int maos_is_dead(const maos_ctx *c);

/* Number of successful reconnects so far. */
uint64_t maos_reconnects(const maos_ctx *c);

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
/* UUIDs (event and task ids): parse 36 characters of canonical text (0
 * or MAOS_EINVALID_ID), or format one as 36 characters and a NUL. */
int maos_uuid_parse(const char *s, size_t len, uint8_t out[16]);
void maos_uuid_format(const uint8_t id[16], char out[37]);

/* ---- queues (PROTOCOL.md "Queues") ---------------------------------------------- */

/* Options of one task (zero: the defaults: priority 0, no delay, 5
 * attempts, a 30 s lease, no backoff, no keys). */
typedef struct maos_task_opts {
    int32_t priority;           /* higher first */
    int64_t delay_ms;           /* 0: none; < 0: MAOS_EINVALID_ARG */
    int64_t not_before;         /* µs since the epoch, 0: none (not with delay_ms) */
    uint32_t max_attempts;      /* 0: 5 */
    uint32_t lease_ms;          /* 0: 30,000 */
    uint32_t backoff_ms;        /* after an expiry or a dead worker */
    const char *dedupe_key;     /* NULL: none */
    const char *ordering_key;   /* NULL: none */
    const void *meta;           /* one msgpack map (session, parent task,
                                 * ...); NULL/0: {} */
    size_t meta_len;
} maos_task_opts;

/* Tasks (maos_task_info: id, queue, state, attempt, data,
 * token, lease_until, ...), whose strings point into memory the page owns:
 * valid until maos_task_page_free.  dead_list: has_next and next (a task
 * id) for the next page. */
typedef struct maos_task_page {
    size_t n;
    maos_task_info *tasks;
    int has_next;
    uint8_t next[16];
    void *mem_;                 /* private */
} maos_task_page;

void maos_task_page_free(maos_task_page *p);

/* Enqueue one task whose payload is data (one msgpack value, len bytes;
 * NULL/0: nil) on queue.  id (may be NULL) gets the task id; *duplicate
 * (may be NULL): 1 when its dedupe key named an unfinished task, whose id
 * that is (nothing written).  Errors: MAOS_EINVALID_NAME (queue, keys),
 * MAOS_EINVALID_ARG (payload, or o->meta not a map: nothing sent),
 * MAOS_EBAD_REQUEST (options out of range),
 * connection errors.  Like every call here: one context per thread. */
int maos_enqueue(maos_ctx *c, const char *queue, const void *data, size_t len,
                 const maos_task_opts *o, uint8_t id[16], int *duplicate);
/* The same for n tasks in one atomic write (payloads datas[i]/lens[i],
 * options opts[i] or opts NULL); ids (n * 16 bytes) and duplicates (n)
 * may be NULL. */
int maos_enqueue_n(maos_ctx *c, const char *queue, const void *const *datas,
                   const size_t *lens, const maos_task_opts *opts, size_t n,
                   uint8_t *ids, int *duplicates);
/* Claim up to max (1..1000) tasks of the n queues (highest priority, then
 * oldest), leasing each for lease_ms (0: each task's own).  wait_ms > 0:
 * when none is ready, wait up to that long for one (the call blocks; the
 * daemon answers the moment a task becomes ready; this call's request
 * timeout is stretched by wait_ms).  bind: the claims end with this
 * connection (always so for a connection with a registered agent).
 * *out: the tasks (n may be 0), free with maos_task_page_free. */
int maos_claim(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
               uint32_t wait_ms, uint32_t max, int bind, maos_task_page **out);
/* The same for an event loop: send the claim and return at once (*rid:
 * its request id).  Its answer comes as a delivery of kind
 * MAOS_DELIVERY_TASKS with sub == rid, through maos_process (on_events) or
 * maos_next, like a push: other calls, synchronous ones included (an ack
 * while the claim waits), go on meanwhile.  At most MAOS_CLAIMS_WAITING_MAX
 * in flight per context. */
int maos_claim_start(maos_ctx *c, const char *const *queues, size_t n, uint32_t lease_ms,
                     uint32_t wait_ms, uint32_t max, int bind, uint64_t *rid);
/* Finish a claimed task (its id and the claim's token): result (one
 * msgpack value, or NULL/0).  MAOS_ELEASE_LOST: the lease is no longer
 * this token's (it ran out, or the task went to another claim): nothing
 * changed.  MAOS_ENOT_FOUND: no such task. */
int maos_ack(maos_ctx *c, const uint8_t id[16], uint64_t token, const void *result,
             size_t len);
/* The attempt failed (error: text, may be NULL).  retry_after_ms < 0: the
 * task's backoff.  state (may be NULL, 16 bytes): "ready", "delayed" or
 * "dead" (out of attempts). */
int maos_nack(maos_ctx *c, const uint8_t id[16], uint64_t token, const char *error,
              int64_t retry_after_ms, char state[16]);
/* Lease for lease_ms more from now; *lease_until (may be NULL) in µs. */
int maos_extend(maos_ctx *c, const uint8_t id[16], uint64_t token, uint32_t lease_ms,
                int64_t *lease_until);
/* Give the task back unused (the attempt does not count). */
int maos_task_release(maos_ctx *c, const uint8_t id[16], uint64_t token);
/* One task (a page of one) with its state and history. */
int maos_task_get(maos_ctx *c, const uint8_t id[16], maos_task_page **out);
/* Figures of queue (NULL: of every queue): *out (malloc'ed array of *n,
 * free() it; the names point into it). */
int maos_queue_stats(maos_ctx *c, const char *queue, maos_queue_stat **out, size_t *n);
/* Dead letters of queue, oldest first, after the task `after` (NULL: from
 * the first), at most limit (0: 1000). */
int maos_dead_list(maos_ctx *c, const char *queue, const uint8_t *after, uint32_t limit,
                   maos_task_page **out);
/* Every task, in any state, of queue (NULL: of every queue), by id, after
 * the task `after` (NULL: from the first), at most limit (0: 1000; with a
 * queue a page may hold fewer while has_next says more: go on from next).
 * What maosctl export carries. */
int maos_task_list(maos_ctx *c, const char *queue, const uint8_t *after, uint32_t limit,
                   maos_task_page **out);
/* Put dead task id (NULL: up to 1000 dead tasks; *more: call again) back
 * as new deliveries; *count of them.  MAOS_ECONFLICT: id is not dead. */
int maos_dead_retry(maos_ctx *c, const char *queue, const uint8_t *id, uint32_t *count,
                    int *more);
/* Delete up to 1000 dead tasks (*more: call again). */
int maos_dead_purge(maos_ctx *c, const char *queue, uint32_t *count, int *more);

/*
 * A worker: claims tasks of the queues one at a time (waiting up to
 * wait_ms per claim, bound to this connection), calls fn for each and
 * acks it (fn returned 0, with the result it set, or none) or nacks it
 * (else, with the error it set, or "failed").
 *
 * The lease while fn runs: fn runs in the calling thread, with c (it may
 * make any call on it: appends, enqueues, ...).  Meanwhile a keeper
 * thread, started by maos_worker_run on a connection of its own to the
 * same socket (same trust checks, reconnecting), extends the task's lease
 * every extend_every_ms (0: a third of the lease) by the lease (lease_ms,
 * or 0: what the claim got), so a handler may run longer than its lease.
 * If that extend is refused (the lease ran out anyway, e.g. the keeper's
 * connection was down longer than the lease), maos_worker_lease_lost(t)
 * turns 1: the task is no longer this worker's, and its ack will be
 * skipped.  opts->no_keeper: no thread and no second connection; then
 * nothing extends the lease unless fn calls maos_worker_extend.  If the
 * keeper cannot start (no connection), the worker runs without it and
 * sets opts->keeper_failed.
 *
 * Failures that are not fatal: a lost lease (the ack or nack is refused
 * LEASE_LOST or NOT_FOUND: another worker has the task; counted in
 * opts->lost, skipped); with reconnect on, a lost connection (a daemon
 * restart: the claim is simply made again after the reconnect; the bound
 * claim of the task in hand went back to its queue, attempt counted, and
 * its ack is skipped); maosd stopping or overloaded (SHUTTING_DOWN,
 * OVERLOADED: the worker waits 50 ms doubling up to 1 s and claims again).
 * Returns 0 when *opts->stop becomes nonzero (checked between tasks and
 * every wait_ms: a signal handler may set it), or after opts->max_tasks
 * tasks acked or nacked (0: no limit); any other error ends it and is
 * returned (MAOS_EINVALID_NAME for a bad queue, a dead context, ...).
 *
 * Ownership: t->task and what it points to are valid during fn only;
 * t->result is a malloc'ed msgpack value fn may set, freed by the library.
 * Thread-safety: c as any call; fn is called on the calling thread only.
 */
typedef struct maos_worker_task {
    const maos_task_info *task; /* the claimed task */
    void *result;               /* handler: a malloc'ed msgpack value to ack with */
    size_t result_len;
    char error[256];            /* handler: why it failed */
    void *keeper_;              /* private */
} maos_worker_task;
typedef int (*maos_worker_fn)(maos_ctx *c, maos_worker_task *t, void *arg);
typedef struct maos_worker_opts {
    uint32_t lease_ms;          /* per claim and extend; 0: the tasks' own */
    uint32_t wait_ms;           /* per claim; 0: 1000 */
    uint64_t max_tasks;         /* 0: no limit */
    volatile int *stop;         /* NULL: none */
    uint64_t done, failed;      /* out: tasks acked, nacked */
    int no_keeper;              /* 1: no keeper thread (see above) */
    uint32_t extend_every_ms;   /* keeper period; 0: a third of the lease */
    uint64_t lost;              /* out: tasks whose lease was lost */
    uint64_t extends;           /* out: extends the keeper made */
    int keeper_failed;          /* out: 1 when the keeper could not start */
} maos_worker_opts;
int maos_worker_run(maos_ctx *c, const char *const *queues, size_t n, maos_worker_fn fn,
                    void *arg, maos_worker_opts *opts);
/* From a handler: extend the task's lease by lease_ms from now (on c). */
int maos_worker_extend(maos_ctx *c, maos_worker_task *t, uint32_t lease_ms);
/* From a handler: 1 once the keeper was told the lease is gone (the task
 * went back to its queue or to another worker: stop working on it), else
 * 0 (also without a keeper).  Safe to call while the keeper runs. */
int maos_worker_lease_lost(const maos_worker_task *t);

#ifdef __cplusplus
}
#endif
#endif
