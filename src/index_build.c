/* Building the index: replay the archive's members the way GNU tar extraction would apply
 * them to an empty directory, then freeze the result into flat sorted arrays. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "index.h"
#include "index_check.h"

struct builder {
	GArray *inodes;     /* struct tm_inode */
	GArray *dentries;   /* struct tm_dentry */
	GArray *dparent;    /* uint32_t: the directory inode each dentry was made in */
	GArray *implicit;   /* uint8_t per inode: a directory the archive never listed */
	GByteArray *strings, *aux;
	/* Each directory's dentries by name: an open-addressing table per directory inode
	 * (struct names, made at its first entry).  Keyed by directory and name, not by
	 * whole path, so that a path of any depth costs its length, and a replaced
	 * directory's old contents are simply not found under the new one. */
	GArray *names;
	uint32_t hash_seed;
	/* The directory of the previous member, which the next one usually shares. */
	char *cache_path;
	size_t cache_len, cache_cap;
	uint32_t cache_ino; /* TM_NONE: no cache */
	GHashTable *owners; /* interned user/group names -> string offset */
	GHashTable *xattr_lists; /* GBytes of an xattr list as in aux -> its offset there */
	int64_t max_mtime;
	bool overflow;
	struct tm_index *idx;
	const struct tm_index_options *opts;
	struct tm_tar_reader *reader;
	char *scratch, *link_scratch; /* normalisation buffers */
	size_t scratch_len, link_scratch_len;
};

