/* An in-memory device over a caller's buffer, for unit tests and fuzzers; read-only, or
 * writable (tm_block_mem_new_rw). */
#include "config.h"

#include <string.h>

#include <glib.h>

#include "block.h"

struct block_mem {
	struct tm_block base;
	const uint8_t *data;
	uint8_t *wdata; /* data, when writable; NULL otherwise */
	size_t len;
	uint32_t sector_size;
	uint64_t sectors;
};

static void mem_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_mem *m = (struct block_mem *)b;
	info->read_write = m->wdata != NULL;
	info->sector_size = m->sector_size;
	info->size_sectors = m->sectors;
	info->size_bytes = m->len;
}

static int mem_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		    struct tm_block_error *err)
{
	struct block_mem *m = (struct block_mem *)b;
	struct tm_block_info info = { 0 };
	mem_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t off = sector * m->sector_size;
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len, have = off < m->len ? m->len - off : 0;
		if (have > n)
			have = n;
		memcpy(iov[i].iov_base, m->data + off, have);
		memset((uint8_t *)iov[i].iov_base + have, 0, n - have);
		off += n;
	}
	return 0;
}

static int mem_write(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err)
{
	struct block_mem *m = (struct block_mem *)b;
	if (!m->wdata)
		return tm_block_write_read_only(b, sector, iov, iovcnt, err);
	struct tm_block_info info = { 0 };
	mem_get_info(b, &info);
	if (tm_block_check_write_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t off = sector * m->sector_size;
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len, have = off < m->len ? m->len - off : 0;
		if (have > n)
			have = n; /* the partial last sector: only the bytes before len */
		memcpy(m->wdata + off, iov[i].iov_base, have);
		off += n;
	}
	return 0;
}

/* Nothing to exclude: the buffer is this process's, and one tm_block's. */
static int mem_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	(void)wait;
	if (!((struct block_mem *)b)->wdata)
		return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
	return 0;
}

static void mem_disconnect(struct tm_block *b)
{
	g_free(b->source);
	g_free(b);
}

static const struct tm_block_ops mem_ops = {
	.name = "memory",
	.get_info = mem_get_info,
	.read = mem_read,
	.write = mem_write,
	.lock_writer = mem_lock_writer,
	.disconnect = mem_disconnect,
};

static struct tm_block *mem_new(const void *data, void *wdata, size_t len, uint32_t sector_size)
{
	struct block_mem *m = g_new0(struct block_mem, 1);
	m->base.ops = &mem_ops;
	m->base.source = g_strdup("(memory)");
	m->data = data;
	m->wdata = wdata;
	m->sector_size = sector_size;
	m->len = len;
	m->sectors = (len + sector_size - 1) / sector_size;
	return &m->base;
}

struct tm_block *tm_block_mem_new(const void *data, size_t len, uint32_t sector_size)
{
	return mem_new(data, NULL, len, sector_size);
}

struct tm_block *tm_block_mem_new_rw(void *data, size_t len, uint32_t sector_size)
{
	return mem_new(data, data, len, sector_size);
}
