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

#include "maos/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAOS_PROTOCOL_VERSION 1
#define MAOS_DEFAULT_MAX_FRAME (16u * 1024u * 1024u)
/* A reply may exceed the request frame limit by this much (envelope around
 * a maximal event); clients accept max_frame + MAOS_REPLY_SLACK. */
#define MAOS_REPLY_SLACK (64u * 1024u)
#define MAOS_NAME_MAX 255
#define MAOS_READ_LIMIT_MAX 10000
#define MAOS_READ_LIMIT_DEFAULT 1000

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
    X(SUBSCRIBE_CHANNEL, "subscribe_channel")

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
    uint32_t max_appends;/* appends in one txn (default 100) */
    uint32_t max_types;  /* event types in one filter (default 64) */
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

/* ---- names and ids ---------------------------------------------------- */

/* 0 if s is 1..255 bytes of valid UTF-8 without NUL; else MAOS_EINVALID_NAME. */
int maos_name_check(maos_slice s);
/* Parse 36-char canonical UUID text.  0 or MAOS_EINVALID_ID. */
int maos_uuid_parse(const char *s, size_t len, uint8_t out[16]);
/* Format as 36 chars + NUL. */
void maos_uuid_format(const uint8_t id[16], char out[37]);
/* Stream category: the part of the name before the first '-'. */
maos_slice maos_category(maos_slice stream);

/* ---- requests ---------------------------------------------------------- */

#define MAOS_EXPECT_ANY (-1)
#define MAOS_EXPECT_NO_STREAM (-2)
#define MAOS_EXPECT_EXISTS (-3)

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

/* Tables (PROTOCOL.md "Tables"). */
enum { MAOS_TABLE_SESSIONS = 1, MAOS_TABLE_AGENTS, MAOS_TABLE_LOCKS, MAOS_TABLE_KV };
typedef struct maos_table_ref {
    int kind;          /* MAOS_TABLE_* */
    maos_slice name;   /* the wire name, "kv.plan" */
} maos_table_ref;

/* One part of a write request, in order (a txn has several). */
enum { MAOS_ITEM_APPEND = 1, MAOS_ITEM_PUT, MAOS_ITEM_DELETE, MAOS_ITEM_CHECKPOINT };
typedef struct maos_item_in {
    int kind;                /* MAOS_ITEM_* */
    maos_append_in *append;  /* APPEND: into req->appends */
    maos_table_ref table;    /* PUT, DELETE */
    maos_slice key;
    maos_slice data;         /* PUT: raw msgpack map */
    int64_t expect;          /* PUT, DELETE */
    int bind;                /* PUT */
    maos_slice name;         /* CHECKPOINT */
    uint64_t position;       /* CHECKPOINT */
} maos_item_in;

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

typedef struct maos_request {
    maos_op op;
    uint64_t rid;
    /* hello */
    uint64_t version;
    maos_slice client_name;
    maos_slice token; /* reserved for scoped tokens; ignored in v1 */
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
    /* write requests: the items, in order */
    uint32_t n_items;
    maos_item_in *items;
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
int maos_enc_read(msgpack_packer *pk, uint64_t rid, maos_slice stream,
                  int has_from, uint64_t from, int backward, uint32_t limit);
int maos_enc_read_all(msgpack_packer *pk, uint64_t rid, int has_from,
                      uint64_t from, int backward, uint32_t limit,
                      const maos_filter *f);
int maos_enc_streams(msgpack_packer *pk, uint64_t rid, maos_slice prefix,
                     maos_slice after, uint32_t limit);
/* from_kind: MAOS_FROM_POSITION (from is a position), MAOS_FROM_VERSION
 * (from is a version of f->stream), MAOS_FROM_LIVE (live only). */
enum { MAOS_FROM_POSITION = 0, MAOS_FROM_VERSION = 1, MAOS_FROM_LIVE = 2 };
int maos_enc_subscribe(msgpack_packer *pk, uint64_t rid, const maos_filter *f,
                       int from_kind, uint64_t from);
int maos_enc_unsubscribe(msgpack_packer *pk, uint64_t rid, uint64_t sub);
int maos_enc_checkpoint_save(msgpack_packer *pk, uint64_t rid, maos_slice name,
                             uint64_t position);
int maos_enc_checkpoint_get(msgpack_packer *pk, uint64_t rid, maos_slice name);
int maos_enc_publish(msgpack_packer *pk, uint64_t rid, maos_slice channel,
                     maos_slice payload);
int maos_enc_subscribe_channel(msgpack_packer *pk, uint64_t rid,
                               maos_slice pattern);

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

/* Decode a record (keys in any order; all nine required).  0 or
 * MAOS_EPROTO. */
int maos_record_decode(const void *p, size_t len, maos_record *rec);
/* Read one record from a cursor (e.g. inside an events array). */
int maos_record_next(maos_mpr *r, maos_record *rec);
/* Encode a record.  data.len 0 encodes nil; meta.len 0 encodes {}. */
int maos_enc_record(msgpack_packer *pk, uint64_t position, int64_t time,
                    uint64_t version, maos_slice stream, maos_slice type,
                    const uint8_t id[16], const uint8_t prev[32],
                    maos_slice data, maos_slice meta);

/* ---- replies ------------------------------------------------------------- */

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

/* Daemon counters for the stats op. */
#define MAOS_STATS_MAP(X)                                                      \
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
    X(buffered_bytes)

typedef struct maos_stats {
#define MAOS_STATS_FIELD_(name) uint64_t name;
    MAOS_STATS_MAP(MAOS_STATS_FIELD_)
#undef MAOS_STATS_FIELD_
    maos_slice server;     /* "maosd 0.1.0" */
    maos_slice state;      /* "ok" or "read_only" */
    maos_slice durability; /* "sync" or "none" */
    maos_slice head_hash;  /* BLAKE2b-256 of the record at head_position
                            * (32 bytes; zeros for an empty log) */
} maos_stats;

/* Error reply.  has_actual: include "actual" (current stream version, -1
 * when the stream does not exist); index >= 0: include "index" (which
 * append of a txn failed). */
int maos_enc_error(msgpack_packer *pk, uint64_t rid, int code,
                   const char *message, int has_actual, int64_t actual,
                   int64_t index);
int maos_enc_reply_hello(msgpack_packer *pk, uint64_t rid, uint64_t version,
                         const char *server, uint32_t max_frame);
int maos_enc_reply_ok(msgpack_packer *pk, uint64_t rid); /* ping */
/* append: n == 1 and txn == 0 (fields at top level); txn: "results". */
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
    size_t count_off;
} maos_list_mark;

