/* The raw block-device backend: a tar stream written straight onto a disk or partition.
 * Opened read-only (never a byte written) unless read_write asks, read and written in whole
 * logical sectors, optionally with O_DIRECT through sector-aligned buffers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "block.h"

struct block_device {
	struct tm_block base;
	int fd;
	bool direct;
	bool rw;
	uint32_t sector_size;
	uint64_t sectors;
	_Atomic int flush_errno; /* a flush failed (sticky): its errno */
};

static void device_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_device *d = (struct block_device *)b;
	info->read_write = d->rw;
	info->sector_size = d->sector_size;
	info->size_sectors = d->sectors;
	info->size_bytes = 0;
}

/* pread in full, retrying short reads and EINTR. */
static int read_full(struct block_device *d, void *buf, size_t len, off_t off,
		     struct tm_block_error *err)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(d->fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tm_block_fail(err, TM_BLOCK_IO, errno, "reading at byte %lld",
					     (long long)off);
		if (n == 0)
			return tm_block_fail(err, TM_BLOCK_IO, EIO, "device ends at byte %lld",
					     (long long)off);
		p += n, len -= (size_t)n, off += n;
	}
	return 0;
}

/* O_DIRECT needs buffer addresses aligned to the logical sector: callers' buffers that are
 * not go through an aligned bounce buffer. */
static int read_direct(struct block_device *d, void *buf, size_t len, off_t off,
		       struct tm_block_error *err)
{
	if ((uintptr_t)buf % d->sector_size == 0)
		return read_full(d, buf, len, off, err);
	enum { BOUNCE = 1 << 20 };
	void *bounce = aligned_alloc(4096, BOUNCE);
	if (!bounce)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
	int rc = 0;
	for (size_t done = 0; done < len && rc == 0;) {
		size_t n = len - done < BOUNCE ? len - done : BOUNCE;
		rc = read_full(d, bounce, n, off + (off_t)done, err);
		if (rc == 0)
			memcpy((uint8_t *)buf + done, bounce, n);
		done += n;
	}
	free(bounce);
	return rc;
}

static int device_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		       struct tm_block_error *err)
{
	struct block_device *d = (struct block_device *)b;
	struct tm_block_info info = { 0 };
	device_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	off_t off = (off_t)(sector * d->sector_size);
	for (int i = 0; i < iovcnt; i++) {
		int rc = d->direct ? read_direct(d, iov[i].iov_base, iov[i].iov_len, off, err)
				   : read_full(d, iov[i].iov_base, iov[i].iov_len, off, err);
		if (rc < 0)
			return -1;
		off += (off_t)iov[i].iov_len;
	}
	return 0;
}

/* pwrite in full, retrying short writes and EINTR. */
static int write_full(struct block_device *d, const void *buf, size_t len, off_t off,
		      struct tm_block_error *err)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(d->fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : ENOSPC; /* 0: at the end of the device */
			return tm_block_fail(err, tm_block_write_code(e), e, "writing at byte %lld",
					     (long long)off);
		}
		p += n, len -= (size_t)n, off += n;
	}
	return 0;
}

/* The same rule as read_direct, for writes. */
static int write_direct(struct block_device *d, const void *buf, size_t len, off_t off,
			struct tm_block_error *err)
{
	if ((uintptr_t)buf % d->sector_size == 0)
		return write_full(d, buf, len, off, err);
	enum { BOUNCE = 1 << 20 };
	void *bounce = aligned_alloc(4096, BOUNCE);
	if (!bounce)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
	int rc = 0;
	for (size_t done = 0; done < len && rc == 0;) {
		size_t n = len - done < BOUNCE ? len - done : BOUNCE;
		memcpy(bounce, (const uint8_t *)buf + done, n);
		rc = write_full(d, bounce, n, off + (off_t)done, err);
		done += n;
	}
	free(bounce);
	return rc;
}

