/* The persisted index: the in-memory arrays written to a file behind a checked header, and
 * mapped back read-only.  A file that is missing, from another format version, for another
 * source, truncated or corrupt is refused (the caller rebuilds), never trusted: the header
 * and the data carry checksums, and every offset and count is checked against the arrays
 * before use, so that no file, however made, can make a reader go out of bounds. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "index.h"

#define MAGIC "TARMIDX\n"
#define FORMAT_VERSION 3u

struct file_header {
	char magic[8];
	uint32_t version, header_size;
	char source_id[64];
	uint64_t members, archive_end;
	uint32_t warnings, errors, truncated, ninodes;
	uint32_t ndentries, nchildren;
	uint64_t strings_len, aux_len;
	uint64_t off_inodes, off_dentries, off_children, off_strings, off_aux, file_size;
	uint64_t fingerprint; /* see tm_index_fingerprint */
	/* Sections beside the index: the decompressor's seek table, the source's path. */
	uint64_t off_seek, seek_len, off_source, source_len;
	uint64_t data_hash;   /* of bytes [header_size, file_size) */
	uint64_t header_hash; /* of this header with header_hash zero */
};

/* A fast non-cryptographic checksum (four independent multiply-xor lanes over 64-bit
 * words): it guards against damage, not malice; the bounds checks guard against that. */
static uint64_t hash_bytes(const void *data, size_t len)
{
	const uint8_t *p = data;
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h[4] = { 1, 2, 3, (uint64_t)len };
	size_t i = 0;
	for (; i + 32 <= len; i += 32)
		for (int l = 0; l < 4; l++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * l, 8);
			h[l] = (h[l] ^ w) * k;
			h[l] ^= h[l] >> 29;
		}
	uint64_t r = h[0] ^ (h[1] << 1) ^ (h[2] << 2) ^ (h[3] << 3);
	for (; i < len; i++)
		r = (r ^ p[i]) * k;
	return r ^ r >> 31;
}

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~7ull;
}

char *tm_index_default_path(const char *source_id)
{
	return g_strdup_printf("%s/tarmount/%s.idx", g_get_user_cache_dir(), source_id);
}

static bool write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;
	while (len > 0) {
		ssize_t n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		b += n, len -= (size_t)n;
	}
	return true;
}

bool tm_index_save(const struct tm_index *idx, const char *path, const char *source_id,
		   const struct tm_index_extra *extra, char *why, size_t why_len)
{
	return tm_index_save_held(idx, path, source_id, extra, NULL, why, why_len);
}

