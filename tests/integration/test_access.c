/*
 * tests/integration/test_access.c -- access control against a real maosd
 * (PROTOCOL.md "Access control"): tokens and scopes.
 *
 *  - test_every_op: every op of the op list (but hello, which every
 *    connection here says) is sent over a connection whose token lacks its
 *    scope (FORBIDDEN naming the scope kind) and over one whose token has
 *    it (success, or the op's own refusal: never FORBIDDEN).  The refused
 *    requests wrote nothing: the log head, the checkpoint, the kv keys,
 *    the agent, the token list and the backup directory are read back.  A
 *    table row missing for an op of the list fails the test.
 *  - test_filter_property: seeded random streams and random read/subscribe
 *    prefixes: read_all through the token returns exactly the in-scope
 *    events (no leak, no loss), and a subscription from the start, fed by
 *    live appends too, delivers exactly those up to a marker event.
 *  - test_revoke_closes: revoking a token closes a live connection using it
 *    (an UNAUTHENTICATED frame, then EOF, waited for with a deadline), and
 *    its next hello is refused.
 *  - test_expiry: a token with a short expiry: the connection that said
 *    hello with it is closed once it has expired (an UNAUTHENTICATED frame,
 *    then EOF, waited for with a deadline), and a new hello with it is
 *    refused.
 *  - test_bad_hellos: a token of the wrong length, type or alphabet, a
 *    non-canonical one, an unknown one, hello without version, hello twice,
 *    a forged meta.agent: typed errors, nothing written.
 *  - test_lease_of_another_queue: ack, nack, extend, release and task of
 *    a task of a queue out of the token's scopes are FORBIDDEN even with
 *    the task's id and lease token; nothing written.
 *  - test_persist_and_uid: tokens survive a restart; a token bound to a
 *    uid is refused to another; a session token; as root, another uid's
 *    rights are its uid_scopes, intersected with its token.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <msgpack.h>

#include "harness.h"
#include "maos/client.h"
#include "maos/proto.h"

#define FRAME_MAX (16u << 20)

static maos_slice S(const char *s)
{
    return (maos_slice){s, (uint32_t)strlen(s)};
}

static maos_ctx *root_ctx(const char *sock)
{
    maos_ctx *c = maos_connect_timeout(sock, 10000);
    if (!c || c->err)
        MT_FAIL("connect %s: %s", sock, c ? c->errstr : "out of memory");
    return c;
}

/* A token with the scopes of the space-separated list (as root). */
static void mk_token(maos_ctx *c, const char *name, const char *scopes, uint64_t exp_ms,
                     char tok[MAOS_TOKEN_TEXT_SIZE])
{
    char buf[1024];
    const char *v[64];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", scopes);
    for (char *s = strtok(buf, " "); s; s = strtok(NULL, " "))
        v[n++] = s;
    if (maos_token_create(c, name, v, n, exp_ms, -1, NULL, tok))
        MT_FAIL("token_create %s (%s): %s", name, scopes, c->errstr);
}

/* ---- raw requests -------------------------------------------------------------- */

typedef int (*build_fn)(msgpack_packer *pk, uint64_t rid);

/* Send one request (built by b) and read frames until its reply (pushes
 * are skipped).  Returns the reply's code (0: ok); message into msg. */
