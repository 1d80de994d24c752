/*
 * daemon/tables.h -- tables: entries, connection bindings, the table ops
 * (docs/ARCHITECTURE.md "Tables"; PROTOCOL.md "Tables").
 *
 * write_table.c has the write kinds (commit thread); tables.c the loop
 * side: the ops' handlers, the reads (get, list, count: run on a reader
 * thread, reader.c), watches, and the
 * bindings -- which entries each connection holds, released when it
 * closes and at start-up.
 */
#ifndef MAOSD_TABLES_H
#define MAOSD_TABLES_H

#include <stdint.h>

#include <msgpack.h>

#include "maos/proto.h"

typedef struct maosd_server maosd_server;
typedef struct maosd_conn maosd_conn;
typedef struct maosd_wreq maosd_wreq;

/* A stored entry (keys.h), slices into the value it was parsed from. */
typedef struct maosd_entry {
    uint64_t revision;
    uint64_t created_revision;
    int64_t created, updated;
    uint64_t bound_conn;     /* 0: not bound */
    uint32_t bound_pid;
    maos_slice data;         /* the document, a msgpack map */
} maosd_entry;

/* 0 or MAOS_ECORRUPT (too short). */
int maosd_entry_parse(const char *v, size_t n, maosd_entry *e);
/* The wire form of an entry (maos_enc_entry). */
int maosd_enc_entry(msgpack_packer *pk, const maos_table_ref *t, maos_slice key,
                    const maosd_entry *e);
/* The stream of an entry's changes into out (MAOS_STREAM_MAX bytes). */
size_t maosd_table_stream(const maos_table_ref *t, maos_slice key, char *out);

/* Overrides of a document's top-level fields (name -> raw msgpack value). */
typedef struct maosd_field {
    const char *name;
    maos_slice raw;
} maosd_field;
/* base (a map; len 0: {}) with the fields of over[] set -- its other pairs
 * copied, then the overrides -- appended to sb as one map.  0,
 * MAOS_ECORRUPT (base is not a map) or MAOS_ENOMEM. */
int maosd_doc_merge(msgpack_sbuffer *sb, maos_slice base, const maosd_field *over,
                    uint32_t n_over);

/* One entry bound to a connection (its list, conn->bound). */
typedef struct maosd_bound {
    struct maosd_bound *next;
    maos_table_ref table;    /* name points into mem */
    maos_slice key;
    char mem[];
} maosd_bound;

/* Set-up: the bindings' listener on committed groups.  0 or an error. */
int maosd_tables_init(maosd_server *srv);
/* Queue the release of every entry bound by the previous run (meta
 * "bound/"); the caller runs the loop until the commit thread is idle.
 * 0 or an error (logged). */
int maosd_tables_release_all(maosd_server *srv);
/* c closed: queue the release of its bound entries; forget its agent. */
void maosd_tables_conn_closed(maosd_conn *c);
/* An append from c: stamp meta.agent when c registered an agent (rewrites
 * the request's events' meta into memory owned by w).  0 or MAOS_ENOMEM. */
int maosd_tables_stamp(maosd_conn *c, maosd_wreq *w);

#endif
