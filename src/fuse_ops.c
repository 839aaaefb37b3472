/* FUSE low-level operations.  Everything read here is immutable after mount, so handlers
 * run concurrently without locks; the only shared mutable thing is the block backend, which
 * is thread-safe by contract. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "fuse_fill.h"
#include "fuse_ops.h"

/* The longest name the kernel's FUSE client passes (FUSE_NAME_MAX). */
#define FUSE_NAME_LIMIT 1024

/* Every operation but init starts here. */
struct tm_fs *tm_fuse_fs(fuse_req_t req)
{
	struct tm_fs *fs = fuse_req_userdata(req);
	if (fs->first_request && !atomic_load_explicit(&fs->first_done, memory_order_acquire) &&
	    !atomic_exchange(&fs->first_done, true))
		fs->first_request(fs->first_request_ud);
	return fs;
}
#define fs_of tm_fuse_fs

int tm_fuse_errno(const struct tm_kv_error *err)
{
	switch (err->code) {
	case TM_KV_OK: return 0;
	case TM_KV_NOT_FOUND: return ENOENT;
	case TM_KV_DICTIONARY_EXPECTED: return ENOTDIR;
	case TM_KV_VALUE_EXPECTED: return EISDIR;
	case TM_KV_BLOCK: return EIO;
	case TM_KV_DAMAGED: return EIO;
	case TM_KV_ALREADY_PRESENT: return EEXIST;
	case TM_KV_APPEND_ONLY: return EPERM;
	case TM_KV_NO_SPACE: return ENOSPC;
	case TM_KV_READ_ONLY: return EROFS;
	case TM_KV_INVALID: return EINVAL;
	}
	return EIO;
}

/* The index inode behind a FUSE inode number, or TM_NONE for a number we never gave out. */
static uint32_t index_ino(const struct tm_fs *fs, fuse_ino_t ino)
{
	if (ino < 1 || ino > fs->index->ninodes)
		return TM_NONE;
	return (uint32_t)(ino - 1);
}

bool tm_fuse_stat(const struct tm_fs *fs, uint32_t ino, struct stat *st)
{
	const struct tm_inode *in = tm_index_inode(fs->index, ino);
	const struct tm_index_sparse *map;
	if (!in || !tm_index_sparse_map(fs->index, ino, &map))
		return false;
	memset(st, 0, sizeof *st);
	st->st_ino = tm_fuse_ino(ino);
	st->st_mode = in->mode;
	if (fs->umask >= 0)
		st->st_mode &= ~(mode_t)fs->umask;
	st->st_nlink = in->nlink;
	st->st_uid = fs->uid >= 0 ? (uid_t)fs->uid : in->uid;
	st->st_gid = fs->gid >= 0 ? (gid_t)fs->gid : in->gid;
	if (S_ISREG(in->mode) || S_ISLNK(in->mode))
		st->st_size = (off_t)in->size;
	if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
		st->st_rdev = makedev(in->a, in->b);
	st->st_blksize = 4096;
	/* Sparse files occupy what they store; others their size. */
	uint64_t used = st->st_size;
	if (map) {
		used = 0;
		for (uint64_t i = 0; i < map->count; i++)
			used += map->chunk[i].length;
	}
	st->st_blocks = (blkcnt_t)((used + 511) / 512);
	st->st_mtim.tv_sec = in->mtime;
	st->st_mtim.tv_nsec = in->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	return true;
}
#define fill_stat tm_fuse_stat

/* Refuse to serve from a source rewritten under us: its bytes no longer match the index. */
static bool source_stale(fuse_req_t req, const struct tm_fs *fs)
{
	if (!tm_block_changed(fs->block))
		return false;
	fs->log_error("%s changed while mounted; reads fail with EIO", fs->block->source);
	fuse_reply_err(req, EIO);
	return true;
}

static bool fill_entry(const struct tm_fs *fs, uint32_t ino, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	e->ino = tm_fuse_ino(ino);
	e->generation = 1;
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
	return fill_stat(fs, ino, &e->attr);
}

