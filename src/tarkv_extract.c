/* tarkv extract: write a subtree of the archive to disk the way GNU tar extraction would,
 * with modes, owners (when run as root), times, links, devices and xattrs. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <glib.h>

#include "tarkv.h"

struct extract {
	struct tarkv *t;
	int destfd;
	bool root;            /* restore owners and device nodes */
	GHashTable *linked;   /* inode -> first extracted path, for hard links */
	GArray *dirs;         /* directories whose metadata waits for their contents */
	int status;
};

struct pending_dir {
	uint32_t ino;
	char *path;
};

static void fail(struct extract *x, const char *path, const char *what)
{
	tarkv_error(x->t, path, "%s: %s", what, strerror(errno));
	x->status = TARKV_USAGE;
}

static void set_times(struct extract *x, const char *path, const struct tm_inode *in)
{
	struct timespec ts[2] = { { in->mtime, in->mtime_nsec }, { in->mtime, in->mtime_nsec } };
	if (utimensat(x->destfd, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
		fail(x, path, "setting times");
}

/* Owner, then mode (chown clears set-id bits), xattrs and times. */
static void set_meta(struct extract *x, const char *path, uint32_t ino)
{
	const struct tm_inode *in = tm_index_inode(x->t->index, ino);
	if (x->root && fchownat(x->destfd, path, in->uid, in->gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail(x, path, "setting owner");
	if (!S_ISLNK(in->mode) && fchmodat(x->destfd, path, in->mode & 07777, 0) < 0)
		fail(x, path, "setting mode");
	uint32_t cur = 0, vlen;
	const char *name;
	const void *value;
	while (tm_index_xattr_next(x->t->index, ino, &cur, &name, &value, &vlen) > 0) {
		char *full = g_strdup_printf("/proc/self/fd/%d/%s", x->destfd, path);
		if (lsetxattr(full, name, value, vlen, 0) < 0)
			tarkv_warning(x->t, path, "setting xattr %s: %s", name, strerror(errno));
		g_free(full);
	}
	set_times(x, path, in);
}

static void write_file(struct extract *x, const char *path, uint32_t ino)
{
	const struct tm_inode *in = tm_index_inode(x->t->index, ino);
	int fd = openat(x->destfd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(x, path, "creating");
	enum { CHUNK = 1 << 20 };
	uint8_t *buf = g_malloc(CHUNK);
	const struct tm_index_sparse *map;
	(void)tm_index_sparse_map(x->t->index, ino, &map); /* damage ends the run (tarkv.c) */
	struct tm_kv_error err;
	/* A sparse file is written chunk by chunk so that its holes stay holes. */
	uint64_t nchunks = map ? map->count : 1;
	for (uint64_t c = 0; c < nchunks && x->status == TARKV_OK; c++) {
		uint64_t off = map ? map->chunk[c].offset : 0;
		uint64_t end = map ? off + map->chunk[c].length : in->size;
		while (off < end) {
			size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
			ssize_t n = tm_kv_read(&x->t->kv, ino, buf, want, off, &err);
			if (n <= 0) {
				x->status = n < 0 ? tarkv_kv_failed(x->t, path, &err) : TARKV_USAGE;
				break;
			}
			if (pwrite(fd, buf, (size_t)n, (off_t)off) != n) {
				fail(x, path, "writing");
				break;
			}
			off += (uint64_t)n;
		}
	}
	if (ftruncate(fd, (off_t)in->size) < 0)
		fail(x, path, "setting size");
	g_free(buf);
	close(fd);
}

static void extract_one(struct extract *x, uint32_t ino, const char *path)
{
	const struct tm_inode *in = tm_index_inode(x->t->index, ino);
	/* tar replaces what is in the way, except a directory it can merge into. */
	struct stat st;
	if (fstatat(x->destfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    !(S_ISDIR(st.st_mode) && S_ISDIR(in->mode)))
		unlinkat(x->destfd, path, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);

	const char *first = in->nlink > 1 && !S_ISDIR(in->mode)
				    ? g_hash_table_lookup(x->linked, GUINT_TO_POINTER(ino + 1))
				    : NULL;
	if (first) {
		if (linkat(x->destfd, first, x->destfd, path, 0) < 0)
			fail(x, path, "making hard link");
		return;
	}
	switch (in->mode & S_IFMT) {
	case S_IFDIR: {
		if (mkdirat(x->destfd, path, 0700) < 0 && errno != EEXIST)
			return fail(x, path, "making directory");
		struct pending_dir d = { ino, g_strdup(path) };
		g_array_append_val(x->dirs, d);
		return;
	}
	case S_IFLNK:
		if (symlinkat(tm_index_string(x->t->index, in->a), x->destfd, path) < 0)
			return fail(x, path, "making symlink");
		break;
	case S_IFCHR:
	case S_IFBLK:
	case S_IFIFO:
		if (mknodat(x->destfd, path, in->mode & (S_IFMT | 07777),
			    S_ISFIFO(in->mode) ? 0 : makedev(in->a, in->b)) < 0)
			return fail(x, path, "making special file");
		break;
	default:
		write_file(x, path, ino);
		break;
	}
	if (in->nlink > 1)
		g_hash_table_insert(x->linked, GUINT_TO_POINTER(ino + 1), g_strdup(path));
	set_meta(x, path, ino);
}

static void extract_visit(struct tarkv *t, uint32_t ino, const char *path, const char *rel,
			  void *ud)
{
	struct extract *x = ud;
	(void)t, (void)rel;
	if (x->status == TARKV_OK)
		extract_one(x, ino, path);
}

static void extract_tree(struct extract *x, uint32_t dir, GString *path)
{
	tarkv_walk(x->t, dir, path, 0, extract_visit, x);
}

/* Make the missing parents of path (which the walk does not visit) as tar does for a
 * member named on its command line: plain directories, not the archive's metadata. */
static void make_parents(struct extract *x, const char *path)
{
	char *copy = g_strdup(path);
	for (char *s = strchr(copy, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdirat(x->destfd, copy, 0755) < 0 && errno != EEXIST)
			fail(x, copy, "making directory");
		*s = '/';
	}
	g_free(copy);
}

int tarkv_extract(struct tarkv *t, const char *key, const char *dest)
{
	struct extract x = { .t = t, .root = geteuid() == 0 };
	char *path = g_malloc(strlen(key) + 1);
	uint32_t ino = tm_index_normalize(key, path) ? tm_index_resolve(t->index, path) : TM_NONE;
	if (ino == TM_NONE) {
		tarkv_error(t, key, "not found");
		g_free(path);
		return TARKV_FALSE;
	}
	x.destfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (x.destfd < 0) {
		tarkv_error(t, NULL, "%s: %s", dest, strerror(errno));
		g_free(path);
		return TARKV_USAGE;
	}
	x.linked = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
	x.dirs = g_array_new(FALSE, FALSE, sizeof(struct pending_dir));
	umask(0);
	GString *p = g_string_new(path);
	if (ino == TM_ROOT) {
		extract_tree(&x, ino, p);
	} else {
		make_parents(&x, path);
		extract_one(&x, ino, path);
		if (S_ISDIR(tm_index_inode(t->index, ino)->mode))
			extract_tree(&x, ino, p);
	}
	/* Directory metadata last, deepest first, so that writing into them does not undo
	 * their times or trip over their modes. */
	for (guint i = x.dirs->len; i-- > 0;) {
		struct pending_dir *d = &g_array_index(x.dirs, struct pending_dir, i);
		if (x.status == TARKV_OK)
			set_meta(&x, d->path, d->ino);
		g_free(d->path);
	}
	g_array_unref(x.dirs);
	g_hash_table_destroy(x.linked);
	g_string_free(p, TRUE);
	g_free(path);
	close(x.destfd);
	return x.status;
}
