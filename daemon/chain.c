/*
 * daemon/chain.c -- signed checkpoints (docs/ARCHITECTURE.md "Signed
 * checkpoints"; the wire is PROTOCOL.md "Signed checkpoints").
 *
 * The hash chain (every record's prev) shows that nothing before a record
 * was changed, but anyone who can write the files can rewrite the whole
 * chain.  So maosd holds an ed25519 key (libsodium; `maos.key` in the
 * data directory, 0600, made at the first start) and signs its log head:
 *  - every chain_every_events events or chain_interval_s seconds (when
 *    anything was written since), a write kind of maosd's own (CHAIN)
 *    appends to stream $chain an event `checkpoint` {position, hash,
 *    signature}: the position and hash are the group's head as staged
 *    just before it, so the checkpoint is at position + 1 and its prev is
 *    that hash;
 *  - op chain_sign signs the hash of any stored record on request (an
 *    export signs its last event so), never a hash it was given;
 *  - op pubkey gives the public key, for `maosctl verify --pubkey`.
 * The signed message is maos_chain_message (proto): a fixed prefix, the
 * position and the hash.
 *
 * Threads: the key is loaded before the commit thread starts and never
 * changes; the commit thread (stage) and the readers (chain_sign) only
 * read it.  It is kept here, not in the server struct, because a reader
 * job may touch only the job and the store: a pointer that is set once
 * before any thread starts is the one exception.  Timer, listener and
 * ops run on the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chain.h"
#include "dispatch.h"
#include "fileio.h"
#include "keys.h"
#include "retention.h"

/* ---- the key ------------------------------------------------------------------------- */

static uint8_t *sign_sk;     /* sodium_malloc, read-only once loaded; NULL: none */
static uint8_t sign_pk[crypto_sign_PUBLICKEYBYTES];

static int read_key(const char *path, uint8_t *sk)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    ssize_t n = fstat(fd, &st) ? -1 : read(fd, sk, crypto_sign_SECRETKEYBYTES + 1);
    close(fd);
    if (n != crypto_sign_SECRETKEYBYTES) {
        maosd_log(MAOSD_LOG_ERROR, "%s is not a signing key (%zd bytes, want %d): "
                  "move it away to make a new one (later checkpoints are then signed "
                  "by the new key)", path, n, crypto_sign_SECRETKEYBYTES);
        return -EINVAL;
    }
    if (st.st_mode & 077)
        maosd_log(MAOSD_LOG_WARN, "%s is readable by others (mode %03o): chmod 600 it",
                  path, (unsigned)(st.st_mode & 0777));
    return 0;
}

static int make_key(const char *dir, const char *path, uint8_t *sk, uint8_t *pk)
{
    crypto_sign_keypair(pk, sk);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = maosd_pwrite_all(fd, sk, crypto_sign_SECRETKEYBYTES, 0) || fsync(fd) ? -errno : 0;
    close(fd);
    if (!rc && maosd_fsync_dir(dir))
        rc = -errno;
    if (rc)
        unlink(path);
    return rc;
}

int maosd_chain_load(maosd_server *srv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", srv->cfg->data_dir, MAOSD_KEY_FILE);
    uint8_t *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
    if (!sk) {
        maosd_log(MAOSD_LOG_ERROR, "out of memory for the signing key");
        return -1;
    }
    int rc = read_key(path, sk);
    if (rc == 0) {
        crypto_sign_ed25519_sk_to_pk(sign_pk, sk);
    } else if (rc == -ENOENT && srv->cfg->read_only) {
        sodium_free(sk);
        return 0; /* nothing is written: no key, no signatures */
    } else if (rc == -ENOENT) {
        rc = make_key(srv->cfg->data_dir, path, sk, sign_pk);
        if (rc) {
            maosd_log(MAOSD_LOG_ERROR, "cannot make the signing key %s: %s", path,
                      strerror(-rc));
        } else {
            char hex[65];
            sodium_bin2hex(hex, sizeof hex, sign_pk, 32);
            maosd_logf(MAOSD_LOG_INFO, "made the signing key %s (public key %s)", path, hex);
        }
    } else if (rc != -EINVAL) {
        maosd_log(MAOSD_LOG_ERROR, "cannot read the signing key %s: %s", path, strerror(-rc));
    }
    if (rc) {
        sodium_free(sk);
        return -1;
    }
    sodium_mprotect_readonly(sk);
    sign_sk = sk;
    return 0;
}

void maosd_chain_free(void)
{
    if (sign_sk)
        sodium_free(sign_sk);
    sign_sk = NULL;
}

/* ---- the checkpoint (write kind CHAIN, commit thread) -------------------------------- */

int maosd_stage_chain(maosd_wctx *x, maosd_wreq *w, uint32_t i)
{
    (void)i;
    if (!sign_sk || x->st->log_pos == 0)
        return 0;
    uint64_t pos = x->st->log_pos, at;
    uint8_t msg[MAOS_CHAIN_MSG_LEN], sig[crypto_sign_BYTES];
    maos_chain_message(pos, x->st->log_hash, msg);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sign_sk);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, 3) || msgpack_pack_str_with_body(&pk, "position", 8) ||
             msgpack_pack_uint64(&pk, pos) || msgpack_pack_str_with_body(&pk, "hash", 4) ||
             msgpack_pack_bin_with_body(&pk, x->st->log_hash, MAOS_HASH_BYTES) ||
             msgpack_pack_str_with_body(&pk, "signature", 9) ||
             msgpack_pack_bin_with_body(&pk, sig, sizeof sig)
                 ? MAOS_ENOMEM
                 : 0;
    if (!rc)
        rc = maosd_wx_record(x, w, (maos_slice){"$chain", 6}, (maos_slice){"checkpoint", 10},
                             (maos_slice){sb.data, (uint32_t)sb.size}, &at);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* ---- when: the timer and the listener (loop) ----------------------------------------- */

