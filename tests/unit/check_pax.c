/* pax extended header records (POSIX pax "Extended Header"): tm_pax_parse and
 * tm_pax_parse_time.  Records are built with tu_pax_rec, which computes the self-including
 * length, except in the malformed cases which are written by hand. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "suites.h"
#include "tar.h"
#include "testutil.h"

static bool parse(const GString *s, struct tm_pax *p, char err[TM_TAR_ERRLEN])
{
	err[0] = 0;
	return tm_pax_parse((const uint8_t *)s->str, s->len, p, err);
}

static const struct tm_pax_xattr *find_xattr(const struct tm_pax *p, const char *name)
{
	if (!p->xattrs)
		return NULL;
	for (guint i = 0; i < p->xattrs->len; i++) {
		const struct tm_pax_xattr *x = g_ptr_array_index(p->xattrs, i);
		if (strcmp(x->name, name) == 0)
			return x;
	}
	return NULL;
}

static unsigned count_xattrs(const struct tm_pax *p, const char *name)
{
	unsigned n = 0;
	if (!p->xattrs)
		return 0;
	for (guint i = 0; i < p->xattrs->len; i++) {
		const struct tm_pax_xattr *x = g_ptr_array_index(p->xattrs, i);
		if (strcmp(x->name, name) == 0)
			n++;
	}
	return n;
}

static void assert_value(const struct tm_pax_xattr *x, const void *want, size_t len)
{
	ck_assert_ptr_nonnull(x);
	gsize n = 0;
	const void *d = g_bytes_get_data(x->value, &n);
	ck_assert_uint_eq(n, len);
	ck_assert(len == 0 || memcmp(d, want, len) == 0);
}

static const struct tm_tar_sparse_chunk *chunk(const struct tm_pax *p, guint i)
{
	ck_assert_ptr_nonnull(p->sparse_map);
	ck_assert_uint_gt(p->sparse_map->len, i);
	return &g_array_index(p->sparse_map, struct tm_tar_sparse_chunk, i);
}

START_TEST(test_pax_init)
{
	struct tm_pax p;
	tm_pax_init(&p);
	ck_assert_int_eq(p.path_s, TM_PAX_ABSENT);
	ck_assert_int_eq(p.size_s, TM_PAX_ABSENT);
	ck_assert_int_eq(p.mtime_s, TM_PAX_ABSENT);
	ck_assert(!p.has_atime);
	ck_assert(!p.has_ctime);
	ck_assert(!p.sparse);
	ck_assert_int_eq(p.sparse_size, -1);
	tm_pax_clear(&p);

	/* nothing to parse */
	char err[TM_TAR_ERRLEN];
	tm_pax_init(&p);
	ck_assert(tm_pax_parse((const uint8_t *)"", 0, &p, err));
	ck_assert_int_eq(p.path_s, TM_PAX_ABSENT);
	tm_pax_clear(&p);
}
END_TEST