static int device_write(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			int iovcnt, struct tm_block_error *err)
{
	struct block_device *d = (struct block_device *)b;
	if (!d->rw)
		return tm_block_write_read_only(b, sector, iov, iovcnt, err);
	struct tm_block_info info = { 0 };
	device_get_info(b, &info);
	if (tm_block_check_write_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	off_t off = (off_t)(sector * d->sector_size);
	for (int i = 0; i < iovcnt; i++) {
		int rc = d->direct ? write_direct(d, iov[i].iov_base, iov[i].iov_len, off, err)
				   : write_full(d, iov[i].iov_base, iov[i].iov_len, off, err);
		if (rc < 0)
			return -1;
		off += (off_t)iov[i].iov_len;
	}
	return 0;
}

/* fdatasync on a block device writes its dirty page cache and then flushes the device's
 * volatile write cache (a FLUSH request); BLKFLSBUF would also drop clean pages other
 * openers share, and is not needed. */
static int device_flush(struct tm_block *b, struct tm_block_error *err)
{
	struct block_device *d = (struct block_device *)b;
	if (!d->rw)
		return 0;
	int e = atomic_load(&d->flush_errno);
	if (e)
		return tm_block_fail(err, tm_block_write_code(e), e,
				     "an earlier fdatasync failed: what was written before it "
				     "may not be on the device");
	if (fdatasync(d->fd) == 0)
		return 0;
	e = errno;
	atomic_store(&d->flush_errno, e);
	return tm_block_fail(err, tm_block_write_code(e), e, "fdatasync");
}

static int device_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	struct block_device *d = (struct block_device *)b;
	if (!d->rw)
		return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
	return tm_block_ofd_lock(d->fd, wait, err);
}

static void device_unlock_writer(struct tm_block *b)
{
	struct block_device *d = (struct block_device *)b;
	if (d->rw)
		tm_block_ofd_unlock(d->fd);
}

static bool device_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base)
{
	struct block_device *d = (struct block_device *)b;
	if (d->direct) /* splicing would bypass O_DIRECT's alignment rules */
		return false;
	*fd = d->fd;
	*fd_base = 0;
	return true;
}

static void device_disconnect(struct tm_block *b)
{
	struct block_device *d = (struct block_device *)b;
	close(d->fd); /* also releases the writer lock */
	g_free(b->source);
	g_free(d);
}

static const struct tm_block_ops device_ops = {
	.name = "device",
	.get_info = device_get_info,
	.read = device_read,
	.write = device_write,
	.flush = device_flush,
	.lock_writer = device_lock_writer,
	.unlock_writer = device_unlock_writer,
	.get_fd = device_get_fd,
	.disconnect = device_disconnect,
};

struct tm_block *tm_block_device_open(const char *path, const struct tm_block_options *opts,
				      struct tm_block_error *err)
{
	bool rw = opts && opts->read_write;
	int flags = (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | (opts && opts->direct ? O_DIRECT : 0);
	int fd = open(path, flags);
	if (fd < 0) {
		int e = errno;
		if (rw && (e == EROFS || e == EACCES || e == EPERM))
			tm_block_fail(err, TM_BLOCK_READ_ONLY, e, "cannot open for writing");
		else
			tm_block_fail(err, TM_BLOCK_OPEN, e, NULL);
		return NULL;
	}
	uint64_t bytes;
	int ssz;
	if (ioctl(fd, BLKGETSIZE64, &bytes) < 0 || ioctl(fd, BLKSSZGET, &ssz) < 0) {
		tm_block_fail(err, TM_BLOCK_INVALID, errno, "not a block device");
		close(fd);
		return NULL;
	}
	if (ssz < 512 || (ssz & (ssz - 1))) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "odd logical sector size %d", ssz);
		close(fd);
		return NULL;
	}
	int ro = 0;
	if (rw && ioctl(fd, BLKROGET, &ro) == 0 && ro) {
		tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "the device is read-only (BLKROGET)");
		close(fd);
		return NULL;
	}
	struct block_device *d = g_new0(struct block_device, 1);
	d->base.ops = &device_ops;
	d->base.source = g_strdup(path);
	d->fd = fd;
	d->direct = opts && opts->direct;
	d->rw = rw;
	atomic_init(&d->flush_errno, 0);
	d->sector_size = (uint32_t)ssz;
	d->sectors = bytes / (uint64_t)ssz;
	return &d->base;
}
