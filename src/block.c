/* Backend-independent parts of the block layer: opening by source string, unaligned reads
 * and writes, the writer lock's wrappers, error printing. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

#include "block.h"

int tm_block_fail(struct tm_block_error *err, enum tm_block_code code, int sys_errno,
		  const char *fmt, ...)
{
	if (!err)
		return -1;
	err->code = code;
	err->sys_errno = sys_errno;
	err->msg[0] = '\0';
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static const char *code_text(enum tm_block_code code)
{
	switch (code) {
	case TM_BLOCK_OK: return "no error";
	case TM_BLOCK_IO: return "I/O error";
	case TM_BLOCK_READ_ONLY: return "not writable";
	case TM_BLOCK_OUT_OF_RANGE: return "past the end of the device";
	case TM_BLOCK_UNALIGNED: return "buffer is not a whole number of sectors";
	case TM_BLOCK_DISCONNECTED: return "device disconnected";
	case TM_BLOCK_OPEN: return "cannot open";
	case TM_BLOCK_INVALID: return "not a usable source";
	case TM_BLOCK_NO_SPACE: return "no space left";
	case TM_BLOCK_LOCKED: return "locked by another writer";
	case TM_BLOCK_NOT_SUPPORTED: return "not supported";
	}
	return "unknown error";
}

const char *tm_block_strerror(const struct tm_block_error *err, char *buf, size_t size)
{
	const char *sys = err->sys_errno ? strerror(err->sys_errno) : NULL;
	if (err->msg[0] && sys)
		snprintf(buf, size, "%s: %s: %s", code_text(err->code), err->msg, sys);
	else if (err->msg[0] || sys)
		snprintf(buf, size, "%s: %s", code_text(err->code), err->msg[0] ? err->msg : sys);
	else
		snprintf(buf, size, "%s", code_text(err->code));
	return buf;
}

bool tm_block_is_nbd_uri(const char *source)
{
	static const char *const schemes[] = { "nbd://", "nbds://", "nbd+unix://", "nbds+unix://" };
	for (size_t i = 0; i < sizeof schemes / sizeof *schemes; i++)
		if (!strncmp(source, schemes[i], strlen(schemes[i])))
			return true;
	return false;
}

struct tm_block *tm_block_open(const char *source, const struct tm_block_options *opts,
			       struct tm_block_error *err)
{
	static const struct tm_block_options defaults = { .cache = -1 };
	if (!opts)
		opts = &defaults;
	if (!source || !*source) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "empty source name");
		return NULL;
	}
	struct tm_block *b;
	bool nbd = tm_block_is_nbd_uri(source), device = false;
	struct stat st;
	if (nbd)
		b = tm_block_nbd_open(source, opts, err);
	else if (stat(source, &st) == 0 && S_ISBLK(st.st_mode))
		b = tm_block_device_open(source, opts, err), device = true;
	else
		b = tm_block_file_open(source, opts, err);
	if (b && opts->partition)
		b = tm_block_partition_open(b, opts->partition, err);
	if (b && (opts->offset || opts->size))
		b = tm_block_window_new(b, opts->offset, opts->size, err);
	bool cache = opts->cache > 0 || (opts->cache < 0 && (nbd || (device && opts->direct)));
	if (b && cache)
		b = tm_block_cache_new(b, opts->cache_size ? opts->cache_size : 64u << 20);
	return b;
}

bool tm_block_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base)
{
	return b->ops->get_fd && b->ops->get_fd(b, fd, fd_base);
}

bool tm_block_changed(struct tm_block *b)
{
	return b->ops->changed && b->ops->changed(b);
}

bool tm_block_identity_update(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	if (b->ops->identity)
		return b->ops->identity(b, sum, err);
	/* A device or an export: its size and the data at both ends.  A new archive written
	 * over the old one changes its start; one that has grown, its end. */
	enum { SPAN = 1 << 20 };
	uint64_t size = tm_block_size_bytes(b);
	g_checksum_update(sum, (const guchar *)&size, sizeof size);
	size_t n = size < SPAN ? (size_t)size : SPAN;
	uint8_t *buf = g_malloc(n ? n : 1);
	bool ok = tm_block_pread(b, buf, n, 0, err) == 0;
	if (ok)
		g_checksum_update(sum, buf, (gssize)n);
	if (ok && size > SPAN) {
		ok = tm_block_pread(b, buf, n, size - n, err) == 0;
		if (ok)
			g_checksum_update(sum, buf, (gssize)n);
	}
	g_free(buf);
	return ok;
}

