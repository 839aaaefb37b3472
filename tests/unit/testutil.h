/* Helpers shared by the unit tests: build tar header blocks field by field, pax records,
 * GNU long-name and sparse blocks, and whole archives in a GByteArray.
 *
 * Everything here follows the published formats (POSIX ustar and pax, GNU tar's
 * "Basic Tar Format" and "Sparse Formats" appendices, star's header), never the code under
 * test: the expected values in the tests are derived from what these helpers write. */
#ifndef TM_TESTUTIL_H
#define TM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "block.h"
#include "index.h"
#include "tar.h"

#define TU_BLOCK 512
#define TU_RECORD 10240 /* GNU tar's default record: 20 blocks */

/* Field offsets and widths of the POSIX ustar header. */
enum {
	TU_NAME = 0, TU_NAME_LEN = 100,
	TU_MODE = 100, TU_MODE_LEN = 8,
	TU_UID = 108, TU_UID_LEN = 8,
	TU_GID = 116, TU_GID_LEN = 8,
	TU_SIZE = 124, TU_SIZE_LEN = 12,
	TU_MTIME = 136, TU_MTIME_LEN = 12,
	TU_CHKSUM = 148, TU_CHKSUM_LEN = 8,
	TU_TYPEFLAG = 156,
	TU_LINKNAME = 157, TU_LINKNAME_LEN = 100,
	TU_MAGIC = 257, TU_MAGIC_LEN = 6,
	TU_VERSION = 263, TU_VERSION_LEN = 2,
	TU_UNAME = 265, TU_UNAME_LEN = 32,
	TU_GNAME = 297, TU_GNAME_LEN = 32,
	TU_DEVMAJOR = 329, TU_DEVMAJOR_LEN = 8,
	TU_DEVMINOR = 337, TU_DEVMINOR_LEN = 8,
	TU_PREFIX = 345, TU_PREFIX_LEN = 155,
	/* old GNU (GNU tar manual, "Old GNU Format") */
	TU_GNU_ATIME = 345, TU_GNU_CTIME = 357, TU_GNU_OFFSET = 369,
	TU_GNU_SPARSE = 386, /* 4 x { offset[12], numbytes[12] } */
	TU_GNU_ISEXTENDED = 482,
	TU_GNU_REALSIZE = 483,
	TU_GNU_EXT_ISEXTENDED = 504, /* extension block: 21 entries then isextended */
	/* star: prefix[131], atime[12], ctime[12], mfill[8], xmagic[4] = "tar\0" */
	TU_STAR_PREFIX_LEN = 131, TU_STAR_ATIME = 476, TU_STAR_CTIME = 488, TU_STAR_XMAGIC = 508,
};

enum tu_fmt { TU_V7, TU_USTAR, TU_GNU, TU_STAR };

/* ---- fields ---- */

/* Copy n bytes of s into a field of width bytes, zero-filling the rest (no NUL needed when
 * n == width, as in tar). */
/* The sparse map of inode ino (NULL: not sparse), which must not be damaged. */
static inline const struct tm_index_sparse *tu_sparse_map(const struct tm_index *idx,
							  uint32_t ino)
{
	const struct tm_index_sparse *map;
	if (!tm_index_sparse_map(idx, ino, &map)) {
		fprintf(stderr, "inode %u: sparse map damaged\n", ino);
		abort();
	}
	return map;
}

static inline void tu_set_bytes(uint8_t *blk, size_t off, size_t width, const void *s, size_t n)
{
	memset(blk + off, 0, width);
	memcpy(blk + off, s, n < width ? n : width);
}

static inline void tu_set_str(uint8_t *blk, size_t off, size_t width, const char *s)
{
	tu_set_bytes(blk, off, width, s, strlen(s));
}

/* Octal, zero-padded to width-1 digits and ended by a NUL (what GNU tar writes). */
static inline void tu_set_octal(uint8_t *blk, size_t off, size_t width, uint64_t v)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "%0*llo", (int)(width - 1), (unsigned long long)v);
	if (n != (int)(width - 1)) {
		fprintf(stderr, "tu_set_octal: %llu does not fit in %zu bytes\n",
			(unsigned long long)v, width);
		abort();
	}
	memcpy(blk + off, buf, width - 1);
	blk[off + width - 1] = 0;
}

