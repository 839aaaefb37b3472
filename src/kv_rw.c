/* KV_RW: appending members to an archive, and the few changes a tar allows in place. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "kv_rw.h"

#define CHUNK (1u << 20) /* bytes of a value streamed per write */

struct tm_kv_rw {
	struct tm_block *b;
	struct tm_index *idx;
	GPtrArray *retired; /* earlier indexes, still valid for their readers until close */
	GMutex lock;
	bool locked, changed;
	/* Where the archive ends now: idx->archive_end, unless raw appends (tm_kv_rw_append)
	 * moved it past what idx knows. */
	uint64_t end, members;
	struct tm_kv_rw_options o;
};

/* ---- errors ---- */

static int refuse(struct tm_kv_error *err, enum tm_kv_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int refuse(struct tm_kv_error *err, enum tm_kv_code code, const char *fmt, ...)
{
	err->code = code;
	err->detail[0] = 0;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->detail, sizeof err->detail, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* A backend error, as the KV code a user acts on (a full or read-only source), or as is. */
static int block_failed(struct tm_kv_error *err, const struct tm_block_error *be)
{
	char msg[300];
	if (be->code == TM_BLOCK_NO_SPACE)
		return refuse(err, TM_KV_NO_SPACE, "%s", tm_block_strerror(be, msg, sizeof msg));
	if (be->code == TM_BLOCK_READ_ONLY)
		return refuse(err, TM_KV_READ_ONLY, "%s", tm_block_strerror(be, msg, sizeof msg));
	err->code = TM_KV_BLOCK;
	err->block = *be;
	err->detail[0] = 0;
	return -1;
}

/* ---- opening ---- */

struct tm_kv_rw *tm_kv_rw_open(struct tm_block *b, struct tm_index *idx,
			       const struct tm_kv_rw_options *o, struct tm_kv_error *err)
{
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	struct tm_block_error be = { .code = TM_BLOCK_OK };
	if (!info.read_write) {
		/* The backend says why (a compressed stream, a read-only export...). */
		if (tm_block_write(b, 0, NULL, 0, &be) < 0 && be.code == TM_BLOCK_READ_ONLY)
			block_failed(err, &be);
		else
			refuse(err, TM_KV_READ_ONLY, "the source is not open for writing");
		tm_index_free(idx);
		return NULL;
	}
	if (idx->truncated || idx->errors) {
		refuse(err, TM_KV_APPEND_ONLY, "the archive is %s: members appended after byte %llu "
		       "would hide what follows", idx->truncated ? "truncated" : "damaged",
		       (unsigned long long)idx->archive_end);
		tm_index_free(idx);
		return NULL;
	}
	bool locked = false;
	if (!(o && o->caller_locked))
		locked = tm_block_lock_writer(b, o && o->wait, &be) == 0;
	if (!locked && be.code != TM_BLOCK_NOT_SUPPORTED && !(o && o->caller_locked)) {
		block_failed(err, &be);
		tm_index_free(idx);
		return NULL;
	}
	be.code = TM_BLOCK_OK;
	/* Another writer may have appended between the index and the lock: what is at the
	 * index's end must still be an end marker, or the index is extended first. */
	uint8_t blk[TM_TAR_BLOCK];
	static const uint8_t zeros[TM_TAR_BLOCK];
	if (idx->archive_end + TM_TAR_BLOCK <= tm_block_size_bytes(b) &&
	    (tm_block_pread(b, blk, sizeof blk, idx->archive_end, &be) < 0 ||
	     memcmp(blk, zeros, sizeof blk))) {
		struct tm_index *now = be.code == TM_BLOCK_OK
			? tm_index_build_resume(idx, b, o ? &o->index : NULL, &be) : NULL;
		tm_index_free(idx);
		idx = now;
		if (!idx || idx->truncated || idx->errors) {
			if (!idx)
				block_failed(err, &be);
			else
				refuse(err, TM_KV_APPEND_ONLY, "the archive is damaged after byte %llu",
				       (unsigned long long)idx->archive_end);
			tm_index_free(idx);
			if (locked)
				tm_block_unlock_writer(b);
			return NULL;
		}
	}
	struct tm_kv_rw *rw = g_new0(struct tm_kv_rw, 1);
	rw->b = b;
	rw->idx = idx;
	rw->end = idx->archive_end;
	rw->members = idx->members;
	rw->locked = locked;
	rw->retired = g_ptr_array_new_with_free_func((GDestroyNotify)tm_index_free);
	g_mutex_init(&rw->lock);
	if (o)
		rw->o = *o;
	return rw;
}

const struct tm_index *tm_kv_rw_index(struct tm_kv_rw *rw)
{
	return rw->idx;
}

bool tm_kv_rw_changed(struct tm_kv_rw *rw)
{
	return rw->changed;
}

struct tm_index *tm_kv_rw_close_keep(struct tm_kv_rw *rw)
{
	struct tm_index *idx = rw->idx;
	if (rw->locked)
		tm_block_unlock_writer(rw->b);
	g_ptr_array_free(rw->retired, TRUE);
	g_mutex_clear(&rw->lock);
	g_free(rw);
	return idx;
}

void tm_kv_rw_close(struct tm_kv_rw *rw)
{
	if (rw)
		tm_index_free(tm_kv_rw_close_keep(rw));
}

static void adopt(struct tm_kv_rw *rw, struct tm_index *idx)
{
	g_ptr_array_add(rw->retired, rw->idx);
	rw->idx = idx;
	rw->end = idx->archive_end;
	rw->members = idx->members;
	rw->changed = true;
}

/* ---- keys ---- */

/* key normalised as extraction would (g_free), or NULL with Invalid: '..', the root. */
static char *key_path(const char *key, struct tm_kv_error *err)
{
	char *p = g_malloc(strlen(key) + 1);
	if (!tm_index_normalize(key, p) || !*p) {
		refuse(err, TM_KV_INVALID, "%s: %s", key, *p ? "a '..' segment" : "the root");
		g_free(p);
		return NULL;
	}
	return p;
}

/* The inode at path, TM_NONE; TM_DAMAGED with err set. */
static uint32_t lookup(struct tm_kv_rw *rw, const char *path, struct tm_kv_error *err)
{
	uint32_t ino = tm_index_resolve(rw->idx, path);
	if (ino == TM_DAMAGED)
		refuse(err, TM_KV_DAMAGED, NULL);
	return ino;
}

static bool is_dir(struct tm_kv_rw *rw, uint32_t ino)
{
	const struct tm_inode *in = tm_index_inode(rw->idx, ino);
	return in && S_ISDIR(in->mode);
}

static int reindex_locked(struct tm_kv_rw *rw, struct tm_kv_error *err);

/* ---- appending ---- */

struct piece {
	struct tm_tar_desc d;
	char *path;          /* owned; d.path */
	tm_kv_rw_source src; /* NULL: d.size zeros */
	void *ud;
};

static void pieces_free(GArray *ps)
{
	for (guint i = 0; i < ps->len; i++)
		g_free(g_array_index(ps, struct piece, i).path);
	g_array_free(ps, TRUE);
}

static void desc_attr(struct tm_tar_desc *d, const struct tm_kv_rw_attr *a, uint32_t mode)
{
	static const struct tm_kv_rw_attr none;
	if (!a)
		a = &none;
	d->mode = a->mode ? a->mode & 07777 : mode;
	d->uid = a->uid, d->gid = a->gid;
	d->uname = a->uname, d->gname = a->gname;
	d->mtime = a->mtime;
	d->xattrs = a->xattrs, d->nxattrs = a->nxattrs;
}

/* Directory members for the parents of path that do not exist yet, outermost first;
 * Dictionary_expected when one is a value. */
static int add_parents(struct tm_kv_rw *rw, GArray *ps, const char *path,
		       const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	bool missing = false;
	for (const char *s = strchr(path, '/'); s; s = strchr(s + 1, '/')) {
		char *dir = g_strndup(path, (size_t)(s - path));
		uint32_t ino = missing ? TM_NONE : lookup(rw, dir, err);
		if (ino == TM_DAMAGED) {
			g_free(dir);
			return -1;
		}
		if (ino != TM_NONE && !is_dir(rw, ino)) {
			refuse(err, TM_KV_DICTIONARY_EXPECTED, "%s", dir);
			g_free(dir);
			return -1;
		}
		if (ino == TM_NONE) {
			missing = true;
			struct piece p = { .path = dir };
			p.d.type = TM_TAR_DIR;
			p.d.path = dir;
			desc_attr(&p.d, a, 0755);
			p.d.xattrs = NULL, p.d.nxattrs = 0;
			if (a && a->mode)
				p.d.mode = 0755;
			g_array_append_val(ps, p);
		} else {
			g_free(dir);
		}
	}
	return 0;
}

/* Reserve (a file) or check (a device, a window, an export) len bytes from off. */
static int make_room(struct tm_kv_rw *rw, uint64_t off, uint64_t len, struct tm_kv_error *err)
{
	struct tm_block_info info;
	tm_block_get_info(rw->b, &info);
	if (!info.growable) {
		uint64_t size = tm_block_size_bytes(rw->b);
		if (off + len > size)
			return refuse(err, TM_KV_NO_SPACE, "%llu bytes needed from byte %llu, and the "
				      "source ends at %llu", (unsigned long long)len,
				      (unsigned long long)off, (unsigned long long)size);
		return 0;
	}
	int fd;
	uint64_t base;
	if (!tm_block_get_fd(rw->b, &fd, &base))
		return 0;
	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)(base + off), (off_t)len) == 0)
		return 0;
	if (errno == ENOSPC || errno == EDQUOT || errno == EFBIG)
		return refuse(err, TM_KV_NO_SPACE, "%llu bytes needed: %s",
			      (unsigned long long)len, strerror(errno));
	struct statvfs vfs; /* a filesystem without fallocate: its free space, at least */
	if (fstatvfs(fd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < len)
		return refuse(err, TM_KV_NO_SPACE, "%llu bytes needed, %llu free",
			      (unsigned long long)len,
			      (unsigned long long)vfs.f_bavail * vfs.f_frsize);
	return 0;
}

