/*
 * daemon/recover.c -- opening the data directory at start-up: what it is
 * (new, a store, a legacy store, foreign), opening the database with the
 * damage rules of store.c, reading the log head, and holding it against
 * the acknowledged head in MAOS-HEAD.  docs/ARCHITECTURE.md "Storage
 * integrity" is the long form.
 *
 * Outcomes:
 *
 *   empty/absent dir --> create database, meta format+store_id, MAOS-HEAD,
 *                        then MAOS (last: its presence means "complete")
 *   MAOS present     --> open (never create); MAOS-HEAD must be there;
 *                        the meta store_id must match MAOS
 *   CURRENT, no MAOS --> a store from before MAOS existed, or a creation
 *                        cut short: open (never create), then adopt it
 *   anything else    --> refuse (foreign data)
 *
 *   After opening, with H the log head and A the acknowledged head:
 *     H >= A, event A hashes to A's hash    --> start
 *     H <  A                                --> acknowledged events are
 *                                               missing: refuse
 *     event A hashes differently            --> another history: refuse
 *   --salvage turns each refusal that a partial open can get past into a
 *   start, and records what was dropped as an event in stream $system.
 *
 * Every refusal is MAOSD_EXIT_DAMAGED with one log line naming the file
 * and what is affected; nothing in the directory is changed by a refusal.
 *
 * Read-only (--read-only, for inspection): only a store with MAOS opens;
 * nothing is created or rewritten (no markers, no MAOS-HEAD, no journal
 * replay); a head behind MAOS-HEAD or another history is a warning in
 * notes, since that is what an operator inspects (and while maosd runs,
 * the newest groups are in its journal, which a read-only open does not
 * apply).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "datadir.h"
#include "keys.h"
#include "log.h"
#include "recover.h"
#include "retention.h"

#define META_FORMAT "format"
#define META_STORE_ID "store_id"
#define SYSTEM_STREAM "$system"

/* Fault build only: MAOS_FAULT_TRUST_HEAD=1 skips the hash checks of the
 * newest event, so a test can show what verify sees on a daemon that was
 * fooled. */
static int trust_head(void)
{
#ifdef MAOS_FAULT_INJECTION
    const char *v = getenv("MAOS_FAULT_TRUST_HEAD");
    return v && !strcmp(v, "1");
#else
    return 0;
#endif
}

/* The log head from meta, cross-checked with the last event key; the
 * time of the last event (commit times never go back). */
static int load_head(maosd_store *st, maosd_head *h, int64_t *last_time, char *err,
                     size_t errlen)
{
    char v[8 + MAOS_HASH_BYTES];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_META, MAOSD_META_LOG_HEAD,
                             strlen(MAOSD_META_LOG_HEAD), v, sizeof(v), &vlen);
    memset(h, 0, sizeof(*h));
    *last_time = 0;
    if (rc && rc != MAOS_ENOT_FOUND) {
        snprintf(err, errlen, "cannot read the log head (meta %s): %s",
                 MAOSD_META_LOG_HEAD, maosd_store_errmsg());
        return rc;
    }
    if (rc == 0 && vlen != sizeof(v)) {
        snprintf(err, errlen, "the log head (meta %s) is corrupt: %zu bytes, want %zu",
                 MAOSD_META_LOG_HEAD, vlen, sizeof(v));
        return MAOS_ECORRUPT;
    }
    if (rc == 0) {
        h->position = maosd_get_u64(v);
        memcpy(h->hash, v + 8, MAOS_HASH_BYTES);
    }
    char k[8];
    size_t klen = 0;
    char *rec = NULL;
    size_t rlen = 0;
    rc = maosd_store_last(st, MAOSD_CF_EVENTS, k, sizeof(k), &klen, &rec, &rlen);
    if (rc && rc != MAOS_ENOT_FOUND) {
        snprintf(err, errlen, "cannot read the last event: %s", maosd_store_errmsg());
        return rc;
    }
    uint64_t last = rc == 0 && klen == 8 ? maosd_get_u64(k) : 0;
    if (rc == 0 && klen != 8) {
        free(rec);
        snprintf(err, errlen, "the last key of the events column family is corrupt "
                 "(%zu bytes, want 8)", klen);
        return MAOS_ECORRUPT;
    }
    if (last != h->position) {
        free(rec);
        snprintf(err, errlen, "log head mismatch: meta %s says position %llu, the last "
                 "event is position %llu", MAOSD_META_LOG_HEAD,
                 (unsigned long long)h->position, (unsigned long long)last);
        return MAOS_ECORRUPT;
    }
    if (rec) {
        maos_record r;
        uint8_t hash[MAOS_HASH_BYTES];
        maosd_record_hash(rec, rlen, hash);
        const char *bad = maos_record_decode(rec, rlen, &r) ? "does not decode"
                          : r.position != last ? "names another position"
                          : sodium_memcmp(hash, h->hash, sizeof(hash)) && !trust_head()
                              ? "does not match the log head's hash"
                              : NULL;
        if (bad) {
            free(rec);
            snprintf(err, errlen, "the last event (position %llu) is corrupt: it %s",
                     (unsigned long long)last, bad);
            return MAOS_ECORRUPT;
        }
        *last_time = r.time;
    }
    free(rec);
    return 0;
}

