/* The window decorator: a byte range of another device, seen as a device of its own.  Used
 * for -o offset=,size= and for partitions, whose tables (MBR with logical partitions, GPT)
 * are parsed here, from the source itself: no kernel partition scan, no root needed.
 * Writes never reach a byte outside the window: they go through tm_block_pwrite on the
 * inner device, which read-modify-writes the inner sectors the window's edges cut. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

#include "block.h"

struct block_window {
	struct tm_block base;
	struct tm_block *inner;
	uint64_t offset;
	uint32_t sector_size;
	/* To the end of a growable inner device: the size follows the inner size. */
	bool grow;
	uint64_t size; /* bytes, unless grow; the last sector is partial unless a multiple */
};

static void window_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_window *w = (struct block_window *)b;
	struct tm_block_info in;
	tm_block_get_info(w->inner, &in);
	uint64_t size = w->size;
	if (w->grow) {
		uint64_t total = in.size_bytes ? in.size_bytes : in.size_sectors * in.sector_size;
		size = total > w->offset ? total - w->offset : 0;
	}
	info->read_write = in.read_write;
	info->growable = w->grow;
	info->no_flush = in.no_flush;
	info->sector_size = w->sector_size;
	info->size_sectors = (size + w->sector_size - 1) / w->sector_size;
	info->size_bytes = size;
}

/* The window need not start on a sector of the inner device: byte reads realign. */
static int window_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		       struct tm_block_error *err)
{
	struct block_window *w = (struct block_window *)b;
	struct tm_block_info info = { 0 };
	window_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t pos = sector * w->sector_size; /* in the window */
	uint64_t size = info.size_bytes;
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len, have = pos < size ? (size_t)MIN(n, size - pos) : 0;
		if (have && tm_block_pread(w->inner, iov[i].iov_base, have, w->offset + pos, err) < 0)
			return -1;
		memset((uint8_t *)iov[i].iov_base + have, 0, n - have); /* past the window's end */
		pos += n;
	}
	return 0;
}

/* The inner device's reason for refusing a write. */
static int refuse(struct block_window *w, struct tm_block_error *err)
{
	if (tm_block_pwrite(w->inner, NULL, 0, 0, err) < 0)
		return -1;
	return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "opened read-only");
}

static int window_write(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			int iovcnt, struct tm_block_error *err)
{
	struct block_window *w = (struct block_window *)b;
	struct tm_block_info info = { 0 };
	window_get_info(b, &info);
	if (!info.read_write)
		return refuse(w, err);
	if (tm_block_check_write_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t pos = sector * w->sector_size; /* in the window; checked: no overflow */
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len, have = n;
		/* The partial last sector of a fixed window: only its bytes inside. */
		if (!w->grow)
			have = pos < info.size_bytes ? (size_t)MIN(n, info.size_bytes - pos) : 0;
		if (have && tm_block_pwrite(w->inner, iov[i].iov_base, have, w->offset + pos, err) < 0)
			return -1;
		pos += n;
	}
	return 0;
}

static int window_write_bytes(struct tm_block *b, const void *buf, size_t len, uint64_t off,
			      struct tm_block_error *err)
{
	struct block_window *w = (struct block_window *)b;
	struct tm_block_info info = { 0 };
	window_get_info(b, &info);
	if (!info.read_write)
		return refuse(w, err);
	if (!w->grow && (off > info.size_bytes || len > info.size_bytes - off))
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
				     "writing bytes %llu+%zu of a window of %llu",
				     (unsigned long long)off, len,
				     (unsigned long long)info.size_bytes);
	if (off > UINT64_MAX - w->offset)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "writing at byte %llu",
				     (unsigned long long)off);
	return tm_block_pwrite(w->inner, buf, len, w->offset + off, err);
}

static int window_flush(struct tm_block *b, struct tm_block_error *err)
{
	return tm_block_flush(((struct block_window *)b)->inner, err);
}

static int window_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	return tm_block_lock_writer(((struct block_window *)b)->inner, wait, err);
}

static void window_unlock_writer(struct tm_block *b)
{
	tm_block_unlock_writer(((struct block_window *)b)->inner);
}

static bool window_get_fd(struct tm_block *b, int *fd, uint64_t *fd_base)
{
	struct block_window *w = (struct block_window *)b;
	if (!tm_block_get_fd(w->inner, fd, fd_base))
		return false;
	*fd_base += w->offset;
	return true;
}

