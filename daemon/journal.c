/*
 * daemon/journal.c -- maosd's write-ahead journal (layout, laps and the
 * reasons in journal.h; docs/ARCHITECTURE.md "Durability: the journal").
 *
 * Invariants:
 *  - The file is never extended or truncated after creation: every write
 *    overwrites zero-filled or older bytes, so fdatasync writes data only.
 *  - off is where the next record goes; seq its sequence number; both
 *    only grow within a lap and go back to (DATA_OFF, next seq) at a new
 *    lap, after the superblock of the new lap is synced.
 *  - After a failed write or sync the journal is dead (err set): a failed
 *    fdatasync is never retried (the kernel may have dropped the pages).
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "keys.h"
#include "maos/errors.h"

#define SB_MAGIC "MAOSJRNL"
#define SB_VERSION 1u
#define SB_BODY 48
#define SB_CHECK 16
#define SB_STRIDE 4096
#define REC_CHECK 16
#define REC_FIXED 24 /* magic len lap seq: what the check covers first */
#define ZERO_CHUNK ((size_t)1 << 20)

_Static_assert(REC_FIXED + REC_CHECK == MAOSD_JOURNAL_REC_HEAD, "record head");
_Static_assert(crypto_shorthash_siphashx24_BYTES == REC_CHECK, "record check");
_Static_assert(sizeof MAOSD_JOURNAL_KEY - 1 == crypto_shorthash_siphashx24_KEYBYTES, "key");
_Static_assert(2 * SB_STRIDE == MAOSD_JOURNAL_DATA_OFF, "records after the slots");

struct maosd_journal {
    int fd;
    uint64_t size;
    uint64_t lap;
    uint64_t seq;       /* of the next record */
    uint64_t off;       /* of the next record */
    int err;
    char *path;
};

static uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* The check of an MJR2 record (journal.h): head is its first REC_FIXED
 * bytes. */
static void rec_check(unsigned char out[REC_CHECK], const void *head, const void *payload,
                      size_t len)
{
    static const unsigned char key[crypto_shorthash_siphashx24_KEYBYTES] = MAOSD_JOURNAL_KEY;
    unsigned char m[REC_FIXED + crypto_shorthash_siphashx24_BYTES];
    memcpy(m, head, REC_FIXED);
    crypto_shorthash_siphashx24(m + REC_FIXED, payload, len, key);
    crypto_shorthash_siphashx24(out, m, sizeof m, key);
}

/* Which record format the 4 bytes at p name: 2 (MJR2), 1 (MJR1) or 0. */
static int rec_version(const char *p)
{
    return !memcmp(p, MAOSD_JOURNAL_REC_MAGIC, 4) ? 2 : !memcmp(p, MAOSD_JOURNAL_REC_MAGIC_V1, 4);
}

/* BLAKE2b-128 of a || b: the superblocks' check, and MJR1 records'. */
static void check(unsigned char out[16], const void *a, size_t alen, const void *b,
                  size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, a, alen);
    if (blen)
        crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, 16);
}

/* ---- superblocks ----------------------------------------------------------------- */

static void sb_encode(char s[SB_BODY + SB_CHECK], uint64_t lap, uint64_t size,
                      uint64_t first_seq)
{
    memset(s, 0, SB_BODY + SB_CHECK);
    memcpy(s, SB_MAGIC, 8);
    maosd_put_u32(s + 8, SB_VERSION);
    maosd_put_u64(s + 16, lap);
    maosd_put_u64(s + 24, size);
    maosd_put_u64(s + 32, first_seq);
    check((unsigned char *)s + SB_BODY, s, SB_BODY, NULL, 0);
}

/* 1 when s is a valid superblock (fields out), else 0. */
static int sb_decode(const char s[SB_BODY + SB_CHECK], uint64_t *lap, uint64_t *size,
                     uint64_t *first_seq)
{
    unsigned char c[SB_CHECK];
    if (memcmp(s, SB_MAGIC, 8))
        return 0;
    check(c, s, SB_BODY, NULL, 0);
    if (sodium_memcmp(c, s + SB_BODY, SB_CHECK))
        return 0;
    if (maosd_get_u32(s + 8) != SB_VERSION)
        return 0;
    *lap = maosd_get_u64(s + 16);
    *size = maosd_get_u64(s + 24);
    *first_seq = maosd_get_u64(s + 32);
    return 1;
}

