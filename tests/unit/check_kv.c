/* KV_RO over an indexed in-memory archive, on 512- and 4096-byte-sector devices (loop tests:
 * _i = 0 is 512, 1 is 4096).  Expected values come from the bytes the test put in the
 * archive; digests from GLib's SHA-256. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "index.h"
#include "kv.h"
#include "suites.h"
#include "testutil.h"

#define BIG_LEN 20000

static const uint64_t sp10_pairs[] = { 0, 100, 10000, 3000, 40000, 5000, 50000, 0 };
#define SP10_N 4
#define SP10_LOGICAL 50000
static const uint64_t old_pairs[] = { 0, 1, 511, 2, 4095, 4098, 12000, 700, 20000, 33, 39990, 10 };
#define OLD_N 6
#define OLD_LOGICAL 40000
static const uint64_t hole_pairs[] = { 65536, 0 };
#define HOLE_LOGICAL 65536

struct fix {
	GByteArray *a;
	struct tu_built t;
	struct tm_kv kv;
	uint8_t big[BIG_LEN];
	uint8_t *sp10, *sp00, *old, *hole;
};

static void fix_open(struct fix *f, uint32_t ss)
{
	uint8_t h[TU_BLOCK];
	GString *x = g_string_new(NULL);
	memset(f, 0, sizeof *f);
	f->a = g_byte_array_new();
	GByteArray *a = f->a;

	tu_header_init(h, TU_USTAR, "dir/", '5', 0);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 1000);
	tu_checksum(h, false);
	tu_append_block(a, h);

	tu_header_init(h, TU_USTAR, "dir/file.txt", '0', 12);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 2000);
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, "hello world\n", 12);

	tu_add_dir(a, "dir/sub/");

	tu_fill(f->big, BIG_LEN, 31337);
	tu_pax_str(x, "mtime", "1500000000.25");
	tu_add_pax(a, 'x', "PaxHeaders.1/big.bin", x);
	tu_add(a, TU_USTAR, "big.bin", '0', NULL, f->big, BIG_LEN);

	tu_add(a, TU_USTAR, "empty", '0', NULL, NULL, 0);
	tu_add(a, TU_USTAR, "link", '2', "dir/file.txt", NULL, 0);
	tu_add(a, TU_USTAR, "hard", '1', "big.bin", NULL, 0);

	f->sp10 = tu_sparse_ref(sp10_pairs, SP10_N, SP10_LOGICAL, 10);
	tu_add_sparse_pax(a, TU_SPARSE_10, "sparse10", sp10_pairs, SP10_N, SP10_LOGICAL, f->sp10);
	f->sp00 = tu_sparse_ref(sp10_pairs, SP10_N, SP10_LOGICAL, 20);
	tu_add_sparse_pax(a, TU_SPARSE_00, "sparse00", sp10_pairs, SP10_N, SP10_LOGICAL, f->sp00);
	f->old = tu_sparse_ref(old_pairs, OLD_N, OLD_LOGICAL, 30);
	tu_add_sparse_oldgnu(a, "oldsparse", old_pairs, OLD_N, OLD_LOGICAL, f->old);
	f->hole = tu_sparse_ref(hole_pairs, 1, HOLE_LOGICAL, 40);
	tu_add_sparse_oldgnu(a, "hole", hole_pairs, 1, HOLE_LOGICAL, f->hole);
	tu_finish(a);
	g_string_free(x, TRUE);

	tu_build(&f->t, a, ss);
	ck_assert_msg(f->t.idx != NULL, "no index: %s", f->t.diags.log->str);
	ck_assert_msg(f->t.idx->errors == 0, "errors: %s", f->t.diags.log->str);
	tm_kv_init(&f->kv, f->t.idx, f->t.block);
}

static void fix_close(struct fix *f)
{
	tu_built_free(&f->t);
	g_byte_array_free(f->a, TRUE);
	g_free(f->sp10);
	g_free(f->sp00);
	g_free(f->old);
	g_free(f->hole);
}

static void assert_bytes(GBytes *b, const void *want, size_t len, const char *what)
{
	ck_assert_msg(b != NULL, "%s: NULL", what);
	gsize n = 0;
	const void *d = g_bytes_get_data(b, &n);
	ck_assert_msg(n == len, "%s: %zu bytes, expected %zu", what, (size_t)n, len);
	ck_assert_msg(len == 0 || memcmp(d, want, len) == 0, "%s: wrong bytes", what);
}

static void assert_get(const struct fix *f, const char *key, const void *want, size_t len)
{
	struct tm_kv_error err;
	memset(&err, 0, sizeof err);
	GBytes *b = tm_kv_get(&f->kv, key, &err);
	ck_assert_msg(b != NULL, "get %s: code %d", key, err.code);
	assert_bytes(b, want, len, key);
	g_bytes_unref(b);
}

/* ---- tests ---- */