START_TEST(test_pax_keys)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);

	tu_pax_str(s, "path", "a/very/long/path/name");
	tu_pax_str(s, "linkpath", "the/link/target");
	tu_pax_str(s, "size", "10000000000");
	tu_pax_str(s, "uid", "3000000000");
	tu_pax_str(s, "gid", "4000000000");
	tu_pax_str(s, "uname", "J\xc3\xb6rg");
	tu_pax_str(s, "gname", "staff group");
	tu_pax_str(s, "mtime", "1234567890.123456789");
	tu_pax_str(s, "atime", "-1.5");
	tu_pax_str(s, "ctime", "1700000000");

	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "parse failed: %s", err);
	ck_assert_int_eq(p.path_s, TM_PAX_SET);
	ck_assert_str_eq(p.path, "a/very/long/path/name");
	ck_assert_int_eq(p.linkpath_s, TM_PAX_SET);
	ck_assert_str_eq(p.linkpath, "the/link/target");
	ck_assert_int_eq(p.size_s, TM_PAX_SET);
	ck_assert_int_eq(p.size, 10000000000LL);
	ck_assert_int_eq(p.uid_s, TM_PAX_SET);
	ck_assert_int_eq(p.uid, 3000000000LL);
	ck_assert_int_eq(p.gid_s, TM_PAX_SET);
	ck_assert_int_eq(p.gid, 4000000000LL);
	ck_assert_int_eq(p.uname_s, TM_PAX_SET);
	ck_assert_str_eq(p.uname, "J\xc3\xb6rg");
	ck_assert_int_eq(p.gname_s, TM_PAX_SET);
	ck_assert_str_eq(p.gname, "staff group");
	ck_assert_int_eq(p.mtime_s, TM_PAX_SET);
	ck_assert_int_eq(p.mtime.sec, 1234567890);
	ck_assert_uint_eq(p.mtime.nsec, 123456789);
	ck_assert(p.has_atime);
	ck_assert_int_eq(p.atime.sec, -2);
	ck_assert_uint_eq(p.atime.nsec, 500000000);
	ck_assert(p.has_ctime);
	ck_assert_int_eq(p.ctime.sec, 1700000000);
	ck_assert_uint_eq(p.ctime.nsec, 0);
	ck_assert(!p.sparse);
	ck_assert_int_eq(p.sparse_size, -1);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_devices)
{
	/* star's and libarchive's device numbers */
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "SCHILY.devmajor", "259");
	tu_pax_str(s, "SCHILY.devminor", "65536");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_int_eq(p.devmajor_s, TM_PAX_SET);
	ck_assert_int_eq(p.devmajor, 259);
	ck_assert_int_eq(p.devminor_s, TM_PAX_SET);
	ck_assert_int_eq(p.devminor, 65536);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_value_bytes)
{
	/* the value is everything up to the record's final newline: '=' and '\n' included */
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "path", "a=b\nc d");
	tu_pax_str(s, "linkpath", "x=");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_str_eq(p.path, "a=b\nc d");
	ck_assert_str_eq(p.linkpath, "x=");
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_length_boundary)
{
	/* "LEN path=V\n": with 90 value bytes the record is 99 bytes, with 91 it is 101 (the
	 * length grows a digit) */
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	char v90[91], v91[92];
	memset(v90, 'x', 90);
	v90[90] = 0;
	memset(v91, 'y', 91);
	v91[91] = 0;

	GString *s = g_string_new(NULL);
	tu_pax_str(s, "path", v90);
	ck_assert_uint_eq(s->len, 99);
	ck_assert(strncmp(s->str, "99 ", 3) == 0);
	size_t first = s->len;
	tu_pax_str(s, "linkpath", v91); /* 8+91+3 = 102 -> 105 */
	tu_pax_str(s, "uname", "last");
	ck_assert(strncmp(s->str + first, "105 ", 4) == 0);

	GString *t = g_string_new(NULL);
	tu_pax_str(t, "path", v91);
	ck_assert_uint_eq(t->len, 101);
	ck_assert(strncmp(t->str, "101 ", 4) == 0);

	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_str_eq(p.path, v90);
	ck_assert_str_eq(p.linkpath, v91);
	ck_assert_str_eq(p.uname, "last");
	ck_assert_msg(parse(t, &p, err), "%s", err);
	ck_assert_str_eq(p.path, v91);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
	g_string_free(t, TRUE);
}
END_TEST

START_TEST(test_pax_last_wins)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL), *t = g_string_new(NULL);
	tu_pax_str(s, "path", "first");
	tu_pax_str(s, "size", "1");
	tu_pax_str(s, "path", "second");
	tu_pax_str(t, "size", "2");
	tm_pax_init(&p);
	ck_assert(parse(s, &p, err));
	ck_assert_str_eq(p.path, "second");
	ck_assert_int_eq(p.size, 1);
	/* a second parse goes on top of what p holds */
	ck_assert(parse(t, &p, err));
	ck_assert_str_eq(p.path, "second");
	ck_assert_int_eq(p.size, 2);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
	g_string_free(t, TRUE);
}
END_TEST

START_TEST(test_pax_deleted)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL), *t = g_string_new(NULL);
	tu_pax_str(s, "path", "p");
	tu_pax_str(s, "uname", "u");
	tu_pax_str(s, "size", "5");
	tm_pax_init(&p);
	ck_assert(parse(s, &p, err));
	ck_assert_int_eq(p.path_s, TM_PAX_SET);

	static const char *keys[] = { "path", "linkpath", "size", "uid", "gid",
				      "uname", "gname", "mtime" };
	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
		tu_pax_str(t, keys[i], "");
	ck_assert_msg(parse(t, &p, err), "%s", err);
	ck_assert_int_eq(p.path_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.linkpath_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.size_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.uid_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.gid_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.uname_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.gname_s, TM_PAX_DELETED);
	ck_assert_int_eq(p.mtime_s, TM_PAX_DELETED);

	/* set again after a deletion */
	g_string_truncate(t, 0);
	tu_pax_str(t, "path", "again");
	ck_assert(parse(t, &p, err));
	ck_assert_int_eq(p.path_s, TM_PAX_SET);
	ck_assert_str_eq(p.path, "again");
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
	g_string_free(t, TRUE);
}
END_TEST

