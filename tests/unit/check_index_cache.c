/* The index cache (src/index_cache.c): sizes, the cap's sources, tm_index_peek_fd on good
 * and damaged files, and the pruner in a temporary directory with a small cap: stale
 * temporary files, gone sources first, then least recently used, locked and foreign files
 * kept; through tm_archive: a save in the cache prunes it, one to an explicit path does not,
 * an open archive holds its file, a load sets its mtime. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "archive.h"
#include "index_cache.h"
#include "suites.h"
#include "testutil.h"

/* Header fields (struct file_header in src/index_file.c, format version 3). */
#define OFF_VERSION 8
#define OFF_SOURCE 208
#define OFF_SOURCE_LEN 216

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir_new(void)
{
	GError *e = NULL;
	char *d = g_dir_make_tmp("tm-index-cache-XXXXXX", &e);
	ck_assert_msg(d != NULL, "g_dir_make_tmp: %s", e ? e->message : "?");
	return d;
}

static bool exists(const char *dir, const char *name)
{
	char *p = g_build_filename(dir, name, NULL);
	struct stat st;
	bool r = lstat(p, &st) == 0;
	g_free(p);
	return r;
}

/* A 64-hex-digit id made from n. */
static void id_of(unsigned n, char id[65])
{
	for (int i = 0; i < 64; i++)
		id[i] = "0123456789abcdef"[(n * 7 + (unsigned)i) % 16];
	snprintf(id + 56, 9, "%08x", n);
}

static char *idx_name(unsigned n)
{
	char id[65];
	id_of(n, id);
	return g_strdup_printf("%s.idx", id);
}

static void set_mtime(const char *dir, const char *name, time_t when)
{
	char *p = g_build_filename(dir, name, NULL);
	struct timespec ts[2] = { { .tv_sec = when }, { .tv_sec = when } };
	ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
	g_free(p);
}

static uint64_t size_of(const char *dir, const char *name)
{
	char *p = g_build_filename(dir, name, NULL);
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	g_free(p);
	return (uint64_t)st.st_size;
}

/* Save a small index as dir/<id n>.idx with source (may be NULL), last used at when. */
static void put_index(const char *dir, unsigned n, const char *source, time_t when)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "f", "some content\n");
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, 512);
	ck_assert_ptr_nonnull(t.idx);
	char id[65], why[300];
	id_of(n, id);
	char *name = idx_name(n);
	char *path = g_build_filename(dir, name, NULL);
	struct tm_index_extra extra = { .source = source };
	ck_assert_msg(tm_index_save(t.idx, path, id, &extra, why, sizeof why), "%s", why);
	set_mtime(dir, name, when);
	g_free(path);
	g_free(name);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}

static void put_file(const char *dir, const char *name, const void *data, size_t len,
		     time_t when)
{
	char *p = g_build_filename(dir, name, NULL);
	ck_assert(g_file_set_contents(p, data, (gssize)len, NULL));
	g_free(p);
	set_mtime(dir, name, when);
}

static bool idx_exists(const char *dir, unsigned n)
{
	char *name = idx_name(n);
	bool r = exists(dir, name);
	g_free(name);
	return r;
}

static struct tm_index_cache_report prune(const char *dir, uint64_t max)
{
	struct tm_index_cache_report r;
	char why[300] = "";
	ck_assert_msg(tm_index_cache_prune(dir, max, &r, why, sizeof why), "%s", why);
	return r;
}

/* ---- sizes and the cap ---- */

