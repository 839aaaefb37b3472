/* A read-write mount: the overlay of changes over the index, and the batches that append
 * them (fuse_rw.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "fuse_rw.h"

#define NOWHERE UINT64_MAX
#define SPOOL_FILE_MEM (4u << 20) /* a spool past this goes to a file */
#define COPY_CHUNK (1u << 20)

/* A changed file's bytes until they are appended: in memory, then in an unlinked file. */
struct spool {
	uint8_t *mem;
	size_t cap;
	int fd; /* -1: in mem */
	uint64_t size;
};

struct dent;

/* An entry the overlay knows: new since the mount, or of the index and changed (or on the
 * way to a changed one: the directories above it). */
struct node {
	fuse_ino_t ino;
	uint32_t base;            /* its index inode, or TM_NONE */
	uint32_t mode, uid, gid;
	uint32_t nlink;           /* a directory's in the index (2 + its subdirectories) */
	uint64_t size;            /* a regular file's */
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t major, minor;    /* a device's */
	char *uname, *gname;      /* NULL: looked up from uid and gid when appended */
	char *target;             /* a symlink's */
	struct spool *spool;      /* a regular file's bytes, when they changed */
	uint64_t data;            /* where this mount appended its bytes, or NOWHERE */
	uint64_t header;          /* this mount's last member of it, or NOWHERE */
	bool dirty;               /* to be appended: new, or its bytes or attributes changed */
	bool pending;             /* in rw->pending */
	bool queued;              /* in the batch being made */
	unsigned writers;         /* open for writing */
	GPtrArray *names;         /* struct dent *; names[0]'s member holds it, the others are
				     hard links to that */
	GHashTable *kids;         /* a directory: name -> struct dent *, the names under it the
				     overlay holds */
	GPtrArray *added;         /* a directory: its dents that the index does not have, in
				     order (readdir's offsets); NULL where one was removed */
};

/* A name in a directory of the overlay. */
struct dent {
	struct node *dir, *node;
	char *name;
	bool in_base;             /* the index has this name in dir */
	unsigned members;         /* members at this path in the archive (the index's: 1) */
	int slot;                 /* in dir->added, or -1 */
};

struct up { /* where an index inode is: its directory */
	uint32_t dir;
};

struct tm_rw {
	struct tm_fs *fs;
	struct tm_kv_rw *kv;
	struct tm_rw_options o;
	char *spool_dir;
	const char *prefix;       /* of the paths appended: "./" when the archive's first
				     member has it (tar -C DIR .), so that they match */
	GMutex lock;
	GCond cond;               /* the timer's: a change is pending, or the end */
	GCond done;               /* a batch was written */
	bool committing;
	GHashTable *nodes;        /* &ino -> struct node * */
	fuse_ino_t next_ino;
	struct up *up;            /* for each index inode; made at the first change */
	GPtrArray *pending;       /* struct node *: dirty, or with names to link, in order */
	int64_t pending_since;    /* monotonic µs of the first change not appended */
	uint64_t spool_mem;       /* bytes of spools in memory */
	uint64_t spool_bytes;     /* bytes of all spools */
	int64_t last_commit;      /* monotonic µs */
	uint64_t last_header;     /* the archive's last member, when this mount appended it */
	bool stop;
	char failed[300];         /* the last batch's failure, logged once */
	GHashTable *names_cache;  /* "u123" / "g123" -> name */
};

/* ---- spools ---- */

static struct spool *spool_new(void)
{
	struct spool *s = g_new0(struct spool, 1);
	s->fd = -1;
	return s;
}

static void spool_free(struct tm_rw *rw, struct spool *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	rw->spool_mem -= s->cap;
	rw->spool_bytes -= s->size;
	g_free(s->mem);
	g_free(s);
}

static int spool_to_file(struct tm_rw *rw, struct spool *s)
{
	const char *dir = rw->o.spool_dir ? rw->o.spool_dir : g_get_tmp_dir();
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char *t = g_build_filename(dir, "tarmount-spool-XXXXXX", NULL);
		fd = g_mkstemp_full(t, O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			unlink(t);
		g_free(t);
	}
	if (fd < 0)
		return -errno;
	for (uint64_t done = 0; done < s->size;) {
		ssize_t n = pwrite(fd, s->mem + done, (size_t)(s->size - done), (off_t)done);
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			close(fd);
			return -e;
		}
		done += (uint64_t)n;
	}
	rw->spool_mem -= s->cap;
	g_free(s->mem);
	s->mem = NULL;
	s->cap = 0;
	s->fd = fd;
	return 0;
}

/* Make the spool size bytes long (zeros past its old end).  0 or -errno. */
static int spool_resize(struct tm_rw *rw, struct spool *s, uint64_t size)
{
	if (s->fd < 0 && size > s->cap) {
		uint64_t cap = s->cap ? s->cap : 4096;
		while (cap < size)
			cap *= 2;
		if (cap > SPOOL_FILE_MEM || rw->spool_mem + (cap - s->cap) > rw->o.spool_mem) {
			int rc = spool_to_file(rw, s);
			if (rc < 0)
				return rc;
		} else {
			uint8_t *m = g_try_realloc(s->mem, (size_t)cap);
			if (!m)
				return -ENOMEM;
			memset(m + s->cap, 0, (size_t)(cap - s->cap));
			rw->spool_mem += cap - s->cap;
			s->mem = m;
			s->cap = (size_t)cap;
		}
	}
	if (s->fd >= 0 && ftruncate(s->fd, (off_t)size) < 0)
		return -errno;
	if (s->fd < 0 && size < s->size)
		memset(s->mem + size, 0, (size_t)(s->size - size));
	rw->spool_bytes += size - s->size;
	s->size = size;
	if (rw->spool_bytes >= rw->o.spool_max)
		g_cond_signal(&rw->cond); /* an early batch */
	return 0;
}

static ssize_t spool_pwrite(struct tm_rw *rw, struct spool *s, const void *buf, size_t len,
			    uint64_t off)
{
	if (off + len > s->size) {
		int rc = spool_resize(rw, s, off + len);
		if (rc < 0)
			return rc;
	}
	if (s->fd < 0) {
		memcpy(s->mem + off, buf, len);
		return (ssize_t)len;
	}
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(s->fd, (const uint8_t *)buf + done, len - done,
				   (off_t)(off + done));
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		done += (size_t)n;
	}
	return (ssize_t)len;
}

