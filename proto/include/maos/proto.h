/*
 * maos/proto.h -- the maos wire protocol: frames, a bounded msgpack cursor,
 * and every message's encoder and decoder, used by both maosd and
 * libmaos-client.  proto/PROTOCOL.md is the prose version of this file.
 *
 * This library is pure: no I/O, no logging, no globals, no threads.
 * It can be tested and fuzzed without a server.
 *
 * Decoding never trusts a length a peer declared: every str/bin/array/map
 * header is checked against the bytes actually present (an element takes at
 * least one byte) and against maos_limits before anything is allocated.
 * That is why decoding uses the cursor in this file rather than msgpack-c's
 * unpacker, which allocates from declared counts.  Encoding uses msgpack-c's
 * packer into a msgpack_sbuffer.
 *
 * Decoded structures hold maos_slice views into the frame they were decoded
 * from: they are valid only as long as that frame's bytes are.
 *
 * Thread-safety: all functions are reentrant; objects are not shared.
 */
#ifndef MAOS_PROTO_H
#define MAOS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "maos/consts.h"
#include "maos/errors.h"

#ifdef __cplusplus
extern "C" {
#endif


/* X(ENUM, "wire name") -- the one list of operations. */
#define MAOS_OPS_MAP(X)                                                        \
    X(HELLO, "hello")                                                          \
    X(PING, "ping")                                                            \
    X(APPEND, "append")                                                        \
    X(TXN, "txn")                                                              \
    X(READ, "read")                                                            \
    X(READ_ALL, "read_all")                                                    \
    X(STREAMS, "streams")                                                      \
    X(STATS, "stats")                                                          \
    X(SUBSCRIBE, "subscribe")                                                  \
    X(UNSUBSCRIBE, "unsubscribe")                                              \
    X(CHECKPOINT_SAVE, "checkpoint_save")                                      \
    X(CHECKPOINT_GET, "checkpoint_get")                                        \
    X(PUBLISH, "publish")                                                      \
    X(SUBSCRIBE_CHANNEL, "subscribe_channel")                                  \
    X(PUT, "put")                                                              \
    X(GET, "get")                                                              \
    X(DELETE, "delete")                                                        \
    X(LIST, "list")                                                            \
    X(COUNT, "count")                                                          \
    X(WATCH, "watch")                                                          \
    X(AGENT_REGISTER, "agent_register")                                        \
    X(AGENT_DEREGISTER, "agent_deregister")                                    \
    X(AGENT_STATUS, "agent_status")                                            \
    X(ENQUEUE, "enqueue")                                                      \
    X(CLAIM, "claim")                                                          \
    X(ACK, "ack")                                                              \
    X(NACK, "nack")                                                            \
    X(EXTEND, "extend")                                                        \
    X(RELEASE, "release")                                                      \
    X(TASK, "task")                                                            \
    X(QUEUE_STATS, "queue_stats")                                              \
    X(DEAD_LIST, "dead_list")                                                  \
    X(DEAD_RETRY, "dead_retry")                                                \
    X(DEAD_PURGE, "dead_purge")                                                \
    X(BACKUP, "backup")                                                        \
    X(METRICS, "metrics")                                                      \
    X(TASK_LIST, "task_list")                                                  \
    X(STREAM_META, "stream_meta")                                              \
    X(COMPACT, "compact")                                                      \
    X(PUBKEY, "pubkey")                                                        \
    X(CHAIN_SIGN, "chain_sign")                                                \
    X(TOKEN_CREATE, "token_create")                                            \
    X(TOKEN_LIST, "token_list")                                                \
    X(TOKEN_REVOKE, "token_revoke")                                            \
    X(APPEND_BATCH, "append_batch")

typedef enum maos_op {
    MAOS_OP_NONE = 0,
#define MAOS_OP_ENUM_(e, name) MAOS_OP_##e,
    MAOS_OPS_MAP(MAOS_OP_ENUM_)
#undef MAOS_OP_ENUM_
        MAOS_OP__COUNT
} maos_op;

/* Static wire name, or NULL for MAOS_OP_NONE / out of range. */
const char *maos_op_name(maos_op op);
/* MAOS_OP_NONE when unknown. */
maos_op maos_op_from_name(const char *name, size_t len);

/* A view of bytes owned by someone else. */
typedef struct maos_slice {
    const char *ptr;
    uint32_t len;
} maos_slice;

/* Limits a peer's input is checked against.  Zero fields take defaults. */
typedef struct maos_limits {
    uint32_t max_frame;  /* bytes of one frame payload (default 16 MiB) */
    uint32_t max_depth;  /* nesting of arrays/maps (default 64) */
    uint32_t max_elems;  /* elements of one array/map (default 1,000,000) */
    uint32_t max_events; /* events in one request (default 10,000) */
    uint32_t max_appends;/* appends, or ops of the ops form, in one txn
                          * (default 100) */
    uint32_t max_types;  /* terms of one filter: event types, or pairs of
                          * a list/count `where` (default 64) */
    int system;          /* 1: maosd's own requests, which may write the
                          * '$' streams reserved for it (default 0) */
} maos_limits;

/* Fill zero fields of *l with the defaults. */
void maos_limits_defaults(maos_limits *l);

/* ---- frames --------------------------------------------------------- */

/*
 * Push reader for frames: [u32 big-endian length][payload].  The caller
 * either feeds bytes (maos_reader_feed) or reads straight into the reader's
 * buffer (maos_reader_space + maos_reader_commit), then takes whole frames
 * with maos_reader_next.  The declared length is checked against max_frame
 * as soon as the 4 header bytes are present, before the buffer grows for
 * the payload.  Errors are sticky (r->err).
 */
typedef struct maos_reader {
    char *buf;
    size_t len;   /* bytes in buf */
    size_t pos;   /* bytes of buf already handed out */
    size_t cap;
    uint32_t max_frame;
    int err;      /* 0 or sticky MAOS_EFRAME_TOO_LARGE / MAOS_EBAD_FRAME / MAOS_ENOMEM */
} maos_reader;

void maos_reader_init(maos_reader *r, uint32_t max_frame);
/* Frees the buffer; accepts a zeroed reader. */
void maos_reader_free(maos_reader *r);
/* Copy n bytes in.  0 or MAOS_ENOMEM. */
int maos_reader_feed(maos_reader *r, const void *p, size_t n);
/* Writable space of at least `want` bytes (want may be 0 for "some") at
 * *p; returns its size or a negative error.  Grows the buffer only up to
 * what the current frame needs plus one header. */
long maos_reader_space(maos_reader *r, char **p, size_t want);
/* n bytes were written into the space. */
void maos_reader_commit(maos_reader *r, size_t n);
/* Free a large buffer once every byte in it has been handed out (call
 * when the frames taken are no longer used). */
void maos_reader_shrink(maos_reader *r);
/* 1 and *frame set to the next payload (valid until the next call on r),
 * 0 when more bytes are needed, or a negative sticky error. */
int maos_reader_next(maos_reader *r, maos_slice *frame);

/* Write a 4-byte big-endian length header. */
void maos_frame_put_len(char hdr[4], uint32_t len);

/* ---- bounded msgpack cursor ------------------------------------------ */

/*
 * Check that buf[0..len) is exactly one well-formed msgpack value within
 * the depth and element limits.  Returns 0, MAOS_EBAD_FRAME (malformed,
 * truncated, trailing bytes, reserved type byte) or MAOS_ELIMIT.
 */
int maos_mp_check(const void *buf, size_t len, const maos_limits *lim);

typedef struct maos_mpr {
    const uint8_t *p;
    const uint8_t *end;
} maos_mpr;

enum maos_mp_type {
    MAOS_MP_NIL = 1, MAOS_MP_BOOL, MAOS_MP_UINT, MAOS_MP_INT, MAOS_MP_FLOAT,
    MAOS_MP_STR, MAOS_MP_BIN, MAOS_MP_ARRAY, MAOS_MP_MAP, MAOS_MP_EXT
};

void maos_mpr_init(maos_mpr *r, const void *p, size_t len);
/* Type of the next value, 0 at end or on a bad byte. */
int maos_mpr_peek(const maos_mpr *r);
/* Each reads one value of its kind and advances; on a type mismatch or
 * truncation returns MAOS_EBAD_REQUEST and leaves the cursor unchanged. */
int maos_mpr_nil(maos_mpr *r);
int maos_mpr_bool(maos_mpr *r, int *v);
int maos_mpr_uint(maos_mpr *r, uint64_t *v);       /* non-negative ints */
int maos_mpr_int(maos_mpr *r, int64_t *v);         /* any int in range */
int maos_mpr_float(maos_mpr *r, double *v);         /* float32 or float64 */
int maos_mpr_str(maos_mpr *r, maos_slice *s);
int maos_mpr_bin(maos_mpr *r, maos_slice *s);
int maos_mpr_ext(maos_mpr *r, int8_t *type, maos_slice *data);
int maos_mpr_array(maos_mpr *r, uint32_t *n);      /* n <= bytes left */
int maos_mpr_map(maos_mpr *r, uint32_t *n);        /* 2n <= bytes left */
/* Skip one whole value; *raw (may be NULL) gets its encoded bytes. */
int maos_mpr_skip(maos_mpr *r, maos_slice *raw);
/* The map at the cursor: the encoded bytes of the value of its first str
 * key equal to key, into *raw.  0, MAOS_ENOT_FOUND, or MAOS_EPROTO (not a
 * map, a key that is not a str, or malformed). */
int maos_mpr_find(maos_mpr *r, const char *key, maos_slice *raw);

/* ---- names and ids ---------------------------------------------------- */

/* 0 if s is min..max bytes of strict UTF-8 (no overlongs, no surrogates,
 * <= U+10FFFF) without NUL; else MAOS_EINVALID_NAME. */
int maos_utf8_check(maos_slice s, uint32_t min, uint32_t max);
/* 0 if s is 1..255 bytes of valid UTF-8 without NUL (types, checkpoint
 * names, channels); else MAOS_EINVALID_NAME. */
int maos_name_check(maos_slice s);
/* The same for a stream name: 1..MAOS_STREAM_MAX bytes. */
int maos_stream_check(maos_slice s);
/* The same for a table entry key: 1..MAOS_KEY_MAX bytes. */
int maos_key_check(maos_slice key);
/* Parse 36-char canonical UUID text.  0 or MAOS_EINVALID_ID. */
int maos_uuid_parse(const char *s, size_t len, uint8_t out[16]);
/* Format as 36 chars + NUL. */
void maos_uuid_format(const uint8_t id[16], char out[37]);
/* Stream category: the part of the name before the first '-'. */
maos_slice maos_category(maos_slice stream);

/* ---- tables ------------------------------------------------------------ */

/*
 * A table, named on the wire by `table`: "sessions", "agents", "locks", or
 * "kv.NAME" (NAME 1..64 bytes of [A-Za-z0-9_.]).  Every entry change is an
 * event of the entry's stream, named by maos_table_stream:
 *   sessions -> session-KEY   agents -> agent-KEY   locks -> lock-KEY
 *   kv.NAME  -> kv.NAME-KEY
 * so the stream's category names the table.
 */
enum { MAOS_TABLE_SESSIONS = 1, MAOS_TABLE_AGENTS, MAOS_TABLE_LOCKS, MAOS_TABLE_KV };

typedef struct maos_table_ref {
    int kind;        /* MAOS_TABLE_SESSIONS, _AGENTS, _LOCKS, _KV */
    maos_slice name; /* the wire name, "kv.plan" (a view of the caller's bytes) */
} maos_table_ref;

/* Parse a wire table name.  0 and *t set (t->name = name), or
 * MAOS_EINVALID_NAME for anything that is not one of the forms above. */
int maos_table_parse(maos_slice name, maos_table_ref *t);
/* Write the table's stream prefix ("session-", "kv.plan-") into out, which
 * holds MAOS_STREAM_MAX bytes (no NUL is written).  Returns its length, or
 * MAOS_EINVALID_ARG for a ref maos_table_parse would not have made.  A
 * watch's filter prefix is this plus the key prefix. */
int maos_table_stream_prefix(const maos_table_ref *t, char *out);
/* Write the stream of entry `key` ("session-KEY", "kv.plan-KEY") into out
 * (MAOS_STREAM_MAX bytes, no NUL).  Returns its length, or
 * MAOS_EINVALID_ARG for a bad ref or a key longer than MAOS_KEY_MAX (the
 * key's contents are not checked: use maos_key_check). */
int maos_table_stream(const maos_table_ref *t, maos_slice key, char *out);
/* 1 if the stream's category is written by table operations (session,
 * agent, lock, or starting with "kv."): clients may not append to it. */
int maos_stream_is_table(maos_slice stream);

/* ---- scopes and tokens (proto/scope.c) ------------------------------------ */

/*
 * Access control (PROTOCOL.md "Access control").  A scope is text
 * "KIND:ARG" (or "admin"): what a token, or a uid's configuration, lets a
 * connection do.  ARG is a prefix of what the op names (a stream, a table
 * entry "TABLE/KEY", a queue, an agent id), a glob for channel.  The
 * kinds, in the order of this list, with their wire names:
 */
#define MAOS_SCOPE_KINDS(X)                                                    \
    X(READ, "read")                                                            \
    X(APPEND, "append")                                                        \
    X(SUBSCRIBE, "subscribe")                                                  \
    X(KV_READ, "kv.read")                                                      \
    X(KV_WRITE, "kv.write")                                                    \
    X(QUEUE_ENQUEUE, "queue.enqueue")                                          \
    X(QUEUE_WORK, "queue.work")                                                \
    X(CHANNEL, "channel")                                                      \
    X(AGENT_REGISTER, "agent.register")                                        \
    X(ADMIN, "admin")

typedef enum maos_scope_kind {
    MAOS_SCOPE_UNLISTED = 0, /* maos_op_scope: an op without a row (a bug) */
#define MAOS_SCOPE_ENUM_(e, name) MAOS_SCOPE_##e,
    MAOS_SCOPE_KINDS(MAOS_SCOPE_ENUM_)
#undef MAOS_SCOPE_ENUM_
    MAOS_SCOPE__KINDS,
    /* maos_op_scope only: */
    MAOS_SCOPE_NOT_NEEDED = 100, /* any connection past hello (ping, ...) */
    MAOS_SCOPE_PER_ITEM          /* txn: each append/op by its own kind */
} maos_scope_kind;

#define MAOS_SCOPE_TEXT_MAX 600  /* the longest scope text */
#define MAOS_SCOPES_MAX 64       /* scopes of one token or uid */

typedef struct maos_scope {
    int kind;       /* MAOS_SCOPE_READ .. MAOS_SCOPE_ADMIN */
    maos_slice arg; /* a view of the parsed text (len 0: everything) */
} maos_scope;

/* Parse one scope text (not NUL-terminated).  0 and *out set (out->arg
 * points into s), or MAOS_EBAD_REQUEST with why set: unknown kind, no ':'
 * (only "admin" stands alone), an argument that is not UTF-8 without NUL
 * or longer than its kind allows (a stream prefix MAOS_STREAM_MAX, a
 * table entry "TABLE/KEY-PREFIX" with TABLE a table name or "*", a queue
 * or agent prefix MAOS_KEY_MAX, a channel glob MAOS_NAME_MAX). */
int maos_scope_parse(const char *s, size_t len, maos_scope *out, char *why, size_t whylen);
/* The kind's wire name ("kv.read"), or "none"/"per-op" for the two op
 * values, NULL for anything else. */
const char *maos_scope_kind_name(int kind);
/* The scope an op needs (the one table: PROTOCOL.md "Access control" is
 * its prose): a kind, MAOS_SCOPE_NOT_NEEDED, MAOS_SCOPE_PER_ITEM, or
 * MAOS_SCOPE_UNLISTED for an op the table forgot (tests/unit walks every
 * op of MAOS_OPS_MAP). */
int maos_op_scope(maos_op op);
/* The scope a txn item needs (MAOS_ITEM_*): a kind, or MAOS_SCOPE_UNLISTED. */
int maos_item_scope(int item_kind);
/* 1 when scope s allows `kind` on target: kinds equal and target starts
 * with s->arg (kv kinds: target "TABLE/KEY", TABLE equal to the scope's
 * or the scope's "*", KEY starting with its key prefix; channel: target
 * matches the glob, fnmatch(3) without flags; admin: always). */
int maos_scope_allows(const maos_scope *s, int kind, maos_slice target);
/* 1 when any of v[0..n) allows it. */
int maos_scopes_allow(const maos_scope *v, uint32_t n, int kind, maos_slice target);
/* 1 when any of v[0..n) is of kind (whatever its argument). */
int maos_scopes_have(const maos_scope *v, uint32_t n, int kind);

/* token_create's fields (PROTOCOL.md "Tokens"), decoded apart from
 * maos_request so that maos_request keeps its layout (ABI). */
typedef struct maos_token_spec {
    maos_slice name;       /* 1..64 bytes of [A-Za-z0-9_.-] */
    uint32_t n_scopes;     /* 0..MAOS_SCOPES_MAX */
    maos_scope scopes[MAOS_SCOPES_MAX]; /* parsed; args point into the frame */
    uint64_t expires_ms;   /* 0: never */
    int64_t uid;           /* -1: any uid */
    maos_slice session;    /* len 0: none; else 1..48 bytes of [A-Za-z0-9_.-] */
} maos_token_spec;
/* Decode token_create's fields from its request frame (already decoded
 * by maos_request_decode).  0, or MAOS_EBAD_REQUEST / MAOS_EINVALID_NAME
 * with why set.  No allocation: slices point into frame. */
int maos_token_spec_decode(const void *frame, size_t len, maos_token_spec *out, char *why,
                           size_t whylen);

/* A token: MAOS_TOKEN_BYTES random bytes, written as "maos_" and their
 * base64url without padding (MAOS_TOKEN_TEXT_LEN characters). */
#define MAOS_TOKEN_BYTES 32
#define MAOS_TOKEN_PREFIX "maos_"
#define MAOS_TOKEN_TEXT_LEN (5 + 43)
/* Write the text form of raw into out (MAOS_TOKEN_TEXT_LEN + 1 bytes,
 * NUL-terminated). */
void maos_token_format(const uint8_t raw[MAOS_TOKEN_BYTES], char *out);
/* Parse the text form (exactly MAOS_TOKEN_TEXT_LEN bytes, canonical
 * base64url).  0 and raw set, or MAOS_EUNAUTHENTICATED. */
int maos_token_parse(const char *s, size_t len, uint8_t raw[MAOS_TOKEN_BYTES]);
/* 0 when s is a token name (1..64 bytes of [A-Za-z0-9_.-]), else
 * MAOS_EINVALID_NAME. */
int maos_token_name_check(maos_slice s);

/* ---- requests ---------------------------------------------------------- */


typedef struct maos_event_in {
    uint8_t id[16];
    int has_id;
    maos_slice type;
    maos_slice data; /* one raw msgpack value; len 0 means nil */
    maos_slice meta; /* one raw msgpack map; len 0 means {} */
} maos_event_in;

typedef struct maos_append_in {
    maos_slice stream;
    int64_t expect; /* >= 0 exact version, or MAOS_EXPECT_* */
    uint32_t n_events;
    maos_event_in *events;
} maos_append_in;


/* One task of an enqueue.  Optional fields: len 0 / 0 = absent. */
typedef struct maos_task_in {
    maos_slice data;          /* one raw msgpack value (len 0: nil) */
    maos_slice meta;          /* raw map (len 0: {}) */
    int32_t priority;
    int64_t delay_ms;         /* -1: none */
    int64_t not_before;       /* microseconds since the epoch, 0: none */
    uint32_t max_attempts;    /* 0: MAOS_ATTEMPTS_DEFAULT */
    uint32_t lease_ms;        /* 0: MAOS_LEASE_MS_DEFAULT */
    uint32_t backoff_ms;
    maos_slice dedupe_key;    /* key rules */
    maos_slice ordering_key;  /* key rules */
} maos_task_in;

typedef struct maos_item_in {
    int kind;                /* MAOS_ITEM_* */
    maos_append_in *append;  /* APPEND: points into req->appends */
    maos_table_ref table;    /* PUT, DELETE */
    maos_slice key;          /* PUT, DELETE: valid key (maos_key_check) */
    maos_slice data;         /* PUT: the document, one raw msgpack map */
    int64_t expect;          /* PUT, DELETE: >= 0 revision, or MAOS_EXPECT_ANY,
                              * _ABSENT (PUT only), _EXISTS */
    int bind;                /* PUT: 1 = bound to the writing connection */
    maos_slice name;         /* CHECKPOINT: checkpoint name */
    uint64_t position;       /* CHECKPOINT */
    /* queues */
    maos_slice queue;        /* ENQUEUE, DEAD_RETRY, DEAD_PURGE */
    uint32_t n_tasks;        /* ENQUEUE: 1..max_events */
    maos_task_in *tasks;
    uint32_t n_queues;       /* CLAIM: 1..MAOS_CLAIM_QUEUES_MAX */
    maos_slice *queues;
    uint8_t task[16];        /* ACK, NACK, EXTEND, TASK_RELEASE, DEAD_RETRY */
    int has_task;            /* (DEAD_RETRY without a task: all) */
    uint64_t token;          /* ACK, NACK, EXTEND, TASK_RELEASE */
    maos_slice result;       /* ACK: one raw msgpack value (len 0: nil) */
    maos_slice error;        /* NACK: 1..MAOS_TASK_ERROR_MAX bytes of UTF-8 */
    int64_t retry_after_ms;  /* NACK: -1 none */
    uint32_t lease_ms;       /* CLAIM (0: each task's own), EXTEND */
    uint32_t wait_ms;        /* CLAIM */
    uint32_t max_tasks;      /* CLAIM: 1..MAOS_CLAIM_MAX */
} maos_item_in;

/* agent_register (id, session, name, kind, tags, details), agent_deregister
 * (id), agent_status (status, detail).  Optional fields: len 0 = absent. */
typedef struct maos_agent_in {
    maos_slice id;       /* key rules (maos_key_check) */
    maos_slice session;  /* key rules */
    maos_slice name;     /* 1..255 bytes of UTF-8 */
    maos_slice kind;     /* 1..255 bytes of UTF-8 */
    maos_slice tags;     /* raw msgpack array of strings (1..255 bytes each) */
    maos_slice details;  /* raw msgpack map */
    maos_slice status;   /* 1..MAOS_STATUS_MAX bytes of UTF-8 */
    maos_slice detail;   /* one raw msgpack value */
} maos_agent_in;


typedef struct maos_filter {
    maos_slice stream;   /* len 0: unset */
    maos_slice prefix;   /* len 0: unset */
    maos_slice category; /* len 0: unset */
    uint32_t n_types;
    maos_slice *types;
    int has_since, has_until;
    int64_t since, until; /* microseconds since the epoch, inclusive */
} maos_filter;

/* 1 if the record matches every set part of the filter. */
struct maos_record;
int maos_filter_match(const maos_filter *f, const struct maos_record *rec);

/*
 * stream_meta (PROTOCOL.md "stream_meta"): the retention rule of one
 * stream or of a category, a truncation or a deletion of a stream; with
 * none of them, it only reports.  A rule keeps the last max_count events
 * and/or the events younger than max_age_ms (0: no such limit); setting
 * one replaces the whole rule, clear removes it.
 */
typedef struct maos_stream_meta_in {
    maos_slice category;     /* a category rule (instead of req->stream) */
    int set;                 /* max_count / max_age_ms given: the new rule */
    uint64_t max_count;
    uint64_t max_age_ms;
    int clear;
    int has_truncate_before; /* remove versions below truncate_before */
    uint64_t truncate_before;
    int delete_;             /* remove every event; versions go on */
} maos_stream_meta_in;

/* What stream_meta reports: the rule (of the stream itself, or of the
 * category), and for a stream (is_stream: the encoder's input; a decoder
 * knows it from its request) its first readable version, its head (-1:
 * no events ever) and whether it is deleted; for a category 0, -1 and
 * false. */
typedef struct maos_stream_meta_out {
    uint64_t max_count;
    uint64_t max_age_ms;
    int is_stream;
    uint64_t first_version;
    int64_t head;
    int deleted;
} maos_stream_meta_out;

typedef struct maos_request {
    maos_op op;
    uint64_t rid;
    /* hello */
    uint64_t version;
    maos_slice client_name;
    maos_slice token; /* hello: the raw msgpack value of `token` (len 0:
                       * absent); maosd takes a str (maos_token_parse) */
    /* token_create's own fields: maos_token_spec_decode; token_create and
     * token_revoke name the token in `name` */
    /* append (n_appends == 1) and txn */
    uint32_t n_appends;
    maos_append_in *appends;
    /* read (stream) and read_all (filter) */
    maos_slice stream;
    int has_from;
    uint64_t from;
    int backward;
    uint32_t limit;
    maos_filter filter;
    /* streams */
    maos_slice prefix;
    maos_slice after;
    /* subscribe: filter as read_all; from (has_from) is a position, or
     * from_end for live only, or from_version for a one-stream filter */
    int from_end;
    int has_from_version;
    uint64_t from_version;
    /* unsubscribe */
    uint64_t sub;
    /* checkpoint_save / checkpoint_get */
    maos_slice name;
    uint64_t position;
    int has_position;
    /* publish / subscribe_channel */
    maos_slice channel;
    maos_slice payload;  /* one raw msgpack value; len 0 means nil */
    maos_slice pattern;
    /* The write items, in order (see maos_item_in): append, txn, put,
     * delete, checkpoint_save.  APPEND items point into appends; for
     * checkpoint_save, name/position above hold the same values. */
    uint32_t n_items;
    maos_item_in *items;
    /* On a decode failure inside a txn's appends or ops: which element
     * (for the error's `index`); -1 otherwise. */
    int64_t error_index;
    /* get, list, count, watch (put/delete: in items[0]) */
    maos_table_ref table;
    maos_slice key;      /* get */
    /* list, count, watch: `prefix` is a KEY prefix (0..512 bytes, in
     * req->prefix); list: `after` is a key (req->after, len 0: from the
     * start) and `limit` req->limit (default 1000, capped at 10,000) */
    maos_slice where;    /* list, count: raw msgpack map field -> value,
                          * string keys, at most max_types pairs; len 0: none */
    /* watch: watch_from is MAOS_WATCH_FROM_*; watch_revision is R for
     * MAOS_WATCH_FROM_REVISION.  req->filter is filled too: prefix = the
     * table's stream prefix + the key prefix, types put and deleted, so a
     * watch subscribes like subscribe. */
    int watch_from;
    uint64_t watch_revision;
    /* agent_register, agent_deregister, agent_status */
    maos_agent_in agent;
    /* task (task), queue_stats (queue, len 0: all), dead_list (queue,
     * has_task: after that task, limit); the write ops of queues are in
     * items[0] */
    maos_slice queue;
    uint8_t task[16];
    int has_task;
    /* backup: the absolute path of the directory to create (1..MAOS_PATH_MAX
     * bytes, starts with '/') */
    maos_slice path;
    /* read_all: hand out the stubs of removed events too (verify) */
    int removed;
    /* read, read_all, subscribe: how its replies or pushes carry records
     * (MAOS_FORM_*) */
    int form;
    /* stream_meta: stream (req->stream) or category (smeta.category) */
    maos_stream_meta_in smeta;
    /* owned by the request: freed by maos_request_free */
    void *mem_;
} maos_request;

/*
 * Decode one request frame (already checked by maos_mp_check or not: the
 * decoder checks again).  On success returns 0 and fills *req, whose slices
 * point into frame.  On failure returns a negative code, writes a reason
 * into why[0..whylen) and still sets req->rid (0 if it could not be read)
 * and req->op when they were readable, so the error reply can carry them.
 * Call maos_request_free in both cases.
 */
int maos_request_decode(const void *frame, size_t len, const maos_limits *lim,
                        maos_request *req, char *why, size_t whylen);
/* Frees what decode allocated; accepts a zeroed request. */
void maos_request_free(maos_request *req);

/* Request encoders (client side).  Each appends one msgpack value (no
 * frame header) to pk and returns 0 or MAOS_ENOMEM. */
int maos_enc_hello(msgpack_packer *pk, uint64_t rid, uint64_t version,
                   const char *client_name);
int maos_enc_simple(msgpack_packer *pk, uint64_t rid, maos_op op); /* ping, stats */
int maos_enc_append(msgpack_packer *pk, uint64_t rid, const maos_append_in *a);
int maos_enc_txn(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                 uint32_t n);
/* append_batch (PROTOCOL.md "append_batch"): n appends, each checked and
 * written on its own (not a txn): 1..max_events appends, and their events
 * 1..max_events in all; the same stream may come more than once. */
int maos_enc_append_batch(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                          uint32_t n);
/* The same asking for its results in the array form (form MAOS_FORM_ARRAY:
 * each append's result as [stream, first_version, first_position, count,
 * duplicate, ids], PROTOCOL.md "append_batch"); the key comes last. */
int maos_enc_append_batch_as(msgpack_packer *pk, uint64_t rid, const maos_append_in *a,
                             uint32_t n, int form);
int maos_enc_read(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                  int has_from, uint64_t from, int backward, uint32_t limit);
int maos_enc_read_all(msgpack_packer *pk, uint64_t rid, int has_from,
                      uint64_t from, int backward, uint32_t limit,
                      const maos_filter *f);
/* The same with every option: form (MAOS_FORM_*; MAOS_FORM_MAP, the
 * default, writes no key) and, for read_all, removed (maos_enc_read_log).
 * The key order is the one above, then removed, then form. */
int maos_enc_read_as(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                     int has_from, uint64_t from, int backward, uint32_t limit,
                     int form);
int maos_enc_read_all_as(msgpack_packer *pk, uint64_t rid, int has_from,
                         uint64_t from, int backward, uint32_t limit,
                         const maos_filter *f, int removed, int form);
int maos_enc_streams(msgpack_packer *pk, uint64_t rid, maos_slice prefix,
                     maos_slice after, uint32_t limit);
int maos_enc_subscribe(msgpack_packer *pk, uint64_t rid, const maos_filter *f,
                       int from_kind, uint64_t from);
/* The same with the records of its pushes in a form (MAOS_FORM_*; the map
 * form, the default, writes no key): the key follows from/from_version. */
int maos_enc_subscribe_as(msgpack_packer *pk, uint64_t rid, const maos_filter *f,
                          int from_kind, uint64_t from, int form);
int maos_enc_unsubscribe(msgpack_packer *pk, uint64_t rid, uint64_t sub);
int maos_enc_checkpoint_save(msgpack_packer *pk, uint64_t rid, maos_slice name,
                             uint64_t position);
int maos_enc_checkpoint_get(msgpack_packer *pk, uint64_t rid, maos_slice name);
int maos_enc_backup(msgpack_packer *pk, uint64_t rid, maos_slice path);
/* read_all {removed: true}: as maos_enc_read_all, the stubs of removed
 * events included */
int maos_enc_read_log(msgpack_packer *pk, uint64_t rid, int has_from, uint64_t from,
                      int backward, uint32_t limit, const maos_filter *f);
/* stream_meta for stream (len > 0) or m->category */
int maos_enc_stream_meta(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                         const maos_stream_meta_in *m);
int maos_enc_reply_stream_meta(msgpack_packer *pk, uint64_t rid,
                               const maos_stream_meta_out *m);
int maos_enc_metrics(msgpack_packer *pk, uint64_t rid);
int maos_enc_compact(msgpack_packer *pk, uint64_t rid);
/* pubkey: {rid, ok, key}; chain_sign {position}: {rid, ok, position, hash,
 * signature} (PROTOCOL.md "Signed checkpoints") */
int maos_enc_pubkey(msgpack_packer *pk, uint64_t rid);
int maos_enc_chain_sign(msgpack_packer *pk, uint64_t rid, uint64_t position);
int maos_enc_reply_pubkey(msgpack_packer *pk, uint64_t rid, const uint8_t key[32]);
int maos_enc_reply_chain_sign(msgpack_packer *pk, uint64_t rid, uint64_t position,
                              const uint8_t hash[32], uint64_t head, const uint8_t sig[64]);
/* The message a signed checkpoint signs: "maos-chain-1" (12 bytes), the
 * position (8 bytes big-endian) and the hash of its record (32 bytes). */
#define MAOS_CHAIN_MSG_LEN 52
void maos_chain_message(uint64_t position, const uint8_t hash[32],
                        uint8_t out[MAOS_CHAIN_MSG_LEN]);
/* What chain_sign signs (an export's trailer): "maos-export-1" (13 bytes),
 * the position and the daemon's head when it signed (8 bytes big-endian
 * each) and the hash: another domain than the checkpoints', so that a
 * checkpoint's signature can never pass for a trailer's (an export cut
 * there). */
#define MAOS_EXPORT_MSG_LEN 61
void maos_export_message(uint64_t position, const uint8_t hash[32], uint64_t head,
                         uint8_t out[MAOS_EXPORT_MSG_LEN]);
/* token_create: name, scopes[0..n) (texts), expires_ms (0: never), uid
 * (-1: any), session (NULL: none). */
int maos_enc_token_create(msgpack_packer *pk, uint64_t rid, const char *name,
                          const char *const *scopes, uint32_t n, uint64_t expires_ms,
                          int64_t uid, const char *session);
int maos_enc_token_list(msgpack_packer *pk, uint64_t rid);
int maos_enc_token_revoke(msgpack_packer *pk, uint64_t rid, const char *name);
/* hello with a token (its text; NULL: as maos_enc_hello). */
int maos_enc_hello_token(msgpack_packer *pk, uint64_t rid, uint64_t version,
                         const char *client_name, const char *token);
/* task_list: every task (any state) of queue (len 0: of every queue), by
 * id, after the task `after` (NULL: from the first), at most limit. */
int maos_enc_task_list(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                       const uint8_t *after, uint32_t limit);
/* metrics reply: {rid, ok, text} */
int maos_enc_reply_text(msgpack_packer *pk, uint64_t rid, maos_slice text);
int maos_enc_publish(msgpack_packer *pk, uint64_t rid, maos_slice channel,
                     maos_slice payload);
int maos_enc_subscribe_channel(msgpack_packer *pk, uint64_t rid,
                               maos_slice pattern);
/* txn in the ops form: one op per item (APPEND items use item->append;
 * expect of PUT/DELETE as in maos_item_in).  MAOS_EINVALID_ARG for an
 * unknown kind or expect. */
int maos_enc_txn_ops(msgpack_packer *pk, uint64_t rid, const maos_item_in *items,
                     uint32_t n);
/* Tables: `table` is the wire name ("kv.plan"); data is one raw msgpack
 * map (len 0 sends {}); where one raw map (len 0: none); prefix/after len
 * 0: none; limit 0: the default; expect as in maos_item_in (ABSENT is sent
 * as "absent").  Encoders do not validate: the daemon does. */
int maos_enc_put(msgpack_packer *pk, uint64_t rid, maos_slice table, maos_slice key,
                 maos_slice data, int64_t expect, int bind);
int maos_enc_get(msgpack_packer *pk, uint64_t rid, maos_slice table, maos_slice key);
int maos_enc_delete(msgpack_packer *pk, uint64_t rid, maos_slice table,
                    maos_slice key, int64_t expect);
int maos_enc_list(msgpack_packer *pk, uint64_t rid, maos_slice table,
                  maos_slice prefix, maos_slice after, uint32_t limit,
                  maos_slice where);
int maos_enc_count(msgpack_packer *pk, uint64_t rid, maos_slice table,
                   maos_slice prefix, maos_slice where);
/* from_kind MAOS_WATCH_FROM_*; revision is used for _REVISION. */
int maos_enc_watch(msgpack_packer *pk, uint64_t rid, maos_slice table,
                   maos_slice prefix, int from_kind, uint64_t revision);
/* Agents: register sends id and every set optional field of *a;
 * deregister the id; status the status and detail (len 0: none). */
int maos_enc_agent_register(msgpack_packer *pk, uint64_t rid, const maos_agent_in *a);
int maos_enc_agent_deregister(msgpack_packer *pk, uint64_t rid, maos_slice id);
int maos_enc_agent_status(msgpack_packer *pk, uint64_t rid, maos_slice status,
                          maos_slice detail);
/* Queues (PROTOCOL.md "Queues").  Encoders do not validate: the daemon
 * does.  A task id is 16 bytes.  queue len 0 (queue_stats): every queue;
 * after NULL (dead_list): from the start; id NULL (dead_retry): all;
 * retry_after_ms -1 (nack): none; lease_ms 0 (claim): each task's own;
 * result/error len 0: none. */
int maos_enc_enqueue(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                     const maos_task_in *tasks, uint32_t n);
int maos_enc_claim(msgpack_packer *pk, uint64_t rid, const maos_slice *queues,
                   uint32_t n, uint32_t lease_ms, uint32_t wait_ms, uint32_t max,
                   int bind);
int maos_enc_ack(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                 uint64_t token, maos_slice result);
int maos_enc_nack(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                  uint64_t token, maos_slice error, int64_t retry_after_ms);
int maos_enc_extend(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                    uint64_t token, uint32_t lease_ms);
int maos_enc_task_release(msgpack_packer *pk, uint64_t rid, const uint8_t id[16],
                          uint64_t token);
int maos_enc_task_get(msgpack_packer *pk, uint64_t rid, const uint8_t id[16]);
int maos_enc_queue_stats(msgpack_packer *pk, uint64_t rid, maos_slice queue);
int maos_enc_dead_list(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                       const uint8_t *after, uint32_t limit);
int maos_enc_dead_retry(msgpack_packer *pk, uint64_t rid, maos_slice queue,
                        const uint8_t *id);
int maos_enc_dead_purge(msgpack_packer *pk, uint64_t rid, maos_slice queue);
/* 0 when s is a queue name (1..64 bytes of [A-Za-z0-9_.-]), else
 * MAOS_EINVALID_NAME. */
int maos_queue_name_check(maos_slice s);
/* The stream of a queue's events ("queue-NAME") into out (at least
 * 6 + MAOS_QUEUE_NAME_MAX bytes, no NUL); its length. */
size_t maos_queue_stream(maos_slice queue, char *out);

/* ---- stored event records ------------------------------------------------ */

/*
 * The stored record of an event is exactly what replays send: a msgpack map
 * of 9 entries in this order: position (uint64, always 9 bytes), time (int64
 * microseconds, always 9 bytes), version (uint64, always 9 bytes), stream
 * (str), type (str), id (bin 16), prev (bin 32: BLAKE2b-256 of the previous
 * record's bytes, zeros for position 1), data (any), meta (map).
 */
typedef struct maos_record {
    uint64_t position;
    uint64_t version;
    int64_t time;
    maos_slice stream;
    maos_slice type;
    maos_slice id;   /* 16 bytes */
    maos_slice prev; /* 32 bytes */
    maos_slice data; /* raw msgpack */
    maos_slice meta; /* raw msgpack map */
    maos_slice raw;  /* the whole record */
} maos_record;

#define MAOS_HASH_BYTES 32

/*
 * The forms a read or read_all reply carries records in (its request's
 * "form", PROTOCOL.md "Record forms"): MAOS_FORM_MAP, the stored record
 * itself (the default; what prev hashes); MAOS_FORM_ARRAY, the same values
 * without their keys, [position, time, version, stream, type, id, prev,
 * data, meta] (a stub: removed as a 10th), each value's bytes as stored.
 */
enum { MAOS_FORM_MAP = 0, MAOS_FORM_ARRAY = 1 };

/* Decode a record: the map form (keys in any order; all nine required) or
 * the array form.  0 or MAOS_EPROTO.  raw is the bytes decoded: the stored
 * record only for the map form. */
int maos_record_decode(const void *p, size_t len, maos_record *rec);
/* Read one record from a cursor (e.g. inside an events array). */
int maos_record_next(maos_mpr *r, maos_record *rec);
/* Append the array form of a stored record (map form: p, len) to out.  0,
 * MAOS_EPROTO (p is not a record) or MAOS_ENOMEM. */
int maos_record_to_array(const void *p, size_t len, msgpack_sbuffer *out);
/* Encode a record.  data.len 0 encodes nil; meta.len 0 encodes {}. */
int maos_enc_record(msgpack_packer *pk, uint64_t position, int64_t time,
                    uint64_t version, maos_slice stream, maos_slice type,
                    const uint8_t id[16], const uint8_t prev[32],
                    maos_slice data, maos_slice meta);

/*
 * The stub of a removed event (retention, PROTOCOL.md "Retention"): the
 * record's map with 10 entries: position, time, version, stream, type, id
 * and prev as they were, data nil, meta {}, and "removed": the BLAKE2b-256
 * of the record it replaces, so the hash chain still links through it.
 * A stub starts with 0x8a, a record with 0x89 (array form: 0x9a, 0x99).
 * maos_record_stub: 1 and *hash (32 bytes) when p is a stub (either
 * form), 0 when it is not.
 */
int maos_enc_stub(msgpack_packer *pk, const maos_record *rec,
                  const uint8_t hash[MAOS_HASH_BYTES]);
int maos_record_stub(const void *p, size_t len, maos_slice *hash);

/* ---- replies ------------------------------------------------------------- */

/* A task as it travels (PROTOCOL.md "Task"): the encoder writes every
 * field; the decoder requires every field.  history: raw msgpack array of
 * positions (decoded), or n_history positions as 8-byte big-endian values
 * at history_be (encoded). */
typedef struct maos_task {
    uint8_t id[16];
    maos_slice queue;
    maos_slice state;        /* "ready", "delayed", "blocked", "leased", "done", "dead" */
    uint64_t attempt;
    uint64_t max_attempts;
    int64_t priority;
    maos_slice data;         /* one raw msgpack value */
    maos_slice meta;         /* raw map */
    int64_t enqueued;
    int64_t not_before;
    maos_slice dedupe_key;   /* len 0: nil */
    maos_slice ordering_key;
    maos_slice last_error;
    maos_slice result;       /* raw value (nil when none) */
    uint64_t token;
    int64_t lease_until;
    uint32_t n_history;
    maos_slice history;      /* decoded: raw array of uint */
    const char *history_be;  /* encoded from: n_history * 8 bytes */
} maos_task;

int maos_enc_task(msgpack_packer *pk, const maos_task *t);
/* One task from a cursor (claim's and dead_list's tasks); 0 (cursor
 * advanced) or MAOS_EPROTO. */
int maos_task_next(maos_mpr *r, maos_task *t);
int maos_task_decode(const void *p, size_t len, maos_task *t);
/* queue_stats' elements. */
typedef struct maos_queue_info {
    maos_slice queue;
    uint64_t ready, delayed, blocked, leased, done, dead, waiting;
    int64_t oldest_ready;
} maos_queue_info;
int maos_enc_queue_info(msgpack_packer *pk, const maos_queue_info *q);
int maos_queue_info_next(maos_mpr *r, maos_queue_info *q);

/* Result of one append (one element of a txn). */
typedef struct maos_append_result {
    maos_slice stream;
    uint64_t first_version;
    uint64_t first_position;
    uint32_t count;
    int duplicate;       /* 1: an idempotent re-send, nothing written */
    maos_slice ids;      /* count * 16 bytes (bin) */
} maos_append_result;

typedef struct maos_stream_info {
    maos_slice stream;
    uint64_t head;          /* version of the last event */
    uint64_t count;
    uint64_t last_position;
} maos_stream_info;


typedef struct maos_stats {
#define MAOS_STATS_FIELD_(name) uint64_t name;
    MAOS_STATS_MAP(MAOS_STATS_FIELD_)
#undef MAOS_STATS_FIELD_
    maos_slice server;     /* "maosd 0.1.0" */
    maos_slice state;      /* "ok" or "read_only" */
    maos_slice durability; /* "sync" or "none" */
    maos_slice head_hash;  /* BLAKE2b-256 of the record at head_position
                            * (32 bytes; zeros for an empty log) */
    maos_slice data_dir;   /* the daemon's data directory (len 0: not sent) */
} maos_stats;

/* Error reply.  has_actual: include "actual" (WRONG_EXPECTED_VERSION: the
 * stream's current version, -1 when it does not exist; WRONG_REVISION,
 * NOT_FOUND of get/delete: the entry's current revision, -1 when absent);
 * index >= 0: include "index" (which append or op of a txn failed). */
int maos_enc_error(msgpack_packer *pk, uint64_t rid, int code,
                   const char *message, int has_actual, int64_t actual,
                   int64_t index);
/* The same with "entry" (len > 0): WRONG_REVISION of a put or delete whose
 * entry exists carries it as it is (entry: one maos_enc_entry map). */
int maos_enc_error_entry(msgpack_packer *pk, uint64_t rid, int code,
                         const char *message, int has_actual, int64_t actual,
                         int64_t index, maos_slice entry);
int maos_enc_reply_hello(msgpack_packer *pk, uint64_t rid, uint64_t version,
                         const char *server, uint32_t max_frame);
int maos_enc_reply_ok(msgpack_packer *pk, uint64_t rid); /* ping */
/* {rid, ok: true, ...}: the map header and both, for a reply of n more
 * fields the caller packs (the queue ops). */
int maos_enc_reply_head(msgpack_packer *pk, uint64_t rid, uint32_t n);
/* append: n == 1 and txn == 0 (fields at top level); txn: "results". */
/* One append's result in the array form append_batch may ask for:
 * [stream, first_version, first_position, count, duplicate, ids]. */
int maos_enc_append_result_array(msgpack_packer *pk, const maos_append_result *r);
int maos_enc_reply_append(msgpack_packer *pk, uint64_t rid, int txn,
                          const maos_append_result *res, uint32_t n);
int maos_enc_reply_stats(msgpack_packer *pk, uint64_t rid, const maos_stats *s);

/*
 * Streaming reply for read/read_all/streams, so stored records go from the
 * store into the output buffer with one copy and no re-encoding:
 *   maos_enc_list_begin(sb, rid, key, &mark)   key is "events" or "streams"
 *   ... append items: raw records with msgpack_sbuffer_write, or
 *       maos_enc_stream_info for streams ...
 *   maos_enc_list_end(sb, mark, count, next_kind, next_u, next_s)
 * The list's array header is written in its 5-byte form and patched.
 */
typedef struct maos_list_mark {
    size_t count_off;  /* the list's 4 count bytes */
    size_t map_off;    /* the reply map's header byte */
} maos_list_mark;

enum { MAOS_NEXT_NONE = 0, MAOS_NEXT_UINT, MAOS_NEXT_STR, MAOS_NEXT_BIN };

int maos_enc_list_begin(msgpack_sbuffer *sb, uint64_t rid, const char *key,
                        maos_list_mark *mark);
int maos_enc_stream_info(msgpack_packer *pk, const maos_stream_info *si);
int maos_enc_list_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                      uint32_t count, int next_kind, uint64_t next_u,
                      maos_slice next_s);

