/* Shared by the fuzz targets: checks that abort (so that libFuzzer records the input), a
 * private scratch directory, exact-size copies of an index's arrays (so that ASan sees a read
 * one byte past any of them), and a walker that visits a whole index the way tarkv and the
 * FUSE front end do, comparing every read with a model of the device.
 *
 * Test code: nothing here is linked into tarmount or tarkv. */
#ifndef TM_FUZZ_COMMON_H
#define TM_FUZZ_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "block.h"
#include "index.h"
#include "kv.h"
#include "tar.h"

/* The entry point every target defines (libFuzzer's, or replay.c's main calls it). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing ---- */

static void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 4, 5)));

static void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s: ", file, line, cond);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* An invariant of the code under test: a violation aborts, and libFuzzer keeps the input. */
#define FZ_CHECK(cond, ...)                                                                 \
	do {                                                                                \
		if (!(cond))                                                                \
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
	} while (0)

/* Whether the check called name is switched off: FUZZ_SKIP_CHECKS is a comma-separated list
 * of names, for going on fuzzing while the fix for a known finding is pending:
 *   multiline-err  a decoder's message spans lines (input quoted into it unescaped)
 *   dir-alias      a loaded index reaches a directory twice (walks then skip it)
 *   reread, own-table, table-unhashed  the decompressing layer's (fuzz_decomp.c,
 *                  fuzz_seek_table.c)
 *   copy-roundtrip the seekable copy's (fuzz_seek_copy.c) */
static inline bool fz_skipped(const char *name)
{
	const char *s = getenv("FUZZ_SKIP_CHECKS");
	size_t n = strlen(name);
	for (const char *p = s; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
		if (strcspn(p, ",") == n && !strncmp(p, name, n))
			return true;
	return false;
}

/* An error buffer the decoders fill must hold one NUL-terminated line (tar.h: "one line,
 * no trailing newline"): it ends up in a diagnostic line on stderr. */
static inline void fz_check_err(const char *err, size_t size)
{
	size_t n = strnlen(err, size);
	FZ_CHECK(n < size, "error message not terminated");
	FZ_CHECK(!memchr(err, '\n', n) || fz_skipped("multiline-err"),
		 "error message spans lines: %s", err);
}

/* Write the unsigned checksum of a header block into its field, as GNU tar does. */
static inline void fz_fix_checksum(uint8_t *blk)
{
	memset(blk + 148, ' ', 8);
	unsigned sum = 0;
	for (int i = 0; i < TM_TAR_BLOCK; i++)
		sum += blk[i];
	char buf[16];
	snprintf(buf, sizeof buf, "%06o", sum & 0777777);
	memcpy(blk + 148, buf, 6);
	blk[154] = 0;
	blk[155] = ' ';
}

/* ---- little-endian reads from the input ---- */

static inline uint32_t fz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t fz_le64(const uint8_t *p)
{
	return (uint64_t)fz_le32(p) | (uint64_t)fz_le32(p + 4) << 32;
}

/* ---- scratch files ---- */

static char *fz_dir;

static void fz_dir_remove(void)
{
	if (!fz_dir)
		return;
	GDir *d = g_dir_open(fz_dir, 0, NULL);
	const char *n;
	while (d && (n = g_dir_read_name(d))) {
		char *p = g_build_filename(fz_dir, n, NULL);
		unlink(p);
		g_free(p);
	}
	if (d)
		g_dir_close(d);
	rmdir(fz_dir);
	g_free(fz_dir);
	fz_dir = NULL;
}

/* A directory private to this process (in /dev/shm when it can be, so that the many small
 * index files never touch a disk), removed at exit. */
static const char *fz_scratch_dir(void)
{
	if (fz_dir)
		return fz_dir;
	const char *bases[] = { getenv("FUZZ_TMPDIR"), "/dev/shm", g_get_tmp_dir() };
	for (size_t i = 0; i < G_N_ELEMENTS(bases) && !fz_dir; i++) {
		if (!bases[i])
			continue;
		char *t = g_build_filename(bases[i], "tarmount-fuzz-XXXXXX", NULL);
		if (g_mkdtemp(t))
			fz_dir = t;
		else
			g_free(t);
	}
	FZ_CHECK(fz_dir != NULL, "no scratch directory: %s", strerror(errno));
	atexit(fz_dir_remove);
	return fz_dir;
}

static inline char *fz_scratch_path(const char *name)
{
	return g_build_filename(fz_scratch_dir(), name, NULL);
}

static inline void fz_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FZ_CHECK(fd >= 0, "%s: %s", path, strerror(errno));
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		FZ_CHECK(n > 0, "%s: %s", path, strerror(errno));
		p += n, len -= (size_t)n;
	}
	close(fd);
}