static ssize_t spool_pread(const struct spool *s, void *buf, size_t len, uint64_t off)
{
	if (off >= s->size)
		return 0;
	if (len > s->size - off)
		len = (size_t)(s->size - off);
	if (s->fd < 0) {
		memcpy(buf, s->mem + off, len);
		return (ssize_t)len;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(s->fd, (uint8_t *)buf + done, len - done, (off_t)(off + done));
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

/* ---- nodes ---- */

static struct node *node_get(struct tm_rw *rw, fuse_ino_t ino)
{
	return g_hash_table_lookup(rw->nodes, &ino);
}

static const struct tm_index *idx_of(const struct tm_rw *rw)
{
	return rw->fs->index;
}

static bool is_base(const struct tm_rw *rw, fuse_ino_t ino)
{
	return ino >= 1 && ino <= idx_of(rw)->ninodes;
}

static struct node *node_add(struct tm_rw *rw, fuse_ino_t ino, uint32_t base)
{
	struct node *n = g_new0(struct node, 1);
	n->ino = ino;
	n->base = base;
	n->data = n->header = NOWHERE;
	n->names = g_ptr_array_new();
	g_hash_table_insert(rw->nodes, &n->ino, n);
	return n;
}

static void node_dir_init(struct node *n)
{
	n->kids = g_hash_table_new(g_str_hash, g_str_equal);
	n->added = g_ptr_array_new();
}

static int64_t now_us(void)
{
	return g_get_monotonic_time();
}

/* Mark n to be appended in the next batch. */
static void pend(struct tm_rw *rw, struct node *n)
{
	if (n->pending)
		return;
	n->pending = true;
	if (!rw->pending->len) {
		rw->pending_since = now_us();
		g_cond_signal(&rw->cond);
	}
	g_ptr_array_add(rw->pending, n);
}

static void dirty(struct tm_rw *rw, struct node *n)
{
	n->dirty = true;
	pend(rw, n);
}

/* Where every index inode is (the first name of each), made once. */
static void ensure_up(struct tm_rw *rw)
{
	if (rw->up)
		return;
	const struct tm_index *idx = idx_of(rw);
	rw->up = g_new(struct up, idx->ninodes);
	for (uint32_t i = 0; i < idx->ninodes; i++)
		rw->up[i] = (struct up){ TM_NONE };
	for (uint32_t d = 0; d < idx->ninodes; d++) {
		const struct tm_inode *in = tm_index_inode(idx, d);
		if (!in || !S_ISDIR(in->mode))
			continue;
		uint32_t n = tm_index_child_count(idx, d);
		for (uint32_t k = 0; k < n; k++) {
			const struct tm_dentry *de = tm_index_child(idx, d, k);
			if (de && de->inode < idx->ninodes && rw->up[de->inode].dir == TM_NONE)
				rw->up[de->inode] = (struct up){ d };
		}
	}
}

static struct dent *dent_add(struct node *dir, const char *name, struct node *n, bool in_base)
{
	struct dent *e = g_new0(struct dent, 1);
	e->dir = dir;
	e->node = n;
	e->name = g_strdup(name);
	e->in_base = in_base;
	e->members = in_base ? 1 : 0;
	e->slot = -1;
	if (!in_base) {
		e->slot = (int)dir->added->len;
		g_ptr_array_add(dir->added, e);
	}
	g_hash_table_insert(dir->kids, e->name, e);
	if (n)
		g_ptr_array_add(n->names, e);
	return e;
}

static struct node *node_base(struct tm_rw *rw, uint32_t ino);

/* The node of index inode ino with every name the index gives it; NULL when damaged. */
static struct node *node_base(struct tm_rw *rw, uint32_t ino)
{
	struct node *n = node_get(rw, tm_fuse_ino(ino));
	if (n)
		return n;
	const struct tm_index *idx = idx_of(rw);
	const struct tm_inode *in = tm_index_inode(idx, ino);
	if (!in)
		return NULL;
	n = node_add(rw, tm_fuse_ino(ino), ino);
	n->mode = in->mode;
	n->nlink = in->nlink;
	n->uid = in->uid, n->gid = in->gid;
	n->size = S_ISREG(in->mode) ? in->size : 0;
	n->mtime = in->mtime, n->mtime_nsec = in->mtime_nsec;
	const char *un = tm_index_string(idx, in->uname), *gn = tm_index_string(idx, in->gname);
	n->uname = g_strdup(un ? un : "");
	n->gname = g_strdup(gn ? gn : "");
	if (S_ISLNK(in->mode)) {
		const char *t = tm_index_string(idx, in->a);
		n->target = g_strdup(t ? t : "");
	}
	if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
		n->major = in->a, n->minor = in->b;
	if (S_ISDIR(in->mode))
		node_dir_init(n);
	if (ino == TM_ROOT)
		return n;
	ensure_up(rw);
	/* Every name: one for most, from up; a hard-linked file's are found by a walk. */
	bool walk = in->nlink > 1 && !S_ISDIR(in->mode);
	uint32_t from = walk ? 0 : rw->up[ino].dir, to = walk ? idx->ninodes : from + 1;
	for (uint32_t d = from; d != TM_NONE && d < to; d++) {
		uint32_t cnt = tm_index_child_count(idx, d);
		for (uint32_t k = 0; k < cnt; k++) {
			const struct tm_dentry *de = tm_index_child(idx, d, k);
			const char *name = de ? tm_index_string(idx, de->name) : NULL;
			if (!name || de->inode != ino)
				continue;
			struct node *dir = node_base(rw, d);
			if (dir && !g_hash_table_lookup(dir->kids, name))
				dent_add(dir, name, n, true);
		}
	}
	return n;
}

/* The node of FUSE inode ino, made for an index inode: NULL for one we never gave out or a
 * damaged one. */
static struct node *node_of(struct tm_rw *rw, fuse_ino_t ino)
{
	struct node *n = node_get(rw, ino);
	if (!n && is_base(rw, ino))
		n = node_base(rw, (uint32_t)(ino - 1));
	return n;
}

static void node_stat(const struct tm_rw *rw, const struct node *n, struct stat *st)
{
	const struct tm_fs *fs = rw->fs;
	memset(st, 0, sizeof *st);
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	if (fs->umask >= 0)
		st->st_mode &= ~(mode_t)fs->umask;
	st->st_nlink = n->names->len ? n->names->len : 1;
	if (S_ISDIR(n->mode)) { /* the index's count, and the subdirectories made since */
		st->st_nlink = n->base != TM_NONE ? n->nlink : 2;
		for (guint i = 0; i < n->added->len; i++) {
			const struct dent *e = n->added->pdata[i];
			st->st_nlink += e && S_ISDIR(e->node->mode);
		}
	}
	st->st_uid = fs->uid >= 0 ? (uid_t)fs->uid : n->uid;
	st->st_gid = fs->gid >= 0 ? (gid_t)fs->gid : n->gid;
	if (S_ISREG(n->mode))
		st->st_size = (off_t)(n->spool ? n->spool->size : n->size);
	else if (S_ISLNK(n->mode))
		st->st_size = (off_t)strlen(n->target);
	if (S_ISCHR(n->mode) || S_ISBLK(n->mode))
		st->st_rdev = makedev(n->major, n->minor);
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
	st->st_mtim.tv_sec = n->mtime;
	st->st_mtim.tv_nsec = n->mtime_nsec;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* The attributes of ino: false when there is none or it is damaged. */
static bool ino_stat(struct tm_rw *rw, fuse_ino_t ino, struct stat *st)
{
	const struct node *n = node_get(rw, ino);
	if (n) {
		node_stat(rw, n, st);
		return true;
	}
	return is_base(rw, ino) && tm_fuse_stat(rw->fs, (uint32_t)(ino - 1), st);
}

static bool fill_entry(struct tm_rw *rw, fuse_ino_t ino, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	e->ino = ino;
	e->generation = 1;
	e->attr_timeout = rw->fs->timeout;
	e->entry_timeout = rw->fs->timeout;
	return ino_stat(rw, ino, &e->attr);
}

/* The mode of ino (0 when there is none). */
static uint32_t ino_mode(struct tm_rw *rw, fuse_ino_t ino)
{
	struct stat st;
	return ino_stat(rw, ino, &st) ? st.st_mode : 0;
}

/* name in directory dir: its inode (0: none; -EIO: damaged), and its dent when the overlay
 * holds it. */
static int64_t child(struct tm_rw *rw, fuse_ino_t dir, const char *name, struct dent **dp)
{
	struct node *d = node_get(rw, dir);
	struct dent *e = d && d->kids ? g_hash_table_lookup(d->kids, name) : NULL;
	if (dp)
		*dp = e;
	if (e)
		return (int64_t)e->node->ino;
	if (!is_base(rw, dir))
		return 0;
	uint32_t ino = tm_index_lookup(idx_of(rw), (uint32_t)(dir - 1), name, strlen(name), NULL);
	if (ino == TM_DAMAGED)
		return -EIO;
	return ino == TM_NONE ? 0 : (int64_t)tm_fuse_ino(ino);
}

/* The path of n's member (its first name), "" for the root; g_free. */
static char *node_path(const struct node *n)
{
	if (!n->names->len)
		return g_strdup("");
	const struct dent *e = n->names->pdata[0];
	char *p = node_path(e->dir);
	char *full = *p ? g_strconcat(p, "/", e->name, NULL) : g_strdup(e->name);
	g_free(p);
	return full;
}

/* The path n's member gets (g_free). */
static char *member_path(const struct tm_rw *rw, const struct node *n, const char *name)
{
	char *p = node_path(n);
	char *full = name ? g_strconcat(rw->prefix, p, *p ? "/" : "", name, NULL)
			  : g_strconcat(rw->prefix, p, NULL);
	g_free(p);
	return full;
}

/* ---- the batches ---- */

static const char *owner_name(struct tm_rw *rw, bool group, uint32_t id)
{
	char key[16];
	snprintf(key, sizeof key, "%c%u", group ? 'g' : 'u', id);
	const char *name = g_hash_table_lookup(rw->names_cache, key);
	if (name)
		return name;
	char buf[4096];
	const char *found = "";
	if (group) {
		struct group gr, *res = NULL;
		if (getgrgid_r(id, &gr, buf, sizeof buf, &res) == 0 && res)
			found = res->gr_name;
	} else {
		struct passwd pw, *res = NULL;
		if (getpwuid_r(id, &pw, buf, sizeof buf, &res) == 0 && res)
			found = res->pw_name;
	}
	char *copy = g_strdup(found);
	g_hash_table_insert(rw->names_cache, g_strdup(key), copy);
	return copy;
}

/* A regular file's bytes as a batch reads them: from its spool, from where this mount
 * appended them, or from the index. */
struct feed {
	struct tm_rw *rw;
	struct node *n;
	uint64_t pos;
};

static ssize_t node_read(struct tm_rw *rw, const struct node *n, void *buf, size_t len,
			 uint64_t off, struct tm_kv_error *err)
{
	if (n->spool) {
		ssize_t r = spool_pread(n->spool, buf, len, off);
		if (r < 0) {
			tm_block_fail(&err->block, TM_BLOCK_IO, (int)-r, "spool: %s", strerror((int)-r));
			err->code = TM_KV_BLOCK;
			return -1;
		}
		return r;
	}
	if (off >= n->size)
		return 0;
	if (len > n->size - off)
		len = (size_t)(n->size - off);
	if (n->data != NOWHERE) {
		if (tm_block_pread(rw->fs->block, buf, len, n->data + off, &err->block) < 0) {
			err->code = TM_KV_BLOCK;
			return -1;
		}
		return (ssize_t)len;
	}
	return tm_kv_read(&rw->fs->kv, n->base, buf, len, off, err);
}

static ssize_t feed_read(void *ud, void *buf, size_t len)
{
	struct feed *f = ud;
	struct tm_kv_error err;
	ssize_t n = node_read(f->rw, f->n, buf, len, f->pos, &err);
	if (n < 0) {
		errno = err.block.sys_errno ? err.block.sys_errno : EIO;
		return -1;
	}
	f->pos += (uint64_t)n;
	return n;
}

struct batch {
	GArray *ms;      /* struct tm_kv_rw_member */
	GPtrArray *strs; /* what the members' strings point to */
	GPtrArray *what; /* per member: the struct dent * it is for (NULL: the root) */
	GPtrArray *of;   /* per member: the struct node * */
	GPtrArray *nodes;
	GPtrArray *feeds;
};

static void batch_init(struct batch *b)
{
	*b = (struct batch){
		.ms = g_array_new(FALSE, TRUE, sizeof(struct tm_kv_rw_member)),
		.strs = g_ptr_array_new_with_free_func(g_free),
		.what = g_ptr_array_new(),
		.of = g_ptr_array_new(),
		.nodes = g_ptr_array_new(),
		.feeds = g_ptr_array_new_with_free_func(g_free),
	};
}

static void batch_free(struct batch *b)
{
	g_array_free(b->ms, TRUE);
	g_ptr_array_free(b->strs, TRUE);
	g_ptr_array_free(b->what, TRUE);
	g_ptr_array_free(b->of, TRUE);
	g_ptr_array_free(b->nodes, TRUE);
	g_ptr_array_free(b->feeds, TRUE);
}

static void batch_member(struct tm_rw *rw, struct batch *b, struct node *n, struct dent *e,
			 const char *path, const char *link_to)
{
	struct tm_kv_rw_member m = { 0 };
	struct tm_tar_desc *d = &m.d;
	d->path = path;
	d->mode = n->mode & 07777;
	d->uid = n->uid, d->gid = n->gid;
	d->uname = n->uname ? n->uname : owner_name(rw, false, n->uid);
	d->gname = n->gname ? n->gname : owner_name(rw, true, n->gid);
	d->mtime = (struct tm_pax_time){ n->mtime, n->mtime_nsec };
	if (link_to) {
		d->type = TM_TAR_HARDLINK;
		d->linkpath = link_to;
	} else if (S_ISDIR(n->mode)) {
		d->type = TM_TAR_DIR;
	} else if (S_ISLNK(n->mode)) {
		d->type = TM_TAR_SYMLINK;
		d->linkpath = n->target;
	} else if (S_ISREG(n->mode)) {
		d->type = TM_TAR_REG;
		d->size = (int64_t)(n->spool ? n->spool->size : n->size);
		struct feed *f = g_new0(struct feed, 1);
		f->rw = rw, f->n = n;
		g_ptr_array_add(b->feeds, f);
		m.src = feed_read, m.ud = f;
	} else if (S_ISFIFO(n->mode)) {
		d->type = TM_TAR_FIFO;
	} else {
		d->type = S_ISCHR(n->mode) ? TM_TAR_CHR : TM_TAR_BLK;
		d->devmajor = n->major, d->devminor = n->minor;
	}
	g_array_append_val(b->ms, m);
	g_ptr_array_add(b->what, e);
	g_ptr_array_add(b->of, n);
}

/* Put n (with the directories above it that are not in the archive yet) in the batch. */
static void batch_node(struct tm_rw *rw, struct batch *b, struct node *n)
{
	if (n->queued)
		return;
	if (n->ino == FUSE_ROOT_ID) { /* its attributes: a "./" member, as tar -C DIR . has */
		n->queued = true;
		g_ptr_array_add(b->nodes, n);
		if (n->dirty)
			batch_member(rw, b, n, NULL, "./", NULL);
		return;
	}
	if (!n->names->len)
		return;
	struct dent *first = n->names->pdata[0];
	struct node *dir = first->dir;
	if (dir->names->len && (dir->dirty || !((struct dent *)dir->names->pdata[0])->members))
		batch_node(rw, b, dir);
	n->queued = true;
	g_ptr_array_add(b->nodes, n);
	char *path = member_path(rw, n, NULL);
	g_ptr_array_add(b->strs, path);
	if (n->dirty)
		batch_member(rw, b, n, first, path, NULL);
	for (guint i = 1; i < n->names->len; i++) {
		struct dent *e = n->names->pdata[i];
		if (!n->dirty && e->members)
			continue;
		char *p = member_path(rw, e->dir, e->name);
		g_ptr_array_add(b->strs, p);
		batch_member(rw, b, n, e, p, path);
	}
}

/* Wait until no batch is being written with n in it (the lock is let go meanwhile: what
 * the caller looked up before may have changed).  Whatever changes a node waits so. */
static bool settle(struct tm_rw *rw, struct node *n)
{
	bool waited = false;
	while (n && n->queued) {
		g_cond_wait(&rw->done, &rw->lock);
		waited = true;
	}
	return waited;
}

/* GNU tar extracting a symlink that points out of the tree (absolute, or with '..') makes an
 * empty file with no permissions in its place, and replaces it when it is done: held back
 * until it changes, or the mount ends, so that the unlink finds it not yet appended. */
static bool placeholder(const struct node *n)
{
	return S_ISREG(n->mode) && !(n->mode & 07777) &&
	       !(n->spool ? n->spool->size : n->size) && n->data == NOWHERE;
}

/* Append what is pending, but files still open for writing other than force (NULL: none;
 * all: every one).  Called and returns under the lock, which is let go while the batch is
 * written: readers go on, and so do changes to nodes not in it (the others settle()).
 * One batch at a time.  0, or -1 with err and nothing appended (all still pending). */
static int commit(struct tm_rw *rw, struct node *force, bool all, struct tm_kv_error *err)
{
	while (rw->committing)
		g_cond_wait(&rw->done, &rw->lock);
	if (!rw->pending->len)
		return 0;
	rw->committing = true;
	GPtrArray *todo = rw->pending;
	rw->pending = g_ptr_array_new();
	for (guint i = 0; i < todo->len; i++)
		((struct node *)todo->pdata[i])->pending = false;
	struct batch b;
	batch_init(&b);
	for (guint i = 0; i < todo->len; i++) {
		struct node *n = todo->pdata[i];
		if ((n->writers || placeholder(n)) && !all && n != force)
			pend(rw, n); /* in the next one */
		else
			batch_node(rw, &b, n); /* nodes no longer in the tree add nothing */
	}
	g_ptr_array_free(todo, TRUE);
	g_mutex_unlock(&rw->lock);
	int rc = tm_kv_rw_append(rw->kv, (struct tm_kv_rw_member *)(void *)b.ms->data, b.ms->len,
				 err);
	g_mutex_lock(&rw->lock);
	for (guint i = 0; rc == 0 && i < b.ms->len; i++) {
		struct tm_kv_rw_member *m = &g_array_index(b.ms, struct tm_kv_rw_member, i);
		struct dent *e = b.what->pdata[i];
		struct node *n = b.of->pdata[i];
		if (e)
			e->members++;
		rw->last_header = m->header_offset;
		if (m->d.type == TM_TAR_HARDLINK)
			continue;
		n->header = m->header_offset;
		if (m->d.type == TM_TAR_REG) {
			char why[TM_TAR_ERRLEN];
			n->data = m->header_offset + tm_tar_member_header_size(&m->d, why);
			n->size = (uint64_t)m->d.size;
		}
	}
	for (guint i = 0; i < b.nodes->len; i++) {
		struct node *n = b.nodes->pdata[i];
		n->queued = false;
		if (rc < 0) {
			pend(rw, n); /* still dirty, or with names to link */
		} else {
			n->dirty = false;
			if (n->spool && !n->writers) {
				spool_free(rw, n->spool);
				n->spool = NULL;
			}
		}
	}
	if (rc == 0)
		rw->failed[0] = 0;
	rw->last_commit = now_us();
	rw->committing = false;
	g_cond_broadcast(&rw->done);
	batch_free(&b);
	return rc;
}

/* A batch the timer made failed: said once per distinct failure. */
static void commit_failed(struct tm_rw *rw, const struct tm_kv_error *err)
{
	char msg[300];
	tm_kv_strerror(err, msg, sizeof msg);
	if (strcmp(msg, rw->failed)) {
		rw->fs->log_error("%s: changes not appended (kept, tried again): %s",
				  rw->fs->block->source, msg);
		snprintf(rw->failed, sizeof rw->failed, "%s", msg);
	}
}

gpointer tm_rw_run(gpointer data)
{
	struct tm_rw *rw = data;
	g_mutex_lock(&rw->lock);
	while (!rw->stop) {
		if (!rw->pending->len) {
			g_cond_wait(&rw->cond, &rw->lock);
			continue;
		}
		int64_t due = rw->pending_since + (int64_t)(rw->o.commit * 1e6);
		/* Spools past their bound: a batch now, but not more than ten a second (a file
		 * still open for writing stays in its spool). */
		if (rw->spool_bytes >= rw->o.spool_max && rw->last_commit + 100000 < due)
			due = rw->last_commit + 100000;
		if (now_us() < due) {
			g_cond_wait_until(&rw->cond, &rw->lock, due);
			continue;
		}
		struct tm_kv_error err;
		if (commit(rw, NULL, false, &err) < 0) {
			commit_failed(rw, &err);
			rw->pending_since = now_us();
		}
	}
	g_mutex_unlock(&rw->lock);
	return NULL;
}

/* ---- the overlay's life ---- */

struct tm_rw *tm_rw_new(struct tm_fs *fs, struct tm_kv_rw *kv, const struct tm_rw_options *o)
{
	struct tm_rw *rw = g_new0(struct tm_rw, 1);
	rw->fs = fs;
	rw->kv = kv;
	rw->o = *o;
	rw->spool_dir = g_strdup(o->spool_dir);
	rw->o.spool_dir = rw->spool_dir;
	g_mutex_init(&rw->lock);
	g_cond_init(&rw->cond);
	g_cond_init(&rw->done);
	rw->nodes = g_hash_table_new(g_int64_hash, g_int64_equal);
	rw->next_ino = (fuse_ino_t)idx_of(rw)->ninodes + 1;
	rw->pending = g_ptr_array_new();
	rw->last_header = NOWHERE;
	rw->names_cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	uint8_t first[TM_TAR_BLOCK];
	struct tm_block_error be;
	rw->prefix = idx_of(rw)->members &&
		tm_block_pread(fs->block, first, sizeof first, 0, &be) == 0 &&
		first[0] == '.' && first[1] == '/' ? "./" : "";
	fs->rw = rw;
	return rw;
}

int tm_rw_finish(struct tm_rw *rw, struct tm_kv_error *err)
{
	g_mutex_lock(&rw->lock);
	rw->stop = true;
	g_cond_broadcast(&rw->cond);
	int rc = commit(rw, NULL, true, err);
	g_mutex_unlock(&rw->lock);
	return rc;
}

static void node_free(gpointer p, gpointer rwp)
{
	struct node *n = p;
	spool_free(rwp, n->spool);
	if (n->kids) { /* every dent is in its directory's kids */
		GHashTableIter it;
		gpointer k, v;
		g_hash_table_iter_init(&it, n->kids);
		while (g_hash_table_iter_next(&it, &k, &v)) {
			g_free(((struct dent *)v)->name);
			g_free(v);
		}
		g_hash_table_destroy(n->kids);
		g_ptr_array_free(n->added, TRUE);
	}
	g_ptr_array_free(n->names, TRUE);
	g_free(n->uname), g_free(n->gname), g_free(n->target);
	g_free(n);
}

void tm_rw_free(struct tm_rw *rw)
{
	if (!rw)
		return;
	GList *all = g_hash_table_get_values(rw->nodes);
	g_list_foreach(all, node_free, rw);
	g_list_free(all);
	g_hash_table_destroy(rw->nodes);
	g_ptr_array_free(rw->pending, TRUE);
	g_hash_table_destroy(rw->names_cache);
	g_free(rw->up);
	g_free(rw->spool_dir);
	g_mutex_clear(&rw->lock);
	g_cond_clear(&rw->cond);
	g_cond_clear(&rw->done);
	g_free(rw);
}

/* ---- the operations ---- */

static struct tm_rw *rw_of(fuse_req_t req)
{
	return tm_fuse_fs(req)->rw;
}

/* The append-only refusal: one log line, EPERM. */
static void refuse(fuse_req_t req, struct tm_rw *rw, const char *op, struct node *dir,
		   const char *name, const char *why)
{
	char *p = node_path(dir);
	rw->fs->log_error("%s: %s %s%s%s: %s; the archive can only grow (only entries made "
			  "since the last append, or the last member, are removed or renamed)",
			  rw->fs->block->source, op, p, *p ? "/" : "", name, why);
	g_free(p);
	fuse_reply_err(req, EPERM);
}

static void reply_entry(fuse_req_t req, struct tm_rw *rw, fuse_ino_t ino)
{
	struct fuse_entry_param e;
	if (!fill_entry(rw, ino, &e))
		fuse_reply_err(req, EIO);
	else
		fuse_reply_entry(req, &e);
}

static void rw_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tm_fs *fs = userdata;
	tm_fuse_ops.init(userdata, conn);
	fs->no_open = false; /* writers need their opens and releases */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Writes gathered in the kernel's page cache and sent in large requests (tar -x
	 * writes 10 KiB at a time: a request each without it); the kernel keeps sizes and
	 * times meanwhile and sends them with SETATTR. */
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE)
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
}