/* ---- tables: entries and replies ---- */

/*
 * An entry on the wire (get, list, `entries` pushes): a map of table (str),
 * key (str), revision (uint: position of its last change's event),
 * created_revision (uint), created and updated (int, microseconds since the
 * epoch), data (map: the document), bound (bool: tied to a connection).
 * data.len 0 encodes {}.
 */
int maos_enc_entry(msgpack_packer *pk, maos_slice table, maos_slice key,
                   uint64_t revision, uint64_t created_revision, int64_t created,
                   int64_t updated, int bound, maos_slice data);

typedef struct maos_entry {
    maos_slice table;
    maos_slice key;
    uint64_t revision;
    uint64_t created_revision;
    int64_t created;   /* microseconds since the epoch */
    int64_t updated;
    maos_slice data;   /* raw msgpack map */
    int bound;
    maos_slice raw;    /* the whole entry map */
} maos_entry;

/* Read one entry (e.g. from a list's or push's entries array): all eight
 * fields required, data a map.  0 (cursor advanced) or MAOS_EPROTO (cursor
 * unchanged). */
int maos_entry_next(maos_mpr *r, maos_entry *e);
/* Decode exactly one entry from p[0..len) (a get reply's `entry`). */
int maos_entry_decode(const void *p, size_t len, maos_entry *e);