static int put(struct tm_kv_rw *rw, const void *buf, size_t len, uint64_t off,
	       struct tm_kv_error *err)
{
	struct tm_block_error be;
	if (len && tm_block_pwrite(rw->b, buf, len, off, &be) < 0)
		return block_failed(err, &be);
	return 0;
}

static int flush(struct tm_kv_rw *rw, struct tm_kv_error *err)
{
	struct tm_block_error be;
	if (!rw->o.no_flush && tm_block_flush(rw->b, &be) < 0)
		return block_failed(err, &be);
	return 0;
}

/* Write and make durable before going on: each in-place change's steps. */
static int put_durable(struct tm_kv_rw *rw, const void *buf, size_t len, uint64_t off,
		       struct tm_kv_error *err)
{
	return put(rw, buf, len, off, err) < 0 ? -1 : flush(rw, err);
}

/* A value's bytes from its source (or zeros) to off. */
static int put_value(struct tm_kv_rw *rw, const struct piece *p, uint64_t off,
		     struct tm_kv_error *err)
{
	uint64_t size = (uint64_t)p->d.size;
	uint8_t *buf = g_malloc0(size < CHUNK ? (size_t)size + 1 : CHUNK);
	int rc = 0;
	for (uint64_t done = 0; rc == 0 && done < size;) {
		size_t want = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
		ssize_t n = p->src ? p->src(p->ud, buf, want) : (ssize_t)want;
		if (n <= 0) {
			struct tm_block_error be;
			tm_block_fail(&be, TM_BLOCK_IO, n < 0 ? errno : 0, "%s: %s", p->path,
				      n < 0 ? strerror(errno) : "the data ended early");
			rc = block_failed(err, &be);
			break;
		}
		rc = put(rw, buf, (size_t)n, off + done, err);
		done += (uint64_t)n;
	}
	g_free(buf);
	return rc;
}

