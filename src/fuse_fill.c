/* Pushing a directory's small files into the kernel's page cache (see fuse_fill.h).  The
 * request threads only mark per-inode state with atomics and queue a directory once; one
 * thread reads and pushes. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fuse_fill.h"
#include "fuse_ops.h"

/* Files up to this size are pushed whole (the Linux tarball: all but 84 of its 78,579
 * files); larger ones are left to the kernel's read-ahead.  Reading every file of that tarball
 * sent 98,600 READs without filling, 6,000 to 9,000 with it (the first files of directories
 * the reader reaches before the filler). */
#define FILL_FILE_MAX (1024u * 1024)
/* What one directory pushes at most: a reader that wanted one file of a large directory
 * costs no more than this. */
#define FILL_DIR_MAX (32u * 1024 * 1024)

/* Files are being read: a first read came less than this long ago. */
#define FILL_ACTIVE_MS 1000

/* Per-inode state bits. */
enum {
	FILL_CACHED = 1, /* a file whose bytes were asked for or pushed */
	FILL_QUEUED = 2, /* a directory queued for filling */
};

struct fill_job {
	uint32_t dir;    /* push the small files of dir listed after ino */
	uint32_t ino;    /* TM_NONE: from the first file on */
	uint64_t tail;   /* and ino's bytes from here on (page aligned; >= size: none) */
};

struct tm_fill {
	struct tm_fs *fs;
	struct fuse_session *se;
	uint32_t ninodes;
	_Atomic uint32_t *parent;  /* per inode: 1 + the directory that listed it, 0: none yet */
	atomic_uchar *state;       /* per inode: FILL_* bits */
	GAsyncQueue *jobs;         /* of struct fill_job; the filler itself means stop */
	atomic_bool stopped;
	_Atomic int64_t read_ms;   /* when the last first read came (CLOCK_MONOTONIC) */
	char *buf;                 /* FILL_FILE_MAX bytes, the thread's */
	uint64_t page;
};

struct tm_fill *tm_fill_new(struct tm_fs *fs, struct fuse_session *se)
{
	struct tm_fill *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->fs = fs;
	f->se = se;
	f->ninodes = fs->index->ninodes;
	/* calloc'd: pages the mount never lists stay untouched. */
	f->parent = calloc(f->ninodes ? f->ninodes : 1, sizeof *f->parent);
	f->state = calloc(f->ninodes ? f->ninodes : 1, sizeof *f->state);
	f->buf = malloc(FILL_FILE_MAX);
	if (!f->parent || !f->state || !f->buf) {
		tm_fill_free(f);
		return NULL;
	}
	f->jobs = g_async_queue_new_full(g_free);
	long page = sysconf(_SC_PAGESIZE);
	f->page = page > 0 ? (uint64_t)page : 4096;
	return f;
}

void tm_fill_free(struct tm_fill *f)
{
	if (!f)
		return;
	if (f->jobs) {
		void *j;
		while ((j = g_async_queue_try_pop(f->jobs)))
			if (j != f)
				g_free(j);
		g_async_queue_unref(f->jobs);
	}
	free(f->parent);
	free(f->state);
	free(f->buf);
	free(f);
}

