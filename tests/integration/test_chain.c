/*
 * tests/integration/test_chain.c -- signed checkpoints (daemon/chain.c):
 *
 *  - maosd signs its head into $chain (every chain_every_events events and
 *    chain_interval_s seconds); `maosctl verify --pubkey` checks every
 *    checkpoint and says how far the log is signed; a wrong key, and a log
 *    with no checkpoint, fail;
 *  - a forged history (one event's data changed offline and the whole hash
 *    chain after it recomputed, so plain verify is fooled) is caught by
 *    the key at the first checkpoint after the change;
 *  - one flipped byte in a copied data directory is named by position;
 *  - chain_sign signs the hash of the stored record (equal to the hash the
 *    client computes), refuses position 0 and positions past the head;
 *  - a backup carries the key; a store without a key answers NOT_FOUND.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <sodium.h>

#include "harness.h"
#include "keys.h"
#include "maos/client.h"
#include "maos/proto.h"
#include "store.h"

#define DEADLINE_MS 60000

static maos_ctx *connect_ok(const mt_daemon *d)
{
    maos_ctx *c = maos_connect_timeout(d->sock, 10000);
    if (!c || c->err)
        MT_FAIL("connect %s: %s", d->sock, c ? c->errstr : "out of memory");
    return c;
}

/* A daemon that signs every 5 events (the harness turns checkpoints off;
 * these flags come after its own), by count only: the positions of the
 * checkpoints are then known (6, 12, ...). */
static mt_daemon *signing_daemon(const char *name)
{
    mt_daemon *d = mt_daemon_new(name, NULL);
    mt_daemon_add_arg(d, "--chain-every-events");
    mt_daemon_add_arg(d, "5");
    return d;
}

static void append_n(maos_ctx *c, const char *stream, int n)
{
    for (int i = 0; i < n; i++) {
        unsigned char data[] = {0x81, 0xa1, 'i', (unsigned char)(i & 0x7f)};
        maos_event_spec ev = {NULL, "t", data, sizeof data, NULL, 0};
        if (maos_append(c, stream, MAOS_EXPECT_ANY, &ev, 1, NULL))
            MT_FAIL("append: %s", c->errstr);
    }
}

/* Wait until $chain holds at least n checkpoints. */
static void wait_checkpoints(maos_ctx *c, size_t n)
{
    long long end = (mt_now_us() / 1000) + DEADLINE_MS;
    for (;;) {
        maos_page *pg;
        int rc = maos_read(c, "$chain", MAOS_FROM_START, 0, 1000, &pg);
        if (rc && c->err != MAOS_ENOT_FOUND)
            MT_FAIL("read $chain: %s", c->errstr);
        size_t got = rc ? 0 : pg->n;
        if (!rc)
            maos_page_free(pg);
        if (got >= n)
            return;
        if ((mt_now_us() / 1000) > end)
            MT_FAIL("%zu checkpoints after %d ms, want %zu", got, DEADLINE_MS, n);
        maos_ping(c);
    }
}

/* The daemon's public key into <testdir>/NAME. */
static void save_pubkey(const mt_daemon *d, const char *path)
{
    mt_run r;
    MT_EQ_INT(mt_ctl(d, &r, "pubkey", NULL), 0);
    MT_EQ_INT(strlen(r.out), 65);
    mt_write_file(path, r.out, r.out_len);
    mt_run_free(&r);
}

/* maosctl ARGS... against a data directory (a private read-only maosd). */
static int ctl_dir(mt_run *r, const char *dir, const char *a1, const char *a2,
                   const char *a3)
{
    const char *argv[] = {mt_maosctl_bin(), "--data-dir", dir, a1, a2, a3, NULL};
    return mt_spawn(argv, NULL, NULL, 0, 60000, r);
}

static void expect_bad(mt_run *r, int status, const char *want)
{
    if (status != 1 || !strstr(r->out, want))
        MT_FAIL("status %d, out \"%s\", err \"%s\"; want 1 and \"%s\"", status, r->out,
                r->err, want);
}