START_TEST(test_exists)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	static const struct {
		const char *key;
		enum tm_kv_kind kind;
	} cases[] = {
		{ "", TM_KV_DICTIONARY },         { "/", TM_KV_DICTIONARY },
		{ "dir", TM_KV_DICTIONARY },      { "/dir", TM_KV_DICTIONARY },
		{ "dir/sub", TM_KV_DICTIONARY },  { "dir/file.txt", TM_KV_VALUE },
		{ "/dir/file.txt", TM_KV_VALUE }, { "big.bin", TM_KV_VALUE },
		{ "empty", TM_KV_VALUE },         { "link", TM_KV_VALUE },
		{ "hard", TM_KV_VALUE },          { "sparse10", TM_KV_VALUE },
		{ "hole", TM_KV_VALUE },          { "nope", TM_KV_NONE },
		{ "dir/nope", TM_KV_NONE },       { "dir/file.txt/x", TM_KV_NONE },
		{ "link/x", TM_KV_NONE },         { "Dir", TM_KV_NONE },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		enum tm_kv_kind k = tm_kv_exists(&f.kv, cases[i].key);
		ck_assert_msg(k == cases[i].kind, "exists(\"%s\") = %d, expected %d", cases[i].key, k,
			      cases[i].kind);
		struct tm_kv_error err;
		memset(&err, 0, sizeof err);
		uint32_t ino = tm_kv_find(&f.kv, cases[i].key, &err);
		if (cases[i].kind == TM_KV_NONE) {
			ck_assert_uint_eq(ino, TM_NONE);
			ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);
		} else {
			ck_assert_uint_ne(ino, TM_NONE);
			ck_assert_int_eq(tm_kv_kind_of(&f.kv, ino), cases[i].kind);
		}
	}
	fix_close(&f);
}
END_TEST

START_TEST(test_get)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	assert_get(&f, "dir/file.txt", "hello world\n", 12);
	assert_get(&f, "/dir/file.txt", "hello world\n", 12);
	assert_get(&f, "big.bin", f.big, BIG_LEN);
	assert_get(&f, "empty", "", 0);
	assert_get(&f, "link", "dir/file.txt", 12); /* a symlink's value is its target */
	assert_get(&f, "hard", f.big, BIG_LEN);     /* a hard link's is the target's data */
	fix_close(&f);
}
END_TEST

START_TEST(test_get_partial)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	static const struct {
		const char *key;
		uint64_t off;
		size_t len;
		const char *want;
	} cases[] = {
		{ "dir/file.txt", 6, 5, "world" },
		{ "dir/file.txt", 0, 5, "hello" },
		{ "dir/file.txt", 8, 100, "rld\n" },   /* short at the end */
		{ "dir/file.txt", 11, 1, "\n" },
		{ "dir/file.txt", 12, 5, "" },         /* at the end */
		{ "dir/file.txt", 100, 5, "" },        /* past it */
		{ "dir/file.txt", 3, 0, "" },
		{ "link", 4, 4, "file" },
		{ "link", 10, 10, "xt" },
		{ "empty", 0, 10, "" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		struct tm_kv_error err;
		memset(&err, 0, sizeof err);
		GBytes *b = tm_kv_get_partial(&f.kv, cases[i].key, cases[i].off, cases[i].len, &err);
		char what[64];
		snprintf(what, sizeof what, "%s@%llu+%zu", cases[i].key,
			 (unsigned long long)cases[i].off, cases[i].len);
		assert_bytes(b, cases[i].want, strlen(cases[i].want), what);
		g_bytes_unref(b);
	}
	/* across sector boundaries of the big file, and to its end */
	const uint64_t offs[] = { 0, 1, 511, 4095, 4097, 8191, 12345, BIG_LEN - 4098,
				  BIG_LEN - 1 };
	for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
		struct tm_kv_error err;
		GBytes *b = tm_kv_get_partial(&f.kv, "big.bin", offs[i], 4098, &err);
		size_t want = offs[i] + 4098 > BIG_LEN ? BIG_LEN - offs[i] : 4098;
		assert_bytes(b, f.big + offs[i], want, "big.bin partial");
		g_bytes_unref(b);
	}
	/* the sparse file around a chunk edge */
	struct tm_kv_error err;
	GBytes *b = tm_kv_get_partial(&f.kv, "sparse10", 9990, 30, &err);
	assert_bytes(b, f.sp10 + 9990, 30, "sparse10 partial");
	g_bytes_unref(b);
	fix_close(&f);
}
END_TEST

