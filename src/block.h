/* Block backends: a sector-addressed device, after MirageOS Mirage_block.S.
 *
 * Every source the user can name (a regular file, a raw block device, an NBD export) is a
 * tm_block.  Decorators (a cache, an offset window) are tm_blocks that wrap another one through
 * the same vtable, so nothing above this layer knows which it is talking to.
 *
 * Sources are opened read-only unless tm_block_options.read_write asks for writing; then
 * write(), tm_block_pwrite(), tm_block_flush() and the writer lock below work, and
 * get_info().read_write says so.  A source that cannot be written (a read-only file,
 * filesystem, device or NBD export) then fails to open with TM_BLOCK_READ_ONLY, and a
 * message saying why; a write on a source opened read-only fails the same way ("opened
 * read-only").  There is no FUA: a write is durable once a later tm_block_flush() returned 0.
 *
 * The append protocol this serves (writing members at the end of a tar archive): write the
 * new data, its padding and the new end marker past the current end while the old end
 * marker still stands; flush; write the block that replaces the first block of the old end
 * marker; flush.  Each flush is a barrier: what is written after it returned cannot reach
 * the storage before what was written before it.  (Whether one sector write is atomic on
 * power loss is the device's business; a partial sector tm_block_pwrite writes rewrites the
 * rest of that sector with the bytes it read.)
 *
 * Thread safety: read(), get_info() and write() may be called from many threads at once on
 * the same tm_block; a read that starts after a write returned sees the written bytes (also
 * through a cache, and across the connections of an NBD export).  Writes of overlapping
 * sectors must not run at once (callers serialise writers: a write is not atomic against
 * another write of the same sector, nor is a read of sectors a write is changing).
 * disconnect() must be called once, after every reader and writer is done. */
#ifndef TM_BLOCK_H
#define TM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <glib.h>

enum tm_block_code {
	TM_BLOCK_OK = 0,
	TM_BLOCK_IO,           /* the device failed a read, a write or a flush; sys_errno
				* says how (EIO, a server's error, ETIMEDOUT, ...) */
	TM_BLOCK_READ_ONLY,    /* a write on a source that cannot be, or was not opened to be,
				* written (sys_errno: EROFS, EACCES, EPERM or 0) */
	TM_BLOCK_OUT_OF_RANGE, /* sector or byte range past the end of the device */
	TM_BLOCK_UNALIGNED,    /* a buffer that is not a whole number of sectors */
	TM_BLOCK_DISCONNECTED, /* used after disconnect, or the server went away */
	TM_BLOCK_OPEN,         /* the source could not be opened */
	TM_BLOCK_INVALID,      /* the source string does not name a usable device */
	TM_BLOCK_NO_SPACE,     /* ENOSPC, EDQUOT or EFBIG: the file or filesystem is full */
	TM_BLOCK_LOCKED,       /* tm_block_lock_writer: another writer holds the lock */
	TM_BLOCK_NOT_SUPPORTED, /* the source has no such thing (a writer lock on NBD) */
};

/* An error with enough context to print one clear line.  msg is empty or a short detail
 * ("Connection refused", "offset 12345 past the end"); it never repeats the code. */
struct tm_block_error {
	enum tm_block_code code;
	int sys_errno;
	char msg[200];
};

struct tm_block_info {
	bool read_write; /* opened for writing, and writable */
	/* A write past the end extends the device (a regular file opened read_write): the size
	 * below grows with it.  Otherwise writes past the end fail with TM_BLOCK_OUT_OF_RANGE. */
	bool growable;
	/* tm_block_flush cannot make writes durable: the NBD server offers no flush, so writes
	 * are as durable as it keeps them (tm_block_flush still returns 0). */
	bool no_flush;
	uint32_t sector_size;  /* bytes, a power of two >= 512 */
	uint64_t size_sectors; /* sectors, the last one possibly partial (see size_bytes) */
	/* Exact length in bytes, when the device ends inside its last sector (a file, a
	 * window); 0 means size_sectors * sector_size.  Reading the last sector gives zeros
	 * past this length. */
	uint64_t size_bytes;
	/* The size is not known yet (a compressed stream still being scanned): size_sectors
	 * is an upper bound, a read past the real end fails with TM_BLOCK_OUT_OF_RANGE, and
	 * after such a failure get_info gives the exact size. */
	bool size_pending;
};

struct tm_block;

