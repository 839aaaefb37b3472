/* Read-side of the index: lookups, path resolution, sparse maps and xattrs.  Nothing here
 * writes, so any number of threads may call it at once. */
#include "config.h"

#include <string.h>

#include "index.h"

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
	if (dir >= idx->ninodes || (idx->inodes[dir].mode & 0170000) != 0040000)
		return TM_NONE;
	const struct tm_inode *d = &idx->inodes[dir];
	uint32_t lo = 0, hi = d->b;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		uint32_t de = idx->children[d->a + mid];
		int c = name_cmp(name, len, idx->strings + idx->dentries[de].name);
		if (c == 0) {
			if (dentry)
				*dentry = de;
			return idx->dentries[de].inode;
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
		if (ino == TM_NONE)
			return TM_NONE;
	}
	return ino;
}

const struct tm_index_sparse *tm_index_sparse_map(const struct tm_index *idx, uint32_t ino)
{
	const struct tm_inode *i = &idx->inodes[ino];
	if ((i->mode & 0170000) != 0100000 || i->a == TM_NONE)
		return NULL;
	return (const struct tm_index_sparse *)(idx->aux + i->a);
}

/* xattr list in aux: records [u32 name_len][u32 value_len][name NUL][value], each padded
 * to 4 bytes, ended by a name_len of TM_NONE. */
bool tm_index_xattr_next(const struct tm_index *idx, uint32_t ino, uint32_t *cursor,
			 const char **name, const void **value, uint32_t *value_len)
{
	uint32_t list = idx->inodes[ino].xattrs;
	if (list == TM_NONE)
		return false;
	const uint8_t *p = idx->aux + list + *cursor;
	uint32_t nlen, vlen;
	memcpy(&nlen, p, 4);
	if (nlen == TM_NONE)
		return false;
	memcpy(&vlen, p + 4, 4);
	*name = (const char *)p + 8;
	*value = p + 8 + nlen + 1;
	*value_len = vlen;
	*cursor += (8 + nlen + 1 + vlen + 3) & ~3u;
	return true;
}

size_t tm_index_memory(const struct tm_index *idx)
{
	return (size_t)idx->ninodes * sizeof(struct tm_inode) +
	       (size_t)idx->ndentries * sizeof(struct tm_dentry) +
	       (size_t)idx->nchildren * sizeof(uint32_t) + idx->strings_len + idx->aux_len;
}