/* put, agent_register: {rid, ok, revision, created_revision}; delete,
 * agent_deregister, agent_status: {rid, ok, revision} (created_revision
 * UINT64_MAX: left out). */
int maos_enc_reply_revision(msgpack_packer *pk, uint64_t rid, uint64_t revision,
                            uint64_t created_revision);
/* get: writes {rid, ok: true, entry: and the caller then writes exactly one
 * entry (maos_enc_entry, or stored entry bytes with msgpack_sbuffer_write). */
int maos_enc_reply_get_begin(msgpack_packer *pk, uint64_t rid);
/* list, streamed like read:
 *   maos_enc_list_begin(sb, rid, "entries", &mark)
 *   ... entries (maos_enc_entry or stored bytes) ...
 *   maos_enc_entries_end(sb, &mark, count, next, revision)
 * next: the last key of the page when there is more (len 0: nil);
 * revision: the log head the page was read at.  Adds next and revision
 * to the map list_begin opened. */
int maos_enc_entries_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                         uint32_t count, maos_slice next, uint64_t revision);
/* count: {rid, ok, count, revision} */
int maos_enc_reply_count(msgpack_packer *pk, uint64_t rid, uint64_t count,
                         uint64_t revision);
/* watch: {rid, ok, sub, revision} */
int maos_enc_reply_watch(msgpack_packer *pk, uint64_t rid, uint64_t sub,
                         uint64_t revision);

