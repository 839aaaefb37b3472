/* The regular-file backend: pread on one descriptor, safe from any number of threads.
 * Opened read_write, it writes with pwrite (growing the file when a write ends past it),
 * flushes with fdatasync and takes the writer lock as an OFD lock. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "block.h"

#define FILE_SECTOR 512u

struct block_file {
	struct tm_block base;
	int fd;
	bool rw;
	_Atomic uint64_t size; /* bytes: opened.st_size, which grows with writes */
	/* Read-write only: held for a write and the fstat after it, and to read `opened`,
	 * which they refresh (so that this backend's own writes are no change). */
	pthread_mutex_t lock;
	struct stat opened; /* identity and version of the file when opened or last written */
	_Atomic int flush_errno; /* a flush failed (sticky): its errno */
};

static void file_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_file *f = (struct block_file *)b;
	uint64_t size = atomic_load_explicit(&f->size, memory_order_acquire);
	info->read_write = f->rw;
	info->growable = f->rw;
	info->sector_size = FILE_SECTOR;
	info->size_sectors = (size + FILE_SECTOR - 1) / FILE_SECTOR;
	info->size_bytes = size;
}

static int file_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	struct tm_block_info info = { 0 };
	file_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	off_t off = (off_t)(sector * FILE_SECTOR);
	for (int i = 0; i < iovcnt; i++) {
		uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left > 0) {
			ssize_t n = pread(f->fd, p, left, off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return tm_block_fail(err, TM_BLOCK_IO, errno, "reading at byte %lld",
						     (long long)off);
			if (n == 0 && (uint64_t)off >= info.size_bytes) { /* the partial last sector */
				memset(p, 0, left);
				break;
			}
			if (n == 0) /* the file shrank under us */
				return tm_block_fail(err, TM_BLOCK_IO, EIO,
						     "file ends early at byte %lld", (long long)off);
			p += n, left -= (size_t)n, off += n;
		}
	}
	return 0;
}

/* Write len bytes at off in full (retrying short writes and EINTR), then take the file's new
 * size and times as its version.  What a failed write did write counts too. */
static int store(struct block_file *f, const uint8_t *p, size_t len, uint64_t off,
		 struct tm_block_error *err)
{
	int rc = 0;
	uint64_t at = off;
	pthread_mutex_lock(&f->lock);
	while (len > 0) {
		ssize_t n = pwrite(f->fd, p, len, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			rc = tm_block_fail(err, tm_block_write_code(e), e, "writing at byte %llu",
					   (unsigned long long)at);
			break;
		}
		p += n, len -= (size_t)n, at += (uint64_t)n;
	}
	uint64_t size = (uint64_t)f->opened.st_size;
	if (at > size)
		size = at;
	struct stat st;
	if (fstat(f->fd, &st) == 0) {
		f->opened = st;
		/* Someone else's truncation or growth since stays a change. */
		f->opened.st_size = (off_t)size;
	}
	atomic_store_explicit(&f->size, size, memory_order_release);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

static int file_write(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		      struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	if (!f->rw)
		return tm_block_write_read_only(b, sector, iov, iovcnt, err);
	struct tm_block_info info = { 0 };
	file_get_info(b, &info);
	if (tm_block_check_write_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t off = sector * FILE_SECTOR;
	for (int i = 0; i < iovcnt; i++) {
		if (store(f, iov[i].iov_base, iov[i].iov_len, off, err) < 0)
			return -1;
		off += iov[i].iov_len;
	}
	return 0;
}

static int file_write_bytes(struct tm_block *b, const void *buf, size_t len, uint64_t off,
			    struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	if (!f->rw)
		return tm_block_write_read_only(b, 0, NULL, 0, err);
	if (off > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - off)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "writing bytes %llu+%zu",
				     (unsigned long long)off, len);
	return store(f, buf, len, off, err);
}

static int file_flush(struct tm_block *b, struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	if (!f->rw)
		return 0;
	int e = atomic_load(&f->flush_errno);
	if (e)
		return tm_block_fail(err, tm_block_write_code(e), e,
				     "an earlier fdatasync failed: what was written before it "
				     "may not be on disk");
	if (fdatasync(f->fd) == 0)
		return 0;
	e = errno;
	atomic_store(&f->flush_errno, e);
	return tm_block_fail(err, tm_block_write_code(e), e, "fdatasync");
}

static int file_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	if (!f->rw)
		return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
	if (tm_block_ofd_lock(f->fd, wait, err) < 0)
		return -1;
	/* Another writer may have changed the file while we waited: what it is now is the
	 * version this holder of the lock starts from (its size, and what changed() compares
	 * against). */
	struct stat st;
	pthread_mutex_lock(&f->lock);
	if (fstat(f->fd, &st) == 0) {
		f->opened = st;
		atomic_store_explicit(&f->size, (uint64_t)st.st_size, memory_order_release);
	}
	pthread_mutex_unlock(&f->lock);
	return 0;
}