bool tm_index_save_held(const struct tm_index *idx, const char *path, const char *source_id,
			const struct tm_index_extra *extra, int *held, char *why, size_t why_len)
{
	static const struct tm_index_extra none;
	if (held)
		*held = -1;
	if (!extra)
		extra = &none;
	struct file_header h = { .version = FORMAT_VERSION, .header_size = sizeof h };
	memcpy(h.magic, MAGIC, 8);
	memcpy(h.source_id, source_id, 64);
	h.members = idx->members, h.archive_end = idx->archive_end;
	h.warnings = idx->warnings, h.errors = idx->errors, h.truncated = idx->truncated;
	h.ninodes = idx->ninodes, h.ndentries = idx->ndentries, h.nchildren = idx->nchildren;
	h.strings_len = idx->strings_len, h.aux_len = idx->aux_len;
	h.fingerprint = idx->fingerprint;
	struct {
		const void *p;
		uint64_t len;
		uint64_t *off;
	} sec[] = {
		{ idx->inodes, (uint64_t)idx->ninodes * sizeof *idx->inodes, &h.off_inodes },
		{ idx->dentries, (uint64_t)idx->ndentries * sizeof *idx->dentries, &h.off_dentries },
		{ idx->children, (uint64_t)idx->nchildren * sizeof *idx->children, &h.off_children },
		{ idx->strings, idx->strings_len, &h.off_strings },
		{ idx->aux, idx->aux_len, &h.off_aux },
		{ extra->seek, extra->seek_len, &h.off_seek },
		{ extra->source, extra->source ? strlen(extra->source) + 1 : 0, &h.off_source },
	};
	h.seek_len = extra->seek_len;
	h.source_len = extra->source ? strlen(extra->source) + 1 : 0;
	uint64_t at = align8(sizeof h);
	for (size_t i = 0; i < G_N_ELEMENTS(sec); i++) {
		*sec[i].off = at;
		at = align8(at + sec[i].len);
	}
	h.file_size = at;
	/* The data hash covers the sections and the zero padding between them. */
	uint8_t *data = g_try_malloc0(at - sizeof h);
	if (!data) {
		snprintf(why, why_len, "out of memory");
		return false;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(sec); i++)
		if (sec[i].len)
			memcpy(data + *sec[i].off - sizeof h, sec[i].p, sec[i].len);
	h.data_hash = hash_bytes(data, at - sizeof h);
	h.header_hash = hash_bytes(&h, sizeof h);

	char *dir = g_path_get_dirname(path);
	char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, source_id);
	bool ok = false;
	int fd = -1;
	if (g_mkdir_with_parents(dir, 0700) < 0 || (fd = g_mkstemp_full(tmp, O_WRONLY, 0600)) < 0) {
		snprintf(why, why_len, "%s: %s", dir, strerror(errno));
	} else if (held && flock(fd, LOCK_SH) < 0 && errno != ENOLCK && errno != EOPNOTSUPP) {
		snprintf(why, why_len, "%s: locking: %s", tmp, strerror(errno));
	} else if (!write_all(fd, &h, sizeof h) || !write_all(fd, data, at - sizeof h)) {
		/* No fsync: a file torn by a crash fails its checksums and is rebuilt. */
		snprintf(why, why_len, "%s: %s", tmp, strerror(errno ? errno : EIO));
	} else if (rename(tmp, path) < 0) {
		snprintf(why, why_len, "%s: %s", path, strerror(errno));
	} else {
		ok = true;
	}
	if (ok && held)
		*held = fd;
	else if (fd >= 0)
		close(fd);
	if (!ok && fd >= 0)
		unlink(tmp);
	g_free(tmp);
	g_free(dir);
	g_free(data);
	return ok;
}

/* ---- loading ---- */

#define REFUSE(...) (snprintf(why, why_len, __VA_ARGS__), false)

static bool header_ok(const struct file_header *h, uint64_t size, const char *source_id,
		      char *why, size_t why_len)
{
	if (size < sizeof *h || memcmp(h->magic, MAGIC, 8))
		return REFUSE("not an index file");
	if (h->version != FORMAT_VERSION || h->header_size != sizeof *h)
		return REFUSE("index format version %u, not %u", h->version, FORMAT_VERSION);
	struct file_header copy = *h;
	copy.header_hash = 0;
	if (hash_bytes(&copy, sizeof copy) != h->header_hash)
		return REFUSE("header checksum mismatch");
	if (memcmp(h->source_id, source_id, 64))
		return REFUSE("made for another source (or this one changed)");
	if (h->file_size != size)
		return REFUSE("truncated or extended (%llu bytes, header says %llu)",
			      (unsigned long long)size, (unsigned long long)h->file_size);
	struct {
		uint64_t off, len;
	} sec[] = {
		{ h->off_inodes, (uint64_t)h->ninodes * sizeof(struct tm_inode) },
		{ h->off_dentries, (uint64_t)h->ndentries * sizeof(struct tm_dentry) },
		{ h->off_children, (uint64_t)h->nchildren * sizeof(uint32_t) },
		{ h->off_strings, h->strings_len },
		{ h->off_aux, h->aux_len },
		{ h->off_seek, h->seek_len },
		{ h->off_source, h->source_len },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(sec); i++)
		if (sec[i].off % 8 || sec[i].off < sizeof *h || sec[i].off > size ||
		    sec[i].len > size - sec[i].off)
			return REFUSE("section %zu out of bounds", i);
	if (h->ninodes == 0 || h->strings_len == 0 || h->strings_len >= TM_NONE ||
	    h->aux_len >= TM_NONE)
		return REFUSE("bad counts");
	if (h->source_len && ((const uint8_t *)h)[h->off_source + h->source_len - 1] != '\0')
		return REFUSE("source path not terminated");
	return true;
}

static bool in_aux(const struct tm_index *idx, uint64_t off, uint64_t len)
{
	return off <= idx->aux_len && len <= idx->aux_len - off;
}