static void report(struct builder *b, enum tm_tar_diag_level lvl, uint64_t off, const char *path,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void report(struct builder *b, enum tm_tar_diag_level lvl, uint64_t off, const char *path,
		   const char *fmt, ...)
{
	if (lvl == TM_TAR_ERROR)
		b->idx->errors++;
	else
		b->idx->warnings++;
	if (!b->opts->diag)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	b->opts->diag(b->opts->diag_ud, lvl, off, path, msg);
}

static void reader_diag(void *ud, enum tm_tar_diag_level lvl, uint64_t off, const char *msg)
{
	report(ud, lvl, off, NULL, "%s", msg);
}

#define IS_DIR(mode) (((mode) & S_IFMT) == S_IFDIR)

static struct tm_inode *inode_at(struct builder *b, uint32_t i)
{
	return &g_array_index(b->inodes, struct tm_inode, i);
}

static struct tm_dentry *dentry_at(struct builder *b, uint32_t i)
{
	return &g_array_index(b->dentries, struct tm_dentry, i);
}

/* Append bytes to a pool, returning their offset; pools are addressed with 32 bits. */
static uint32_t pool_add(struct builder *b, GByteArray *pool, const void *p, size_t len,
			 size_t align)
{
	static const uint8_t zeros[8];
	size_t pad = (align - pool->len % align) % align;
	if ((uint64_t)pool->len + pad + len >= TM_NONE) {
		b->overflow = true;
		return 0;
	}
	g_byte_array_append(pool, zeros, (guint)pad);
	uint32_t off = pool->len;
	g_byte_array_append(pool, p, (guint)len);
	return off;
}

static uint32_t string_add(struct builder *b, const char *s)
{
	if (!*s)
		return 0;
	return pool_add(b, b->strings, s, strlen(s) + 1, 1);
}

static uint32_t owner_add(struct builder *b, const char *s)
{
	gpointer v;
	if (!*s)
		return 0;
	if (g_hash_table_lookup_extended(b->owners, s, NULL, &v))
		return GPOINTER_TO_UINT(v);
	uint32_t off = string_add(b, s);
	g_hash_table_insert(b->owners, g_strdup(s), GUINT_TO_POINTER(off));
	return off;
}

static uint32_t inode_new(struct builder *b, const struct tm_inode *ino, bool implicit)
{
	uint8_t flag = implicit;
	g_array_append_val(b->inodes, *ino);
	g_array_append_val(b->implicit, flag);
	return b->inodes->len - 1;
}

static struct tm_inode implicit_dir(void)
{
	struct tm_inode d = { .mode = S_IFDIR | 0755, .nlink = 2, .xattrs = TM_NONE };
	return d;
}

/* FNV-1a from a start drawn for each build: names chosen to collide (an archive made to
 * turn every lookup into a walk of one long chain) collide only under the start they were
 * chosen for. */
static uint32_t name_hash(const struct builder *b, const char *name, size_t len)
{
	uint32_t h = b->hash_seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	return h;
}

/* One directory's names.  A slot is the name's hash (high half) and its dentry + 1 (low
 * half; 0 is an empty slot), so that a probe passes other names without touching their
 * dentries.  A table per directory rather than one for all: the members of a directory
 * mostly come together, and its table stays in the cache while they do, where one table
 * for all took a cache miss per member (indexing 1,000,000 entries in 1,000 directories:
 * 0.85 of the CPU time, 9 interleaved pairs 0.73-0.92). */
struct names {
	uint64_t *slots;
	uint32_t mask; /* the number of slots less one (a power of two less one) */
	uint32_t count;
};

/* Tables of this many bytes and more are mapped on their own, in huge pages: they are read
 * at random, and with 4 KiB pages every probe is a TLB miss. */
#define SLOTS_MAPPED (4u << 20)

/* A zeroed table of n slots. */
static uint64_t *slots_new(size_t n)
{
	size_t bytes = n * sizeof(uint64_t);
	if (bytes < SLOTS_MAPPED)
		return g_malloc0(bytes);
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		g_error("index: out of memory for a table of %zu bytes", bytes);
#ifdef MADV_HUGEPAGE
	(void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
	return p;
}

static void slots_free(uint64_t *slots, uint32_t mask)
{
	size_t bytes = ((size_t)mask + 1) * sizeof(uint64_t);
	if (!slots)
		return;
	if (bytes < SLOTS_MAPPED)
		g_free(slots);
	else
		munmap(slots, bytes);
}

static void slot_put(uint64_t *slots, uint32_t mask, uint64_t slot)
{
	uint32_t i = (uint32_t)(slot >> 32) & mask;
	while (slots[i])
		i = (i + 1) & mask;
	slots[i] = slot;
}

/* The names of directory dir, NULL when it has none yet (make false). */
static struct names *names_of(struct builder *b, uint32_t dir, bool make)
{
	if (dir >= b->names->len) {
		if (!make)
			return NULL;
		g_array_set_size(b->names, b->inodes->len > dir ? b->inodes->len : dir + 1);
	}
	struct names *t = &g_array_index(b->names, struct names, dir);
	if (!t->slots) {
		if (!make)
			return NULL;
		/* Small: most directories hold a few names (one costs 32 bytes). */
		t->mask = 3;
		t->slots = slots_new(4);
	}
	return t;
}

/* The dentry called name[0..len) in directory parent, or TM_NONE. */
static uint32_t find_child(struct builder *b, uint32_t parent, const char *name, size_t len)
{
	const struct names *t = names_of(b, parent, false);
	if (!t)
		return TM_NONE;
	uint32_t h = name_hash(b, name, len);
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		if (!s)
			return TM_NONE;
		if ((uint32_t)(s >> 32) != h)
			continue;
		const char *n = (const char *)b->strings->data + dentry_at(b, (uint32_t)s - 1)->name;
		if (!strncmp(n, name, len) && !n[len])
			return (uint32_t)s - 1;
	}
}

/* A dentry for name[0..len), which the string pool holds at off. */
static uint32_t dentry_put(struct builder *b, uint32_t parent, uint32_t off, const char *name,
			  size_t len, uint32_t ino)
{
	struct tm_dentry d = { off, ino };
	g_array_append_val(b->dentries, d);
	g_array_append_val(b->dparent, parent);
	uint32_t de = b->dentries->len - 1;
	struct names *t = names_of(b, parent, true);
	if ((uint64_t)++t->count * 2 > t->mask) { /* keep the table at most half full */
		uint32_t mask = t->mask * 2 + 1;
		uint64_t *slots = slots_new((size_t)mask + 1);
		for (uint32_t i = 0; i <= t->mask; i++)
			if (t->slots[i])
				slot_put(slots, mask, t->slots[i]);
		slots_free(t->slots, t->mask);
		t->slots = slots;
		t->mask = mask;
	}
	slot_put(t->slots, t->mask, (uint64_t)name_hash(b, name, len) << 32 | (de + 1));
	return de;
}

static uint32_t dentry_new(struct builder *b, uint32_t parent, const char *name, size_t len,
			   uint32_t ino)
{
	uint32_t off = pool_add(b, b->strings, name, len, 1);
	static const char nul;
	pool_add(b, b->strings, &nul, 1, 1);
	return dentry_put(b, parent, off, name, len, ino);
}

/* Walk path[0..len) from the root, one segment at a time.  make: create missing
 * directories as implicit ones.  Returns the last segment's dentry, or TM_NONE when
 * something is missing (make false) or not a directory is in the way.  Iterative, and
 * linear in the path's length: a path can have tens of thousands of segments. */
static uint32_t walk_path(struct builder *b, const char *path, size_t len, bool make)
{
	uint32_t dir = TM_ROOT, de = TM_NONE;
	for (size_t start = 0; start < len;) {
		const char *slash = memchr(path + start, '/', len - start);
		size_t end = slash ? (size_t)(slash - path) : len;
		if (de != TM_NONE) {
			dir = dentry_at(b, de)->inode;
			if (!IS_DIR(inode_at(b, dir)->mode))
				return TM_NONE;
		}
		de = find_child(b, dir, path + start, end - start);
		if (de == TM_NONE) {
			if (!make)
				return TM_NONE;
			struct tm_inode d = implicit_dir();
			de = dentry_new(b, dir, path + start, end - start, inode_new(b, &d, true));
		}
		start = end + 1;
	}
	return de;
}

/* The directory inode at path[0..len), made (with its parents) if missing; TM_NONE when
 * something that is not a directory is in the way. */
static uint32_t ensure_dir(struct builder *b, const char *path, size_t len)
{
	if (b->cache_ino != TM_NONE && b->cache_len == len && !memcmp(b->cache_path, path, len))
		return b->cache_ino;
	uint32_t de = walk_path(b, path, len, true);
	uint32_t ino = de == TM_NONE ? TM_NONE : dentry_at(b, de)->inode;
	if (ino == TM_NONE || !IS_DIR(inode_at(b, ino)->mode))
		return TM_NONE;
	if (len > b->cache_cap) {
		b->cache_cap = len * 2;
		b->cache_path = g_realloc(b->cache_path, b->cache_cap);
	}
	memcpy(b->cache_path, path, len);
	b->cache_len = len;
	b->cache_ino = ino;
	return ino;
}

static uint32_t parent_of(struct builder *b, const char *path, size_t len)
{
	const char *slash = memrchr(path, '/', len);
	return slash ? ensure_dir(b, path, (size_t)(slash - path)) : TM_ROOT;
}

/* Append to blob at a multiple of align (the pool's alignment rule, so that a blob copied to
 * a 4-aligned pool offset is laid out as if built there). */
static void blob_add(GByteArray *blob, const void *p, size_t len, size_t align)
{
	static const uint8_t zeros[8];
	if (blob->len % align)
		g_byte_array_append(blob, zeros, (guint)(align - blob->len % align));
	g_byte_array_append(blob, p, (guint)len);
}

/* An xattr list in aux: records { uint32 name_len, value_len; name NUL; value } each at a
 * multiple of 4, ended by a TM_NONE word.  Equal lists are stored once: a global pax header
 * gives every member the same xattrs, and so do SELinux labels. */
static uint32_t add_xattrs(struct builder *b, const GPtrArray *xattrs)
{
	if (!xattrs || !xattrs->len)
		return TM_NONE;
	GByteArray *blob = g_byte_array_new();
	for (guint i = 0; i < xattrs->len; i++) {
		const struct tm_pax_xattr *x = xattrs->pdata[i];
		gsize vlen;
		const void *v = g_bytes_get_data(x->value, &vlen);
		uint32_t hdr[2] = { (uint32_t)strlen(x->name), (uint32_t)vlen };
		blob_add(blob, hdr, sizeof hdr, 4);
		blob_add(blob, x->name, hdr[0] + 1, 1);
		blob_add(blob, v, vlen, 1);
	}
	uint32_t end = TM_NONE;
	blob_add(blob, &end, sizeof end, 4);
	GBytes *key = g_byte_array_free_to_bytes(blob);
	gpointer found;
	if (g_hash_table_lookup_extended(b->xattr_lists, key, NULL, &found)) {
		g_bytes_unref(key);
		return GPOINTER_TO_UINT(found);
	}
	gsize len;
	const void *data = g_bytes_get_data(key, &len);
	uint32_t off = pool_add(b, b->aux, data, len, 4);
	if (!b->overflow)
		g_hash_table_insert(b->xattr_lists, key, GUINT_TO_POINTER(off));
	else
		g_bytes_unref(key);
	return off;
}

static uint32_t add_sparse(struct builder *b, const GArray *map)
{
	uint64_t count = map->len, stored = 0;
	uint32_t off = pool_add(b, b->aux, &count, sizeof count, 8);
	for (guint i = 0; i < map->len; i++) {
		const struct tm_tar_sparse_chunk *c =
			&g_array_index(map, struct tm_tar_sparse_chunk, i);
		struct tm_index_sparse_chunk ic = { c->offset, c->length, stored };
		pool_add(b, b->aux, &ic, sizeof ic, 8);
		stored += c->length;
	}
	return off;
}

static uint32_t mode_type(enum tm_tar_type t)
{
	switch (t) {
	case TM_TAR_DIR: return S_IFDIR;
	case TM_TAR_SYMLINK: return S_IFLNK;
	case TM_TAR_CHR: return S_IFCHR;
	case TM_TAR_BLK: return S_IFBLK;
	case TM_TAR_FIFO: return S_IFIFO;
	default: return S_IFREG;
	}
}

/* The inode a member describes (for everything but hard links). */
static struct tm_inode member_inode(struct builder *b, const struct tm_tar_member *m)
{
	struct tm_inode i = {
		.size = m->size,
		.offset = m->data_offset,
		.mtime = m->mtime,
		.mtime_nsec = m->mtime_nsec,
		.mode = mode_type(m->type) | m->mode,
		.uid = (uint32_t)m->uid,
		.gid = (uint32_t)m->gid,
		.uname = owner_add(b, m->uname),
		.gname = owner_add(b, m->gname),
		.nlink = 1,
		.xattrs = add_xattrs(b, m->xattrs),
		.a = TM_NONE,
	};
	switch (m->type) {
	case TM_TAR_SYMLINK: i.a = string_add(b, m->linkpath); break;
	case TM_TAR_CHR:
	case TM_TAR_BLK: i.a = m->devmajor, i.b = m->devminor; break;
	case TM_TAR_REG:
		if (m->sparse)
			i.a = add_sparse(b, m->sparse);
		break;
	default: i.a = 0; break;
	}
	if (m->mtime > b->max_mtime)
		b->max_mtime = m->mtime;
	return i;
}

/* The normalised form of p in *buf (grown as needed), or NULL for a path with '..'. */
static char *normalize(const char *p, char **buf, size_t *cap)
{
	size_t n = strlen(p) + 1;
	if (n > *cap) {
		*cap = n * 2;
		*buf = g_realloc(*buf, *cap);
	}
	return tm_index_normalize(p, *buf) ? *buf : NULL;
}

/* A hard link's target without everything up to its last '..' segment, as GNU tar reads
 * it ("Removing leading '../' from hard link targets"), with a warning when that cuts. */
static const char *strip_dotdot(struct builder *b, const struct tm_tar_member *m)
{
	const char *t = m->linkpath, *rest = t;
	for (const char *p = t; *p;) {
		const char *seg = p;
		while (*p && *p != '/')
			p++;
		if (p - seg == 2 && seg[0] == '.' && seg[1] == '.')
			rest = *p ? p + 1 : p;
		while (*p == '/')
			p++;
	}
	if (rest != t)
		report(b, TM_TAR_WARNING, m->header_offset, m->path,
		       "removing leading '%.*s' from hard link target", (int)(rest - t), t);
	return rest;
}

static void add_member(struct builder *b, const struct tm_tar_member *m)
{
	char *path = normalize(m->path, &b->scratch, &b->scratch_len);
	if (!path) {
		report(b, TM_TAR_WARNING, m->header_offset, m->path,
		       "member name contains '..'; skipped");
		return;
	}
	size_t len = strlen(path);
	uint32_t ino;
	if (len == 0) { /* "./" or "/": the root itself */
		if (m->type != TM_TAR_DIR) {
			report(b, TM_TAR_WARNING, m->header_offset, m->path,
			       "member names the archive root but is not a directory; skipped");
			return;
		}
		struct tm_inode *root = inode_at(b, TM_ROOT), fresh = member_inode(b, m);
		fresh.a = root->a, fresh.b = root->b, fresh.nlink = root->nlink;
		*root = fresh;
		g_array_index(b->implicit, uint8_t, TM_ROOT) = 0;
		return;
	}
	uint32_t parent = parent_of(b, path, len);
	if (parent == TM_NONE) {
		report(b, TM_TAR_WARNING, m->header_offset, path,
		       "a parent of this member is not a directory; skipped");
		return;
	}
	const char *base = memrchr(path, '/', len);
	base = base ? base + 1 : path;
	size_t blen = len - (size_t)(base - path);
	uint32_t de = find_child(b, parent, base, blen);
	if (m->type == TM_TAR_HARDLINK) {
		char *target = normalize(strip_dotdot(b, m), &b->link_scratch,
					 &b->link_scratch_len);
		uint32_t tde = target ? walk_path(b, target, strlen(target), false) : TM_NONE;
		ino = tde != TM_NONE ? dentry_at(b, tde)->inode : TM_NONE;
		if (ino == TM_NONE || IS_DIR(inode_at(b, ino)->mode)) {
			report(b, TM_TAR_WARNING, m->header_offset, path,
			       "hard link to '%s', which is %s; skipped", m->linkpath,
			       ino == TM_NONE ? "not in the archive before it" : "a directory");
			return;
		}
	} else if (de != TM_NONE && m->type == TM_TAR_DIR &&
		   IS_DIR(inode_at(b, dentry_at(b, de)->inode)->mode)) {
		/* A directory listed again (or after an implicit one): new metadata, same
		 * children. */
		ino = dentry_at(b, de)->inode;
		struct tm_inode *d = inode_at(b, ino), fresh = member_inode(b, m);
		fresh.a = d->a, fresh.b = d->b, fresh.nlink = d->nlink;
		*d = fresh;
		g_array_index(b->implicit, uint8_t, ino) = 0;
		return;
	} else {
		struct tm_inode fresh = member_inode(b, m);
		ino = inode_new(b, &fresh, false);
	}
	if (de == TM_NONE) {
		dentry_new(b, parent, base, blen, ino);
		return;
	}
	/* The last member of a path wins, as on extraction. */
	struct tm_dentry *d = dentry_at(b, de);
	if (IS_DIR(inode_at(b, d->inode)->mode))
		b->cache_ino = TM_NONE; /* the cached directory may be this one */
	d->inode = ino;
}

/* ---- freezing ---- */

struct sort_ctx {
	const struct tm_dentry *dentries;
	const char *strings;
};

static gint by_name(gconstpointer a, gconstpointer bb, gpointer ud)
{
	const struct sort_ctx *c = ud;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)bb;
	return strcmp(c->strings + c->dentries[x].name, c->strings + c->dentries[y].name);
}