struct tm_block_ops {
	const char *name; /* "file", "window", ... for messages */
	void (*get_info)(struct tm_block *b, struct tm_block_info *info);
	/* Fill buffers, each a whole number of sectors, from consecutive sectors starting at
	 * sector.  On error the contents of the buffers are unspecified. */
	int (*read)(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		    struct tm_block_error *err);
	/* Write buffers, each a whole number of sectors, to consecutive sectors starting at
	 * sector.  On a source that cannot be written it fails with TM_BLOCK_READ_ONLY before
	 * looking at its arguments (so iovcnt 0 asks why).  Writing the partial last sector of a
	 * fixed-size device stores only its bytes before size_bytes; on a growable one the whole
	 * sector is stored and the device grows to its end.  On error, any part of the range may
	 * have been written.  The write is durable after a later flush. */
	int (*write)(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err);
	/* Optional (may be NULL): a byte-addressed write with no alignment requirement, which
	 * tm_block_pwrite uses instead of read-modify-writing sectors (a file: pwrite(2), which
	 * also grows it to exactly off + len; decorators: passed on). */
	int (*write_bytes)(struct tm_block *b, const void *buf, size_t len, uint64_t off,
			   struct tm_block_error *err);
	/* Optional (NULL: nothing is ever pending): make every write that returned durable
	 * (fdatasync, nbd_flush; decorators pass it on).  A failure is sticky: every later flush
	 * fails too, since what was written before it may be lost (after a failed fsync, the
	 * kernel may drop the dirty pages and report success the next time). */
	int (*flush)(struct tm_block *b, struct tm_block_error *err);
	/* Optional (NULL: TM_BLOCK_NOT_SUPPORTED): see tm_block_lock_writer. */
	int (*lock_writer)(struct tm_block *b, bool wait, struct tm_block_error *err);
	void (*unlock_writer)(struct tm_block *b);
	/* Optional (may be NULL): a file descriptor whose byte offset fd_base + x holds byte x of
	 * this device, for zero-copy splicing.  Returns false when there is none. */
	bool (*get_fd)(struct tm_block *b, int *fd, uint64_t *fd_base);
	/* Optional (may be NULL): true when the source is no longer what was opened (a file
	 * rewritten or truncated in place), so that readers get EIO instead of other bytes.
	 * This tm_block's own writes do not count as a change. */
	bool (*changed)(struct tm_block *b);
	/* Optional (may be NULL): feed what identifies this source's contents cheaply into
	 * sum (a file: device, inode, size, modification time; a window: its inner device's
	 * identity and its bounds).  Without it, the size and the first and last MiB are.
	 * Returns false with err filled when the identity could not be read (then sum must
	 * not be used: a partial identity could match another source's). */
	bool (*identity)(struct tm_block *b, GChecksum *sum, struct tm_block_error *err);
	/* Free everything; for a decorator, also disconnects what it wraps.  Releases the
	 * writer lock.  Does not flush. */
	void (*disconnect)(struct tm_block *b);
};

struct tm_block {
	const struct tm_block_ops *ops;
	char *source; /* what the user typed, for messages; owned */
};

/* Options that select and shape a backend; zero-initialised means defaults. */
struct tm_block_options {
	/* (tarmount's fuse_opt table stores an int into direct: keep padding after it.) */
	bool direct;          /* O_DIRECT where the backend supports it (block devices) */
	unsigned partition;   /* 0: whole source; N: partition N of its MBR or GPT table */
	uint64_t offset;      /* a window starting at this byte ... */
	uint64_t size;        /* ... of this many bytes (0: to the end) */
	int cache;            /* -1: default (on for NBD and O_DIRECT), 0: off, 1: on */
	uint64_t cache_size;  /* bytes; 0: the default (64 MiB) */
	unsigned timeout;     /* NBD: seconds before a stalled request fails; 0: default (30) */
	bool read_write;      /* open for writing (default: read-only, never a byte written) */
};

/* Open the backend named by source: "nbd://", "nbds://", "nbd+unix://" and "nbds+unix://"
 * URIs are NBD exports, a block device path a raw device, anything else a regular file.
 * Then, as opts ask: a partition or offset window over it, and a cache over that.  Returns
 * NULL and fills err on failure. */
struct tm_block *tm_block_open(const char *source, const struct tm_block_options *opts,
			       struct tm_block_error *err);

/* The backends and decorators tm_block_open assembles. */
/* A regular file, 512-byte sectors.  With opts->read_write: opened O_RDWR (a file or
 * filesystem that refuses gives TM_BLOCK_READ_ONLY with the errno), growable, flushed by
 * fdatasync, locked with an OFD lock. */
struct tm_block *tm_block_file_open(const char *path, const struct tm_block_options *opts,
				    struct tm_block_error *err);
