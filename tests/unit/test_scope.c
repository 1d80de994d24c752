/*
 * tests/unit/test_scope.c -- proto/scope.c in-process: the op -> scope
 * table (every op of MAOS_OPS_MAP has a row, here and in PROTOCOL.md's
 * "Access control" table, with the same scope), scope parsing (accepted
 * and refused texts), matching (prefixes, kv TABLE/KEY, channel globs,
 * admin), the token's text form (round trip, canonical, wrong lengths and
 * characters) and token_create's fields.
 *
 * argv[1]: the path of proto/PROTOCOL.md (meson passes it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "maos/proto.h"

static const char *protocol_md;

static maos_slice S(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

/* Every op has a scope, and PROTOCOL.md's table says the same: a new op
 * without a row in either fails here. */
static void test_op_table(void **state)
{
    (void)state;
    char *doc = slurp(protocol_md);
    char *sec = strstr(doc, "\n## Access control");
    if (!sec)
        fail_msg("PROTOCOL.md has no \"## Access control\" section");
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = 0;
    int n = 0;
#define OP_CHECK_(e, name)                                                     \
    do {                                                                       \
        int k = maos_op_scope(MAOS_OP_##e);                                    \
        if (k == MAOS_SCOPE_UNLISTED)                                          \
            fail_msg("op %s has no row in proto/scope.c's op_scope", name);    \
        char row[64];                                                          \
        snprintf(row, sizeof row, "\n| `%s` | ", name);                        \
        char *r = strstr(sec, row);                                            \
        if (!r)                                                                \
            fail_msg("op %s has no row in PROTOCOL.md's Access control table", name); \
        char *eol = strchr(r + 1, '\n');                                       \
        char want[64];                                                         \
        snprintf(want, sizeof want, "| `%s", maos_scope_kind_name(k));         \
        char *hit = strstr(r + strlen(row) - 3, want);                         \
        if (!hit || (eol && hit > eol))                                        \
            fail_msg("PROTOCOL.md's row of %s does not say scope %s", name,    \
                     maos_scope_kind_name(k));                                 \
        n++;                                                                   \
    } while (0);
    MAOS_OPS_MAP(OP_CHECK_)
#undef OP_CHECK_
    assert_int_equal(n, MAOS_OP__COUNT - 1);
    /* out of range */
    assert_int_equal(maos_op_scope(MAOS_OP_NONE), MAOS_SCOPE_UNLISTED);
    assert_int_equal(maos_op_scope(MAOS_OP__COUNT), MAOS_SCOPE_UNLISTED);
    /* every wire item kind of a txn has one */
    for (int k = MAOS_ITEM_APPEND; k < MAOS_ITEM__WIRE_END; k++)
        assert_int_not_equal(maos_item_scope(k), MAOS_SCOPE_UNLISTED);
    free(doc);
}

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int kind;
        const char *arg;
    } good[] = {
        {"read:", MAOS_SCOPE_READ, ""},
        {"read:session-42-", MAOS_SCOPE_READ, "session-42-"},
        {"append:a:b", MAOS_SCOPE_APPEND, "a:b"},
        {"subscribe:x", MAOS_SCOPE_SUBSCRIBE, "x"},
        {"kv.read:", MAOS_SCOPE_KV_READ, ""},
        {"kv.read:kv.plan/", MAOS_SCOPE_KV_READ, "kv.plan/"},
        {"kv.write:sessions/s1", MAOS_SCOPE_KV_WRITE, "sessions/s1"},
        {"kv.write:*/s1/", MAOS_SCOPE_KV_WRITE, "*/s1/"},
        {"queue.enqueue:jobs", MAOS_SCOPE_QUEUE_ENQUEUE, "jobs"},
        {"queue.work:", MAOS_SCOPE_QUEUE_WORK, ""},
        {"channel:*", MAOS_SCOPE_CHANNEL, "*"},
        {"agent.register:a-", MAOS_SCOPE_AGENT_REGISTER, "a-"},
        {"admin", MAOS_SCOPE_ADMIN, ""},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        maos_scope sc;
        char why[128] = "";
        int rc = maos_scope_parse(good[i].text, strlen(good[i].text), &sc, why, sizeof why);
        if (rc)
            fail_msg("\"%s\" refused: %s", good[i].text, why);
        assert_int_equal(sc.kind, good[i].kind);
        assert_int_equal(sc.arg.len, strlen(good[i].arg));
        assert_memory_equal(sc.arg.ptr, good[i].arg, sc.arg.len);
    }
    static const char *const bad[] = {
        "", "read", "admin:", "admin:x", "reads:x", "kv.read:plan", "kv.read:nosuch/x",
        "kv.write:kv./x", "channel:", "Read:x", ":x", "queue.work", "write:x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        maos_scope sc;
        char why[128] = "";
        if (!maos_scope_parse(bad[i], strlen(bad[i]), &sc, why, sizeof why))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_true(why[0] != 0);
    }
    /* a NUL inside, invalid UTF-8, too long */
    maos_scope sc;
    assert_int_equal(maos_scope_parse("read:a\0b", 8, &sc, NULL, 0), MAOS_EBAD_REQUEST);
    assert_int_equal(maos_scope_parse("read:\xff", 6, &sc, NULL, 0), MAOS_EBAD_REQUEST);
    char big[700];
    memset(big, 'a', sizeof big);
    memcpy(big, "read:", 5);
    assert_int_equal(maos_scope_parse(big, sizeof big, &sc, NULL, 0), MAOS_EBAD_REQUEST);
    assert_string_equal(maos_scope_kind_name(MAOS_SCOPE_KV_WRITE), "kv.write");
    assert_null(maos_scope_kind_name(0));
}