/* Group dentries by the directory they were made in (a counting sort), sort each group by
 * name, then walk from the root to find what is reachable, give each directory its run and
 * count links. */
static uint32_t *freeze_children(struct builder *b, uint32_t *nchildren)
{
	uint32_t ni = b->inodes->len, nd = b->dentries->len;
	const uint32_t *dparent = (const uint32_t *)b->dparent->data;
	uint32_t *start = g_new0(uint32_t, (size_t)ni + 1);
	for (uint32_t d = 0; d < nd; d++)
		start[dparent[d] + 1]++;
	for (uint32_t i = 0; i < ni; i++)
		start[i + 1] += start[i];
	uint32_t *children = g_new(uint32_t, nd ? nd : 1);
	uint32_t *fill = g_memdup2(start, ((size_t)ni + 1) * sizeof *start);
	for (uint32_t d = 0; d < nd; d++)
		children[fill[dparent[d]]++] = d;
	g_free(fill);

	struct sort_ctx ctx = { (const struct tm_dentry *)b->dentries->data,
				(const char *)b->strings->data };
	struct tm_inode *inodes = (struct tm_inode *)b->inodes->data;
	for (uint32_t i = 0; i < ni; i++) {
		inodes[i].nlink = IS_DIR(inodes[i].mode) ? 2 : 0;
		if (IS_DIR(inodes[i].mode)) {
			inodes[i].a = start[i];
			inodes[i].b = 0;
		}
	}
	/* Breadth-first from the root: only directories still reachable get their children
	 * (a replaced directory's old contents are gone, as on extraction). */
	uint32_t *queue = g_new(uint32_t, (size_t)ni + 1), qh = 0, qt = 0;
	queue[qt++] = TM_ROOT;
	while (qh < qt) {
		uint32_t dir = queue[qh++];
		uint32_t n = start[dir + 1] - start[dir];
		inodes[dir].b = n;
		g_qsort_with_data(children + start[dir], (gint)n, sizeof *children, by_name, &ctx);
		for (uint32_t k = 0; k < n; k++) {
			uint32_t ino = ctx.dentries[children[start[dir] + k]].inode;
			if (IS_DIR(inodes[ino].mode)) {
				inodes[dir].nlink++;
				queue[qt++] = ino;
			} else {
				inodes[ino].nlink++;
			}
		}
	}
	g_free(queue);
	g_free(start);
	*nchildren = nd;
	return children;
}