/* The source id the fuzzers save and load indexes under (64 hex digits). */
#define FZ_SOURCE_ID "f00df00df00df00df00df00df00df00df00df00df00df00df00df00df00df00d"

/* ---- exact-size copies of an index ---- */

/* A heap copy of exactly n bytes (malloc, not g_memdup2: for n == 0 ASan's malloc gives a
 * zero-size block that traps every read, where g_memdup2 would give NULL). */
static inline void *fz_dup_exact(const void *p, size_t n)
{
	void *q = malloc(n);
	FZ_CHECK(q != NULL, "out of memory");
	if (n)
		memcpy(q, p, n);
	return q;
}

/* A struct tm_index whose arrays are heap copies of exactly their length: a built index
 * keeps them in GArrays with spare capacity and a loaded one in a page-rounded mapping,
 * where ASan would not see a read past the end.  Free with fz_shadow_free (not
 * tm_index_free). */
static inline struct tm_index *fz_shadow_new(const struct tm_index *src)
{
	struct tm_index *s = g_new(struct tm_index, 1);
	*s = *src;
	s->storage = NULL;
	s->map = NULL;
	s->map_len = 0;
	s->inodes = fz_dup_exact(src->inodes, (size_t)src->ninodes * sizeof *src->inodes);
	s->dentries = fz_dup_exact(src->dentries, (size_t)src->ndentries * sizeof *src->dentries);
	s->children = fz_dup_exact(src->children, (size_t)src->nchildren * sizeof *src->children);
	s->strings = fz_dup_exact(src->strings, (size_t)src->strings_len);
	s->aux = fz_dup_exact(src->aux, (size_t)src->aux_len);
	return s;
}

static inline void fz_shadow_free(struct tm_index *s)
{
	free((void *)s->inodes);
	free((void *)s->dentries);
	free((void *)s->children);
	free((void *)s->strings);
	free((void *)s->aux);
	g_free(s);
}

/* ---- the device model ---- */

/* What a device holds: data[0..len), then zeros up to size; nothing past size (devices
 * have exact byte sizes: reading past size fails even inside the last sector). */
struct fz_dev {
	struct tm_block *block;
	const uint8_t *data;
	size_t len;
	uint64_t size;
};

/* Device bytes [off, off+n) into out; false when any of them is past the end. */
static inline bool fz_dev_bytes(const struct fz_dev *d, uint64_t off, uint64_t n, uint8_t *out)
{
	if (n == 0) /* nothing is needed from the device, wherever off points */
		return true;
	if (off > d->size || n > d->size - off)
		return false;
	uint64_t have = off < d->len ? d->len - off : 0;
	if (have > n)
		have = n;
	if (have)
		memcpy(out, d->data + off, (size_t)have);
	memset(out + have, 0, (size_t)(n - have));
	return true;
}

/* ---- walking an index ---- */

enum fz_walk_flags {
	FZ_BUILT = 1,        /* built by tm_index_build: also check what the builder promises */
};