/*
 * txn results of either form: {rid, ok, results: [n elements]}, each
 * written by maos_enc_txn_result in request order.  An element is, by the
 * kind of its item: APPEND the append result map; PUT {revision,
 * created_revision}; DELETE {revision}; CHECKPOINT {}.  (The old form's
 * maos_enc_reply_append(txn = 1) writes the same bytes for appends.)
 */
typedef struct maos_txn_result {
    int kind;                   /* MAOS_ITEM_* */
    maos_append_result append;  /* APPEND */
    uint64_t revision;          /* PUT, DELETE, queue items but EXTEND */
    uint64_t created_revision;  /* PUT */
    maos_slice task_ids;        /* ENQUEUE: 16 bytes per task */
    uint32_t n_duplicates;      /* ENQUEUE: raw array of bool, one per task */
    maos_slice duplicates;
    maos_slice state;           /* NACK: "ready", "delayed" or "dead" */
    int64_t lease_until;        /* EXTEND */
} maos_txn_result;

int maos_enc_reply_txn_begin(msgpack_packer *pk, uint64_t rid, uint32_t n);

/*
 * append_batch's results: {rid, ok, results: [n elements]} (begun with
 * maos_enc_reply_txn_begin), one per append in request order: the append
 * result map (maos_enc_txn_result, kind APPEND) when it was written or was
 * an idempotent re-send, or its refusal {code, message, actual?}.
 */
