/* tarkv's commands that change the archive: KV_RW (kv_rw.h) from the command line.  The
 * source is opened for writing only for these; after a change the index is saved again
 * (under the source's new identity), so that the next run maps it at once. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kv_rw.h"
#include "tarkv.h"
#include "tarkv_json.h"

/* Open the archive for changes: the index moves from the archive to the writer. */
static struct tm_kv_rw *open_rw(struct tarkv *t, int *rc)
{
	struct tm_kv_error err;
	struct tm_kv_rw_options o = {
		.caller_locked = true, /* open_source took it */
		.no_flush = t->no_sync,
	};
	struct tm_index *idx = t->archive->index;
	t->archive->index = NULL;
	t->index = NULL;
	struct tm_kv_rw *rw = tm_kv_rw_open(t->block, idx, &o, &err);
	if (!rw)
		*rc = tarkv_kv_failed(t, NULL, &err);
	return rw;
}

/* Give the index back to the archive, saving it when it changed (still under the writer
 * lock, which goes with the source at exit); the status to exit with. */
static int close_rw(struct tarkv *t, struct tm_kv_rw *rw, int rc)
{
	bool changed = tm_kv_rw_changed(rw);
	t->index = tm_kv_rw_close_keep(rw);
	char why[300];
	if (changed && !t->no_index && !tm_archive_update(t->archive, t->index, why, sizeof why))
		tarkv_warning(t, NULL, "index not saved: %s", why);
	else if (!changed || t->no_index)
		t->archive->index = t->index;
	return rc;
}

/* --mode, --owner, --group, --mtime over what a member would get otherwise. */
static bool apply_options(const struct tarkv *t, struct tm_kv_rw_attr *a)
{
	char *end;
	if (t->opt_mode) {
		unsigned long m = strtoul(t->opt_mode, &end, 8);
		if (*end || end == t->opt_mode || m > 07777) {
			tarkv_error(t, NULL, "--mode=%s: not an octal mode", t->opt_mode);
			return false;
		}
		a->mode = (uint32_t)m;
	}
	if (t->opt_owner >= 0)
		a->uid = t->opt_owner, a->uname = NULL;
	if (t->opt_group >= 0)
		a->gid = t->opt_group, a->gname = NULL;
	if (t->opt_mtime) {
		if (!tm_pax_parse_time(t->opt_mtime, strlen(t->opt_mtime), &a->mtime)) {
			tarkv_error(t, NULL, "--mtime=%s: not seconds since the epoch",
				    t->opt_mtime);
			return false;
		}
	}
	return true;
}

/* A new member's attributes: FILE's (st) when there is one (its time to the nanosecond,
 * which takes a pax header when it has a fraction), else a file of ours, now (to the
 * second, as GNU tar's default format keeps times). */
static void attr_from(struct tm_kv_rw_attr *a, const struct stat *st, char names[2][64])
{
	uid_t uid = st ? st->st_uid : getuid();
	gid_t gid = st ? st->st_gid : getgid();
	const struct passwd *pw = getpwuid(uid);
	const struct group *gr = getgrgid(gid);
	snprintf(names[0], 64, "%s", pw ? pw->pw_name : "");
	snprintf(names[1], 64, "%s", gr ? gr->gr_name : "");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	*a = (struct tm_kv_rw_attr){
		.mode = st ? st->st_mode & 07777 : 0,
		.uid = uid, .gid = gid, .uname = names[0], .gname = names[1],
		.mtime = st ? (struct tm_pax_time){ st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec }
			    : (struct tm_pax_time){ now.tv_sec, 0 }, /* no pax header for it */
	};
}

static ssize_t fd_source(void *ud, void *buf, size_t len)
{
	int fd = *(int *)ud;
	ssize_t n;
	while ((n = read(fd, buf, len)) < 0 && errno == EINTR)
		;
	return n;
}

/* FILE (or "-", or nothing: standard input) as a descriptor of a regular file whose size is
 * known: standard input is spooled to a temporary file first. */