static int allows(const char *scope, int kind, const char *target)
{
    maos_scope sc;
    assert_int_equal(maos_scope_parse(scope, strlen(scope), &sc, NULL, 0), 0);
    return maos_scope_allows(&sc, kind, S(target));
}

static void test_match(void **state)
{
    (void)state;
    assert_true(allows("read:s42-", MAOS_SCOPE_READ, "s42-a"));
    assert_true(allows("read:s42-", MAOS_SCOPE_READ, "s42-"));
    assert_false(allows("read:s42-", MAOS_SCOPE_READ, "s42"));
    assert_false(allows("read:s42-", MAOS_SCOPE_READ, "s4"));
    assert_false(allows("read:s42-", MAOS_SCOPE_APPEND, "s42-a")); /* kinds apart */
    assert_true(allows("read:", MAOS_SCOPE_READ, "$system"));
    assert_true(allows("kv.read:kv.plan/a", MAOS_SCOPE_KV_READ, "kv.plan/ab"));
    assert_false(allows("kv.read:kv.plan/a", MAOS_SCOPE_KV_READ, "kv.plan/b"));
    assert_false(allows("kv.read:kv.plan/a", MAOS_SCOPE_KV_READ, "kv.plans/a"));
    assert_false(allows("kv.read:kv.plan/a", MAOS_SCOPE_KV_READ, "kv.pla/na"));
    assert_true(allows("kv.read:*/s1/", MAOS_SCOPE_KV_READ, "locks/s1/x"));
    assert_false(allows("kv.read:*/s1/", MAOS_SCOPE_KV_READ, "locks/s2/x"));
    assert_true(allows("kv.write:", MAOS_SCOPE_KV_WRITE, "sessions/x"));
    assert_false(allows("kv.write:kv.a/", MAOS_SCOPE_KV_WRITE, "nokey"));
    assert_true(allows("channel:s1-*", MAOS_SCOPE_CHANNEL, "s1-x"));
    assert_false(allows("channel:s1-*", MAOS_SCOPE_CHANNEL, "s2-x"));
    assert_true(allows("channel:a?c", MAOS_SCOPE_CHANNEL, "abc"));
    assert_true(allows("admin", MAOS_SCOPE_ADMIN, ""));
    assert_false(allows("admin", MAOS_SCOPE_READ, "x"));
    maos_scope v[2];
    assert_int_equal(maos_scope_parse("read:a", 6, &v[0], NULL, 0), 0);
    assert_int_equal(maos_scope_parse("append:b", 8, &v[1], NULL, 0), 0);
    assert_true(maos_scopes_allow(v, 2, MAOS_SCOPE_APPEND, S("b1")));
    assert_false(maos_scopes_allow(v, 2, MAOS_SCOPE_APPEND, S("a1")));
    assert_true(maos_scopes_have(v, 2, MAOS_SCOPE_READ));
    assert_false(maos_scopes_have(v, 2, MAOS_SCOPE_ADMIN));
}