struct index_storage {
	GArray *inodes, *dentries;
	GByteArray *strings, *aux;
	uint32_t *children;
};

static struct tm_index *freeze(struct builder *b)
{
	struct tm_index *idx = b->idx;
	struct tm_inode *inodes = (struct tm_inode *)b->inodes->data;
	for (uint32_t i = 0; i < b->inodes->len; i++)
		if (g_array_index(b->implicit, uint8_t, i) && IS_DIR(inodes[i].mode)) {
			inodes[i].mtime = b->max_mtime;
			inodes[i].offset = TM_INODE_IMPLICIT;
		} else if (IS_DIR(inodes[i].mode)) {
			inodes[i].offset = 0;
		}
	struct index_storage *s = g_new0(struct index_storage, 1);
	s->children = freeze_children(b, &idx->nchildren);
	s->inodes = b->inodes, s->dentries = b->dentries;
	s->strings = b->strings, s->aux = b->aux;
	b->inodes = b->dentries = NULL;
	b->strings = b->aux = NULL;
	idx->storage = s;
	idx->inodes = (const struct tm_inode *)s->inodes->data;
	idx->ninodes = s->inodes->len;
	idx->dentries = (const struct tm_dentry *)s->dentries->data;
	idx->ndentries = s->dentries->len;
	idx->children = s->children;
	idx->strings = (const char *)s->strings->data;
	idx->strings_len = s->strings->len;
	idx->aux = s->aux->data;
	idx->aux_len = s->aux->len;
	for (uint32_t i = 0; i < idx->ninodes && !idx->has_xattrs; i++)
		idx->has_xattrs = idx->inodes[i].xattrs != TM_NONE;
	return idx;
}