/* Append the pieces, crash-safely (kv_rw.h), then read them back into the index (read_back)
 * or only move the end (raw appends); offs, when not NULL, gets each header's offset. */
static int append(struct tm_kv_rw *rw, GArray *ps, bool read_back, uint64_t *offs,
		  struct tm_kv_error *err)
{
	static const uint8_t zeros[TM_TAR_BLOCK * 2];
	uint64_t end = rw->end, total = TM_TAR_END_SIZE;
	GPtrArray *hdrs = g_ptr_array_new_with_free_func(g_free);
	size_t *hsize = g_new(size_t, ps->len);
	int rc = -1;
	for (guint i = 0; i < ps->len; i++) {
		struct piece *p = &g_array_index(ps, struct piece, i);
		char why[TM_TAR_ERRLEN];
		size_t hs = tm_tar_member_header_size(&p->d, why);
		uint8_t *h = hs ? g_malloc(hs) : NULL;
		if (!h || !tm_tar_encode_header(&p->d, h, hs, why)) {
			g_free(h);
			refuse(err, TM_KV_INVALID, "%s: %s", p->path, why);
			goto out;
		}
		g_ptr_array_add(hdrs, h);
		hsize[i] = hs;
		total += hs + (uint64_t)p->d.size + tm_tar_padding((uint64_t)p->d.size);
	}
	if (make_room(rw, end, total, err) < 0)
		goto out;
	/* Everything but the first block, past the old end marker's first block. */
	uint64_t at = end;
	for (guint i = 0; i < ps->len; i++) {
		struct piece *p = &g_array_index(ps, struct piece, i);
		const uint8_t *h = hdrs->pdata[i];
		size_t hs = hsize[i], skip = i == 0 ? TM_TAR_BLOCK : 0;
		if (offs)
			offs[i] = at;
		if (put(rw, h + skip, hs - skip, at + skip, err) < 0 ||
		    put_value(rw, p, at + hs, err) < 0 ||
		    put(rw, zeros, (size_t)tm_tar_padding((uint64_t)p->d.size),
			at + hs + (uint64_t)p->d.size, err) < 0)
			goto undo;
		at += hs + (uint64_t)p->d.size + tm_tar_padding((uint64_t)p->d.size);
	}
	if (put(rw, zeros, TM_TAR_END_SIZE, at, err) < 0 || flush(rw, err) < 0)
		goto undo;
	/* The one write that makes it all visible. */
	if (put_durable(rw, hdrs->pdata[0], TM_TAR_BLOCK, end, err) < 0)
		goto out;
	if (!read_back) {
		rw->end = at;
		rw->members += ps->len;
		rw->changed = true;
		rc = 0;
		goto out;
	}
	struct tm_block_error be;
	struct tm_index *idx = tm_index_build_resume(rw->idx, rw->b, &rw->o.index, &be);
	if (!idx) {
		block_failed(err, &be);
		goto out;
	}
	if (idx->archive_end != at || idx->members != rw->members + ps->len) {
		refuse(err, TM_KV_DAMAGED, "the members appended at byte %llu do not read back",
		       (unsigned long long)end);
		tm_index_free(idx);
		goto out;
	}
	adopt(rw, idx);
	rc = 0;
	goto out;
undo:
	/* Nothing became visible; put the old marker's second block back, so that readers
	 * find a whole end marker rather than a lone zero block (best effort). */
	{
		struct tm_kv_error ignored;
		(void)put(rw, zeros, TM_TAR_BLOCK, end + TM_TAR_BLOCK, &ignored);
		(void)flush(rw, &ignored);
	}
out:
	g_ptr_array_free(hdrs, TRUE);
	g_free(hsize);
	return rc;
}