struct fz_walk {
	const struct tm_index *idx;
	const struct fz_dev *dev;
	struct tm_kv kv;
	unsigned flags;
	uint32_t rng;
	uint8_t *inode_seen, *dir_seen;
	unsigned digests;   /* digests left to compute */
	uint64_t key_budget; /* path bytes the path-keyed calls may still resolve */
	uint8_t *buf, *want;
	size_t buf_len;
};

static inline uint32_t fz_rand(struct fz_walk *w)
{
	uint32_t x = w->rng ? w->rng : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return w->rng = x;
}

static inline bool fz_built(const struct fz_walk *w)
{
	return w->flags & FZ_BUILT;
}

static inline void fz_buf_reserve(struct fz_walk *w, size_t n)
{
	if (n <= w->buf_len)
		return;
	w->buf = g_realloc(w->buf, n);
	w->want = g_realloc(w->want, n);
	w->buf_len = n;
}

/* The model of tm_kv_read for a regular file: the expected bytes of [off, off+len) (len
 * already clipped to the size) in w->want, false when a device byte it needs is past the
 * end.  Chunks are walked all of them, independently of the reader's binary search. */
static bool fz_model_read(struct fz_walk *w, const struct tm_inode *in,
			  const struct tm_index_sparse *map, uint64_t off, size_t len)
{
	if (!map)
		return fz_dev_bytes(w->dev, in->offset + off, len, w->want);
	memset(w->want, 0, len);
	bool ok = true;
	for (uint64_t i = 0; i < map->count; i++) {
		const struct tm_index_sparse_chunk *c = &map->chunk[i];
		uint64_t lo = c->offset > off ? c->offset : off;
		uint64_t hi = c->offset + c->length < off + len ? c->offset + c->length : off + len;
		if (lo >= hi)
			continue;
		if (!fz_dev_bytes(w->dev, in->offset + c->stored + (lo - c->offset), hi - lo,
				  w->want + (lo - off)))
			ok = false;
	}
	return ok;
}

/* An accessor refused something of inode ino as damaged: only a loaded index may be, and
 * it is then marked so. */
static void fz_damaged(const struct fz_walk *w, uint32_t ino, const char *what)
{
	FZ_CHECK(!fz_built(w) && tm_index_damaged(w->idx),
		 "inode %u: %s refused as damaged, the index not marked", ino, what);
}

/* One read through tm_kv_read, compared with the model (the inode and its map are known
 * sound: the checks are the same each time). */
static void fz_read_check(struct fz_walk *w, uint32_t ino, uint64_t off, size_t len)
{
	const struct tm_inode *in = tm_index_inode(w->idx, ino);
	const struct tm_index_sparse *map;
	FZ_CHECK(in && tm_index_sparse_map(w->idx, ino, &map), "inode %u: checks changed", ino);
	size_t want_len = off >= in->size ? 0 : in->size - off < len ? (size_t)(in->size - off) : len;
	fz_buf_reserve(w, len ? len : 1);
	struct tm_kv_error err = { 0 };
	ssize_t n = tm_kv_read(&w->kv, ino, w->buf, len, off, &err);
	if (want_len == 0) {
		FZ_CHECK(n == 0, "inode %u: read at %llu of a %llu-byte file gave %zd", ino,
			 (unsigned long long)off, (unsigned long long)in->size, n);
		return;
	}
	bool ok = fz_model_read(w, in, map, off, want_len);
	if (n < 0) {
		FZ_CHECK(err.code == TM_KV_BLOCK, "inode %u: read failed with code %d", ino,
			 err.code);
		/* A loaded index may put a zero-length chunk past the device, which the reader
		 * still seeks to: failing there is fine.  A built one never. */
		FZ_CHECK(!ok ? true : !fz_built(w),
			 "inode %u: read of %zu at %llu failed (%s) though its bytes are on the "
			 "device", ino, want_len, (unsigned long long)off, err.block.msg);
		return;
	}
	FZ_CHECK(ok, "inode %u: read of %zu at %llu succeeded past the device's end", ino,
		 want_len, (unsigned long long)off);
	FZ_CHECK((size_t)n == want_len, "inode %u: read at %llu gave %zd bytes, not %zu", ino,
		 (unsigned long long)off, n, want_len);
	FZ_CHECK(!memcmp(w->buf, w->want, want_len),
		 "inode %u: read of %zu at %llu differs from the device model%s", ino, want_len,
		 (unsigned long long)off, map ? " (sparse)" : "");
}