struct listed {
	GString *s;
	int calls;
	int stop_at;
};

static int list_cb(void *ud, const char *name, uint32_t ino, enum tm_kv_kind kind)
{
	struct listed *l = ud;
	(void)ino;
	l->calls++;
	g_string_append_printf(l->s, "%s%s:%c", l->s->len ? "|" : "", name,
			       kind == TM_KV_VALUE ? 'V' : kind == TM_KV_DICTIONARY ? 'D' : '?');
	return l->calls == l->stop_at ? 42 : 0;
}

START_TEST(test_list)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	struct tm_kv_error err;
	struct listed l = { g_string_new(NULL), 0, -1 };

	ck_assert_int_eq(tm_kv_list(&f.kv, "", list_cb, &l, &err), 0);
	ck_assert_str_eq(l.s->str, "big.bin:V|dir:D|empty:V|hard:V|hole:V|link:V|oldsparse:V|"
				   "sparse00:V|sparse10:V");

	g_string_truncate(l.s, 0);
	ck_assert_int_eq(tm_kv_list(&f.kv, "/dir", list_cb, &l, &err), 0);
	ck_assert_str_eq(l.s->str, "file.txt:V|sub:D");

	g_string_truncate(l.s, 0);
	l.calls = 0;
	ck_assert_int_eq(tm_kv_list(&f.kv, "dir/sub", list_cb, &l, &err), 0);
	ck_assert_int_eq(l.calls, 0);

	/* the callback stops the listing */
	g_string_truncate(l.s, 0);
	l.calls = 0;
	l.stop_at = 2;
	ck_assert_int_eq(tm_kv_list(&f.kv, "", list_cb, &l, &err), 42);
	ck_assert_int_eq(l.calls, 2);
	ck_assert_str_eq(l.s->str, "big.bin:V|dir:D");
	l.stop_at = -1;

	/* errors */
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_list(&f.kv, "dir/file.txt", list_cb, &l, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_DICTIONARY_EXPECTED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_list(&f.kv, "link", list_cb, &l, &err), -1); /* not followed */
	ck_assert_int_eq(err.code, TM_KV_DICTIONARY_EXPECTED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_list(&f.kv, "nope", list_cb, &l, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);
	g_string_free(l.s, TRUE);
	fix_close(&f);
}
END_TEST

START_TEST(test_size)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	static const struct {
		const char *key;
		int64_t size;
	} cases[] = {
		{ "dir/file.txt", 12 },           { "big.bin", BIG_LEN },
		{ "hard", BIG_LEN },              { "empty", 0 },
		{ "link", 12 },                   { "sparse10", SP10_LOGICAL },
		{ "sparse00", SP10_LOGICAL },     { "oldsparse", OLD_LOGICAL },
		{ "hole", HOLE_LOGICAL },
	};
	struct tm_kv_error err;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		memset(&err, 0, sizeof err);
		int64_t n = tm_kv_size(&f.kv, cases[i].key, &err);
		ck_assert_msg(n == cases[i].size, "size(%s) = %lld, expected %lld", cases[i].key,
			      (long long)n, (long long)cases[i].size);
	}
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_size(&f.kv, "dir", &err), -1);
	ck_assert_int_eq(err.code, TM_KV_VALUE_EXPECTED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_size(&f.kv, "", &err), -1);
	ck_assert_int_eq(err.code, TM_KV_VALUE_EXPECTED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_size(&f.kv, "dir/nope", &err), -1);
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);
	fix_close(&f);
}
END_TEST

START_TEST(test_last_modified)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	static const struct {
		const char *key;
		int64_t sec;
		uint32_t nsec;
	} cases[] = {
		{ "dir/file.txt", 2000, 0 },
		{ "dir", 1000, 0 },
		{ "/dir/", 1000, 0 },
		{ "big.bin", 1500000000, 250000000 },
		{ "hard", 1500000000, 250000000 },
		{ "empty", 1700000000, 0 },
		{ "link", 1700000000, 0 },
	};
	struct tm_kv_error err;
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		int64_t sec = -1;
		uint32_t nsec = 1;
		ck_assert_int_eq(tm_kv_last_modified(&f.kv, cases[i].key, &sec, &nsec, &err), 0);
		ck_assert_msg(sec == cases[i].sec && nsec == cases[i].nsec,
			      "%s: sec %lld nsec %u, expected sec %lld nsec %u", cases[i].key,
			      (long long)sec, nsec, (long long)cases[i].sec, cases[i].nsec);
	}
	int64_t sec;
	uint32_t nsec;
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_last_modified(&f.kv, "nope", &sec, &nsec, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);
	fix_close(&f);
}
END_TEST