static void test_signed(void **state)
{
    (void)state;
    mt_daemon *d = signing_daemon("d");
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    char key[512], bad[512];
    snprintf(key, sizeof key, "%s/maos.pub", mt_test_dir());
    snprintf(bad, sizeof bad, "%s/other.pub", mt_test_dir());
    append_n(c, "s-1", 12);
    wait_checkpoints(c, 2);
    save_pubkey(d, key);
    mt_run r;
    int st = mt_ctl(d, &r, "verify", "--pubkey", key, NULL);
    if (st != 0 || !strstr(r.out, "OK: ") || !strstr(r.out, "signed: "))
        MT_FAIL("verify --pubkey: %d %s %s", st, r.out, r.err);
    mt_run_free(&r);
    /* another key: the first checkpoint is refused */
    uint8_t pk[32], sk[64];
    char hex[65];
    crypto_sign_keypair(pk, sk);
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    mt_write_file(bad, hex, 64);
    expect_bad(&r, mt_ctl(d, &r, "verify", "--pubkey", bad, NULL), "does not verify");
    mt_run_free(&r);
    /* a file that is no key: a usage error */
    mt_write_file(bad, "xyz\n", 4);
    MT_EQ_INT(mt_ctl(d, &r, "verify", "--pubkey", bad, NULL), 2);
    mt_run_free(&r);

    /* chain_sign: the stored record's hash, signed */
    uint8_t hash[32], sig[64], mine[32], msg[MAOS_EXPORT_MSG_LEN], got[32];
    uint64_t shead = 0;
    maos_page *pg;
    MT_EQ_ERR(maos_read_all(c, NULL, 3, 0, 1, &pg), 0);
    crypto_generichash(mine, 32, pg->events[0].raw, pg->events[0].raw_len, NULL, 0);
    maos_page_free(pg);
    MT_EQ_ERR(maos_chain_sign(c, 3, hash, sig, &shead), 0);
    MT_TRUE(!memcmp(hash, mine, 32));
    MT_CMP_INT(shead, >=, 12);
    MT_EQ_ERR(maos_pubkey(c, got), 0);
    maos_export_message(3, hash, shead, msg);
    MT_EQ_INT(crypto_sign_verify_detached(sig, msg, sizeof msg, got), 0);
    /* not a checkpoint's signature: another domain */
    uint8_t cmsg[MAOS_CHAIN_MSG_LEN];
    maos_chain_message(3, hash, cmsg);
    MT_TRUE(crypto_sign_verify_detached(sig, cmsg, sizeof cmsg, got) != 0);
    MT_EQ_ERR(maos_chain_sign(c, 0, hash, sig, NULL), MAOS_EINVALID_ARG);
    MT_EQ_ERR(maos_chain_sign(c, 1000000, hash, sig, NULL), MAOS_ENOT_FOUND);
    maos_free(c);

    /* by time only: one second after a write, a checkpoint */
    mt_daemon *t = mt_daemon_new("t", NULL);
    mt_daemon_add_arg(t, "--chain-interval-s");
    mt_daemon_add_arg(t, "1");
    mt_daemon_up(t);
    c = connect_ok(t);
    append_n(c, "s-2", 2);
    wait_checkpoints(c, 1);
    maos_free(c);
    /* a daemon that has not signed anything (the harness's flags: no
     * checkpoints): --pubkey proves nothing */
    mt_daemon *e = mt_daemon_new("e", NULL);
    mt_daemon_up(e);
    c = connect_ok(e);
    append_n(c, "s-1", 3);
    maos_free(c);
    snprintf(bad, sizeof bad, "%s/e.pub", mt_test_dir());
    save_pubkey(e, bad);
    expect_bad(&r, mt_ctl(e, &r, "verify", "--pubkey", bad, NULL), "no signed checkpoint");
    mt_run_free(&r);
}

/* Offline: change the data of the event at `at` and recompute every later
 * record's prev (what a forger with the files would do), and the meta
 * head.  The checkpoints are left as they are (only their prev moves):
 * a forger cannot sign. */
