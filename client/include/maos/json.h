/*
 * maos/json.h -- JSON at the edges of libmaos-client (jansson).
 *
 * Event data and meta travel as msgpack.  These helpers let an agent append
 * and read JSON text without writing msgpack itself, and give maosctl its
 * one JSON form of an event.
 *
 * JSON -> msgpack:
 *   null, true/false, integers (int64), reals (float64), strings (str),
 *   arrays, objects (maps with str keys, in the object's key order).
 *   Text must be valid UTF-8 JSON (any top-level value), duplicate object
 *   keys are refused, "\u0000" inside strings is allowed.  Nesting deeper
 *   than MAOS_JSON_MAX_DEPTH arrays/objects is refused with MAOS_ELIMIT.
 *
 * msgpack -> JSON (lossy where JSON has no equivalent, and documented here):
 *   nil -> null; bool; int -> integer; uint above INT64_MAX -> a string of
 *   its decimal digits (jansson integers are int64); float32/64 -> real,
 *   except NaN and infinities -> null; str -> string, with invalid UTF-8
 *   sequences replaced by U+FFFD; bin -> string, standard base64 with
 *   padding; ext -> {"$ext": type, "data": "<base64>"}; map -> object
 *   whose keys are str keys as they are, and nil/bool/int/float keys as
 *   their JSON text (bin keys as base64); array, map or ext keys are refused
 *   with MAOS_EINVALID_ARG; when two keys convert to the same text the last
 *   one wins.  Nesting deeper than MAOS_JSON_MAX_DEPTH: MAOS_ELIMIT.
 *
 * Ownership: json_t results are new references (json_decref them);
 * char buffers are malloc'd (free them).  Inputs are only read.
 * Thread-safety: the functions are reentrant (jansson's own rules apply to
 * sharing json_t values between threads); maos_append_json and
 * maos_publish_json follow the maos_ctx rule of maos/client.h.  Nothing here logs.
 */
#ifndef MAOS_JSON_H
#define MAOS_JSON_H

#include <stddef.h>

#include <jansson.h>
#include <msgpack.h>

#include "maos/client.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MAOS_JSON_MAX_DEPTH 64

/*
 * Pack a JSON value as one msgpack value onto pk (appends to whatever pk
 * writes to).  Returns 0, MAOS_ELIMIT (too deep), MAOS_EINVALID_ARG (v is
 * NULL) or MAOS_ENOMEM.  On failure pk may hold a partial value.
 */
int maos_json_pack(msgpack_packer *pk, const json_t *v);

/*
 * Convert a JSON value to msgpack bytes.  On success *out (malloc'd, the
 * caller frees it) and *out_len are set.  why: NULL, or a buffer of whylen
 * bytes that gets a reason on failure.  Errors as maos_json_pack.
 */
int maos_json_to_msgpack(const json_t *v, char **out, size_t *out_len,
                         char *why, size_t whylen);

/*
 * Parse JSON text (len bytes; need not be NUL-terminated) and convert it to
 * msgpack bytes as maos_json_to_msgpack.  Bad JSON (syntax, invalid UTF-8,
 * duplicate keys, trailing garbage) is MAOS_EINVALID_ARG with the parser's
 * message and line:column in why.
 */
int maos_json_text_to_msgpack(const char *text, size_t len, char **out,
                              size_t *out_len, char *why, size_t whylen);

/*
 * Convert exactly one msgpack value of len bytes to a new json_t (see the
 * mapping above).  Returns 0 and *out, MAOS_EINVALID_ARG (malformed
 * msgpack, trailing bytes, unsupported key), MAOS_ELIMIT or MAOS_ENOMEM.
 * len 0 converts to null.
 */
int maos_msgpack_to_json(const void *p, size_t len, json_t **out);

/*
 * Compact JSON text of v (NUL-terminated, malloc'd: the caller frees it),
 * in object key order.  Unlike json_dumps, a real is written in the
 * shortest form that reads back to the same double (0.1, not
 * 0.10000000000000001).  0, MAOS_EINVALID_ARG or MAOS_ENOMEM.
 */