/* meta log_anchor (retention.c): positions below it are gone; 0 none. */
static uint64_t log_anchor(maosd_store *st)
{
    char v[8];
    size_t vlen;
    if (maosd_store_get(st, MAOSD_CF_META, MAOSD_META_LOG_ANCHOR,
                        strlen(MAOSD_META_LOG_ANCHOR), v, sizeof(v), &vlen) || vlen != 8)
        return 0;
    return maosd_get_u64(v);
}

/* The hash of the event at pos: 0, MAOS_ENOT_FOUND, or another error. */
static int event_hash(maosd_store *st, uint64_t pos, uint8_t hash[MAOS_HASH_BYTES])
{
    char k[8], *rec = NULL;
    size_t rlen;
    int rc = maosd_store_get_alloc(st, MAOSD_CF_EVENTS, k, maosd_key_event(k, pos),
                                   &rec, &rlen);
    if (rc)
        return rc;
    maosd_record_hash(rec, rlen, hash);
    free(rec);
    return 0;
}

/* Store-creation markers in meta (one synced write). */
static int put_markers(maosd_store *st, const maosd_identity *id)
{
    maosd_batch *b = maosd_batch_new(st);
    if (!b)
        return MAOS_ENOMEM;
    char fmt[4];
    maosd_put_u32(fmt, MAOSD_FORMAT_VERSION);
    maosd_batch_put(b, MAOSD_CF_META, META_FORMAT, strlen(META_FORMAT), fmt, 4);
    maosd_batch_put(b, MAOSD_CF_META, META_STORE_ID, strlen(META_STORE_ID), id->id, 36);
    int rc = maosd_store_write(st, b);
    maosd_batch_free(b);
    return rc;
}

static int check_store_id(maosd_store *st, const maosd_identity *id, char *err,
                          size_t errlen)
{
    char v[64];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_META, META_STORE_ID, strlen(META_STORE_ID),
                             v, sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND) {
        snprintf(err, errlen, "the database has no store_id, but %s names store %s: "
                 "this is not the database that file was written for",
                 MAOSD_IDENTITY_FILE, id->id);
        return MAOS_ECORRUPT;
    }
    if (rc) {
        snprintf(err, errlen, "cannot read the store_id: %s", maosd_store_errmsg());
        return rc;
    }
    if (vlen != 36 || memcmp(v, id->id, 36)) {
        snprintf(err, errlen, "the database belongs to store %.*s but %s names store "
                 "%s: files of two stores are mixed", (int)(vlen < 36 ? vlen : 36), v,
                 MAOSD_IDENTITY_FILE, id->id);
        return MAOS_ECORRUPT;
    }
    return 0;
}

/* The store format in meta: one written by a newer maosd is refused, never
 * opened and half understood. */
