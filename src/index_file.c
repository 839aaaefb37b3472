/* The persisted index: the in-memory arrays written to a file behind a checked header, and
 * mapped back read-only.  A file that is missing, from another format version, for another
 * source, truncated or with a bad header is refused (the caller rebuilds), never trusted:
 * the header and each page of the data carry checksums, and every offset and count is
 * checked against the arrays before use (src/index.c, as each is read), so that no file,
 * however made, can make a reader go out of bounds.
 *
 * Layout (version 4): the header; the page table (a checksum per page of the data area);
 * from data_start (4096-aligned), the sections, 8-aligned: inodes, dentries, children,
 * strings, aux, parents (of each directory inode, see index_check.h), the seek table, the
 * source's path. */
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
#include "index_check.h"

#define MAGIC "TARMIDX\n"
#define FORMAT_VERSION 4u
/* 4 KiB pages: what a lookup touches is a few of them (64 KiB pages cost a remount 10
 * times as many bytes hashed for the fingerprint's samples alone); the table costs 8
 * bytes a page, 0.2 % of the file. */
#define PAGE_SHIFT 12u
#define PAGE_SHIFT_MAX 20u
#define DATA_ALIGN 4096u

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
	uint64_t off_parents; /* ninodes struct tm_index_parent */
	uint32_t page_shift, has_xattrs;
	uint64_t data_start, npages; /* pages of [data_start, file_size); the table follows
					this header */
	uint64_t table_hash;  /* of the page table */
	uint64_t header_hash; /* of this header with header_hash zero */
};

static uint64_t align8(uint64_t n)
{
	return (n + 7) & ~7ull;
}

static uint64_t pages_for(uint64_t len, unsigned shift)
{
	return (len >> shift) + !!(len & (((uint64_t)1 << shift) - 1));
}

/* The page table of file[0..len) as h lays it out, and its hash. */
static void seal_pages(uint8_t *file, const struct file_header *h, uint64_t *table_hash)
{
	uint64_t *sums = (uint64_t *)(file + sizeof *h), page = (uint64_t)1 << h->page_shift;
	for (uint64_t p = 0; p < h->npages; p++) {
		uint64_t at = h->data_start + p * page;
		uint64_t s = tm_index_page_sum(file + at, MIN(page, h->file_size - at), p);
		memcpy(&sums[p], &s, 8);
	}
	*table_hash = tm_index_hash(sums, h->npages * 8);
}

/* Of each directory, the directory and the slot of its run that list it (TM_NONE for the
 * root and for what no run lists).  Whatever the arrays hold (tests save crafted ones):
 * nothing is read outside them. */
static struct tm_index_parent *parents_of(const struct tm_index *idx)
{
	struct tm_index_parent *parent = g_new(struct tm_index_parent, idx->ninodes + 1);
	for (uint32_t i = 0; i < idx->ninodes; i++)
		parent[i].dir = parent[i].slot = TM_NONE;
	for (uint32_t i = 0; i < idx->ninodes; i++) {
		const struct tm_inode *d = &idx->inodes[i];
		if ((d->mode & 0170000) != 0040000 || d->a > idx->nchildren ||
		    d->b > idx->nchildren - d->a)
			continue;
		for (uint32_t k = 0; k < d->b; k++) {
			uint32_t de = idx->children[d->a + k];
			uint32_t c = de < idx->ndentries ? idx->dentries[de].inode : TM_NONE;
			if (c < idx->ninodes && c != TM_ROOT && parent[c].dir == TM_NONE &&
			    (idx->inodes[c].mode & 0170000) == 0040000)
				parent[c] = (struct tm_index_parent){ i, d->a + k };
		}
	}
	return parent;
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
	h.has_xattrs = idx->has_xattrs;
	h.page_shift = PAGE_SHIFT;
	struct tm_index_parent *parents = parents_of(idx);
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
		{ parents, (uint64_t)idx->ninodes * sizeof *parents, &h.off_parents },
		{ extra->seek, extra->seek_len, &h.off_seek },
		{ extra->source, extra->source ? strlen(extra->source) + 1 : 0, &h.off_source },
	};
	h.seek_len = extra->seek_len;
	h.source_len = extra->source ? strlen(extra->source) + 1 : 0;
	uint64_t data_len = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(sec); i++)
		data_len = align8(data_len + sec[i].len);
	h.npages = pages_for(data_len, h.page_shift);
	h.data_start = (sizeof h + h.npages * 8 + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
	h.file_size = h.data_start + data_len;
	/* The page checksums cover the sections and the zero padding between them. */
	uint8_t *file = g_try_malloc0(h.file_size);
	if (!file) {
		g_free(parents);
		snprintf(why, why_len, "out of memory");
		return false;
	}
	uint64_t at = h.data_start;
	for (size_t i = 0; i < G_N_ELEMENTS(sec); i++) {
		*sec[i].off = at;
		if (sec[i].len)
			memcpy(file + at, sec[i].p, sec[i].len);
		at = align8(at + sec[i].len);
	}
	g_free(parents);
	seal_pages(file, &h, &h.table_hash);
	h.header_hash = tm_index_hash(&h, sizeof h);
	memcpy(file, &h, sizeof h);

	char *dir = g_path_get_dirname(path);
	char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, source_id);
	bool ok = false;
	int fd = -1;
	if (g_mkdir_with_parents(dir, 0700) < 0 || (fd = g_mkstemp_full(tmp, O_WRONLY, 0600)) < 0) {
		snprintf(why, why_len, "%s: %s", dir, strerror(errno));
	} else if (held && flock(fd, LOCK_SH) < 0 && errno != ENOLCK && errno != EOPNOTSUPP) {
		snprintf(why, why_len, "%s: locking: %s", tmp, strerror(errno));
	} else if (!write_all(fd, file, h.file_size)) {
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
	g_free(file);
	return ok;
}

