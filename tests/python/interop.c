/*
 * tests/python/interop.c -- the C side of the Python client's interop test
 * (client/python/tests/test_interop.py), through libmaos-client.
 *
 *   interop write SOCK STREAM   append a fixed set of events whose data and
 *                               meta are packed by msgpack-c (every kind of
 *                               value: ints of each width, negatives,
 *                               float64, str8/16, bin, nested maps and
 *                               arrays, nil, bools), with fixed ids
 *   interop dump SOCK STREAM    print each event of STREAM, one line:
 *                               VERSION POSITION TYPE ID-HEX DATA-HEX META-HEX
 *                               (the exact stored bytes of data and meta)
 *
 * The Python test compares those bytes with what the Python client sent or
 * read.  Exit 0 on success, 1 with a message on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "maos/client.h"

#define N_EVENTS 4

static void hex(const void *p, size_t n)
{
    const unsigned char *b = p;
    if (n == 0)
        putchar('-');
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
}

static int dump(maos_ctx *c, const char *stream)
{
    uint64_t from = MAOS_FROM_START;
    for (;;) {
        maos_page *pg = NULL;
        if (maos_read(c, stream, from, 0, 0, &pg)) {
            fprintf(stderr, "interop: read %s: %s\n", stream, c->errstr);
            return 1;
        }
        for (size_t i = 0; i < pg->n; i++) {
            const maos_event *e = &pg->events[i];
            printf("%llu %llu %.*s ", (unsigned long long)e->version,
                   (unsigned long long)e->position, (int)e->type_len, e->type);
            hex(e->id, 16);
            putchar(' ');
            hex(e->data, e->data_len);
            putchar(' ');
            hex(e->meta, e->meta_len);
            putchar('\n');
        }
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return 0;
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static int write_events(maos_ctx *c, const char *stream)
{
    msgpack_sbuffer data[N_EVENTS], meta[N_EVENTS];
    msgpack_packer pk;
    uint8_t ids[N_EVENTS][16];
    maos_event_spec ev[N_EVENTS];
    static const char *const types[N_EVENTS] = {"c.scalars", "c.nested", "c.text", "c.bare"};
    char longstr[300];
    memset(longstr, 'y', sizeof longstr - 1);
    longstr[sizeof longstr - 1] = '\0';

    for (int i = 0; i < N_EVENTS; i++) {
        msgpack_sbuffer_init(&data[i]);
        msgpack_sbuffer_init(&meta[i]);
        memset(ids[i], 0, 16);
        ids[i][0] = 0xc0;
        ids[i][15] = (uint8_t)(i + 1);
    }
    /* 0: scalars of every width */
    msgpack_packer_init(&pk, &data[0], msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 11);
    pack_str(&pk, "u7"); msgpack_pack_uint64(&pk, 7);
    pack_str(&pk, "u8"); msgpack_pack_uint64(&pk, 200);
    pack_str(&pk, "u16"); msgpack_pack_uint64(&pk, 60000);
    pack_str(&pk, "u32"); msgpack_pack_uint64(&pk, 4000000000u);
    pack_str(&pk, "u64"); msgpack_pack_uint64(&pk, 18000000000000000000ull);
    pack_str(&pk, "neg"); msgpack_pack_int64(&pk, -5);
    pack_str(&pk, "i64"); msgpack_pack_int64(&pk, -9000000000000000000ll);
    pack_str(&pk, "f"); msgpack_pack_double(&pk, 3.25);
    pack_str(&pk, "t"); msgpack_pack_true(&pk);
    pack_str(&pk, "n"); msgpack_pack_nil(&pk);
    pack_str(&pk, "bin"); msgpack_pack_bin(&pk, 3); msgpack_pack_bin_body(&pk, "\x00\x01\xff", 3);
    msgpack_packer_init(&pk, &meta[0], msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "agent"); pack_str(&pk, "c-writer");
    pack_str(&pk, "correlation"); pack_str(&pk, "corr-1");
    /* 1: nested containers */
    msgpack_packer_init(&pk, &data[1], msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "list");
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_array(&pk, 0);
    msgpack_pack_map(&pk, 1); pack_str(&pk, "deep"); msgpack_pack_false(&pk);
    pack_str(&pk, "empty"); msgpack_pack_map(&pk, 0);
    msgpack_packer_init(&pk, &meta[1], msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 0);
    /* 2: text: str8, str16, non-ASCII */
    msgpack_packer_init(&pk, &data[2], msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, "h\xc3\xa9llo \xe2\x9c\x93");
    pack_str(&pk, "0123456789012345678901234567890123456789");
    pack_str(&pk, longstr);
    /* 3: no data, no meta (stored as nil and {}) */
    for (int i = 0; i < N_EVENTS; i++) {
        ev[i].id = ids[i];
        ev[i].type = types[i];
        ev[i].data = data[i].size ? data[i].data : NULL;
        ev[i].data_len = data[i].size;
        ev[i].meta = meta[i].size ? meta[i].data : NULL;
        ev[i].meta_len = meta[i].size;
    }
    int rc = maos_append(c, stream, MAOS_EXPECT_NO_STREAM, ev, N_EVENTS, NULL);
    for (int i = 0; i < N_EVENTS; i++) {
        msgpack_sbuffer_destroy(&data[i]);
        msgpack_sbuffer_destroy(&meta[i]);
    }
    if (rc) {
        fprintf(stderr, "interop: append %s: %s\n", stream, c->errstr);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "dump"))) {
        fprintf(stderr, "usage: interop write|dump SOCK STREAM\n");
        return 2;
    }
    maos_ctx *c = maos_connect(argv[2]);
    if (!c || c->err) {
        fprintf(stderr, "interop: connect %s: %s\n", argv[2], c ? c->errstr : "no memory");
        maos_free(c);
        return 1;
    }
    int rc = !strcmp(argv[1], "write") ? write_events(c, argv[3]) : dump(c, argv[3]);
    maos_free(c);
    return rc;
}
