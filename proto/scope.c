/*
 * proto/scope.c -- scopes and tokens as text: parsing a scope, matching a
 * scope against what a request names, the one table of the scope each op
 * needs, and the text form of a token.  Pure (no I/O, no allocation), so
 * maosd, maosctl and the fuzz target call the same code.
 *
 * Invariants:
 *  - A parsed scope's argument is a view of the caller's text, checked as
 *    UTF-8 without NUL and within its kind's length, so matching never
 *    reads past it and a channel glob fits the stack buffer fnmatch needs.
 *  - op_scope below has a row for every op; an op without one reads
 *    MAOS_SCOPE_UNLISTED and tests/unit/test_proto fails (maosd refuses
 *    it: FORBIDDEN, never allowed by default).
 *  - A token's text form is canonical: exactly one text per 32 bytes
 *    (the last base64url character carries 4 bits, the 2 others must be
 *    zero), so two texts never name one token.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "maos/proto.h"

static const struct {
    const char *name;
    size_t len;
} kinds[MAOS_SCOPE__KINDS] = {
#define KIND_ROW_(e, n) [MAOS_SCOPE_##e] = {n, sizeof(n) - 1},
    MAOS_SCOPE_KINDS(KIND_ROW_)
#undef KIND_ROW_
};

const char *maos_scope_kind_name(int kind)
{
    if (kind == MAOS_SCOPE_NOT_NEEDED)
        return "none";
    if (kind == MAOS_SCOPE_PER_ITEM)
        return "per-op";
    if (kind <= 0 || kind >= MAOS_SCOPE__KINDS)
        return NULL;
    return kinds[kind].name;
}

static void say(char *why, size_t whylen, const char *msg)
{
    if (why && whylen) {
        size_t n = strlen(msg);
        if (n >= whylen)
            n = whylen - 1;
        memcpy(why, msg, n);
        why[n] = 0;
    }
}

int maos_scope_parse(const char *s, size_t len, maos_scope *out, char *why, size_t whylen)
{
    if (!s || len == 0 || len > MAOS_SCOPE_TEXT_MAX) {
        say(why, whylen, "a scope is 1..600 bytes");
        return MAOS_EBAD_REQUEST;
    }
    const char *colon = memchr(s, ':', len);
    size_t klen = colon ? (size_t)(colon - s) : len;
    int kind = 0;
    for (int k = 1; k < MAOS_SCOPE__KINDS; k++)
        if (kinds[k].len == klen && !memcmp(kinds[k].name, s, klen))
            kind = k;
    if (!kind) {
        say(why, whylen, "unknown scope kind (read, append, subscribe, kv.read, kv.write, "
                         "queue.enqueue, queue.work, channel, agent.register, admin)");
        return MAOS_EBAD_REQUEST;
    }
    maos_slice arg = {colon ? colon + 1 : s + len, colon ? (uint32_t)(len - klen - 1) : 0};
    if (kind == MAOS_SCOPE_ADMIN) {
        if (colon) {
            say(why, whylen, "admin takes no argument");
            return MAOS_EBAD_REQUEST;
        }
    } else if (!colon) {
        say(why, whylen, "a scope is KIND:ARG (the argument may be empty: \"read:\")");
        return MAOS_EBAD_REQUEST;
    }
    uint32_t max;
    switch (kind) {
    case MAOS_SCOPE_READ:
    case MAOS_SCOPE_APPEND:
    case MAOS_SCOPE_SUBSCRIBE: max = MAOS_STREAM_MAX; break;
    case MAOS_SCOPE_KV_READ:
    case MAOS_SCOPE_KV_WRITE: max = 80 + 1 + MAOS_KEY_MAX; break;
    case MAOS_SCOPE_CHANNEL: max = MAOS_NAME_MAX; break;
    default: max = MAOS_KEY_MAX; break;
    }
    if (arg.len && maos_utf8_check(arg, 1, max)) {
        say(why, whylen, "the argument is not UTF-8 without NUL, or too long for its kind");
        return MAOS_EBAD_REQUEST;
    }
    if (kind == MAOS_SCOPE_CHANNEL && !arg.len) {
        say(why, whylen, "channel needs a glob (\"channel:*\" for every channel)");
        return MAOS_EBAD_REQUEST;
    }
    if ((kind == MAOS_SCOPE_KV_READ || kind == MAOS_SCOPE_KV_WRITE) && arg.len) {
        const char *slash = memchr(arg.ptr, '/', arg.len);
        maos_table_ref t;
        maos_slice tn = {arg.ptr, slash ? (uint32_t)(slash - arg.ptr) : 0};
        if (!slash || (!(tn.len == 1 && tn.ptr[0] == '*') && maos_table_parse(tn, &t))) {
            say(why, whylen, "a kv scope's argument is TABLE/KEY-PREFIX (TABLE: sessions, "
                             "agents, locks, kv.NAME or *), or empty for every table");
            return MAOS_EBAD_REQUEST;
        }
    }
    out->kind = kind;
    out->arg = arg;
    return 0;
}

static int starts_with(maos_slice s, maos_slice prefix)
{
    return s.len >= prefix.len && (!prefix.len || !memcmp(s.ptr, prefix.ptr, prefix.len));
}

int maos_scope_allows(const maos_scope *s, int kind, maos_slice target)
{
    if (!s || s->kind != kind)
        return 0;
    switch (kind) {
    case MAOS_SCOPE_ADMIN:
        return 1;
    case MAOS_SCOPE_CHANNEL: {
        char pat[MAOS_NAME_MAX + 1], name[MAOS_NAME_MAX + 1];
        if (s->arg.len > MAOS_NAME_MAX || target.len > MAOS_NAME_MAX)
            return 0;
        memcpy(pat, s->arg.ptr, s->arg.len);
        pat[s->arg.len] = 0;
        if (target.len)
            memcpy(name, target.ptr, target.len);
        name[target.len] = 0;
        return fnmatch(pat, name, 0) == 0;
    }
    case MAOS_SCOPE_KV_READ:
    case MAOS_SCOPE_KV_WRITE: {
        if (!s->arg.len)
            return 1;
        /* both are TABLE/KEY; table names hold no '/' */
        const char *ss = memchr(s->arg.ptr, '/', s->arg.len);
        const char *ts = target.len ? memchr(target.ptr, '/', target.len) : NULL;
        if (!ss || !ts)
            return 0;
        maos_slice stab = {s->arg.ptr, (uint32_t)(ss - s->arg.ptr)};
        maos_slice ttab = {target.ptr, (uint32_t)(ts - target.ptr)};
        maos_slice skey = {ss + 1, (uint32_t)(s->arg.len - stab.len - 1)};
        maos_slice tkey = {ts + 1, (uint32_t)(target.len - ttab.len - 1)};
        int any = stab.len == 1 && stab.ptr[0] == '*';
        if (!any && (stab.len != ttab.len || memcmp(stab.ptr, ttab.ptr, stab.len)))
            return 0;
        return starts_with(tkey, skey);
    }
    default:
        return starts_with(target, s->arg);
    }
}