/* A block device: size from BLKGETSIZE64, sector size from BLKSSZGET, O_DIRECT with aligned
 * bounce buffers (reads and writes) when opts->direct.  Read-only open unless
 * opts->read_write: then O_RDWR, and a device BLKROGET says is read-only gives
 * TM_BLOCK_READ_ONLY; flushed by fdatasync (which also flushes the device's write cache;
 * never BLKFLSBUF), locked with an OFD lock. */
struct tm_block *tm_block_device_open(const char *path, const struct tm_block_options *opts,
				      struct tm_block_error *err);
/* An NBD export through libnbd (several connections where the server allows multi-conn).
 * With opts->read_write: a read-only export gives TM_BLOCK_READ_ONLY; writes go out with
 * nbd_pwrite, tm_block_flush is nbd_flush (info.no_flush when the server has none).  Several
 * connections are kept for writing only where the server offers both multi-conn and flush:
 * its guarantee is that a write, then a flush on any connection, then a read on any
 * connection sees the write; so a read on a connection other than the one that wrote flushes
 * it first.  A connection lost while it carried writes no flush had covered (the server
 * may have restarted without them), or a flush the server failed, makes every later flush
 * fail.  There is no writer lock (TM_BLOCK_NOT_SUPPORTED): nothing stops another client
 * writing the export. */
struct tm_block *tm_block_nbd_open(const char *uri, const struct tm_block_options *opts,
				   struct tm_block_error *err);
/* A window of inner: bytes [offset, offset + size) (size 0: to the end), at any byte
 * alignment.  Never reads or writes a byte outside it: writes realign through
 * tm_block_pwrite on inner, which read-modify-writes the inner sectors cut by the window's
 * edges (their bytes outside the window are written back as read, so a concurrent writer
 * of those bytes could lose its write: the writer lock covers the whole source).  Its size
 * is fixed, except that a window to the end (size 0) of a growable device grows with it.
 * Takes ownership of inner (also on failure). */
struct tm_block *tm_block_window_new(struct tm_block *inner, uint64_t offset, uint64_t size,
				     struct tm_block_error *err);
/* Find partition n (1-based) in the MBR or GPT table at the start of inner and return a
 * window over it.  Takes ownership of inner (also on failure). */
struct tm_block *tm_block_partition_open(struct tm_block *inner, unsigned n,
					 struct tm_block_error *err);
/* An LRU cache of fixed-size chunks over inner, with readahead on sequential access;
 * thread-safe with sharded locks.  Writes go to inner at once (write-through, one at a
 * time) and then update the cached chunks they cover, or drop those they cover in part, so
 * that a read after a write returns the new bytes; a read filling a chunk while a write is
 * in progress does not keep what it read.  Takes ownership of inner. */
struct tm_block *tm_block_cache_new(struct tm_block *inner, uint64_t cache_bytes);

/* Whether source names an NBD URI. */
bool tm_block_is_nbd_uri(const char *source);

/* An in-memory device over data[0..len) (not copied; the caller keeps it alive). Used by
 * unit tests and fuzzers.  A partial last sector reads as if padded with zeros, like a
 * device whose last sector holds the end of an archive. */
struct tm_block *tm_block_mem_new(const void *data, size_t len, uint32_t sector_size);
/* The same, writable: writes change data[0..len) (a fixed size: the part of the partial
 * last sector past len is not stored).  flush does nothing; the writer lock always succeeds
 * (there is nobody to exclude). */
struct tm_block *tm_block_mem_new_rw(void *data, size_t len, uint32_t sector_size);

static inline void tm_block_get_info(struct tm_block *b, struct tm_block_info *info)
{
	*info = (struct tm_block_info){ 0 }; /* what a backend leaves unset is false or 0 */
	b->ops->get_info(b, info);
}
static inline int tm_block_read(struct tm_block *b, uint64_t sector, const struct iovec *iov,
				int iovcnt, struct tm_block_error *err)
{
	return b->ops->read(b, sector, iov, iovcnt, err);
}
static inline int tm_block_write(struct tm_block *b, uint64_t sector, const struct iovec *iov,
				 int iovcnt, struct tm_block_error *err)
{
	return b->ops->write(b, sector, iov, iovcnt, err);
}
/* Make every write that returned before the call durable (see tm_block_ops.flush).
 * Returns 0 at once on a source opened read-only. */
static inline int tm_block_flush(struct tm_block *b, struct tm_block_error *err)
{
	return b->ops->flush ? b->ops->flush(b, err) : 0;
}