static void rw_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	if (!node_get(rw, parent)) {
		g_mutex_unlock(&rw->lock);
		return tm_fuse_ops.lookup(req, parent, name);
	}
	if (!S_ISDIR(ino_mode(rw, parent))) {
		g_mutex_unlock(&rw->lock);
		return (void)fuse_reply_err(req, ENOTDIR);
	}
	int64_t ino = child(rw, parent, name, NULL);
	if (ino < 0) {
		fuse_reply_err(req, EIO);
	} else if (ino == 0) {
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = rw->fs->timeout };
		fuse_reply_entry(req, &e);
	} else {
		reply_entry(req, rw, (fuse_ino_t)ino);
	}
	g_mutex_unlock(&rw->lock);
}

static void rw_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	struct stat st;
	if (n)
		node_stat(rw, n, &st);
	g_mutex_unlock(&rw->lock);
	if (!n)
		return tm_fuse_ops.getattr(req, ino, fi);
	fuse_reply_attr(req, &st, rw->fs->timeout);
}

static void rw_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	char *t = n && n->target ? g_strdup(n->target) : NULL;
	g_mutex_unlock(&rw->lock);
	if (!n)
		return tm_fuse_ops.readlink(req, ino);
	if (!t)
		return (void)fuse_reply_err(req, EINVAL);
	fuse_reply_readlink(req, t);
	g_free(t);
}