int maos_scopes_allow(const maos_scope *v, uint32_t n, int kind, maos_slice target)
{
    for (uint32_t i = 0; i < n; i++)
        if (maos_scope_allows(&v[i], kind, target))
            return 1;
    return 0;
}

int maos_scopes_have(const maos_scope *v, uint32_t n, int kind)
{
    for (uint32_t i = 0; i < n; i++)
        if (v[i].kind == kind)
            return 1;
    return 0;
}

/* ---- the scope of each op ------------------------------------------------------ */

/* The one table (PROTOCOL.md "Access control" says the same in prose).  A
 * new op needs a row: without one it is MAOS_SCOPE_UNLISTED, which maosd
 * refuses to everyone but root and its own uid, and test_proto fails. */
static const unsigned char op_scope[MAOS_OP__COUNT] = {
    [MAOS_OP_HELLO] = MAOS_SCOPE_NOT_NEEDED,
    [MAOS_OP_PING] = MAOS_SCOPE_NOT_NEEDED,
    [MAOS_OP_APPEND] = MAOS_SCOPE_APPEND,
    [MAOS_OP_TXN] = MAOS_SCOPE_PER_ITEM,
    [MAOS_OP_APPEND_BATCH] = MAOS_SCOPE_PER_ITEM,
    [MAOS_OP_READ] = MAOS_SCOPE_READ,
    [MAOS_OP_READ_ALL] = MAOS_SCOPE_READ,
    [MAOS_OP_STREAMS] = MAOS_SCOPE_READ,
    [MAOS_OP_STATS] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_SUBSCRIBE] = MAOS_SCOPE_SUBSCRIBE,
    [MAOS_OP_UNSUBSCRIBE] = MAOS_SCOPE_NOT_NEEDED,
    [MAOS_OP_CHECKPOINT_SAVE] = MAOS_SCOPE_SUBSCRIBE,
    [MAOS_OP_CHECKPOINT_GET] = MAOS_SCOPE_SUBSCRIBE,
    [MAOS_OP_PUBLISH] = MAOS_SCOPE_CHANNEL,
    [MAOS_OP_SUBSCRIBE_CHANNEL] = MAOS_SCOPE_CHANNEL,
    [MAOS_OP_PUT] = MAOS_SCOPE_KV_WRITE,
    [MAOS_OP_GET] = MAOS_SCOPE_KV_READ,
    [MAOS_OP_DELETE] = MAOS_SCOPE_KV_WRITE,
    [MAOS_OP_LIST] = MAOS_SCOPE_KV_READ,
    [MAOS_OP_COUNT] = MAOS_SCOPE_KV_READ,
    [MAOS_OP_WATCH] = MAOS_SCOPE_KV_READ,
    [MAOS_OP_AGENT_REGISTER] = MAOS_SCOPE_AGENT_REGISTER,
    [MAOS_OP_AGENT_DEREGISTER] = MAOS_SCOPE_AGENT_REGISTER,
    [MAOS_OP_AGENT_STATUS] = MAOS_SCOPE_AGENT_REGISTER,
    [MAOS_OP_ENQUEUE] = MAOS_SCOPE_QUEUE_ENQUEUE,
    [MAOS_OP_CLAIM] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_ACK] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_NACK] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_EXTEND] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_RELEASE] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_TASK] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_QUEUE_STATS] = MAOS_SCOPE_QUEUE_WORK,
    [MAOS_OP_DEAD_LIST] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_DEAD_RETRY] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_DEAD_PURGE] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_BACKUP] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_METRICS] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_TASK_LIST] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_STREAM_META] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_COMPACT] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_PUBKEY] = MAOS_SCOPE_NOT_NEEDED,
    [MAOS_OP_CHAIN_SIGN] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_TOKEN_CREATE] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_TOKEN_LIST] = MAOS_SCOPE_ADMIN,
    [MAOS_OP_TOKEN_REVOKE] = MAOS_SCOPE_ADMIN,
};