static int open_data(const struct tarkv *t, const char *file, struct stat *st, bool *is_file)
{
	*is_file = file && strcmp(file, "-");
	int fd = *is_file ? open(file, O_RDONLY | O_CLOEXEC) : dup(0);
	if (fd < 0 || fstat(fd, st) < 0) {
		tarkv_error(t, NULL, "%s: %s", *is_file ? file : "standard input", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (S_ISREG(st->st_mode))
		return fd;
	if (*is_file) {
		tarkv_error(t, NULL, "%s: not a regular file", file);
		close(fd);
		return -1;
	}
	FILE *spool = tmpfile();
	char buf[65536];
	ssize_t n;
	while (spool && (n = fd_source(&fd, buf, sizeof buf)) > 0)
		if (fwrite(buf, 1, (size_t)n, spool) != (size_t)n)
			break;
	close(fd);
	if (!spool || fflush(spool) != 0 || ferror(spool)) {
		tarkv_error(t, NULL, "spooling standard input: %s", strerror(errno));
		if (spool)
			fclose(spool);
		return -1;
	}
	fd = dup(fileno(spool));
	fclose(spool);
	if (fd < 0 || fstat(fd, st) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		tarkv_error(t, NULL, "spooling standard input: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void print_done(const struct tarkv *t, const char *op, const char *key,
		       const struct tm_index *idx)
{
	if (!t->json)
		return;
	struct json j = { stdout, false };
	json_begin_object(&j);
	json_key(&j, "op");
	json_string(&j, op);
	json_key(&j, "key");
	json_string(&j, key);
	json_key(&j, "members");
	json_uint(&j, idx->members);
	json_key(&j, "archive_end");
	json_uint(&j, idx->archive_end);
	json_end_object(&j);
	putchar('\n');
}

/* Run one change; the exit status. */
static int change(struct tarkv *t, const char *op, const char *key,
		  int (*fn)(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err), void *ud)
{
	int rc = TARKV_OK;
	struct tm_kv_rw *rw = open_rw(t, &rc);
	if (!rw)
		return rc;
	struct tm_kv_error err;
	if (fn(rw, ud, &err) < 0)
		rc = tarkv_kv_failed(t, key, &err);
	else
		print_done(t, op, key, tm_kv_rw_index(rw));
	return close_rw(t, rw, rc);
}

struct put_args {
	const char *key;
	uint64_t size;
	int fd;
	struct tm_kv_rw_attr attr;
	const void *data; /* put-partial */
	uint64_t off;
	const char *other; /* symlink's target, link's existing key, mv's destination */
};

static int do_put(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_set(rw, p->key, p->size, fd_source, &p->fd, &p->attr, err);
}

int tarkv_put(struct tarkv *t, int argc, char **argv)
{
	if (argc < 1 || argc > 2)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0] };
	struct stat st;
	bool is_file;
	char names[2][64];
	if ((p.fd = open_data(t, argc > 1 ? argv[1] : NULL, &st, &is_file)) < 0)
		return TARKV_USAGE;
	attr_from(&p.attr, is_file ? &st : NULL, names);
	p.size = (uint64_t)st.st_size;
	int rc = apply_options(t, &p.attr) ? change(t, "put", p.key, do_put, &p) : TARKV_USAGE;
	close(p.fd);
	return rc;
}

static int do_partial(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_set_partial(rw, p->key, p->off, p->data, (size_t)p->size, err);
}

static bool parse_u64(const struct tarkv *t, const char *what, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || errno || *s == '-') {
		tarkv_error(t, NULL, "%s %s: not a number of bytes", what, s);
		return false;
	}
	*out = v;
	return true;
}

int tarkv_put_partial(struct tarkv *t, int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0] };
	if (!parse_u64(t, "OFFSET", argv[1], &p.off))
		return TARKV_USAGE;
	struct stat st;
	bool is_file;
	int fd = open_data(t, argc > 2 ? argv[2] : NULL, &st, &is_file);
	if (fd < 0)
		return TARKV_USAGE;
	gsize len = 0;
	GByteArray *data = g_byte_array_sized_new((guint)MIN((uint64_t)st.st_size, 1u << 30));
	uint8_t buf[65536];
	ssize_t n;
	while ((n = fd_source(&fd, buf, sizeof buf)) > 0)
		g_byte_array_append(data, buf, (guint)n);
	close(fd);
	len = data->len;
	int rc = TARKV_USAGE;
	if (n < 0) {
		tarkv_error(t, NULL, "reading the data: %s", strerror(errno));
	} else {
		p.data = data->data;
		p.size = len;
		rc = change(t, "put-partial", p.key, do_partial, &p);
	}
	g_byte_array_free(data, TRUE);
	return rc;
}

static int do_allocate(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_allocate(rw, p->key, p->size, &p->attr, err);
}

int tarkv_allocate(struct tarkv *t, int argc, char **argv)
{
	if (argc != 2)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0] };
	char names[2][64];
	attr_from(&p.attr, NULL, names);
	if (!parse_u64(t, "SIZE", argv[1], &p.size) || !apply_options(t, &p.attr))
		return TARKV_USAGE;
	return change(t, "allocate", p.key, do_allocate, &p);
}

static int do_mkdir(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_mkdir(rw, p->key, &p->attr, err);
}

int tarkv_mkdir(struct tarkv *t, int argc, char **argv)
{
	if (argc != 1)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0] };
	char names[2][64];
	attr_from(&p.attr, NULL, names);
	if (!apply_options(t, &p.attr))
		return TARKV_USAGE;
	return change(t, "mkdir", p.key, do_mkdir, &p);
}

static int do_symlink(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_symlink(rw, p->other, p->key, &p->attr, err);
}

int tarkv_symlink(struct tarkv *t, int argc, char **argv)
{
	if (argc != 2)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[1], .other = argv[0] };
	char names[2][64];
	attr_from(&p.attr, NULL, names);
	if (!apply_options(t, &p.attr))
		return TARKV_USAGE;
	return change(t, "symlink", p.key, do_symlink, &p);
}

static int do_link(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_link(rw, p->other, p->key, err);
}

int tarkv_link(struct tarkv *t, int argc, char **argv)
{
	if (argc != 2)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[1], .other = argv[0] };
	return change(t, "link", p.key, do_link, &p);
}

static int do_rm(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	return tm_kv_rw_remove(rw, ((struct put_args *)ud)->key, err);
}

int tarkv_rm(struct tarkv *t, int argc, char **argv)
{
	if (argc != 1)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0] };
	return change(t, "rm", p.key, do_rm, &p);
}

static int do_mv(struct tm_kv_rw *rw, void *ud, struct tm_kv_error *err)
{
	struct put_args *p = ud;
	return tm_kv_rw_rename(rw, p->key, p->other, err);
}

int tarkv_mv(struct tarkv *t, int argc, char **argv)
{
	if (argc != 2)
		return TARKV_BADARGS;
	struct put_args p = { .key = argv[0], .other = argv[1] };
	return change(t, "mv", p.key, do_mv, &p);
}