static void fz_check_sparse(struct fz_walk *w, uint32_t ino, const struct tm_index_sparse *map)
{
	const struct tm_inode *in = tm_index_inode(w->idx, ino);
	uint64_t next = 0, stored = 0;
	for (uint64_t i = 0; i < map->count; i++) {
		const struct tm_index_sparse_chunk *c = &map->chunk[i];
		/* What the loader checks and the reader relies on. */
		FZ_CHECK(c->offset >= next && c->offset <= in->size &&
				 c->length <= in->size - c->offset,
			 "inode %u: sparse chunk %llu out of order or past the size", ino,
			 (unsigned long long)i);
		if (fz_built(w))
			FZ_CHECK(c->stored == stored, "inode %u: chunk %llu stored at %llu, not %llu",
				 ino, (unsigned long long)i, (unsigned long long)c->stored,
				 (unsigned long long)stored);
		next = c->offset + c->length;
		stored += c->length;
	}
	if (fz_built(w))
		FZ_CHECK(in->offset <= w->dev->size && stored <= w->dev->size - in->offset,
			 "inode %u: sparse data past the device", ino);
}

/* Reads of a regular file: all of it when small, else both ends; some random windows; the
 * edges of the first sparse chunks. */
static void fz_check_regular(struct fz_walk *w, uint32_t ino)
{
	const struct tm_inode *in = tm_index_inode(w->idx, ino);
	const struct tm_index_sparse *map;
	if (!tm_index_sparse_map(w->idx, ino, &map))
		return fz_damaged(w, ino, "sparse map");
	if (map)
		fz_check_sparse(w, ino, map);
	else if (fz_built(w))
		FZ_CHECK(in->offset <= w->dev->size && in->size <= w->dev->size - in->offset,
			 "inode %u: data past the device", ino);
	enum { WHOLE = 256 * 1024, END = 64 * 1024 };
	uint64_t size = in->size;
	if (size <= WHOLE) {
		fz_read_check(w, ino, 0, (size_t)size);
		/* The same in pieces whose size does not divide a sector. */
		size_t piece = 1 + fz_rand(w) % 5000;
		for (uint64_t o = 0; o < size && o < 4 * piece; o += piece)
			fz_read_check(w, ino, o, piece);
	} else {
		fz_read_check(w, ino, 0, END);
		fz_read_check(w, ino, size - END, END);
	}
	for (int i = 0; i < 4; i++) {
		uint64_t o = size ? ((uint64_t)fz_rand(w) << 32 | fz_rand(w)) % size : 0;
		fz_read_check(w, ino, o, 1 + fz_rand(w) % 9000);
	}
	fz_read_check(w, ino, size, 10);      /* at the end: nothing */
	fz_read_check(w, ino, size + 1000, 1); /* past it */
	for (uint64_t i = 0; map && i < map->count && i < 8; i++) {
		const struct tm_index_sparse_chunk *c = &map->chunk[i];
		fz_read_check(w, ino, c->offset > 700 ? c->offset - 700 : 0, 1400);
		uint64_t end = c->offset + c->length;
		fz_read_check(w, ino, end > 700 ? end - 700 : 0, 1400);
	}
	/* The digest of a small file, against the model's. */
	if (w->digests && size <= 1024 * 1024) {
		w->digests--;
		fz_buf_reserve(w, size ? (size_t)size : 1);
		bool ok = fz_model_read(w, in, map, 0, (size_t)size);
		char hex[65];
		struct tm_kv_error err = { 0 };
		int rc = tm_kv_digest_ino(&w->kv, ino, hex, &err);
		if (rc == 0) {
			FZ_CHECK(ok, "inode %u: digest computed over bytes past the device", ino);
			char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, w->want,
								(gsize)size);
			FZ_CHECK(!strcmp(sum, hex), "inode %u: digest %s, model %s", ino, hex, sum);
			g_free(sum);
		} else {
			FZ_CHECK(!ok || !fz_built(w), "inode %u: digest failed", ino);
		}
	}
}