/* One member at key (with its missing parents): the common part of the operations that
 * append.  replace: an existing value may be replaced (set), else Already_present. */
static int add_one(struct tm_kv_rw *rw, const char *key, struct piece *p, bool replace,
		   const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	char *path = key_path(key, err);
	if (!path)
		return -1;
	g_mutex_lock(&rw->lock);
	GArray *ps = g_array_new(FALSE, TRUE, sizeof(struct piece));
	int rc = -1;
	uint32_t ino = reindex_locked(rw, err) < 0 ? TM_DAMAGED : lookup(rw, path, err);
	if (ino == TM_DAMAGED)
		goto out;
	if (ino != TM_NONE && (!replace || is_dir(rw, ino))) {
		if (replace)
			refuse(err, TM_KV_VALUE_EXPECTED, "%s", path);
		else
			refuse(err, TM_KV_ALREADY_PRESENT, "%s", path);
		goto out;
	}
	if (add_parents(rw, ps, path, a, err) < 0)
		goto out;
	p->path = path;
	p->d.path = path;
	path = NULL;
	g_array_append_val(ps, *p);
	rc = append(rw, ps, true, NULL, err);
out:
	pieces_free(ps);
	g_free(path);
	g_mutex_unlock(&rw->lock);
	return rc;
}

/* A regular file of size bytes from src (NULL: zeros). */
static int add_file(struct tm_kv_rw *rw, const char *key, uint64_t size, tm_kv_rw_source src,
		    void *ud, bool replace, const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	if (size > INT64_MAX)
		return refuse(err, TM_KV_INVALID, "%s: too large", key);
	struct piece p = { .src = src, .ud = ud };
	p.d.type = TM_TAR_REG;
	desc_attr(&p.d, a, 0644);
	p.d.size = (int64_t)size;
	return add_one(rw, key, &p, replace, a, err);
}

int tm_kv_rw_set(struct tm_kv_rw *rw, const char *key, uint64_t size, tm_kv_rw_source src,
		 void *ud, const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	return add_file(rw, key, size, src, ud, true, a, err);
}

int tm_kv_rw_allocate(struct tm_kv_rw *rw, const char *key, uint64_t size,
		      const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	return add_file(rw, key, size, NULL, NULL, false, a, err);
}

int tm_kv_rw_mkdir(struct tm_kv_rw *rw, const char *key, const struct tm_kv_rw_attr *a,
		   struct tm_kv_error *err)
{
	struct piece p = { 0 };
	p.d.type = TM_TAR_DIR;
	desc_attr(&p.d, a, 0755);
	return add_one(rw, key, &p, false, a, err);
}

int tm_kv_rw_symlink(struct tm_kv_rw *rw, const char *target, const char *key,
		     const struct tm_kv_rw_attr *a, struct tm_kv_error *err)
{
	struct piece p = { 0 };
	p.d.type = TM_TAR_SYMLINK;
	p.d.linkpath = target;
	desc_attr(&p.d, a, 0777);
	return add_one(rw, key, &p, false, a, err);
}