/* A new entry: the parent checked, the name free.  NULL after replying. */
static struct node *make(fuse_req_t req, struct tm_rw *rw, fuse_ino_t parent, const char *name,
			 uint32_t mode)
{
	struct node *dir = node_of(rw, parent);
	if (!dir)
		return fuse_reply_err(req, is_base(rw, parent) ? EIO : ENOENT), NULL;
	if (!S_ISDIR(dir->mode))
		return fuse_reply_err(req, ENOTDIR), NULL;
	if (strlen(name) > 1024)
		return fuse_reply_err(req, ENAMETOOLONG), NULL;
	int64_t there = child(rw, parent, name, NULL);
	if (there != 0)
		return fuse_reply_err(req, there < 0 ? EIO : EEXIST), NULL;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct node *n = node_add(rw, rw->next_ino++, TM_NONE);
	n->mode = mode;
	if (!(mode & S_IFMT))
		n->mode |= S_IFREG;
	n->mode &= S_IFMT | 07777;
	if (ctx) {
		n->mode &= ~(ctx->umask & 0777);
		n->uid = ctx->uid, n->gid = ctx->gid;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	n->mtime = now.tv_sec; /* whole seconds, as tar keeps them by default */
	if (S_ISDIR(n->mode))
		node_dir_init(n);
	dent_add(dir, name, n, false);
	dirty(rw, n);
	return n;
}

static void rw_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct tm_rw *rw = rw_of(req);
	if (S_ISSOCK(mode))
		return (void)fuse_reply_err(req, EPERM); /* tar has no sockets */
	g_mutex_lock(&rw->lock);
	struct node *n = make(req, rw, parent, name, mode);
	if (n) {
		n->major = major(rdev), n->minor = minor(rdev);
		if (S_ISREG(n->mode))
			n->spool = spool_new();
		reply_entry(req, rw, n->ino);
	}
	g_mutex_unlock(&rw->lock);
}

