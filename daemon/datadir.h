/*
 * daemon/datadir.h -- maosd's own files in the data directory, beside
 * RocksDB's: the identity file MAOS and the durable-head record MAOS-HEAD.
 * docs/ARCHITECTURE.md "Storage integrity" explains why they exist.
 *
 *   MAOS       text, written once when the store is created (after the
 *              database exists, so a crash half-way through creation
 *              leaves a database without it, which is adopted, never an
 *              identity without a database):
 *                  maos-store 1
 *                  id <uuid>
 *                  created <unix seconds>
 *   MAOS-HEAD  two 80-byte slots at offsets 0 and 512, written in turn
 *              by the commit thread after every successful group write
 *              (pwrite, no fsync: a kill -9 keeps the page cache; after a
 *              power loss the record can only be older than the truth,
 *              never newer, since it is written after the WAL sync).  A
 *              slot: magic "MAOSHD01", seq, position, BLAKE2b-256 of the
 *              event at position, flags (bit 0: durability sync), pad,
 *              BLAKE2b-128 of the first 64 bytes.  The valid slot with the
 *              larger seq is current.
 *
 * Recovery compares the head the database opened with against MAOS-HEAD:
 * a database that ends before the acknowledged head lost acknowledged
 * events (a WAL cut at a record boundary looks like a clean end to
 * RocksDB), and one whose event at that position hashes differently holds
 * another history.
 *
 * Threads: classify/identity/create run at start-up on the main thread;
 * maosd_headfile_write runs on the commit thread only.
 */
#ifndef MAOSD_DATADIR_H
#define MAOSD_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#define MAOSD_IDENTITY_FILE "MAOS"
#define MAOSD_HEAD_FILE "MAOS-HEAD"
#define MAOSD_FORMAT_VERSION 1

/* What a data directory holds, judged from its entries alone. */
typedef enum maosd_dir_kind {
    MAOSD_DIR_NEW,     /* absent or empty: becomes a new store */
    MAOSD_DIR_STORE,   /* has the MAOS identity file */
    MAOSD_DIR_LEGACY,  /* RocksDB files (CURRENT) but no MAOS: a store made
                        * before the identity file existed, adopted if it
                        * opens */
    MAOSD_DIR_FOREIGN, /* not empty, neither of the above: refused */
} maosd_dir_kind;

/* Classify dir.  0 and *kind, or MAOS_EIO with a message (unreadable). */
int maosd_dir_classify(const char *dir, maosd_dir_kind *kind, char *err,
                       size_t errlen);

typedef struct maosd_identity {
    unsigned format;
    char id[37]; /* UUID text */
    int64_t created;
} maosd_identity;

/* Read and check MAOS.  0, MAOS_ENOT_FOUND, or MAOS_EIO (unreadable or
 * malformed: the message names the file and what is wrong). */
int maosd_identity_read(const char *dir, maosd_identity *id, char *err,
                        size_t errlen);
/* Write MAOS for a new (or adopted) store with a fresh random id, durably
 * (temp file, fsync, rename, fsync of the directory).  *id is filled. */
int maosd_identity_create(const char *dir, maosd_identity *id, char *err,
                          size_t errlen);

typedef struct maosd_head {
    uint64_t position;  /* 0: empty log */
    uint8_t hash[32];   /* BLAKE2b-256 of the event at position (zeros for 0) */
    int sync;           /* the durability the daemon acknowledged it with */
} maosd_head;

typedef struct maosd_headfile maosd_headfile;

/* (Re)write MAOS-HEAD holding h in both slots, durably (temp file,
 * fsync, rename, fsync of the directory), then open it for writing. */
int maosd_headfile_create(const char *dir, const maosd_head *h,
                          maosd_headfile **out, char *err, size_t errlen);
/* Open MAOS-HEAD and read its current record into *h.  MAOS_ENOT_FOUND
 * when absent; MAOS_EIO when unreadable or when no slot is valid. */
int maosd_headfile_open(const char *dir, maosd_headfile **out, maosd_head *h,
                        char *err, size_t errlen);
/* Record a new acknowledged head (commit thread).  0, or MAOS_EIO when
 * the write failed (errno kept in the message of maosd_headfile_error). */
int maosd_headfile_write(maosd_headfile *hf, const maosd_head *h);
/* The errno of the last failed write, 0 if none. */
int maosd_headfile_errno(const maosd_headfile *hf);
/* fdatasync and close; accepts NULL.  Returns 0 or MAOS_EIO. */
int maosd_headfile_close(maosd_headfile *hf);

#endif