/* The inode behind a FUSE inode number: NULL after replying ENOENT (a number we never
 * gave out) or EIO (damaged). */
static const struct tm_inode *inode_or_reply(fuse_req_t req, const struct tm_fs *fs,
					     fuse_ino_t ino, uint32_t *i)
{
	*i = index_ino(fs, ino);
	const struct tm_inode *in = *i == TM_NONE ? NULL : tm_index_inode(fs->index, *i);
	if (!in)
		fuse_reply_err(req, *i == TM_NONE ? ENOENT : EIO);
	return in;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tm_fs *fs = fs_of(req);
	uint32_t dir;
	const struct tm_inode *d = inode_or_reply(req, fs, parent, &dir);
	if (!d)
		return;
	if (!S_ISDIR(d->mode))
		return (void)fuse_reply_err(req, ENOTDIR);
	uint32_t ino = tm_index_lookup(fs->index, dir, name, strlen(name), NULL);
	if (ino == TM_DAMAGED)
		return (void)fuse_reply_err(req, EIO);
	if (ino == TM_NONE) {
		/* A negative entry the kernel may cache as long as a positive one. */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = fs->timeout };
		return (void)fuse_reply_entry(req, &e);
	}
	struct fuse_entry_param e;
	if (!fill_entry(fs, ino, &e))
		return (void)fuse_reply_err(req, EIO);
	fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino, (void)nlookup; /* inodes live as long as the mount */
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count, (void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_fs *fs = fs_of(req);
	(void)fi;
	uint32_t i = index_ino(fs, ino);
	if (i == TM_NONE)
		return (void)fuse_reply_err(req, ENOENT);
	struct stat st;
	if (!fill_stat(fs, i, &st))
		return (void)fuse_reply_err(req, EIO);
	fuse_reply_attr(req, &st, fs->timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct tm_fs *fs = fs_of(req);
	uint32_t i;
	const struct tm_inode *in = inode_or_reply(req, fs, ino, &i);
	if (!in)
		return;
	if (!S_ISLNK(in->mode))
		return (void)fuse_reply_err(req, EINVAL);
	if (in->size >= PATH_MAX) /* more than the kernel takes back */
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	const char *target = tm_index_string(fs->index, in->a);
	if (!target)
		return (void)fuse_reply_err(req, EIO);
	fuse_reply_readlink(req, target);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_fs *fs = fs_of(req);
	uint32_t i;
	const struct tm_inode *in = inode_or_reply(req, fs, ino, &i);
	if (!in)
		return;
	if (!S_ISDIR(in->mode))
		return (void)fuse_reply_err(req, ENOTDIR);
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return (void)fuse_reply_err(req, EROFS);
	if (fs->no_opendir)
		return (void)fuse_reply_err(req, ENOSYS); /* see tm_fs.no_opendir */
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

/* Directory offsets: 1 is after ".", 2 after "..", 2 + k after child k. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct tm_fs *fs = fs_of(req);
	uint32_t dir;
	const struct tm_inode *in = inode_or_reply(req, fs, ino, &dir);
	if (!in)
		return;
	if (!S_ISDIR(in->mode))
		return (void)fuse_reply_err(req, ENOTDIR);
	char *buf = malloc(size);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	size_t used = 0;
	bool damaged = false;
	uint32_t n = in->b;
	for (off_t k = off; k < (off_t)n + 2; k++) {
		const char *name;
		uint32_t child;
		if (k < 2) {
			name = k == 0 ? "." : "..";
			child = dir; /* ".." is fixed up by the kernel */
		} else {
			const struct tm_dentry *d = tm_index_child(fs->index, dir, (uint32_t)(k - 2));
			name = d ? tm_index_string(fs->index, d->name) : NULL;
			if (!name) {
				damaged = true;
				break;
			}
			child = d->inode;
			/* Longer than FUSE can carry (nor could it be looked up): not listed, or
			 * the kernel would take the empty reply for the end of the directory. */
			if (strlen(name) > FUSE_NAME_LIMIT)
				continue;
		}
		size_t len;
		if (plus) {
			struct fuse_entry_param e;
			if (!fill_entry(fs, child, &e)) {
				damaged = true;
				break;
			}
			if (k < 2) /* no lookup count for dot entries */
				e.ino = tm_fuse_ino(child), e.entry_timeout = 0;
			len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, k + 1);
			if (k >= 2 && S_ISREG(e.attr.st_mode))
				tm_fill_listed(fs->fill, dir, child);
		} else {
			/* tm_index_child checked the inode it names. */
			struct stat st = { .st_ino = tm_fuse_ino(child),
					   .st_mode = tm_index_inode(fs->index, child)->mode };
			len = fuse_add_direntry(req, buf + used, size - used, name, &st, k + 1);
			if (k >= 2 && S_ISREG(st.st_mode))
				tm_fill_listed(fs->fill, dir, child);
		}
		if (len > size - used)
			break;
		used += len;
	}
	if (!damaged && used == 0)
		tm_fill_listed_all(fs->fill, dir);
	/* What comes before the damage is served; the next call, from there, fails. */
	if (damaged && used == 0)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_fs *fs = fs_of(req);
	uint32_t i;
	const struct tm_inode *in = inode_or_reply(req, fs, ino, &i);
	if (!in)
		return;
	if (S_ISDIR(in->mode))
		return (void)fuse_reply_err(req, EISDIR);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return (void)fuse_reply_err(req, EROFS);
	if (source_stale(req, fs))
		return;
	if (fs->no_open)
		return (void)fuse_reply_err(req, ENOSYS); /* see tm_fs.no_open */
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct tm_fs *fs = fs_of(req);
	(void)fi;
	uint32_t i;
	const struct tm_inode *in = inode_or_reply(req, fs, ino, &i);
	if (!in)
		return;
	if (!S_ISREG(in->mode))
		return (void)fuse_reply_err(req, EINVAL);
	if (source_stale(req, fs))
		return;
	if (off < 0 || (uint64_t)off >= in->size)
		return (void)fuse_reply_buf(req, NULL, 0);
	if (size > in->size - (uint64_t)off)
		size = (size_t)(in->size - (uint64_t)off);
	tm_fill_read(fs->fill, i, (uint64_t)off, size);

	/* Contiguous member of a file-backed source: let libfuse splice from the archive. */
	int fd;
	uint64_t base;
	const struct tm_index_sparse *map;
	if (!tm_index_sparse_map(fs->index, i, &map))
		return (void)fuse_reply_err(req, EIO);
	if (!map && tm_block_get_fd(fs->block, &fd, &base)) {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = (off_t)(base + in->offset + (uint64_t)off);
		int rc = fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		if (rc < 0) {
			fs->log_error("%s: read failed: %s", fs->block->source, strerror(-rc));
			fuse_reply_err(req, EIO);
		}
		return;
	}
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	struct tm_kv_error err;
	const struct tm_kv *kv = &fs->kv;
	if (fs->uncached && size >= FUSE_UNCACHED_READ)
		kv = fs->uncached;
	ssize_t n = tm_kv_read(kv, i, buf, size, (uint64_t)off, &err);
	if (n < 0) {
		char msg[300];
		fs->log_error("%s: read failed: %s", fs->block->source,
			      tm_kv_strerror(&err, msg, sizeof msg));
		fuse_reply_err(req, tm_fuse_errno(&err));
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct tm_fs *fs = fs_of(req);
	(void)ino;
	struct statvfs sv = {
		.f_bsize = 512,
		.f_frsize = 512,
		.f_blocks = fs->archive_size / 512,
		.f_files = fs->index->ninodes,
		.f_namemax = 1024, /* FUSE's own limit; tar names have none */
		.f_flag = ST_RDONLY,
	};
	fuse_reply_statfs(req, &sv);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tm_fs *fs = fs_of(req);
	if (!fs->has_xattrs)
		return (void)fuse_reply_err(req, ENOSYS);
	uint32_t i = index_ino(fs, ino);
	if (i == TM_NONE)
		return (void)fuse_reply_err(req, ENOENT);
	uint32_t cur = 0, vlen;
	const char *n;
	const void *v;
	int r;
	while ((r = tm_index_xattr_next(fs->index, i, &cur, &n, &v, &vlen)) > 0) {
		if (strcmp(n, name))
			continue;
		if (size == 0)
			return (void)fuse_reply_xattr(req, vlen);
		if (size < vlen)
			return (void)fuse_reply_err(req, ERANGE);
		return (void)fuse_reply_buf(req, v, vlen);
	}
	fuse_reply_err(req, r < 0 ? EIO : ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tm_fs *fs = fs_of(req);
	if (!fs->has_xattrs)
		return (void)fuse_reply_err(req, ENOSYS);
	uint32_t i = index_ino(fs, ino);
	if (i == TM_NONE)
		return (void)fuse_reply_err(req, ENOENT);
	GString *names = g_string_new(NULL);
	uint32_t cur = 0, vlen;
	const char *n;
	const void *v;
	int r;
	while ((r = tm_index_xattr_next(fs->index, i, &cur, &n, &v, &vlen)) > 0)
		g_string_append_len(names, n, (gssize)strlen(n) + 1);
	if (r < 0)
		fuse_reply_err(req, EIO);
	else if (size == 0)
		fuse_reply_xattr(req, names->len);
	else if (size < names->len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names->str, names->len);
	g_string_free(names, TRUE);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tm_fs *fs = userdata;
	/* Every open and close of a file is a round trip each; without them a file read
	 * twice costs nothing the second time. */
	fs->no_open = conn->capable & FUSE_CAP_NO_OPEN_SUPPORT;
	fs->no_opendir = conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT;
	/* Replies that carry an fd buffer are spliced straight from the archive. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* Nothing changes: let lookups in one directory run in parallel. */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* Every listing carries the attributes: ours cost nothing, and the kernel's "auto"
	 * mode would list a directory's later pages without them and then send a LOOKUP for
	 * each name a walk stats (find -ls on the Linux tarball: 7,072 LOOKUPs more, 40 %
	 * more requests). */
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
}

/* Every operation that would change the tree: the mount is read-only. */
static void erofs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			  struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}
static void erofs_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d)
{
	(void)p, (void)n, (void)m, (void)d;
	fuse_reply_err(req, EROFS);
}
static void erofs_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	(void)p, (void)n, (void)m;
	fuse_reply_err(req, EROFS);
}
static void erofs_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
	(void)p, (void)n;
	fuse_reply_err(req, EROFS);
}
static void erofs_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	(void)l, (void)p, (void)n;
	fuse_reply_err(req, EROFS);
}
static void erofs_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
			 const char *nn, unsigned int f)
{
	(void)p, (void)n, (void)np, (void)nn, (void)f;
	fuse_reply_err(req, EROFS);
}
static void erofs_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
	(void)i, (void)np, (void)nn;
	fuse_reply_err(req, EROFS);
}
static void erofs_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o,
			struct fuse_file_info *fi)
{
	(void)i, (void)b, (void)s, (void)o, (void)fi;
	fuse_reply_err(req, EROFS);
}
static void erofs_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s,
			   int f)
{
	(void)i, (void)n, (void)v, (void)s, (void)f;
	fuse_reply_err(req, EROFS);
}
static void erofs_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
	(void)i, (void)n;
	fuse_reply_err(req, EROFS);
}
static void erofs_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
			 struct fuse_file_info *fi)
{
	(void)p, (void)n, (void)m, (void)fi;
	fuse_reply_err(req, EROFS);
}
static void erofs_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l,
			    struct fuse_file_info *fi)
{
	(void)i, (void)m, (void)o, (void)l, (void)fi;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops tm_fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setattr = erofs_setattr,
	.mknod = erofs_mknod,
	.mkdir = erofs_mkdir,
	.unlink = erofs_unlink,
	.rmdir = erofs_unlink,
	.symlink = erofs_symlink,
	.rename = erofs_rename,
	.link = erofs_link,
	.write = erofs_write,
	.setxattr = erofs_setxattr,
	.removexattr = erofs_removexattr,
	.create = erofs_create,
	.fallocate = erofs_fallocate,
};
