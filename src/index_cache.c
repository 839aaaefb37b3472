/* The index cache's cap and its pruner (see index_cache.h for who may remove what). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "index.h"
#include "index_cache.h"

#define ID_LEN 64

bool tm_index_cache_parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return false;
	uint64_t n = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	unsigned shift = 0;
	const char *units = "KMGT";
	const char *u = *s ? strchr(units, g_ascii_toupper(*s)) : NULL;
	if (u) {
		shift = 10 * (unsigned)(u - units + 1);
		s++;
		if (!g_ascii_strcasecmp(s, "iB") || !g_ascii_strcasecmp(s, "B"))
			s += strlen(s);
	}
	if (*s || (shift && n > UINT64_MAX >> shift))
		return false;
	*out = n << shift;
	return true;
}

char *tm_index_cache_dir(void)
{
	return g_build_filename(g_get_user_cache_dir(), "tarmount", NULL);
}

/* The default cap, from the size of the filesystem the cache is (or will be) on. */
static uint64_t default_max(void)
{
	char *dir = tm_index_cache_dir();
	struct statvfs vfs;
	uint64_t max = TM_INDEX_CACHE_DEFAULT_MAX;
	/* The nearest directory that exists: the cache may not have been made yet. */
	while (statvfs(dir, &vfs) < 0 && strcmp(dir, "/") && strcmp(dir, ".")) {
		char *up = g_path_get_dirname(dir);
		g_free(dir);
		dir = up;
	}
	if (statvfs(dir, &vfs) == 0 && vfs.f_blocks > 0) {
		uint64_t fs = (uint64_t)vfs.f_blocks * vfs.f_frsize;
		max = MIN(max, fs / TM_INDEX_CACHE_DEFAULT_FRACTION);
	}
	g_free(dir);
	return max;
}

bool tm_index_cache_max(const char *given, uint64_t *max, char *why, size_t why_len)
{
	const char *env = getenv(TM_INDEX_CACHE_ENV);
	if (!given && (!env || !*env)) {
		*max = default_max();
		return true;
	}
	if (tm_index_cache_parse_size(given ? given : env, max))
		return true;
	snprintf(why, why_len, "%s%s: not a size (digits with an optional K, M, G or T)",
		 given ? "" : TM_INDEX_CACHE_ENV "=", given ? given : env);
	return false;
}

int tm_index_cache_hold(const char *path)
{
	/* Each round: the file we locked may have been removed (or replaced by a new save)
	 * while we waited; the name then leads elsewhere and we lock again. */
	for (int round = 0; round < 8; round++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return -1;
		int r;
		while ((r = flock(fd, LOCK_SH)) < 0 && errno == EINTR)
			;
		if (r < 0 && (errno == ENOLCK || errno == EOPNOTSUPP))
			return fd; /* a filesystem without locks: used unheld */
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		struct stat held, named;
		if (fstat(fd, &held) == 0 && stat(path, &named) == 0 &&
		    held.st_dev == named.st_dev && held.st_ino == named.st_ino)
			return fd;
		close(fd);
	}
	errno = EAGAIN;
	return -1;
}

bool tm_index_cache_drop(const char *path, int fd)
{
	struct stat held, named;
	if (fstat(fd, &held) < 0 || stat(path, &named) < 0)
		return false;
	if (held.st_dev != named.st_dev || held.st_ino != named.st_ino) {
		errno = ESTALE;
		return false;
	}
	return unlink(path) == 0;
}

void tm_index_cache_touch(int fd)
{
	(void)futimens(fd, NULL);
}

/* ---- pruning ---- */

static bool hex_id(const char *s)
{
	for (int i = 0; i < ID_LEN; i++)
		if (!g_ascii_isxdigit(s[i]))
			return false;
	return true;
}

/* "<64 hex>.idx" */
static bool index_name(const char *n)
{
	return strlen(n) == ID_LEN + 4 && hex_id(n) && !strcmp(n + ID_LEN, ".idx");
}

