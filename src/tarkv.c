/* tarkv: the KV_RO layer on the command line, for scripts and CI jobs without FUSE.
 *
 *   tarkv [OPTIONS] SOURCE COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 not found or false, 2 bad usage or bad input. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

#include "tarkv.h"
#include "tarkv_json.h"

/* A command's return for wrong arguments: main prints the command's usage. */
#define BADARGS TARKV_BADARGS

/* One line on stderr whatever the names in it hold: control bytes are shown as '?'. */
static void vmessage(const struct tarkv *t, const char *kind, const char *key, const char *fmt,
		     va_list ap)
{
	GString *line = g_string_new(NULL);
	g_string_append_printf(line, "tarkv: %s: %s", t->source, kind);
	if (key)
		g_string_append_printf(line, "%s: ", *key ? key : "/");
	g_string_append_vprintf(line, fmt, ap);
	for (gsize i = 0; i < line->len; i++)
		if ((unsigned char)line->str[i] < 0x20 || line->str[i] == 0x7f)
			line->str[i] = '?';
	fprintf(stderr, "%s\n", line->str);
	g_string_free(line, TRUE);
}

void tarkv_error(const struct tarkv *t, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage(t, "", key, fmt, ap);
	va_end(ap);
}

void tarkv_warning(const struct tarkv *t, const char *key, const char *fmt, ...)
{
	if (t->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmessage(t, "warning: ", key, fmt, ap);
	va_end(ap);
}

int tarkv_kv_failed(const struct tarkv *t, const char *key, const struct tm_kv_error *err)
{
	char buf[300];
	tarkv_error(t, key, "%s", tm_kv_strerror(err, buf, sizeof buf));
	switch (err->code) {
	case TM_KV_ALREADY_PRESENT:
	case TM_KV_APPEND_ONLY:
	case TM_KV_NO_SPACE:
	case TM_KV_READ_ONLY:
		return TARKV_REFUSED;
	case TM_KV_BLOCK:
	case TM_KV_INVALID:
		return TARKV_USAGE;
	default:
		return TARKV_FALSE;
	}
}

/* ---- describing entries ---- */

static const char *type_name(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR: return "dir";
	case S_IFLNK: return "symlink";
	case S_IFCHR: return "chr";
	case S_IFBLK: return "blk";
	case S_IFIFO: return "fifo";
	default: return "file";
	}
}

static void mode_string(uint32_t mode, char out[11])
{
	/* Every value of the type bits has a slot: a loaded index file may hold any. */
	static const char types[(S_IFMT >> 12) + 1] = {
		[S_IFDIR >> 12] = 'd', [S_IFLNK >> 12] = 'l', [S_IFCHR >> 12] = 'c',
		[S_IFBLK >> 12] = 'b', [S_IFIFO >> 12] = 'p', [S_IFREG >> 12] = '-',
	};
	out[0] = types[(mode & S_IFMT) >> 12] ? types[(mode & S_IFMT) >> 12] : '?';
	const char *rwx = "rwxrwxrwx";
	for (int i = 0; i < 9; i++)
		out[1 + i] = mode & (0400u >> i) ? rwx[i] : '-';
	if (mode & S_ISUID)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (mode & S_ISGID)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (mode & S_ISVTX)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = '\0';
}

static const char *owner(const struct tm_index *idx, uint32_t name, uint32_t id, char buf[16])
{
	if (name)
		return tm_index_string(idx, name);
	snprintf(buf, 16, "%" PRIu32, id);
	return buf;
}

static void print_long(const struct tarkv *t, uint32_t ino, const char *name)
{
	const struct tm_inode *in = tm_index_inode(t->index, ino);
	char mode[11], u[16], g[16], size[48], when[32];
	mode_string(in->mode, mode);
	if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
		snprintf(size, sizeof size, "%" PRIu32 ",%" PRIu32, in->a, in->b);
	else
		snprintf(size, sizeof size, "%" PRIu64, in->size);
	time_t tt = (time_t)in->mtime;
	struct tm tm;
	if (localtime_r(&tt, &tm))
		strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
	else
		snprintf(when, sizeof when, "%" PRId64, in->mtime);
	printf("%s %s/%s %9s %s %s", mode, owner(t->index, in->uname, in->uid, u),
	       owner(t->index, in->gname, in->gid, g), size, when, name);
	if (S_ISLNK(in->mode))
		printf(" -> %s", tm_index_string(t->index, in->a));
	putchar('\n');
}