int maos_op_scope(maos_op op)
{
    if ((int)op <= 0 || op >= MAOS_OP__COUNT)
        return MAOS_SCOPE_UNLISTED;
    return op_scope[op];
}

int maos_item_scope(int item_kind)
{
    switch (item_kind) {
    case MAOS_ITEM_APPEND: return MAOS_SCOPE_APPEND;
    case MAOS_ITEM_PUT:
    case MAOS_ITEM_DELETE: return MAOS_SCOPE_KV_WRITE;
    case MAOS_ITEM_CHECKPOINT: return MAOS_SCOPE_SUBSCRIBE;
    case MAOS_ITEM_ENQUEUE: return MAOS_SCOPE_QUEUE_ENQUEUE;
    case MAOS_ITEM_CLAIM:
    case MAOS_ITEM_ACK:
    case MAOS_ITEM_NACK:
    case MAOS_ITEM_EXTEND:
    case MAOS_ITEM_TASK_RELEASE: return MAOS_SCOPE_QUEUE_WORK;
    case MAOS_ITEM_DEAD_RETRY:
    case MAOS_ITEM_DEAD_PURGE: return MAOS_SCOPE_ADMIN;
    default: return MAOS_SCOPE_UNLISTED;
    }
}

/* ---- tokens as text ----------------------------------------------------------- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void maos_token_format(const uint8_t raw[MAOS_TOKEN_BYTES], char *out)
{
    memcpy(out, MAOS_TOKEN_PREFIX, 5);
    char *o = out + 5;
    uint32_t acc = 0;
    int bits = 0;
    for (int i = 0; i < MAOS_TOKEN_BYTES; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *o++ = b64[(acc >> bits) & 63];
        }
    }
    if (bits)
        *o++ = b64[(acc << (6 - bits)) & 63];
    *o = 0;
}

int maos_token_parse(const char *s, size_t len, uint8_t raw[MAOS_TOKEN_BYTES])
{
    uint8_t tmp[MAOS_TOKEN_BYTES];
    if (!s || len != MAOS_TOKEN_TEXT_LEN || memcmp(s, MAOS_TOKEN_PREFIX, 5))
        return MAOS_EUNAUTHENTICATED;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 5; i < len; i++) {
        const char *p = memchr(b64, s[i], 64);
        if (!p || !s[i])
            return MAOS_EUNAUTHENTICATED;
        acc = (acc << 6) | (uint32_t)(p - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            tmp[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* 43 characters: 258 bits, the last 2 must be zero (canonical) */
    if (n != MAOS_TOKEN_BYTES || (acc & ((1u << bits) - 1)))
        return MAOS_EUNAUTHENTICATED;
    memcpy(raw, tmp, sizeof tmp);
    return 0;
}