START_TEST(test_pax_unknown_keys)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "comment", "made by hand");
	tu_pax_str(s, "charset", "ISO-IR 10646 2000 UTF-8");
	tu_pax_str(s, "hdrcharset", "BINARY");
	tu_pax_str(s, "SCHILY.fflags", "nodump");
	tu_pax_str(s, "LIBARCHIVE.creationtime", "1700000000");
	tu_pax_str(s, "APPLE.quarantine", "x");
	tu_pax_str(s, "some.vendor.thing", "");
	tu_pax_str(s, "realtime.any", "1");
	tu_pax_str(s, "uname", "kept");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_int_eq(p.path_s, TM_PAX_ABSENT);
	ck_assert_int_eq(p.size_s, TM_PAX_ABSENT);
	ck_assert_int_eq(p.mtime_s, TM_PAX_ABSENT);
	ck_assert(!p.has_ctime);
	ck_assert(!p.sparse);
	ck_assert(p.xattrs == NULL || p.xattrs->len == 0);
	ck_assert_str_eq(p.uname, "kept");
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_schily_xattr)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	static const char bin[] = { 'a', 0, 'b', 0, (char)0xff };
	static const char ctx[] = "system_u:object_r:user_home_t:s0";
	tu_pax_rec(s, "SCHILY.xattr.user.bin", bin, sizeof bin);
	tu_pax_rec(s, "SCHILY.xattr.security.selinux", ctx, sizeof ctx); /* with its NUL */
	tu_pax_str(s, "SCHILY.xattr.user.dup", "old");
	tu_pax_str(s, "SCHILY.xattr.user.dup", "new value");
	tu_pax_rec(s, "SCHILY.xattr.user.nl", "x\ny\n", 4);
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_ptr_nonnull(p.xattrs);
	ck_assert_uint_eq(p.xattrs->len, 4);
	assert_value(find_xattr(&p, "user.bin"), bin, sizeof bin);
	assert_value(find_xattr(&p, "security.selinux"), ctx, sizeof ctx);
	ck_assert_uint_eq(count_xattrs(&p, "user.dup"), 1);
	assert_value(find_xattr(&p, "user.dup"), "new value", 9);
	assert_value(find_xattr(&p, "user.nl"), "x\ny\n", 4);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_libarchive_xattr)
{
	/* libarchive: the name after the prefix is URL-encoded, the value base64 (libarchive
	 * itself writes it without '=' padding) */
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	static const uint8_t bin[] = { 0, 1, 2, 0xff };
	tu_pax_str(s, "LIBARCHIVE.xattr.user.sp%20ace%3D", "aGVsbG8");
	tu_pax_str(s, "LIBARCHIVE.xattr.user.bin", "AAEC/w==");
	tu_pax_str(s, "LIBARCHIVE.xattr.user.plain", "aGkgdGhlcmUh");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert_ptr_nonnull(p.xattrs);
	ck_assert_uint_eq(p.xattrs->len, 3);
	assert_value(find_xattr(&p, "user.sp ace="), "hello", 5);
	assert_value(find_xattr(&p, "user.bin"), bin, sizeof bin);
	assert_value(find_xattr(&p, "user.plain"), "hi there!", 9);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_sparse_00)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "GNU.sparse.size", "1000000");
	tu_pax_str(s, "GNU.sparse.numblocks", "3");
	tu_pax_str(s, "GNU.sparse.offset", "0");
	tu_pax_str(s, "GNU.sparse.numbytes", "100");
	tu_pax_str(s, "GNU.sparse.offset", "500000");
	tu_pax_str(s, "GNU.sparse.numbytes", "200");
	tu_pax_str(s, "GNU.sparse.offset", "1000000");
	tu_pax_str(s, "GNU.sparse.numbytes", "0");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert(p.sparse);
	ck_assert_int_eq(p.sparse_size, 1000000);
	ck_assert_ptr_nonnull(p.sparse_map);
	ck_assert_uint_eq(p.sparse_map->len, 3);
	ck_assert_uint_eq(chunk(&p, 0)->offset, 0);
	ck_assert_uint_eq(chunk(&p, 0)->length, 100);
	ck_assert_uint_eq(chunk(&p, 1)->offset, 500000);
	ck_assert_uint_eq(chunk(&p, 1)->length, 200);
	ck_assert_uint_eq(chunk(&p, 2)->offset, 1000000);
	ck_assert_uint_eq(chunk(&p, 2)->length, 0);
	ck_assert(!p.sparse_pending_offset);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_sparse_01)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "GNU.sparse.size", "9000");
	tu_pax_str(s, "GNU.sparse.numblocks", "2");
	tu_pax_str(s, "GNU.sparse.name", "real/name.img");
	tu_pax_str(s, "GNU.sparse.map", "0,100,5000,200");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert(p.sparse);
	ck_assert_int_eq(p.sparse_size, 9000);
	ck_assert_str_eq(p.sparse_name, "real/name.img");
	ck_assert_uint_eq(p.sparse_map->len, 2);
	ck_assert_uint_eq(chunk(&p, 0)->offset, 0);
	ck_assert_uint_eq(chunk(&p, 0)->length, 100);
	ck_assert_uint_eq(chunk(&p, 1)->offset, 5000);
	ck_assert_uint_eq(chunk(&p, 1)->length, 200);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