static void rw_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = make(req, rw, parent, name, S_IFDIR | (mode & 07777));
	if (n)
		reply_entry(req, rw, n->ino);
	g_mutex_unlock(&rw->lock);
}

static void rw_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = make(req, rw, parent, name, S_IFLNK | 0777);
	if (n) {
		n->mode = S_IFLNK | 0777; /* symlinks ignore the umask */
		n->target = g_strdup(link);
		reply_entry(req, rw, n->ino);
	}
	g_mutex_unlock(&rw->lock);
}

static void rw_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = make(req, rw, parent, name, S_IFREG | (mode & 07777));
	if (n) {
		n->spool = spool_new();
		n->writers++;
		fi->fh = 1; /* a writer */
		struct fuse_entry_param e;
		fill_entry(rw, n->ino, &e);
		if (fuse_reply_create(req, &e, fi) != 0)
			n->writers--;
	}
	g_mutex_unlock(&rw->lock);
}

/* The dent of name in directory parent, materialised from the index if need be; NULL after
 * replying (ENOENT, EIO). */
static struct dent *dent_of(fuse_req_t req, struct tm_rw *rw, fuse_ino_t parent,
			    const char *name)
{
	struct dent *e;
	int64_t ino = child(rw, parent, name, &e);
	if (ino <= 0)
		return fuse_reply_err(req, ino < 0 ? EIO : ENOENT), NULL;
	if (!e) {
		struct node *n = node_of(rw, (fuse_ino_t)ino);
		struct node *dir = n ? node_get(rw, parent) : NULL;
		e = dir && dir->kids ? g_hash_table_lookup(dir->kids, name) : NULL;
	}
	if (!e)
		fuse_reply_err(req, EIO);
	return e;
}