int maos_json_dump(const json_t *v, char **out);

/* maos_msgpack_to_json, then maos_json_dump. */
int maos_msgpack_to_json_text(const void *p, size_t len, char **out);

/*
 * The one JSON form of an event, an object with exactly these fields in
 * this order: position, stream, version, id (UUID text), type, data, meta,
 * time (RFC 3339 UTC with microseconds, "2026-11-25T18:07:54.123456Z").
 * Returns 0 and *out (a new reference), or an error as
 * maos_msgpack_to_json.
 */
int maos_event_to_json(const maos_event *ev, json_t **out);

/*
 * The one JSON form of a table entry, an object with exactly these fields
 * in this order: table, key, revision, created_revision, created, updated
 * (both RFC 3339 UTC with microseconds), data (the document), bound.
 * Returns 0 and *out (a new reference), or an error as
 * maos_msgpack_to_json.
 */
int maos_entry_to_json(const maos_table_entry *e, json_t **out);

/*
 * The one JSON form of a task (PROTOCOL.md "Task"), an object with these
 * fields in this order: id (UUID text), queue, state, attempt,
 * max_attempts, priority, data, meta, enqueued (RFC 3339 UTC with
 * microseconds), not_before (RFC 3339, or null), dedupe_key, ordering_key,
 * last_error (strings or null), result, then for a leased task token and
 * lease_until (RFC 3339), and last history (the positions of its events,
 * oldest first).  Returns 0 and *out (a new reference), or an error as
 * maos_msgpack_to_json (MAOS_EINVALID_ARG also for a malformed history).
 */
int maos_task_to_json(const maos_task_info *t, json_t **out);

/*
 * Enqueue one task whose payload and meta are JSON text (data NULL: null;
 * meta NULL or an object), with the options of o (may be NULL; its
 * meta/meta_len are ignored), as maos_enqueue.  Bad JSON fails with
 * MAOS_EINVALID_ARG (or MAOS_ELIMIT) and the reason in c->errstr, before
 * anything is sent; it does not kill c.
 */
int maos_enqueue_json(maos_ctx *c, const char *queue, const char *data_json,
                      const char *meta_json, const maos_task_opts *o, uint8_t id[16],
                      int *duplicate);

/*
 * Append one event whose data and meta are JSON text (meta: NULL or an
 * object; data: NULL means null), with the server generating its id.
 * Same as maos_append otherwise (out may be NULL).  Bad JSON fails with MAOS_EINVALID_ARG (or MAOS_ELIMIT) and the
 * reason in c->errstr, before anything is sent; it does not kill c.
 */
int maos_append_json(maos_ctx *c, const char *stream, int64_t expect,
                     const char *type, const char *data_json,
                     const char *meta_json, maos_append_info *out);

/*
 * Publish JSON text (NULL: null) on a channel, as maos_publish.  Bad JSON
 * fails with MAOS_EINVALID_ARG (or MAOS_ELIMIT) and the reason in
 * c->errstr, before anything is sent; it does not kill c.
 */
int maos_publish_json(maos_ctx *c, const char *channel, const char *payload_json,
                      uint64_t *receivers);

/* The asynchronous forms of the three above (client.h "Asynchronous
 * requests"): bad JSON fails the call at once (nothing queued, no
 * callback); the answer is read as for maos_async_append (maos_result_append,
 * maos_result_append_ids), maos_async_enqueue (maos_result_enqueue with
 * n 1) and maos_async_publish (maos_result_fields_get: receivers). */
int maos_async_append_json(maos_ctx *c, maos_callback cb, void *privdata, const char *stream,
                           int64_t expect, const char *type, const char *data_json,
                           const char *meta_json);
int maos_async_enqueue_json(maos_ctx *c, maos_callback cb, void *privdata, const char *queue,
                            const char *data_json, const char *meta_json,
                            const maos_task_opts *o);
int maos_async_publish_json(maos_ctx *c, maos_callback cb, void *privdata,
                            const char *channel, const char *payload_json);

#ifdef __cplusplus
}
#endif
#endif
