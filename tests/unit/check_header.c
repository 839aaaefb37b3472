/* Header blocks: numeric fields, tm_tar_header_decode for each format, old GNU sparse
 * extension blocks.  Layouts from POSIX ustar, GNU tar's "Basic Tar Format" and
 * "Old GNU Format", and star's header (131-byte prefix, "tar\0" at 508). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "suites.h"
#include "tar.h"
#include "testutil.h"

/* ---- tm_tar_number ---- */

struct numcase {
	const char *bytes;
	size_t len;
	bool ok;
	int64_t value;
};

static const struct numcase octal_cases[] = {
	{ "0000644\0", 8, true, 0644 },
	{ "000644 \0", 8, true, 0644 },          /* old tars: digits, space, NUL */
	{ "   644 \0", 8, true, 0644 },          /* leading spaces */
	{ "\0\0 644\0\0", 8, true, 0644 },       /* leading NULs and a space */
	{ "00000000017\0", 12, true, 017 },
	{ "777777777777", 12, true, 0777777777777LL }, /* whole width, no terminator */
	{ "17777777777\0", 12, true, 017777777777LL },
	{ "0000000\0", 8, true, 0 },
	{ "        ", 8, true, 0 },              /* all blank */
	{ "\0\0\0\0\0\0\0\0", 8, true, 0 },      /* all NUL */
	{ "7", 1, true, 7 },
	{ "1234", 2, true, 012 },                /* len bounds the field */
	{ "777777777777777777777", 21, true, INT64_MAX }, /* 2^63-1 */
	/* garbage */
	{ "0000x44\0", 8, false, 0 },
	{ "0000844\0", 8, false, 0 },            /* 8 is not an octal digit */
	{ "abcdefg\0", 8, false, 0 },
	{ "00009\0\0\0", 8, false, 0 },
	/* overflow */
	{ "1000000000000000000000", 22, false, 0 },   /* 2^63 */
	{ "777777777777777777777777", 24, false, 0 }, /* 2^72-1 */
};

START_TEST(test_number_octal)
{
	const struct numcase *c = &octal_cases[_i];
	int64_t v = -12345;
	bool ok = tm_tar_number((const uint8_t *)c->bytes, c->len, &v);
	ck_assert_msg(ok == c->ok, "case %d: tm_tar_number returned %d, expected %d", _i, ok,
		      c->ok);
	if (c->ok)
		ck_assert_msg(v == c->value, "case %d: got %lld, expected %lld", _i, (long long)v,
			      (long long)c->value);
}
END_TEST

START_TEST(test_number_base256)
{
	uint8_t f[12];
	int64_t v;

	/* 8-byte field, 0x80 then big-endian 256 */
	const uint8_t small[8] = { 0x80, 0, 0, 0, 0, 0, 1, 0 };
	ck_assert(tm_tar_number(small, 8, &v));
	ck_assert_int_eq(v, 256);

	const int64_t values[] = { 0, 1, 2097152, 3000000000LL, 8589934592LL, 1LL << 40,
				   INT64_MAX, -1, -2, -256, -3000000000LL, INT64_MIN };
	for (size_t i = 0; i < G_N_ELEMENTS(values); i++) {
		memset(f, 0xaa, sizeof f);
		tu_set_b256(f, 0, sizeof f, values[i]);
		v = 0x5a5a;
		ck_assert_msg(tm_tar_number(f, sizeof f, &v), "value %lld rejected",
			      (long long)values[i]);
		ck_assert_msg(v == values[i], "got %lld, expected %lld", (long long)v,
			      (long long)values[i]);
	}

	/* -1 is all 0xff */
	memset(f, 0xff, sizeof f);
	ck_assert(tm_tar_number(f, sizeof f, &v));
	ck_assert_int_eq(v, -1);

	/* positive overflow: bit 64 set */
	const uint8_t over1[12] = { 0x80, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0 };
	ck_assert(!tm_tar_number(over1, 12, &v));
	/* 2^63 does not fit int64_t */
	const uint8_t over2[12] = { 0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0 };
	ck_assert(!tm_tar_number(over2, 12, &v));
	/* negative overflow: -2^64 and -2^63-1 */
	const uint8_t under1[12] = { 0xff, 0xff, 0xff, 0xff - 1, 0, 0, 0, 0, 0, 0, 0, 0 };
	ck_assert(!tm_tar_number(under1, 12, &v));
	const uint8_t under2[12] = { 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
				     0xff, 0xff, 0xff, 0xff };
	ck_assert(!tm_tar_number(under2, 12, &v));
}
END_TEST