/* Take e out of its directory and its node's names, and free it. */
static void dent_unlink(struct dent *e)
{
	g_ptr_array_remove(e->node->names, e);
	if (e->slot >= 0)
		e->dir->added->pdata[e->slot] = NULL;
	g_hash_table_remove(e->dir->kids, e->name);
	g_free(e->name);
	g_free(e);
}

/* Take e out of the tree; a node left without names lets go of its bytes once closed (the
 * node stays: the kernel may still ask about it). */
static void dent_drop(struct tm_rw *rw, struct dent *e)
{
	struct node *n = e->node;
	dent_unlink(e);
	if (!n->names->len && n->spool && !n->writers) {
		spool_free(rw, n->spool);
		n->spool = NULL;
		n->size = 0;
	}
}

static bool dir_empty(struct tm_rw *rw, struct node *d)
{
	if (d->base != TM_NONE && tm_index_child_count(idx_of(rw), d->base))
		return false;
	for (guint i = 0; i < d->added->len; i++)
		if (d->added->pdata[i])
			return false;
	return true;
}

/* Whether e's member can be cut off the archive: the last member, appended by this mount,
 * the only one at its path, and the node's only name. */
static bool cuttable(const struct tm_rw *rw, const struct dent *e)
{
	const struct node *n = e->node;
	return e->members == 1 && !e->in_base && n->header != NOWHERE &&
	       n->header == rw->last_header && n->names->len == 1;
}

static void do_remove(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct dent *e;
	do
		e = dent_of(req, rw, parent, name);
	while (e && settle(rw, e->node)); /* e may be gone after a wait: look again */
	if (!e)
		goto out;
	struct node *n = e->node;
	if (dir != S_ISDIR(n->mode)) {
		fuse_reply_err(req, dir ? ENOTDIR : EISDIR);
		goto out;
	}
	if (dir && !dir_empty(rw, n)) {
		fuse_reply_err(req, ENOTEMPTY);
		goto out;
	}
	if (e->members) {
		struct tm_kv_error err;
		if (!cuttable(rw, e)) {
			refuse(req, rw, dir ? "rmdir" : "unlink", e->dir, name,
			       e->in_base ? "it is in the archive" : "it is in the archive, "
			       "with members after it");
			goto out;
		}
		if (tm_kv_rw_cut(rw->kv, n->header, &err) < 0) {
			char msg[300];
			rw->fs->log_error("%s: %s", rw->fs->block->source,
					  tm_kv_strerror(&err, msg, sizeof msg));
			fuse_reply_err(req, tm_fuse_errno(&err));
			goto out;
		}
		rw->last_header = NOWHERE;
		n->header = n->data = NOWHERE;
	}
	dent_drop(rw, e);
	fuse_reply_err(req, 0);
out:
	g_mutex_unlock(&rw->lock);
}

static void rw_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, false);
}

static void rw_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_remove(req, parent, name, true);
}

/* Rename the last member in place: its header written again under the new path. */
static int rename_in_place(struct tm_rw *rw, struct dent *e, const char *to,
			   struct tm_kv_error *err)
{
	struct node *n = e->node;
	struct batch b;
	batch_init(&b);
	char *from = member_path(rw, n, NULL);
	batch_member(rw, &b, n, e, from, NULL);
	struct tm_kv_rw_member *m = &g_array_index(b.ms, struct tm_kv_rw_member, 0);
	int rc = tm_kv_rw_rename_header(rw->kv, n->header, &m->d, to, err);
	g_free(from);
	batch_free(&b);
	return rc;
}

static void rw_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct tm_rw *rw = rw_of(req);
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return (void)fuse_reply_err(req, EINVAL);
	g_mutex_lock(&rw->lock);
	/* Both names' nodes may be in the batch being written: wait for it (renames are rarer
	 * than writes). */
	while (rw->committing)
		g_cond_wait(&rw->done, &rw->lock);
	struct dent *e = dent_of(req, rw, parent, name), *d = NULL;
	struct node *to = e ? node_of(rw, newparent) : NULL;
	if (!e)
		goto out;
	if (!to || !S_ISDIR(to->mode)) {
		fuse_reply_err(req, !to ? ENOENT : ENOTDIR);
		goto out;
	}
	int64_t there = child(rw, newparent, newname, NULL);
	if (there < 0) {
		fuse_reply_err(req, EIO);
		goto out;
	}
	if (there == (int64_t)e->node->ino) { /* the same file: nothing to do */
		fuse_reply_err(req, 0);
		goto out;
	}
	struct node *n = e->node;
	if (there) {
		if (flags & RENAME_NOREPLACE) {
			fuse_reply_err(req, EEXIST);
			goto out;
		}
		if (!(d = dent_of(req, rw, newparent, newname)))
			goto out;
		if (S_ISDIR(d->node->mode) != S_ISDIR(n->mode)) {
			fuse_reply_err(req, S_ISDIR(n->mode) ? ENOTDIR : EISDIR);
			goto out;
		}
		if (S_ISDIR(d->node->mode) && !dir_empty(rw, d->node)) {
			fuse_reply_err(req, ENOTEMPTY);
			goto out;
		}
		if (S_ISDIR(d->node->mode) && d->members) {
			refuse(req, rw, "rename over", to, newname, "that directory is in the "
			       "archive");
			goto out;
		}
	}
	/* A directory may not go below itself. */
	for (struct node *a = to; a->names->len; a = ((struct dent *)a->names->pdata[0])->dir)
		if (a == n) {
			fuse_reply_err(req, EINVAL);
			goto out;
		}
	bool in_place = false;
	if (e->members) {
		/* In place, the header must say what the member holds: not changed since. */
		if (S_ISDIR(n->mode) || !cuttable(rw, e) || n->dirty) {
			refuse(req, rw, "rename", e->dir, name, S_ISDIR(n->mode)
			       ? "a directory in the archive is named by its members"
			       : n->dirty && cuttable(rw, e) ? "it changed since it was appended"
			       : "it is in the archive, and not as its last member");
			goto out;
		}
		char *path = member_path(rw, to, newname);
		struct tm_kv_error err;
		int rc = rename_in_place(rw, e, path, &err);
		g_free(path);
		if (rc < 0) {
			if (err.code == TM_KV_APPEND_ONLY || err.code == TM_KV_INVALID) {
				refuse(req, rw, "rename", e->dir, name, err.detail);
			} else {
				char msg[300];
				rw->fs->log_error("%s: %s", rw->fs->block->source,
						  tm_kv_strerror(&err, msg, sizeof msg));
				fuse_reply_err(req, tm_fuse_errno(&err));
			}
			goto out;
		}
		in_place = true;
	}
	/* The name it replaces keeps its members (the new one shadows them, as on
	 * extraction); names of the index's never leave it (removing them is refused). */
	unsigned members = d ? d->members : 0;
	bool in_base = d ? d->in_base : false;
	if (d)
		dent_drop(rw, d);
	dent_unlink(e);
	struct dent *ne = dent_add(to, newname, n, false);
	if (in_base) { /* dent_add put it in added: the index lists it already */
		to->added->pdata[ne->slot] = NULL;
		ne->slot = -1;
		ne->in_base = true;
	}
	ne->members = members + (in_place ? 1 : 0);
	/* It is now the first name (the member); its old name's member, if any, is gone. */
	g_ptr_array_remove(n->names, ne);
	g_ptr_array_insert(n->names, 0, ne);
	if (!in_place)
		dirty(rw, n); /* appended under its new name in the next batch */
	fuse_reply_err(req, 0);