/* Octal using the whole width, no terminator (star, and GNU tar for big sizes). */
static inline void tu_set_octal_full(uint8_t *blk, size_t off, size_t width, uint64_t v)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "%0*llo", (int)width, (unsigned long long)v);
	if (n != (int)width) {
		fprintf(stderr, "tu_set_octal_full: %llu does not fit\n", (unsigned long long)v);
		abort();
	}
	memcpy(blk + off, buf, width);
}

/* GNU base-256: big-endian two's complement over the field, first byte 0x80 for a
 * non-negative value (its low bits must be free), 0xff for a negative one. */
static inline void tu_set_b256(uint8_t *blk, size_t off, size_t width, int64_t v)
{
	uint64_t u = (uint64_t)v;
	for (size_t i = 0; i < width; i++) {
		size_t pos = off + width - 1 - i;
		if (i < 8) {
			blk[pos] = (uint8_t)(u & 0xff);
			u >>= 8;
		} else {
			blk[pos] = v < 0 ? 0xff : 0x00;
		}
	}
	if (v >= 0)
		blk[off] = 0x80; /* caller keeps v small enough for the first byte to be free */
}

/* Fill the checksum field: sum of all bytes with the field taken as 8 spaces, unsigned or
 * (historic Sun/old tars) signed.  Written as GNU tar does: 6 octal digits, NUL, space.
 * Returns the sum stored. */
static inline long tu_checksum(uint8_t *blk, bool signed_sum)
{
	long sum = 0;
	memset(blk + TU_CHKSUM, ' ', TU_CHKSUM_LEN);
	for (size_t i = 0; i < TU_BLOCK; i++)
		sum += signed_sum ? (long)(int8_t)blk[i] : (long)blk[i];
	if (sum < 0) {
		fprintf(stderr, "tu_checksum: negative sum\n");
		abort();
	}
	char buf[32];
	snprintf(buf, sizeof buf, "%06lo", sum);
	memcpy(blk + TU_CHKSUM, buf, 6);
	blk[TU_CHKSUM + 6] = 0;
	blk[TU_CHKSUM + 7] = ' ';
	return sum;
}

static inline void tu_set_magic(uint8_t *blk, enum tu_fmt fmt)
{
	memset(blk + TU_MAGIC, 0, 8);
	switch (fmt) {
	case TU_V7:
		break;
	case TU_USTAR:
	case TU_STAR:
		memcpy(blk + TU_MAGIC, "ustar\0" "00", 8);
		break;
	case TU_GNU:
		memcpy(blk + TU_MAGIC, "ustar  \0", 8);
		break;
	}
	if (fmt == TU_STAR)
		memcpy(blk + TU_STAR_XMAGIC, "tar\0", 4);
}

/* A header with plausible defaults: mode 0644 (0755 for directories), uid/gid 1000,
 * mtime 1700000000, uname "user", gname "group".  name goes into the name field as is
 * (truncated at 100 bytes); use tu_set_str(blk, TU_PREFIX, ...) for a ustar prefix.  The
 * checksum is not filled: call tu_checksum() after the last change. */
static inline void tu_header_init(uint8_t blk[TU_BLOCK], enum tu_fmt fmt, const char *name,
				  char typeflag, uint64_t size)
{
	memset(blk, 0, TU_BLOCK);
	tu_set_str(blk, TU_NAME, TU_NAME_LEN, name);
	tu_set_octal(blk, TU_MODE, TU_MODE_LEN, typeflag == '5' ? 0755 : 0644);
	tu_set_octal(blk, TU_UID, TU_UID_LEN, 1000);
	tu_set_octal(blk, TU_GID, TU_GID_LEN, 1000);
	tu_set_octal(blk, TU_SIZE, TU_SIZE_LEN, size);
	tu_set_octal(blk, TU_MTIME, TU_MTIME_LEN, 1700000000);
	blk[TU_TYPEFLAG] = (uint8_t)typeflag;
	tu_set_magic(blk, fmt);
	if (fmt != TU_V7) {
		tu_set_str(blk, TU_UNAME, TU_UNAME_LEN, "user");
		tu_set_str(blk, TU_GNAME, TU_GNAME_LEN, "group");
		if (fmt != TU_GNU) {
			tu_set_octal(blk, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 0);
			tu_set_octal(blk, TU_DEVMINOR, TU_DEVMINOR_LEN, 0);
		}
	}
}

