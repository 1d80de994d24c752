/*
 * daemon/journal.h -- maosd's own write-ahead journal (docs/ARCHITECTURE.md
 * "Durability: the journal").
 *
 * Why: RocksDB's WAL file grows with every write, so each fdatasync also
 * writes the inode (size, extents).  The journal is one preallocated,
 * zero-filled file overwritten in place: an fdatasync writes data only.
 * The commit thread writes each group's WriteBatch here (and syncs it
 * with durability sync) before it applies the batch to RocksDB with
 * RocksDB's WAL off.  At open, the records of the current lap are applied
 * again in order; since a batch holds only puts and deletes, applying a
 * run of batches again over any state they had partly reached gives the
 * state after the last one.
 *
 * File layout (all integers big-endian):
 *
 *   0     superblock slot A  \  64 bytes each: magic "MAOSJRNL", version(4),
 *   4096  superblock slot B  /  zero(4), lap(8), size(8), first_seq(8),
 *                               zero(8), BLAKE2b-128 of the 48 bytes before
 *   8192  records of the current lap, back to back, each padded to 8 bytes:
 *           magic "MJR2", len(4), lap(8), seq(8), check(16), payload(len)
 *         check = SipHash-2-4-128 (libsodium's siphashx24, the fixed key
 *         MAOSD_JOURNAL_KEY) of (the 24 bytes before || the SipHash-2-4-128
 *         of the payload).  Records written before it ("MJR1") carry
 *         BLAKE2b-128 of (the 24 bytes before || payload) and are still
 *         read: a store a crash left with such records replays them.
 *         Why SipHash: the check guards against torn writes and bit rot,
 *         not an attacker (whoever can write the file can write the
 *         check); BLAKE2b over every byte of every group was ~10% of the
 *         commit thread's CPU on batches (tests/bench/README.md), SipHash
 *         runs ~5x faster here and mixes every bit of the record.
 *
 * Laps: lap L's superblock goes to slot L & 1, so a torn superblock write
 * leaves the previous one valid; the valid slot with the larger lap wins.
 * A lap starts only after everything written before it is in RocksDB's
 * table files (the caller flushed the memtables), so lap L's records are
 * all that can be missing from them, and a record of an older lap is
 * never needed again.  Records of lap L are written from offset 8192
 * with consecutive seq from first_seq; replay reads them until the first
 * that is not one (zeros, an older lap, a torn write).
 *
 * Damage: if a valid record of lap L with a later seq lies past that
 * point, the stop is damage in the middle, never a torn tail: open
 * refuses (or, with salvage, replays up to it).  A torn last record was
 * never acknowledged (the reply waits for its fdatasync).  A record cut
 * exactly at a record boundary looks like a clean end; the acknowledged
 * head (MAOS-HEAD, recover.c) catches what such a cut lost.
 *
 * Threads: one owner at a time (the opener, then the commit thread).
 * Nothing here logs; errors are MAOS_E* plus a message naming the file.
 */
#ifndef MAOSD_JOURNAL_H
#define MAOSD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define MAOSD_JOURNAL_FILE "maos.journal"
#define MAOSD_JOURNAL_DATA_OFF 8192u
#define MAOSD_JOURNAL_REC_HEAD 40u
#define MAOSD_JOURNAL_REC_MAGIC "MJR2"    /* what maosd writes */
#define MAOSD_JOURNAL_REC_MAGIC_V1 "MJR1" /* still read: BLAKE2b-128 check */
#define MAOSD_JOURNAL_KEY "maos-journal-v2." /* 16 bytes, fixed: a checksum */
#define MAOSD_JOURNAL_MIN_BYTES ((uint64_t)1 << 20)
#define MAOSD_JOURNAL_MAX_BYTES ((uint64_t)4 << 30)

typedef struct maosd_journal maosd_journal;

/* What replay found: records applied, where and why it stopped. */
typedef struct maosd_journal_scan {
    uint64_t lap;
    uint64_t records;    /* applied */
    int torn;            /* the last record was torn: dropped */
    int damaged;         /* a valid record of the lap lies past the stop */
    uint64_t beyond;     /* damaged: records found past the stop */
    char what[256];      /* damaged or torn: file, offset, why */
} maosd_journal_scan;

/* Apply one record's payload; nonzero stops replay with that code. */
typedef int (*maosd_journal_apply_fn)(void *arg, const char *data, size_t len);

/*
 * Open dir/maos.journal, creating it (zero-filled to `size` bytes, lap 1,
 * synced, directory synced) when it is missing and create is 1.
 * MAOS_ENOT_FOUND when missing and create is 0.  An existing journal keeps
 * the size it was made with.  MAOS_ECORRUPT when no superblock is valid.
 */
int maosd_journal_open(const char *dir, uint64_t size, int create,
                       maosd_journal **out, char *err, size_t errlen);

/*
 * Apply the current lap's records in order.  Stops at the first that is
 * not one; classifies the stop (scan).  Returns 0 (also after a torn tail
 * or, with salvage, damage), MAOS_ECORRUPT on damage without salvage, or
 * the apply function's code.  Call once, before any write.
 */
int maosd_journal_replay(maosd_journal *j, int salvage, maosd_journal_apply_fn fn,
                         void *arg, maosd_journal_scan *scan);

/* 1 when a record of len payload bytes fits in what is left of this lap;
 * 0 when the caller must start a lap first; -1 when it can never fit. */
int maosd_journal_fits(const maosd_journal *j, size_t len);
/* 1 when the lap is past 7/8 of the file: time to start flushing, so that
 * the flush that ends the lap finds little left (store.c). */
int maosd_journal_nearly_full(const maosd_journal *j);

/* Write one record at the end of the lap; fdatasync when sync.  0 or
 * MAOS_EIO (errno in maosd_journal_errno); after a failure the journal
 * refuses every later write. */
int maosd_journal_write(maosd_journal *j, const void *data, size_t len, int sync);

/* Start lap+1 at the start of the file (superblock written and synced).
 * The caller has made everything written so far durable elsewhere. */
int maosd_journal_new_lap(maosd_journal *j);

int maosd_journal_errno(const maosd_journal *j);
uint64_t maosd_journal_lap(const maosd_journal *j);
/* The journal file's size in bytes. */
uint64_t maosd_journal_bytes(const maosd_journal *j);
const char *maosd_journal_path(const maosd_journal *j);
void maosd_journal_close(maosd_journal *j);

#endif