out:
	g_mutex_unlock(&rw->lock);
}

static void rw_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_of(rw, ino), *dir = node_of(rw, newparent);
	if (!n || !dir) {
		fuse_reply_err(req, ENOENT);
		goto out;
	}
	if (S_ISDIR(n->mode)) {
		fuse_reply_err(req, EPERM);
		goto out;
	}
	if (!S_ISDIR(dir->mode)) {
		fuse_reply_err(req, ENOTDIR);
		goto out;
	}
	int64_t there = child(rw, newparent, newname, NULL);
	if (there) {
		fuse_reply_err(req, there < 0 ? EIO : EEXIST);
		goto out;
	}
	if (!n->names->len) {
		fuse_reply_err(req, ENOENT);
		goto out;
	}
	dent_add(dir, newname, n, false);
	pend(rw, n);
	reply_entry(req, rw, n->ino);
out:
	g_mutex_unlock(&rw->lock);
}

/* n's bytes moved to a spool of size bytes (at most what it has), for writing. */
static int cow(struct tm_rw *rw, struct node *n, uint64_t size)
{
	if (n->spool)
		return 0;
	struct spool *s = spool_new();
	uint64_t have = n->size < size ? n->size : size;
	uint8_t *buf = g_malloc(COPY_CHUNK);
	int rc = 0;
	for (uint64_t off = 0; rc == 0 && off < have;) {
		size_t want = have - off < COPY_CHUNK ? (size_t)(have - off) : COPY_CHUNK;
		struct tm_kv_error err;
		ssize_t got = node_read(rw, n, buf, want, off, &err);
		if (got <= 0) {
			rc = -EIO;
			break;
		}
		ssize_t w = spool_pwrite(rw, s, buf, (size_t)got, off);
		if (w < 0)
			rc = (int)w;
		off += (uint64_t)got;
	}
	g_free(buf);
	if (rc == 0 && s->size < have)
		rc = spool_resize(rw, s, have);
	if (rc < 0) {
		spool_free(rw, s);
		return rc;
	}
	n->spool = s;
	return 0;
}

static void touch_now(struct node *n)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	n->mtime = now.tv_sec, n->mtime_nsec = 0;
}

static void rw_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	(void)fi;
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_of(rw, ino);
	if (!n) {
		fuse_reply_err(req, is_base(rw, ino) ? EIO : ENOENT);
		goto out;
	}
	settle(rw, n);
	if ((to_set & FUSE_SET_ATTR_SIZE) && !S_ISREG(n->mode)) {
		fuse_reply_err(req, S_ISDIR(n->mode) ? EISDIR : EINVAL);
		goto out;
	}
	bool changed = false;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int rc = cow(rw, n, (uint64_t)attr->st_size);
		if (rc == 0)
			rc = spool_resize(rw, n->spool, (uint64_t)attr->st_size);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			goto out;
		}
		touch_now(n);
		changed = true;
	}
	/* Only what differs makes a new member (the kernel sends the times it keeps for
	 * written files again and again). */
	uint32_t mode = (n->mode & S_IFMT) | (attr->st_mode & 07777);
	if ((to_set & FUSE_SET_ATTR_MODE) && mode != n->mode)
		n->mode = mode, changed = true;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != n->uid) {
		n->uid = attr->st_uid, changed = true;
		g_clear_pointer(&n->uname, g_free);
	}
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != n->gid) {
		n->gid = attr->st_gid, changed = true;
		g_clear_pointer(&n->gname, g_free);
	}
	int64_t sec = n->mtime;
	uint32_t nsec = n->mtime_nsec;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		touch_now(n);
	else if (to_set & FUSE_SET_ATTR_MTIME)
		n->mtime = attr->st_mtim.tv_sec, n->mtime_nsec = (uint32_t)attr->st_mtim.tv_nsec;
	changed |= n->mtime != sec || n->mtime_nsec != nsec;
	/* atime and ctime: tar keeps neither by default. */
	if (changed)
		dirty(rw, n);
	struct stat st;
	node_stat(rw, n, &st);
	fuse_reply_attr(req, &st, rw->fs->timeout);
out:
	g_mutex_unlock(&rw->lock);
}

static void rw_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	bool writer = (fi->flags & O_ACCMODE) != O_RDONLY;
	g_mutex_lock(&rw->lock);
	struct node *n = writer || (fi->flags & O_TRUNC) ? node_of(rw, ino) : node_get(rw, ino);
	if (!n && !writer && !(fi->flags & O_TRUNC)) {
		g_mutex_unlock(&rw->lock);
		return tm_fuse_ops.open(req, ino, fi);
	}
	if (!n) {
		fuse_reply_err(req, is_base(rw, ino) ? EIO : ENOENT);
		goto out;
	}
	if (S_ISDIR(n->mode)) {
		fuse_reply_err(req, EISDIR);
		goto out;
	}
	settle(rw, n);
	if (writer || (fi->flags & O_TRUNC)) {
		uint64_t keep = fi->flags & O_TRUNC ? 0 : UINT64_MAX;
		int rc = cow(rw, n, keep);
		if (rc == 0 && keep == 0 && n->spool->size)
			rc = spool_resize(rw, n->spool, 0);
		if (rc < 0) {
			fuse_reply_err(req, -rc);
			goto out;
		}
		if (keep == 0) {
			touch_now(n);
			dirty(rw, n);
		}
	}
	if (writer)
		n->writers++;
	fi->fh = writer;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) != 0 && writer)
		n->writers--;
out:
	g_mutex_unlock(&rw->lock);
}

static void rw_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	if (!n || (!n->spool && n->data == NOWHERE && n->base != TM_NONE)) {
		g_mutex_unlock(&rw->lock);
		return tm_fuse_ops.read(req, ino, size, off, fi);
	}
	if (!S_ISREG(n->mode)) {
		g_mutex_unlock(&rw->lock);
		return (void)fuse_reply_err(req, EINVAL);
	}
	char *buf = g_try_malloc(size ? size : 1);
	struct tm_kv_error err;
	ssize_t got = buf ? node_read(rw, n, buf, size, (uint64_t)(off < 0 ? 0 : off), &err) : -1;
	g_mutex_unlock(&rw->lock);
	if (!buf)
		fuse_reply_err(req, ENOMEM);
	else if (got < 0)
		fuse_reply_err(req, tm_fuse_errno(&err));
	else
		fuse_reply_buf(req, buf, (size_t)got);
	g_free(buf);
}

static void rw_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	settle(rw, n);
	if (!n || !n->spool || off < 0) {
		fuse_reply_err(req, !n || !n->spool ? EBADF : EINVAL);
		goto out;
	}
	ssize_t w = spool_pwrite(rw, n->spool, buf, size, (uint64_t)off);
	if (w < 0) {
		fuse_reply_err(req, (int)-w);
		goto out;
	}
	touch_now(n);
	dirty(rw, n);
	fuse_reply_write(req, (size_t)w);
out:
	g_mutex_unlock(&rw->lock);
}

static void rw_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	if (fi->fh) {
		g_mutex_lock(&rw->lock);
		struct node *n = node_get(rw, ino);
		settle(rw, n);
		if (n && n->writers && !--n->writers) {
			if (!n->names->len && n->spool) { /* removed while open */
				spool_free(rw, n->spool);
				n->spool = NULL;
			}
		}
		g_mutex_unlock(&rw->lock);
	}
	fuse_reply_err(req, 0);
}