/* Old GNU sparse entry i (0..3) of an 'S' header, or of an extension block (0..20) when
 * base is 0. */
static inline void tu_set_gnu_sparse(uint8_t *blk, size_t base, int i, uint64_t off, uint64_t len)
{
	tu_set_octal(blk, base + (size_t)i * 24, 12, off);
	tu_set_octal(blk, base + (size_t)i * 24 + 12, 12, len);
}

/* ---- archives ---- */

static inline void tu_append_zeros(GByteArray *a, size_t n)
{
	static const uint8_t z[TU_BLOCK];
	while (n > 0) {
		size_t k = n < sizeof z ? n : sizeof z;
		g_byte_array_append(a, z, (guint)k);
		n -= k;
	}
}

static inline void tu_append_block(GByteArray *a, const uint8_t blk[TU_BLOCK])
{
	g_byte_array_append(a, blk, TU_BLOCK);
}

/* Member data, padded with zeros to a whole block. */
static inline void tu_append_data(GByteArray *a, const void *data, size_t len)
{
	if (len > 0)
		g_byte_array_append(a, data, (guint)len);
	if (len % TU_BLOCK)
		tu_append_zeros(a, TU_BLOCK - len % TU_BLOCK);
}

/* A whole member: header (defaults as tu_header_init, checksum filled) and data.  Returns the
 * byte offset of its data. */
static inline uint64_t tu_add(GByteArray *a, enum tu_fmt fmt, const char *name, char typeflag,
			      const char *linkname, const void *data, size_t len)
{
	uint8_t h[TU_BLOCK];
	tu_header_init(h, fmt, name, typeflag, len);
	if (linkname)
		tu_set_str(h, TU_LINKNAME, TU_LINKNAME_LEN, linkname);
	tu_checksum(h, false);
	tu_append_block(a, h);
	uint64_t off = a->len;
	tu_append_data(a, data, len);
	return off;
}

static inline uint64_t tu_add_file(GByteArray *a, const char *name, const char *content)
{
	return tu_add(a, TU_USTAR, name, '0', NULL, content, strlen(content));
}

static inline void tu_add_dir(GByteArray *a, const char *name)
{
	tu_add(a, TU_USTAR, name, '5', NULL, NULL, 0);
}

static inline size_t tu_digits(size_t n)
{
	size_t d = 1;
	while (n >= 10) {
		n /= 10;
		d++;
	}
	return d;
}

/* The length of a pax record whose key and value take n bytes along with " =\n". */
static inline size_t tu_pax_reclen(size_t n)
{
	size_t len = n + 1;
	while (n + tu_digits(len) != len)
		len = n + tu_digits(len);
	return len;
}

/* Append one pax record "LEN KEY=VALUE\n", LEN counting itself. */
static inline void tu_pax_rec(GString *s, const char *key, const void *val, size_t vlen)
{
	size_t len = tu_pax_reclen(strlen(key) + vlen + 3);
	g_string_append_printf(s, "%zu %s=", len, key);
	g_string_append_len(s, val, (gssize)vlen);
	g_string_append_c(s, '\n');
}

static inline void tu_pax_str(GString *s, const char *key, const char *val)
{
	tu_pax_rec(s, key, val, strlen(val));
}

/* A pax extended header ('x' or 'g') carrying recs. */
static inline void tu_add_pax(GByteArray *a, char type, const char *name, const GString *recs)
{
	tu_add(a, TU_USTAR, name, type, NULL, recs->str, recs->len);
}

