/* Block backends: a sector-addressed, read-mostly device, after MirageOS Mirage_block.S.
 *
 * Every source the user can name (a regular file, a raw block device, an NBD export) is a
 * tm_block.  Decorators (a cache, an offset window) are tm_blocks that wrap another one through
 * the same vtable, so nothing above this layer knows which it is talking to.
 *
 * Thread safety: read() and get_info() may be called from many threads at once on the same
 * tm_block.  disconnect() must be called once, after every reader is done. */
#ifndef TM_BLOCK_H
#define TM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <glib.h>

enum tm_block_code {
	TM_BLOCK_OK = 0,
	TM_BLOCK_IO,           /* the device failed a read; sys_errno says how */
	TM_BLOCK_READ_ONLY,    /* write() on a read-only device */
	TM_BLOCK_OUT_OF_RANGE, /* sector range past the end of the device */
	TM_BLOCK_UNALIGNED,    /* a buffer that is not a whole number of sectors */
	TM_BLOCK_DISCONNECTED, /* used after disconnect, or the server went away */
	TM_BLOCK_OPEN,         /* the source could not be opened */
	TM_BLOCK_INVALID,      /* the source string does not name a usable device */
};

/* An error with enough context to print one clear line.  msg is empty or a short detail
 * ("Connection refused", "offset 12345 past the end"); it never repeats the code. */
struct tm_block_error {
	enum tm_block_code code;
	int sys_errno;
	char msg[200];
};

struct tm_block_info {
	bool read_write;
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
	int (*write)(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err);
	/* Optional (may be NULL): a file descriptor whose byte offset fd_base + x holds byte x of
	 * this device, for zero-copy splicing.  Returns false when there is none. */
	bool (*get_fd)(struct tm_block *b, int *fd, uint64_t *fd_base);
	/* Optional (may be NULL): true when the source is no longer what was opened (a file
	 * rewritten or truncated in place), so that readers get EIO instead of other bytes. */
	bool (*changed)(struct tm_block *b);
	/* Optional (may be NULL): feed what identifies this source's contents cheaply into
	 * sum (a file: device, inode, size, modification time; a window: its inner device's
	 * identity and its bounds).  Without it, the size and the first and last MiB are.
	 * Returns false with err filled when the identity could not be read (then sum must
	 * not be used: a partial identity could match another source's). */
	bool (*identity)(struct tm_block *b, GChecksum *sum, struct tm_block_error *err);
	/* Free everything; for a decorator, also disconnects what it wraps. */
	void (*disconnect)(struct tm_block *b);
};

struct tm_block {
	const struct tm_block_ops *ops;
	char *source; /* what the user typed, for messages; owned */
};

/* Options that select and shape a backend; zero-initialised means defaults. */
struct tm_block_options {
	bool direct;          /* O_DIRECT where the backend supports it (block devices) */
	unsigned partition;   /* 0: whole source; N: partition N of its MBR or GPT table */
	uint64_t offset;      /* a window starting at this byte ... */
	uint64_t size;        /* ... of this many bytes (0: to the end) */
	int cache;            /* -1: default (on for NBD and O_DIRECT), 0: off, 1: on */
	uint64_t cache_size;  /* bytes; 0: the default (64 MiB) */
	unsigned timeout;     /* NBD: seconds before a stalled request fails; 0: default (30) */
};

/* Open the backend named by source: "nbd://", "nbds://", "nbd+unix://" and "nbds+unix://"
 * URIs are NBD exports, a block device path a raw device, anything else a regular file.
 * Then, as opts ask: a partition or offset window over it, and a cache over that.  Returns
 * NULL and fills err on failure. */
struct tm_block *tm_block_open(const char *source, const struct tm_block_options *opts,
			       struct tm_block_error *err);

/* The backends and decorators tm_block_open assembles. */
struct tm_block *tm_block_file_open(const char *path, const struct tm_block_options *opts,
				    struct tm_block_error *err);
/* A block device: size from BLKGETSIZE64, sector size from BLKSSZGET, read-only open,
 * O_DIRECT with aligned bounce buffers when opts->direct. */
struct tm_block *tm_block_device_open(const char *path, const struct tm_block_options *opts,
				      struct tm_block_error *err);
/* An NBD export through libnbd (several connections where the server allows multi-conn). */
struct tm_block *tm_block_nbd_open(const char *uri, const struct tm_block_options *opts,
				   struct tm_block_error *err);
/* A window of inner: bytes [offset, offset + size) (size 0: to the end), at any byte
 * alignment.  Takes ownership of inner (also on failure). */
struct tm_block *tm_block_window_new(struct tm_block *inner, uint64_t offset, uint64_t size,
				     struct tm_block_error *err);
/* Find partition n (1-based) in the MBR or GPT table at the start of inner and return a
 * window over it.  Takes ownership of inner (also on failure). */
struct tm_block *tm_block_partition_open(struct tm_block *inner, unsigned n,
					 struct tm_block_error *err);
/* An LRU cache of fixed-size chunks over inner, with readahead on sequential access;
 * thread-safe with sharded locks.  Takes ownership of inner. */
struct tm_block *tm_block_cache_new(struct tm_block *inner, uint64_t cache_bytes);

/* Whether source names an NBD URI. */
bool tm_block_is_nbd_uri(const char *source);

/* An in-memory device over data[0..len) (not copied; the caller keeps it alive). Used by
 * unit tests and fuzzers.  A partial last sector reads as if padded with zeros, like a
 * device whose last sector holds the end of an archive. */
struct tm_block *tm_block_mem_new(const void *data, size_t len, uint32_t sector_size);

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

/* Fill err and return -1; fmt may be NULL. */
int tm_block_fail(struct tm_block_error *err, enum tm_block_code code, int sys_errno,
		  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Print err as one line without the source ("I/O error: Input/output error") into buf. */
const char *tm_block_strerror(const struct tm_block_error *err, char *buf, size_t size);

/* Shared by backends: check that iov is whole sectors and the range is inside the device;
 * returns the byte count or -1 with err filled. */
int64_t tm_block_check_range(const struct tm_block_info *info, uint64_t sector,
			     const struct iovec *iov, int iovcnt, struct tm_block_error *err);

/* write() for read-only backends. */
int tm_block_write_read_only(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			     int iovcnt, struct tm_block_error *err);

#endif