static void fz_check_inode(struct fz_walk *w, uint32_t ino)
{
	const struct tm_index *idx = w->idx;
	const struct tm_inode *in = tm_index_inode(idx, ino);
	if (!in)
		return fz_damaged(w, ino, "inode");
	volatile size_t touch = 0;
	FZ_CHECK(in->uname < idx->strings_len && in->gname < idx->strings_len,
		 "inode %u: owner names out of the string pool", ino);
	const char *owner[2] = { tm_index_string(idx, in->uname), tm_index_string(idx, in->gname) };
	for (int i = 0; i < 2; i++)
		if (owner[i])
			touch += strlen(owner[i]);
		else
			fz_damaged(w, ino, "owner name");

	/* xattrs: every name and every value byte. */
	uint32_t cur = 0, vlen, count = 0;
	const char *name;
	const void *value;
	int more;
	while ((more = tm_index_xattr_next(idx, ino, &cur, &name, &value, &vlen)) > 0) {
		FZ_CHECK(++count <= idx->aux_len / 12 + 1, "inode %u: xattr list loops", ino);
		touch += strlen(name);
		const uint8_t *v = value;
		for (uint32_t i = 0; i < vlen; i++)
			touch += v[i];
	}
	if (more < 0)
		fz_damaged(w, ino, "xattr list");
	(void)touch;

	struct tm_kv_error err = { 0 };
	uint8_t one[16];
	switch (in->mode & S_IFMT) {
	case S_IFDIR:
		FZ_CHECK(tm_kv_kind_of(&w->kv, ino) == TM_KV_DICTIONARY, "inode %u: kind", ino);
		FZ_CHECK(tm_kv_read(&w->kv, ino, one, sizeof one, 0, &err) == -1 &&
				 err.code == TM_KV_VALUE_EXPECTED,
			 "inode %u: reading a directory", ino);
		FZ_CHECK(in->a <= idx->nchildren && in->b <= idx->nchildren - in->a,
			 "inode %u: children out of bounds", ino);
		break;
	case S_IFLNK: {
		FZ_CHECK(in->a < idx->strings_len, "inode %u: symlink target out of bounds", ino);
		const char *target = tm_index_string(idx, in->a);
		FZ_CHECK(in->size == strlen(target), "inode %u: symlink size", ino);
		fz_buf_reserve(w, in->size + 1);
		ssize_t n = tm_kv_read(&w->kv, ino, w->buf, in->size + 1, 0, &err);
		FZ_CHECK(n == (ssize_t)in->size && !memcmp(w->buf, target, in->size),
			 "inode %u: symlink read", ino);
		if (in->size)
			FZ_CHECK(tm_kv_read(&w->kv, ino, w->buf, 3, in->size - 1, &err) == 1,
				 "inode %u: symlink tail read", ino);
		break;
	}
	case S_IFREG:
		fz_check_regular(w, ino);
		break;
	default:
		/* Devices, fifos (and, in a loaded file, any other type): no value bytes. */
		FZ_CHECK(tm_kv_read(&w->kv, ino, one, sizeof one, 0, &err) == 0,
			 "inode %u: reading a special file", ino);
		const struct tm_index_sparse *map;
		FZ_CHECK(tm_index_sparse_map(idx, ino, &map) && map == NULL,
			 "inode %u: special file with a map", ino);
		break;
	}
}