/* A GNU long name ('L') or long link name ('K') member: "././@LongLink", data = s + NUL. */
static inline void tu_add_longlink(GByteArray *a, char type, const char *s)
{
	uint8_t h[TU_BLOCK];
	size_t len = strlen(s) + 1;
	tu_header_init(h, TU_GNU, "././@LongLink", type, len);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0);
	tu_set_octal(h, TU_UID, TU_UID_LEN, 0);
	tu_set_octal(h, TU_GID, TU_GID_LEN, 0);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 0);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "root");
	tu_set_str(h, TU_GNAME, TU_GNAME_LEN, "root");
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, s, len);
}

/* Finish an archive as GNU tar does: two zero blocks, then zeros up to a whole record.
 * The length is then made not a multiple of 4096, so that a 4096-byte-sector device has a
 * partial last sector; the whole sectors alone still hold the end-of-archive marker (so the
 * archive is complete whether a device pads or drops a partial sector).  Returns the offset
 * of the end marker. */
static inline size_t tu_finish(GByteArray *a)
{
	size_t end = a->len;
	tu_append_zeros(a, 2 * TU_BLOCK);
	if (a->len % TU_RECORD)
		tu_append_zeros(a, TU_RECORD - a->len % TU_RECORD);
	while ((a->len / 4096) * 4096 < end + 2 * TU_BLOCK)
		tu_append_zeros(a, TU_RECORD);
	if (a->len % 4096 == 0)
		tu_append_zeros(a, TU_BLOCK);
	return end;
}

/* Deterministic pseudo-random bytes (xorshift32). */
static inline void tu_fill(uint8_t *buf, size_t n, uint32_t seed)
{
	uint32_t x = seed ? seed : 0x9e3779b9u;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)(x >> 11);
	}
}

/* ---- sparse members ---- */

/* The logical content of a sparse file: chunks pairs[2i] (offset), pairs[2i+1] (length) hold
 * pseudo-random bytes, holes are zeros.  g_free() the result. */
static inline uint8_t *tu_sparse_ref(const uint64_t *pairs, size_t n, uint64_t logical,
				     uint32_t seed)
{
	uint8_t *ref = g_malloc0(logical + 1);
	for (size_t i = 0; i < n; i++)
		tu_fill(ref + pairs[2 * i], pairs[2 * i + 1], seed + (uint32_t)i);
	return ref;
}

/* The bytes stored for it: the chunks back to back. */
static inline GByteArray *tu_sparse_stored(const uint64_t *pairs, size_t n, const uint8_t *ref)
{
	GByteArray *s = g_byte_array_new();
	for (size_t i = 0; i < n; i++)
		if (pairs[2 * i + 1])
			g_byte_array_append(s, ref + pairs[2 * i], (guint)pairs[2 * i + 1]);
	return s;
}

/* An old GNU sparse member ('S'): up to 4 chunks in the header, 21 in each extension block.
 * Returns the offset of the stored data. */
static inline uint64_t tu_add_sparse_oldgnu(GByteArray *a, const char *name, const uint64_t *pairs,
					    size_t n, uint64_t logical, const uint8_t *ref)
{
	GByteArray *st = tu_sparse_stored(pairs, n, ref);
	uint8_t h[TU_BLOCK];
	tu_header_init(h, TU_GNU, name, 'S', st->len);
	size_t i = 0;
	for (; i < n && i < 4; i++)
		tu_set_gnu_sparse(h, TU_GNU_SPARSE, (int)i, pairs[2 * i], pairs[2 * i + 1]);
	h[TU_GNU_ISEXTENDED] = n > 4;
	tu_set_octal(h, TU_GNU_REALSIZE, 12, logical);
	tu_checksum(h, false);
	tu_append_block(a, h);
	while (i < n) {
		uint8_t e[TU_BLOCK];
		memset(e, 0, sizeof e);
		for (int k = 0; k < 21 && i < n; k++, i++)
			tu_set_gnu_sparse(e, 0, k, pairs[2 * i], pairs[2 * i + 1]);
		e[TU_GNU_EXT_ISEXTENDED] = i < n;
		tu_append_block(a, e);
	}
	uint64_t off = a->len;
	tu_append_data(a, st->data, st->len);
	g_byte_array_free(st, TRUE);
	return off;
}