int tm_kv_rw_link(struct tm_kv_rw *rw, const char *existing, const char *key,
		  struct tm_kv_error *err)
{
	char *target = key_path(existing, err);
	if (!target)
		return -1;
	g_mutex_lock(&rw->lock);
	uint32_t ino = reindex_locked(rw, err) < 0 ? TM_DAMAGED : lookup(rw, target, err);
	const struct tm_inode *in = ino < TM_DAMAGED ? tm_index_inode(rw->idx, ino) : NULL;
	struct tm_inode copy = in ? *in : (struct tm_inode){ 0 };
	g_mutex_unlock(&rw->lock);
	if (ino == TM_DAMAGED || !in) {
		g_free(target);
		return ino == TM_DAMAGED ? -1 : refuse(err, TM_KV_NOT_FOUND, "%s", existing);
	}
	if (S_ISDIR(copy.mode)) {
		g_free(target);
		return refuse(err, TM_KV_VALUE_EXPECTED, "%s", existing);
	}
	/* The header of a hard link carries the file's metadata, as GNU tar writes it. */
	struct piece p = { 0 };
	p.d.type = TM_TAR_HARDLINK;
	p.d.linkpath = target;
	p.d.mode = copy.mode & 07777;
	p.d.uid = copy.uid, p.d.gid = copy.gid;
	p.d.uname = tm_index_string(rw->idx, copy.uname);
	p.d.gname = tm_index_string(rw->idx, copy.gname);
	p.d.mtime = (struct tm_pax_time){ copy.mtime, copy.mtime_nsec };
	int rc = add_one(rw, key, &p, false, NULL, err);
	g_free(target);
	return rc;
}

int tm_kv_rw_set_partial(struct tm_kv_rw *rw, const char *key, uint64_t off, const void *data,
			 size_t len, struct tm_kv_error *err)
{
	char *path = key_path(key, err);
	if (!path)
		return -1;
	g_mutex_lock(&rw->lock);
	int rc = -1;
	uint32_t ino = reindex_locked(rw, err) < 0 ? TM_DAMAGED : lookup(rw, path, err);
	const struct tm_inode *in = ino < TM_DAMAGED ? tm_index_inode(rw->idx, ino) : NULL;
	const struct tm_index_sparse *map = NULL;
	if (ino == TM_DAMAGED) {
		goto out;
	} else if (!in) {
		refuse(err, TM_KV_NOT_FOUND, "%s", path);
	} else if (S_ISDIR(in->mode)) {
		refuse(err, TM_KV_VALUE_EXPECTED, "%s", path);
	} else if (!S_ISREG(in->mode)) {
		refuse(err, TM_KV_INVALID, "%s: not a regular file", path);
	} else if (!tm_index_sparse_map(rw->idx, ino, &map)) {
		refuse(err, TM_KV_DAMAGED, NULL);
	} else if (map) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: a sparse file is not overwritten in place",
		       path);
	} else if (off > in->size || len > in->size - off) {
		refuse(err, TM_KV_INVALID, "%s: bytes %llu to %llu are past its size (%llu): "
		       "set_partial stays within a value", path, (unsigned long long)off,
		       (unsigned long long)(off + len), (unsigned long long)in->size);
	} else if (put_durable(rw, data, len, in->offset + off, err) == 0) {
		rw->changed = true;
		rc = 0;
	}
out:
	g_mutex_unlock(&rw->lock);
	g_free(path);
	return rc;
}

/* ---- in place ---- */

/* The archive's members, from 0 or from the end of the last value's data that ends before
 * the archive does (a header boundary the index gives, at or before the last member's
 * first header): calls fn for each; fn returns false to stop.  -1 with err when the source
 * fails. */
typedef bool (*member_fn)(void *ud, const struct tm_tar_member *m);
static int walk_members(struct tm_kv_rw *rw, bool from_start, member_fn fn, void *ud,
			struct tm_kv_error *err)
{
	const struct tm_index *idx = rw->idx;
	uint64_t from = 0;
	for (uint32_t i = 0; !from_start && i < idx->ninodes; i++) {
		const struct tm_inode *in = tm_index_inode(idx, i);
		const struct tm_index_sparse *map = NULL;
		if (!in || !S_ISREG(in->mode) || !in->size ||
		    !tm_index_sparse_map(idx, i, &map) || map)
			continue;
		uint64_t e = in->offset + in->size + tm_tar_padding(in->size);
		if (e < idx->archive_end && e > from)
			from = e;
	}
	struct tm_tar_reader *r = tm_tar_reader_new(rw->b, NULL, NULL);
	tm_tar_reader_start_at(r, from);
	struct tm_tar_member *m;
	struct tm_block_error be;
	enum tm_tar_next rc;
	while ((rc = tm_tar_reader_next(r, &m, &be)) == TM_TAR_MEMBER &&
	       m->header_offset < idx->archive_end && fn(ud, m))
		;
	tm_tar_reader_free(r);
	if (rc == TM_TAR_FAIL)
		return block_failed(err, &be);
	return 0;
}

struct last {
	uint64_t header;
	char *path; /* normalised */
};

static bool note_last(void *ud, const struct tm_tar_member *m)
{
	struct last *l = ud;
	g_free(l->path);
	l->path = g_malloc(strlen(m->path) + 1);
	if (!tm_index_normalize(m->path, l->path))
		l->path[0] = 0;
	l->header = m->header_offset;
	return true;
}

/* The index the archive would have with the member at header edited (tm_index_options):
 * NULL with err. */