/* ---- tm_tar_header_decode ---- */

static enum tm_tar_hdr_status decode(const uint8_t blk[TU_BLOCK], struct tm_tar_header *h,
				     char err[TM_TAR_ERRLEN])
{
	memset(h, 0x5a, sizeof *h);
	err[0] = 0;
	return tm_tar_header_decode(blk, h, err);
}

START_TEST(test_header_zero)
{
	uint8_t b[TU_BLOCK] = { 0 };
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_ZERO);
}
END_TEST

START_TEST(test_header_v7)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	tu_header_init(b, TU_V7, "v7dir/file.c", '0', 1234);
	tu_set_octal(b, TU_MODE, TU_MODE_LEN, 0640);
	tu_set_octal(b, TU_UID, TU_UID_LEN, 17);
	tu_set_octal(b, TU_GID, TU_GID_LEN, 42);
	tu_set_octal(b, TU_MTIME, TU_MTIME_LEN, 500000000);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_V7);
	ck_assert_str_eq(h.name, "v7dir/file.c");
	ck_assert_str_eq(h.linkname, "");
	ck_assert_int_eq(h.typeflag, '0');
	ck_assert_int_eq(h.mode, 0640);
	ck_assert_int_eq(h.uid, 17);
	ck_assert_int_eq(h.gid, 42);
	ck_assert_int_eq(h.size, 1234);
	ck_assert_int_eq(h.mtime, 500000000);

	/* a v7 hard link */
	tu_header_init(b, TU_V7, "b", '1', 0);
	tu_set_str(b, TU_LINKNAME, TU_LINKNAME_LEN, "a");
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_V7);
	ck_assert_int_eq(h.typeflag, '1');
	ck_assert_str_eq(h.linkname, "a");
}
END_TEST

START_TEST(test_header_ustar)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	tu_header_init(b, TU_USTAR, "file.txt", '0', 99);
	tu_set_str(b, TU_PREFIX, TU_PREFIX_LEN, "some/deep/dir");
	tu_set_str(b, TU_UNAME, TU_UNAME_LEN, "alice");
	tu_set_str(b, TU_GNAME, TU_GNAME_LEN, "staff");
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_USTAR);
	ck_assert_str_eq(h.name, "some/deep/dir/file.txt");
	ck_assert_str_eq(h.uname, "alice");
	ck_assert_str_eq(h.gname, "staff");
	ck_assert_int_eq(h.size, 99);
	ck_assert_int_eq(h.mode, 0644);
	ck_assert_int_eq(h.uid, 1000);
	ck_assert_int_eq(h.gid, 1000);
	ck_assert_int_eq(h.mtime, 1700000000);

	/* no prefix: the name alone */
	tu_header_init(b, TU_USTAR, "plain", '0', 0);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_str_eq(h.name, "plain");

	/* a full 155-byte prefix and a full 100-byte name, neither NUL-terminated */
	char prefix[156], name[101], want[257];
	memset(prefix, 'p', 155);
	prefix[155] = 0;
	memset(name, 'n', 100);
	name[100] = 0;
	tu_header_init(b, TU_USTAR, name, '0', 0);
	tu_set_str(b, TU_PREFIX, TU_PREFIX_LEN, prefix);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	snprintf(want, sizeof want, "%s/%s", prefix, name);
	ck_assert_uint_eq(strlen(h.name), 256);
	ck_assert_str_eq(h.name, want);

	/* a character device */
	tu_header_init(b, TU_USTAR, "dev/null", '3', 0);
	tu_set_octal(b, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 1);
	tu_set_octal(b, TU_DEVMINOR, TU_DEVMINOR_LEN, 3);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.typeflag, '3');
	ck_assert_int_eq(h.devmajor, 1);
	ck_assert_int_eq(h.devminor, 3);

	/* a symlink */
	tu_header_init(b, TU_USTAR, "sym", '2', 0);
	tu_set_str(b, TU_LINKNAME, TU_LINKNAME_LEN, "../target/x");
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.typeflag, '2');
	ck_assert_str_eq(h.linkname, "../target/x");
}
END_TEST