static void hex(struct json *j, const uint8_t *p, uint32_t n)
{
	char *s = g_malloc((size_t)n * 2 + 1);
	for (uint32_t i = 0; i < n; i++)
		snprintf(s + 2 * i, 3, "%02x", p[i]);
	json_string_len(j, s, (size_t)n * 2);
	g_free(s);
}

static void json_entry(struct json *j, const struct tarkv *t, uint32_t ino, const char *path)
{
	const struct tm_index *idx = t->index;
	const struct tm_inode *in = tm_index_inode(idx, ino);
	const char *slash = strrchr(path, '/');
	json_begin_object(j);
	json_key(j, "path"), json_string(j, path);
	json_key(j, "name"), json_string(j, slash ? slash + 1 : path);
	json_key(j, "type"), json_string(j, type_name(in->mode));
	json_key(j, "mode"), json_uint(j, in->mode & 07777);
	json_key(j, "uid"), json_uint(j, in->uid);
	json_key(j, "gid"), json_uint(j, in->gid);
	json_key(j, "uname"), json_string(j, tm_index_string(idx, in->uname));
	json_key(j, "gname"), json_string(j, tm_index_string(idx, in->gname));
	json_key(j, "size"), json_uint(j, S_ISREG(in->mode) || S_ISLNK(in->mode) ? in->size : 0);
	json_key(j, "mtime"), json_int(j, in->mtime);
	json_key(j, "mtime_nsec"), json_uint(j, in->mtime_nsec);
	json_key(j, "nlink"), json_uint(j, in->nlink);
	json_key(j, "ino"), json_uint(j, (uint64_t)ino + 1);
	if (S_ISLNK(in->mode))
		json_key(j, "target"), json_string(j, tm_index_string(idx, in->a));
	if (S_ISCHR(in->mode) || S_ISBLK(in->mode)) {
		json_key(j, "major"), json_uint(j, in->a);
		json_key(j, "minor"), json_uint(j, in->b);
	}
	const struct tm_index_sparse *map;
	(void)tm_index_sparse_map(idx, ino, &map);
	json_key(j, "sparse"), json_bool(j, map != NULL);
	json_key(j, "xattrs");
	json_begin_object(j);
	uint32_t cur = 0, vlen;
	const char *name;
	const void *value;
	while (tm_index_xattr_next(idx, ino, &cur, &name, &value, &vlen) > 0) {
		json_key(j, name);
		hex(j, value, vlen);
	}
	json_end_object(j);
	json_end_object(j);
}

static void print_stat(const struct tarkv *t, uint32_t ino, const char *path)
{
	const struct tm_index *idx = t->index;
	const struct tm_inode *in = tm_index_inode(idx, ino);
	char mode[11], u[16], g[16];
	mode_string(in->mode, mode);
	printf("path: %s\ntype: %s\nmode: %04o (%s)\n", *path ? path : "/", type_name(in->mode),
	       in->mode & 07777, mode);
	printf("owner: %s (%" PRIu32 ")\ngroup: %s (%" PRIu32 ")\n",
	       owner(idx, in->uname, in->uid, u), in->uid, owner(idx, in->gname, in->gid, g),
	       in->gid);
	printf("size: %" PRIu64 "\nmtime: %" PRId64 ".%09" PRIu32 "\nlinks: %" PRIu32
	       "\ninode: %" PRIu64 "\n",
	       S_ISREG(in->mode) || S_ISLNK(in->mode) ? in->size : 0, in->mtime, in->mtime_nsec,
	       in->nlink, (uint64_t)ino + 1);
	if (S_ISLNK(in->mode))
		printf("target: %s\n", tm_index_string(idx, in->a));
	if (S_ISCHR(in->mode) || S_ISBLK(in->mode))
		printf("device: %" PRIu32 ",%" PRIu32 "\n", in->a, in->b);
	const struct tm_index_sparse *map;
	if (tm_index_sparse_map(idx, ino, &map) && map)
		printf("sparse: yes\n");
	uint32_t cur = 0, vlen;
	const char *name;
	const void *value;
	while (tm_index_xattr_next(idx, ino, &cur, &name, &value, &vlen) > 0)
		printf("xattr: %s (%" PRIu32 " bytes)\n", name, vlen);
}

/* ---- walking ---- */

struct walk_frame {
	uint32_t dir, next; /* the directory and its next child slot */
	size_t path_len;    /* its path's length */
};