enum { MAOS_NEXT_NONE = 0, MAOS_NEXT_UINT, MAOS_NEXT_STR };

int maos_enc_list_begin(msgpack_sbuffer *sb, uint64_t rid, const char *key,
                        maos_list_mark *mark);
int maos_enc_stream_info(msgpack_packer *pk, const maos_stream_info *si);
int maos_enc_list_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                      uint32_t count, int next_kind, uint64_t next_u,
                      maos_slice next_s);

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
 * "next" is the next position the subscription will consider.
 */
#define MAOS_PUSH_MAP(X)                                                       \
    X(EVENTS, "events")                                                        \
    X(CAUGHT_UP, "caught_up")                                                  \
    X(FELL_BEHIND, "fell_behind")                                              \
    X(MESSAGE, "message")

typedef enum maos_push_kind {
    MAOS_PUSH_NONE = 0,
#define MAOS_PUSH_ENUM_(e, name) MAOS_PUSH_##e,
    MAOS_PUSH_MAP(MAOS_PUSH_ENUM_)
#undef MAOS_PUSH_ENUM_
        MAOS_PUSH__COUNT
} maos_push_kind;

const char *maos_push_name(maos_push_kind k);

/* events push, streamed like a list reply (one copy of stored records):
 * maos_enc_push_events_begin, raw records, maos_enc_push_events_end. */
int maos_enc_push_events_begin(msgpack_sbuffer *sb, uint64_t sub,
                               maos_list_mark *mark);
int maos_enc_push_events_end(msgpack_sbuffer *sb, const maos_list_mark *mark,
                             uint32_t count, uint64_t next);
/* caught_up / fell_behind */
int maos_enc_push_state(msgpack_packer *pk, maos_push_kind kind, uint64_t sub,
                        uint64_t next);
int maos_enc_push_message(msgpack_packer *pk, uint64_t sub, maos_slice channel,
                          maos_slice payload);

typedef struct maos_push {
    maos_push_kind kind;
    uint64_t sub;
    uint64_t next;
    uint32_t n_items;   /* events: raw array of records (maos_record_next) */
    maos_slice items;
    maos_slice channel; /* message */
    maos_slice payload; /* message: one raw msgpack value */
} maos_push;

/* 1 and *p filled when the frame is a push, 0 when it is not (decode it as
 * a reply), MAOS_EPROTO for a malformed push. */
int maos_push_decode(const void *frame, size_t len, maos_push *p);

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
    /* txn: raw array of result maps, decode with maos_append_result_next */
    uint32_t n_results;
    maos_slice results;
    /* read, read_all: raw array of records; streams: of stream infos */
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
    /* private: which fields the frame carried, for maos_reply_check */
    uint32_t have_;
    uint64_t have_stats_;
} maos_reply;

/*
 * Decode any reply: the envelope ({rid, ok}, both required) and every
 * field it knows, whatever the request was.  0 or MAOS_EPROTO.  A decoded
 * reply is well-formed, not necessarily complete: a client must then
 * check it against the request it answers with maos_reply_check.
 */
int maos_reply_decode(const void *frame, size_t len, maos_reply *rep);
/*
 * Whether a decoded reply carries every field PROTOCOL.md promises for a
 * reply to `op` (a client knows the op from the rid it matched):
 *   error (ok false)     code, message (any op)
 *   hello                version, server, max_frame
 *   append               stream, first_version, first_position, count,
 *                        duplicate, ids
 *   txn                  results (each element is checked, with all the
 *                        append fields, by maos_append_result_next)
 *   read, read_all       events, next (uint or nil)
 *   streams              streams, next (str or nil)
 *   stats                server, state, durability, head_hash and every counter of
 *                        MAOS_STATS_MAP
 *   subscribe            sub, from
 *   subscribe_channel    sub
 *   checkpoint_get       position
 *   publish              receivers
 *   ping, unsubscribe, checkpoint_save: nothing beyond {rid, ok}.
 * Extra fields are ignored.  Returns 0, MAOS_EPROTO with the first missing
 * field named in why[0..whylen) ("append reply without first_version"), or
 * MAOS_EINVALID_ARG for an op that is not in MAOS_OPS_MAP.  why may be NULL.
 */
int maos_reply_check(const maos_reply *rep, maos_op op, char *why, size_t whylen);
/* One element of a txn's results: every append field is required (and
 * ids must hold count ids).  0 (cursor advanced) or MAOS_EPROTO. */
int maos_append_result_next(maos_mpr *r, maos_append_result *res);
/* One element of a streams list: stream, head, count and last_position are
 * required.  0 (cursor advanced) or MAOS_EPROTO. */
int maos_stream_info_next(maos_mpr *r, maos_stream_info *si);

#ifdef __cplusplus
}
#endif
#endif