static int check_format(maosd_store *st, char *err, size_t errlen)
{
    char v[4];
    size_t vlen;
    int rc = maosd_store_get(st, MAOSD_CF_META, META_FORMAT, strlen(META_FORMAT), v,
                             sizeof(v), &vlen);
    if (rc == MAOS_ENOT_FOUND)
        return 0; /* a store from before the marker: format 1 */
    if (rc) {
        snprintf(err, errlen, "cannot read the store format: %s", maosd_store_errmsg());
        return rc;
    }
    uint32_t f = vlen == 4 ? maosd_get_u32(v) : 0;
    if (vlen != 4 || f == 0) {
        snprintf(err, errlen, "the store format marker (meta %s) is corrupt", META_FORMAT);
        return MAOS_ECORRUPT;
    }
    if (f > MAOSD_FORMAT_VERSION) {
        snprintf(err, errlen, "the store was written by a newer maosd (store format %u; "
                 "this maosd reads format %d): run that maosd or a newer one; nothing "
                 "was changed", f, MAOSD_FORMAT_VERSION);
        return MAOS_ECORRUPT;
    }
    return 0;
}

static void fill_result(maosd_recovery *r, const maosd_head *h, int64_t last_time)
{
    r->head = *h;
    r->last_time = last_time;
}

/* Build and keep the $system event that records a salvage: data is a
 * msgpack map of what was found and dropped. */
static int salvage_event(maosd_recovery *r, const char *what, const maosd_head *acked,
                         const maosd_head *h, const maosd_store_report *rep)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int n = 5 + (acked->position > h->position ? 2 : 0);
    msgpack_pack_map(&pk, (size_t)n);
#define PACK_STR(k, v)                                                         \
    do {                                                                       \
        msgpack_pack_str_with_body(&pk, k, strlen(k));                         \
        msgpack_pack_str_with_body(&pk, v, strlen(v));                         \
    } while (0)
#define PACK_U64(k, v)                                                         \
    do {                                                                       \
        msgpack_pack_str_with_body(&pk, k, strlen(k));                         \
        msgpack_pack_uint64(&pk, v);                                           \
    } while (0)
    PACK_STR("reason", what);
    PACK_STR("wal", rep->wal);
    PACK_U64("acknowledged_head", acked->position);
    PACK_U64("recovered_head", h->position);
    msgpack_pack_str_with_body(&pk, "repaired", 8);
    if (rep->repaired)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    if (acked->position > h->position) {
        PACK_U64("lost_from", h->position + 1);
        PACK_U64("lost_to", acked->position);
    }
#undef PACK_STR
#undef PACK_U64
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return MAOS_ENOMEM;
    }
    r->system_type = "salvage";
    r->system_data = sb.data;
    r->system_len = sb.size;
    return 0;
}

