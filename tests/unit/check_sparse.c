/* Sparse maps: GNU.sparse.map lists (format 0.1), maps in the data area (format 1.0), and
 * validation against the logical and stored sizes (GNU tar manual, "Sparse Formats"). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "suites.h"
#include "tar.h"
#include "testutil.h"

typedef struct tm_tar_sparse_chunk chunk_t;

static GArray *new_map(void)
{
	return g_array_new(FALSE, FALSE, sizeof(chunk_t));
}

static GArray *make_map(const uint64_t *pairs, size_t n)
{
	GArray *m = new_map();
	for (size_t i = 0; i < n; i++) {
		chunk_t c = { pairs[2 * i], pairs[2 * i + 1] };
		g_array_append_val(m, c);
	}
	return m;
}

static void assert_map(const GArray *m, const uint64_t *pairs, size_t n)
{
	ck_assert_uint_eq(m->len, n);
	for (size_t i = 0; i < n; i++) {
		const chunk_t *c = &g_array_index(m, chunk_t, (guint)i);
		ck_assert_msg(c->offset == pairs[2 * i] && c->length == pairs[2 * i + 1],
			      "chunk %zu: (%llu,%llu), expected (%llu,%llu)", i,
			      (unsigned long long)c->offset, (unsigned long long)c->length,
			      (unsigned long long)pairs[2 * i], (unsigned long long)pairs[2 * i + 1]);
	}
}

/* ---- tm_sparse_parse_list ---- */

START_TEST(test_list_ok)
{
	char err[TM_TAR_ERRLEN] = "";
	GArray *m = new_map();
	ck_assert_msg(tm_sparse_parse_list("0,10,20,5", m, err), "%s", err);
	const uint64_t want[] = { 0, 10, 20, 5 };
	assert_map(m, want, 2);

	/* appends */
	ck_assert_msg(tm_sparse_parse_list("1099511627776,512,1099511628288,0", m, err), "%s", err);
	const uint64_t want2[] = { 0, 10, 20, 5, 1099511627776ULL, 512, 1099511628288ULL, 0 };
	assert_map(m, want2, 4);
	g_array_free(m, TRUE);

	m = new_map();
	ck_assert(tm_sparse_parse_list("4096,1", m, err));
	const uint64_t want3[] = { 4096, 1 };
	assert_map(m, want3, 1);
	g_array_free(m, TRUE);
}
END_TEST

static const char *const bad_lists[] = {
	"0,10,20",        /* odd count */
	"0,x",
	"a,b",
	"-1,5",
	"0;10",
	"0,10,,5",
	"18446744073709551616,1", /* 2^64 */
	"0,10 ",
};

START_TEST(test_list_bad)
{
	char err[TM_TAR_ERRLEN] = "";
	GArray *m = new_map();
	ck_assert_msg(!tm_sparse_parse_list(bad_lists[_i], m, err), "\"%s\" accepted",
		      bad_lists[_i]);
	ck_assert_msg(err[0] != 0, "\"%s\": no message", bad_lists[_i]);
	g_array_free(m, TRUE);
}
END_TEST

/* ---- tm_sparse_parse_v1 ---- */

/* The map text padded with NULs to a block boundary, then extra bytes of file data. */
static GByteArray *v1_block(const char *text, size_t data_after)
{
	GByteArray *a = g_byte_array_new();
	g_byte_array_append(a, (const guint8 *)text, (guint)strlen(text));
	if (a->len % TU_BLOCK)
		tu_append_zeros(a, TU_BLOCK - a->len % TU_BLOCK);
	for (size_t i = 0; i < data_after; i++) {
		guint8 c = (guint8)('A' + i % 26);
		g_byte_array_append(a, &c, 1);
	}
	return a;
}

START_TEST(test_v1_single_block)
{
	char err[TM_TAR_ERRLEN] = "";
	GByteArray *a = v1_block("3\n0\n100\n1000\n200\n5000\n0\n", 700);
	GArray *m = new_map();
	size_t consumed = 1;
	int r = tm_sparse_parse_v1(a->data, a->len, m, &consumed, err);
	ck_assert_msg(r == 1, "returned %d: %s", r, err);
	ck_assert_uint_eq(consumed, 512);
	const uint64_t want[] = { 0, 100, 1000, 200, 5000, 0 };
	assert_map(m, want, 3);
	g_array_free(m, TRUE);

	/* exactly the padded block */
	m = new_map();
	consumed = 0;
	r = tm_sparse_parse_v1(a->data, 512, m, &consumed, err);
	ck_assert_int_eq(r, 1);
	ck_assert_uint_eq(consumed, 512);
	assert_map(m, want, 3);
	g_array_free(m, TRUE);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_v1_multi_block)
{
	/* 60 entries of 11- and 10-digit numbers: 3 + 60 * (12 + 11) = 1383 bytes -> 3 blocks */
	GString *t = g_string_new("60\n");
	uint64_t pairs[120];
	for (int i = 0; i < 60; i++) {
		pairs[2 * i] = 10000000000ULL + (uint64_t)i * 20000000ULL;
		pairs[2 * i + 1] = 1000000000ULL + (uint64_t)i;
		g_string_append_printf(t, "%llu\n%llu\n", (unsigned long long)pairs[2 * i],
				       (unsigned long long)pairs[2 * i + 1]);
	}
	ck_assert_uint_eq(t->len, 1383);
	GByteArray *a = v1_block(t->str, 2000);
	ck_assert_uint_eq(a->len, 1536 + 2000);

	char err[TM_TAR_ERRLEN] = "";
	size_t consumed = 0;
	GArray *m = new_map();
	int r = tm_sparse_parse_v1(a->data, a->len, m, &consumed, err);
	ck_assert_msg(r == 1, "returned %d: %s", r, err);
	ck_assert_uint_eq(consumed, 1536);
	assert_map(m, pairs, 60);
	g_array_free(m, TRUE);

	/* proper prefixes: read more */
	const size_t prefixes[] = { 0, 1, 3, 100, 512, 1024, 1382 };
	for (size_t i = 0; i < G_N_ELEMENTS(prefixes); i++) {
		m = new_map();
		consumed = 777;
		r = tm_sparse_parse_v1(a->data, prefixes[i], m, &consumed, err);
		ck_assert_msg(r == 0, "prefix of %zu bytes: returned %d (%s)", prefixes[i], r, err);
		g_array_free(m, TRUE);
	}
	g_byte_array_free(a, TRUE);
	g_string_free(t, TRUE);
}
END_TEST

