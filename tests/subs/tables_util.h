/*
 * tests/subs/tables_util.h -- table requests over a raw connection (su_conn)
 * for the daemon-level table tests: each call sends one request and waits
 * for its reply, failing the test on anything but a reply.
 */
#ifndef TABLES_UTIL_H
#define TABLES_UTIL_H

#include <stdint.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/proto.h"
#include "subs_util.h"

typedef struct tu_pkb {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} tu_pkb;

typedef struct tu_result {
    int code;
    uint64_t revision, created_revision, count;
    int has_actual;
    int64_t actual;
    int64_t index;
    char msg[256];
} tu_result;

/* The daemon of the current test: tu_setup starts it, tu_teardown stops
 * and frees it (cmocka setup/teardown). */
extern mt_daemon *tu_daemon;
int tu_setup(void **state);
int tu_teardown(void **state);
/* A libmaos-client context on tu_daemon (reconnect: on, 30 s); fails the
 * test when it cannot connect. */
struct maos_ctx;
struct maos_ctx *tu_conn(int reconnect);

/* Each call sends one request and waits for its reply (tu_result: code 0
 * or the error, and the fields tables use). */
void tu_pkb_init(tu_pkb *b);
void tu_pk_str(msgpack_packer *pk, const char *s);
maos_slice tu_sl(const char *s);
void tu_doc1(tu_pkb *b, const char *field, const char *value);
void tu_take(tu_result *r, int code, const maos_reply *rep, char *frame);
tu_result tu_call_sb(su_conn *c, tu_pkb *b, uint64_t rid);
tu_result tu_put(su_conn *c, const char *table, const char *key, const char *field,
                  const char *value, int64_t expect, int bind);
tu_result tu_del(su_conn *c, const char *table, const char *key, int64_t expect);
int tu_get(su_conn *c, const char *table, const char *key, maos_entry *e,
               char **frame, tu_result *r);
void tu_doc_field(maos_slice doc, const char *field, char *out, size_t cap);
void tu_record_at(su_conn *c, uint64_t pos, char *stream, char *type,
                      char *meta_agent);
tu_result tu_agent_register(su_conn *c, const char *id);
void tu_wait_field(su_conn *c, const char *table, const char *key,
                       const char *field, const char *want);

#endif
