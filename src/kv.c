/* KV_RO over an index and a block device. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kv.h"

void tm_kv_init(struct tm_kv *kv, const struct tm_index *idx, struct tm_block *b)
{
	kv->index = idx;
	kv->block = b;
}

const char *tm_kv_strerror(const struct tm_kv_error *err, char *buf, size_t size)
{
	switch (err->code) {
	case TM_KV_OK: snprintf(buf, size, "no error"); break;
	case TM_KV_NOT_FOUND: snprintf(buf, size, "not found"); break;
	case TM_KV_DICTIONARY_EXPECTED: snprintf(buf, size, "not a directory"); break;
	case TM_KV_VALUE_EXPECTED: snprintf(buf, size, "is a directory"); break;
	case TM_KV_BLOCK: tm_block_strerror(&err->block, buf, size); break;
	case TM_KV_DAMAGED: snprintf(buf, size, "index damaged"); break;
	case TM_KV_ALREADY_PRESENT: snprintf(buf, size, "already present"); break;
	case TM_KV_APPEND_ONLY: snprintf(buf, size, "append-only archive"); break;
	case TM_KV_NO_SPACE: snprintf(buf, size, "no space left"); break;
	case TM_KV_READ_ONLY: snprintf(buf, size, "read-only"); break;
	case TM_KV_INVALID: snprintf(buf, size, "invalid"); break;
	}
	size_t n = strlen(buf);
	if (err->code != TM_KV_BLOCK && err->detail[0] && n + 2 < size)
		snprintf(buf + n, size - n, ": %s", err->detail);
	return buf;
}

static int fail(struct tm_kv_error *err, enum tm_kv_code code)
{
	if (err) {
		err->code = code;
		err->detail[0] = 0;
	}
	return -1;
}

uint32_t tm_kv_find(const struct tm_kv *kv, const char *key, struct tm_kv_error *err)
{
	uint32_t ino = tm_index_resolve(kv->index, key);
	if (ino == TM_NONE || ino == TM_DAMAGED) {
		fail(err, ino == TM_NONE ? TM_KV_NOT_FOUND : TM_KV_DAMAGED);
		return TM_NONE;
	}
	return ino;
}

/* Inode ino, or NULL with err = Damaged. */
static const struct tm_inode *inode_of(const struct tm_kv *kv, uint32_t ino,
				       struct tm_kv_error *err)
{
	const struct tm_inode *in = tm_index_inode(kv->index, ino);
	if (!in)
		fail(err, TM_KV_DAMAGED);
	return in;
}

enum tm_kv_kind tm_kv_kind_of(const struct tm_kv *kv, uint32_t ino)
{
	const struct tm_inode *in = ino == TM_NONE ? NULL : tm_index_inode(kv->index, ino);
	if (!in)
		return TM_KV_NONE;
	return S_ISDIR(in->mode) ? TM_KV_DICTIONARY : TM_KV_VALUE;
}

enum tm_kv_kind tm_kv_exists(const struct tm_kv *kv, const char *key)
{
	return tm_kv_kind_of(kv, tm_index_resolve(kv->index, key));
}

/* Find a value's inode or say why not. */
static uint32_t find_value(const struct tm_kv *kv, const char *key, struct tm_kv_error *err)
{
	uint32_t ino = tm_kv_find(kv, key, err);
	if (ino == TM_NONE)
		return TM_NONE;
	const struct tm_inode *in = inode_of(kv, ino, err);
	if (!in || S_ISDIR(in->mode)) {
		if (in)
			fail(err, TM_KV_VALUE_EXPECTED);
		return TM_NONE;
	}
	return ino;
}

static int device_read(const struct tm_kv *kv, void *buf, size_t len, uint64_t off,
		       struct tm_kv_error *err)
{
	if (tm_block_pread(kv->block, buf, len, off, err ? &err->block : NULL) < 0)
		return fail(err, TM_KV_BLOCK);
	return 0;
}

/* Read from a sparse file: find the first chunk that ends after off (binary search), then
 * walk chunks and holes. */