/* Send one request frame built by b. */
static void xsend(int fd, uint64_t rid, build_fn b)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    MT_EQ_INT(msgpack_sbuffer_write(&sb, "\0\0\0\0", 4), 0);
    MT_EQ_INT(b(&pk, rid), 0);
    maos_frame_put_len(sb.data, (uint32_t)(sb.size - 4));
    MT_EQ_INT(mt_send_all(fd, sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}

static int64_t g_last_index; /* the `index` of xreq's last error reply, or -1 */

static int xreq(int fd, uint64_t rid, build_fn b, char *msg, size_t msglen)
{
    xsend(fd, rid, b);
    for (int i = 0; i < 1000; i++) {
        char *f;
        uint32_t len;
        int rc = mt_recv_frame(fd, &f, &len, FRAME_MAX, 20000);
        if (rc != 1)
            MT_FAIL("no reply to rid %" PRIu64 " (%d)", rid, rc);
        maos_reply rep;
        if (maos_reply_decode(f, len, &rep) == 0 && rep.rid == rid) {
            int code = rep.ok ? 0 : rep.code;
            g_last_index = rep.ok ? -1 : rep.index;
            if (msg)
                snprintf(msg, msglen, "%.*s", (int)rep.message.len,
                         rep.message.ptr ? rep.message.ptr : "");
            free(f);
            return code;
        }
        free(f); /* a push */
    }
    MT_FAIL("no reply to rid %" PRIu64 " among 1000 frames", rid);
    return 0;
}

static const char *g_token; /* the token xhello sends (NULL: none) */

static int b_hello(msgpack_packer *pk, uint64_t rid)
{
    return maos_enc_hello_token(pk, rid, MAOS_PROTOCOL_VERSION, "test_access", g_token);
}

/* Connect and say hello with token; *code gets hello's code. */
static int xconnect(const char *sock, const char *token, int *code, char *msg, size_t ml)
{
    int fd = mt_connect(sock);
    MT_TRUE(fd >= 0);
    g_token = token;
    *code = xreq(fd, 1, b_hello, msg, ml);
    return fd;
}

/* xconnect that must be accepted: the connection's fd. */
static int xconnect_ok(const char *sock, const char *token)
{
    char msg[256];
    int code;
    int fd = xconnect(sock, token, &code, msg, sizeof msg);
    MT_EQ_ERR(code, 0);
    return fd;
}

/* ---- every op ------------------------------------------------------------------ */

static char g_backup_dir[512];
static uint8_t zero_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static int b_ping(msgpack_packer *pk, uint64_t rid) { return maos_enc_simple(pk, rid, MAOS_OP_PING); }
static int b_append(msgpack_packer *pk, uint64_t rid)
{
    maos_event_in ev = {.type = S("t")};
    maos_append_in a = {S("acc-1"), MAOS_EXPECT_ANY, 1, &ev};
    return maos_enc_append(pk, rid, &a);
}
static int b_txn(msgpack_packer *pk, uint64_t rid)
{
    maos_event_in ev = {.type = S("t")};
    maos_append_in a[2] = {{S("acc-2"), MAOS_EXPECT_ANY, 1, &ev},
                           {S("acc-3"), MAOS_EXPECT_ANY, 1, &ev}};
    return maos_enc_txn(pk, rid, a, 2);
}
static int b_append_batch(msgpack_packer *pk, uint64_t rid)
{
    maos_event_in ev = {.type = S("t")};
    maos_append_in a[3] = {{S("acc-4"), MAOS_EXPECT_ANY, 1, &ev},
                           {S("acc-5"), MAOS_EXPECT_ANY, 1, &ev},
                           {S("acc-4"), MAOS_EXPECT_ANY, 1, &ev}};
    return maos_enc_append_batch(pk, rid, a, 3);
}
static int b_read(msgpack_packer *pk, uint64_t rid) { return maos_enc_read(pk, rid, S("acc-0"), 0, 0, 0, 10); }
static int b_read_all(msgpack_packer *pk, uint64_t rid) { return maos_enc_read_all(pk, rid, 0, 0, 0, 10, NULL); }
static int b_streams(msgpack_packer *pk, uint64_t rid) { return maos_enc_streams(pk, rid, S("acc-"), S(""), 10); }
static int b_stats(msgpack_packer *pk, uint64_t rid) { return maos_enc_simple(pk, rid, MAOS_OP_STATS); }
static int b_subscribe(msgpack_packer *pk, uint64_t rid) { return maos_enc_subscribe(pk, rid, NULL, MAOS_FROM_LIVE, 0); }
static int b_unsubscribe(msgpack_packer *pk, uint64_t rid) { return maos_enc_unsubscribe(pk, rid, 99); }
static int b_cp_save(msgpack_packer *pk, uint64_t rid) { return maos_enc_checkpoint_save(pk, rid, S("acc-cp"), 1); }
static int b_cp_get(msgpack_packer *pk, uint64_t rid) { return maos_enc_checkpoint_get(pk, rid, S("acc-cp0")); }
static int b_publish(msgpack_packer *pk, uint64_t rid) { return maos_enc_publish(pk, rid, S("acc-ch"), S("")); }
static int b_sub_chan(msgpack_packer *pk, uint64_t rid) { return maos_enc_subscribe_channel(pk, rid, S("acc-*")); }
static int b_put(msgpack_packer *pk, uint64_t rid) { return maos_enc_put(pk, rid, S("kv.acc"), S("k1"), S(""), MAOS_EXPECT_ANY, 0); }
static int b_get(msgpack_packer *pk, uint64_t rid) { return maos_enc_get(pk, rid, S("kv.acc"), S("k0")); }
static int b_delete(msgpack_packer *pk, uint64_t rid) { return maos_enc_delete(pk, rid, S("kv.acc"), S("k0"), MAOS_EXPECT_ANY); }
static int b_list(msgpack_packer *pk, uint64_t rid) { return maos_enc_list(pk, rid, S("kv.acc"), S("k"), S(""), 10, S("")); }
static int b_count(msgpack_packer *pk, uint64_t rid) { return maos_enc_count(pk, rid, S("kv.acc"), S("k"), S("")); }
static int b_watch(msgpack_packer *pk, uint64_t rid) { return maos_enc_watch(pk, rid, S("kv.acc"), S("k"), MAOS_WATCH_FROM_NOW, 0); }
static int b_agent_reg(msgpack_packer *pk, uint64_t rid)
{
    maos_agent_in a = {.id = S("acc-a1")};
    return maos_enc_agent_register(pk, rid, &a);
}
static int b_agent_dereg(msgpack_packer *pk, uint64_t rid) { return maos_enc_agent_deregister(pk, rid, S("acc-a9")); }
static int b_agent_status(msgpack_packer *pk, uint64_t rid) { return maos_enc_agent_status(pk, rid, S("busy"), S("")); }
static int b_enqueue(msgpack_packer *pk, uint64_t rid)
{
    maos_task_in t = {.delay_ms = -1};
    return maos_enc_enqueue(pk, rid, S("acc-q"), &t, 1);
}
static int b_claim(msgpack_packer *pk, uint64_t rid)
{
    maos_slice q = S("acc-q");
    return maos_enc_claim(pk, rid, &q, 1, 0, 0, 1, 0);
}
static int b_ack(msgpack_packer *pk, uint64_t rid) { return maos_enc_ack(pk, rid, zero_id, 5, S("")); }
static int b_nack(msgpack_packer *pk, uint64_t rid) { return maos_enc_nack(pk, rid, zero_id, 5, S(""), -1); }
static int b_extend(msgpack_packer *pk, uint64_t rid) { return maos_enc_extend(pk, rid, zero_id, 5, 1000); }
static int b_release(msgpack_packer *pk, uint64_t rid) { return maos_enc_task_release(pk, rid, zero_id, 5); }
static int b_task(msgpack_packer *pk, uint64_t rid) { return maos_enc_task_get(pk, rid, zero_id); }
static int b_qstats(msgpack_packer *pk, uint64_t rid) { return maos_enc_queue_stats(pk, rid, S("acc-q")); }
static int b_dead_list(msgpack_packer *pk, uint64_t rid) { return maos_enc_dead_list(pk, rid, S("acc-q"), NULL, 10); }
static int b_dead_retry(msgpack_packer *pk, uint64_t rid) { return maos_enc_dead_retry(pk, rid, S("acc-q"), NULL); }
static int b_dead_purge(msgpack_packer *pk, uint64_t rid) { return maos_enc_dead_purge(pk, rid, S("acc-q")); }
static int b_backup(msgpack_packer *pk, uint64_t rid) { return maos_enc_backup(pk, rid, S(g_backup_dir)); }
static int b_metrics(msgpack_packer *pk, uint64_t rid) { return maos_enc_metrics(pk, rid); }
static int b_task_list(msgpack_packer *pk, uint64_t rid) { return maos_enc_task_list(pk, rid, S(""), NULL, 10); }
static int b_tok_create(msgpack_packer *pk, uint64_t rid)
{
    const char *sc[] = {"read:x"};
    return maos_enc_token_create(pk, rid, "acc-new", sc, 1, 0, -1, NULL);
}
static int b_tok_list(msgpack_packer *pk, uint64_t rid) { return maos_enc_token_list(pk, rid); }
static int b_smeta(msgpack_packer *pk, uint64_t rid)
{
    maos_stream_meta_in m = {.set = 1, .max_count = 100};
    return maos_enc_stream_meta(pk, rid, S("acc-0"), &m);
}
static int b_compact(msgpack_packer *pk, uint64_t rid) { return maos_enc_compact(pk, rid); }
static int b_pubkey(msgpack_packer *pk, uint64_t rid) { return maos_enc_pubkey(pk, rid); }
static int b_chain_sign(msgpack_packer *pk, uint64_t rid) { return maos_enc_chain_sign(pk, rid, 1); }
static int b_tok_revoke(msgpack_packer *pk, uint64_t rid) { return maos_enc_token_revoke(pk, rid, "acc-victim"); }

#define ADMIN_DENY                                                             \
    "read: append: subscribe: kv.read: kv.write: queue.enqueue: queue.work: "  \
    "channel:* agent.register:"
#define ANY_OK 1 /* allowed: anything but FORBIDDEN */

/* op, request, scopes that allow it, scopes that do not, the code the
 * allowed request gets (0 ok, a code, ANY_OK), the code the other gets
 * (FORBIDDEN, or the op's own when no scope can refuse it) */
static const struct op_case {
    const char *op;
    build_fn build;
    const char *allow, *deny;
    int allowed_code, denied_code;
} cases[] = {
    {"ping", b_ping, "read:zzz", "read:zzz", 0, 0},
    {"append", b_append, "append:acc-", "append:zzz- read:", 0, MAOS_EFORBIDDEN},
    {"txn", b_txn, "append:acc-", "append:acc-2 read:", 0, MAOS_EFORBIDDEN},
    {"append_batch", b_append_batch, "append:acc-", "append:acc-4 read:", 0, MAOS_EFORBIDDEN},
    {"read", b_read, "read:acc-", "read:zzz- append:", 0, MAOS_EFORBIDDEN},
    {"read_all", b_read_all, "read:zzz-", "append: subscribe:", 0, MAOS_EFORBIDDEN},
    {"streams", b_streams, "read:acc", "read:acc-x", 0, MAOS_EFORBIDDEN},
    {"stats", b_stats, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"subscribe", b_subscribe, "subscribe:zzz", "read: append:", 0, MAOS_EFORBIDDEN},
    {"unsubscribe", b_unsubscribe, "read:zzz", "read:zzz", MAOS_ENOT_FOUND, MAOS_ENOT_FOUND},
    {"checkpoint_save", b_cp_save, "subscribe:acc-", "subscribe:zzz read:", 0, MAOS_EFORBIDDEN},
    {"checkpoint_get", b_cp_get, "subscribe:acc-cp", "subscribe:zzz read:", 0, MAOS_EFORBIDDEN},
    {"publish", b_publish, "channel:acc-*", "channel:zzz*", 0, MAOS_EFORBIDDEN},
    {"subscribe_channel", b_sub_chan, "channel:zzz", "read:", 0, MAOS_EFORBIDDEN},
    {"put", b_put, "kv.write:kv.acc/k", "kv.write:kv.acc/z kv.read:", 0, MAOS_EFORBIDDEN},
    {"get", b_get, "kv.read:kv.acc/", "kv.read:kv.other/ kv.write:", 0, MAOS_EFORBIDDEN},
    {"delete", b_delete, "kv.write:*/k0", "kv.write:kv.acc/k1 kv.read:", 0, MAOS_EFORBIDDEN},
    {"list", b_list, "kv.read:kv.acc/", "kv.read:kv.acc/k0 kv.write:", 0, MAOS_EFORBIDDEN},
    {"count", b_count, "kv.read:", "kv.read:kv.acc/z", 0, MAOS_EFORBIDDEN},
    {"watch", b_watch, "kv.read:kv.acc/k", "kv.read:sessions/", 0, MAOS_EFORBIDDEN},
    {"agent_register", b_agent_reg, "agent.register:acc-", "agent.register:zzz", 0,
     MAOS_EFORBIDDEN},
    {"agent_deregister", b_agent_dereg, "agent.register:acc-", "agent.register:zzz", ANY_OK,
     MAOS_EFORBIDDEN},
    {"agent_status", b_agent_status, "agent.register:acc-", "read:", MAOS_ENOT_FOUND,
     MAOS_ENOT_FOUND},
    {"enqueue", b_enqueue, "queue.enqueue:acc-q", "queue.enqueue:zzz queue.work:", 0,
     MAOS_EFORBIDDEN},
    {"claim", b_claim, "queue.work:acc-", "queue.work:zzz queue.enqueue:", 0, MAOS_EFORBIDDEN},
    {"ack", b_ack, "queue.work:zzz", "queue.enqueue:", MAOS_ENOT_FOUND, MAOS_EFORBIDDEN},
    {"nack", b_nack, "queue.work:zzz", "queue.enqueue:", MAOS_ENOT_FOUND, MAOS_EFORBIDDEN},
    {"extend", b_extend, "queue.work:zzz", "queue.enqueue:", MAOS_ENOT_FOUND, MAOS_EFORBIDDEN},
    {"release", b_release, "queue.work:zzz", "queue.enqueue:", MAOS_ENOT_FOUND,
     MAOS_EFORBIDDEN},
    {"task", b_task, "queue.work:zzz", "queue.enqueue: read:", MAOS_ENOT_FOUND, MAOS_EFORBIDDEN},
    {"queue_stats", b_qstats, "queue.work:acc-", "queue.work:zzz", 0, MAOS_EFORBIDDEN},
    {"dead_list", b_dead_list, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"dead_retry", b_dead_retry, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"dead_purge", b_dead_purge, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"backup", b_backup, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"metrics", b_metrics, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"task_list", b_task_list, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"stream_meta", b_smeta, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"compact", b_compact, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"pubkey", b_pubkey, "read:zzz", "read:zzz", 0, 0},
    {"chain_sign", b_chain_sign, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    /* a token gives at most what its maker has: admin plus the read:x it gives */
    {"token_create", b_tok_create, "admin read:x", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"token_list", b_tok_list, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
    {"token_revoke", b_tok_revoke, "admin", ADMIN_DENY, 0, MAOS_EFORBIDDEN},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static mt_daemon *daemon_up(const char *name)
{
    mt_daemon *d = mt_daemon_new(name, NULL);
    mt_daemon_add_arg(d, "--durability");
    mt_daemon_add_arg(d, "none");
    mt_daemon_up(d);
    return d;
}

static uint64_t head_of(maos_ctx *c)
{
    maos_stats_info st;
    if (maos_stats_get(c, &st))
        MT_FAIL("stats: %s", c->errstr);
    return st.head_position;
}

/* Events of the log outside $audit (where refusals and token changes are
 * recorded: they are the only events a refused request may cause). */
static uint64_t events_but_audit(maos_ctx *c)
{
    uint64_t n = 0, from = MAOS_FROM_START;
    for (;;) {
        maos_page *pg;
        if (maos_read_all(c, NULL, from, 0, 1000, &pg))
            MT_FAIL("read_all: %s", c->errstr);
        for (size_t i = 0; i < pg->n; i++)
            n += !(pg->events[i].stream_len == 6 && !memcmp(pg->events[i].stream, "$audit", 6));
        int more = pg->has_next;
        from = pg->next;
        maos_page_free(pg);
        if (!more)
            return n;
    }
}

static void run_case(const char *sock, maos_ctx *root, const struct op_case *k, int allowed,
                     int i)
{
    char name[64], tok[MAOS_TOKEN_TEXT_SIZE], msg[512];
    snprintf(name, sizeof name, "%s-%d", allowed ? "yes" : "no", i);
    mk_token(root, name, allowed ? k->allow : k->deny, 0, tok);
    int code;
    int fd = xconnect(sock, tok, &code, msg, sizeof msg);
    MT_EQ_ERR(code, 0);
    code = xreq(fd, 2, k->build, msg, sizeof msg);
    int want = allowed ? k->allowed_code : k->denied_code;
    if (want == ANY_OK ? code == MAOS_EFORBIDDEN : code != want)
        MT_FAIL("%s with scopes \"%s\": got %s \"%s\", want %s", k->op,
                allowed ? k->allow : k->deny, maos_err_name(code), msg,
                want == ANY_OK ? "not FORBIDDEN" : maos_err_name(want));
    if (code == MAOS_EFORBIDDEN) {
        /* the message names the scope missing */
        int kind = maos_op_scope(maos_op_from_name(k->op, strlen(k->op)));
        const char *kn = maos_scope_kind_name(kind);
        if (kind != MAOS_SCOPE_PER_ITEM && !strstr(msg, kn))
            MT_FAIL("%s: FORBIDDEN \"%s\" does not name scope %s", k->op, msg, kn);
        if (kind == MAOS_SCOPE_PER_ITEM && !strstr(msg, "append"))
            MT_FAIL("%s: FORBIDDEN \"%s\" does not name scope append", k->op, msg);
        /* txn, append_batch: the second append is the one refused */
        if (kind == MAOS_SCOPE_PER_ITEM)
            MT_EQ_INT(g_last_index, 1);
    }
    close(fd);
}

static void test_every_op(void **state)
{
    (void)state;
    /* the table covers every op of the list but hello */
#define OP_COVER_(e, nm)                                                       \
    do {                                                                       \
        int found = !strcmp(nm, "hello");                                      \
        for (size_t i = 0; i < N_CASES; i++)                                   \
            found |= !strcmp(cases[i].op, nm);                                 \
        if (!found)                                                            \
            MT_FAIL("op %s has no case in test_every_op", nm);                 \
    } while (0);
    MAOS_OPS_MAP(OP_COVER_)
#undef OP_COVER_
    mt_daemon *d = daemon_up("d");
    snprintf(g_backup_dir, sizeof g_backup_dir, "%s/backup", mt_test_dir());
    maos_ctx *root = root_ctx(d->sock);
    /* what the reads read */
    maos_event_spec ev = {NULL, "seed", NULL, 0, NULL, 0};
    MT_EQ_ERR(maos_append(root, "acc-0", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    MT_EQ_ERR(maos_checkpoint_save(root, "acc-cp0", 1), 0);
    MT_EQ_ERR(maos_put(root, "kv.acc", "k0", "\x80", 1, MAOS_EXPECT_ANY, 0, NULL), 0);
    char victim[MAOS_TOKEN_TEXT_SIZE];
    mk_token(root, "acc-victim", "read:v", 0, victim);
    uint64_t h0 = head_of(root), e0 = events_but_audit(root);

    /* refused: nothing written (but their records in $audit) */
    for (size_t i = 0; i < N_CASES; i++)
        run_case(d->sock, root, &cases[i], 0, (int)i);
    MT_EQ_U64(events_but_audit(root), e0);
    uint64_t pos;
    MT_EQ_ERR(maos_checkpoint_get(root, "acc-cp", &pos), MAOS_ENOT_FOUND);
    maos_table_page *e = NULL;
    MT_EQ_ERR(maos_get(root, "kv.acc", "k1", &e), MAOS_ENOT_FOUND);
    MT_EQ_ERR(maos_get(root, "kv.acc", "k0", &e), 0);
    maos_table_page_free(e);
    MT_EQ_ERR(maos_get(root, "agents", "acc-a1", &e), MAOS_ENOT_FOUND);
    char *list = NULL;
    MT_EQ_ERR(maos_token_list(root, &list), 0);
    MT_TRUE(!strstr(list, "\"acc-new\"") && strstr(list, "\"acc-victim\""));
    free(list);
    struct stat st;
    MT_TRUE(stat(g_backup_dir, &st) != 0);

    /* allowed: done */
    for (size_t i = 0; i < N_CASES; i++)
        run_case(d->sock, root, &cases[i], 1, (int)i);
    MT_TRUE(head_of(root) > h0);
    MT_EQ_ERR(maos_get(root, "kv.acc", "k1", &e), 0);
    maos_table_page_free(e);
    MT_EQ_ERR(maos_checkpoint_get(root, "acc-cp", &pos), 0);
    MT_EQ_ERR(maos_token_list(root, &list), 0);
    MT_TRUE(strstr(list, "\"acc-new\"") && !strstr(list, "\"acc-victim\""));
    free(list);
    MT_EQ_INT(stat(g_backup_dir, &st), 0);
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- the filter property ------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33) % n;
}

/* A random name of 1..3 letters of "ab", then "-" and a number. */
static void rnd_stream(char *out, size_t len)
{
    char p[4];
    int n = 1 + (int)rnd(3);
    for (int i = 0; i < n; i++)
        p[i] = "ab"[rnd(2)];
    p[n] = 0;
    snprintf(out, len, "%s-%u", p, rnd(4));
}

static int in_scope(const char *const *pref, int np, const char *s, size_t len)
{
    for (int i = 0; i < np; i++)
        if (len >= strlen(pref[i]) && !memcmp(s, pref[i], strlen(pref[i])))
            return 1;
    return 0;
}

#define ROUNDS 12
#define EVENTS 150

static void test_filter_property(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    const char *seed_env = getenv("MT_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 14;
    print_message("seed %" PRIu64 " (MT_SEED to change)\n", seed);
    rng_state = seed;
    for (int round = 0; round < ROUNDS; round++) {
        /* the scopes: 1..3 random prefixes of 1..3 letters (some with "-") */
        char pbuf[3][8];
        const char *pref[3];
        int np = 1 + (int)rnd(3);
        char scopes[256] = "";
        for (int i = 0; i < np; i++) {
            int n = 1 + (int)rnd(3);
            for (int j = 0; j < n; j++)
                pbuf[i][j] = "ab"[rnd(2)];
            pbuf[i][n] = 0;
            if (rnd(2))
                strcat(pbuf[i], "-");
            pref[i] = pbuf[i];
            size_t l = strlen(scopes);
            snprintf(scopes + l, sizeof scopes - l, "%sread:%s subscribe:%s", i ? " " : "",
                     pref[i], pref[i]);
        }
        char name[32], tok[MAOS_TOKEN_TEXT_SIZE];
        snprintf(name, sizeof name, "p%d", round);
        mk_token(root, name, scopes, 0, tok);
        uint64_t start = head_of(root) + 1;
        maos_options o = {.path = d->sock, .timeout_ms = 10000};
        maos_ctx *t = maos_connect_token(&o, tok);
        MT_TRUE(t && !t->err);
        uint64_t sub;
        MT_EQ_ERR(maos_subscribe(t, NULL, MAOS_FROM_POSITION, start, &sub), 0);
        /* events, half of them after the subscription went live */
        int expected = 0;
        for (int i = 0; i < EVENTS; i++) {
            char s[32];
            rnd_stream(s, sizeof s);
            maos_event_spec ev = {NULL, "e", NULL, 0, NULL, 0};
            MT_EQ_ERR(maos_append(root, s, MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
            expected += in_scope(pref, np, s, strlen(s));
        }
        /* the marker: in scope, the last event */
        char marker[32];
        snprintf(marker, sizeof marker, "%smark", pref[0]);
        maos_event_spec mev = {NULL, "marker", NULL, 0, NULL, 0};
        MT_EQ_ERR(maos_append(root, marker, MAOS_EXPECT_ANY, &mev, 1, NULL), 0);
        expected++;
        /* read_all through the token: exactly the in-scope events */
        int got = 0;
        uint64_t from = start;
        for (int guard = 0; guard < 1000; guard++) {
            maos_page *pg;
            MT_EQ_ERR(maos_read_all(t, NULL, from, 0, 1000, &pg), 0);
            for (size_t i = 0; i < pg->n; i++) {
                const maos_event *e = &pg->events[i];
                if (!in_scope(pref, np, e->stream, e->stream_len))
                    MT_FAIL("read_all leaked %.*s (scopes %s)", (int)e->stream_len, e->stream,
                            scopes);
                got++;
            }
            int more = pg->has_next;
            from = pg->next;
            maos_page_free(pg);
            if (!more)
                break;
        }
        MT_EQ_INT(got, expected);
        /* the subscription: exactly the in-scope events, up to the marker */
        int seen = 0, done = 0;
        int64_t deadline = mt_now_us() + 30000000;
        while (!done && mt_now_us() < deadline) {
            maos_delivery *dl;
            int rc = maos_next(t, 1000, &dl);
            if (rc == MAOS_ETIMEOUT)
                continue;
            MT_EQ_ERR(rc, 0);
            for (size_t i = 0; dl->kind == MAOS_PUSH_EVENTS && i < dl->n; i++) {
                const maos_event *e = &dl->events[i];
                if (!in_scope(pref, np, e->stream, e->stream_len))
                    MT_FAIL("subscription leaked %.*s (scopes %s)", (int)e->stream_len,
                            e->stream, scopes);
                seen++;
                done |= e->stream_len == strlen(marker) &&
                        !memcmp(e->stream, marker, e->stream_len);
            }
            maos_delivery_free(dl);
        }
        MT_TRUE(done);
        MT_EQ_INT(seen, expected);
        maos_free(t);
    }
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- revocation and expiry ----------------------------------------------------- */

static void test_revoke_closes(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE], msg[256];
    mk_token(root, "live", "subscribe: read:", 0, tok);
    int fd = xconnect_ok(d->sock, tok);
    MT_EQ_ERR(xreq(fd, 2, b_subscribe, msg, sizeof msg), 0);
    /* another connection with another token stays */
    char other[MAOS_TOKEN_TEXT_SIZE];
    mk_token(root, "other", "read:", 0, other);
    int fd2 = xconnect_ok(d->sock, other);
    uint64_t closed = 0;
    MT_EQ_ERR(maos_token_revoke(root, "live", &closed), 0);
    MT_EQ_U64(closed, 1);
    /* the revoked one: an UNAUTHENTICATED frame, then EOF */
    char *f;
    uint32_t len;
    maos_reply rep;
    int frames = 0;
    do { /* pushes of the subscription may come first */
        MT_EQ_INT(mt_recv_frame(fd, &f, &len, FRAME_MAX, 10000), 1);
        int rc = maos_reply_decode(f, len, &rep);
        free(f);
        if (!rc)
            break;
    } while (++frames < 100);
    MT_EQ_ERR(rep.code, MAOS_EUNAUTHENTICATED);
    MT_EQ_U64(rep.rid, 0);
    MT_EQ_INT(mt_wait_closed(fd, 10000), 1);
    close(fd);
    MT_EQ_ERR(xreq(fd2, 2, b_ping, msg, sizeof msg), 0);
    close(fd2);
    /* and its next hello is refused; through the library too */
    int code;
    fd = xconnect(d->sock, tok, &code, msg, sizeof msg);
    MT_EQ_ERR(code, MAOS_EUNAUTHENTICATED);
    MT_EQ_ERR(xreq(fd, 2, b_ping, msg, sizeof msg), MAOS_EHELLO_REQUIRED);
    close(fd);
    maos_options o = {.path = d->sock, .timeout_ms = 10000};
    maos_ctx *t = maos_connect_token(&o, tok);
    MT_TRUE(t != NULL);
    MT_EQ_ERR(t->err, MAOS_EUNAUTHENTICATED);
    maos_free(t);
    MT_EQ_ERR(maos_token_revoke(root, "live", NULL), MAOS_ENOT_FOUND);
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

static void test_expiry(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE], msg[256];
    /* long enough to say hello (a sanitizer build is slow), short enough
     * to wait for */
    mk_token(root, "short", "read: subscribe:", 5000, tok);
    int fd = xconnect_ok(d->sock, tok);
    MT_EQ_ERR(xreq(fd, 2, b_read_all, msg, sizeof msg), 0);
    MT_EQ_ERR(xreq(fd, 3, b_subscribe, msg, sizeof msg), 0);
    /* the expiry closes it (its subscriptions with it): one UNAUTHENTICATED
     * frame with rid 0, then EOF -- waited for with a deadline */
    char *f;
    uint32_t len;
    maos_reply rep;
    int found = 0;
    for (int frames = 0; !found && frames < 100; frames++) { /* pushes may come first */
        MT_EQ_INT(mt_recv_frame(fd, &f, &len, FRAME_MAX, 30000), 1);
        if (maos_reply_decode(f, len, &rep) == 0) {
            MT_EQ_ERR(rep.code, MAOS_EUNAUTHENTICATED);
            MT_EQ_U64(rep.rid, 0);
            MT_TRUE(memmem(rep.message.ptr, rep.message.len, "expired", 7) != NULL);
            found = 1;
        }
        free(f);
    }
    MT_TRUE(found);
    MT_EQ_INT(mt_wait_closed(fd, 10000), 1);
    close(fd);
    int code;
    fd = xconnect(d->sock, tok, &code, msg, sizeof msg);
    MT_EQ_ERR(code, MAOS_EUNAUTHENTICATED);
    MT_TRUE(strstr(msg, "expired") != NULL);
    close(fd);
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- bad hellos ---------------------------------------------------------------- */

static const char *g_raw_kind;

/* hello with a token of another msgpack type */
static int b_hello_typed(msgpack_packer *pk, uint64_t rid)
{
    if (msgpack_pack_map(pk, 4) || msgpack_pack_str_with_body(pk, "op", 2) ||
        msgpack_pack_str_with_body(pk, "hello", 5) || msgpack_pack_str_with_body(pk, "rid", 3) ||
        msgpack_pack_uint64(pk, rid) || msgpack_pack_str_with_body(pk, "version", 7) ||
        msgpack_pack_uint64(pk, MAOS_PROTOCOL_VERSION) ||
        msgpack_pack_str_with_body(pk, "token", 5))
        return MAOS_ENOMEM;
    if (!strcmp(g_raw_kind, "int"))
        return msgpack_pack_uint64(pk, 5);
    if (!strcmp(g_raw_kind, "bin")) {
        uint8_t b[32] = {0};
        return msgpack_pack_bin_with_body(pk, b, 32);
    }
    return msgpack_pack_array(pk, 0);
}

static int b_hello_noversion(msgpack_packer *pk, uint64_t rid)
{
    if (msgpack_pack_map(pk, 2) || msgpack_pack_str_with_body(pk, "op", 2) ||
        msgpack_pack_str_with_body(pk, "hello", 5) || msgpack_pack_str_with_body(pk, "rid", 3) ||
        msgpack_pack_uint64(pk, rid))
        return MAOS_ENOMEM;
    return 0;
}

static int b_forged(msgpack_packer *pk, uint64_t rid)
{
    static const char meta[] = "\x81\xa5" "agent" "\xa4" "boss";
    maos_event_in ev = {.type = S("t"), .meta = {meta, sizeof meta - 1}};
    maos_append_in a = {S("f-1"), MAOS_EXPECT_ANY, 1, &ev};
    return maos_enc_append(pk, rid, &a);
}

static void test_bad_hellos(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE], msg[256];
    mk_token(root, "good", "append:f- read:", 0, tok);
    int code;
    /* wrong lengths, alphabet, prefix, a non-canonical last character,
     * unknown: UNAUTHENTICATED */
    char bad[6][64];
    snprintf(bad[0], 64, "%.*s", MAOS_TOKEN_TEXT_SIZE - 2, tok);
    snprintf(bad[1], 64, "%sA", tok);
    snprintf(bad[2], 64, "%s", tok);
    bad[2][9] = '!';
    snprintf(bad[3], 64, "MAOS_%s", tok + 5);
    snprintf(bad[4], 64, "%s", tok);
    bad[4][MAOS_TOKEN_TEXT_SIZE - 2] = bad[4][MAOS_TOKEN_TEXT_SIZE - 2] == 'B' ? 'C' : 'B';
    snprintf(bad[5], 64, "%s", tok);
    bad[5][20] = bad[5][20] == 'a' ? 'b' : 'a'; /* well formed, unknown */
    for (int i = 0; i < 6; i++) {
        int fd = xconnect(d->sock, bad[i], &code, msg, sizeof msg);
        if (code != MAOS_EUNAUTHENTICATED)
            MT_FAIL("token \"%s\": got %s \"%s\"", bad[i], maos_err_name(code), msg);
        /* no hello: the connection can do nothing */
        MT_EQ_ERR(xreq(fd, 2, b_ping, msg, sizeof msg), MAOS_EHELLO_REQUIRED);
        close(fd);
    }
    /* a token of another type: BAD_REQUEST */
    static const char *const kinds[] = {"int", "bin", "array"};
    for (int i = 0; i < 3; i++) {
        int fd = mt_connect(d->sock);
        g_raw_kind = kinds[i];
        MT_EQ_ERR(xreq(fd, 1, b_hello_typed, msg, sizeof msg), MAOS_EBAD_REQUEST);
        MT_TRUE(strstr(msg, "token") != NULL);
        close(fd);
    }
    /* hello without version; hello twice */
    int fd = mt_connect(d->sock);
    MT_EQ_ERR(xreq(fd, 1, b_hello_noversion, msg, sizeof msg), MAOS_EBAD_REQUEST);
    close(fd);
    fd = xconnect(d->sock, tok, &code, msg, sizeof msg);
    MT_EQ_ERR(code, 0);
    g_token = NULL; /* the second hello without a token: no way to shed it */
    MT_EQ_ERR(xreq(fd, 2, b_hello, msg, sizeof msg), MAOS_EBAD_REQUEST);
    /* still the token's rights */
    MT_EQ_ERR(xreq(fd, 3, b_stats, msg, sizeof msg), MAOS_EFORBIDDEN);
    /* a forged meta.agent: FORBIDDEN, nothing written */
    uint64_t h = events_but_audit(root);
    MT_EQ_ERR(xreq(fd, 4, b_forged, msg, sizeof msg), MAOS_EFORBIDDEN);
    MT_TRUE(strstr(msg, "meta.agent") != NULL);
    MT_EQ_U64(events_but_audit(root), h); /* (its refusal is in $audit) */
    close(fd);
    /* root without a token may (maosd's own uid: the import of an export) */
    fd = xconnect(d->sock, NULL, &code, msg, sizeof msg);
    MT_EQ_ERR(code, 0);
    MT_EQ_ERR(xreq(fd, 2, b_forged, msg, sizeof msg), 0);
    close(fd);
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- persistence, uid binding, sessions, uid_scopes ---------------------------- */

/* As uid 65534: connect with token (NULL: none), try to append to `stream`
 * and read_all; exit status: bit 0 append ok, bit 1 append FORBIDDEN, bit
 * 2 read_all ok, bit 3 read_all saw only streams starting with `only`, bit
 * 4 hello refused UNAUTHENTICATED. */
static pid_t as_nobody(const char *sock, const char *token, const char *stream,
                       const char *only)
{
    pid_t pid = mt_fork();
    if (pid)
        return pid;
    gid_t g = 65534;
    if (setgroups(1, &g) || setgid(65534) || setuid(65534))
        _exit(100);
    maos_options o = {.path = sock, .timeout_ms = 10000, .server_uid = 0};
    maos_ctx *c = maos_connect_token(&o, token);
    if (!c)
        _exit(101);
    if (c->err)
        _exit(c->err == MAOS_EUNAUTHENTICATED ? 16 : 102);
    int st = 0;
    maos_event_spec ev = {NULL, "n", NULL, 0, NULL, 0};
    int rc = maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, NULL);
    st |= rc == 0 ? 1 : rc == MAOS_EFORBIDDEN ? 2 : 0;
    maos_page *pg;
    if (maos_read_all(c, NULL, 1, 0, 1000, &pg) == 0) {
        st |= 4 | 8;
        for (size_t i = 0; i < pg->n; i++)
            if (pg->events[i].stream_len < strlen(only) ||
                memcmp(pg->events[i].stream, only, strlen(only)))
                st &= ~8;
        maos_page_free(pg);
    }
    maos_free(c);
    _exit(st);
}

static void test_persist_and_uid(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new("d", NULL);
    mt_daemon_add_arg(d, "--allow-uids");
    mt_daemon_add_arg(d, "65534");
    mt_daemon_add_arg(d, "--uid-scopes");
    mt_daemon_add_arg(d, "65534=read:n- append:n-");
    mt_daemon_up(d);
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE], sess[MAOS_TOKEN_TEXT_SIZE], mine[MAOS_TOKEN_TEXT_SIZE];
    char nob[MAOS_TOKEN_TEXT_SIZE], msg[256];
    mk_token(root, "keep", "read:k-", 0, tok);
    MT_EQ_ERR(maos_token_create(root, "sess", NULL, 0, 0, -1, "s42", sess), 0);
    const char *all[] = {"read:", "append:"};
    MT_EQ_ERR(maos_token_create(root, "mine", all, 2, 0, (int64_t)getuid() + 1, NULL, mine), 0);
    MT_EQ_ERR(maos_token_create(root, "nob", all, 2, 0, -1, NULL, nob), 0);
    char dup[MAOS_TOKEN_TEXT_SIZE];
    MT_EQ_ERR(maos_token_create(root, "keep", all, 1, 0, -1, NULL, dup), MAOS_ECONFLICT);
    const char *badsc[] = {"read:x", "kv.read:plan"};
    MT_EQ_ERR(maos_token_create(root, "bad", badsc, 2, 0, -1, NULL, dup), MAOS_EBAD_REQUEST);
    MT_TRUE(strstr(root->errstr, "kv.read:plan") != NULL);
    maos_event_spec ev = {NULL, "x", NULL, 0, NULL, 0};
    MT_EQ_ERR(maos_append(root, "k-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    MT_EQ_ERR(maos_append(root, "n-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    MT_EQ_ERR(maos_append(root, "s42-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    maos_free(root);
    mt_daemon_restart(d);
    root = root_ctx(d->sock);
    int code;
    /* the token works after the restart */
    int fd = xconnect(d->sock, tok, &code, msg, sizeof msg);
    MT_EQ_ERR(code, 0);
    MT_EQ_ERR(xreq(fd, 2, b_append, msg, sizeof msg), MAOS_EFORBIDDEN);
    close(fd);
    /* for another uid: refused */
    fd = xconnect(d->sock, mine, &code, msg, sizeof msg);
    MT_EQ_ERR(code, MAOS_EUNAUTHENTICATED);
    MT_TRUE(strstr(msg, "uid") != NULL);
    close(fd);
    /* the session token: its streams, its kv keys, its queues */
    maos_options o = {.path = d->sock, .timeout_ms = 10000};
    maos_ctx *s = maos_connect_token(&o, sess);
    MT_TRUE(s && !s->err);
    MT_EQ_ERR(maos_append(s, "s42-2", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    MT_EQ_ERR(maos_append(s, "s43-2", MAOS_EXPECT_ANY, &ev, 1, NULL), MAOS_EFORBIDDEN);
    MT_EQ_ERR(maos_put(s, "kv.plan", "s42/step", "\x80", 1, MAOS_EXPECT_ANY, 0, NULL), 0);
    MT_EQ_ERR(maos_put(s, "kv.plan", "s43/step", "\x80", 1, MAOS_EXPECT_ANY, 0, NULL),
              MAOS_EFORBIDDEN);
    maos_page *pg;
    MT_EQ_ERR(maos_read_all(s, NULL, 1, 0, 1000, &pg), 0);
    for (size_t i = 0; i < pg->n; i++)
        MT_TRUE(pg->events[i].stream_len >= 4 && !memcmp(pg->events[i].stream, "s42-", 4));
    MT_TRUE(pg->n >= 2);
    maos_page_free(pg);
    maos_free(s);
    /* list: names and scopes, never a secret */
    char *list = NULL;
    MT_EQ_ERR(maos_token_list(root, &list), 0);
    MT_TRUE(strstr(list, "\"keep\"") && strstr(list, "queue.work:s42-") &&
            !strstr(list, tok + 5) && !strstr(list, sess + 5));
    free(list);
    /* uid_scopes: another uid without a token has them; with a token, the
     * intersection */
    if (geteuid() != 0) {
        print_message("not root: other uids cannot connect; uid_scopes not checked\n");
    } else {
        MT_EQ_INT(chmod(mt_test_dir(), 0711), 0);
        MT_EQ_INT(chmod(d->dir, 0711), 0);
        MT_EQ_INT(chmod(d->sock, 0666), 0);
        /* no token: append n- ok, read_all only n- */
        MT_EQ_INT(mt_wait(as_nobody(d->sock, NULL, "n-2", "n-"), 30000), 1 | 4 | 8);
        MT_EQ_INT(mt_wait(as_nobody(d->sock, NULL, "k-2", "n-"), 30000), 2 | 4 | 8);
        /* a token of every read and append: still only what the uid may */
        MT_EQ_INT(mt_wait(as_nobody(d->sock, nob, "k-3", "n-"), 30000), 2 | 4 | 8);
        MT_EQ_INT(mt_wait(as_nobody(d->sock, nob, "n-3", "n-"), 30000), 1 | 4 | 8);
        /* a token narrower than the uid: the token's (read k- only) */
        MT_EQ_INT(mt_wait(as_nobody(d->sock, tok, "n-4", "k-"), 30000), 2 | 4 | 8);
    }
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* ---- a lease of another queue ----------------------------------------------------- */

static void claim_one(maos_ctx *c, const char *queue, uint8_t id[16], uint64_t *token)
{
    maos_task_page *pg = NULL;
    const char *q[] = {queue};
    MT_EQ_ERR(maos_claim(c, q, 1, 60000, 0, 1, 0, &pg), 0);
    MT_EQ_U64(pg->n, 1);
    memcpy(id, pg->tasks[0].id, 16);
    *token = pg->tasks[0].token;
    maos_task_page_free(pg);
}

/* ack, nack, extend, release and task name only a task: the task's queue
 * is checked where it is known (the commit thread, the reader), so a
 * token of queue qa- cannot touch a lease of queue qb- even with its id
 * and fencing token. */
static void test_lease_of_another_queue(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE];
    mk_token(root, "qa", "queue.work:qa-", 0, tok);
    uint8_t ida[16], idb[16];
    uint64_t ta, tb;
    MT_EQ_ERR(maos_enqueue(root, "qa-1", "\xc0", 1, NULL, NULL, NULL), 0);
    MT_EQ_ERR(maos_enqueue(root, "qb-1", "\xc0", 1, NULL, NULL, NULL), 0);
    maos_options o = {.path = d->sock, .timeout_ms = 10000};
    maos_ctx *t = maos_connect_token(&o, tok);
    MT_TRUE(t && !t->err);
    const char *qb[] = {"qb-1"};
    maos_task_page *pg = NULL;
    MT_EQ_ERR(maos_claim(t, qb, 1, 60000, 0, 1, 0, &pg), MAOS_EFORBIDDEN);
    claim_one(t, "qa-1", ida, &ta);
    claim_one(root, "qb-1", idb, &tb);
    uint64_t h = events_but_audit(root);
    MT_EQ_ERR(maos_ack(t, idb, tb, NULL, 0), MAOS_EFORBIDDEN);
    MT_TRUE(strstr(t->errstr, "queue.work:qb-1") != NULL);
    MT_EQ_ERR(maos_nack(t, idb, tb, "x", -1, NULL), MAOS_EFORBIDDEN);
    MT_EQ_ERR(maos_extend(t, idb, tb, 1000, NULL), MAOS_EFORBIDDEN);
    MT_EQ_ERR(maos_task_release(t, idb, tb), MAOS_EFORBIDDEN);
    MT_EQ_ERR(maos_task_get(t, idb, &pg), MAOS_EFORBIDDEN);
    MT_EQ_U64(events_but_audit(root), h); /* nothing written (the refusals: in $audit) */
    MT_EQ_ERR(maos_task_get(root, idb, &pg), 0);
    MT_TRUE(pg->tasks[0].state.len == 6 && !memcmp(pg->tasks[0].state.ptr, "leased", 6));
    maos_task_page_free(pg);
    /* its own queue's lease: fine */
    MT_EQ_ERR(maos_task_get(t, ida, &pg), 0);
    maos_task_page_free(pg);
    MT_EQ_ERR(maos_ack(t, ida, ta, NULL, 0), 0);
    MT_EQ_ERR(maos_ack(root, idb, tb, NULL, 0), 0);
    maos_free(t);
    maos_free(root);
    MT_EQ_INT(mt_daemon_stop(d), 0);
}

/* $audit is read with admin only: a token that may read every stream
 * does not see it (read_all leaves it out, read refuses), admin does. */
static void test_audit_needs_admin(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char all[MAOS_TOKEN_TEXT_SIZE], adm[MAOS_TOKEN_TEXT_SIZE];
    mk_token(root, "all", "read:", 0, all); /* each creation is in $audit */
    mk_token(root, "adm", "admin read:", 0, adm);
    maos_page *pg;
    MT_EQ_ERR(maos_read(root, "$audit", MAOS_FROM_START, 0, 100, &pg), 0);
    MT_CMP_INT(pg->n, >=, 2);
    maos_page_free(pg);
    maos_options o = {.path = d->sock, .timeout_ms = 10000};
    const char *toks[] = {all, adm};
    for (int k = 0; k < 2; k++) {
        maos_ctx *t = maos_connect_token(&o, toks[k]);
        MT_TRUE(t && !t->err);
        size_t audit = 0;
        MT_EQ_ERR(maos_read_all(t, NULL, MAOS_FROM_START, 0, 1000, &pg), 0);
        for (size_t i = 0; i < pg->n; i++)
            audit += pg->events[i].stream_len == 6 && !memcmp(pg->events[i].stream, "$audit", 6);
        maos_page_free(pg);
        maos_stream_page *sp;
        MT_EQ_ERR(maos_streams(t, "", NULL, 100, &sp), 0);
        size_t listed = 0;
        for (size_t i = 0; i < sp->n; i++)
            listed += sp->streams[i].stream_len == 6 && !memcmp(sp->streams[i].stream, "$audit", 6);
        maos_stream_page_free(sp);
        if (k == 0) {
            MT_EQ_U64(audit, 0);
            MT_EQ_U64(listed, 0); /* not even its name and count */
            MT_EQ_ERR(maos_read(t, "$audit", MAOS_FROM_START, 0, 10, &pg), MAOS_EFORBIDDEN);
        } else {
            MT_CMP_INT(audit, >=, 2);
            MT_EQ_U64(listed, 1);
            /* this one has admin and read: but not append: */
            const char *sc[] = {"append:x-"};
            char text[MAOS_TOKEN_TEXT_SIZE];
            MT_EQ_ERR(maos_token_create(t, "wider", sc, 1, 0, -1, NULL, text), MAOS_EFORBIDDEN);
            MT_TRUE(strstr(t->errstr, "append:x-") != NULL);
            const char *sc2[] = {"read:x-"};
            MT_EQ_ERR(maos_token_create(t, "narrower", sc2, 1, 0, -1, NULL, text), 0);
        }
        maos_free(t);
    }
    maos_free(root);
}

/* The streams table and queue ops write carry their contents: read: alone
 * does not see them; with kv.read (queue.work) of their entries it does. */
static void test_derived_streams(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    MT_EQ_ERR(maos_put(root, "kv.secret", "k1", "\x81\xa1v\x01", 4, MAOS_EXPECT_ANY, 0, NULL), 0);
    maos_event_spec ev = {NULL, "t", NULL, 0, NULL, 0};
    MT_EQ_ERR(maos_append(root, "plain-1", MAOS_EXPECT_ANY, &ev, 1, NULL), 0);
    const char *sets[] = {"read:", "read: kv.read:kv.secret/"};
    for (int k = 0; k < 2; k++) {
        char tok[MAOS_TOKEN_TEXT_SIZE], name[16];
        snprintf(name, sizeof name, "d%d", k);
        mk_token(root, name, sets[k], 0, tok);
        maos_options o = {.path = d->sock, .timeout_ms = 10000};
        maos_ctx *t = maos_connect_token(&o, tok);
        MT_TRUE(t && !t->err);
        maos_page *pg;
        MT_EQ_ERR(maos_read_all(t, NULL, MAOS_FROM_START, 0, 1000, &pg), 0);
        size_t secret = 0, plain = 0;
        for (size_t i = 0; i < pg->n; i++) {
            secret += pg->events[i].stream_len == 12 && !memcmp(pg->events[i].stream,
                                                                 "kv.secret-k1", 12);
            plain += pg->events[i].stream_len == 7 && !memcmp(pg->events[i].stream, "plain-1", 7);
        }
        maos_page_free(pg);
        MT_EQ_U64(plain, 1);
        MT_EQ_U64(secret, k == 1);
        MT_EQ_ERR(maos_read(t, "kv.secret-k1", MAOS_FROM_START, 0, 10, &pg),
                  k ? 0 : MAOS_EFORBIDDEN);
        if (k)
            maos_page_free(pg);
        maos_free(t);
    }
    maos_free(root);
}

static int b_claim_wait(msgpack_packer *pk, uint64_t rid)
{
    maos_slice q = S("rv-jobs");
    return maos_enc_claim(pk, rid, &q, 1, 0, 60000, 1, 0);
}

/* A revoked token's waiting claim ends at once (empty): a task enqueued
 * after the revocation never goes to it. */
static void test_revoke_waiting_claim(void **state)
{
    (void)state;
    mt_daemon *d = daemon_up("d");
    maos_ctx *root = root_ctx(d->sock);
    char tok[MAOS_TOKEN_TEXT_SIZE];
    mk_token(root, "worker", "queue.work:rv-", 0, tok);
    int fd = xconnect_ok(d->sock, tok);
    xsend(fd, 2, b_claim_wait); /* its reply waits for a task */
    /* the claim is parked at the daemon: queue_stats counts it waiting */
    int64_t end = mt_now_us() + 30000000;
    for (;;) {
        maos_queue_stat *qs = NULL;
        size_t nq = 0;
        MT_EQ_ERR(maos_queue_stats(root, "rv-jobs", &qs, &nq), 0);
        int waiting = nq == 1 && qs[0].waiting == 1;
        free(qs);
        if (waiting)
            break;
        MT_TRUE(mt_now_us() < end);
    }
    uint64_t closed = 0;
    MT_EQ_ERR(maos_token_revoke(root, "worker", &closed), 0);
    MT_EQ_U64(closed, 1);
    MT_EQ_ERR(maos_enqueue(root, "rv-jobs", "\x81\xa1x\x01", 4, NULL, NULL, NULL), 0);
    /* the revoked connection: the claim back empty, UNAUTHENTICATED, EOF */
    for (int i = 0; i < 10; i++) {
        char *f;
        uint32_t len;
        int rc = mt_recv_frame(fd, &f, &len, FRAME_MAX, 10000);
        if (rc == 0)
            break; /* closed */
        MT_EQ_INT(rc, 1);
        maos_reply rep;
        MT_EQ_INT(maos_reply_decode(f, len, &rep), 0);
        if (rep.ok && rep.rid == 2 && rep.n_items)
            MT_FAIL("the revoked connection was given a task");
        free(f);
        MT_TRUE(i < 9);
    }
    close(fd);
    maos_free(root);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op),      cmocka_unit_test(test_filter_property),
        cmocka_unit_test(test_revoke_closes), cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_bad_hellos),    cmocka_unit_test(test_persist_and_uid),
        cmocka_unit_test(test_lease_of_another_queue),
        cmocka_unit_test(test_audit_needs_admin),
        cmocka_unit_test(test_derived_streams),
        cmocka_unit_test(test_revoke_waiting_claim),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 240);
}
