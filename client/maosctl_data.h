/*
 * client/maosctl_data.h -- maosctl export and import (maosctl_data.c): the
 * log as JSON Lines (or PostgreSQL COPY text) and back.  The file format is
 * documented in docs/EXPORT.md.
 *
 * Both stream: memory does not grow with the log.  Messages for the user
 * go to stderr here (maosctl's own output), prefixed "maosctl: ".
 */
#ifndef MAOSCTL_DATA_H
#define MAOSCTL_DATA_H

#include <stdint.h>
#include <stdio.h>

#include "maos/client.h"

enum { EXPORT_JSONL, EXPORT_PG_COPY };

typedef struct export_opts {
    const maos_read_filter *filter; /* NULL: every event */
    uint64_t from;                  /* first position (1: the start) */
    uint64_t to;                    /* last position; 0: the head when it starts */
    int format;                     /* EXPORT_* */
    int progress;                   /* a progress line on stderr */
} export_opts;

/* Write the export to out.  0, or 1 (refused or failed: said on stderr). */
int maosctl_export(maos_ctx *c, const export_opts *o, FILE *out);

/* Import the export at path ("-": stdin) into c's store: checked whole
 * first (a truncated or malformed file is refused with its line number,
 * nothing written), then appended in transactions of at most
 * IMPORT_TXN_EVENTS events, ids kept, so a re-run completes a partial
 * import and duplicates nothing.  Prints a summary on out.  0 or 1. */
int maosctl_import(maos_ctx *c, const char *path, int json, FILE *out);

/* A $chain checkpoint event e, met after the chain up to it was checked
 * (so e->prev is the hash of position - 1): NULL when it is signed with
 * key for the position before it, else why not. */
const char *maosctl_checkpoint_bad(const maos_event *e, const uint8_t key[32]);

/* verify --export: the export at path ("-": stdin) checked offline: a
 * whole export (no filter, from position 1 or the retention anchor),
 * every record rebuilt from its line and the hash chain followed through
 * them, the trailer's counts and last hash, and with key (NULL: none)
 * every $chain checkpoint and the trailer's signature.  Prints OK or the
 * first bad line on out.  0, 1 (bad), 2 (cannot verify this file). */
int maosctl_verify_export(const char *path, const uint8_t *key, int json, FILE *out);

#endif