START_TEST(test_header_full_width_strings)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];
	char name[101], link[101], user[33];

	for (int i = 0; i < 100; i++) {
		name[i] = (char)('a' + i % 26);
		link[i] = (char)('A' + i % 26);
	}
	name[100] = link[100] = 0;
	memset(user, 'u', 32);
	user[32] = 0;

	for (int f = 0; f < 3; f++) {
		enum tu_fmt fmt = f == 0 ? TU_V7 : f == 1 ? TU_USTAR : TU_GNU;
		tu_header_init(b, fmt, name, '1', 0);
		tu_set_str(b, TU_LINKNAME, TU_LINKNAME_LEN, link);
		if (fmt != TU_V7) {
			tu_set_str(b, TU_UNAME, TU_UNAME_LEN, user);
			tu_set_str(b, TU_GNAME, TU_GNAME_LEN, user);
		}
		/* the byte after the name field (mode) and after linkname (magic) are not NUL */
		ck_assert_int_ne(b[TU_MODE], 0);
		tu_checksum(b, false);
		ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
		ck_assert_uint_eq(strlen(h.name), 100);
		ck_assert_str_eq(h.name, name);
		ck_assert_uint_eq(strlen(h.linkname), 100);
		ck_assert_str_eq(h.linkname, link);
		if (fmt != TU_V7) {
			ck_assert_str_eq(h.uname, user);
			ck_assert_str_eq(h.gname, user);
		}
	}
}
END_TEST

START_TEST(test_header_oldgnu)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	tu_header_init(b, TU_GNU, "gnufile", '0', 10);
	tu_set_octal(b, TU_GNU_ATIME, 12, 1600000000);
	tu_set_octal(b, TU_GNU_CTIME, 12, 1600000001);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_OLDGNU);
	/* the bytes at 345 are atime, not a prefix */
	ck_assert_str_eq(h.name, "gnufile");
	ck_assert_int_eq(h.atime, 1600000000);
	ck_assert_int_eq(h.ctime, 1600000001);
	ck_assert_int_eq(h.size, 10);
	ck_assert_str_eq(h.uname, "user");

	/* old GNU sparse: 2 entries in the header, an extension follows */
	tu_header_init(b, TU_GNU, "sparse.img", 'S', 1536);
	tu_set_gnu_sparse(b, TU_GNU_SPARSE, 0, 0, 512);
	tu_set_gnu_sparse(b, TU_GNU_SPARSE, 1, 50000, 1024);
	b[TU_GNU_ISEXTENDED] = 1;
	tu_set_octal(b, TU_GNU_REALSIZE, 12, 100000);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_OLDGNU);
	ck_assert_int_eq(h.typeflag, 'S');
	ck_assert_str_eq(h.name, "sparse.img");
	ck_assert_int_eq(h.size, 1536);
	ck_assert_int_eq(h.realsize, 100000);
	ck_assert_int_eq(h.nsparse, 2);
	ck_assert_uint_eq(h.sparse[0].offset, 0);
	ck_assert_uint_eq(h.sparse[0].length, 512);
	ck_assert_uint_eq(h.sparse[1].offset, 50000);
	ck_assert_uint_eq(h.sparse[1].length, 1024);
	ck_assert(h.isextended);

	/* four entries, no extension */
	tu_header_init(b, TU_GNU, "four", 'S', 40);
	for (int i = 0; i < 4; i++)
		tu_set_gnu_sparse(b, TU_GNU_SPARSE, i, (uint64_t)i * 4096, 10);
	b[TU_GNU_ISEXTENDED] = 0;
	tu_set_octal(b, TU_GNU_REALSIZE, 12, 3 * 4096 + 10);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.nsparse, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert_uint_eq(h.sparse[i].offset, (uint64_t)i * 4096);
		ck_assert_uint_eq(h.sparse[i].length, 10);
	}
	ck_assert(!h.isextended);
	ck_assert_int_eq(h.realsize, 3 * 4096 + 10);
}
END_TEST