static int sb_write(maosd_journal *j, uint64_t lap, uint64_t first_seq)
{
    char s[SB_BODY + SB_CHECK];
    sb_encode(s, lap, j->size, first_seq);
    if (maosd_pwrite_all(j->fd, s, sizeof s, (off_t)((lap & 1) * SB_STRIDE)) ||
        fdatasync(j->fd)) {
        j->err = errno ? errno : EIO;
        return MAOS_EIO;
    }
    return 0;
}

/* ---- open ------------------------------------------------------------------------ */

/* A new zero-filled journal at lap 1, made under a temporary name and
 * renamed into place, so a crash never leaves a half-made one. */
static int create_file(const char *dir, const char *path, uint64_t size, char *err,
                       size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return MAOS_EIO;
    }
    char *zero = calloc(1, ZERO_CHUNK);
    int ok = zero != NULL;
    /* Real zeros, not fallocate: writing into unwritten extents would
     * make the first lap's syncs write metadata again. */
    for (uint64_t o = 0; ok && o < size; o += ZERO_CHUNK) {
        size_t n = size - o < ZERO_CHUNK ? (size_t)(size - o) : ZERO_CHUNK;
        ok = maosd_pwrite_all(fd, zero, n, (off_t)o) == 0;
    }
    free(zero);
    if (ok) {
        char s[SB_BODY + SB_CHECK];
        sb_encode(s, 1, size, 1);
        ok = maosd_pwrite_all(fd, s, sizeof s, SB_STRIDE) == 0 && fsync(fd) == 0;
    }
    int e = errno;
    close(fd);
    if (!ok || rename(tmp, path) || maosd_fsync_dir(dir)) {
        e = ok ? errno : e;
        unlink(tmp);
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(e ? e : EIO));
        return MAOS_EIO;
    }
    return 0;
}

int maosd_journal_open(const char *dir, uint64_t size, int create,
                       maosd_journal **out, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, MAOSD_JOURNAL_FILE);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (!create) {
            snprintf(err, errlen, "%s is missing", path);
            return MAOS_ENOT_FOUND;
        }
        int rc = create_file(dir, path, size, err, errlen);
        if (rc)
            return rc;
        fd = open(path, O_RDWR | O_CLOEXEC);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return MAOS_EIO;
    }
    struct stat sb;
    char s[2][SB_BODY + SB_CHECK];
    uint64_t lap[2] = {0}, sz[2] = {0}, first[2] = {0};
    int ok[2] = {0};
    if (fstat(fd, &sb)) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        close(fd);
        return MAOS_EIO;
    }
    for (int i = 0; i < 2; i++)
        ok[i] = maosd_pread_all(fd, s[i], sizeof s[i], (off_t)i * SB_STRIDE) == 0 &&
                sb_decode(s[i], &lap[i], &sz[i], &first[i]) && (lap[i] & 1) == (uint64_t)i &&
                sz[i] == (uint64_t)sb.st_size && sz[i] >= MAOSD_JOURNAL_MIN_BYTES;
    if (!ok[0] && !ok[1]) {
        snprintf(err, errlen, "%s: no valid superblock (both copies damaged, or not a "
                 "maos journal)", path);
        close(fd);
        return MAOS_ECORRUPT;
    }
    int cur = !ok[0] ? 1 : !ok[1] ? 0 : lap[1] > lap[0] ? 1 : 0;
    maosd_journal *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return MAOS_ENOMEM;
    }
    j->fd = fd;
    j->size = sz[cur];
    j->lap = lap[cur];
    j->seq = first[cur];
    j->off = MAOSD_JOURNAL_DATA_OFF;
    *out = j;
    return 0;
}

/* ---- replay ---------------------------------------------------------------------- */

/* Read the record at off.  1 and *len and *seq when it is a whole valid record
 * of lap (its payload in *buf, grown as needed); 0 when not; -1 on a read
 * error (errno).  *head_ok says whether the magic and lap matched. */