static bool xattrs_ok(const struct tm_index *idx, uint32_t list)
{
	for (uint64_t at = list;;) {
		uint32_t nv[2];
		if (at % 4 || !in_aux(idx, at, 4))
			return false;
		memcpy(nv, idx->aux + at, 4);
		if (nv[0] == TM_NONE)
			return true;
		if (!in_aux(idx, at, 8))
			return false;
		memcpy(nv, idx->aux + at, 8);
		uint64_t len = 8 + (uint64_t)nv[0] + 1 + nv[1];
		if (!in_aux(idx, at, len) || idx->aux[at + 8 + nv[0]] != '\0' ||
		    memchr(idx->aux + at + 8, '\0', nv[0]))
			return false;
		at += (len + 3) & ~3ull;
	}
}

static bool sparse_ok(const struct tm_index *idx, const struct tm_inode *in)
{
	if (in->a % 8 || !in_aux(idx, in->a, 8))
		return false;
	const struct tm_index_sparse *m = (const void *)(idx->aux + in->a);
	if (m->count > (idx->aux_len - in->a - 8) / sizeof m->chunk[0])
		return false;
	uint64_t next = 0;
	for (uint64_t i = 0; i < m->count; i++) {
		const struct tm_index_sparse_chunk *c = &m->chunk[i];
		if (c->offset < next || c->offset > in->size || c->length > in->size - c->offset)
			return false;
		next = c->offset + c->length;
	}
	return true;
}

/* The directories reachable from the root form a tree: walking their children never
 * reaches a directory twice (no cycle, no directory under two parents, no shared runs of
 * child slots).  Checked breadth-first with a queue, not by recursion. */
static bool tree_ok(const struct tm_index *idx)
{
	uint8_t *seen = g_malloc0(idx->ninodes);
	uint32_t *queue = g_new(uint32_t, idx->ninodes), head = 0, tail = 0;
	bool ok = true;
	seen[TM_ROOT] = 1;
	queue[tail++] = TM_ROOT;
	while (ok && head < tail) {
		const struct tm_inode *dir = &idx->inodes[queue[head++]];
		for (uint32_t k = 0; ok && k < dir->b; k++) {
			uint32_t ino = idx->dentries[idx->children[dir->a + k]].inode;
			if ((idx->inodes[ino].mode & 0170000) != 0040000)
				continue;
			ok = !seen[ino];
			seen[ino] = 1;
			if (ok)
				queue[tail++] = ino;
		}
	}
	g_free(queue);
	g_free(seen);
	return ok;
}

/* The file types the builder makes. */
static bool known_type(uint32_t mode)
{
	switch (mode & 0170000) {
	case 0040000: case 0100000: case 0120000: case 0020000: case 0060000: case 0010000:
		return true;
	}
	return false;
}

/* Every reference inside the arrays points inside them: what the readers rely on. */
static bool structure_ok(const struct tm_index *idx, char *why, size_t why_len)
{
	if (idx->strings[idx->strings_len - 1] != '\0' || idx->strings[0] != '\0')
		return REFUSE("string pool not terminated");
	for (uint32_t d = 0; d < idx->ndentries; d++)
		if (idx->dentries[d].name >= idx->strings_len ||
		    idx->dentries[d].inode >= idx->ninodes)
			return REFUSE("entry %u out of bounds", d);
	for (uint32_t c = 0; c < idx->nchildren; c++)
		if (idx->children[c] >= idx->ndentries)
			return REFUSE("child slot %u out of bounds", c);
	if ((idx->inodes[TM_ROOT].mode & 0170000) != 0040000)
		return REFUSE("root is not a directory");
	for (uint32_t i = 0; i < idx->ninodes; i++) {
		const struct tm_inode *in = &idx->inodes[i];
		bool ok = known_type(in->mode) && in->uname < idx->strings_len &&
			  in->gname < idx->strings_len &&
			  (in->xattrs == TM_NONE || xattrs_ok(idx, in->xattrs));
		switch (in->mode & 0170000) {
		case 0040000:
			ok = ok && in->a <= idx->nchildren && in->b <= idx->nchildren - in->a;
			break;
		case 0120000:
			ok = ok && in->a < idx->strings_len &&
			     in->size == strlen(idx->strings + in->a);
			break;
		case 0100000:
			ok = ok && (in->a == TM_NONE || sparse_ok(idx, in));
			break;
		}
		if (!ok)
			return REFUSE("inode %u out of bounds", i);
	}
	/* Only now that every child run is known to be in bounds. */
	if (!tree_ok(idx))
		return REFUSE("directories do not form a tree");
	return true;
}