START_TEST(test_header_star)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];
	char prefix[TU_STAR_PREFIX_LEN + 1], want[300];

	/* a full 131-byte prefix, immediately followed by star's atime field */
	for (int i = 0; i < TU_STAR_PREFIX_LEN; i++)
		prefix[i] = (char)('a' + i % 26);
	prefix[TU_STAR_PREFIX_LEN] = 0;
	tu_header_init(b, TU_STAR, "starfile", '0', 5);
	tu_set_bytes(b, TU_PREFIX, TU_STAR_PREFIX_LEN, prefix, TU_STAR_PREFIX_LEN);
	tu_set_octal(b, TU_STAR_ATIME, 12, 1600000000);
	tu_set_octal(b, TU_STAR_CTIME, 12, 1600000001);
	ck_assert(memcmp(b + TU_STAR_XMAGIC, "tar\0", 4) == 0);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.format, TM_TAR_STAR);
	snprintf(want, sizeof want, "%s/starfile", prefix);
	ck_assert_str_eq(h.name, want);
	ck_assert_int_eq(h.size, 5);
}
END_TEST

START_TEST(test_header_checksum)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	/* unsigned */
	tu_header_init(b, TU_USTAR, "caf\xc3\xa9-\xe2\x82\xac", '0', 0);
	long usum = tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_str_eq(h.name, "caf\xc3\xa9-\xe2\x82\xac");

	/* signed (bytes >= 0x80 counted as negative) */
	long ssum = tu_checksum(b, true);
	ck_assert_int_ne(usum, ssum);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_str_eq(h.name, "caf\xc3\xa9-\xe2\x82\xac");

	/* 7 digits and a NUL */
	char buf[32];
	tu_checksum(b, false);
	snprintf(buf, sizeof buf, "%07lo", usum);
	memcpy(b + TU_CHKSUM, buf, 7);
	b[TU_CHKSUM + 7] = 0;
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);

	/* off by one */
	tu_checksum(b, false);
	snprintf(buf, sizeof buf, "%06lo", usum + 1);
	memcpy(b + TU_CHKSUM, buf, 6);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_BAD_CHECKSUM);
	ck_assert_msg(err[0] != 0, "no error message for a bad checksum");

	/* a changed byte after the checksum was computed */
	tu_header_init(b, TU_USTAR, "x", '0', 0);
	tu_checksum(b, false);
	b[TU_NAME] = 'y';
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_BAD_CHECKSUM);

	/* random data is not a header */
	tu_fill(b, TU_BLOCK, 77);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_BAD_CHECKSUM);
}
END_TEST

START_TEST(test_header_bad_field)
{
	static const struct {
		size_t off, len;
		const char *val;
	} bad[] = {
		{ TU_MODE, TU_MODE_LEN, "0x00644" },
		{ TU_UID, TU_UID_LEN, "00017z0" },
		{ TU_GID, TU_GID_LEN, "garbage" },
		{ TU_SIZE, TU_SIZE_LEN, "0000x000000" },
		{ TU_SIZE, TU_SIZE_LEN, "00000000009" },
		{ TU_MTIME, TU_MTIME_LEN, "1234567890a" },
	};
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		tu_header_init(b, TU_USTAR, "f", '0', 0);
		tu_set_str(b, bad[i].off, bad[i].len, bad[i].val);
		tu_checksum(b, false);
		ck_assert_msg(decode(b, &h, err) == TM_TAR_HDR_BAD_FIELD, "case %zu (%s)", i,
			      bad[i].val);
		ck_assert_msg(err[0] != 0, "case %zu: no error message", i);
	}
}
END_TEST

START_TEST(test_header_base256_fields)
{
	uint8_t b[TU_BLOCK];
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	tu_header_init(b, TU_GNU, "big", '0', 0);
	tu_set_b256(b, TU_SIZE, TU_SIZE_LEN, 10000000000LL); /* > 8 GiB - 1 */
	tu_set_b256(b, TU_UID, TU_UID_LEN, 3000000000LL);
	tu_set_b256(b, TU_MTIME, TU_MTIME_LEN, -1000);       /* before the epoch */
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.size, 10000000000LL);
	ck_assert_int_eq(h.uid, 3000000000LL);
	ck_assert_int_eq(h.mtime, -1000);

	/* 12 octal digits without a terminator (star, GNU for sizes near 8 GiB) */
	tu_header_init(b, TU_USTAR, "wide", '0', 0);
	tu_set_octal_full(b, TU_SIZE, TU_SIZE_LEN, 0777777777777LL);
	tu_checksum(b, false);
	ck_assert_int_eq(decode(b, &h, err), TM_TAR_HDR_OK);
	ck_assert_int_eq(h.size, 0777777777777LL);
}
END_TEST