static int sparse_read(const struct tm_kv *kv, const struct tm_inode *in,
		       const struct tm_index_sparse *map, uint8_t *buf, size_t len, uint64_t off,
		       struct tm_kv_error *err)
{
	uint64_t lo = 0, hi = map->count;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct tm_index_sparse_chunk *c = &map->chunk[mid];
		if (c->offset + c->length <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (len > 0) {
		if (lo == map->count || off < map->chunk[lo].offset) {
			uint64_t hole_end = lo == map->count ? in->size : map->chunk[lo].offset;
			size_t n = hole_end - off < len ? (size_t)(hole_end - off) : len;
			memset(buf, 0, n);
			buf += n, off += n, len -= n;
			continue;
		}
		const struct tm_index_sparse_chunk *c = &map->chunk[lo];
		uint64_t within = off - c->offset;
		size_t n = c->length - within < len ? (size_t)(c->length - within) : len;
		if (device_read(kv, buf, n, in->offset + c->stored + within, err) < 0)
			return -1;
		buf += n, off += n, len -= n;
		lo++;
	}
	return 0;
}

ssize_t tm_kv_read(const struct tm_kv *kv, uint32_t ino, void *buf, size_t len, uint64_t off,
		   struct tm_kv_error *err)
{
	const struct tm_inode *in = inode_of(kv, ino, err);
	if (!in)
		return -1;
	if (S_ISDIR(in->mode))
		return fail(err, TM_KV_VALUE_EXPECTED);
	if (off >= in->size)
		return 0;
	if (len > in->size - off)
		len = (size_t)(in->size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (S_ISLNK(in->mode)) {
		/* The inode check matched the size with the target's length. */
		const char *target = tm_index_string(kv->index, in->a);
		if (!target)
			return fail(err, TM_KV_DAMAGED);
		memcpy(buf, target + off, len);
		return (ssize_t)len;
	}
	if (!S_ISREG(in->mode))
		return 0;
	const struct tm_index_sparse *map;
	if (!tm_index_sparse_map(kv->index, ino, &map))
		return fail(err, TM_KV_DAMAGED);
	int rc = map ? sparse_read(kv, in, map, buf, len, off, err)
		     : device_read(kv, buf, len, in->offset + off, err);
	return rc < 0 ? -1 : (ssize_t)len;
}

GBytes *tm_kv_get_partial(const struct tm_kv *kv, const char *key, uint64_t off, size_t len,
			  struct tm_kv_error *err)
{
	uint32_t ino = find_value(kv, key, err);
	if (ino == TM_NONE)
		return NULL;
	uint64_t size = tm_index_inode(kv->index, ino)->size; /* checked by find_value */
	if (off >= size)
		return g_bytes_new(NULL, 0);
	if (len > size - off)
		len = (size_t)(size - off);
	uint8_t *buf = g_try_malloc(len ? len : 1);
	if (!buf) {
		fail(err, TM_KV_BLOCK);
		tm_block_fail(&err->block, TM_BLOCK_IO, ENOMEM, "value of %zu bytes", len);
		return NULL;
	}
	ssize_t n = tm_kv_read(kv, ino, buf, len, off, err);
	if (n < 0) {
		g_free(buf);
		return NULL;
	}
	return g_bytes_new_take(buf, (gsize)n);
}

GBytes *tm_kv_get(const struct tm_kv *kv, const char *key, struct tm_kv_error *err)
{
	return tm_kv_get_partial(kv, key, 0, SIZE_MAX, err);
}

int tm_kv_list(const struct tm_kv *kv, const char *key, tm_kv_list_fn fn, void *ud,
	       struct tm_kv_error *err)
{
	uint32_t dir = tm_kv_find(kv, key, err);
	if (dir == TM_NONE)
		return -1;
	const struct tm_inode *in = inode_of(kv, dir, err);
	if (!in)
		return -1;
	if (!S_ISDIR(in->mode))
		return fail(err, TM_KV_DICTIONARY_EXPECTED);
	for (uint32_t i = 0; i < in->b; i++) {
		const struct tm_dentry *d = tm_index_child(kv->index, dir, i);
		const char *name = d ? tm_index_string(kv->index, d->name) : NULL;
		if (!name)
			return fail(err, TM_KV_DAMAGED);
		int rc = fn(ud, name, d->inode, tm_kv_kind_of(kv, d->inode));
		if (rc)
			return rc;
	}
	return 0;
}

int64_t tm_kv_size(const struct tm_kv *kv, const char *key, struct tm_kv_error *err)
{
	uint32_t ino = find_value(kv, key, err);
	return ino == TM_NONE ? -1 : (int64_t)tm_index_inode(kv->index, ino)->size;
}

int tm_kv_last_modified(const struct tm_kv *kv, const char *key, int64_t *sec, uint32_t *nsec,
			struct tm_kv_error *err)
{
	uint32_t ino = tm_kv_find(kv, key, err);
	const struct tm_inode *in = ino == TM_NONE ? NULL : inode_of(kv, ino, err);
	if (!in)
		return -1;
	*sec = in->mtime;
	*nsec = in->mtime_nsec;
	return 0;
}

int tm_kv_digest_ino(const struct tm_kv *kv, uint32_t ino, char out[65], struct tm_kv_error *err)
{
	enum { CHUNK = 1 << 20 };
	const struct tm_inode *in = inode_of(kv, ino, err);
	if (!in)
		return -1;
	uint64_t size = in->size;
	uint8_t *buf = g_malloc(CHUNK);
	GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
	int rc = 0;
	for (uint64_t off = 0; off < size;) {
		ssize_t n = tm_kv_read(kv, ino, buf, CHUNK, off, err);
		if (n <= 0) {
			rc = n < 0 ? -1 : 0;
			break;
		}
		g_checksum_update(sum, buf, (gssize)n);
		off += (uint64_t)n;
	}
	if (rc == 0)
		g_strlcpy(out, g_checksum_get_string(sum), 65);
	g_checksum_free(sum);
	g_free(buf);
	return rc;
}

int tm_kv_digest(const struct tm_kv *kv, const char *key, char out[65], struct tm_kv_error *err)
{
	uint32_t ino = find_value(kv, key, err);
	return ino == TM_NONE ? -1 : tm_kv_digest_ino(kv, ino, out, err);
}