bool tm_block_identity(struct tm_block *b, char out[65], struct tm_block_error *err)
{
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	bool ok = tm_block_identity_update(b, sum, err);
	if (ok)
		g_strlcpy(out, g_checksum_get_string(sum), 65);
	g_checksum_free(sum);
	return ok;
}

void tm_block_disconnect(struct tm_block *b)
{
	if (b)
		b->ops->disconnect(b);
}

uint64_t tm_block_size_bytes(struct tm_block *b)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(b, &info);
	return info.size_bytes ? info.size_bytes : info.size_sectors * info.sector_size;
}

int64_t tm_block_check_range(const struct tm_block_info *info, uint64_t sector,
			     const struct iovec *iov, int iovcnt, struct tm_block_error *err)
{
	uint64_t bytes = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len % info->sector_size)
			return tm_block_fail(err, TM_BLOCK_UNALIGNED, 0, "buffer of %zu bytes",
					     iov[i].iov_len);
		bytes += iov[i].iov_len;
	}
	uint64_t n = bytes / info->sector_size;
	if (sector > info->size_sectors || n > info->size_sectors - sector)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
				     "sectors %llu+%llu of %llu", (unsigned long long)sector,
				     (unsigned long long)n, (unsigned long long)info->size_sectors);
	return (int64_t)bytes;
}

int64_t tm_block_check_write_range(const struct tm_block_info *info, uint64_t sector,
				   const struct iovec *iov, int iovcnt,
				   struct tm_block_error *err)
{
	if (!info->growable)
		return tm_block_check_range(info, sector, iov, iovcnt, err);
	uint64_t bytes = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len % info->sector_size)
			return tm_block_fail(err, TM_BLOCK_UNALIGNED, 0, "buffer of %zu bytes",
					     iov[i].iov_len);
		bytes += iov[i].iov_len;
	}
	/* A file cannot go past what off_t holds. */
	uint64_t max = (uint64_t)INT64_MAX / info->sector_size;
	if (sector > max || bytes / info->sector_size > max - sector)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "sectors %llu+%llu",
				     (unsigned long long)sector,
				     (unsigned long long)(bytes / info->sector_size));
	return (int64_t)bytes;
}

int tm_block_write_read_only(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			     int iovcnt, struct tm_block_error *err)
{
	(void)b, (void)sector, (void)iov, (void)iovcnt;
	return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
}

enum tm_block_code tm_block_write_code(int sys_errno)
{
	switch (sys_errno) {
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return TM_BLOCK_NO_SPACE;
	case EROFS:
	case EPERM:
	case EACCES:
	case EBADF:
		return TM_BLOCK_READ_ONLY;
	default:
		return TM_BLOCK_IO;
	}
}

/* Why b cannot be written: its write()'s refusal. */
static int refusal(struct tm_block *b, struct tm_block_error *err)
{
	if (b->ops->write(b, 0, NULL, 0, err) < 0)
		return -1;
	return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
}

int tm_block_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(b, &info);
	if (!info.read_write)
		return refusal(b, err);
	if (!b->ops->lock_writer)
		return tm_block_fail(err, TM_BLOCK_NOT_SUPPORTED, 0,
				     "this source (%s) has no writer lock", b->ops->name);
	return b->ops->lock_writer(b, wait, err);
}

void tm_block_unlock_writer(struct tm_block *b)
{
	if (b->ops->unlock_writer)
		b->ops->unlock_writer(b);
}

int tm_block_ofd_lock(int fd, bool wait, struct tm_block_error *err)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	for (;;) {
		if (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0)
			return 0;
		int e = errno;
		if (e == EINTR)
			continue;
		if (e == EAGAIN || e == EACCES)
			return tm_block_fail(err, TM_BLOCK_LOCKED, 0,
					     "another process, or another open of it, holds its OFD lock");
		if (e == EINVAL) /* a kernel before 3.15, or a filesystem without locks */
			return tm_block_fail(err, TM_BLOCK_NOT_SUPPORTED, e,
					     "no OFD lock on this file");
		if (e == ENOLCK)
			return tm_block_fail(err, TM_BLOCK_NOT_SUPPORTED, e,
					     "the filesystem cannot lock this file");
		if (e == EDEADLK)
			return tm_block_fail(err, TM_BLOCK_LOCKED, e, "taking the writer lock");
		return tm_block_fail(err, TM_BLOCK_IO, e, "taking the writer lock");
	}
}

void tm_block_ofd_unlock(int fd)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
	(void)fcntl(fd, F_OFD_SETLK, &fl);
}

/* Bounce-buffer size for unaligned edges; requests are split into chunks of this size too,
 * so a caller's huge unaligned read never needs a huge temporary. */