int maos_token_name_check(maos_slice s)
{
    if (s.len < 1 || s.len > 64)
        return MAOS_EINVALID_NAME;
    for (uint32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return MAOS_EINVALID_NAME;
    }
    return 0;
}

/* ---- token_create's fields ------------------------------------------------------- */

static int keyis(maos_slice k, const char *s)
{
    size_t n = strlen(s);
    return k.len == n && !memcmp(k.ptr, s, n);
}

int maos_token_spec_decode(const void *frame, size_t len, maos_token_spec *out, char *why,
                           size_t whylen)
{
    maos_token_spec t;
    memset(&t, 0, sizeof t);
    t.uid = -1;
    maos_mpr r;
    uint32_t n;
    maos_mpr_init(&r, frame, len);
    if (maos_mpr_map(&r, &n)) {
        say(why, whylen, "a request must be a map");
        return MAOS_EBAD_REQUEST;
    }
    for (uint32_t i = 0; i < n; i++) {
        maos_slice k;
        if (maos_mpr_str(&r, &k)) {
            say(why, whylen, "request keys must be strings");
            return MAOS_EBAD_REQUEST;
        }
        if (keyis(k, "name")) {
            if (maos_mpr_str(&r, &t.name) || maos_token_name_check(t.name)) {
                say(why, whylen, "name must be 1..64 bytes of [A-Za-z0-9_.-]");
                return MAOS_EINVALID_NAME;
            }
        } else if (keyis(k, "scopes")) {
            uint32_t ns;
            if (maos_mpr_array(&r, &ns) || ns > MAOS_SCOPES_MAX) {
                say(why, whylen, "scopes must be an array of at most 64 strings");
                return MAOS_EBAD_REQUEST;
            }
            for (uint32_t j = 0; j < ns; j++) {
                maos_slice s;
                char w[200];
                if (maos_mpr_str(&r, &s)) {
                    say(why, whylen, "scopes must be strings");
                    return MAOS_EBAD_REQUEST;
                }
                if (maos_scope_parse(s.ptr, s.len, &t.scopes[j], w, sizeof w)) {
                    if (why && whylen) {
                        size_t m = (size_t)snprintf(why, whylen, "scope \"%.*s\": %s",
                                                    (int)(s.len > 80 ? 80 : s.len), s.ptr, w);
                        (void)m;
                    }
                    return MAOS_EBAD_REQUEST;
                }
            }
            t.n_scopes = ns;
        } else if (keyis(k, "expires_ms")) {
            if (maos_mpr_uint(&r, &t.expires_ms) ||
                t.expires_ms > 100ull * 365 * 86400 * 1000) {
                say(why, whylen, "expires_ms must be 0 (never) or at most 100 years of ms");
                return MAOS_EBAD_REQUEST;
            }
        } else if (keyis(k, "uid")) {
            uint64_t u;
            if (maos_mpr_uint(&r, &u) || u >= UINT32_MAX) {
                say(why, whylen, "uid must be a uid (an unsigned integer)");
                return MAOS_EBAD_REQUEST;
            }
            t.uid = (int64_t)u;
        } else if (keyis(k, "session")) {
            if (maos_mpr_str(&r, &t.session) || t.session.len > 48 ||
                maos_queue_name_check(t.session)) {
                say(why, whylen, "session must be 1..48 bytes of [A-Za-z0-9_.-]");
                return MAOS_EINVALID_NAME;
            }
        } else if (maos_mpr_skip(&r, NULL)) {
            say(why, whylen, "malformed value");
            return MAOS_EBAD_REQUEST;
        }
    }
    if (!t.name.len) {
        say(why, whylen, "token_create needs a name");
        return MAOS_EINVALID_NAME;
    }
    if (!t.n_scopes && !t.session.len) {
        say(why, whylen, "token_create needs scopes or a session");
        return MAOS_EBAD_REQUEST;
    }
    *out = t;
    return 0;
}