static void forge(const char *data_dir, uint64_t at)
{
    maosd_store_opts o = {.dir = data_dir};
    maosd_store *st;
    char err[512];
    if (maosd_store_open(&o, &st, NULL, err, sizeof err))
        MT_FAIL("open %s: %s", data_dir, err);
    maosd_batch *b = maosd_batch_new(st);
    uint8_t prev[32];
    int started = 0;
    for (uint64_t pos = at;; pos++) {
        char k[8], *rec;
        size_t len;
        int rc = maosd_store_get_alloc(st, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos), &rec,
                                       &len);
        if (rc == MAOS_ENOT_FOUND)
            break;
        MT_EQ_ERR(rc, 0);
        maos_record r;
        MT_EQ_ERR(maos_record_decode(rec, len, &r), 0);
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        static const char forged[] = "\x81\xa6" "forged" "\xc3";
        maos_slice data = pos == at ? (maos_slice){forged, sizeof forged - 1} : r.data;
        MT_EQ_ERR(maos_enc_record(&pk, r.position, r.time, r.version, r.stream, r.type,
                                  (const uint8_t *)r.id.ptr,
                                  started ? prev : (const uint8_t *)r.prev.ptr, data, r.meta),
                  0);
        started = 1;
        crypto_generichash(prev, 32, (const unsigned char *)sb.data, sb.size, NULL, 0);
        maosd_batch_put(b, MAOSD_CF_EVENTS, k, 8, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        free(rec);
        char v[40];
        maosd_put_u64(v, pos);
        memcpy(v + 8, prev, 32);
        maosd_batch_put(b, MAOSD_CF_META, MAOSD_META_LOG_HEAD, strlen(MAOSD_META_LOG_HEAD), v,
                        40);
    }
    MT_EQ_ERR(maosd_store_write(st, b), 0);
    maosd_batch_free(b);
    maosd_store_close(st);
}

static void test_forged_and_flipped(void **state)
{
    (void)state;
    mt_daemon *d = signing_daemon("d");
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "f-1", 12);
    wait_checkpoints(c, 2);
    /* then enough events that the table file has many blocks: the flipped
     * byte below lands in one in the middle, not in the last event's */
    static unsigned char big_data[300];
    big_data[0] = 0xc5; /* bin 16 of 297 bytes */
    big_data[1] = 1;
    big_data[2] = 41;
    for (int i = 0; i < 1500; i++) {
        randombytes_buf(big_data + 3, sizeof big_data - 3);
        maos_event_spec ev = {NULL, "big", big_data, sizeof big_data, NULL, 0};
        if (maos_append(c, "f-2", MAOS_EXPECT_ANY, &ev, 1, NULL))
            MT_FAIL("append: %s", c->errstr);
    }
    maos_free(c);
    char key[512], copy[600];
    snprintf(key, sizeof key, "%s/maos.pub", mt_test_dir());
    save_pubkey(d, key);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    /* a copy with one byte flipped in the largest table file */
    snprintf(copy, sizeof copy, "%s/flipped", mt_test_dir());
    mt_run r;
    const char *cp[] = {"/bin/cp", "-a", d->data, copy, NULL};
    MT_EQ_INT(mt_spawn(cp, NULL, NULL, 0, 30000, &r), 0);
    mt_run_free(&r);
    DIR *dir = opendir(copy);
    MT_TRUE(dir != NULL);
    char big[1200] = "";
    off_t most = 0;
    for (struct dirent *de; (de = readdir(dir));) {
        char p[1200];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", copy, de->d_name);
        if (strstr(de->d_name, ".sst") && !stat(p, &sb) && sb.st_size > most) {
            most = sb.st_size;
            snprintf(big, sizeof big, "%s", p);
        }
    }
    closedir(dir);
    MT_TRUE(big[0] != 0);
    int fd = open(big, O_RDWR);
    MT_TRUE(fd >= 0);
    unsigned char byte;
    MT_EQ_INT(pread(fd, &byte, 1, most / 3), 1);
    byte ^= 0x40;
    MT_EQ_INT(pwrite(fd, &byte, 1, most / 3), 1);
    close(fd);
    int st = ctl_dir(&r, copy, "verify", "--pubkey", key);
    if (st != 1 || !strstr(r.out, "BAD: position "))
        MT_FAIL("verify of a flipped copy: %d \"%s\" \"%s\"", st, r.out, r.err);
    mt_run_free(&r);

    /* the forged history: plain verify is fooled, the key is not */
    forge(d->data, 3);
    st = ctl_dir(&r, d->data, "verify", NULL, NULL);
    if (st != 0 || !strstr(r.out, "OK: "))
        MT_FAIL("plain verify of a consistent forgery: %d \"%s\" \"%s\"", st, r.out, r.err);
    mt_run_free(&r);
    st = ctl_dir(&r, d->data, "verify", "--pubkey", key);
    /* the first checkpoint after position 3 is at 6 (every 5 events) */
    expect_bad(&r, st, "BAD: position 6: a checkpoint of another position or hash");
    mt_run_free(&r);
}