typedef struct maos_batch_result {
    int code;                  /* 0: `append` holds the result; else the
                                * append's refusal (negative MAOS_E*;
                                * MAOS_EPROTO for a name this side does not
                                * know) */
    maos_slice message;
    int has_actual;            /* WRONG_EXPECTED_VERSION: the stream's */
    int64_t actual;            /* version, -1 when it does not exist */
    maos_append_result append;
} maos_batch_result;
/* One refusal element (message NULL or "": the code's text). */
int maos_enc_batch_refusal(msgpack_packer *pk, int code, const char *message,
                           int has_actual, int64_t actual);
/* One element of either form; a result needs every append field, a
 * refusal code and message.  0 (cursor advanced) or MAOS_EPROTO (cursor
 * unchanged). */
int maos_batch_result_next(maos_mpr *r, maos_batch_result *res);
/* One element; MAOS_EINVALID_ARG for an unknown kind. */
int maos_enc_txn_result(msgpack_packer *pk, const maos_txn_result *res);
/* The whole reply to a request of one item: {rid, ok: true} and the same
 * fields as its txn element (the queue ops' replies). */
int maos_enc_reply_result(msgpack_packer *pk, uint64_t rid, const maos_txn_result *res);

/* subscribe / subscribe_channel: {rid, ok, sub, from}; checkpoint_get:
 * {rid, ok, position}; publish: {rid, ok, receivers}.  One encoder: fields
 * with value UINT64_MAX are left out. */
