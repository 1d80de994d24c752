/*
 * daemon/datadir.c -- the identity file MAOS and the durable-head record
 * MAOS-HEAD (layouts and reasons in datadir.h).
 *
 * Invariants:
 *  - Both files are only ever replaced whole by rename of a synced temp
 *    file, except MAOS-HEAD's slots, which are overwritten in place one
 *    at a time: a torn slot write leaves the other slot valid.
 *  - A slot is trusted only when its magic and its BLAKE2b-128 check
 *    match; the larger seq of the valid slots wins.
 *  - Nothing here logs: errors come back as MAOS_E* plus a message that
 *    names the file.
 */
#include "datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fileio.h"
#include "keys.h"
#include "maos/errors.h"
#include "maos/proto.h"

#define SLOT_MAGIC "MAOSHD01"
#define SLOT_BODY 64
#define SLOT_CHECK 16
#define SLOT_BYTES (SLOT_BODY + SLOT_CHECK)
#define SLOT_STRIDE 512 /* one slot per sector */
#define HEAD_FILE_BYTES (2 * SLOT_STRIDE)

struct maosd_headfile {
    int fd;
    uint64_t seq; /* of the current slot */
    int err;      /* errno of the last failed write */
};

static char *join(const char *dir, const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", dir, name) < 0)
        return NULL;
    return p;
}

/* ---- classification ------------------------------------------------------ */

int maosd_dir_classify(const char *dir, maosd_dir_kind *kind, char *err,
                       size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            *kind = MAOSD_DIR_NEW;
            return 0;
        }
        snprintf(err, errlen, "cannot read data directory %s: %s", dir,
                 strerror(errno));
        return MAOS_EIO;
    }
    int entries = 0, identity = 0, current = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        entries++;
        if (!strcmp(e->d_name, MAOSD_IDENTITY_FILE))
            identity = 1;
        else if (!strcmp(e->d_name, "CURRENT"))
            current = 1;
    }
    closedir(d);
    *kind = identity ? MAOSD_DIR_STORE
          : current  ? MAOSD_DIR_LEGACY
          : entries  ? MAOSD_DIR_FOREIGN
                     : MAOSD_DIR_NEW;
    return 0;
}

/* ---- durable small files ---------------------------------------------------- */

/* Replace dir/name with bytes, durably: temp file, fsync, rename, fsync
 * of the directory.  Returns an open O_RDWR fd on the new file when
 * keep_fd, else 0; -1 with errno on failure (the temp file is removed). */
static int replace_file(const char *dir, const char *name, const void *bytes,
                        size_t len, int keep_fd)
{
    char *path = join(dir, name), *tmp = NULL;
    if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
        free(path);
        errno = ENOMEM;
        return -1;
    }
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = -1, e = 0;
    if (fd >= 0 && maosd_pwrite_all(fd, bytes, len, 0) == 0 && fsync(fd) == 0 &&
        rename(tmp, path) == 0 && maosd_fsync_dir(dir) == 0)
        rc = 0;
    if (rc)
        e = errno;
    if (rc && fd >= 0)
        unlink(tmp);
    if (fd >= 0 && (rc || !keep_fd))
        close(fd);
    free(tmp);
    free(path);
    if (rc) {
        errno = e;
        return -1;
    }
    return keep_fd ? fd : 0;
}

/* ---- MAOS ---------------------------------------------------------------------- */

int maosd_identity_read(const char *dir, maosd_identity *id, char *err,
                        size_t errlen)
{
    char *path = join(dir, MAOSD_IDENTITY_FILE);
    if (!path)
        return MAOS_ENOMEM;
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        if (e == ENOENT) {
            free(path);
            return MAOS_ENOT_FOUND;
        }
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        free(path);
        return MAOS_EIO;
    }
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    maosd_identity v = {0};
    long long created = 0;
    char idtxt[64] = "";
    uint8_t raw[16];
    if (sscanf(buf, "maos-store %u\nid %63s\ncreated %lld\n", &v.format, idtxt,
               &created) != 3 ||
        maos_uuid_parse(idtxt, strlen(idtxt), raw) != 0) {
        snprintf(err, errlen, "%s is malformed (not written by maosd, or damaged)",
                 path);
        free(path);
        return MAOS_EIO;
    }
    if (v.format != MAOSD_FORMAT_VERSION) {
        snprintf(err, errlen, "%s says store format %u; this maosd reads format %d%s",
                 path, v.format, MAOSD_FORMAT_VERSION,
                 v.format > MAOSD_FORMAT_VERSION
                     ? ": the store was written by a newer maosd; run that maosd or a "
                       "newer one (nothing was changed)"
                     : "");
        free(path);
        return MAOS_EIO;
    }
    memcpy(v.id, idtxt, 36);
    v.id[36] = 0;
    v.created = created;
    *id = v;
    free(path);
    return 0;
}

int maosd_identity_create(const char *dir, maosd_identity *id, char *err,
                          size_t errlen)
{
    uint8_t raw[16];
    randombytes_buf(raw, sizeof(raw));
    raw[6] = (uint8_t)(0x40 | (raw[6] & 0x0f)); /* UUIDv4 */
    raw[8] = (uint8_t)(0x80 | (raw[8] & 0x3f));
    maosd_identity v = {.format = MAOSD_FORMAT_VERSION, .created = (int64_t)time(NULL)};
    maos_uuid_format(raw, v.id);
    char text[128];
    int n = snprintf(text, sizeof(text), "maos-store %u\nid %s\ncreated %lld\n",
                     v.format, v.id, (long long)v.created);
    if (replace_file(dir, MAOSD_IDENTITY_FILE, text, (size_t)n, 0)) {
        snprintf(err, errlen, "cannot write %s/%s: %s", dir, MAOSD_IDENTITY_FILE,
                 strerror(errno));
        return MAOS_EIO;
    }
    *id = v;
    return 0;
}