void tm_index_free(struct tm_index *idx)
{
	if (!idx)
		return;
	if (idx->map)
		munmap(idx->map, idx->map_len);
	if (idx->lazy)
		g_free(idx->lazy->verified);
	g_free(idx->lazy);
	struct index_storage *s = idx->storage;
	if (s) {
		g_array_unref(s->inodes);
		g_array_unref(s->dentries);
		g_byte_array_unref(s->strings);
		g_byte_array_unref(s->aux);
		g_free(s->children);
		g_free(s);
	}
	g_free(idx);
}

static void builder_clear(struct builder *b)
{
	if (b->inodes)
		g_array_unref(b->inodes);
	if (b->dentries)
		g_array_unref(b->dentries);
	if (b->strings)
		g_byte_array_unref(b->strings);
	if (b->aux)
		g_byte_array_unref(b->aux);
	g_array_unref(b->dparent);
	g_array_unref(b->implicit);
	for (guint i = 0; i < b->names->len; i++) {
		struct names *t = &g_array_index(b->names, struct names, i);
		slots_free(t->slots, t->mask);
	}
	g_array_unref(b->names);
	g_free(b->cache_path);
	g_hash_table_destroy(b->owners);
	g_hash_table_destroy(b->xattr_lists);
	tm_tar_reader_free(b->reader);
	g_free(b->scratch);
	g_free(b->link_scratch);
}