static void assert_digest(const struct fix *f, const char *key, const void *data, size_t len)
{
	struct tm_kv_error err;
	char out[65];
	memset(out, 'Z', sizeof out);
	memset(&err, 0, sizeof err);
	ck_assert_msg(tm_kv_digest(&f->kv, key, out, &err) == 0, "digest %s: code %d", key,
		      err.code);
	gchar *want = g_compute_checksum_for_data(G_CHECKSUM_SHA256, data, len);
	ck_assert_msg(strcmp(out, want) == 0, "digest %s: %.65s, expected %s", key, out, want);

	uint32_t ino = tm_kv_find(&f->kv, key, &err);
	memset(out, 'Z', sizeof out);
	ck_assert_int_eq(tm_kv_digest_ino(&f->kv, ino, out, &err), 0);
	ck_assert_str_eq(out, want);
	g_free(want);
}

START_TEST(test_digest)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	assert_digest(&f, "dir/file.txt", "hello world\n", 12);
	assert_digest(&f, "big.bin", f.big, BIG_LEN);
	assert_digest(&f, "hard", f.big, BIG_LEN);
	assert_digest(&f, "empty", "", 0);
	assert_digest(&f, "link", "dir/file.txt", 12);
	assert_digest(&f, "sparse10", f.sp10, SP10_LOGICAL);
	assert_digest(&f, "sparse00", f.sp00, SP10_LOGICAL);
	assert_digest(&f, "oldsparse", f.old, OLD_LOGICAL);
	assert_digest(&f, "hole", f.hole, HOLE_LOGICAL);

	/* a known value, independent of GLib */
	char out[65];
	struct tm_kv_error err;
	ck_assert_int_eq(tm_kv_digest(&f.kv, "empty", out, &err), 0);
	ck_assert_str_eq(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_digest(&f.kv, "dir", out, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_VALUE_EXPECTED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_kv_digest(&f.kv, "missing", out, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);
	fix_close(&f);
}
END_TEST

START_TEST(test_errors)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	struct tm_kv_error err;

	memset(&err, 0, sizeof err);
	ck_assert_ptr_null(tm_kv_get(&f.kv, "nope", &err));
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);

	memset(&err, 0, sizeof err);
	ck_assert_ptr_null(tm_kv_get(&f.kv, "dir", &err));
	ck_assert_int_eq(err.code, TM_KV_VALUE_EXPECTED);

	memset(&err, 0, sizeof err);
	ck_assert_ptr_null(tm_kv_get_partial(&f.kv, "", 0, 10, &err));
	ck_assert_int_eq(err.code, TM_KV_VALUE_EXPECTED);

	memset(&err, 0, sizeof err);
	ck_assert_ptr_null(tm_kv_get_partial(&f.kv, "dir/file.txt/x", 0, 10, &err));
	ck_assert_int_eq(err.code, TM_KV_NOT_FOUND);

	memset(&err, 0, sizeof err);
	struct listed l = { g_string_new(NULL), 0, -1 };
	ck_assert_int_eq(tm_kv_list(&f.kv, "big.bin", list_cb, &l, &err), -1);
	ck_assert_int_eq(err.code, TM_KV_DICTIONARY_EXPECTED);
	ck_assert_int_eq(l.calls, 0);
	g_string_free(l.s, TRUE);
	fix_close(&f);
}
END_TEST

/* kv.h: tm_kv_strerror prints what a user reads for each Mirage error. */
START_TEST(test_strerror)
{
	static const struct {
		enum tm_kv_code code;
		const char *want;
	} cases[] = {
		{ TM_KV_NOT_FOUND, "not found" },
		{ TM_KV_VALUE_EXPECTED, "is a directory" },
		{ TM_KV_DICTIONARY_EXPECTED, "not a directory" },
	};
	struct tm_kv_error err;
	char buf[256];
	memset(&err, 0, sizeof err);
	err.code = cases[_i].code;
	const char *s = tm_kv_strerror(&err, buf, sizeof buf);
	ck_assert_msg(s && strstr(s, cases[_i].want), "strerror(%d) = \"%s\", expected \"%s\"",
		      cases[_i].code, s ? s : "(null)", cases[_i].want);

	/* a backend error prints the backend's message */
	memset(&err, 0, sizeof err);
	err.code = TM_KV_BLOCK;
	tm_block_fail(&err.block, TM_BLOCK_IO, 5, "sector 7");
	s = tm_kv_strerror(&err, buf, sizeof buf);
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_nonnull(strstr(s, "sector 7"));
}
END_TEST