static void file_unlock_writer(struct tm_block *b)
{
	struct block_file *f = (struct block_file *)b;
	if (f->rw)
		tm_block_ofd_unlock(f->fd);
}

static bool file_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base)
{
	*fd = ((struct block_file *)b)->fd;
	*fd_base = 0;
	return true;
}

/* The version to compare against: the one opened, or the one after this backend's last
 * write. */
static void version(struct block_file *f, struct stat *st)
{
	if (!f->rw) {
		*st = f->opened; /* never changes */
		return;
	}
	pthread_mutex_lock(&f->lock);
	*st = f->opened;
	pthread_mutex_unlock(&f->lock);
}

static bool file_changed(struct tm_block *b)
{
	struct block_file *f = (struct block_file *)b;
	struct stat st, was;
	/* Under the lock when writable: a write between the fstat and the comparison would
	 * look like someone else's. */
	if (f->rw)
		pthread_mutex_lock(&f->lock);
	bool ok = fstat(f->fd, &st) == 0;
	was = f->opened;
	if (f->rw)
		pthread_mutex_unlock(&f->lock);
	if (!ok)
		return true;
	return st.st_size != was.st_size ||
	       st.st_mtim.tv_sec != was.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != was.st_mtim.tv_nsec;
}

static bool file_identity(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	(void)err;
	struct stat v;
	version((struct block_file *)b, &v);
	const struct stat *st = &v;
	char id[160];
	/* ctime too: a rewrite that restores size and mtime (touch -r) still changes it. */
	snprintf(id, sizeof id, "file:%llu:%llu:%lld:%lld.%09ld:%lld.%09ld",
		 (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
		 (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
		 (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
	g_checksum_update(sum, (const guchar *)id, (gssize)strlen(id));
	return true;
}

static void file_disconnect(struct tm_block *b)
{
	struct block_file *f = (struct block_file *)b;
	close(f->fd); /* also releases the writer lock */
	pthread_mutex_destroy(&f->lock);
	g_free(b->source);
	g_free(f);
}

static const struct tm_block_ops file_ops = {
	.name = "file",
	.get_info = file_get_info,
	.read = file_read,
	.write = file_write,
	.write_bytes = file_write_bytes,
	.flush = file_flush,
	.lock_writer = file_lock_writer,
	.unlock_writer = file_unlock_writer,
	.get_fd = file_get_fd,
	.changed = file_changed,
	.identity = file_identity,
	.disconnect = file_disconnect,
};

struct tm_block *tm_block_file_open(const char *path, const struct tm_block_options *opts,
				    struct tm_block_error *err)
{
	bool rw = opts && opts->read_write;
	int fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (rw && (e == EROFS || e == EACCES || e == EPERM || e == ETXTBSY))
			tm_block_fail(err, TM_BLOCK_READ_ONLY, e, "cannot open for writing");
		else if (rw && e == EISDIR)
			tm_block_fail(err, TM_BLOCK_INVALID, e, NULL);
		else
			tm_block_fail(err, TM_BLOCK_OPEN, e, NULL);
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		tm_block_fail(err, TM_BLOCK_OPEN, errno, NULL);
		close(fd);
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		tm_block_fail(err, TM_BLOCK_INVALID, EISDIR, NULL);
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "not a regular file");
		close(fd);
		return NULL;
	}
	struct block_file *f = g_new0(struct block_file, 1);
	f->base.ops = &file_ops;
	f->base.source = g_strdup(path);
	f->fd = fd;
	f->rw = rw;
	f->opened = st;
	atomic_init(&f->size, (uint64_t)st.st_size);
	atomic_init(&f->flush_errno, 0);
	pthread_mutex_init(&f->lock, NULL);
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	return &f->base;
}