static struct tm_index *what_if(struct tm_kv_rw *rw, uint64_t header, const char *path,
				struct tm_kv_error *err)
{
	struct tm_index_options o = rw->o.index;
	o.edit = true;
	o.edit_offset = header;
	o.edit_path = path;
	struct tm_block_error be;
	struct tm_index *idx = tm_index_build(rw->b, &o, &be);
	if (!idx)
		block_failed(err, &be);
	return idx;
}

static const char compact_hint[] =
	"to drop or rename another, extract the archive and create it anew (tarkv SOURCE "
	"extract / tar -c)";

int tm_kv_rw_remove(struct tm_kv_rw *rw, const char *key, struct tm_kv_error *err)
{
	char *path = key_path(key, err);
	if (!path)
		return -1;
	g_mutex_lock(&rw->lock);
	struct last last = { 0 };
	struct tm_index *after = NULL;
	int rc = -1;
	uint32_t ino = reindex_locked(rw, err) < 0 ? TM_DAMAGED : lookup(rw, path, err);
	if (ino == TM_DAMAGED)
		goto out;
	if (ino == TM_NONE) {
		refuse(err, TM_KV_NOT_FOUND, "%s", path);
		goto out;
	}
	if (walk_members(rw, false, note_last, &last, err) < 0)
		goto out;
	if (!last.path || strcmp(last.path, path)) {
		refuse(err, TM_KV_APPEND_ONLY, "%s is not the archive's last member (%s is): only "
		       "the last one is removed in place; %s", path, last.path ? last.path : "none",
		       compact_hint);
		goto out;
	}
	if (is_dir(rw, ino) && tm_index_child_count(rw->idx, ino)) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: a directory whose members come before it",
		       path);
		goto out;
	}
	if (!(after = what_if(rw, last.header, NULL, err)))
		goto out;
	if (tm_index_resolve(after, path) != TM_NONE) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: an earlier member of that name would come "
		       "back; %s", path, compact_hint);
		goto out;
	}
	/* The first zero block ends the archive there; the second completes the marker. */
	static const uint8_t zeros[TM_TAR_BLOCK];
	if (put_durable(rw, zeros, TM_TAR_BLOCK, last.header, err) < 0 ||
	    put_durable(rw, zeros, TM_TAR_BLOCK, last.header + TM_TAR_BLOCK, err) < 0)
		goto out;
	adopt(rw, after);
	after = NULL;
	rc = 0;
out:
	tm_index_free(after);
	g_free(last.path);
	g_free(path);
	g_mutex_unlock(&rw->lock);
	return rc;
}

/* What rename learns of the archive in one pass. */
struct naming {
	const char *src;
	unsigned count;      /* members named src */
	bool linked;         /* a hard link names src */
	uint64_t header, data;
	struct tm_tar_desc d; /* the last member named src; strings owned below */
	char *linkpath, *uname, *gname;
	bool sparse, xattrs;
};

static bool note_naming(void *ud, const struct tm_tar_member *m)
{
	struct naming *n = ud;
	char *p = g_malloc(strlen(m->path) + 1), *l = NULL;
	bool named = tm_index_normalize(m->path, p) && !strcmp(p, n->src);
	if (m->type == TM_TAR_HARDLINK && m->linkpath) {
		l = g_malloc(strlen(m->linkpath) + 1);
		if (tm_index_normalize(m->linkpath, l) && !strcmp(l, n->src))
			n->linked = true;
	}
	g_free(p);
	g_free(l);
	if (!named)
		return true;
	n->count++;
	n->header = m->header_offset;
	n->data = m->data_offset;
	g_free(n->linkpath), g_free(n->uname), g_free(n->gname);
	bool link = m->type == TM_TAR_HARDLINK || m->type == TM_TAR_SYMLINK;
	n->linkpath = link ? g_strdup(m->linkpath) : NULL;
	n->uname = g_strdup(m->uname);
	n->gname = g_strdup(m->gname);
	n->d = (struct tm_tar_desc){
		.type = m->type, .linkpath = n->linkpath, .mode = m->mode, .uid = m->uid,
		.gid = m->gid, .uname = n->uname, .gname = n->gname,
		.mtime = { m->mtime, m->mtime_nsec },
		.size = m->type == TM_TAR_REG ? (int64_t)m->size : 0,
		.devmajor = m->devmajor, .devminor = m->devminor,
	};
	n->sparse = m->sparse != NULL;
	n->xattrs = m->xattrs && m->xattrs->len;
	return true;
}

