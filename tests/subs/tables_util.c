/*
 * tests/subs/tables_util.c -- see tables_util.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "maos/client.h"
#include "tables_util.h"

mt_daemon *tu_daemon;

int tu_setup(void **state)
{
    (void)state;
    tu_daemon = mt_daemon_new(NULL, NULL);
    mt_daemon_up(tu_daemon);
    return 0;
}

maos_ctx *tu_conn(int reconnect)
{
    maos_ctx *c = maos_connect_timeout(tu_daemon->sock, 30000);
    MT_TRUE(c && c->err == 0);
    if (reconnect)
        maos_set_reconnect(c, 1, 30000);
    return c;
}

int tu_teardown(void **state)
{
    (void)state;
    mt_daemon_free(tu_daemon);
    tu_daemon = NULL;
    return 0;
}

void tu_pkb_init(tu_pkb *b)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
}

void tu_pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

maos_slice tu_sl(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

/* A one-pair document {field: value}. */
void tu_doc1(tu_pkb *b, const char *field, const char *value)
{
    tu_pkb_init(b);
    msgpack_pack_map(&b->pk, 1);
    tu_pk_str(&b->pk, field);
    tu_pk_str(&b->pk, value);
}

void tu_take(tu_result *r, int code, const maos_reply *rep, char *frame)
{
    memset(r, 0, sizeof(*r));
    r->code = code;
    r->revision = rep->revision;
    r->created_revision = rep->created_revision;
    r->count = rep->count;
    r->has_actual = rep->has_actual;
    r->actual = rep->actual;
    r->index = rep->index;
    snprintf(r->msg, sizeof r->msg, "%.*s", (int)rep->message.len, rep->message.ptr);
    free(frame);
}

tu_result tu_call_sb(su_conn *c, tu_pkb *b, uint64_t rid)
{
    maos_reply rep;
    char *frame = NULL;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b->sb, rid, &rep, &frame);
    tu_result r;
    tu_take(&r, code, &rep, frame);
    msgpack_sbuffer_destroy(&b->sb);
    return r;
}

tu_result tu_put(su_conn *c, const char *table, const char *key, const char *field,
                  const char *value, int64_t expect, int bind)
{
    tu_pkb d, b;
    tu_doc1(&d, field, value);
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_put(&b.pk, rid, tu_sl(table), tu_sl(key),
                           (maos_slice){d.sb.data, (uint32_t)d.sb.size}, expect, bind),
              0);
    msgpack_sbuffer_destroy(&d.sb);
    return tu_call_sb(c, &b, rid);
}

tu_result tu_del(su_conn *c, const char *table, const char *key, int64_t expect)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_delete(&b.pk, rid, tu_sl(table), tu_sl(key), expect), 0);
    return tu_call_sb(c, &b, rid);
}

/* get: 0 and *e (slices into *frame, caller frees), or the error. */
int tu_get(su_conn *c, const char *table, const char *key, maos_entry *e,
               char **frame, tu_result *r)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_get(&b.pk, rid, tu_sl(table), tu_sl(key)), 0);
    maos_reply rep;
    memset(&rep, 0, sizeof rep);
    int code = su_call(c, &b.sb, rid, &rep, frame);
    msgpack_sbuffer_destroy(&b.sb);
    if (code == 0)
        MT_EQ_INT(maos_entry_decode(rep.entry.ptr, rep.entry.len, e), 0);
    if (r) {
        r->code = code;
        r->has_actual = rep.has_actual;
        r->actual = rep.actual;
    }
    return code;
}

/* The document's string field, or "" */
void tu_doc_field(maos_slice doc, const char *field, char *out, size_t cap)
{
    maos_mpr r;
    uint32_t n;
    out[0] = 0;
    maos_mpr_init(&r, doc.ptr, doc.len);
    MT_EQ_INT(maos_mpr_map(&r, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k, v;
        MT_EQ_INT(maos_mpr_str(&r, &k), 0);
        if (k.len == strlen(field) && !memcmp(k.ptr, field, k.len) &&
            maos_mpr_peek(&r) == MAOS_MP_STR) {
            maos_mpr_str(&r, &v);
            snprintf(out, cap, "%.*s", (int)v.len, v.ptr);
            return;
        }
        MT_EQ_INT(maos_mpr_skip(&r, NULL), 0);
    }
}

/* The record at a position (read_all from it, one event). */
void tu_record_at(su_conn *c, uint64_t pos, char *stream, char *type,
                      char *meta_agent)
{
    su_evs evs = {0};
    (void)evs;
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    MT_EQ_INT(maos_enc_read_all(&b.pk, rid, 1, pos, 0, 1, NULL), 0);
    maos_reply rep;
    char *frame = NULL;
    MT_EQ_INT(su_call(c, &b.sb, rid, &rep, &frame), 0);
    msgpack_sbuffer_destroy(&b.sb);
    MT_EQ_INT(rep.n_items, 1);
    maos_mpr r;
    maos_mpr_init(&r, rep.items.ptr, rep.items.len);
    uint32_t n;
    MT_EQ_INT(maos_mpr_array(&r, &n), 0);
    maos_record rec;
    MT_EQ_INT(maos_record_next(&r, &rec), 0);
    MT_EQ_U64(rec.position, pos);
    snprintf(stream, 1100, "%.*s", (int)rec.stream.len, rec.stream.ptr);
    snprintf(type, 64, "%.*s", (int)rec.type.len, rec.type.ptr);
    if (meta_agent)
        tu_doc_field(rec.meta, "agent", meta_agent, 256);
    free(frame);
}

tu_result tu_agent_register(su_conn *c, const char *id)
{
    tu_pkb b;
    tu_pkb_init(&b);
    uint64_t rid = su_rid(c);
    maos_agent_in a = {.id = tu_sl(id), .session = tu_sl("s1"), .name = tu_sl("writer")};
    MT_EQ_INT(maos_enc_agent_register(&b.pk, rid, &a), 0);
    return tu_call_sb(c, &b, rid);
}

/* Wait until tu_get(table, key) gives `want` ("" = absent) for the field. */
void tu_wait_field(su_conn *c, const char *table, const char *key,
                       const char *field, const char *want)
{
    int64_t deadline = mt_now_us() + 10LL * 1000000;
    for (;;) {
        maos_entry e;
        char *frame = NULL, v[64] = "";
        int rc = tu_get(c, table, key, &e, &frame, NULL);
        if (rc == 0)
            tu_doc_field(e.data, field, v, sizeof v);
        free(frame);
        if (!strcmp(v, want) && (rc == 0 || !want[0]))
            return;
        if (mt_now_us() > deadline)
            MT_FAIL("%s %s: %s is '%s', want '%s'", table, key, field, v, want);
        mt_sleep_ms(2);
    }
}