/* An event taken out by making its record a stub offline (hash kept, so
 * the chain still links): only retention makes stubs, below its stream's
 * first version, so verify names it. */
static void test_stub_forged(void **state)
{
    (void)state;
    mt_daemon *d = mt_daemon_new(NULL, NULL);
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "st-1", 5);
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(d), 0);
    maosd_store_opts o = {.dir = d->data};
    maosd_store *st;
    char err[512], k[8], *rec;
    size_t len;
    if (maosd_store_open(&o, &st, NULL, err, sizeof err))
        MT_FAIL("open: %s", err);
    MT_EQ_ERR(maosd_store_get_alloc(st, MAOSD_CF_EVENTS, k, maosd_key_event(k, 3), &rec, &len),
              0);
    maos_record r;
    MT_EQ_ERR(maos_record_decode(rec, len, &r), 0);
    uint8_t hash[32];
    crypto_generichash(hash, 32, (const unsigned char *)rec, len, NULL, 0);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    MT_EQ_ERR(maos_enc_stub(&pk, &r, hash), 0);
    maosd_batch *b = maosd_batch_new(st);
    maosd_batch_put(b, MAOSD_CF_EVENTS, k, 8, sb.data, sb.size);
    MT_EQ_ERR(maosd_store_write(st, b), 0);
    maosd_batch_free(b);
    msgpack_sbuffer_destroy(&sb);
    free(rec);
    maosd_store_close(st);
    mt_run run;
    expect_bad(&run, ctl_dir(&run, d->data, "verify", NULL, NULL),
               "BAD: position 3: a removed event (version 2) that its stream still holds");
    mt_run_free(&run);
}

static void test_backup_and_no_key(void **state)
{
    (void)state;
    mt_daemon *d = signing_daemon("d");
    mt_daemon_up(d);
    maos_ctx *c = connect_ok(d);
    append_n(c, "b-1", 6);
    uint8_t k1[32], k2[32];
    MT_EQ_ERR(maos_pubkey(c, k1), 0);
    char target[256];
    snprintf(target, sizeof target, "%.200s/copy", mt_test_dir());
    MT_EQ_ERR(maos_backup(c, target, NULL), 0);
    maos_free(c);
    char keyfile[600];
    snprintf(keyfile, sizeof keyfile, "%s/maos.key", target);
    struct stat sb;
    MT_EQ_INT(stat(keyfile, &sb), 0);
    MT_EQ_INT(sb.st_mode & 077, 0);
    mt_daemon *b = mt_daemon_new("b", NULL);
    snprintf(b->data, sizeof b->data, "%s", target);
    mt_daemon_up(b);
    c = connect_ok(b);
    MT_EQ_ERR(maos_pubkey(c, k2), 0);
    MT_TRUE(!memcmp(k1, k2, 32)); /* the copy signs as the original */
    maos_free(c);
    MT_EQ_INT(mt_daemon_stop(b), 0);
    MT_EQ_INT(mt_daemon_stop(d), 0);

    /* a store without a key (read-only: none is made) */
    snprintf(keyfile, sizeof keyfile, "%s/maos.key", d->data);
    MT_EQ_INT(unlink(keyfile), 0);
    mt_run r;
    int st = ctl_dir(&r, d->data, "pubkey", NULL, NULL);
    if (st != 1 || !strstr(r.err, "NOT_FOUND"))
        MT_FAIL("pubkey without a key: %d \"%s\" \"%s\"", st, r.out, r.err);
    mt_run_free(&r);
    MT_EQ_INT(stat(keyfile, &sb), -1); /* read-only made none */
    /* a normal start makes a new one */
    mt_daemon_up(d);
    MT_EQ_INT(stat(keyfile, &sb), 0);
    MT_EQ_INT(sb.st_size, 64);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed),
        cmocka_unit_test(test_forged_and_flipped),
        cmocka_unit_test(test_stub_forged),
        cmocka_unit_test(test_backup_and_no_key),
    };
    return mt_main(argc, argv, tests, sizeof tests / sizeof tests[0], 300);
}