static bool window_changed(struct tm_block *b)
{
	return tm_block_changed(((struct block_window *)b)->inner);
}

static bool window_identity(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	struct block_window *w = (struct block_window *)b;
	uint64_t bounds[2] = { w->offset, w->size };
	if (!tm_block_identity_update(w->inner, sum, err))
		return false;
	g_checksum_update(sum, (const guchar *)bounds, sizeof bounds);
	return true;
}

static void window_disconnect(struct tm_block *b)
{
	struct block_window *w = (struct block_window *)b;
	tm_block_disconnect(w->inner);
	g_free(b->source);
	g_free(w);
}

static const struct tm_block_ops window_ops = {
	.name = "window",
	.get_info = window_get_info,
	.read = window_read,
	.write = window_write,
	.write_bytes = window_write_bytes,
	.flush = window_flush,
	.lock_writer = window_lock_writer,
	.unlock_writer = window_unlock_writer,
	.get_fd = window_get_fd,
	.changed = window_changed,
	.identity = window_identity,
	.disconnect = window_disconnect,
};

struct tm_block *tm_block_window_new(struct tm_block *inner, uint64_t offset, uint64_t size,
				     struct tm_block_error *err)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(inner, &info);
	uint64_t total = tm_block_size_bytes(inner);
	if (offset > total || (size && size > total - offset)) {
		if (size)
			tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
				      "%llu bytes at byte %llu are past the end (%llu bytes)",
				      (unsigned long long)size, (unsigned long long)offset,
				      (unsigned long long)total);
		else
			tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
				      "offset %llu is past the end (%llu bytes)",
				      (unsigned long long)offset, (unsigned long long)total);
		tm_block_disconnect(inner);
		return NULL;
	}
	bool grow = false;
	if (!size) {
		size = total - offset;
		grow = info.growable;
	}
	struct block_window *w = g_new0(struct block_window, 1);
	w->base.ops = &window_ops;
	w->base.source = g_strdup(inner->source);
	w->inner = inner;
	w->offset = offset;
	w->sector_size = info.sector_size;
	w->size = size;
	w->grow = grow;
	return &w->base;
}

/* ---- partition tables ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return le32(p) | (uint64_t)le32(p + 4) << 32;
}

struct part {
	uint64_t start, length; /* bytes */
};

static bool is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

/* CRC-32 (IEEE, reflected), as GPT uses it; bitwise, for a header and its entries. */
static uint32_t crc32_ieee(const uint8_t *p, size_t len)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < len; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = c >> 1 ^ (0xedb88320u & -(c & 1));
	}
	return ~c;
}

/* Sector 0 holds a protective MBR (an 0xEE entry): only then is a GPT trusted, as the
 * kernel does; a disk relabelled DOS keeps a stale GPT behind its new MBR. */
static bool protective_mbr(const uint8_t mbr[512])
{
	if (mbr[510] != 0x55 || mbr[511] != 0xaa)
		return false;
	for (int i = 0; i < 4; i++)
		if (mbr[446 + 16 * i + 4] == 0xee)
			return true;
	return false;
}

/* GPT at LBA 1 for the given sector size: 1 found (*p filled, or length 0 when n has no
 * entry), 0 no valid GPT there, -1 read error. */
static int find_gpt(struct tm_block *inner, uint32_t ss, unsigned n, struct part *p,
		    struct tm_block_error *err)
{
	uint8_t hdr[512];
	if (tm_block_pread(inner, hdr, sizeof hdr, ss, err) < 0)
		return err->code == TM_BLOCK_OUT_OF_RANGE ? 0 : -1;
	uint32_t hsize = le32(hdr + 12), hcrc = le32(hdr + 16);
	if (memcmp(hdr, "EFI PART", 8) || hsize < 92 || hsize > sizeof hdr)
		return 0;
	memset(hdr + 16, 0, 4);
	if (crc32_ieee(hdr, hsize) != hcrc)
		return 0;
	uint64_t entries_lba = le64(hdr + 72);
	uint32_t count = le32(hdr + 80), esize = le32(hdr + 84), ecrc = le32(hdr + 88);
	if (esize < 128 || esize > 4096 || count > 16384 || entries_lba > UINT64_MAX / ss / 2)
		return 0;
	size_t table = (size_t)count * esize;
	uint8_t *entries = g_try_malloc(table ? table : 1);
	if (!entries)
		return 0;
	if (tm_block_pread(inner, entries, table, entries_lba * ss, err) < 0) {
		g_free(entries);
		return err->code == TM_BLOCK_OUT_OF_RANGE ? 0 : -1;
	}
	bool ok = crc32_ieee(entries, table) == ecrc;
	uint8_t e[128];
	if (ok && n <= count)
		memcpy(e, entries + (size_t)(n - 1) * esize, sizeof e);
	g_free(entries);
	if (!ok)
		return 0;
	p->length = 0;
	if (n > count)
		return 1;
	static const uint8_t unused[16];
	uint64_t first = le64(e + 32), last = le64(e + 40);
	if (!memcmp(e, unused, 16) || last < first || last > UINT64_MAX / ss - 1)
		return 1;
	p->start = first * ss;
	p->length = (last - first + 1) * ss;
	return 1;
}