static void builder_init(struct builder *b, const struct tm_index_options *opts)
{
	static const struct tm_index_options no_opts;
	*b = (struct builder){ .opts = opts ? opts : &no_opts };
	b->idx = g_new0(struct tm_index, 1);
	b->inodes = g_array_new(FALSE, FALSE, sizeof(struct tm_inode));
	b->dentries = g_array_new(FALSE, FALSE, sizeof(struct tm_dentry));
	b->dparent = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	b->implicit = g_array_new(FALSE, FALSE, 1);
	b->strings = g_byte_array_new();
	b->aux = g_byte_array_new();
	b->names = g_array_new(FALSE, TRUE, sizeof(struct names));
	b->hash_seed = g_random_int();
	b->cache_ino = TM_NONE;
	b->owners = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	b->xattr_lists = g_hash_table_new_full(g_bytes_hash, g_bytes_equal,
					       (GDestroyNotify)g_bytes_unref, NULL);
}

/* Read the members from start on into b, then freeze it: the index, or NULL with err. */
static struct tm_index *builder_scan(struct builder *b, struct tm_block *blk, uint64_t start,
				     struct tm_block_error *err)
{
	if (err)
		err->code = TM_BLOCK_OK;
	b->reader = tm_tar_reader_new(blk, reader_diag, b);
	tm_tar_reader_start_at(b->reader, start);
	struct tm_tar_member *m;
	enum tm_tar_next rc;
	uint64_t n = 0;
	const struct tm_index_options *o = b->opts;
	while ((rc = tm_tar_reader_next(b->reader, &m, err)) == TM_TAR_MEMBER) {
		if (o->edit && m->header_offset == o->edit_offset) {
			if (!o->edit_path) {
				b->idx->archive_end = m->header_offset;
				break;
			}
			m->path = o->edit_path;
		}
		add_member(b, m);
		if (b->overflow)
			break;
		if (++n % 1024 == 0 && b->opts->progress)
			b->opts->progress(b->opts->progress_ud, tm_tar_reader_position(b->reader), n);
	}
	b->idx->members += n;
	if (rc == TM_TAR_MEMBER) { /* stopped at the edit */
		rc = TM_TAR_END;
	} else {
		b->idx->archive_end = tm_tar_reader_position(b->reader);
		b->idx->truncated = tm_tar_reader_truncated(b->reader);
	}
	if (b->overflow) {
		report(b, TM_TAR_ERROR, b->idx->archive_end, NULL,
		       "archive too large for the index (over 4 GiB of names)");
		rc = TM_TAR_FAIL;
		if (err)
			tm_block_fail(err, TM_BLOCK_OK, 0, NULL);
	}
	if (rc == TM_TAR_FAIL) {
		builder_clear(b);
		tm_index_free(b->idx);
		return NULL;
	}
	struct tm_index *idx = freeze(b);
	builder_clear(b);
	if (!b->opts->no_fingerprint && !tm_index_fingerprint(idx, blk, &idx->fingerprint, err))
		g_clear_pointer(&idx, tm_index_free);
	return idx;
}