int maos_enc_reply_fields(msgpack_packer *pk, uint64_t rid, uint64_t sub,
                          uint64_t from, uint64_t position, uint64_t receivers);

/*
 * Pushes: frames the daemon sends without a request, told apart from
 * replies by a "push" key (and no "rid").  Kinds:
 *   events       {push, sub, events: [record...], next}
 *   caught_up    {push, sub, next}   catch-up reached the live end
 *   fell_behind  {push, sub, next}   the subscriber fell behind; the daemon
 *                                    reads from disk until it catches up
 *   message      {push, sub, channel, payload}
 *   entries      {push, sub, entries: [entry...], revision, more}
 *                a watch's entries as of `revision`, in pages; more is
 *                false on the last page
 * "next" is the next position the subscription will consider.
 */

const char *maos_push_name(maos_push_kind k);

/* events push, streamed like a list reply (one copy of stored records):
 * maos_enc_push_events_begin, raw records, maos_enc_push_events_end. */
int maos_enc_push_events_begin(msgpack_sbuffer *sb, uint64_t sub,
                               maos_list_mark *mark);
int maos_enc_push_events_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                             uint32_t count, uint64_t next);
/* entries push, streamed the same way: maos_enc_push_entries_begin,
 * entries (maos_enc_entry or stored bytes), maos_enc_push_entries_end. */
