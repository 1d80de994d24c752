/*
 * daemon/recover.h -- start-up recovery (recover.c): open the data directory,
 * tell new / existing / damaged apart, salvage (docs/ARCHITECTURE.md
 * "Storage integrity"); and maosd's exit statuses.
 */
#ifndef MAOSD_RECOVER_H
#define MAOSD_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "datadir.h"
#include "store.h"

/* Exit statuses of maosd (also in --help, README and the systemd unit). */
enum {
    MAOSD_EXIT_OK = 0,
    MAOSD_EXIT_FAILURE = 1, /* could not start or run (config, socket, ...) */
    MAOSD_EXIT_USAGE = 2,   /* bad flags or config file */
    MAOSD_EXIT_DAMAGED = 3, /* the data directory is damaged, foreign or
                             * lost acknowledged writes: refused, unchanged */
};


typedef struct maosd_recover_opts {
    const char *dir;
    int sync;
    size_t block_cache_bytes;
    uint64_t journal_bytes; /* maosd_store_opts.journal_bytes */
    int salvage;
    int read_only;          /* open an existing store, write nothing: what
                             * would refuse a start is a warning (notes) */
} maosd_recover_opts;

typedef struct maosd_recovery {
    int exit_code;          /* on failure: MAOSD_EXIT_DAMAGED or _FAILURE */
    char err[2048];         /* on failure: the one message to log */
    int created, adopted;   /* a new store; a store without MAOS adopted */
    int torn_tail;          /* replay dropped a torn tail (see wal) */
    int salvaged;           /* --salvage got past damage */
    int unsynced_loss;      /* durability none lost acknowledged events */
    char wal[768];          /* what WAL replay met, "" if nothing */
    char notes[512];
    char store_id[37];
    uint64_t acked_before;  /* the acknowledged head found in MAOS-HEAD */
    maosd_head head;        /* the recovered log head */
    int64_t last_time;
    /* an event for stream $system recording a salvage or a loss: type and
     * msgpack data (malloc'ed, freed by maosd_recovery_free) or NULL */
    const char *system_type;
    char *system_data;
    size_t system_len;
} maosd_recovery;

/* Open the data directory (recover.c top comment).  0 with *st and *hf
 * (MAOS-HEAD open for writing), or a negative code with r->err and
 * r->exit_code set; nothing is left open then. */
int maosd_recover(const maosd_recover_opts *o, maosd_store **st,
                  maosd_headfile **hf, maosd_recovery *r);
void maosd_recovery_free(maosd_recovery *r);

#endif