enum tu_pax_sparse { TU_SPARSE_00, TU_SPARSE_01, TU_SPARSE_10 };

/* A pax sparse member in GNU format 0.0, 0.1 or 1.0 (GNU tar manual, "Sparse Formats").
 * 0.1 and 1.0 put "./GNUSparseFile.4242/<base name>" in the header and the real name in
 * GNU.sparse.name.  Returns the offset of the stored data (after the map, for 1.0). */
static inline uint64_t tu_add_sparse_pax(GByteArray *a, enum tu_pax_sparse v, const char *name,
					 const uint64_t *pairs, size_t n, uint64_t logical,
					 const uint8_t *ref)
{
	GByteArray *st = tu_sparse_stored(pairs, n, ref);
	GString *x = g_string_new(NULL);
	char num[32];
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	char *hname = v == TU_SPARSE_00 ? g_strdup(name)
					: g_strdup_printf("./GNUSparseFile.4242/%s", base);
	GString *map = g_string_new(NULL);

	switch (v) {
	case TU_SPARSE_00:
		snprintf(num, sizeof num, "%llu", (unsigned long long)logical);
		tu_pax_str(x, "GNU.sparse.size", num);
		snprintf(num, sizeof num, "%zu", n);
		tu_pax_str(x, "GNU.sparse.numblocks", num);
		for (size_t i = 0; i < n; i++) {
			snprintf(num, sizeof num, "%llu", (unsigned long long)pairs[2 * i]);
			tu_pax_str(x, "GNU.sparse.offset", num);
			snprintf(num, sizeof num, "%llu", (unsigned long long)pairs[2 * i + 1]);
			tu_pax_str(x, "GNU.sparse.numbytes", num);
		}
		break;
	case TU_SPARSE_01:
		snprintf(num, sizeof num, "%llu", (unsigned long long)logical);
		tu_pax_str(x, "GNU.sparse.size", num);
		snprintf(num, sizeof num, "%zu", n);
		tu_pax_str(x, "GNU.sparse.numblocks", num);
		tu_pax_str(x, "GNU.sparse.name", name);
		for (size_t i = 0; i < n; i++)
			g_string_append_printf(map, "%s%llu,%llu", i ? "," : "",
					       (unsigned long long)pairs[2 * i],
					       (unsigned long long)pairs[2 * i + 1]);
		tu_pax_str(x, "GNU.sparse.map", map->str);
		g_string_truncate(map, 0);
		break;
	case TU_SPARSE_10:
		tu_pax_str(x, "GNU.sparse.major", "1");
		tu_pax_str(x, "GNU.sparse.minor", "0");
		tu_pax_str(x, "GNU.sparse.name", name);
		snprintf(num, sizeof num, "%llu", (unsigned long long)logical);
		tu_pax_str(x, "GNU.sparse.realsize", num);
		g_string_append_printf(map, "%zu\n", n);
		for (size_t i = 0; i < n; i++)
			g_string_append_printf(map, "%llu\n%llu\n", (unsigned long long)pairs[2 * i],
					       (unsigned long long)pairs[2 * i + 1]);
		while (map->len % TU_BLOCK)
			g_string_append_c(map, '\0');
		break;
	}
	char *xname = g_strdup_printf("./PaxHeaders.4242/%s", base);
	tu_add_pax(a, 'x', xname, x);

	uint8_t h[TU_BLOCK];
	tu_header_init(h, TU_USTAR, hname, '0', map->len + st->len);
	tu_checksum(h, false);
	tu_append_block(a, h);
	if (map->len)
		g_byte_array_append(a, (const guint8 *)map->str, (guint)map->len);
	uint64_t off = a->len;
	tu_append_data(a, st->data, st->len);

	g_free(xname);
	g_free(hname);
	g_string_free(map, TRUE);
	g_string_free(x, TRUE);
	g_byte_array_free(st, TRUE);
	return off;
}