/* ---- tm_tar_sparse_ext_decode ---- */

START_TEST(test_sparse_ext)
{
	uint8_t b[TU_BLOCK];
	char err[TM_TAR_ERRLEN] = "";
	bool more = false;
	GArray *map = g_array_new(FALSE, FALSE, sizeof(struct tm_tar_sparse_chunk));
	struct tm_tar_sparse_chunk first = { 7, 8 };
	g_array_append_val(map, first);

	/* a full block of 21 entries, another block follows */
	memset(b, 0, sizeof b);
	for (int i = 0; i < 21; i++)
		tu_set_gnu_sparse(b, 0, i, 100000 + (uint64_t)i * 8192, 512 + (uint64_t)i);
	b[TU_GNU_EXT_ISEXTENDED] = 1;
	ck_assert(tm_tar_sparse_ext_decode(b, map, &more, err));
	ck_assert(more);
	ck_assert_uint_eq(map->len, 22);
	ck_assert_uint_eq(g_array_index(map, struct tm_tar_sparse_chunk, 0).offset, 7);
	for (int i = 0; i < 21; i++) {
		struct tm_tar_sparse_chunk *c =
			&g_array_index(map, struct tm_tar_sparse_chunk, (guint)i + 1);
		ck_assert_uint_eq(c->offset, 100000 + (uint64_t)i * 8192);
		ck_assert_uint_eq(c->length, 512 + (uint64_t)i);
	}

	/* the last block: 2 entries, the rest empty */
	memset(b, 0, sizeof b);
	tu_set_gnu_sparse(b, 0, 0, 900000, 3);
	tu_set_gnu_sparse(b, 0, 1, 1000000, 0);
	b[TU_GNU_EXT_ISEXTENDED] = 0;
	more = true;
	ck_assert(tm_tar_sparse_ext_decode(b, map, &more, err));
	ck_assert(!more);
	ck_assert_uint_eq(map->len, 24);
	ck_assert_uint_eq(g_array_index(map, struct tm_tar_sparse_chunk, 22).offset, 900000);
	ck_assert_uint_eq(g_array_index(map, struct tm_tar_sparse_chunk, 22).length, 3);
	ck_assert_uint_eq(g_array_index(map, struct tm_tar_sparse_chunk, 23).offset, 1000000);
	ck_assert_uint_eq(g_array_index(map, struct tm_tar_sparse_chunk, 23).length, 0);

	/* a bad number */
	memset(b, 0, sizeof b);
	tu_set_gnu_sparse(b, 0, 0, 0, 10);
	memcpy(b + 24, "00000x00000", 11);
	memcpy(b + 36, "00000000012", 11);
	err[0] = 0;
	ck_assert(!tm_tar_sparse_ext_decode(b, map, &more, err));
	ck_assert(err[0] != 0);

	g_array_free(map, TRUE);
}
END_TEST

Suite *header_suite(void)
{
	Suite *s = suite_create("header");
	TCase *tc = tcase_create("number");
	tcase_add_loop_test(tc, test_number_octal, 0, (int)G_N_ELEMENTS(octal_cases));
	tcase_add_test(tc, test_number_base256);
	suite_add_tcase(s, tc);

	tc = tcase_create("decode");
	tcase_add_test(tc, test_header_zero);
	tcase_add_test(tc, test_header_v7);
	tcase_add_test(tc, test_header_ustar);
	tcase_add_test(tc, test_header_full_width_strings);
	tcase_add_test(tc, test_header_oldgnu);
	tcase_add_test(tc, test_header_star);
	tcase_add_test(tc, test_header_checksum);
	tcase_add_test(tc, test_header_bad_field);
	tcase_add_test(tc, test_header_base256_fields);
	suite_add_tcase(s, tc);

	tc = tcase_create("sparse_ext");
	tcase_add_test(tc, test_sparse_ext);
	suite_add_tcase(s, tc);
	return s;
}