int maos_enc_push_entries_begin(msgpack_sbuffer *sb, uint64_t sub,
                                maos_list_mark *mark);
int maos_enc_push_entries_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                              uint32_t count, uint64_t revision, int more);
/* caught_up / fell_behind */
int maos_enc_push_state(msgpack_packer *pk, maos_push_kind kind, uint64_t sub,
                        uint64_t next);
int maos_enc_push_message(msgpack_packer *pk, uint64_t sub, maos_slice channel,
                          maos_slice payload);

typedef struct maos_push {
    maos_push_kind kind;
    uint64_t sub;
    uint64_t next;
    uint32_t n_items;   /* events: raw array of records (maos_record_next);
                         * entries: of entries (maos_entry_next) */
    maos_slice items;
    maos_slice channel; /* message */
    maos_slice payload; /* message: one raw msgpack value */
    uint64_t revision;  /* entries */
    int more;           /* entries */
} maos_push;

/* 1 and *p filled when the frame is a push, 0 when it is not (decode it as
 * a reply), MAOS_EPROTO for a malformed push (an entries push must carry
 * entries, revision and more). */
int maos_push_decode(const void *frame, size_t len, maos_push *p);
/* As maos_push_decode, each record of an `events` list handed to sink as
 * it is read (maos_reply_decode_sink); a sink's failure is MAOS_EPROTO. */