#define BOUNCE_MAX (256u * 1024)

int tm_block_pread(struct tm_block *b, void *buf, size_t len, uint64_t off,
		   struct tm_block_error *err)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(b, &info);
	uint64_t ss = info.sector_size;
	uint64_t dev = info.size_bytes ? info.size_bytes : info.size_sectors * ss;
	if (off > dev || len > dev - off)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "bytes %llu+%zu of %llu",
				     (unsigned long long)off, len, (unsigned long long)dev);
	uint8_t *out = buf;
	uint8_t *bounce = NULL;
	int rc = 0;
	const uint64_t end = off + len;
	while (len > 0) {
		uint64_t head = off % ss;
		if (head == 0 && len >= ss) {
			/* Aligned middle: straight into the caller's buffer. */
			size_t n = len - len % ss;
			struct iovec iov = { out, n };
			if (tm_block_read(b, off / ss, &iov, 1, err) < 0) {
				rc = -1;
				break;
			}
			out += n, off += n, len -= n;
			continue;
		}
		/* An unaligned edge: read whole sectors covering it into the bounce buffer. */
		uint64_t span = head + len;
		span = (span + ss - 1) / ss * ss;
		if (span > BOUNCE_MAX)
			span = BOUNCE_MAX > ss ? BOUNCE_MAX - BOUNCE_MAX % ss : ss;
		/* Sized for this edge (usually a sector or two), not for the largest one. */
		if (!bounce && !(bounce = aligned_alloc(4096, (span + 4095) / 4096 * 4096))) {
			rc = tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
			break;
		}
		struct iovec iov = { bounce, span };
		if (tm_block_read(b, off / ss, &iov, 1, err) < 0) {
			rc = -1;
			break;
		}
		size_t n = span - head < len ? span - head : len;
		memcpy(out, bounce + head, n);
		out += n, off += n, len -= n;
	}
	free(bounce);
	/* A size still pending when the range was checked may have become known since, and
	 * short of end: what was read past it is the zeros of a partial last sector. */
	if (rc == 0 && info.size_pending) {
		tm_block_get_info(b, &info);
		dev = info.size_bytes ? info.size_bytes : info.size_sectors * ss;
		if (!info.size_pending && end > dev)
			rc = tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "bytes up to %llu of %llu",
					   (unsigned long long)end, (unsigned long long)dev);
	}
	return rc;
}

int tm_block_pwrite(struct tm_block *b, const void *buf, size_t len, uint64_t off,
		    struct tm_block_error *err)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(b, &info);
	if (!info.read_write) /* the backend's own refusal, with its reason */
		return refusal(b, err);
	if (b->ops->write_bytes)
		return b->ops->write_bytes(b, buf, len, off, err);
	uint64_t ss = info.sector_size;
	uint64_t dev = info.size_bytes ? info.size_bytes : info.size_sectors * ss;
	if (!info.growable && (off > dev || len > dev - off))
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "writing bytes %llu+%zu of %llu",
				     (unsigned long long)off, len, (unsigned long long)dev);
	if (info.growable && (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off))
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "writing bytes %llu+%zu",
				     (unsigned long long)off, len);
	const uint8_t *in = buf;
	uint8_t *bounce = NULL;
	int rc = 0;
	while (len > 0) {
		uint64_t head = off % ss;
		if (head == 0 && len >= ss) {
			/* Whole sectors: straight from the caller's buffer. */
			size_t n = len - len % ss;
			struct iovec iov = { (void *)in, n };
			if (tm_block_write(b, off / ss, &iov, 1, err) < 0) {
				rc = -1;
				break;
			}
			in += n, off += n, len -= n;
			continue;
		}
		/* A partial sector at an edge: read it, patch it, write it back.  Past the end of
		 * a growable device there is nothing to read: the sector is zeros. */
		if (!bounce && !(bounce = aligned_alloc(4096, (ss + 4095) / 4096 * 4096))) {
			rc = tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
			break;
		}
		struct iovec iov = { bounce, ss };
		uint64_t sector = off / ss;
		if (info.growable && sector >= info.size_sectors) {
			memset(bounce, 0, ss);
		} else if (tm_block_read(b, sector, &iov, 1, err) < 0) {
			rc = -1;
			break;
		}
		size_t n = ss - head < len ? ss - head : len;
		memcpy(bounce + head, in, n);
		if (tm_block_write(b, sector, &iov, 1, err) < 0) {
			rc = -1;
			break;
		}
		in += n, off += n, len -= n;
	}
	free(bounce);
	return rc;
}