static int read_record(const maosd_journal *j, uint64_t off, uint64_t lap, char **buf,
                       size_t *cap, uint32_t *len, uint64_t *seq, int *head_ok)
{
    char h[MAOSD_JOURNAL_REC_HEAD];
    *head_ok = 0;
    if (off + sizeof h > j->size)
        return 0;
    if (maosd_pread_all(j->fd, h, sizeof h, (off_t)off))
        return errno ? -1 : 0;
    int version = rec_version(h);
    if (!version || maosd_get_u64(h + 8) != lap)
        return 0;
    *head_ok = 1;
    uint32_t n = maosd_get_u32(h + 4);
    if (n == 0 || off + sizeof h + n > j->size)
        return 0;
    if (n > *cap) {
        char *p = realloc(*buf, n);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        *buf = p;
        *cap = n;
    }
    if (maosd_pread_all(j->fd, *buf, n, (off_t)(off + sizeof h)))
        return errno ? -1 : 0;
    unsigned char c[REC_CHECK];
    if (version == 2)
        rec_check(c, h, *buf, n);
    else
        check(c, h, REC_FIXED, *buf, n);
    if (sodium_memcmp(c, h + REC_FIXED, REC_CHECK))
        return 0;
    *len = n;
    *seq = maosd_get_u64(h + 16);
    return 1;
}

/* Count the valid records of this lap with a seq past j->seq that lie
 * after j->off (sc->beyond, the first one's offset in *first).  0 or -1
 * on a read error (errno). */
static int find_beyond(const maosd_journal *j, char **buf, size_t *cap,
                       maosd_journal_scan *sc, uint64_t *first)
{
    enum { CHUNK = 1 << 20 };
    char *chunk = malloc(CHUNK + MAOSD_JOURNAL_REC_HEAD);
    char lap[8];
    if (!chunk) {
        errno = ENOMEM;
        return -1;
    }
    maosd_put_u64(lap, j->lap);
    uint64_t o = j->off + 8;
    while (o + MAOSD_JOURNAL_REC_HEAD <= j->size) {
        size_t n = j->size - o < CHUNK + MAOSD_JOURNAL_REC_HEAD
                       ? (size_t)(j->size - o) : CHUNK + MAOSD_JOURNAL_REC_HEAD;
        if (maosd_pread_all(j->fd, chunk, n, (off_t)o)) {
            free(chunk);
            return -1;
        }
        size_t i = 0, next = 0;
        for (; i + MAOSD_JOURNAL_REC_HEAD <= n && i < CHUNK; i += 8) {
            uint32_t len;
            uint64_t seq;
            int head_ok;
            if (i < next || !rec_version(chunk + i) || memcmp(chunk + i + 8, lap, 8))
                continue;
            int r = read_record(j, o + i, j->lap, buf, cap, &len, &seq, &head_ok);
            if (r < 0) {
                free(chunk);
                return -1;
            }
            if (r == 1 && seq > j->seq) {
                if (!sc->beyond)
                    *first = o + i;
                sc->beyond++;
                next = i + (size_t)pad8(MAOSD_JOURNAL_REC_HEAD + len);
            }
        }
        o += i;
    }
    free(chunk);
    return 0;
}