/* MBR primary partitions 1-4, logical ones from 5 along the chain of extended boot
 * records.  Returns 1 found (length 0: no such partition), 0 no MBR, -1 read error. */
static int find_mbr(struct tm_block *inner, uint32_t ss, unsigned n, struct part *p,
		    struct tm_block_error *err)
{
	uint8_t s[512];
	if (tm_block_pread(inner, s, sizeof s, 0, err) < 0)
		return -1;
	if (s[510] != 0x55 || s[511] != 0xaa)
		return 0;
	p->length = 0;
	uint64_t ext_start = 0;
	for (int i = 0; i < 4; i++) {
		const uint8_t *e = s + 446 + 16 * i;
		if (is_extended(e[4]))
			ext_start = le32(e + 8);
		if ((unsigned)i + 1 == n && e[4] != 0) {
			p->start = (uint64_t)le32(e + 8) * ss;
			p->length = (uint64_t)le32(e + 12) * ss;
		}
	}
	if (n <= 4 || !ext_start)
		return 1;
	/* Logical partitions: each EBR describes one, relative to itself, and links to the
	 * next relative to the extended partition's start.  Bounded against loops. */
	uint64_t ebr = ext_start;
	for (unsigned k = 5; k <= n && k < 5 + 1024; k++) {
		if (tm_block_pread(inner, s, sizeof s, ebr * ss, err) < 0)
			return -1;
		if (s[510] != 0x55 || s[511] != 0xaa)
			return 1;
		if (k == n) {
			p->start = (ebr + le32(s + 446 + 8)) * ss;
			p->length = (uint64_t)le32(s + 446 + 12) * ss;
			return 1;
		}
		uint32_t next = le32(s + 462 + 8);
		if (!next || s[462 + 4] == 0)
			return 1;
		ebr = ext_start + next;
	}
	return 1;
}

struct tm_block *tm_block_partition_open(struct tm_block *inner, unsigned n,
					 struct tm_block_error *err)
{
	struct tm_block_info info = { 0 };
	tm_block_get_info(inner, &info);
	struct part p = { 0, 0 };
	int rc = 0;
	const char *kind = "MBR";
	/* GPT first (its MBR is only a protective one); LBA size is the device's logical
	 * sector, but an image file may have been laid out for 4096-byte sectors. */
	uint32_t sizes[2] = { info.sector_size, info.sector_size == 512 ? 4096 : 512 };
	uint8_t mbr[512];
	if (tm_block_pread(inner, mbr, sizeof mbr, 0, err) < 0) {
		tm_block_disconnect(inner);
		return NULL;
	}
	for (int i = 0; i < 2 && rc == 0 && protective_mbr(mbr); i++) {
		rc = find_gpt(inner, sizes[i], n, &p, err);
		kind = "GPT";
	}
	if (rc == 0) {
		rc = find_mbr(inner, info.sector_size, n, &p, err);
		kind = "MBR";
	}
	if (rc < 0) {
		tm_block_disconnect(inner);
		return NULL;
	}
	if (rc == 0) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "no MBR or GPT partition table");
		tm_block_disconnect(inner);
		return NULL;
	}
	if (p.length == 0) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "no partition %u in the %s partition table",
			      n, kind);
		tm_block_disconnect(inner);
		return NULL;
	}
	return tm_block_window_new(inner, p.start, p.length, err);
}