/* ---- MAOS-HEAD ----------------------------------------------------------------- */

static void slot_encode(char s[SLOT_BYTES], uint64_t seq, const maosd_head *h)
{
    memset(s, 0, SLOT_BYTES);
    memcpy(s, SLOT_MAGIC, 8);
    maosd_put_u64(s + 8, seq);
    maosd_put_u64(s + 16, h->position);
    memcpy(s + 24, h->hash, 32);
    maosd_put_u32(s + 56, h->sync ? 1u : 0u);
    crypto_generichash((unsigned char *)s + SLOT_BODY, SLOT_CHECK,
                       (const unsigned char *)s, SLOT_BODY, NULL, 0);
}

/* 1 when the slot is valid (seq and h filled), else 0. */
static int slot_decode(const char s[SLOT_BYTES], uint64_t *seq, maosd_head *h)
{
    unsigned char check[SLOT_CHECK];
    if (memcmp(s, SLOT_MAGIC, 8))
        return 0;
    crypto_generichash(check, SLOT_CHECK, (const unsigned char *)s, SLOT_BODY, NULL, 0);
    if (sodium_memcmp(check, s + SLOT_BODY, SLOT_CHECK))
        return 0;
    *seq = maosd_get_u64(s + 8);
    h->position = maosd_get_u64(s + 16);
    memcpy(h->hash, s + 24, 32);
    h->sync = (int)(maosd_get_u32(s + 56) & 1u);
    return 1;
}

int maosd_headfile_create(const char *dir, const maosd_head *h,
                          maosd_headfile **out, char *err, size_t errlen)
{
    char bytes[HEAD_FILE_BYTES] = {0};
    slot_encode(bytes, 1, h);
    slot_encode(bytes + SLOT_STRIDE, 0, h);
    maosd_headfile *hf = calloc(1, sizeof(*hf));
    if (!hf)
        return MAOS_ENOMEM;
    hf->fd = replace_file(dir, MAOSD_HEAD_FILE, bytes, sizeof(bytes), 1);
    if (hf->fd < 0) {
        snprintf(err, errlen, "cannot write %s/%s: %s", dir, MAOSD_HEAD_FILE,
                 strerror(errno));
        free(hf);
        return MAOS_EIO;
    }
    hf->seq = 1;
    *out = hf;
    return 0;
}

int maosd_headfile_open(const char *dir, maosd_headfile **out, maosd_head *h,
                        char *err, size_t errlen)
{
    char *path = join(dir, MAOSD_HEAD_FILE);
    if (!path)
        return MAOS_ENOMEM;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT)
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        free(path);
        return e == ENOENT ? MAOS_ENOT_FOUND : MAOS_EIO;
    }
    char bytes[HEAD_FILE_BYTES];
    ssize_t n;
    do
        n = pread(fd, bytes, sizeof(bytes), 0);
    while (n < 0 && errno == EINTR);
    uint64_t seq[2] = {0, 0};
    maosd_head hd[2];
    int ok[2] = {0, 0};
    for (int i = 0; i < 2 && n >= 0; i++)
        if ((size_t)n >= (size_t)i * SLOT_STRIDE + SLOT_BYTES)
            ok[i] = slot_decode(bytes + i * SLOT_STRIDE, &seq[i], &hd[i]);
    if (!ok[0] && !ok[1]) {
        if (n < 0)
            snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        else
            snprintf(err, errlen, "%s is damaged: neither of its two records "
                     "is valid", path);
        close(fd);
        free(path);
        return MAOS_EIO;
    }
    int cur = !ok[0] ? 1 : !ok[1] ? 0 : seq[1] > seq[0] ? 1 : 0;
    maosd_headfile *hf = calloc(1, sizeof(*hf));
    if (!hf) {
        close(fd);
        free(path);
        return MAOS_ENOMEM;
    }
    hf->fd = fd;
    hf->seq = seq[cur];
    *h = hd[cur];
    *out = hf;
    free(path);
    return 0;
}

int maosd_headfile_write(maosd_headfile *hf, const maosd_head *h)
{
    char s[SLOT_BYTES];
    uint64_t seq = hf->seq + 1;
    slot_encode(s, seq, h);
    /* The slot not holding the current record: a torn write here leaves
     * the current one intact. */
    if (maosd_pwrite_all(hf->fd, s, sizeof(s), (off_t)(seq & 1 ? 0 : SLOT_STRIDE))) {
        hf->err = errno ? errno : EIO;
        return MAOS_EIO;
    }
    hf->seq = seq;
    return 0;
}

int maosd_headfile_errno(const maosd_headfile *hf)
{
    return hf->err;
}

int maosd_headfile_close(maosd_headfile *hf)
{
    if (!hf)
        return 0;
    int rc = fdatasync(hf->fd) == 0 ? 0 : MAOS_EIO;
    close(hf->fd);
    free(hf);
    return rc;
}