START_TEST(test_parse_size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 }, { "1", 1 }, { "4096", 4096 }, { "4K", 4096 }, { "4k", 4096 },
		{ "4KiB", 4096 }, { "4kb", 4096 }, { "2M", 2u << 20 }, { "3G", UINT64_C(3) << 30 },
		{ "1T", UINT64_C(1) << 40 }, { "18446744073709551615", UINT64_MAX },
		{ "16777215T", UINT64_C(16777215) << 40 },
	};
	static const char *const bad[] = {
		"", "K", "-1", "+1", " 1", "1 ", "1.5G", "1X", "12 K", "1Ki", "1KiBs", "1P",
		"18446744073709551616", "16777216T", "0x10",
	};
	for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
		uint64_t v = 12345;
		ck_assert_msg(tm_index_cache_parse_size(good[i].s, &v), "%s refused", good[i].s);
		ck_assert_msg(v == good[i].v, "%s: %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		uint64_t v = 12345;
		ck_assert_msg(!tm_index_cache_parse_size(bad[i], &v), "%s accepted", bad[i]);
		ck_assert_uint_eq(v, 12345);
	}
	ck_assert(!tm_index_cache_parse_size(NULL, &(uint64_t){ 0 }));
}
END_TEST

START_TEST(test_cache_max)
{
	char why[300];
	uint64_t max = 1;
	g_unsetenv(TM_INDEX_CACHE_ENV);
	ck_assert(tm_index_cache_max(NULL, &max, why, sizeof why));
	ck_assert(max > 0 && max <= TM_INDEX_CACHE_DEFAULT_MAX);
	uint64_t dflt = max;
	g_setenv(TM_INDEX_CACHE_ENV, "", TRUE);
	ck_assert(tm_index_cache_max(NULL, &max, why, sizeof why));
	ck_assert_uint_eq(max, dflt);
	g_setenv(TM_INDEX_CACHE_ENV, "8K", TRUE);
	ck_assert(tm_index_cache_max(NULL, &max, why, sizeof why));
	ck_assert_uint_eq(max, 8192);
	ck_assert(tm_index_cache_max("0", &max, why, sizeof why)); /* the option wins */
	ck_assert_uint_eq(max, 0);
	g_setenv(TM_INDEX_CACHE_ENV, "lots", TRUE);
	ck_assert(!tm_index_cache_max(NULL, &max, why, sizeof why));
	ck_assert_msg(strstr(why, TM_INDEX_CACHE_ENV "=lots"), "%s", why);
	ck_assert(tm_index_cache_max("1M", &max, why, sizeof why));
	ck_assert_uint_eq(max, 1u << 20);
	ck_assert(!tm_index_cache_max("1M!", &max, why, sizeof why));
	ck_assert_msg(strstr(why, "1M!") && !strstr(why, TM_INDEX_CACHE_ENV), "%s", why);
	g_unsetenv(TM_INDEX_CACHE_ENV);
}
END_TEST

/* ---- tm_index_peek_fd ---- */

static bool peek_bytes(const char *dir, const void *data, size_t len, struct tm_index_peek *p)
{
	put_file(dir, "peek", data, len, time(NULL));
	char *path = g_build_filename(dir, "peek", NULL);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	bool r = tm_index_peek_fd(fd, p);
	close(fd);
	g_free(path);
	return r;
}

static GByteArray *slurp_index(const char *dir, unsigned n)
{
	char *name = idx_name(n);
	char *path = g_build_filename(dir, name, NULL);
	gchar *data;
	gsize len;
	ck_assert(g_file_get_contents(path, &data, &len, NULL));
	GByteArray *a = g_byte_array_new_take((guint8 *)data, len);
	g_free(path);
	g_free(name);
	return a;
}

static void set_u64(GByteArray *a, size_t off, uint64_t v)
{
	memcpy(a->data + off, &v, 8);
}