void tarkv_walk(struct tarkv *t, uint32_t dir, GString *path, size_t rel_from, tarkv_walk_fn fn,
		void *ud)
{
	/* An explicit stack: an archive can nest tens of thousands of directories. */
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(struct walk_frame));
	struct walk_frame top = { dir, 0, path->len };
	g_array_append_val(stack, top);
	while (stack->len) {
		struct walk_frame *f = &g_array_index(stack, struct walk_frame, stack->len - 1);
		if (f->next == tm_index_child_count(t->index, f->dir)) {
			g_string_truncate(path, f->path_len);
			g_array_set_size(stack, stack->len - 1);
			continue;
		}
		const struct tm_dentry *d = tm_index_child(t->index, f->dir, f->next++);
		g_string_truncate(path, f->path_len);
		if (path->len)
			g_string_append_c(path, '/');
		g_string_append(path, tm_index_string(t->index, d->name));
		const char *rel = path->str + (rel_from < path->len ? rel_from : path->len);
		if (*rel == '/')
			rel++;
		fn(t, d->inode, path->str, rel, ud);
		if (S_ISDIR(tm_index_inode(t->index, d->inode)->mode)) {
			struct walk_frame child = { d->inode, 0, path->len };
			g_array_append_val(stack, child);
		}
	}
	g_array_unref(stack);
}

struct ls_state {
	struct json j;
};

static void ls_one(struct tarkv *t, uint32_t ino, const char *path, const char *rel, void *ud)
{
	struct ls_state *s = ud;
	if (t->json)
		json_entry(&s->j, t, ino, path);
	else if (t->long_format)
		print_long(t, ino, rel);
	else
		puts(rel);
}

/* The normalised key and its inode; TM_NONE with a message when missing. */
static uint32_t resolve(struct tarkv *t, const char *key, char **norm)
{
	*norm = g_malloc(strlen(key) + 1);
	uint32_t ino = tm_index_normalize(key, *norm) ? tm_index_resolve(t->index, *norm) : TM_NONE;
	if (ino == TM_NONE)
		tarkv_error(t, key, "not found");
	return ino;
}

static int cmd_ls(struct tarkv *t, int argc, char **argv)
{
	if (argc > 1)
		return BADARGS;
	char *path;
	uint32_t ino = resolve(t, argc ? argv[0] : "", &path);
	if (ino == TM_NONE) {
		g_free(path);
		return TARKV_FALSE;
	}
	struct ls_state s = { { stdout, false } };
	if (t->json) {
		json_begin_object(&s.j);
		json_key(&s.j, "source"), json_string(&s.j, t->source);
		json_key(&s.j, "entries");
		json_begin_array(&s.j);
	}
	GString *p = g_string_new(path);
	if (!S_ISDIR(tm_index_inode(t->index, ino)->mode)) {
		const char *slash = strrchr(path, '/');
		ls_one(t, ino, path, slash ? slash + 1 : path, &s);
	} else if (t->recursive) {
		tarkv_walk(t, ino, p, p->len, ls_one, &s);
	} else {
		uint32_t n = tm_index_child_count(t->index, ino);
		for (uint32_t i = 0; i < n; i++) {
			const struct tm_dentry *d = tm_index_child(t->index, ino, i);
			const char *name = tm_index_string(t->index, d->name);
			size_t keep = p->len;
			if (p->len)
				g_string_append_c(p, '/');
			g_string_append(p, name);
			ls_one(t, d->inode, p->str, name, &s);
			g_string_truncate(p, keep);
		}
	}
	if (t->json) {
		json_end_array(&s.j);
		json_end_object(&s.j);
		putchar('\n');
	}
	g_string_free(p, TRUE);
	g_free(path);
	return TARKV_OK;
}

static int cmd_stat(struct tarkv *t, int argc, char **argv)
{
	if (argc != 1)
		return BADARGS;
	char *path;
	uint32_t ino = resolve(t, argv[0], &path);
	if (ino != TM_NONE) {
		if (t->json) {
			struct json j = { stdout, false };
			json_entry(&j, t, ino, path);
			putchar('\n');
		} else {
			print_stat(t, ino, path);
		}
	}
	g_free(path);
	return ino == TM_NONE ? TARKV_FALSE : TARKV_OK;
}

/* Copy [off, off+len) of a value to stdout. */
static int copy_out(struct tarkv *t, const char *key, uint64_t off, uint64_t len)
{
	struct tm_kv_error err;
	uint32_t ino = tm_kv_find(&t->kv, key, &err);
	if (ino != TM_NONE && tm_kv_kind_of(&t->kv, ino) != TM_KV_VALUE)
		err.code = TM_KV_VALUE_EXPECTED, err.detail[0] = 0, ino = TM_NONE;
	if (ino == TM_NONE)
		return tarkv_kv_failed(t, key, &err);
	enum { CHUNK = 1 << 20 };
	uint8_t *buf = g_malloc(CHUNK);
	int rc = TARKV_OK;
	while (len > 0) {
		ssize_t n = tm_kv_read(&t->kv, ino, buf, len < CHUNK ? (size_t)len : CHUNK, off, &err);
		if (n < 0) {
			rc = tarkv_kv_failed(t, key, &err);
			break;
		}
		if (n == 0)
			break;
		if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
			tarkv_error(t, NULL, "writing to standard output: %s", strerror(errno));
			rc = TARKV_USAGE;
			break;
		}
		off += (uint64_t)n, len -= (uint64_t)n;
	}
	g_free(buf);
	return rc;
}