int maosd_journal_replay(maosd_journal *j, int salvage, maosd_journal_apply_fn fn,
                         void *arg, maosd_journal_scan *sc)
{
    char *buf = NULL;
    size_t cap = 0;
    uint32_t len;
    uint64_t seq;
    int head_ok, r, rc = 0;
    memset(sc, 0, sizeof *sc);
    sc->lap = j->lap;
    while ((r = read_record(j, j->off, j->lap, &buf, &cap, &len, &seq, &head_ok)) == 1 &&
           seq == j->seq) {
        if ((rc = fn(arg, buf, len)))
            goto out;
        sc->records++;
        j->seq++;
        j->off += pad8(MAOSD_JOURNAL_REC_HEAD + len);
    }
    if (r < 0)
        goto io;
    int stop_head_ok = head_ok;
    /* Past the stop: is there any valid record of this lap with a later
     * seq?  Records are 8-aligned, so an 8-byte step meets every one; the
     * file is read in big chunks and only a head with the magic and this
     * lap is read whole. */
    uint64_t first_beyond = 0;
    if (find_beyond(j, &buf, &cap, sc, &first_beyond))
        goto io;
    if (sc->beyond) {
        sc->damaged = 1;
        snprintf(sc->what, sizeof sc->what,
                 "%s: the record at offset %llu (lap %llu, seq %llu) is damaged and "
                 "%llu valid records follow from offset %llu", j->path,
                 (unsigned long long)j->off, (unsigned long long)j->lap,
                 (unsigned long long)j->seq, (unsigned long long)sc->beyond,
                 (unsigned long long)first_beyond);
        if (!salvage)
            rc = MAOS_ECORRUPT;
    } else if (stop_head_ok) {
        sc->torn = 1;
        snprintf(sc->what, sizeof sc->what,
                 "%s: the last record (offset %llu, lap %llu, seq %llu) was torn by "
                 "a crash mid-write and never acknowledged: dropped", j->path,
                 (unsigned long long)j->off, (unsigned long long)j->lap,
                 (unsigned long long)j->seq);
    }
    goto out;
io:
    j->err = errno ? errno : EIO;
    snprintf(sc->what, sizeof sc->what, "cannot read %s: %s", j->path,
             strerror(j->err));
    rc = j->err == ENOMEM ? MAOS_ENOMEM : MAOS_EIO;
out:
    free(buf);
    return rc;
}

/* ---- writes ---------------------------------------------------------------------- */

int maosd_journal_fits(const maosd_journal *j, size_t len)
{
    uint64_t need = pad8(MAOSD_JOURNAL_REC_HEAD + (uint64_t)len);
    if (len > UINT32_MAX || need > j->size - MAOSD_JOURNAL_DATA_OFF)
        return -1;
    return j->off + need <= j->size;
}

int maosd_journal_nearly_full(const maosd_journal *j)
{
    return j->off >= j->size - j->size / 8;
}

int maosd_journal_write(maosd_journal *j, const void *data, size_t len, int sync)
{
    if (j->err)
        return MAOS_EIO;
    if (maosd_journal_fits(j, len) != 1)
        return MAOS_EINTERNAL;
    char h[MAOSD_JOURNAL_REC_HEAD + 8] = {0};
    memcpy(h, MAOSD_JOURNAL_REC_MAGIC, 4);
    maosd_put_u32(h + 4, (uint32_t)len);
    maosd_put_u64(h + 8, j->lap);
    maosd_put_u64(h + 16, j->seq);
    rec_check((unsigned char *)h + REC_FIXED, h, data, len);
    size_t padn = (size_t)(pad8(len) - len);
    struct iovec iov[3] = {
        {h, MAOSD_JOURNAL_REC_HEAD}, {(void *)data, len}, {h + MAOSD_JOURNAL_REC_HEAD, padn}};
    size_t total = MAOSD_JOURNAL_REC_HEAD + len + padn;
    ssize_t w;
    do
        w = pwritev(j->fd, iov, padn ? 3 : 2, (off_t)j->off);
    while (w < 0 && errno == EINTR);
    /* A regular file writes all or fails; a short write is a full disk. */
    if (w < 0 || (size_t)w != total)
        j->err = w < 0 && errno ? errno : ENOSPC;
    if (!j->err && sync && fdatasync(j->fd))
        j->err = errno ? errno : EIO;
    if (j->err)
        return MAOS_EIO;
    j->off += total;
    j->seq++;
    return 0;
}

int maosd_journal_new_lap(maosd_journal *j)
{
    if (j->err)
        return MAOS_EIO;
    int rc = sb_write(j, j->lap + 1, j->seq);
    if (rc)
        return rc;
    j->lap++;
    j->off = MAOSD_JOURNAL_DATA_OFF;
    return 0;
}

int maosd_journal_errno(const maosd_journal *j)
{
    return j->err;
}

uint64_t maosd_journal_lap(const maosd_journal *j)
{
    return j->lap;
}

uint64_t maosd_journal_bytes(const maosd_journal *j)
{
    return j->size;
}

const char *maosd_journal_path(const maosd_journal *j)
{
    return j->path;
}

void maosd_journal_close(maosd_journal *j)
{
    if (!j)
        return;
    close(j->fd);
    free(j->path);
    free(j);
}