/* ---- loading ---- */

#define REFUSE(...) (snprintf(why, why_len, __VA_ARGS__), false)

/* Where the sections are, by enum tm_index_section. */
static void sections_of(const struct file_header *h, uint64_t off[TM_SEC_COUNT],
			uint64_t len[TM_SEC_COUNT])
{
	const uint64_t o[TM_SEC_COUNT] = { h->off_inodes, h->off_dentries, h->off_children,
					   h->off_strings, h->off_aux, h->off_parents,
					   h->off_seek, h->off_source };
	const uint64_t l[TM_SEC_COUNT] = {
		(uint64_t)h->ninodes * sizeof(struct tm_inode),
		(uint64_t)h->ndentries * sizeof(struct tm_dentry),
		(uint64_t)h->nchildren * sizeof(uint32_t), h->strings_len, h->aux_len,
		(uint64_t)h->ninodes * sizeof(struct tm_index_parent), h->seek_len, h->source_len,
	};
	memcpy(off, o, sizeof o);
	memcpy(len, l, sizeof l);
}

/* The header itself: its checksum, then every size and offset against the file's size
 * (nothing past the header is read). */
static bool header_ok(const struct file_header *h, uint64_t size, const char *source_id,
		      char *why, size_t why_len)
{
	if (size < sizeof *h || memcmp(h->magic, MAGIC, 8))
		return REFUSE("not an index file");
	if (h->version != FORMAT_VERSION || h->header_size != sizeof *h)
		return REFUSE("index format version %u, not %u", h->version, FORMAT_VERSION);
	struct file_header copy = *h;
	copy.header_hash = 0;
	if (tm_index_hash(&copy, sizeof copy) != h->header_hash)
		return REFUSE("header checksum mismatch");
	if (memcmp(h->source_id, source_id, 64))
		return REFUSE("made for another source (or this one changed)");
	if (h->file_size != size)
		return REFUSE("truncated or extended (%llu bytes, header says %llu)",
			      (unsigned long long)size, (unsigned long long)h->file_size);
	if (h->page_shift < PAGE_SHIFT || h->page_shift > PAGE_SHIFT_MAX ||
	    h->data_start % 8 || h->data_start > size ||
	    h->npages != pages_for(size - h->data_start, h->page_shift) ||
	    h->npages > (h->data_start - sizeof *h) / 8)
		return REFUSE("bad page table");
	uint64_t off[TM_SEC_COUNT], len[TM_SEC_COUNT];
	sections_of(h, off, len);
	for (size_t i = 0; i < TM_SEC_COUNT; i++)
		if (off[i] % 8 || off[i] < h->data_start || off[i] > size || len[i] > size - off[i])
			return REFUSE("section %zu out of bounds", i);
	if (h->ninodes == 0 || h->ninodes >= TM_DAMAGED || h->strings_len == 0 ||
	    h->strings_len >= TM_NONE || h->aux_len >= TM_NONE)
		return REFUSE("bad counts");
	return true;
}

/* What every reader needs, checked before any does: the pool's first and last bytes are
 * NUL, the root is a directory; and what the index's other users read without accessors
 * (the seek table, the source path) has right checksums. */