/* Path-keyed calls on an entry the walk reached at path (with inode ino). */
static void fz_check_keyed(struct fz_walk *w, const char *path, uint32_t ino)
{
	/* Each call resolves the path five times, at a cost of its depth: a budget keeps the
	 * walk of a very deep tree linear. */
	uint64_t cost = 5 * (strlen(path) + 1);
	if (cost > w->key_budget)
		return;
	w->key_budget -= cost;
	const struct tm_index *idx = w->idx;
	const struct tm_inode *in = tm_index_inode(idx, ino);
	uint32_t found = tm_index_resolve(idx, path);
	struct tm_kv_error err = { 0 };
	int64_t sec;
	uint32_t nsec;
	int rc = tm_kv_last_modified(&w->kv, path, &sec, &nsec, &err);
	enum tm_kv_kind kind = tm_kv_exists(&w->kv, path);
	int64_t size = tm_kv_size(&w->kv, path, &err);
	GBytes *part = tm_kv_get_partial(&w->kv, path, 1, 100, &err);
	if (fz_built(w)) {
		/* Names in a built index are real path segments, sorted: the walk's path leads
		 * back to the same inode. */
		FZ_CHECK(found == ino, "'%s': resolves to %u, the walk found %u", path, found, ino);
		FZ_CHECK(rc == 0 && sec == in->mtime && nsec == in->mtime_nsec,
			 "'%s': last_modified", path);
		FZ_CHECK(kind == (S_ISDIR(in->mode) ? TM_KV_DICTIONARY : TM_KV_VALUE),
			 "'%s': exists", path);
		FZ_CHECK(S_ISDIR(in->mode) ? size == -1 : size == (int64_t)in->size, "'%s': size",
			 path);
		FZ_CHECK(S_ISDIR(in->mode) || !S_ISREG(in->mode) || part != NULL,
			 "'%s': get_partial", path);
	}
	if (part)
		g_bytes_unref(part);
}

static int fz_count_child(void *ud, const char *name, uint32_t ino, enum tm_kv_kind kind)
{
	(void)name, (void)ino, (void)kind;
	(*(uint32_t *)ud)++;
	return 0;
}

/* Visit every entry reachable from the root, depth first, and every inode.  A directory
 * reached twice (a cycle, or two names for one directory) would make tarkv's recursive
 * walk and find loop or blow up, and the FUSE front end serve an endless tree: the builder
 * never makes one, and an index file the loader accepts must not hold one either
 * (FUZZ_SKIP_CHECKS=dir-alias: only skip them). */