START_TEST(test_pax_sparse_10)
{
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "GNU.sparse.major", "1");
	tu_pax_str(s, "GNU.sparse.minor", "0");
	tu_pax_str(s, "GNU.sparse.name", "disk.img");
	tu_pax_str(s, "GNU.sparse.realsize", "1073741824");
	tm_pax_init(&p);
	ck_assert_msg(parse(s, &p, err), "%s", err);
	ck_assert(p.sparse);
	ck_assert_int_eq(p.sparse_major, 1);
	ck_assert_int_eq(p.sparse_minor, 0);
	ck_assert_str_eq(p.sparse_name, "disk.img");
	ck_assert_int_eq(p.sparse_size, 1073741824);
	ck_assert(p.sparse_map == NULL || p.sparse_map->len == 0);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

/* ---- malformed records: each case follows a valid "path=before" record ---- */

struct badcase {
	const char *what;
	const char *bytes; /* NULL: built from key/value */
	size_t len;
	const char *key, *value;
};

static const struct badcase bad_cases[] = {
	{ "length too short", "5 path=foo\n", 11, NULL, NULL },
	{ "length too long, next record follows", "13 path=foo\n12 path=bar\n", 24, NULL, NULL },
	{ "length past the end", "30 path=foo\n", 12, NULL, NULL },
	{ "missing '='", "11 pathfoo\n", 11, NULL, NULL },
	{ "missing newline", "12 path=fooX", 12, NULL, NULL },
	{ "non-digit length", "1x path=foo\n", 12, NULL, NULL },
	{ "no space after the length", "12path=foo\n\n", 12, NULL, NULL },
	{ "no length", " path=foo\n", 10, NULL, NULL },
	{ "zero length", "0 path=x\n", 9, NULL, NULL },
	{ "huge length", "99999999999999999999999 path=x\n", 31, NULL, NULL },
	{ "truncated length", "12", 2, NULL, NULL },
	{ "bad size", NULL, 0, "size", "12x" },
	{ "bad uid", NULL, 0, "uid", "abc" },
	{ "bad gid", NULL, 0, "gid", "1 2" },
	{ "size overflow", NULL, 0, "size", "99999999999999999999999999" },
	{ "bad sparse numbytes", NULL, 0, "GNU.sparse.numbytes", "x" },
	{ "bad sparse realsize", NULL, 0, "GNU.sparse.realsize", "-" },
};