static void submit(maosd_server *srv);

static void on_timer(uv_timer_t *t)
{
    maosd_server *srv = t->data;
    if (maosd_commit_head(srv->commit) > srv->chain_signed)
        submit(srv);
}

static void chain_done(maosd_server *srv, maosd_wreq *w)
{
    srv->chain_pending = 0;
    if (w->code)
        maosd_log(MAOSD_LOG_ERROR, "signed checkpoint: %s: %s", maos_err_name(w->code),
                  w->why ? w->why : "-");
    else if (w->n_recs)
        srv->chain_signed = w->last_pos;
    maosd_wreq_free(w);
}

static void submit(maosd_server *srv)
{
    if (srv->chain_pending || !srv->chain_on || srv->stopping || !sign_sk ||
        maosd_store_state(srv->store) != MAOSD_STORE_OK)
        return;
    maosd_wreq *w = maosd_own_item(MAOSD_ITEM_CHAIN, 0);
    if (!w)
        return; /* the next tick tries again */
    w->done = chain_done;
    srv->chain_pending = 1;
    maosd_submit(srv, w);
}

static void on_commit(maosd_server *srv, void *arg, maosd_wreq *list)
{
    (void)arg;
    (void)list;
    uint32_t every = srv->cfg->chain_every_events; /* 0: not by count (reloadable) */
    if (srv->chain_on && every &&
        maosd_commit_head(srv->commit) - srv->chain_signed >= every)
        submit(srv);
}

int maosd_chain_init(maosd_server *srv)
{
    uv_timer_init(srv->loop, &srv->chain_timer);
    srv->chain_timer.data = srv;
    srv->chain_timer_on = 1;
    return maosd_commit_listen(srv->commit, on_commit, NULL);
}

void maosd_chain_start(maosd_server *srv)
{
    uint64_t ms = (uint64_t)srv->cfg->chain_interval_s * 1000;
    srv->chain_signed = maosd_commit_head(srv->commit);
    srv->chain_on = sign_sk != NULL;
    if (srv->chain_on && ms) { /* 0: not by time */
        uv_timer_start(&srv->chain_timer, on_timer, ms, ms);
        uv_unref((uv_handle_t *)&srv->chain_timer);
    }
}

void maosd_chain_close(maosd_server *srv)
{
    srv->chain_on = 0;
    if (srv->chain_timer_on) {
        srv->chain_timer_on = 0;
        uv_timer_stop(&srv->chain_timer);
        uv_close((uv_handle_t *)&srv->chain_timer, NULL);
    }
}

/* ---- ops --------------------------------------------------------------------------------- */

static int no_key(maosd_call *call)
{
    snprintf(call->why, sizeof(call->why), "this maosd has no signing key (%s/%s: a store "
             "opened --read-only before its first normal start)", call->srv->cfg->data_dir,
             MAOSD_KEY_FILE);
    return MAOS_ENOT_FOUND;
}

int maosd_op_pubkey(maosd_call *call)
{
    if (!sign_sk)
        return no_key(call);
    msgpack_packer pk;
    size_t mark = maosd_reply_begin(call->conn, &pk);
    maos_enc_reply_pubkey(&pk, call->req->rid, sign_pk);
    maosd_reply_end(call->conn, mark);
    return 0;
}

/* A reader thread: the record at the position, its hash, signed. */
static void run_chain_sign(maosd_rjob *j)
{
    char k[8], *rec = NULL;
    size_t len;
    uint64_t pos = j->req.position;
    int rc = maosd_store_get_alloc(j->store, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos),
                                   &rec, &len);
    if (rc == MAOS_ENOT_FOUND) {
        j->rc = rc;
        snprintf(j->why, sizeof(j->why), "no event at position %llu",
                 (unsigned long long)pos);
        return;
    }
    if (rc) {
        maosd_rjob_fail(j, j->out.size, rc);
        return;
    }
    uint8_t hash[MAOS_HASH_BYTES], msg[MAOS_EXPORT_MSG_LEN], sig[crypto_sign_BYTES];
    maosd_record_hash(rec, len, hash);
    free(rec);
    /* the log's head now (meta log_head): what the export was cut from */
    char hv[8 + MAOS_HASH_BYTES];
    size_t hl;
    uint64_t head = pos;
    if (!maosd_store_get(j->store, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                         strlen(MAOSD_META_LOG_HEAD), hv, sizeof hv, &hl) && hl >= 8 &&
        maosd_get_u64(hv) > pos)
        head = maosd_get_u64(hv);
    maos_export_message(pos, hash, head, msg);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sign_sk);
    msgpack_packer pk;
    size_t mark = maosd_rjob_frame_begin(j, &pk);
    if (maos_enc_reply_chain_sign(&pk, j->req.rid, pos, hash, head, sig) ||
        maosd_rjob_frame_end(j, mark))
        maosd_rjob_fail(j, mark, MAOS_ENOMEM);
}

int maosd_op_chain_sign(maosd_call *call)
{
    if (!sign_sk)
        return no_key(call);
    return maosd_rjob_call(call, run_chain_sign);
}