static int cmd_cat(struct tarkv *t, int argc, char **argv)
{
	if (argc < 1)
		return BADARGS;
	int rc = TARKV_OK;
	for (int i = 0; i < argc; i++) {
		int r = copy_out(t, argv[i], 0, UINT64_MAX);
		if (r > rc)
			rc = r;
	}
	return rc;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

static int cmd_get_partial(struct tarkv *t, int argc, char **argv)
{
	uint64_t off, len;
	if (argc != 3)
		return BADARGS;
	if (!parse_u64(argv[1], &off) || !parse_u64(argv[2], &len)) {
		tarkv_error(t, argv[0], "offset and length must be non-negative decimal numbers");
		return TARKV_USAGE;
	}
	return copy_out(t, argv[0], off, len);
}

static int cmd_exists(struct tarkv *t, int argc, char **argv)
{
	if (argc != 1)
		return BADARGS;
	switch (tm_kv_exists(&t->kv, argv[0])) {
	case TM_KV_VALUE: puts("value"); return TARKV_OK;
	case TM_KV_DICTIONARY: puts("dictionary"); return TARKV_OK;
	default: puts("none"); return TARKV_FALSE;
	}
}

static int cmd_size(struct tarkv *t, int argc, char **argv)
{
	struct tm_kv_error err;
	if (argc != 1)
		return BADARGS;
	int64_t n = tm_kv_size(&t->kv, argv[0], &err);
	if (n < 0)
		return tarkv_kv_failed(t, argv[0], &err);
	printf("%" PRId64 "\n", n);
	return TARKV_OK;
}

static int cmd_digest(struct tarkv *t, int argc, char **argv)
{
	struct tm_kv_error err;
	char hexsum[65];
	if (argc < 1)
		return BADARGS;
	int rc = TARKV_OK;
	for (int i = 0; i < argc; i++) {
		if (tm_kv_digest(&t->kv, argv[i], hexsum, &err) < 0) {
			int r = tarkv_kv_failed(t, argv[i], &err);
			rc = r > rc ? r : rc;
			continue;
		}
		if (argc == 1)
			puts(hexsum);
		else
			printf("%s  %s\n", hexsum, argv[i]);
	}
	return rc;
}

static int cmd_last_modified(struct tarkv *t, int argc, char **argv)
{
	struct tm_kv_error err;
	int64_t sec;
	uint32_t nsec;
	if (argc != 1)
		return BADARGS;
	if (tm_kv_last_modified(&t->kv, argv[0], &sec, &nsec, &err) < 0)
		return tarkv_kv_failed(t, argv[0], &err);
	printf("%" PRId64 ".%09" PRIu32 "\n", sec, nsec);
	return TARKV_OK;
}

struct find_state {
	const char *pattern;
	struct json j;
};

static void find_one(struct tarkv *t, uint32_t ino, const char *path, const char *rel, void *ud)
{
	struct find_state *s = ud;
	(void)ino, (void)rel;
	if (s->pattern && fnmatch(s->pattern, path, 0) != 0)
		return;
	if (t->json)
		json_string(&s->j, path);
	else
		puts(path);
}

static int cmd_find(struct tarkv *t, int argc, char **argv)
{
	if (argc > 1)
		return BADARGS;
	struct find_state s = { argc ? argv[0] : NULL, { stdout, false } };
	if (t->json) {
		json_begin_object(&s.j);
		json_key(&s.j, "source"), json_string(&s.j, t->source);
		json_key(&s.j, "paths");
		json_begin_array(&s.j);
	}
	GString *p = g_string_new("");
	tarkv_walk(t, TM_ROOT, p, 0, find_one, &s);
	g_string_free(p, TRUE);
	if (t->json) {
		json_end_array(&s.j);
		json_end_object(&s.j);
		putchar('\n');
	}
	return TARKV_OK;
}

static int cmd_info(struct tarkv *t, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return BADARGS;
	const struct tm_index *idx = t->index;
	size_t mem = tm_index_memory(idx);
	printf("index: %s\n", t->no_index ? "not saved" : t->index_loaded ? "loaded"
			     : t->archive->extended ? "extended" : "built");
	printf("members: %" PRIu64 "\ninodes: %" PRIu32 "\nentries: %" PRIu32
	       "\narchive end: %" PRIu64 "\ntruncated: %s\nwarnings: %u\nerrors: %u\n",
	       idx->members, idx->ninodes, idx->ndentries, idx->archive_end,
	       idx->truncated ? "yes" : "no", idx->warnings, idx->errors);
	printf("index bytes: %zu\nnames bytes: %" PRIu64 "\nindex bytes per entry: %.1f"
	       " (%.1f without names)\n",
	       mem, idx->strings_len, idx->ndentries ? (double)mem / idx->ndentries : 0.0,
	       idx->ndentries ? (double)(mem - idx->strings_len) / idx->ndentries : 0.0);
	printf("compression: %s\n", tm_decomp_format_name(t->archive->format));
	if (tm_decomp_is(t->block)) {
		struct tm_decomp_stats st;
		tm_decomp_stats(t->block, &st);
		printf("compressed bytes: %" PRIu64 "\ndecompressed bytes: %" PRIu64
		       "\nseek points: %" PRIu64 "\nseek point spacing: %" PRIu64
		       " (mean), %" PRIu64 " (largest)\nseek table bytes: %" PRIu64 "\n",
		       st.compressed, st.size, st.points, st.points ? st.size / st.points : 0,
		       st.max_gap, st.table_bytes);
		if (st.copy_bytes)
			printf("seekable copy: %s (%" PRIu64 " bytes)\n", t->archive->copy_path,
			       st.copy_bytes);
		else
			printf("seekable copy: %s\n", t->archive->copy_path ? "wanted, not made yet"
				: tm_decomp_copy_wanted(t->block) ? "wanted, but no index file"
								  : "not needed");
	}
	return TARKV_OK;
}

/* Make the seekable copy now (tarmount makes it in the background). */
static int cmd_make_seekable(struct tarkv *t, int argc, char **argv)
{
	(void)argv;
	if (argc != 0)
		return BADARGS;
	struct tm_archive *a = t->archive;
	if (!tm_decomp_is(t->block)) {
		tarkv_error(t, NULL, "not a compressed archive: it seeks as it is");
		return TARKV_USAGE;
	}
	if (a->copy_used) {
		printf("%s\n", a->copy_path);
		return TARKV_OK;
	}
	if (!a->copy_path) {
		if (tm_decomp_copy_wanted(t->block)) {
			tarkv_error(t, NULL, "no seekable copy without an index file (--no-index)");
			return TARKV_USAGE;
		}
		printf("not needed: the %s stream seeks well\n",
		       tm_decomp_format_name(a->format));
		return TARKV_OK;
	}
	struct tm_block_error err;
	char msg[300];
	if (!tm_archive_build_copy(a, NULL, &err)) {
		tarkv_error(t, NULL, "%s: no seekable copy made: %s", a->copy_path,
			    tm_block_strerror(&err, msg, sizeof msg));
		return TARKV_USAGE;
	}
	printf("%s\n", a->copy_path);
	return TARKV_OK;
}

static int cmd_extract(struct tarkv *t, int argc, char **argv)
{
	if (argc != 2)
		return BADARGS;
	return tarkv_extract(t, argv[0], argv[1]);
}

static const struct command {
	const char *name, *args;
	int (*run)(struct tarkv *t, int argc, char **argv);
	bool writes; /* opens the source for writing */
} commands[] = {
	{ "ls", "[-l] [-R] [--json] [PATH]", cmd_ls, false },
	{ "stat", "[--json] PATH", cmd_stat, false },
	{ "cat", "PATH...", cmd_cat, false },
	{ "get-partial", "PATH OFFSET LENGTH", cmd_get_partial, false },
	{ "exists", "PATH", cmd_exists, false },
	{ "size", "PATH", cmd_size, false },
	{ "digest", "PATH...", cmd_digest, false },
	{ "last-modified", "PATH", cmd_last_modified, false },
	{ "find", "[--json] [PATTERN]", cmd_find, false },
	{ "extract", "PATH DEST", cmd_extract, false },
	{ "info", "", cmd_info, false },
	{ "make-seekable", "", cmd_make_seekable, false },
	{ "put", "KEY [FILE|-]", tarkv_put, true },
	{ "put-partial", "KEY OFFSET [FILE|-]", tarkv_put_partial, true },
	{ "allocate", "KEY SIZE", tarkv_allocate, true },
	{ "mkdir", "KEY", tarkv_mkdir, true },
	{ "symlink", "TARGET KEY", tarkv_symlink, true },
	{ "link", "EXISTING KEY", tarkv_link, true },
	{ "rm", "KEY", tarkv_rm, true },
	{ "mv", "SRC DST", tarkv_mv, true },
};

/* ---- opening the source ---- */

static void index_diag(void *ud, enum tm_tar_diag_level lvl, uint64_t off, const char *path,
		       const char *msg)
{
	struct tarkv *t = ud;
	if (lvl == TM_TAR_ERROR)
		tarkv_error(t, path, "%s (at byte %" PRIu64 ")", msg, off);
	else
		tarkv_warning(t, path, "%s (at byte %" PRIu64 ")", msg, off);
}

static void copy_diag(void *ud, bool error, uint64_t off, const char *msg)
{
	(void)error, (void)off;
	tarkv_warning(ud, NULL, "%s", msg);
}

struct progress {
	const struct tarkv *t;
	gint64 start;
	bool shown;
};

/* On a terminal, after a second: how far the first pass is. */
static void progress(void *ud, uint64_t done, uint64_t total, uint64_t members)
{
	struct progress *p = ud;
	if (g_get_monotonic_time() - p->start < G_USEC_PER_SEC)
		return;
	fprintf(stderr, "\rtarkv: indexing %s: %" PRIu64 " entries, %" PRIu64 " of %" PRIu64
		" MiB", p->t->source, members, done >> 20, total >> 20);
	p->shown = true;
}

/* A loaded index found damaged while a command reads it: the command stops there (what it
 * printed was read from pages that passed their checks), the file goes so that the next
 * run rebuilds it, and the status says it failed. */
static void index_damaged(void *ud, const char *why)
{
	struct tarkv *t = ud;
	const struct tm_archive *a = t->archive;
	bool gone = a->index_fd >= 0 && tm_index_cache_drop(a->index_path, a->index_fd);
	fflush(stdout);
	tarkv_error(t, NULL, "index %s damaged (%s); %s", a->index_path, why,
		    gone ? "removed: the next run rebuilds it" : "remove it or use --no-index");
	exit(TARKV_USAGE);
}

/* The writer lock, waiting up to --wait seconds for another writer (a tarkv appending
 * ends soon; a read-write mount holds it until unmounted). */
static bool lock_writer(const struct tarkv *t, struct tm_block *src, struct tm_block_error *err)
{
	gint64 until = g_get_monotonic_time() + (gint64)t->lock_wait * G_USEC_PER_SEC;
	for (;;) {
		if (tm_block_lock_writer(src, false, err) == 0)
			return true;
		if (err->code != TM_BLOCK_LOCKED || g_get_monotonic_time() >= until)
			break;
		g_usleep(20000);
	}
	if (err->code == TM_BLOCK_LOCKED) {
		char msg[sizeof err->msg];
		memcpy(msg, err->msg, sizeof msg);
		tm_block_fail(err, TM_BLOCK_LOCKED, 0, "%s (waited %d s: a read-write mount or a "
			      "long write holds it; --wait=SECONDS waits longer)", msg, t->lock_wait);
	}
	return false;
}

static int open_source(struct tarkv *t)
{
	struct tm_block_error err;
	char buf[300];
	struct tm_block *src = tm_block_open(t->source, &t->source_opts, &err);
	if (!src) {
		tarkv_error(t, NULL, "%s", tm_block_strerror(&err, buf, sizeof buf));
		return err.code == TM_BLOCK_READ_ONLY ? TARKV_REFUSED : TARKV_USAGE;
	}
	/* A writer indexes under the writer lock (kept until the change is made, kv_rw.h):
	 * another writer's append half done is not a state to index. */
	if (t->source_opts.read_write && !lock_writer(t, src, &err) &&
	    err.code != TM_BLOCK_NOT_SUPPORTED) {
		tarkv_error(t, NULL, "%s", tm_block_strerror(&err, buf, sizeof buf));
		tm_block_disconnect(src);
		return err.code == TM_BLOCK_LOCKED ? TARKV_REFUSED : TARKV_USAGE;
	}
	struct tm_archive_options o = {
		.compression = t->compression,
		.decomp = { .cache_size = t->source_opts.cache_size },
		.index = { .diag = index_diag, .diag_ud = t },
		.index_path = t->index_path,
		.index_cache_max = t->index_cache_max,
		.persist = !t->no_index,
		.copy_diag = copy_diag,
		.copy_diag_ud = t,
	};
	struct progress prog = { .t = t, .start = g_get_monotonic_time() };
	if (!t->quiet && isatty(2)) {
		o.progress = progress;
		o.progress_ud = &prog;
	}
	t->archive = tm_archive_open(src, t->source, &o, &err);
	if (prog.shown)
		fputc('\n', stderr);
	if (!t->archive) {
		if (err.code != TM_BLOCK_OK)
			tarkv_error(t, NULL, "%s", tm_block_strerror(&err, buf, sizeof buf));
		return TARKV_USAGE;
	}
	t->index = t->archive->index;
	t->block = t->archive->data;
	t->index_loaded = t->archive->loaded;
	tm_index_on_damage(t->index, index_damaged, t);
	if (t->index_loaded && t->index->errors)
		tarkv_error(t, NULL, "the archive is damaged (%u errors when it was indexed; "
			    "--no-index shows them)", t->index->errors);
	else if (t->index_loaded && t->index->warnings)
		tarkv_warning(t, NULL, "%u warnings when the archive was indexed (--no-index shows "
			      "them)", t->index->warnings);
	if (t->archive->why_no_copy[0])
		tarkv_warning(t, NULL, "seekable copy %s not used (%s): removed",
			      t->archive->copy_path, t->archive->why_no_copy);
	tm_kv_init(&t->kv, t->index, t->block);
	return TARKV_OK;
}

static char *usage_text(void)
{
	GString *s = g_string_new("SOURCE COMMAND [ARGS]\n\nCommands:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		g_string_append_printf(s, "  %-14s%s\n", commands[i].name, commands[i].args);
	g_string_append(s, "\nExit status: 0 success, 1 not found or false, 2 bad usage or input,"
			   "\n3 refused (append-only, no space, read-only, already present).");
	return g_string_free(s, FALSE);
}

int main(int argc, char **argv)
{
	struct tarkv t = { .source = "tarkv", .source_opts = { .cache = -1 }, .opt_owner = -1,
			   .opt_group = -1, .lock_wait = 10 };
	gboolean version = FALSE, direct = FALSE, no_cache = FALSE, cache = FALSE;
	gint partition = 0, timeout = 0;
	gint64 offset = 0, size = 0, cache_size = 0;
	gchar *compression = NULL, *cache_max = NULL;
	GOptionEntry entries[] = {
		{ "json", 0, 0, G_OPTION_ARG_NONE, &t.json, "JSON output (ls, stat, find)", NULL },
		{ "long", 'l', 0, G_OPTION_ARG_NONE, &t.long_format, "long listing (ls)", NULL },
		{ "recursive", 'R', 0, G_OPTION_ARG_NONE, &t.recursive, "list subtrees (ls)", NULL },
		{ "quiet", 'q', 0, G_OPTION_ARG_NONE, &t.quiet, "no warnings", NULL },
		{ "version", 0, 0, G_OPTION_ARG_NONE, &version, "print the version", NULL },
		{ "direct", 0, 0, G_OPTION_ARG_NONE, &direct, "read a block device with O_DIRECT",
		  NULL },
		{ "partition", 0, 0, G_OPTION_ARG_INT, &partition,
		  "partition N of the source's MBR or GPT table", "N" },
		{ "offset", 0, 0, G_OPTION_ARG_INT64, &offset, "the archive starts at this byte",
		  "BYTES" },
		{ "size", 0, 0, G_OPTION_ARG_INT64, &size, "and is this many bytes long", "BYTES" },
		{ "cache", 0, 0, G_OPTION_ARG_NONE, &cache, "cache reads (default for NBD and --direct)",
		  NULL },
		{ "no-cache", 0, 0, G_OPTION_ARG_NONE, &no_cache, "do not cache reads", NULL },
		{ "cache-size", 0, 0, G_OPTION_ARG_INT64, &cache_size, "cache size (default 64 MiB)",
		  "BYTES" },
		{ "index", 0, 0, G_OPTION_ARG_FILENAME, &t.index_path,
		  "the index file to use (default: in ~/.cache/tarmount)", "PATH" },
		{ "no-index", 0, 0, G_OPTION_ARG_NONE, &t.no_index,
		  "neither read nor write an index file", NULL },
		{ "index-cache-max", 0, 0, G_OPTION_ARG_STRING, &cache_max,
		  "cap on the index cache, pruned when an index is saved there (K, M, G "
		  "suffixes; 0: no cap; default $" TM_INDEX_CACHE_ENV " or 1G, at most 1/10 of "
		  "the disk)", "SIZE" },
		{ "compression", 0, 0, G_OPTION_ARG_STRING, &compression,
		  "auto (from the magic bytes), none, gzip, zstd, xz, bzip2 or lz4", "FORMAT" },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout,
		  "NBD: fail a request after this long (default 30)", "SECONDS" },
		{ "mode", 0, 0, G_OPTION_ARG_STRING, &t.opt_mode,
		  "permission bits of what is written (octal; default: FILE's, or 0644, 0755)",
		  "MODE" },
		{ "owner", 0, 0, G_OPTION_ARG_INT64, &t.opt_owner,
		  "owner of what is written (default: FILE's, or yours)", "UID" },
		{ "group", 0, 0, G_OPTION_ARG_INT64, &t.opt_group,
		  "group of what is written (default: FILE's, or yours)", "GID" },
		{ "wait", 0, 0, G_OPTION_ARG_INT, &t.lock_wait,
		  "seconds to wait for another writer of the archive (default 10; 0: none)",
		  "SECONDS" },
		{ "no-sync", 0, 0, G_OPTION_ARG_NONE, &t.no_sync,
		  "do not flush writes to storage (a killed tarkv still leaves a whole archive, "
		  "a power loss may not)", NULL },
		{ "mtime", 0, 0, G_OPTION_ARG_STRING, &t.opt_mtime,
		  "modification time of what is written (seconds since the epoch; default: "
		  "FILE's, or now)", "SECONDS" },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	char *summary = usage_text();
	GOptionContext *ctx = g_option_context_new(NULL);
	g_option_context_set_summary(ctx, "Read a tar archive as a key-value store.");
	g_option_context_set_description(ctx, summary);
	g_option_context_add_main_entries(ctx, entries, NULL);
	GError *gerr = NULL;
	int rc = TARKV_USAGE;
	if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
		fprintf(stderr, "tarkv: %s (try --help)\n", gerr->message);
		g_error_free(gerr);
		goto out;
	}
	if (partition < 0 || offset < 0 || size < 0 || cache_size < 0 || timeout < 0) {
		fprintf(stderr, "tarkv: --partition, --offset, --size, --cache-size and --timeout "
				"take non-negative numbers\n");
		goto out;
	}
	t.compression = TM_DECOMP_AUTO;
	if (compression && !tm_decomp_format_parse(compression, &t.compression)) {
		fprintf(stderr, "tarkv: --compression=%s: not one of auto, none, gzip, zstd, xz, "
				"bzip2, lz4\n", compression);
		goto out;
	}
	char why[300];
	if ((cache_max || (!t.no_index && !t.index_path)) &&
	    !tm_index_cache_max(cache_max, &t.index_cache_max, why, sizeof why)) {
		fprintf(stderr, "tarkv: %s%s\n", cache_max ? "--index-cache-max=" : "", why);
		goto out;
	}
	t.source_opts.direct = direct;
	t.source_opts.partition = (unsigned)partition;
	t.source_opts.offset = (uint64_t)offset;
	t.source_opts.size = (uint64_t)size;
	t.source_opts.cache = no_cache ? 0 : cache ? 1 : -1;
	t.source_opts.cache_size = (uint64_t)cache_size;
	t.source_opts.timeout = (unsigned)timeout;
	if (version) {
		printf("tarkv (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
		rc = TARKV_OK;
		goto out;
	}
	int first = 1;
	if (first < argc && !strcmp(argv[first], "--"))
		first++;
	if (argc - first < 2) {
		fprintf(stderr, "tarkv: usage: tarkv [OPTIONS] %s", summary);
		fputc('\n', stderr);
		goto out;
	}
	t.source = argv[first];
	const char *name = argv[first + 1];
	const struct command *cmd = NULL;
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++)
		if (!strcmp(commands[i].name, name))
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "tarkv: unknown command '%s' (try --help)\n", name);
		goto out;
	}
	t.source_opts.read_write = cmd->writes;
	if ((rc = open_source(&t)) != TARKV_OK)
		goto out;
	rc = cmd->run(&t, argc - first - 2, argv + first + 2);
	if (rc == BADARGS) {
		fprintf(stderr, "tarkv: usage: tarkv [OPTIONS] SOURCE %s %s\n", cmd->name, cmd->args);
		rc = TARKV_USAGE;
	}
	if (fflush(stdout) != 0) {
		tarkv_error(&t, NULL, "writing to standard output: %s", strerror(errno));
		rc = TARKV_USAGE;
	}
	/* Like GNU tar: a damaged archive is a failure even when the command succeeded. */
	if (rc == TARKV_OK && t.index && t.index->errors)
		rc = TARKV_USAGE;
out:
	tm_archive_close(t.archive);
	g_option_context_free(ctx);
	g_free(summary);
	g_free(t.index_path);
	g_free(compression);
	g_free(cache_max);
	g_free(t.opt_mode);
	g_free(t.opt_mtime);
	return rc;
}