void tm_fill_listed(struct tm_fill *f, uint32_t dir, uint32_t ino)
{
	if (!f || ino >= f->ninodes)
		return;
	if (atomic_load_explicit(&f->parent[ino], memory_order_relaxed) == 0)
		atomic_store_explicit(&f->parent[ino], dir + 1, memory_order_relaxed);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Queue dir (unless queued before) to be filled after ino, and ino from tail on. */
static void queue(struct tm_fill *f, uint32_t dir, uint32_t ino, uint64_t tail)
{
	if (atomic_load(&f->stopped) ||
	    atomic_fetch_or(&f->state[dir], FILL_QUEUED) & FILL_QUEUED)
		return;
	struct fill_job *j = g_new(struct fill_job, 1);
	*j = (struct fill_job){ .dir = dir, .ino = ino, .tail = tail };
	g_async_queue_push(f->jobs, j);
}

void tm_fill_read(struct tm_fill *f, uint32_t ino, uint64_t off, size_t size)
{
	if (!f || ino >= f->ninodes)
		return;
	atomic_fetch_or_explicit(&f->state[ino], FILL_CACHED, memory_order_relaxed);
	uint32_t p = atomic_load_explicit(&f->parent[ino], memory_order_relaxed);
	if (off != 0 || p == 0 || p - 1 >= f->ninodes)
		return;
	atomic_store_explicit(&f->read_ms, now_ms(), memory_order_relaxed);
	queue(f, p - 1, ino, (size + f->page - 1) / f->page * f->page);
}

void tm_fill_listed_all(struct tm_fill *f, uint32_t dir)
{
	if (f && dir < f->ninodes &&
	    now_ms() - atomic_load_explicit(&f->read_ms, memory_order_relaxed) < FILL_ACTIVE_MS)
		queue(f, dir, TM_NONE, 0);
}

void tm_fill_stop(struct tm_fill *f)
{
	if (!f)
		return;
	atomic_store(&f->stopped, true);
	g_async_queue_push_front(f->jobs, f);
}

/* Push ino's bytes [from, size) (size <= FILL_FILE_MAX).  False when nothing more should
 * be pushed at all: the source changed, or the session is gone. */
static bool push(struct tm_fill *f, uint32_t ino, uint64_t from, uint64_t size)
{
	struct tm_kv_error err;
	ssize_t n = tm_kv_read(&f->fs->kv, ino, f->buf, (size_t)(size - from), from, &err);
	if (n != (ssize_t)(size - from))
		return true; /* a read error: left to READ, which reports it */
	/* Checked after reading: bytes read before a change are the index's bytes. */
	if (tm_block_changed(f->fs->block))
		return false;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT((size_t)n);
	bv.buf[0].mem = f->buf;
	int rc = fuse_lowlevel_notify_store(f->se, tm_fuse_ino(ino), (off_t)from, &bv, 0);
	/* ENOENT: the kernel has forgotten the inode; nothing to fill. */
	return rc == 0 || rc == -ENOENT;
}

/* The small files of job->dir after job->ino, and the rest of job->ino. */
static bool fill_dir(struct tm_fill *f, const struct fill_job *job)
{
	const struct tm_index *idx = f->fs->index;
	const struct tm_inode *in = job->ino == TM_NONE ? NULL : tm_index_inode(idx, job->ino);
	if (in && in->size <= FILL_FILE_MAX && job->tail < in->size &&
	    !push(f, job->ino, job->tail, in->size))
		return false;
	const struct tm_inode *d = tm_index_inode(idx, job->dir);
	if (!d || !S_ISDIR(d->mode))
		return true;
	uint32_t n = d->b, k = 0;
	for (; job->ino != TM_NONE && k < n; k++) {
		const struct tm_dentry *e = tm_index_child(idx, job->dir, k);
		if (!e)
			return true; /* damaged: READ reports it */
		if (e->inode == job->ino)
			break;
	}
	uint64_t budget = FILL_DIR_MAX;
	for (k = job->ino == TM_NONE ? 0 : k + 1; k < n && !atomic_load(&f->stopped); k++) {
		const struct tm_dentry *e = tm_index_child(idx, job->dir, k);
		if (!e)
			return true;
		const struct tm_inode *c = tm_index_inode(idx, e->inode);
		if (!c || !S_ISREG(c->mode) || c->size == 0 || c->size > FILL_FILE_MAX ||
		    e->inode >= f->ninodes)
			continue;
		if (c->size > budget)
			break;
		if (atomic_fetch_or(&f->state[e->inode], FILL_CACHED) & FILL_CACHED)
			continue; /* read or pushed already */
		budget -= c->size;
		if (!push(f, e->inode, 0, c->size))
			return false;
	}
	return true;
}

gpointer tm_fill_run(gpointer data)
{
	struct tm_fill *f = data;
	void *j;
	while ((j = g_async_queue_pop(f->jobs)) != f) {
		bool go_on = !atomic_load(&f->stopped) && fill_dir(f, j);
		g_free(j);
		if (!go_on) {
			atomic_store(&f->stopped, true);
			break;
		}
	}
	return NULL;
}