typedef int (*maos_record_sink)(void *arg, uint32_t i, uint32_t n, const maos_record *rec);
int maos_push_decode_sink(const void *frame, size_t len, maos_push *p, maos_record_sink sink,
                          void *arg);

/* A decoded reply (client side).  Slices point into the frame. */
typedef struct maos_reply {
    uint64_t rid;
    int ok;
    /* error */
    int code;            /* negative MAOS_E*; MAOS_EPROTO if unknown name */
    maos_slice message;
    int has_actual;
    int64_t actual;
    int64_t index;       /* -1 when absent */
    /* hello */
    uint64_t version;
    maos_slice server;
    uint32_t max_frame;
    /* append */
    maos_append_result result;
    /* txn: raw array of result maps, decode with maos_txn_result_next (or
     * maos_append_result_next when every item was an append) */
    uint32_t n_results;
    maos_slice results;
    /* read, read_all: raw array of records; streams: of stream infos;
     * list: of entries (maos_entry_next) */
    uint32_t n_items;
    maos_slice items;
    int next_kind;
    uint64_t next_u;
    maos_slice next_s;
    /* stats */
    int has_stats;
    maos_stats stats;
    /* subscribe, subscribe_channel, checkpoint_get, publish */
    uint64_t sub;
    uint64_t from;
    uint64_t position;
    uint64_t receivers;
    /* put, delete, agent_*: revision of the change; list, count, watch:
     * the log head the answer was read at */
    uint64_t revision;
    uint64_t created_revision; /* put, agent_register */
    uint64_t count;            /* count (also an append's count, which
                                * result.count holds when it fits) */
    maos_slice entry;          /* get: one raw entry map (maos_entry_decode) */
    /* queues: claim, dead_list: `tasks` in n_items/items (maos_task_next),
     * dead_list's next in next_s (16 bytes); queue_stats: `queues` in
     * n_items/items (maos_queue_info_next); task: one raw task map */
    maos_slice task;
    maos_slice task_ids;       /* enqueue: 16 bytes per task */
    uint32_t n_duplicates;     /* enqueue: raw array of bool */
    maos_slice duplicates;
    maos_slice state;          /* nack */
    int64_t lease_until;       /* extend */
    int more;                  /* dead_retry, dead_purge */
    maos_slice text;           /* metrics: Prometheus text exposition */
    maos_stream_meta_out smeta; /* stream_meta (first_version: also in
                                 * result.first_version) */
    maos_slice key;            /* pubkey: 32 bytes */
    maos_slice hash;           /* chain_sign: 32 bytes */
    maos_slice signature;      /* chain_sign: 64 bytes */
    /* private: which fields the frame carried, for maos_reply_check */
    uint64_t have_;
    uint64_t have_stats_;
} maos_reply;

/*
 * Decode any reply: the envelope ({rid, ok}, both required) and every
 * field it knows, whatever the request was.  0 or MAOS_EPROTO.  A decoded
 * reply is well-formed, not necessarily complete: a client must then
 * check it against the request it answers with maos_reply_check.
 */
int maos_reply_decode(const void *frame, size_t len, maos_reply *rep);
/* As maos_reply_decode, and each record of an `events` list handed to
 * sink(arg, i, n, rec) as it is decoded (i of n; rec's slices point into
 * frame): the one walk of a page that a decode followed by
 * maos_record_next of each event would make twice.  An element that is
 * not a record, or a sink that returns non-zero, fails the decode
 * (MAOS_EPROTO).  sink NULL: maos_reply_decode. */
int maos_reply_decode_sink(const void *frame, size_t len, maos_reply *rep,
                           maos_record_sink sink, void *arg);
/*
 * Whether a decoded reply carries every field PROTOCOL.md promises for a
 * reply to `op` (a client knows the op from the rid it matched):
 *   error (ok false)     code, message (any op)
 *   hello                version, server, max_frame
 *   append               stream, first_version, first_position, count,
 *                        duplicate, ids
 *   txn                  results (each element is checked, with all the
 *                        append fields, by maos_append_result_next)
 *   append_batch         results (each element read with
 *                        maos_batch_result_next)
 *   read, read_all       events, next (uint or nil)
 *   streams              streams, next (str or nil)
 *   stats                server, state, durability, head_hash and every counter of
 *                        MAOS_STATS_MAP
 *   subscribe            sub, from
 *   subscribe_channel    sub
 *   checkpoint_get       position
 *   publish              receivers
 *   put, agent_register  revision, created_revision
 *   delete, agent_deregister, agent_status: revision
 *   get                  entry (and it must be a whole entry)
 *   list                 entries, next (str or nil), revision
 *   count                count, revision
 *   watch                sub, revision
 *   ping, unsubscribe, checkpoint_save: nothing beyond {rid, ok}.
 * Extra fields are ignored.  Returns 0, MAOS_EPROTO with the first missing
 * field named in why[0..whylen) ("append reply without first_version"), or
 * MAOS_EINVALID_ARG for an op that is not in MAOS_OPS_MAP.  why may be NULL.
 */
int maos_reply_check(const maos_reply *rep, maos_op op, char *why, size_t whylen);
/* One element of a txn's results: every append field is required (and
 * ids must hold count ids).  0 (cursor advanced) or MAOS_EPROTO. */
int maos_append_result_next(maos_mpr *r, maos_append_result *res);
/* One element of a txn's results of any kind.  kind: the MAOS_ITEM_* of
 * the request's item at that index (a client knows it), whose fields are
 * then required; or 0 to tell the kind from the fields (stream: APPEND,
 * created_revision: PUT, revision: DELETE, none: CHECKPOINT).  0 (cursor
 * advanced, res->kind set), MAOS_EPROTO (cursor unchanged) or
 * MAOS_EINVALID_ARG for a kind out of range. */
int maos_txn_result_next(maos_mpr *r, int kind, maos_txn_result *res);
/* One element of a streams list: stream, head, count and last_position are
 * required.  0 (cursor advanced) or MAOS_EPROTO. */
int maos_stream_info_next(maos_mpr *r, maos_stream_info *si);

#ifdef __cplusplus
}
#endif
#endif