START_TEST(test_pax_malformed)
{
	const struct badcase *c = &bad_cases[_i];
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	GString *s = g_string_new(NULL);
	tu_pax_str(s, "path", "before");
	if (c->bytes)
		g_string_append_len(s, c->bytes, (gssize)c->len);
	else
		tu_pax_str(s, c->key, c->value);
	tm_pax_init(&p);
	err[0] = 0;
	bool ok = tm_pax_parse((const uint8_t *)s->str, s->len, &p, err);
	ck_assert_msg(!ok, "%s: accepted", c->what);
	ck_assert_msg(err[0] != 0, "%s: no error message", c->what);
	ck_assert_msg(p.path_s == TM_PAX_SET && p.path && strcmp(p.path, "before") == 0,
		      "%s: the record before the bad one was not applied", c->what);
	tm_pax_clear(&p);
	g_string_free(s, TRUE);
}
END_TEST

/* ---- tm_pax_parse_time ---- */

struct timecase {
	const char *s;
	bool ok;
	int64_t sec;
	uint32_t nsec;
};

static const struct timecase time_cases[] = {
	{ "0", true, 0, 0 },
	{ "1234567890", true, 1234567890, 0 },
	{ "1234567890.5", true, 1234567890, 500000000 },
	{ "1.123456789", true, 1, 123456789 },
	{ "1.1234567899", true, 1, 123456789 },    /* truncated to nanoseconds */
	{ "1.000000001", true, 1, 1 },
	{ "1.05", true, 1, 50000000 },
	{ "17000000000", true, 17000000000LL, 0 },  /* past 2038 and 32 bits */
	{ "-2", true, -2, 0 },
	{ "-1.5", true, -2, 500000000 },            /* 1.5 s before the epoch */
	{ "-0.5", true, -1, 500000000 },
	{ "-1.25", true, -2, 750000000 },
	{ "-100.000000001", true, -101, 999999999 },
	{ "abc", false, 0, 0 },
	{ "1x", false, 0, 0 },
	{ "1.2.3", false, 0, 0 },
	{ "1.x", false, 0, 0 },
	{ "-", false, 0, 0 },
	{ "--1", false, 0, 0 },
	{ "99999999999999999999", false, 0, 0 },    /* overflows int64_t */
};

START_TEST(test_pax_time)
{
	const struct timecase *c = &time_cases[_i];
	struct tm_pax_time t = { 12345, 678 };
	bool ok = tm_pax_parse_time(c->s, strlen(c->s), &t);
	ck_assert_msg(ok == c->ok, "\"%s\": returned %d", c->s, ok);
	if (c->ok) {
		ck_assert_msg(t.sec == c->sec && t.nsec == c->nsec,
			      "\"%s\": got sec %lld nsec %u, expected sec %lld nsec %u", c->s,
			      (long long)t.sec, t.nsec, (long long)c->sec, c->nsec);
	}
}
END_TEST

START_TEST(test_pax_time_len)
{
	/* only s[0..len) is read */
	struct tm_pax_time t;
	ck_assert(tm_pax_parse_time("12345.678", 2, &t));
	ck_assert_int_eq(t.sec, 12);
	ck_assert_uint_eq(t.nsec, 0);
	ck_assert(tm_pax_parse_time("7.25junk", 4, &t));
	ck_assert_int_eq(t.sec, 7);
	ck_assert_uint_eq(t.nsec, 250000000);
}
END_TEST

Suite *pax_suite(void)
{
	Suite *s = suite_create("pax");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, test_pax_init);
	tcase_add_test(tc, test_pax_keys);
	tcase_add_test(tc, test_pax_devices);
	tcase_add_test(tc, test_pax_value_bytes);
	tcase_add_test(tc, test_pax_length_boundary);
	tcase_add_test(tc, test_pax_last_wins);
	tcase_add_test(tc, test_pax_deleted);
	tcase_add_test(tc, test_pax_unknown_keys);
	tcase_add_test(tc, test_pax_schily_xattr);
	tcase_add_test(tc, test_pax_libarchive_xattr);
	tcase_add_test(tc, test_pax_sparse_00);
	tcase_add_test(tc, test_pax_sparse_01);
	tcase_add_test(tc, test_pax_sparse_10);
	tcase_add_loop_test(tc, test_pax_malformed, 0, (int)G_N_ELEMENTS(bad_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("time");
	tcase_add_loop_test(tc, test_pax_time, 0, (int)G_N_ELEMENTS(time_cases));
	tcase_add_test(tc, test_pax_time_len);
	suite_add_tcase(s, tc);
	return s;
}
