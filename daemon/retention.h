/*
 * daemon/retention.h -- retention: stream meta (rules, truncation,
 * deletion) and the passes that remove what they remove.
 * docs/ARCHITECTURE.md "Retention" has the long form.
 */
#ifndef MAOSD_RETENTION_H
#define MAOSD_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_call maosd_call;

/* The hash a record stands for in the chain: BLAKE2b-256 of its bytes,
 * or for the stub of a removed event the hash it keeps (maos_enc_stub).
 * Any thread. */
void maosd_record_hash(const char *rec, size_t len, uint8_t out[MAOS_HASH_BYTES]);

/* Loop thread.  init: the log anchor (for stats), the pass timer (before
 * the first uv_run); start: the first pass (not read-only; once maosd
 * serves); close: no more passes (shutdown). */
int maosd_retention_init(maosd_server *srv);
void maosd_retention_start(maosd_server *srv);
void maosd_retention_close(maosd_server *srv);

/* op stream_meta */
int maosd_op_stream_meta(maosd_call *call);
/* op compact: every column family compacted on a pool thread (space of
 * removed events back now, not at RocksDB's own pace); root and the
 * daemon's uid only. */
int maosd_op_compact(maosd_call *call);

#endif
