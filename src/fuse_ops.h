/* The FUSE low-level operations: VFS calls answered from the index and the KV_RO layer. */
#ifndef TM_FUSE_OPS_H
#define TM_FUSE_OPS_H

/* 3.12: fuse_parse_cmdline knows -o max_threads and the loop takes a config object. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kv.h"

struct tm_rw;

/* What the operations read; set up before the session starts, read-only afterwards (but
 * first_done). */
struct tm_fs {
	struct tm_kv kv;
	/* The same over the source without its block cache, for reads of FUSE_UNCACHED_READ
	 * bytes and more (a sequential reader's: the kernel caches them anyway, and the cache
	 * would copy them twice and read them one request at a time); NULL: none. */
	struct tm_kv kv_uncached;
	const struct tm_kv *uncached;
	const struct tm_index *index;
	struct tm_block *block;
	int64_t uid, gid;     /* -o uid=/gid= overrides, or -1 */
	int32_t umask;        /* -o umask= override, or -1 */
	uint64_t archive_size;
	double timeout;       /* entry and attribute cache timeout, seconds */
	/* Set in init: the kernel can do without OPEN/OPENDIR requests (and their RELEASEs):
	 * it then keeps file pages and directory listings cached across opens by itself. */
	bool no_open, no_opendir;
	/* Whether any entry has xattrs.  When none does, getxattr and listxattr answer ENOSYS,
	 * and the kernel stops asking (ls -l asks for every file). */
	bool has_xattrs;
	/* Called once, by the first request after INIT (the kernel has then taken the INIT
	 * reply); NULL for nothing. */
	void (*first_request)(void *ud);
	/* Fills the kernel's cache ahead of readers (fuse_fill.h), or NULL. */
	struct tm_fill *fill;
	void *first_request_ud;
	atomic_bool first_done;
	/* A read-write mount's overlay (fuse_rw.h), or NULL. */
	struct tm_rw *rw;
	/* Reports a backend failure (once daemonised: to syslog). */
	void (*log_error)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

#define FUSE_UNCACHED_READ (256u * 1024)

extern const struct fuse_lowlevel_ops tm_fuse_ops;

/* FUSE inode numbers are index inodes + 1, so that the root (inode 0) is FUSE_ROOT_ID. */
static inline fuse_ino_t tm_fuse_ino(uint32_t ino) { return (fuse_ino_t)ino + 1; }

/* The mount a request is for; every operation but init starts with it (it runs the
 * first_request hook). */
struct tm_fs *tm_fuse_fs(fuse_req_t req);
/* The attributes of index inode ino as served (after -o uid=, gid=, umask=); false when the
 * inode is damaged (the index's hook has said so: the caller replies EIO). */
bool tm_fuse_stat(const struct tm_fs *fs, uint32_t ino, struct stat *st);

/* errno for a KV error: the one place where our errors become errno values. */
int tm_fuse_errno(const struct tm_kv_error *err);

#endif