static void fz_walk_index(const struct tm_index *idx, const struct fz_dev *dev, unsigned flags,
			  uint32_t seed)
{
	struct fz_walk w = { .idx = idx, .dev = dev, .flags = flags, .rng = seed | 1,
			     .digests = 4, .key_budget = 1u << 20 };
	tm_kv_init(&w.kv, idx, dev->block);
	bool allow_alias = fz_skipped("dir-alias");
	size_t path_max = fz_built(&w) ? 64 * 1024 : 4096;
	FZ_CHECK(idx->ninodes > 0 && tm_index_inode(idx, TM_ROOT) &&
			 S_ISDIR(tm_index_inode(idx, TM_ROOT)->mode),
		 "no root directory");
	w.inode_seen = g_malloc0(idx->ninodes);
	w.dir_seen = g_malloc0(idx->ninodes);

	struct frame {
		uint32_t dir, i;
		size_t keep;
		bool keyed; /* the path is short enough for keyed calls */
	};
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(struct frame));
	GString *path = g_string_new("");
	struct frame root = { TM_ROOT, 0, 0, true };
	g_array_append_val(stack, root);
	w.dir_seen[TM_ROOT] = 1;
	w.inode_seen[TM_ROOT] = 1;
	fz_check_inode(&w, TM_ROOT);
	fz_check_keyed(&w, "", TM_ROOT);
	fz_check_keyed(&w, "/", TM_ROOT);
	while (stack->len) {
		struct frame *f = &g_array_index(stack, struct frame, stack->len - 1);
		uint32_t dir = f->dir;
		if (f->i == 0 && f->keyed && path->len + 1 <= w.key_budget) {
			w.key_budget -= path->len + 1;
			uint32_t listed = 0;
			struct tm_kv_error err = { 0 };
			int rc = tm_kv_list(&w.kv, path->str, fz_count_child, &listed, &err);
			if (fz_built(&w))
				FZ_CHECK(rc == 0 && listed == tm_index_child_count(idx, dir),
					 "'%s': list gave %u of %u", path->str, listed,
					 tm_index_child_count(idx, dir));
		}
		if (f->i == tm_index_child_count(idx, dir)) {
			g_string_truncate(path, f->keep);
			g_array_set_size(stack, stack->len - 1);
			continue;
		}
		uint32_t slot = f->i++;
		bool keyed = f->keyed;
		const struct tm_dentry *d = tm_index_child(idx, dir, slot);
		if (!d) {
			fz_damaged(&w, dir, "child");
			continue;
		}
		FZ_CHECK(d->name < idx->strings_len && d->inode < idx->ninodes,
			 "dentry out of bounds");
		const char *name = tm_index_string(idx, d->name);
		if (!name) {
			fz_damaged(&w, dir, "child's name");
			continue;
		}
		size_t nlen = strlen(name);
		if (fz_built(&w)) {
			FZ_CHECK(nlen > 0 && !memchr(name, '/', nlen) && strcmp(name, ".") &&
					 strcmp(name, ".."),
				 "bad name '%s' in a built index", name);
			if (slot > 0) {
				const struct tm_dentry *p = tm_index_child(idx, dir, slot - 1);
				FZ_CHECK(strcmp(tm_index_string(idx, p->name), name) < 0,
					 "children of inode %u not strictly sorted at '%s'", dir, name);
			}
			uint32_t de = TM_NONE;
			FZ_CHECK(tm_index_lookup(idx, dir, name, nlen, &de) == d->inode &&
					 &idx->dentries[de] == d,
				 "lookup of '%s' in inode %u", name, dir);
		}
		size_t keep = path->len;
		keyed = keyed && keep + 1 + nlen <= path_max;
		if (keyed) {
			if (path->len)
				g_string_append_c(path, '/');
			g_string_append_len(path, name, (gssize)nlen);
		}
		uint32_t ino = d->inode;
		if (!w.inode_seen[ino]) {
			w.inode_seen[ino] = 1;
			fz_check_inode(&w, ino);
		}
		if (keyed)
			fz_check_keyed(&w, path->str, ino);
		if (S_ISDIR(tm_index_inode(idx, ino)->mode)) { /* checked by tm_index_child */
			if (w.dir_seen[ino]) {
				FZ_CHECK(allow_alias,
					 "directory inode %u reached a second time (through '%s' in "
					 "inode %u): a cycle or a directory with two names",
					 ino, name, dir);
			} else {
				w.dir_seen[ino] = 1;
				struct frame nf = { ino, 0, keep, keyed };
				g_array_append_val(stack, nf);
				continue; /* the path keeps the directory's name until it is done */
			}
		}
		g_string_truncate(path, keep);
	}
	/* Unreachable inodes too: nothing may go out of bounds whichever inode is asked. */
	for (uint32_t i = 0; i < idx->ninodes; i++)
		if (!w.inode_seen[i])
			fz_check_inode(&w, i);
	/* Damage found is for good, and the whole check finds at least what the walk did. */
	bool seen = tm_index_damaged(idx);
	bool all = tm_index_check_all(idx);
	FZ_CHECK(all == !tm_index_damaged(idx) && !(seen && all), "damage forgotten");
	g_string_free(path, TRUE);
	g_array_unref(stack);
	g_free(w.inode_seen);
	g_free(w.dir_seen);
	g_free(w.buf);
	g_free(w.want);
}

#endif