int tm_kv_rw_rename(struct tm_kv_rw *rw, const char *src, const char *dst,
		    struct tm_kv_error *err)
{
	char *from = key_path(src, err), *to = from ? key_path(dst, err) : NULL;
	if (!to) {
		g_free(from);
		return -1;
	}
	if (!strcmp(from, to)) {
		g_free(from), g_free(to);
		return 0;
	}
	g_mutex_lock(&rw->lock);
	struct naming n = { .src = from };
	struct tm_index *after = NULL;
	uint8_t h[TM_TAR_BLOCK];
	char why[TM_TAR_ERRLEN];
	int rc = -1;
	uint32_t ino = reindex_locked(rw, err) < 0 ? TM_DAMAGED : lookup(rw, from, err), dino = ino == TM_DAMAGED ? TM_DAMAGED
						    : lookup(rw, to, err);
	const char *slash = strrchr(to, '/');
	char *parent = slash ? g_strndup(to, (size_t)(slash - to)) : g_strdup("");
	uint32_t pino = dino == TM_DAMAGED ? TM_DAMAGED : lookup(rw, parent, err);
	if (ino == TM_DAMAGED || dino == TM_DAMAGED || pino == TM_DAMAGED)
		goto out;
	if (ino == TM_NONE) {
		refuse(err, TM_KV_NOT_FOUND, "%s", from);
		goto out;
	}
	if (dino != TM_NONE) {
		refuse(err, TM_KV_ALREADY_PRESENT, "%s", to);
		goto out;
	}
	if (pino == TM_NONE || !is_dir(rw, pino)) {
		refuse(err, pino == TM_NONE ? TM_KV_NOT_FOUND : TM_KV_DICTIONARY_EXPECTED, "%s",
		       parent);
		goto out;
	}
	if (is_dir(rw, ino)) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: a directory's members name it, so it is not "
		       "renamed in place; %s", from, compact_hint);
		goto out;
	}
	if (walk_members(rw, true, note_naming, &n, err) < 0)
		goto out;
	const char *no = n.count != 1 ? "an earlier member of that name would come back"
		       : n.linked ? "a hard link names it"
		       : n.sparse ? "it is sparse"
		       : n.xattrs || n.data - n.header != TM_TAR_BLOCK
			   ? "its header is more than one block" : NULL;
	n.d.path = to;
	size_t hs = no ? 0 : tm_tar_member_header_size(&n.d, why);
	if (!no && !hs) {
		refuse(err, TM_KV_INVALID, "%s: %s", to, why);
		goto out;
	}
	if (!no && hs != TM_TAR_BLOCK)
		no = "the new name does not fit a ustar header block";
	if (no) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: not renamed in place: %s; %s", from, no,
		       compact_hint);
		goto out;
	}
	if (!(after = what_if(rw, n.header, to, err)))
		goto out;
	uint32_t now = tm_index_resolve(after, to);
	const struct tm_inode *was = tm_index_inode(rw->idx, ino), *is =
		now < TM_DAMAGED ? tm_index_inode(after, now) : NULL;
	if (!is || !was || is->offset != was->offset || is->mode != was->mode ||
	    tm_index_resolve(after, from) != TM_NONE) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: a later member would hide it under its new "
		       "name; %s", from, compact_hint);
		goto out;
	}
	if (!tm_tar_encode_header(&n.d, h, sizeof h, why)) {
		refuse(err, TM_KV_INVALID, "%s: %s", to, why);
		goto out;
	}
	if (put_durable(rw, h, sizeof h, n.header, err) < 0)
		goto out;
	adopt(rw, after);
	after = NULL;
	rc = 0;
out:
	tm_index_free(after);
	g_free(n.linkpath), g_free(n.uname), g_free(n.gname);
	g_free(parent);
	g_free(from);
	g_free(to);
	g_mutex_unlock(&rw->lock);
	return rc;
}

/* ---- for a writer with its own view of the tree ---- */

uint64_t tm_kv_rw_end(struct tm_kv_rw *rw)
{
	g_mutex_lock(&rw->lock);
	uint64_t end = rw->end;
	g_mutex_unlock(&rw->lock);
	return end;
}

int tm_kv_rw_append(struct tm_kv_rw *rw, struct tm_kv_rw_member *ms, size_t n,
		    struct tm_kv_error *err)
{
	if (!n)
		return 0;
	GArray *ps = g_array_sized_new(FALSE, TRUE, sizeof(struct piece), (guint)n);
	for (size_t i = 0; i < n; i++) {
		struct piece p = { .d = ms[i].d, .src = ms[i].src, .ud = ms[i].ud };
		p.path = g_strdup(ms[i].d.path);
		p.d.path = p.path;
		p.d.path_len = 0;
		g_array_append_val(ps, p);
	}
	uint64_t *offs = g_new(uint64_t, n);
	g_mutex_lock(&rw->lock);
	int rc = append(rw, ps, false, offs, err);
	g_mutex_unlock(&rw->lock);
	for (size_t i = 0; rc == 0 && i < n; i++)
		ms[i].header_offset = offs[i];
	g_free(offs);
	pieces_free(ps);
	return rc;
}

