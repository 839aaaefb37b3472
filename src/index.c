/* Read-side of the index: lookups, path resolution, sparse maps and xattrs.  Nothing here
 * writes, so any number of threads may call it at once. */
#include "config.h"

#include <string.h>

#include "index.h"
#include "index_check.h"

bool tm_index_normalize(const char *path, char *out)
{
	char *o = out;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *seg = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			*out = '\0';
			return false;
		}
		if (o != out)
			*o++ = '/';
		memmove(o, seg, n);
		o += n;
	}
	*o = '\0';
	return true;
}

/* ---- records of a loaded index, checked where they are used ---- */

static bool in_aux(const struct tm_index *idx, uint64_t off, uint64_t len)
{
	return off <= idx->aux_len && len <= idx->aux_len - off;
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

static const struct tm_inode *damaged_inode(const struct tm_index *idx, uint32_t ino)
{
	tm_index_damage(idx, "inode %u is out of bounds", ino);
	return NULL;
}

const char *tm_index_string(const struct tm_index *idx, uint32_t off)
{
	if (off >= idx->strings_len) {
		tm_index_damage(idx, "a name at %u is past the pool's end", off);
		return NULL;
	}
	if (!idx->lazy)
		return idx->strings + off;
	/* Page by page up to the NUL (the pool's last byte is one: checked at load). */
	const struct tm_index_lazy *z = idx->lazy;
	uint64_t page = (uint64_t)1 << z->shift;
	for (uint64_t at = off;;) {
		uint64_t in_file = z->off[TM_SEC_STRINGS] + at - z->data_start;
		uint64_t n = MIN(page - in_file % page, idx->strings_len - at);
		if (!tm_index_span_ok(idx, TM_SEC_STRINGS, at, n))
			return NULL;
		if (memchr(idx->strings + at, '\0', n))
			return idx->strings + off;
		at += n;
	}
}

const struct tm_inode *tm_index_inode(const struct tm_index *idx, uint32_t ino)
{
	if (ino >= idx->ninodes)
		return damaged_inode(idx, ino);
	const struct tm_inode *in = &idx->inodes[ino];
	if (!idx->lazy)
		return in;
	if (!tm_index_span_ok(idx, TM_SEC_INODES, (uint64_t)ino * sizeof *in, sizeof *in))
		return NULL;
	bool ok = known_type(in->mode) && in->uname < idx->strings_len &&
		  in->gname < idx->strings_len &&
		  (in->xattrs == TM_NONE || (in->xattrs % 4 == 0 && in->xattrs < idx->aux_len));
	switch (in->mode & 0170000) {
	case 0040000:
		ok = ok && in->a <= idx->nchildren && in->b <= idx->nchildren - in->a;
		break;
	case 0120000: {
		const char *target = ok ? tm_index_string(idx, in->a) : NULL;
		if (ok && !target)
			return NULL;
		ok = ok && in->size == strlen(target);
		break;
	}
	case 0100000:
		ok = ok && (in->a == TM_NONE || (in->a % 8 == 0 && in_aux(idx, in->a, 8)));
		break;
	}
	return ok ? in : damaged_inode(idx, ino);
}

/* Slot i of directory d's run (i < d->b, d checked): its dentry, in bounds, or NULL. */
static const struct tm_dentry *slot_dentry(const struct tm_index *idx, const struct tm_inode *d,
					   uint32_t i)
{
	uint64_t slot = (uint64_t)d->a + i;
	if (!tm_index_span_ok(idx, TM_SEC_CHILDREN, slot * 4, 4))
		return NULL;
	uint32_t de = idx->children[slot];
	if (de >= idx->ndentries) {
		tm_index_damage(idx, "child slot %llu is out of bounds", (unsigned long long)slot);
		return NULL;
	}
	const struct tm_dentry *e = &idx->dentries[de];
	if (!tm_index_span_ok(idx, TM_SEC_DENTRIES, (uint64_t)de * sizeof *e, sizeof *e))
		return NULL;
	if (idx->lazy && (e->name >= idx->strings_len || e->inode >= idx->ninodes)) {
		tm_index_damage(idx, "entry %u is out of bounds", de);
		return NULL;
	}
	return e;
}

/* Whether slot of directory dir may lead to inode ino: its inode is sound and, for a
 * directory, that is the one slot that lists it. */
static bool child_ok(const struct tm_index *idx, uint32_t dir, uint64_t slot, uint32_t ino)
{
	const struct tm_inode *in = tm_index_inode(idx, ino);
	if (!in)
		return false;
	if (!idx->lazy || (in->mode & 0170000) != 0040000)
		return true;
	const struct tm_index_lazy *z = idx->lazy;
	const struct tm_index_parent *p = &z->parents[ino];
	if (!tm_index_span_ok(idx, TM_SEC_PARENTS, (uint64_t)ino * sizeof *p, sizeof *p))
		return false;
	if (p->dir != dir || p->slot != slot) {
		tm_index_damage(idx, "directory %u is listed in %u, not only in its parent", ino,
				dir);
		return false;
	}
	return true;
}

uint32_t tm_index_child_count(const struct tm_index *idx, uint32_t dir)
{
	const struct tm_inode *d = tm_index_inode(idx, dir);
	return d && (d->mode & 0170000) == 0040000 ? d->b : 0;
}

const struct tm_dentry *tm_index_child(const struct tm_index *idx, uint32_t dir, uint32_t i)
{
	const struct tm_inode *d = tm_index_inode(idx, dir);
	if (!d || (d->mode & 0170000) != 0040000 || i >= d->b)
		return NULL;
	const struct tm_dentry *e = slot_dentry(idx, d, i);
	return e && child_ok(idx, dir, (uint64_t)d->a + i, e->inode) ? e : NULL;
}

/* Compare name[0..len) with the NUL-terminated s, bytewise. */
static int name_cmp(const char *name, size_t len, const char *s)
{
	size_t n = strnlen(s, len + 1);
	int c = memcmp(name, s, len < n ? len : n);
	if (c)
		return c;
	return len < n ? -1 : len > n ? 1 : 0;
}

uint32_t tm_index_lookup(const struct tm_index *idx, uint32_t dir, const char *name, size_t len,
			 uint32_t *dentry)
{
	if (dir >= idx->ninodes)
		return TM_NONE;
	const struct tm_inode *d = tm_index_inode(idx, dir);
	if (!d)
		return TM_DAMAGED;
	if ((d->mode & 0170000) != 0040000)
		return TM_NONE;
	uint32_t lo = 0, hi = d->b;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct tm_dentry *e = slot_dentry(idx, d, mid);
		const char *s = e ? tm_index_string(idx, e->name) : NULL;
		if (!s)
			return TM_DAMAGED;
		int c = name_cmp(name, len, s);
		if (c == 0) {
			if (!child_ok(idx, dir, (uint64_t)d->a + mid, e->inode))
				return TM_DAMAGED;
			if (dentry)
				*dentry = (uint32_t)(e - idx->dentries);
			return e->inode;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return TM_NONE;
}

uint32_t tm_index_resolve(const struct tm_index *idx, const char *path)
{
	uint32_t ino = TM_ROOT;
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *seg = p;
		while (*p && *p != '/')
			p++;
		size_t n = (size_t)(p - seg);
		if (n == 0 || (n == 1 && seg[0] == '.'))
			continue;
		if (n == 2 && seg[0] == '.' && seg[1] == '.')
			return TM_NONE;
		ino = tm_index_lookup(idx, ino, seg, n, NULL);
		if (ino == TM_NONE || ino == TM_DAMAGED)
			return ino;
	}
	return ino;
}

bool tm_index_sparse_map(const struct tm_index *idx, uint32_t ino,
			 const struct tm_index_sparse **map)
{
	*map = NULL;
	const struct tm_inode *in = tm_index_inode(idx, ino);
	if (!in)
		return false;
	if ((in->mode & 0170000) != 0100000 || in->a == TM_NONE)
		return true;
	const struct tm_index_sparse *m = (const void *)(idx->aux + in->a);
	if (!idx->lazy) {
		*map = m;
		return true;
	}
	/* The inode check put the count inside aux. */
	if (!tm_index_span_ok(idx, TM_SEC_AUX, in->a, 8))
		return false;
	uint64_t room = (idx->aux_len - in->a - 8) / sizeof m->chunk[0];
	if (m->count > room || (m->count &&
				!tm_index_span_ok(idx, TM_SEC_AUX, in->a + 8ull,
						  m->count * sizeof m->chunk[0]))) {
		tm_index_damage(idx, "the sparse map of inode %u is out of bounds", ino);
		return false;
	}
	uint64_t next = 0;
	for (uint64_t i = 0; i < m->count; i++) {
		const struct tm_index_sparse_chunk *c = &m->chunk[i];
		if (c->offset < next || c->offset > in->size || c->length > in->size - c->offset) {
			tm_index_damage(idx, "the sparse map of inode %u is out of order", ino);
			return false;
		}
		next = c->offset + c->length;
	}
	*map = m;
	return true;
}

/* xattr list in aux: records [u32 name_len][u32 value_len][name NUL][value], each padded
 * to 4 bytes, ended by a name_len of TM_NONE.  A loaded list is checked whole, record by
 * record, before its first one is given. */
static bool xattrs_ok(const struct tm_index *idx, uint32_t list)
{
	for (uint64_t at = list;;) {
		uint32_t nv[2];
		if (at % 4 || !in_aux(idx, at, 4) || !tm_index_span_ok(idx, TM_SEC_AUX, at, 4))
			return false;
		memcpy(nv, idx->aux + at, 4);
		if (nv[0] == TM_NONE)
			return true;
		if (!in_aux(idx, at, 8))
			return false;
		memcpy(nv, idx->aux + at, 8);
		uint64_t len = 8 + (uint64_t)nv[0] + 1 + nv[1];
		if (!in_aux(idx, at, len) || !tm_index_span_ok(idx, TM_SEC_AUX, at, len) ||
		    idx->aux[at + 8 + nv[0]] != '\0' || memchr(idx->aux + at + 8, '\0', nv[0]))
			return false;
		at += (len + 3) & ~3ull;
	}
}

int tm_index_xattr_next(const struct tm_index *idx, uint32_t ino, uint32_t *cursor,
			const char **name, const void **value, uint32_t *value_len)
{
	const struct tm_inode *in = tm_index_inode(idx, ino);
	if (!in)
		return -1;
	uint32_t list = in->xattrs;
	if (list == TM_NONE)
		return 0;
	if (*cursor == 0 && idx->lazy && !xattrs_ok(idx, list)) {
		tm_index_damage(idx, "the xattr list of inode %u is out of bounds", ino);
		return -1;
	}
	const uint8_t *p = idx->aux + list + *cursor;
	uint32_t nlen, vlen;
	memcpy(&nlen, p, 4);
	if (nlen == TM_NONE)
		return 0;
	memcpy(&vlen, p + 4, 4);
	*name = (const char *)p + 8;
	*value = p + 8 + nlen + 1;
	*value_len = vlen;
	*cursor += (8 + nlen + 1 + vlen + 3) & ~3u;
	return 1;
}

void tm_index_on_damage(struct tm_index *idx, tm_index_damage_fn fn, void *ud)
{
	if (idx->lazy) {
		idx->lazy->hook = fn;
		idx->lazy->hook_ud = ud;
	}
}

bool tm_index_damaged(const struct tm_index *idx)
{
	return idx->lazy && __atomic_load_n(&idx->lazy->damaged, __ATOMIC_ACQUIRE);
}

bool tm_index_check_all(const struct tm_index *idx)
{
	const struct tm_index_lazy *z = idx->lazy;
	if (!z)
		return true;
	if (!tm_index_pages_ok(idx))
		return false;
	for (uint32_t i = 0; i < idx->ninodes; i++) {
		const struct tm_index_sparse *map;
		uint32_t cur = 0, vlen;
		const char *n;
		const void *v;
		if (tm_index_sparse_map(idx, i, &map))
			(void)tm_index_xattr_next(idx, i, &cur, &n, &v, &vlen);
		for (uint32_t k = 0, c = tm_index_child_count(idx, i); k < c; k++)
			(void)tm_index_child(idx, i, k);
	}
	/* Entries and slots no directory lists, which readers never reach. */
	for (uint32_t d = 0; d < idx->ndentries; d++)
		if (idx->dentries[d].name >= idx->strings_len ||
		    idx->dentries[d].inode >= idx->ninodes)
			tm_index_damage(idx, "entry %u is out of bounds", d);
	for (uint32_t c = 0; c < idx->nchildren; c++)
		if (idx->children[c] >= idx->ndentries)
			tm_index_damage(idx, "child slot %u is out of bounds", c);
	return !tm_index_damaged(idx);
}

size_t tm_index_memory(const struct tm_index *idx)
{
	return (size_t)idx->ninodes * sizeof(struct tm_inode) +
	       (size_t)idx->ndentries * sizeof(struct tm_dentry) +
	       (size_t)idx->nchildren * sizeof(uint32_t) + idx->strings_len + idx->aux_len;
}