struct tm_index *tm_index_load(const char *path, const char *source_id, char *why,
			       size_t why_len)
{
	/* O_NONBLOCK: a FIFO planted at the path must not hang us; only regular files do. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(why, why_len, "%s", strerror(errno));
		return NULL;
	}
	struct tm_index *idx = tm_index_load_fd(fd, source_id, why, why_len);
	close(fd);
	return idx;
}

struct tm_index *tm_index_load_fd(int fd, const char *source_id, char *why, size_t why_len)
{
	struct stat st;
	void *map = MAP_FAILED;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size >= (off_t)sizeof(struct file_header))
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, why_len, "not an index file");
		return NULL;
	}
	const struct file_header *h = map;
	const uint8_t *base = map;
	struct tm_index *idx = NULL;
	if (!header_ok(h, (uint64_t)st.st_size, source_id, why, why_len))
		goto fail;
	if (hash_bytes(base + sizeof *h, h->file_size - sizeof *h) != h->data_hash) {
		snprintf(why, why_len, "data checksum mismatch");
		goto fail;
	}
	idx = g_new0(struct tm_index, 1);
	idx->inodes = (const void *)(base + h->off_inodes);
	idx->dentries = (const void *)(base + h->off_dentries);
	idx->children = (const void *)(base + h->off_children);
	idx->strings = (const char *)(base + h->off_strings);
	idx->aux = base + h->off_aux;
	idx->ninodes = h->ninodes, idx->ndentries = h->ndentries, idx->nchildren = h->nchildren;
	idx->strings_len = h->strings_len, idx->aux_len = h->aux_len;
	idx->members = h->members, idx->archive_end = h->archive_end;
	idx->warnings = h->warnings, idx->errors = h->errors, idx->truncated = h->truncated;
	idx->fingerprint = h->fingerprint;
	idx->seek = h->seek_len ? base + h->off_seek : NULL;
	idx->seek_len = h->seek_len;
	idx->source = h->source_len ? (const char *)base + h->off_source : NULL;
	idx->map = map;
	idx->map_len = (size_t)st.st_size;
	if (!structure_ok(idx, why, why_len)) {
		idx->map = NULL;
		g_free(idx);
		goto fail;
	}
	return idx;
fail:
	munmap(map, (size_t)st.st_size);
	return NULL;
}

/* Read at exactly len bytes at off, or fail. */
static bool pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return true;
}

bool tm_index_peek_fd(int fd, struct tm_index_peek *out)
{
	struct file_header h;
	struct stat st;
	memset(out, 0, sizeof *out);
	memset(&h, 0, sizeof h);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 8)
		return false;
	size_t have = st.st_size < (off_t)sizeof h ? (size_t)st.st_size : sizeof h;
	if (!pread_all(fd, &h, have, 0) || memcmp(h.magic, MAGIC, 8))
		return false;
	if (have < sizeof h)
		return true; /* ours, truncated */
	out->version = h.version;
	if (h.version != FORMAT_VERSION || h.header_size != sizeof h)
		return true; /* ours, but another layout: nothing more can be read */
	struct file_header copy = h;
	copy.header_hash = 0;
	if (hash_bytes(&copy, sizeof copy) != h.header_hash)
		return true;
	memcpy(out->source_id, h.source_id, 64);
	out->source_id[64] = '\0';
	out->header_ok = true;
	uint64_t size = (uint64_t)st.st_size;
	if (h.source_len < 2 || h.source_len > TM_INDEX_PEEK_PATH_MAX || h.off_source > size ||
	    h.source_len > size - h.off_source || h.off_source < sizeof h)
		return true;
	char *src = g_malloc(h.source_len);
	if (!pread_all(fd, src, h.source_len, h.off_source) || src[0] != '/' ||
	    memchr(src, '\0', h.source_len) != src + h.source_len - 1) {
		g_free(src);
		return true;
	}
	out->source = src;
	return true;
}