static void do_fsync(fuse_req_t req, fuse_ino_t ino)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct tm_kv_error err;
	int rc = commit(rw, node_get(rw, ino), false, &err);
	g_mutex_unlock(&rw->lock);
	if (rc < 0) {
		char msg[300];
		rw->fs->log_error("%s: fsync: changes not appended: %s", rw->fs->block->source,
				  tm_kv_strerror(&err, msg, sizeof msg));
	}
	fuse_reply_err(req, rc < 0 ? tm_fuse_errno(&err) : 0);
}

static void rw_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	do_fsync(req, ino);
}

static void rw_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)datasync, (void)fi;
	do_fsync(req, ino);
}

/* Nothing to do at each close (the kernel has sent the written pages by then): ENOSYS
 * makes it stop asking, a round trip less per file written. */
static void rw_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino, (void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void rw_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	uint32_t mode = ino_mode(rw, ino);
	g_mutex_unlock(&rw->lock);
	if (!mode)
		return (void)fuse_reply_err(req, ENOENT);
	if (!S_ISDIR(mode))
		return (void)fuse_reply_err(req, ENOTDIR);
	fuse_reply_open(req, fi); /* no cache_readdir: listings change */
}

/* Directory offsets: 1 after ".", 2 after "..", 2 + k after the index's child k, then
 * 2 + count + j after the overlay's added name j. */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *d = node_get(rw, ino);
	if (!d) {
		g_mutex_unlock(&rw->lock);
		if (plus)
			return tm_fuse_ops.readdirplus(req, ino, size, off, NULL);
		return tm_fuse_ops.readdir(req, ino, size, off, NULL);
	}
	if (!S_ISDIR(d->mode)) {
		g_mutex_unlock(&rw->lock);
		return (void)fuse_reply_err(req, ENOTDIR);
	}
	const struct tm_index *idx = idx_of(rw);
	uint32_t nb = d->base != TM_NONE ? tm_index_child_count(idx, d->base) : 0;
	off_t total = 2 + (off_t)nb + (off_t)d->added->len;
	char *buf = g_malloc(size);
	size_t used = 0;
	bool damaged = false;
	for (off_t k = off; k < total; k++) {
		const char *name;
		fuse_ino_t c;
		if (k < 2) {
			name = k == 0 ? "." : "..";
			c = ino;
		} else if (k < 2 + (off_t)nb) {
			const struct tm_dentry *de = tm_index_child(idx, d->base, (uint32_t)(k - 2));
			name = de ? tm_index_string(idx, de->name) : NULL;
			if (!name) {
				damaged = true;
				break;
			}
			/* The index's names stay (removing them is refused); the overlay may
			 * have put another entry under one. */
			struct dent *e = g_hash_table_lookup(d->kids, name);
			c = e ? e->node->ino : tm_fuse_ino(de->inode);
			if (strlen(name) > 1024)
				continue;
		} else {
			struct dent *e = d->added->pdata[k - 2 - nb];
			if (!e)
				continue;
			name = e->name, c = e->node->ino;
		}
		size_t len;
		struct fuse_entry_param e;
		if (!fill_entry(rw, c, &e)) {
			damaged = true;
			break;
		}
		if (plus) {
			if (k < 2)
				e.entry_timeout = 0;
			len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e, k + 1);
		} else {
			len = fuse_add_direntry(req, buf + used, size - used, name, &e.attr, k + 1);
		}
		if (len > size - used)
			break;
		used += len;
	}
	g_mutex_unlock(&rw->lock);
	if (damaged && used == 0)
		fuse_reply_err(req, EIO);
	else
		fuse_reply_buf(req, buf, used);
	g_free(buf);
}

static void rw_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void rw_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

static void rw_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct tm_rw *rw = rw_of(req);
	struct tm_fs *fs = rw->fs;
	struct tm_block_info info;
	tm_block_get_info(fs->block, &info);
	uint64_t end = tm_kv_rw_end(rw->kv), size = tm_block_size_bytes(fs->block);
	uint64_t avail = size > end + TM_TAR_END_SIZE ? size - end - TM_TAR_END_SIZE : 0, total = size;
	int fd;
	uint64_t base;
	struct statvfs sv;
	if (info.growable && tm_block_get_fd(fs->block, &fd, &base) && fstatvfs(fd, &sv) == 0) {
		avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		total = end + avail;
	}
	struct statvfs out = {
		.f_bsize = 512,
		.f_frsize = 512,
		.f_blocks = total / 512,
		.f_bfree = avail / 512,
		.f_bavail = avail / 512,
		.f_files = idx_of(rw)->ninodes,
		.f_namemax = 1024,
	};
	fuse_reply_statfs(req, &out);
}

static void rw_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	bool ours = n && n->base == TM_NONE;
	g_mutex_unlock(&rw->lock);
	if (ours) /* entries made here have none */
		return (void)fuse_reply_err(req, rw->fs->has_xattrs ? ENODATA : ENOSYS);
	tm_fuse_ops.getxattr(req, ino, name, size);
}

static void rw_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tm_rw *rw = rw_of(req);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	bool ours = n && n->base == TM_NONE;
	g_mutex_unlock(&rw->lock);
	if (!ours)
		return tm_fuse_ops.listxattr(req, ino, size);
	if (!rw->fs->has_xattrs)
		return (void)fuse_reply_err(req, ENOSYS);
	if (size == 0)
		return (void)fuse_reply_xattr(req, 0);
	fuse_reply_buf(req, NULL, 0);
}

/* Setting xattrs is not supported: ENOSYS, and the kernel answers EOPNOTSUPP itself from
 * then on (cp -a tries once per file). */
static void rw_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, ENOSYS);
}

static void rw_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, ENOSYS);
}

static void rw_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)fi;
	struct tm_rw *rw = rw_of(req);
	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	g_mutex_lock(&rw->lock);
	struct node *n = node_get(rw, ino);
	settle(rw, n);
	int rc = 0;
	if (!n || !n->spool)
		rc = EBADF;
	else if (!(mode & FALLOC_FL_KEEP_SIZE) && (uint64_t)(off + len) > n->spool->size &&
		 !(rc = -spool_resize(rw, n->spool, (uint64_t)(off + len))))
		dirty(rw, n);
	g_mutex_unlock(&rw->lock);
	fuse_reply_err(req, rc);
}

const struct fuse_lowlevel_ops tm_fuse_rw_ops = {
	.init = rw_init,
	.lookup = rw_lookup,
	.getattr = rw_getattr,
	.setattr = rw_setattr,
	.readlink = rw_readlink,
	.mknod = rw_mknod,
	.mkdir = rw_mkdir,
	.unlink = rw_unlink,
	.rmdir = rw_rmdir,
	.symlink = rw_symlink,
	.rename = rw_rename,
	.link = rw_link,
	.open = rw_open,
	.read = rw_read,
	.write = rw_write,
	.flush = rw_flush,
	.release = rw_release,
	.fsync = rw_fsync,
	.opendir = rw_opendir,
	.readdir = rw_readdir,
	.readdirplus = rw_readdirplus,
	.fsyncdir = rw_fsyncdir,
	.statfs = rw_statfs,
	.getxattr = rw_getxattr,
	.listxattr = rw_listxattr,
	.setxattr = rw_setxattr,
	.removexattr = rw_removexattr,
	.create = rw_create,
	.fallocate = rw_fallocate,
};