START_TEST(test_v1_prefix_small)
{
	/* cut inside the numbers of a one-block map */
	const char *text = "2\n0\n10\n4096\n5\n";
	char err[TM_TAR_ERRLEN] = "";
	for (size_t len = 0; len < strlen(text); len++) {
		GArray *m = new_map();
		size_t consumed = 0;
		int r = tm_sparse_parse_v1((const uint8_t *)text, len, m, &consumed, err);
		ck_assert_msg(r == 0, "prefix of %zu bytes: returned %d (%s)", len, r, err);
		g_array_free(m, TRUE);
	}
}
END_TEST

static const char *const bad_v1[] = {
	"x\n",
	"2\n0\nab\n10\n5\n",
	"2\n0\n-1\n10\n5\n",
	"1\n0\n5",                  /* a number ended by NUL padding, not '\n' */
	"\n",                       /* an empty number */
	"1\n\n5\n",
	"99999999999999999999999\n", /* the count overflows */
	"1000000000000000000\n",    /* a count no archive can hold */
	"1\n99999999999999999999999\n5\n",
};

START_TEST(test_v1_bad)
{
	const char *text = bad_v1[_i];
	GByteArray *a = v1_block(text, 0);
	char err[TM_TAR_ERRLEN] = "";
	size_t consumed = 0;
	GArray *m = new_map();
	int r = tm_sparse_parse_v1(a->data, a->len, m, &consumed, err);
	ck_assert_msg(r == -1, "case %d: returned %d", _i, r);
	ck_assert_msg(err[0] != 0, "case %d: no message", _i);
	/* nothing huge was allocated for a huge count */
	ck_assert_uint_lt(m->len, 1000);
	g_array_free(m, TRUE);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* ---- tm_sparse_validate ---- */

struct valcase {
	const char *what;
	uint64_t pairs[8];
	size_t n;
	uint64_t logical, stored;
	bool ok;
};

static const struct valcase val_cases[] = {
	{ "in order", { 0, 10, 20, 5 }, 2, 25, 15, true },
	{ "hole at the end", { 0, 10, 20, 5 }, 2, 100, 15, true },
	{ "hole at the start", { 4096, 10 }, 1, 4106, 10, true },
	{ "adjacent chunks", { 0, 10, 10, 10 }, 2, 20, 20, true },
	{ "trailing zero-length chunk", { 0, 10, 100, 0 }, 2, 100, 10, true },
	{ "only a zero-length chunk", { 5000, 0 }, 1, 5000, 0, true },
	{ "out of order", { 20, 5, 0, 10 }, 2, 25, 15, false },
	{ "overlapping", { 0, 10, 5, 10 }, 2, 25, 20, false },
	{ "same offset twice", { 0, 10, 0, 10 }, 2, 25, 20, false },
	{ "past the logical end", { 0, 10, 20, 10 }, 2, 25, 20, false },
	{ "starts past the end", { 30, 1 }, 1, 25, 1, false },
	{ "stored too big", { 0, 10, 20, 5 }, 2, 25, 16, false },
	{ "stored too small", { 0, 10, 20, 5 }, 2, 25, 14, false },
	{ "offset+length overflows", { 0, 10, UINT64_MAX - 5, 10 }, 2, UINT64_MAX, 20, false },
};

START_TEST(test_validate)
{
	const struct valcase *c = &val_cases[_i];
	GArray *m = make_map(c->pairs, c->n);
	char err[TM_TAR_ERRLEN] = "";
	bool ok = tm_sparse_validate(m, c->logical, c->stored, err);
	ck_assert_msg(ok == c->ok, "%s: returned %d", c->what, ok);
	if (!ok)
		ck_assert_msg(err[0] != 0, "%s: no message", c->what);
	g_array_free(m, TRUE);
}
END_TEST

Suite *sparse_suite(void)
{
	Suite *s = suite_create("sparse");
	TCase *tc = tcase_create("list");
	tcase_add_test(tc, test_list_ok);
	tcase_add_loop_test(tc, test_list_bad, 0, (int)G_N_ELEMENTS(bad_lists));
	suite_add_tcase(s, tc);

	tc = tcase_create("v1");
	tcase_add_test(tc, test_v1_single_block);
	tcase_add_test(tc, test_v1_multi_block);
	tcase_add_test(tc, test_v1_prefix_small);
	tcase_add_loop_test(tc, test_v1_bad, 0, (int)G_N_ELEMENTS(bad_v1));
	suite_add_tcase(s, tc);

	tc = tcase_create("validate");
	tcase_add_loop_test(tc, test_validate, 0, (int)G_N_ELEMENTS(val_cases));
	suite_add_tcase(s, tc);
	return s;
}