static void test_token_text(void **state)
{
    (void)state;
    uint8_t raw[32], back[32];
    char text[MAOS_TOKEN_TEXT_LEN + 1];
    srand(14);
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 32; i++)
            raw[i] = (uint8_t)rand();
        maos_token_format(raw, text);
        assert_int_equal(strlen(text), MAOS_TOKEN_TEXT_LEN);
        assert_memory_equal(text, "maos_", 5);
        assert_int_equal(maos_token_parse(text, strlen(text), back), 0);
        assert_memory_equal(raw, back, 32);
    }
    /* wrong lengths, prefix, characters; a last character with low bits set */
    assert_int_equal(maos_token_parse(text, strlen(text) - 1, back), MAOS_EUNAUTHENTICATED);
    assert_int_equal(maos_token_parse("maos_abc", 8, back), MAOS_EUNAUTHENTICATED);
    char t2[MAOS_TOKEN_TEXT_LEN + 2];
    memcpy(t2, text, sizeof text);
    t2[0] = 'M';
    assert_int_equal(maos_token_parse(t2, MAOS_TOKEN_TEXT_LEN, back), MAOS_EUNAUTHENTICATED);
    memcpy(t2, text, sizeof text);
    t2[10] = '+';
    assert_int_equal(maos_token_parse(t2, MAOS_TOKEN_TEXT_LEN, back), MAOS_EUNAUTHENTICATED);
    memcpy(t2, text, sizeof text);
    t2[MAOS_TOKEN_TEXT_LEN - 1] = 'B'; /* value 1: a low bit set, not canonical */
    assert_int_equal(maos_token_parse(t2, MAOS_TOKEN_TEXT_LEN, back), MAOS_EUNAUTHENTICATED);
    memcpy(t2, text, sizeof text);
    t2[20] = 0;
    assert_int_equal(maos_token_parse(t2, MAOS_TOKEN_TEXT_LEN, back), MAOS_EUNAUTHENTICATED);
    assert_int_equal(maos_token_name_check(S("ci-bot.1_x")), 0);
    assert_int_equal(maos_token_name_check(S("")), MAOS_EINVALID_NAME);
    assert_int_equal(maos_token_name_check(S("a b")), MAOS_EINVALID_NAME);
}

static void test_token_spec(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *scopes[] = {"read:a-", "admin"};
    maos_token_spec t;
    char why[200];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(maos_enc_token_create(&pk, 7, "ci", scopes, 2, 5000, 1000, "s42"), 0);
    maos_request req;
    assert_int_equal(maos_request_decode(sb.data, sb.size, NULL, &req, why, sizeof why), 0);
    assert_int_equal(req.op, MAOS_OP_TOKEN_CREATE);
    maos_request_free(&req);
    assert_int_equal(maos_token_spec_decode(sb.data, sb.size, &t, why, sizeof why), 0);
    assert_int_equal(t.n_scopes, 2);
    assert_int_equal(t.scopes[1].kind, MAOS_SCOPE_ADMIN);
    assert_int_equal(t.expires_ms, 5000);
    assert_int_equal(t.uid, 1000);
    assert_int_equal(t.session.len, 3);
    msgpack_sbuffer_clear(&sb);
    /* a bad scope is named; no scopes and no session is refused */
    const char *badsc[] = {"read:a-", "rread:x"};
    assert_int_equal(maos_enc_token_create(&pk, 7, "ci", badsc, 2, 0, -1, NULL), 0);
    assert_int_equal(maos_token_spec_decode(sb.data, sb.size, &t, why, sizeof why),
                     MAOS_EBAD_REQUEST);
    assert_non_null(strstr(why, "rread:x"));
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(maos_enc_token_create(&pk, 7, "ci", NULL, 0, 0, -1, NULL), 0);
    assert_int_equal(maos_token_spec_decode(sb.data, sb.size, &t, why, sizeof why),
                     MAOS_EBAD_REQUEST);
    msgpack_sbuffer_clear(&sb);
    /* a bad name and session are INVALID_NAME (in the request decode too) */
    assert_int_equal(maos_enc_token_create(&pk, 7, "no way", scopes, 1, 0, -1, NULL), 0);
    assert_int_equal(maos_request_decode(sb.data, sb.size, NULL, &req, why, sizeof why),
                     MAOS_EINVALID_NAME);
    maos_request_free(&req);
    msgpack_sbuffer_clear(&sb);
    assert_int_equal(maos_enc_token_create(&pk, 7, "ci", scopes, 1, 0, -1, "a/b"), 0);
    assert_int_equal(maos_token_spec_decode(sb.data, sb.size, &t, why, sizeof why),
                     MAOS_EINVALID_NAME);
    msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv)
{
    protocol_md = argc > 1 ? argv[1] : "proto/PROTOCOL.md";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table),   cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),      cmocka_unit_test(test_token_text),
        cmocka_unit_test(test_token_spec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