/* ".<64 hex>.XXXXXX", as tm_index_save's mkstemp makes them */
static bool temp_name(const char *n)
{
	if (strlen(n) != 1 + ID_LEN + 7 || n[0] != '.' || !hex_id(n + 1) || n[1 + ID_LEN] != '.')
		return false;
	for (const char *p = n + ID_LEN + 2; *p; p++)
		if (!g_ascii_isalnum(*p))
			return false;
	return true;
}

/* A file that goes with an index: "<64 hex>.seekable.zst", the seekable copy (decomp.h)
 * kept beside "<64 hex>.idx".  It is counted with its index, removed with it, and removed
 * alone when its index is gone and it is older than a temporary file may be. */
#define COMPANION ".seekable.zst"

static bool companion_name(const char *n)
{
	return strlen(n) == ID_LEN + strlen(COMPANION) && hex_id(n) &&
	       !strcmp(n + ID_LEN, COMPANION);
}

static char *companion_of(const char *index)
{
	return g_strdup_printf("%.*s%s", ID_LEN, index, COMPANION);
}

struct entry {
	char *name;
	uint64_t size;       /* with its companion's */
	struct timespec used;
	dev_t dev;
	ino_t ino;
	bool gone; /* its source path no longer exists */
};

/* The order of removal: gone sources first, then the least recently used. */
static int by_removal(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	if (a->gone != b->gone)
		return a->gone ? -1 : 1;
	if (a->used.tv_sec != b->used.tv_sec)
		return a->used.tv_sec < b->used.tv_sec ? -1 : 1;
	if (a->used.tv_nsec != b->used.tv_nsec)
		return a->used.tv_nsec < b->used.tv_nsec ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int open_entry(int dirfd, const char *name)
{
	return openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
}

/* dirfd's name is an index file of ours: fill e (name set by the caller). */
static bool read_entry(int dirfd, struct entry *e)
{
	int fd = open_entry(dirfd, e->name);
	if (fd < 0)
		return false;
	struct stat st;
	struct tm_index_peek peek;
	bool ours = fstat(fd, &st) == 0 && tm_index_peek_fd(fd, &peek);
	close(fd);
	if (!ours)
		return false;
	e->size = (uint64_t)st.st_size;
	e->used = st.st_mtim;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	char *comp = companion_of(e->name);
	if (fstatat(dirfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		e->size += (uint64_t)st.st_size;
	g_free(comp);
	/* Only a definite "no such file": not a source we may not read, or one on a disk
	 * that fails. */
	struct stat src;
	e->gone = peek.source && stat(peek.source, &src) < 0 &&
		  (errno == ENOENT || errno == ENOTDIR);
	g_free(peek.source);
	return true;
}

enum removal { REMOVED, BUSY, KEPT };

/* Remove e if it is still the file we looked at and nobody holds it. */
static enum removal remove_entry(int dirfd, const struct entry *e)
{
	int fd = open_entry(dirfd, e->name);
	if (fd < 0)
		return errno == ENOENT ? REMOVED : KEPT; /* ENOENT: someone else removed it */
	struct stat st;
	enum removal r = KEPT;
	if (fstat(fd, &st) < 0 || st.st_dev != e->dev || st.st_ino != e->ino)
		goto out; /* replaced by a newer save since */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? BUSY : KEPT;
		goto out;
	}
	/* Still under that name once locked (a holder checks the same after locking). */
	if (fstatat(dirfd, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == e->dev &&
	    st.st_ino == e->ino && unlinkat(dirfd, e->name, 0) == 0) {
		char *comp = companion_of(e->name);
		unlinkat(dirfd, comp, 0);
		g_free(comp);
		r = REMOVED;
	}
out:
	close(fd);
	return r;
}

static bool stale_temp(int dirfd, const char *name, time_t now)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       st.st_mtim.tv_sec + TM_INDEX_CACHE_TEMP_AGE < now;
}

/* A companion whose index is gone, old enough not to be one whose index is being saved. */
static bool orphan(int dirfd, const char *name, time_t now)
{
	char *index = g_strdup_printf("%.*s.idx", ID_LEN, name);
	struct stat st;
	bool alone = fstatat(dirfd, index, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
	g_free(index);
	return alone && stale_temp(dirfd, name, now);
}

bool tm_index_cache_prune(const char *dir, uint64_t max, struct tm_index_cache_report *r,
			  char *why, size_t why_len)
{
	struct tm_index_cache_report local;
	if (!r)
		r = &local;
	memset(r, 0, sizeof *r);
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(why, why_len, "%s: %s", dir, strerror(errno));
		return false;
	}
	int dfd = dirfd(d);
	time_t now = time(NULL);
	GArray *all = g_array_new(FALSE, FALSE, sizeof(struct entry));
	const struct dirent *de;
	while ((de = readdir(d))) {
		if (temp_name(de->d_name)) {
			if (stale_temp(dfd, de->d_name, now) && unlinkat(dfd, de->d_name, 0) == 0)
				r->removed_temp++;
			continue;
		}
		if (companion_name(de->d_name)) {
			if (orphan(dfd, de->d_name, now) && unlinkat(dfd, de->d_name, 0) == 0)
				r->removed_temp++;
			continue;
		}
		if (!index_name(de->d_name))
			continue;
		struct entry e = { .name = g_strdup(de->d_name) };
		if (read_entry(dfd, &e)) {
			g_array_append_val(all, e);
			r->bytes += e.size;
			r->files++;
		} else {
			g_free(e.name);
		}
	}
	g_array_sort(all, by_removal);
	for (guint i = 0; max && r->bytes > max && i < all->len; i++) {
		const struct entry *e = &g_array_index(all, struct entry, i);
		switch (remove_entry(dfd, e)) {
		case REMOVED:
			r->bytes -= e->size;
			r->files--;
			if (e->gone)
				r->removed_gone++;
			else
				r->removed_lru++;
			break;
		case BUSY:
			r->busy++;
			break;
		case KEPT:
			break;
		}
	}
	for (guint i = 0; i < all->len; i++)
		g_free(g_array_index(all, struct entry, i).name);
	g_array_free(all, TRUE);
	closedir(d);
	return true;
}

struct candidate {
	char *path;
	struct timespec used;
};

static int newest_first(const void *pa, const void *pb)
{
	const struct candidate *a = pa, *b = pb;
	if (a->used.tv_sec != b->used.tv_sec)
		return a->used.tv_sec > b->used.tv_sec ? -1 : 1;
	if (a->used.tv_nsec != b->used.tv_nsec)
		return a->used.tv_nsec > b->used.tv_nsec ? -1 : 1;
	return strcmp(a->path, b->path);
}

char **tm_index_cache_by_source(const char *dir, const char *source_path, const char *except_id,
				unsigned max)
{
	GArray *found = g_array_new(FALSE, FALSE, sizeof(struct candidate));
	DIR *d = opendir(dir);
	const struct dirent *de;
	while (d && (de = readdir(d))) {
		if (!index_name(de->d_name) || (except_id && !strncmp(de->d_name, except_id, ID_LEN)))
			continue;
		int fd = open_entry(dirfd(d), de->d_name);
		if (fd < 0)
			continue;
		struct stat st;
		struct tm_index_peek peek = { 0 };
		if (fstat(fd, &st) == 0 && tm_index_peek_fd(fd, &peek) && peek.header_ok &&
		    peek.source && !strcmp(peek.source, source_path)) {
			struct candidate c = { g_build_filename(dir, de->d_name, NULL), st.st_mtim };
			g_array_append_val(found, c);
		}
		g_free(peek.source);
		close(fd);
	}
	if (d)
		closedir(d);
	g_array_sort(found, newest_first);
	char **out = g_new0(char *, MIN(found->len, max) + 1);
	for (guint i = 0; i < found->len; i++) {
		struct candidate *c = &g_array_index(found, struct candidate, i);
		if (i < max)
			out[i] = c->path;
		else
			g_free(c->path);
	}
	g_array_free(found, TRUE);
	return out;
}