struct tm_index *tm_index_open(struct tm_block *b, const struct tm_index_options *opts,
			       const char *path, bool persist, bool *loaded,
			       struct tm_block_error *err)
{
	char id[65], why[300];
	*loaded = false;
	if (!persist)
		return tm_index_build(b, opts, err);
	if (!tm_block_identity(b, id, err))
		return NULL;
	char *where = path ? g_strdup(path) : tm_index_default_path(id);
	struct tm_index *idx = tm_index_load(where, id, why, sizeof why);
	if (idx && !tm_index_verify(idx, b, why, sizeof why))
		g_clear_pointer(&idx, tm_index_free);
	if (idx) {
		*loaded = true;
	} else if ((idx = tm_index_build(b, opts, err)) &&
		   !tm_index_save(idx, where, id, NULL, why, sizeof why) && opts && opts->diag) {
		char msg[400];
		snprintf(msg, sizeof msg, "index not saved: %s", why);
		opts->diag(opts->diag_ud, TM_TAR_WARNING, 0, NULL, msg);
	}
	g_free(where);
	return idx;
}

/* The blocks sampled: the first, the last one the archive uses, and the header block of
 * up to 64 members with data, spread over the dentries.  Only the index and the source's
 * size (part of its identity) decide which, so a loaded index picks the same ones as the
 * index it was saved from. */
bool tm_index_fingerprint(const struct tm_index *idx, struct tm_block *b, uint64_t *out,
			  struct tm_block_error *err)
{
	enum { SAMPLES = 64 };
	/* A truncated archive's last member may claim more than the source holds. */
	uint64_t end = MIN(idx->archive_end, tm_block_size_bytes(b));
	uint64_t at[SAMPLES + 2];
	size_t n = 0;
	if (end >= TM_TAR_BLOCK) {
		at[n++] = 0;
		at[n++] = end - TM_TAR_BLOCK;
	}
	uint32_t step = idx->ndentries / SAMPLES + 1;
	for (uint32_t d = 0; d < idx->ndentries && n < G_N_ELEMENTS(at); d += step) {
		const struct tm_inode *in = &idx->inodes[idx->dentries[d].inode];
		if ((in->mode & 0170000) == 0100000 && in->offset >= TM_TAR_BLOCK &&
		    in->offset <= end)
			at[n++] = in->offset - TM_TAR_BLOCK;
	}
	struct sample {
		uint64_t at;
		uint8_t block[TM_TAR_BLOCK];
	} *blk = g_new(struct sample, n);
	struct tm_block_error e = { .code = TM_BLOCK_OK };
	bool ok = true;
	for (size_t i = 0; ok && i < n; i++) {
		blk[i].at = at[i];
		ok = tm_block_pread(b, blk[i].block, TM_TAR_BLOCK, at[i], &e) == 0;
	}
	if (ok)
		*out = hash_bytes(blk, n * sizeof *blk);
	else if (err)
		*err = e;
	g_free(blk);
	return ok;
}

bool tm_index_verify(const struct tm_index *idx, struct tm_block *b, char *why, size_t why_len)
{
	uint64_t fp;
	struct tm_block_error err;
	if (!tm_index_fingerprint(idx, b, &fp, &err)) {
		char msg[200];
		return REFUSE("the source cannot be read: %s",
			      tm_block_strerror(&err, msg, sizeof msg));
	}
	if (fp != idx->fingerprint)
		return REFUSE("the source's headers are not those the index was made from");
	return true;
}

void tm_index_file_seal(GByteArray *file, const char *source_id)
{
	struct file_header h;
	if (file->len < sizeof h) {
		guint old = file->len;
		g_byte_array_set_size(file, sizeof h);
		memset(file->data + old, 0, sizeof h - old);
	}
	size_t len = file->len;
	memcpy(&h, file->data, sizeof h);
	memcpy(h.magic, MAGIC, 8);
	h.version = FORMAT_VERSION;
	h.header_size = sizeof h;
	memcpy(h.source_id, source_id, 64);
	h.file_size = len;
	h.data_hash = hash_bytes(file->data + sizeof h, len - sizeof h);
	h.header_hash = 0;
	h.header_hash = hash_bytes(&h, sizeof h);
	memcpy(file->data, &h, sizeof h);
}