struct tm_index *tm_index_build(struct tm_block *blk, const struct tm_index_options *opts,
				struct tm_block_error *err)
{
	struct builder b;
	builder_init(&b, opts);
	uint8_t nul = 0;
	g_byte_array_append(b.strings, &nul, 1); /* offset 0: the empty string */
	struct tm_inode root = implicit_dir();
	inode_new(&b, &root, true);
	return builder_scan(&b, blk, 0, err);
}

/* Put base's tree back into a builder: its inodes as they are (numbers kept), the dentries
 * still reachable (each under the directory whose run holds it), the strings and aux pools
 * whole.  Every record is read through the checked accessors; false when base is damaged. */
static bool builder_load(struct builder *b, const struct tm_index *base)
{
	for (uint32_t i = 0; i < base->ninodes; i++) {
		const struct tm_inode *in = tm_index_inode(base, i);
		if (!in)
			return false;
		struct tm_inode copy = *in;
		bool implicit = IS_DIR(copy.mode) && copy.offset == TM_INODE_IMPLICIT;
		inode_new(b, &copy, implicit);
		if (copy.mtime > b->max_mtime)
			b->max_mtime = copy.mtime;
	}
	g_byte_array_append(b->strings, (const guint8 *)base->strings, (guint)base->strings_len);
	g_byte_array_append(b->aux, base->aux, (guint)base->aux_len);
	/* Breadth-first over the directories, as freeze_children numbered them. */
	GArray *queue = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	g_array_append_val(queue, (uint32_t){ TM_ROOT });
	bool ok = true;
	for (guint q = 0; ok && q < queue->len; q++) {
		uint32_t dir = g_array_index(queue, uint32_t, q);
		uint32_t n = tm_index_child_count(base, dir);
		for (uint32_t k = 0; k < n; k++) {
			const struct tm_dentry *d = tm_index_child(base, dir, k);
			const char *name = d ? tm_index_string(base, d->name) : NULL;
			if (!name) {
				ok = false;
				break;
			}
			/* The pool was copied whole: the name stays where it is (once copied,
			 * not again at every extension). */
			dentry_put(b, dir, d->name, name, strlen(name), d->inode);
			if (IS_DIR(inode_at(b, d->inode)->mode))
				g_array_append_val(queue, d->inode);
		}
	}
	g_array_free(queue, TRUE);
	return ok && !tm_index_damaged(base);
}

struct tm_index *tm_index_build_resume(const struct tm_index *base, struct tm_block *blk,
				       const struct tm_index_options *opts,
				       struct tm_block_error *err)
{
	struct builder b;
	builder_init(&b, opts);
	if (!builder_load(&b, base)) {
		report(&b, TM_TAR_ERROR, 0, NULL, "the index to extend is damaged");
		builder_clear(&b);
		tm_index_free(b.idx);
		if (err)
			tm_block_fail(err, TM_BLOCK_INVALID, 0, "the index to extend is damaged");
		return NULL;
	}
	b.idx->members = base->members;
	b.idx->warnings = base->warnings;
	b.idx->errors = base->errors;
	return builder_scan(&b, blk, base->archive_end, err);
}