/* ---- building indexes over in-memory archives ---- */

/* The sector size for loop test iteration i: 512 then 4096. */
static inline uint32_t tu_sector(int i)
{
	return i ? 4096u : 512u;
}

struct tu_diags {
	unsigned warnings, errors;
	GString *log;
};

static inline void tu_diag_cb(void *ud, enum tm_tar_diag_level level, uint64_t offset,
			      const char *path, const char *msg)
{
	struct tu_diags *d = ud;
	if (level == TM_TAR_ERROR)
		d->errors++;
	else
		d->warnings++;
	g_string_append_printf(d->log, "%s @%llu %s: %s\n", level == TM_TAR_ERROR ? "E" : "W",
			       (unsigned long long)offset, path ? path : "-", msg ? msg : "");
}

struct tu_built {
	struct tm_block *block;
	struct tm_index *idx;
	struct tm_block_error err;
	struct tu_diags diags;
};

/* Index data[0..len) on an in-memory device with the given sector size. */
static inline void tu_build_mem(struct tu_built *t, const void *data, size_t len, uint32_t ss)
{
	memset(t, 0, sizeof *t);
	t->diags.log = g_string_new(NULL);
	t->block = tm_block_mem_new(data, len, ss);
	if (!t->block) {
		fprintf(stderr, "tm_block_mem_new failed\n");
		abort();
	}
	struct tm_index_options opts;
	memset(&opts, 0, sizeof opts);
	opts.diag = tu_diag_cb;
	opts.diag_ud = &t->diags;
	t->idx = tm_index_build(t->block, &opts, &t->err);
}

static inline void tu_build(struct tu_built *t, const GByteArray *a, uint32_t ss)
{
	tu_build_mem(t, a->data, a->len, ss);
}

static inline void tu_built_free(struct tu_built *t)
{
	if (t->idx)
		tm_index_free(t->idx);
	if (t->block)
		tm_block_disconnect(t->block);
	g_string_free(t->diags.log, TRUE);
	memset(t, 0, sizeof *t);
}

/* ---- a device with a long run of zeros ---- */

/* data[0..len) followed by zeros up to size bytes (not copied; the caller keeps data alive):
 * an archive whose members' data are zeros, e.g. an 8 GiB member, without the memory. */
struct tu_zext {
	struct tm_block base;
	const uint8_t *data;
	size_t len;
	uint64_t size;
};

static inline void tu_zext_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct tu_zext *z = (struct tu_zext *)b;
	info->sector_size = TU_BLOCK;
	info->size_sectors = (z->size + TU_BLOCK - 1) / TU_BLOCK;
	info->size_bytes = z->size;
}

static inline int tu_zext_read(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			       int iovcnt, struct tm_block_error *err)
{
	struct tu_zext *z = (struct tu_zext *)b;
	struct tm_block_info info = { 0 };
	tu_zext_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t off = sector * TU_BLOCK;
	for (int i = 0; i < iovcnt; i++) {
		size_t n = iov[i].iov_len;
		size_t have = off < z->len ? z->len - off : 0;
		if (have > n)
			have = n;
		memcpy(iov[i].iov_base, z->data + off, have);
		memset((uint8_t *)iov[i].iov_base + have, 0, n - have);
		off += n;
	}
	return 0;
}

static inline void tu_zext_disconnect(struct tm_block *b)
{
	g_free(b->source);
	g_free(b);
}

static const struct tm_block_ops tu_zext_ops = {
	.name = "zero-extended memory",
	.get_info = tu_zext_get_info,
	.read = tu_zext_read,
	.write = tm_block_write_read_only,
	.disconnect = tu_zext_disconnect,
};

static inline struct tm_block *tu_zext_new(const void *data, size_t len, uint64_t size)
{
	struct tu_zext *z = g_new0(struct tu_zext, 1);
	z->base.ops = &tu_zext_ops;
	z->base.source = g_strdup("(zero-extended memory)");
	z->data = data;
	z->len = len;
	z->size = size < len ? len : size;
	return &z->base;
}

#endif