int maosd_recover(const maosd_recover_opts *o, maosd_store **st_out,
                  maosd_headfile **hf_out, maosd_recovery *r)
{
    char *err = r->err;
    size_t errlen = sizeof(r->err);
    maosd_dir_kind kind;
    maosd_identity id;
    maosd_head acked = {.position = 0, .sync = o->sync};
    int have_acked = 0;
    maosd_headfile *hf = NULL;
    maosd_store *st = NULL;
    int rc;

    memset(r, 0, sizeof(*r));
    r->exit_code = MAOSD_EXIT_FAILURE;
    rc = maosd_dir_classify(o->dir, &kind, err, errlen);
    if (rc)
        return rc;
    if (o->read_only && kind != MAOSD_DIR_STORE) {
        snprintf(err, errlen, "%s is not a maos data directory (%s)", o->dir,
                 kind == MAOSD_DIR_NEW ? "it is empty or does not exist"
                 : kind == MAOSD_DIR_LEGACY ? "RocksDB files without a " MAOSD_IDENTITY_FILE
                                              " file: start maosd on it once to adopt it"
                                            : "no " MAOSD_IDENTITY_FILE " file");
        r->exit_code = MAOSD_EXIT_DAMAGED;
        return MAOS_ECORRUPT;
    }
    if (kind == MAOSD_DIR_FOREIGN) {
        snprintf(err, errlen, "data directory %s is not empty and holds no maos store "
                 "(no %s file, no RocksDB CURRENT): refusing to use it",
                 o->dir, MAOSD_IDENTITY_FILE);
        r->exit_code = MAOSD_EXIT_DAMAGED;
        return MAOS_ECORRUPT;
    }
    if (kind == MAOSD_DIR_STORE) {
        rc = maosd_identity_read(o->dir, &id, err, errlen);
        if (rc == 0) {
            char herr[512] = "";
            rc = maosd_headfile_open(o->dir, &hf, &acked, herr, sizeof(herr));
            if (rc == 0) {
                have_acked = 1;
                if (o->read_only) { /* read, never written */
                    maosd_headfile_close(hf);
                    hf = NULL;
                }
            } else if (o->salvage || o->read_only) {
                snprintf(r->notes, sizeof(r->notes), "%s",
                         rc == MAOS_ENOT_FOUND ? MAOSD_HEAD_FILE " is missing" : herr);
                rc = 0;
            } else {
                snprintf(err, errlen, "%s%s: the acknowledged head is unknown, so "
                         "losses cannot be ruled out; refusing to start (maosd "
                         "--salvage starts anyway and rewrites it)",
                         rc == MAOS_ENOT_FOUND ? MAOSD_HEAD_FILE " is missing in "
                                               : herr,
                         rc == MAOS_ENOT_FOUND ? o->dir : "");
                rc = MAOS_ECORRUPT;
            }
        }
        if (rc) {
            r->exit_code = MAOSD_EXIT_DAMAGED;
            return rc;
        }
    }

    maosd_store_opts so = {
        .dir = o->dir,
        .sync = o->sync,
        .block_cache_bytes = o->block_cache_bytes,
        .journal_bytes = o->journal_bytes,
        .create = kind == MAOSD_DIR_NEW,
        .salvage = o->salvage,
        .acked_head = have_acked ? acked.position : UINT64_MAX,
        .read_only = o->read_only,
    };
    maosd_store_report rep;
    rc = maosd_store_open(&so, &st, &rep, err, errlen);
    if (rc) {
        if (rep.damaged)
            r->exit_code = MAOSD_EXIT_DAMAGED;
        maosd_headfile_close(hf);
        return rc;
    }
    if (rep.wal[0])
        snprintf(r->wal, sizeof(r->wal), "%s", rep.wal);
    r->torn_tail = rep.torn_tail;

    maosd_head h;
    int64_t last_time;
    rc = load_head(st, &h, &last_time, err, errlen);
    if (rc)
        goto refuse;
    h.sync = o->sync;

    if (kind == MAOSD_DIR_NEW || kind == MAOSD_DIR_LEGACY) {
        /* New: markers, head record, then identity.  Legacy: the same, so
         * the next start knows it (a creation cut short before MAOS was
         * written lands here too). */
        maosd_identity_create(o->dir, &id, err, errlen) == 0 ? (void)0 : (void)(rc = MAOS_EIO);
        if (!rc && (rc = put_markers(st, &id)))
            snprintf(err, errlen, "cannot write the store markers: %s", maos_strerror(rc));
        /* in table files at once, not only in the journal: a read-only open
         * beside this daemon (maosctl inspect) finds the store's identity */
        if (!rc && (rc = maosd_store_flush(st)))
            snprintf(err, errlen, "cannot flush the store markers: %s", maosd_store_errmsg());
        if (!rc)
            rc = maosd_headfile_create(o->dir, &h, &hf, err, errlen);
        if (rc)
            goto fail;
        r->created = kind == MAOSD_DIR_NEW;
        r->adopted = kind == MAOSD_DIR_LEGACY;
        snprintf(r->store_id, sizeof(r->store_id), "%s", id.id);
        fill_result(r, &h, last_time);
        *st_out = st;
        *hf_out = hf;
        return 0;
    }

    rc = check_store_id(st, &id, err, errlen);
    if (!rc)
        rc = check_format(st, err, errlen);
    if (rc)
        goto refuse;
    snprintf(r->store_id, sizeof(r->store_id), "%s", id.id);

    /* The acknowledged head against the recovered one. */
    const char *what = NULL;
    char whatbuf[1024];
    if (have_acked && acked.position > h.position) {
        snprintf(whatbuf, sizeof(whatbuf),
                 "the log ends at position %llu but positions up to %llu were "
                 "acknowledged (%s): %llu acknowledged events are missing%s%s",
                 (unsigned long long)h.position, (unsigned long long)acked.position,
                 MAOSD_HEAD_FILE, (unsigned long long)(acked.position - h.position),
                 rep.wal[0] ? "; WAL: " : " (a WAL file was cut or removed?)", rep.wal);
        what = whatbuf;
        /* With durability none, acknowledged means written, not synced: an
         * OS crash may lose it by design.  Loud, recorded, not fatal. */
        if (!acked.sync && !o->salvage) {
            r->unsynced_loss = 1;
            salvage_event(r, "unsynced acknowledged events lost (durability none)",
                          &acked, &h, &rep);
            goto accept;
        }
    } else if (have_acked && acked.position > 0 && !trust_head()) {
        uint8_t hash[MAOS_HASH_BYTES];
        rc = event_hash(st, acked.position, hash);
        if (rc == MAOS_ENOT_FOUND && acked.position < log_anchor(st)) {
            /* retention removed it (an older MAOS-HEAD, after a power
             * loss): nothing to check it against */
            rc = 0;
        } else if (rc || sodium_memcmp(hash, acked.hash, sizeof(hash))) {
            snprintf(whatbuf, sizeof(whatbuf),
                     "the event at position %llu %s the one acknowledged there (%s): "
                     "this log holds another history",
                     (unsigned long long)acked.position,
                     rc ? "cannot be read, so it cannot be checked against"
                        : "is not", MAOSD_HEAD_FILE);
            what = whatbuf;
            rc = 0;
        }
    }
    if (what && o->read_only) {
        snprintf(r->notes, sizeof(r->notes), "%.420s%s", what,
                 acked.position > h.position
                     ? " (read-only: groups still in the journal are not applied)" : "");
        what = NULL;
    }
    if (what && !o->salvage) {
        snprintf(err, errlen, "%s; refusing to start (maosd --salvage starts with what "
                 "is there and records the loss in stream %s)", what, SYSTEM_STREAM);
        rc = MAOS_ECORRUPT;
        goto refuse;
    }
    if (o->salvage && (what || rep.salvaged || r->notes[0])) {
        char reason[2048];
        snprintf(reason, sizeof(reason), "%s%s%s%s%s", r->notes,
                 r->notes[0] && rep.salvaged ? "; " : "",
                 rep.salvaged ? (rep.repaired ? "database rebuilt by repair"
                                              : "opened up to the damage")
                              : "",
                 (r->notes[0] || rep.salvaged) && what ? "; " : "",
                 what ? what : "");
        r->salvaged = 1;
        rc = salvage_event(r, reason, &acked, &h, &rep);
        if (rc) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
accept:
    if (!o->read_only && (r->salvaged || r->unsynced_loss || !hf)) {
        /* The acknowledged head starts again from what is there. */
        maosd_headfile_close(hf);
        hf = NULL;
        rc = maosd_headfile_create(o->dir, &h, &hf, err, errlen);
        if (rc)
            goto fail;
    }
    r->acked_before = acked.position;
    fill_result(r, &h, last_time);
    *st_out = st;
    *hf_out = hf;
    return 0;
refuse:
    r->exit_code = MAOSD_EXIT_DAMAGED;
fail:
    free(r->system_data);
    r->system_data = NULL;
    maosd_headfile_close(hf);
    maosd_store_close(st);
    return rc ? rc : MAOS_EINTERNAL;
}

void maosd_recovery_free(maosd_recovery *r)
{
    free(r->system_data);
    r->system_data = NULL;
}