START_TEST(test_sparse_values)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	assert_get(&f, "sparse10", f.sp10, SP10_LOGICAL);
	assert_get(&f, "sparse00", f.sp00, SP10_LOGICAL);
	assert_get(&f, "oldsparse", f.old, OLD_LOGICAL);
	assert_get(&f, "hole", f.hole, HOLE_LOGICAL);
	/* holes really are zeros in the reference */
	ck_assert_int_eq(f.sp10[5000], 0);
	ck_assert_int_eq(f.hole[65535], 0);
	fix_close(&f);
}
END_TEST

static void random_reads(const struct fix *f, const char *key, const uint8_t *ref,
			 uint64_t size, uint32_t seed)
{
	struct tm_kv_error err;
	uint32_t ino = tm_kv_find(&f->kv, key, &err);
	ck_assert_uint_ne(ino, TM_NONE);
	GRand *r = g_rand_new_with_seed(seed);
	uint8_t buf[10000];
	for (int i = 0; i < 400; i++) {
		uint64_t off = (uint64_t)g_rand_int_range(r, 0, (gint32)size + 50);
		size_t len = (size_t)g_rand_int_range(r, 0, (gint32)sizeof buf);
		if (i % 10 == 0)
			len = (size_t)g_rand_int_range(r, 0, 3);
		size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
		memset(buf, 0xa5, sizeof buf);
		ssize_t n = tm_kv_read(&f->kv, ino, buf, len, off, &err);
		ck_assert_msg(n == (ssize_t)want, "%s: read(%llu, %zu) = %zd, expected %zu", key,
			      (unsigned long long)off, len, n, want);
		ck_assert_msg(want == 0 || memcmp(buf, ref + off, want) == 0,
			      "%s: read(%llu, %zu): wrong bytes", key, (unsigned long long)off, len);
		if (want < sizeof buf)
			ck_assert_msg(buf[want] == 0xa5, "%s: read(%llu, %zu) wrote past its count",
				      key, (unsigned long long)off, len);
	}
	/* far past the end */
	ck_assert_int_eq(tm_kv_read(&f->kv, ino, buf, 10, UINT64_MAX - 5, &err), 0);
	ck_assert_int_eq(tm_kv_read(&f->kv, ino, buf, 10, size, &err), 0);
	g_rand_free(r);
}

START_TEST(test_random_reads)
{
	struct fix f;
	fix_open(&f, tu_sector(_i));
	random_reads(&f, "big.bin", f.big, BIG_LEN, 1);
	random_reads(&f, "hard", f.big, BIG_LEN, 2);
	random_reads(&f, "sparse10", f.sp10, SP10_LOGICAL, 3);
	random_reads(&f, "sparse00", f.sp00, SP10_LOGICAL, 4);
	random_reads(&f, "oldsparse", f.old, OLD_LOGICAL, 5);
	random_reads(&f, "hole", f.hole, HOLE_LOGICAL, 6);
	random_reads(&f, "link", (const uint8_t *)"dir/file.txt", 12, 7);
	random_reads(&f, "dir/file.txt", (const uint8_t *)"hello world\n", 12, 8);
	fix_close(&f);
}
END_TEST

Suite *kv_suite(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("kv");
	tcase_add_loop_test(tc, test_exists, 0, 2);
	tcase_add_loop_test(tc, test_get, 0, 2);
	tcase_add_loop_test(tc, test_get_partial, 0, 2);
	tcase_add_loop_test(tc, test_list, 0, 2);
	tcase_add_loop_test(tc, test_size, 0, 2);
	tcase_add_loop_test(tc, test_last_modified, 0, 2);
	tcase_add_loop_test(tc, test_digest, 0, 2);
	tcase_add_loop_test(tc, test_errors, 0, 2);
	tcase_add_loop_test(tc, test_strerror, 0, 3);
	tcase_add_loop_test(tc, test_sparse_values, 0, 2);
	tcase_add_loop_test(tc, test_random_reads, 0, 2);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
