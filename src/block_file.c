/* The regular-file backend: pread on one descriptor, safe from any number of threads. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
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
	uint64_t sectors;
	struct stat opened; /* identity and version of the file when opened */
};

static void file_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_file *f = (struct block_file *)b;
	info->read_write = false;
	info->sector_size = FILE_SECTOR;
	info->size_sectors = f->sectors;
	info->size_bytes = (uint64_t)f->opened.st_size;
}

static int file_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err)
{
	struct block_file *f = (struct block_file *)b;
	struct tm_block_info info;
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
			if (n == 0 && off >= f->opened.st_size) { /* the partial last sector */
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

static bool file_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base)
{
	*fd = ((struct block_file *)b)->fd;
	*fd_base = 0;
	return true;
}

static bool file_changed(struct tm_block *b)
{
	struct block_file *f = (struct block_file *)b;
	struct stat st;
	if (fstat(f->fd, &st) < 0)
		return true;
	return st.st_size != f->opened.st_size ||
	       st.st_mtim.tv_sec != f->opened.st_mtim.tv_sec ||
	       st.st_mtim.tv_nsec != f->opened.st_mtim.tv_nsec;
}

static bool file_identity(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	(void)err;
	const struct stat *st = &((struct block_file *)b)->opened;
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
	close(f->fd);
	g_free(b->source);
	g_free(f);
}

static const struct tm_block_ops file_ops = {
	.name = "file",
	.get_info = file_get_info,
	.read = file_read,
	.write = tm_block_write_read_only,
	.get_fd = file_get_fd,
	.changed = file_changed,
	.identity = file_identity,
	.disconnect = file_disconnect,
};

struct tm_block *tm_block_file_open(const char *path, const struct tm_block_options *opts,
				    struct tm_block_error *err)
{
	(void)opts;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tm_block_fail(err, TM_BLOCK_OPEN, errno, NULL);
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
	f->opened = st;
	f->sectors = ((uint64_t)st.st_size + FILE_SECTOR - 1) / FILE_SECTOR;
	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	return &f->base;
}