START_TEST(test_peek)
{
	char *dir = tmpdir_new();
	char id[65];
	id_of(1, id);
	struct tm_index_peek p;
	put_index(dir, 1, "/some/where/a.tar", time(NULL));
	GByteArray *good = slurp_index(dir, 1);
	ck_assert(peek_bytes(dir, good->data, good->len, &p));
	ck_assert(p.header_ok);
	ck_assert_uint_eq(p.version, 4);
	ck_assert_str_eq(p.source_id, id);
	ck_assert_str_eq(p.source, "/some/where/a.tar");
	g_free(p.source);

	put_index(dir, 2, NULL, time(NULL));
	GByteArray *nosrc = slurp_index(dir, 2);
	ck_assert(peek_bytes(dir, nosrc->data, nosrc->len, &p));
	ck_assert(p.header_ok);
	ck_assert_ptr_null(p.source);

	/* truncated anywhere: ours (the magic) but nothing read past the end */
	for (size_t len = 0; len < good->len; len += len < 300 ? 1 : 97) {
		bool r = peek_bytes(dir, good->data, len, &p);
		ck_assert_msg(r == (len >= 8), "%zu bytes: %d", len, r);
		ck_assert_msg(!p.source || len >= good->len, "%zu bytes: a source", len);
		g_free(p.source);
	}
	/* not ours */
	ck_assert(!peek_bytes(dir, "TARMIDX", 7, &p));
	ck_assert(!peek_bytes(dir, "TARMIDY\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 40, &p));
	/* another version: ours, header not read */
	GByteArray *a = g_byte_array_new();
	g_byte_array_append(a, good->data, good->len);
	uint32_t v2 = 2;
	memcpy(a->data + OFF_VERSION, &v2, 4);
	ck_assert(peek_bytes(dir, a->data, a->len, &p));
	ck_assert(!p.header_ok && p.version == 2 && !p.source);
	/* a header checksum that fails: no source */
	memcpy(a->data, good->data, good->len);
	a->data[OFF_SOURCE_LEN] ^= 1;
	ck_assert(peek_bytes(dir, a->data, a->len, &p));
	ck_assert(!p.header_ok && !p.source);
	/* sealed headers with bad source sections: ours, no source, no overread */
	uint64_t off, len;
	memcpy(&off, good->data + OFF_SOURCE, 8);
	memcpy(&len, good->data + OFF_SOURCE_LEN, 8);
	const uint64_t cases[][2] = {
		{ good->len, 2 }, { good->len - 1, 2 }, { UINT64_MAX - 1, 4 }, { off, UINT64_MAX },
		{ off, len + 1 }, { off, len - 1 } /* not terminated */, { off + 1, len - 1 },
		{ 0, len } /* inside the header: not a path */, { off, 1 } /* "" */,
		{ off, TM_INDEX_PEEK_PATH_MAX + 1 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		memcpy(a->data, good->data, good->len);
		set_u64(a, OFF_SOURCE, cases[i][0]);
		set_u64(a, OFF_SOURCE_LEN, cases[i][1]);
		tm_index_file_seal(a, id);
		ck_assert_msg(peek_bytes(dir, a->data, a->len, &p), "case %zu", i);
		ck_assert_msg(p.header_ok && !p.source, "case %zu: %d %s", i, p.header_ok,
			      p.source ? p.source : "-");
	}
	/* a relative path is not one we wrote */
	memcpy(a->data, good->data, good->len);
	a->data[off] = 's';
	tm_index_file_seal(a, id);
	ck_assert(peek_bytes(dir, a->data, a->len, &p));
	ck_assert(p.header_ok && !p.source);
	g_byte_array_free(a, TRUE);
	g_byte_array_free(good, TRUE);
	g_byte_array_free(nosrc, TRUE);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

/* ---- the pruner ---- */

START_TEST(test_prune_lru)
{
	char *dir = tmpdir_new();
	char *src = g_build_filename(dir, "src.tar", NULL);
	put_file(dir, "src.tar", "x", 1, 0);
	time_t now = time(NULL);
	/* used in the order 3, 1, 4, 2 */
	put_index(dir, 1, src, now - 300);
	put_index(dir, 2, src, now - 100);
	put_index(dir, 3, src, now - 400);
	put_index(dir, 4, src, now - 200);
	char *n1 = idx_name(1);
	uint64_t one = size_of(dir, n1); /* the same for all four */

	struct tm_index_cache_report r = prune(dir, 4 * one); /* under the cap: nothing */
	ck_assert_uint_eq(r.files, 4);
	ck_assert_uint_eq(r.bytes, 4 * one);
	ck_assert_uint_eq(r.removed_lru + r.removed_gone + r.removed_temp, 0);
	r = prune(dir, 0); /* no cap */
	ck_assert_uint_eq(r.files, 4);

	r = prune(dir, 3 * one - 1); /* removes 3 and 1 */
	ck_assert_uint_eq(r.removed_lru, 2);
	ck_assert_uint_eq(r.removed_gone, 0);
	ck_assert_uint_eq(r.files, 2);
	ck_assert_uint_eq(r.bytes, 2 * one);
	ck_assert(!idx_exists(dir, 3) && !idx_exists(dir, 1));
	ck_assert(idx_exists(dir, 4) && idx_exists(dir, 2));

	r = prune(dir, one); /* then 4 */
	ck_assert_uint_eq(r.removed_lru, 1);
	ck_assert(!idx_exists(dir, 4) && idx_exists(dir, 2));
	r = prune(dir, 1); /* and the last */
	ck_assert_uint_eq(r.files, 0);
	ck_assert_uint_eq(r.bytes, 0);
	ck_assert(exists(dir, "src.tar"));
	g_free(n1);
	g_free(src);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

START_TEST(test_prune_gone_first)
{
	char *dir = tmpdir_new();
	char *src = g_build_filename(dir, "src.tar", NULL);
	char *gone = g_build_filename(dir, "gone.tar", NULL);
	char *gone2 = g_build_filename(dir, "src.tar", "not-a-dir.tar", NULL); /* ENOTDIR */
	put_file(dir, "src.tar", "x", 1, 0);
	time_t now = time(NULL);
	put_index(dir, 1, src, now - 500);   /* oldest, source here */
	put_index(dir, 2, NULL, now - 400);  /* no source: never gone */
	put_index(dir, 3, gone, now - 10);   /* newest, source gone */
	put_index(dir, 4, gone2, now - 20);
	put_index(dir, 5, gone, now - 600);
	uint64_t sz[6];
	for (unsigned i = 1; i <= 5; i++) {
		char *n = idx_name(i);
		sz[i] = size_of(dir, n);
		g_free(n);
	}
	char *n5 = idx_name(5);
	char *p5 = g_build_filename(dir, n5, NULL);
	char *kept5 = g_build_filename(dir, "kept5", NULL);
	ck_assert_int_eq(rename(p5, kept5), 0); /* put back below */
	struct tm_index_cache_report r = prune(dir, sz[1] + sz[2] + sz[3]);
	ck_assert_uint_eq(r.removed_gone, 1);
	ck_assert_uint_eq(r.removed_lru, 0);
	ck_assert(!idx_exists(dir, 4)); /* the older of the two gone */
	ck_assert(idx_exists(dir, 1) && idx_exists(dir, 2) && idx_exists(dir, 3));
	r = prune(dir, sz[2]);
	ck_assert_uint_eq(r.removed_gone, 1);
	ck_assert_uint_eq(r.removed_lru, 1);
	ck_assert(!idx_exists(dir, 3) && !idx_exists(dir, 1) && idx_exists(dir, 2));
	/* under the cap, a gone source's index stays (the source may come back) */
	ck_assert_int_eq(rename(kept5, p5), 0);
	r = prune(dir, sz[2] + sz[5]);
	ck_assert_uint_eq(r.files, 2);
	ck_assert(idx_exists(dir, 5));
	g_free(n5);
	g_free(p5);
	g_free(kept5);
	g_free(src);
	g_free(gone);
	g_free(gone2);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

START_TEST(test_prune_locked)
{
	char *dir = tmpdir_new();
	time_t now = time(NULL);
	put_index(dir, 1, NULL, now - 300);
	put_index(dir, 2, NULL, now - 200);
	put_index(dir, 3, NULL, now - 100);
	char *n1 = idx_name(1);
	char *p1 = g_build_filename(dir, n1, NULL);
	uint64_t one = size_of(dir, n1);
	int held = tm_index_cache_hold(p1);
	ck_assert_int_ge(held, 0);
	/* the hold is a shared lock: others may share it, nobody may take it alone */
	int other = open(p1, O_RDONLY);
	ck_assert_int_eq(flock(other, LOCK_SH | LOCK_NB), 0);
	close(other);
	other = open(p1, O_RDONLY);
	ck_assert_int_lt(flock(other, LOCK_EX | LOCK_NB), 0);
	close(other);

	struct tm_index_cache_report r = prune(dir, one);
	ck_assert_uint_eq(r.busy, 1);
	ck_assert_uint_eq(r.removed_lru, 2);
	ck_assert(idx_exists(dir, 1) && !idx_exists(dir, 2) && !idx_exists(dir, 3));
	/* still over the cap with only the held one: kept */
	r = prune(dir, 1);
	ck_assert_uint_eq(r.busy, 1);
	ck_assert_uint_eq(r.files, 1);
	ck_assert(idx_exists(dir, 1));
	close(held);
	r = prune(dir, 1);
	ck_assert_uint_eq(r.busy, 0);
	ck_assert_uint_eq(r.removed_lru, 1);
	ck_assert(!idx_exists(dir, 1));
	ck_assert_int_lt(tm_index_cache_hold(p1), 0);
	ck_assert_int_eq(errno, ENOENT);
	g_free(p1);
	g_free(n1);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

START_TEST(test_prune_foreign_and_temp)
{
	char *dir = tmpdir_new();
	char *outside = tmpdir_new();
	time_t now = time(NULL), old = now - 2 * TM_INDEX_CACHE_TEMP_AGE;
	char id[65];
	id_of(9, id);
	put_index(dir, 1, NULL, old);
	put_index(outside, 2, NULL, old); /* reached by a symlink from dir */
	char *n2 = idx_name(2);
	char *target = g_build_filename(outside, n2, NULL);
	char *link = g_strdup_printf("%s/%s.idx", dir, id);
	ck_assert_int_eq(symlink(target, link), 0);
	/* named like ours, not ours inside; ours inside, not named like ours */
	char *named = idx_name(7);
	put_file(dir, named, "not an index, not even close", 29, old);
	GByteArray *real = slurp_index(dir, 1);
	put_file(dir, "notes.idx", real->data, real->len, old);
	char *short_id = g_strdup_printf("%.63s.idx", id);
	put_file(dir, short_id, real->data, real->len, old);
	char *upper = g_strdup_printf("%.60sABCD.IDX", id);
	put_file(dir, upper, real->data, real->len, old);
	char *named_dir = idx_name(8);
	char *pd = g_build_filename(dir, named_dir, NULL);
	ck_assert_int_eq(mkdir(pd, 0700), 0);
	/* an index of an older format version: ours, pruned by age */
	GByteArray *v2 = g_byte_array_new();
	g_byte_array_append(v2, (const guint8 *)"TARMIDX\n\2\0\0\0", 12);
	tu_append_zeros(v2, 200);
	char *n6 = idx_name(6);
	put_file(dir, n6, v2->data, v2->len, old - 10);
	/* temporary files: a crashed save's, one under way, look-alikes */
	char *t_old = g_strdup_printf(".%s.Ab12Z9", id);
	char *t_new = g_strdup_printf(".%s.Qw34Er", id);
	char *t_bad = g_strdup_printf(".%s.Ab1-Z9", id);
	char *t_dir = g_strdup_printf(".%s.Dd00Dd", id);
	put_file(dir, t_old, "torn", 4, old);
	put_file(dir, t_new, "writing", 7, now);
	put_file(dir, t_bad, "x", 1, old);
	put_file(dir, ".hidden", "x", 1, old);
	char *ptd = g_build_filename(dir, t_dir, NULL);
	ck_assert_int_eq(mkdir(ptd, 0700), 0);
	set_mtime(dir, t_dir, old);

	char *n1 = idx_name(1);
	uint64_t ours = size_of(dir, n1) + v2->len;
	struct tm_index_cache_report r = prune(dir, ours);
	ck_assert_uint_eq(r.removed_temp, 1);
	ck_assert_uint_eq(r.files, 2);   /* only 1 and 6 are counted */
	ck_assert_uint_eq(r.bytes, ours);
	ck_assert(!exists(dir, t_old) && exists(dir, t_new) && exists(dir, t_bad) &&
		  exists(dir, t_dir) && exists(dir, ".hidden"));
	r = prune(dir, 1);
	ck_assert_uint_eq(r.removed_lru, 2);
	ck_assert(!idx_exists(dir, 1) && !exists(dir, n6));
	/* every foreign thing is still there */
	ck_assert(exists(dir, named) && exists(dir, "notes.idx") && exists(dir, short_id) &&
		  exists(dir, upper) && exists(dir, named_dir) && exists(dir, t_new));
	struct stat st;
	ck_assert_int_eq(lstat(link, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_int_eq(stat(target, &st), 0);
	ck_assert_uint_eq(r.files, 0);

	g_byte_array_free(real, TRUE);
	g_byte_array_free(v2, TRUE);
	char *all[] = { n1, n2, n6, target, link, named, short_id, upper, named_dir, pd, t_old,
			t_new, t_bad, t_dir, ptd };
	for (size_t i = 0; i < G_N_ELEMENTS(all); i++)
		g_free(all[i]);
	rm_rf(dir);
	rm_rf(outside);
	g_free(dir);
	g_free(outside);
}
END_TEST

START_TEST(test_prune_no_dir)
{
	char *dir = tmpdir_new();
	char *missing = g_build_filename(dir, "none", NULL);
	char why[300] = "";
	ck_assert(!tm_index_cache_prune(missing, 1, NULL, why, sizeof why));
	ck_assert_msg(strstr(why, "none"), "%s", why);
	g_free(missing);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

/* ---- through tm_archive ---- */

static GByteArray *archive_with(const char *name)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, name, "hello\n");
	tu_finish(a);
	return a;
}

static struct tm_archive *open_archive(const GByteArray *arc, const char *index_path,
				       uint64_t max)
{
	struct tm_archive_options o = {
		.compression = TM_DECOMP_NONE,
		.index_path = index_path,
		.index_cache_max = max,
		.persist = true,
	};
	struct tm_block_error err = { .code = TM_BLOCK_OK };
	struct tm_archive *a = tm_archive_open(tm_block_mem_new(arc->data, arc->len, 512), NULL,
					       &o, &err);
	ck_assert_msg(a != NULL, "tm_archive_open: %s", err.msg);
	return a;
}

static bool can_lock_ex(const char *path)
{
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	bool r = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return r;
}

/* The cache is $XDG_CACHE_HOME/tarmount: set before glib first reads it (each test runs in
 * a process of its own). */
static char *use_cache_in(const char *dir)
{
	char *cache = g_build_filename(dir, "cache", NULL);
	g_setenv("XDG_CACHE_HOME", cache, TRUE);
	ck_assert_msg(strcmp(g_get_user_cache_dir(), cache) == 0,
		      "glib read XDG_CACHE_HOME before this test (run with CK_FORK=yes)");
	char *tm = g_build_filename(cache, "tarmount", NULL);
	ck_assert_int_eq(g_mkdir_with_parents(tm, 0700), 0);
	g_free(cache);
	return tm;
}

START_TEST(test_archive_prunes_cache)
{
	char *dir = tmpdir_new();
	char *cache = use_cache_in(dir);
	time_t old = time(NULL) - 1000;
	put_index(cache, 1, NULL, old);
	put_index(cache, 2, NULL, old + 1);
	GByteArray *arc = archive_with("a");
	/* a cap smaller than one index: the others go, the new one is held and stays */
	struct tm_archive *a = open_archive(arc, NULL, 1);
	ck_assert(!a->loaded && a->saved && a->in_cache);
	ck_assert_uint_eq(a->pruned.removed_lru, 2);
	ck_assert_uint_eq(a->pruned.busy, 1);
	ck_assert(!idx_exists(cache, 1) && !idx_exists(cache, 2));
	ck_assert(g_file_test(a->index_path, G_FILE_TEST_IS_REGULAR));
	ck_assert(!can_lock_ex(a->index_path));
	char *path = g_strdup(a->index_path);
	/* held as long as the archive is open, also against another process's pruning */
	struct tm_index_cache_report r = prune(cache, 1);
	ck_assert_uint_eq(r.busy, 1);
	ck_assert(g_file_test(path, G_FILE_TEST_EXISTS));
	tm_archive_close(a);
	ck_assert(can_lock_ex(path));

	/* loaded from the cache: held again, and its mtime says it was just used */
	ck_assert_int_eq(utimensat(AT_FDCWD, path, (struct timespec[2]){ { .tv_sec = old },
									{ .tv_sec = old } },
				   0), 0);
	a = open_archive(arc, NULL, 1);
	ck_assert(a->loaded);
	ck_assert(!can_lock_ex(path));
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(st.st_mtime > old + 500, "mtime %lld", (long long)st.st_mtime);
	tm_archive_close(a);

	/* no cap: nothing removed */
	put_index(cache, 3, NULL, old);
	GByteArray *arc2 = archive_with("b");
	a = open_archive(arc2, NULL, 0);
	ck_assert(a->saved);
	ck_assert(idx_exists(cache, 3) && g_file_test(path, G_FILE_TEST_EXISTS));
	tm_archive_close(a);
	g_byte_array_free(arc, TRUE);
	g_byte_array_free(arc2, TRUE);
	g_free(path);
	g_free(cache);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

START_TEST(test_archive_explicit_path)
{
	char *dir = tmpdir_new();
	char *cache = use_cache_in(dir);
	time_t old = time(NULL) - 1000;
	/* old index files both beside the explicit path and in the cache */
	put_index(dir, 1, NULL, old);
	put_index(cache, 2, NULL, old);
	char *t_old = g_strdup_printf(".%s.Ab12Z9", "0123456789abcdef0123456789abcdef"
						    "0123456789abcdef0123456789abcdef");
	put_file(dir, t_old, "torn", 4, old - 2 * TM_INDEX_CACHE_TEMP_AGE);
	GByteArray *arc = archive_with("a");
	char *path = g_build_filename(dir, "mine.idx", NULL);
	struct tm_archive *a = open_archive(arc, path, 1);
	ck_assert(a->saved && !a->in_cache);
	ck_assert_uint_eq(a->pruned.files + a->pruned.removed_lru, 0);
	ck_assert(idx_exists(dir, 1) && idx_exists(cache, 2) && exists(dir, t_old));
	ck_assert(!can_lock_ex(path)); /* held all the same */
	tm_archive_close(a);
	/* loading an explicit file leaves its mtime alone */
	ck_assert_int_eq(utimensat(AT_FDCWD, path, (struct timespec[2]){ { .tv_sec = old },
									{ .tv_sec = old } },
				   0), 0);
	a = open_archive(arc, path, 1);
	ck_assert(a->loaded);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mtime, old);
	tm_archive_close(a);
	ck_assert(idx_exists(dir, 1) && idx_exists(cache, 2));
	g_byte_array_free(arc, TRUE);
	g_free(path);
	g_free(t_old);
	g_free(cache);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

Suite *index_cache_suite(void)
{
	Suite *s = suite_create("index_cache");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_cache_max);
	tcase_add_test(tc, test_peek);
	tcase_add_test(tc, test_prune_lru);
	tcase_add_test(tc, test_prune_gone_first);
	tcase_add_test(tc, test_prune_locked);
	tcase_add_test(tc, test_prune_foreign_and_temp);
	tcase_add_test(tc, test_prune_no_dir);
	tcase_add_test(tc, test_archive_prunes_cache);
	tcase_add_test(tc, test_archive_explicit_path);
	suite_add_tcase(s, tc);
	return s;
}