/* Bring idx up to what the raw appends added (under the lock). */
static int reindex_locked(struct tm_kv_rw *rw, struct tm_kv_error *err)
{
	if (rw->end == rw->idx->archive_end && rw->members == rw->idx->members)
		return 0;
	struct tm_block_error be;
	struct tm_index *idx = rw->end > rw->idx->archive_end
		? tm_index_build_resume(rw->idx, rw->b, &rw->o.index, &be)
		: tm_index_build(rw->b, &rw->o.index, &be);
	if (!idx)
		return block_failed(err, &be);
	if (idx->archive_end != rw->end) {
		tm_index_free(idx);
		return refuse(err, TM_KV_DAMAGED, "the members appended up to byte %llu do not "
			      "read back", (unsigned long long)rw->end);
	}
	adopt(rw, idx);
	return 0;
}

int tm_kv_rw_reindex(struct tm_kv_rw *rw, struct tm_kv_error *err)
{
	g_mutex_lock(&rw->lock);
	int rc = reindex_locked(rw, err);
	g_mutex_unlock(&rw->lock);
	return rc;
}

int tm_kv_rw_cut(struct tm_kv_rw *rw, uint64_t header_offset, struct tm_kv_error *err)
{
	static const uint8_t zeros[TM_TAR_BLOCK];
	g_mutex_lock(&rw->lock);
	int rc = -1;
	if (header_offset < rw->idx->archive_end || header_offset >= rw->end ||
	    header_offset % TM_TAR_BLOCK) {
		refuse(err, TM_KV_APPEND_ONLY, "byte %llu is not a member appended since the "
		       "archive was opened", (unsigned long long)header_offset);
	} else if (put_durable(rw, zeros, TM_TAR_BLOCK, header_offset, err) == 0 &&
		   put_durable(rw, zeros, TM_TAR_BLOCK, header_offset + TM_TAR_BLOCK, err) == 0) {
		rw->end = header_offset;
		rw->members--;
		rw->changed = true;
		rc = 0;
	}
	g_mutex_unlock(&rw->lock);
	return rc;
}

int tm_kv_rw_rename_header(struct tm_kv_rw *rw, uint64_t header_offset,
			   const struct tm_tar_desc *d, const char *new_path,
			   struct tm_kv_error *err)
{
	struct tm_tar_desc nd = *d;
	nd.path = new_path;
	nd.path_len = 0;
	char why[TM_TAR_ERRLEN];
	size_t hs = tm_tar_member_header_size(d, why), ns = hs ? tm_tar_member_header_size(&nd, why)
							       : 0;
	if (!hs || !ns)
		return refuse(err, TM_KV_INVALID, "%s: %s", new_path, why);
	if (ns != hs)
		return refuse(err, TM_KV_APPEND_ONLY, "%s: the new name needs a header of another "
			      "size", new_path);
	uint8_t *was = g_malloc(hs), *now = g_malloc(hs), *disk = g_malloc(hs);
	int rc = -1;
	if (!tm_tar_encode_header(d, was, hs, why) || !tm_tar_encode_header(&nd, now, hs, why)) {
		refuse(err, TM_KV_INVALID, "%s: %s", new_path, why);
		goto out;
	}
	/* One block changes, or the rename is not atomic: the ustar block that ends the header
	 * (a pax header's own block names it PaxHeaders/...: left as it is, no reader uses
	 * it); the pax records between must not name it. */
	size_t last = hs - TM_TAR_BLOCK;
	if (hs > TM_TAR_BLOCK && memcmp(was + TM_TAR_BLOCK, now + TM_TAR_BLOCK, last - TM_TAR_BLOCK)) {
		refuse(err, TM_KV_APPEND_ONLY, "%s: its pax header names it", new_path);
		goto out;
	}
	g_mutex_lock(&rw->lock);
	struct tm_block_error be;
	if (header_offset < rw->idx->archive_end || header_offset + hs > rw->end)
		refuse(err, TM_KV_APPEND_ONLY, "byte %llu is not a member appended since the "
		       "archive was opened", (unsigned long long)header_offset);
	else if (tm_block_pread(rw->b, disk, hs, header_offset, &be) < 0)
		block_failed(err, &be);
	else if (memcmp(disk + TM_TAR_BLOCK * (hs > TM_TAR_BLOCK), was + TM_TAR_BLOCK *
			(hs > TM_TAR_BLOCK), hs - TM_TAR_BLOCK * (hs > TM_TAR_BLOCK)))
		refuse(err, TM_KV_DAMAGED, "the header at byte %llu is not the member's",
		       (unsigned long long)header_offset);
	else if (put_durable(rw, now + last, TM_TAR_BLOCK, header_offset + last, err) == 0)
		rc = 0, rw->changed = true;
	g_mutex_unlock(&rw->lock);
out:
	g_free(was), g_free(now), g_free(disk);
	return rc;
}

int tm_kv_rw_flush(struct tm_kv_rw *rw, struct tm_kv_error *err)
{
	g_mutex_lock(&rw->lock);
	struct tm_block_error be;
	int rc = tm_block_flush(rw->b, &be) < 0 ? block_failed(err, &be) : 0;
	g_mutex_unlock(&rw->lock);
	return rc;
}