static bool first_records_ok(const struct tm_index *idx, char *why, size_t why_len)
{
	const struct tm_index_lazy *z = idx->lazy;
	if (!tm_index_span_ok(idx, TM_SEC_STRINGS, 0, 1) ||
	    !tm_index_span_ok(idx, TM_SEC_STRINGS, idx->strings_len - 1, 1))
		return REFUSE("string pool damaged");
	if (idx->strings[idx->strings_len - 1] != '\0' || idx->strings[0] != '\0')
		return REFUSE("string pool not terminated");
	const struct tm_inode *root = tm_index_inode(idx, TM_ROOT);
	if (!root || (root->mode & 0170000) != 0040000)
		return REFUSE("root is not a directory");
	for (int s = TM_SEC_SEEK; s <= TM_SEC_SOURCE; s++)
		if (z->len[s] && !tm_index_span_ok(idx, (enum tm_index_section)s, 0, z->len[s]))
			return REFUSE("%s damaged", s == TM_SEC_SEEK ? "seek table" : "source path");
	if (z->len[TM_SEC_SOURCE] && idx->source[z->len[TM_SEC_SOURCE] - 1] != '\0')
		return REFUSE("source path not terminated");
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

static void lazy_free(struct tm_index_lazy *z)
{
	if (z)
		g_free(z->verified);
	g_free(z);
}

struct tm_index *tm_index_load_fd(int fd, const char *source_id, char *why, size_t why_len)
{
	struct stat st;
	void *map = MAP_FAILED;
	/* Not populated: the pages are read as they are used, and only those. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size >= (off_t)sizeof(struct file_header))
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, why_len, "not an index file");
		return NULL;
	}
	const struct file_header *h = map;
	const uint8_t *base = map;
	if (!header_ok(h, (uint64_t)st.st_size, source_id, why, why_len))
		goto fail;
	if (tm_index_hash(base + sizeof *h, h->npages * 8) != h->table_hash) {
		snprintf(why, why_len, "page table checksum mismatch");
		goto fail;
	}
	/* Between the table and the first page: zeros, so that no byte goes unchecked. */
	for (uint64_t at = sizeof *h + h->npages * 8; at < h->data_start; at++)
		if (base[at]) {
			snprintf(why, why_len, "page table padding damaged");
			goto fail;
		}
	struct tm_index_lazy *z = g_new0(struct tm_index_lazy, 1);
	z->file = base;
	z->file_size = h->file_size;
	z->data_start = h->data_start;
	z->npages = h->npages;
	z->shift = h->page_shift;
	z->sums = (const uint64_t *)(base + sizeof *h);
	z->verified = g_new0(uint64_t, h->npages / 64 + 1);
	sections_of(h, z->off, z->len);
	z->parents = (const struct tm_index_parent *)(base + h->off_parents);
	struct tm_index *idx = g_new0(struct tm_index, 1);
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
	idx->has_xattrs = h->has_xattrs;
	idx->seek = h->seek_len ? base + h->off_seek : NULL;
	idx->seek_len = h->seek_len;
	idx->source = h->source_len ? (const char *)base + h->off_source : NULL;
	idx->lazy = z;
	if (!first_records_ok(idx, why, why_len)) {
		lazy_free(z);
		g_free(idx);
		goto fail;
	}
	idx->map = map;
	idx->map_len = (size_t)st.st_size;
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
	if (tm_index_hash(&copy, sizeof copy) != h.header_hash)
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
		const struct tm_dentry *e = &idx->dentries[d];
		const struct tm_inode *in = NULL;
		if (tm_index_span_ok(idx, TM_SEC_DENTRIES, (uint64_t)d * sizeof *e, sizeof *e))
			in = tm_index_inode(idx, e->inode);
		if (!in) {
			tm_block_fail(err, TM_BLOCK_INVALID, 0, "the index is damaged");
			return false;
		}
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
		*out = tm_index_hash(blk, n * sizeof *blk);
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
	/* The page table as the header lays it out, where that fits the file: what a file
	 * patched in place keeps (other files are refused for their page table). */
	if (h.page_shift < PAGE_SHIFT || h.page_shift > PAGE_SHIFT_MAX)
		h.page_shift = PAGE_SHIFT;
	if (h.data_start > len || h.data_start % 8 || h.data_start < sizeof h)
		h.data_start = len;
	h.npages = pages_for(len - h.data_start, h.page_shift);
	if (h.npages > (h.data_start - sizeof h) / 8)
		h.npages = 0;
	else
		seal_pages(file->data, &h, &h.table_hash);
	h.header_hash = 0;
	h.header_hash = tm_index_hash(&h, sizeof h);
	memcpy(file->data, &h, sizeof h);
}