/* Take the advisory writer lock of the source, so that two processes (or two tm_blocks of
 * one process) cannot interleave appends: an OFD lock (F_OFD_SETLK, F_OFD_SETLKW) on the
 * whole file or block device, held by this tm_block until unlock or disconnect, shared by
 * nobody else (not across fork).  Advisory: it stops only writers that take it too; GNU tar
 * does not.  The lock is on the file or device node itself: windows and partitions of one
 * device share one lock.  wait: block until the lock is free, else fail at once with
 * TM_BLOCK_LOCKED.  A source opened read-only gives TM_BLOCK_READ_ONLY; one that has no
 * lock (an NBD export) TM_BLOCK_NOT_SUPPORTED, which a caller may take as "proceed, but
 * warn".  Taking it again while holding it succeeds.  Once it is taken, get_info gives the
 * source as it is then (another writer may have grown it while this one waited). */
int tm_block_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err);
void tm_block_unlock_writer(struct tm_block *b);

bool tm_block_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base);
bool tm_block_changed(struct tm_block *b);
/* A SHA-256 (hex, 64 digits and a NUL) naming what the source holds, for keying a saved
 * index; false with err when the source cannot be read. */
bool tm_block_identity(struct tm_block *b, char out[65], struct tm_block_error *err);
/* Feed b's identity into sum (for decorators). */
bool tm_block_identity_update(struct tm_block *b, GChecksum *sum, struct tm_block_error *err);
void tm_block_disconnect(struct tm_block *b);

/* Exact size in bytes (size_bytes, or size_sectors * sector_size). */
uint64_t tm_block_size_bytes(struct tm_block *b);

/* Read len bytes at byte offset off, with no alignment requirement: sector-aligned middle
 * parts go straight into buf, unaligned edges through a bounce buffer.  Reading past the
 * exact end (tm_block_size_bytes) is TM_BLOCK_OUT_OF_RANGE.  Thread-safe. */
int tm_block_pread(struct tm_block *b, void *buf, size_t len, uint64_t off,
		   struct tm_block_error *err);

/* Write len bytes at byte offset off, with no alignment requirement: the counterpart of
 * tm_block_pread.  The sectors the range covers whole are written straight from buf; a
 * partial first or last sector is read, patched and written back (read-modify-write), unless
 * the source writes bytes itself (write_bytes).  Writing past the exact end is
 * TM_BLOCK_OUT_OF_RANGE, except on a growable device, which then ends at off + len or later.
 * Not atomic: a concurrent tm_block_pwrite touching the same sector can undo part of it (the
 * read-modify-write of one can write back the other's sector as it was before), so callers
 * serialise writers.  A write on a source that cannot be written fails with
 * TM_BLOCK_READ_ONLY before anything is read.  Thread-safe against readers. */
int tm_block_pwrite(struct tm_block *b, const void *buf, size_t len, uint64_t off,
		    struct tm_block_error *err);

/* Fill err and return -1; fmt may be NULL. */
int tm_block_fail(struct tm_block_error *err, enum tm_block_code code, int sys_errno,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Print err as one line without the source ("I/O error: Input/output error") into buf. */
const char *tm_block_strerror(const struct tm_block_error *err, char *buf, size_t size);

/* Shared by backends: check that iov is whole sectors and the range is inside the device;
 * returns the byte count or -1 with err filled. */
int64_t tm_block_check_range(const struct tm_block_info *info, uint64_t sector,
			     const struct iovec *iov, int iovcnt, struct tm_block_error *err);

/* write() for read-only backends, and for backends opened read-only: TM_BLOCK_READ_ONLY,
 * "opened read-only". */
int tm_block_write_read_only(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			     int iovcnt, struct tm_block_error *err);

/* Shared by backends: the tm_block_code for a failed write or flush's errno (ENOSPC, EDQUOT,
 * EFBIG: TM_BLOCK_NO_SPACE; EROFS, EPERM, EACCES, EBADF: TM_BLOCK_READ_ONLY; others
 * TM_BLOCK_IO). */
enum tm_block_code tm_block_write_code(int sys_errno);

/* Shared by backends: the writer lock as an OFD write lock on the whole of fd (which must be
 * open for writing), and its release. */
int tm_block_ofd_lock(int fd, bool wait, struct tm_block_error *err);
void tm_block_ofd_unlock(int fd);

/* Shared by backends: like tm_block_check_range, for a write (whole sectors; inside the
 * device unless info->growable). */
int64_t tm_block_check_write_range(const struct tm_block_info *info, uint64_t sector,
				   const struct iovec *iov, int iovcnt,
				   struct tm_block_error *err);

#endif
