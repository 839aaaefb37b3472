/* The tar writer (tar_writer.c), read back by our own decoders.
 *
 * Each description is encoded, its size functions checked against what the encoder wrote,
 * and the member read back twice: by tm_tar_reader over the whole archive (header, data,
 * padding, end marker; no diagnostic allowed), and block by block with tm_tar_header_decode
 * and a record walker written here from the pax spec, which says which keys the 'x' header
 * holds.  Exact bytes are compared with blocks and records built by testutil.h's helpers
 * (written from POSIX, not from the code under test). */
#include <check.h>

#include "suites.h"
#include "testutil.h"

/* ---- reading back ---- */

struct diag_log {
	GString *s;
};

static void diag_cb(void *ud, enum tm_tar_diag_level level, uint64_t off, const char *msg)
{
	struct diag_log *l = ud;
	g_string_append_printf(l->s, "%s @%llu: %s\n", level == TM_TAR_ERROR ? "E" : "W",
			       (unsigned long long)off, msg);
}

/* The pax records at data[0..len), as "key,key,..." (an xattr as "SCHILY.xattr.NAME");
 * each record's length must frame it exactly. */
static char *record_keys(const uint8_t *data, size_t len)
{
	GString *keys = g_string_new(NULL);
	size_t pos = 0;
	while (pos < len) {
		size_t reclen = 0, i = pos;
		while (i < len && data[i] >= '0' && data[i] <= '9')
			reclen = reclen * 10 + (size_t)(data[i++] - '0');
		ck_assert_msg(i > pos && i < len && data[i] == ' ', "record at %zu: no length",
			      pos);
		ck_assert_msg(reclen <= len - pos && data[pos + reclen - 1] == '\n',
			      "record at %zu: length %zu does not frame it", pos, reclen);
		const uint8_t *k = data + i + 1;
		const uint8_t *eq = memchr(k, '=', pos + reclen - (size_t)(k - data));
		ck_assert_msg(eq != NULL, "record at %zu: no '='", pos);
		if (keys->len)
			g_string_append_c(keys, ',');
		g_string_append_len(keys, (const char *)k, eq - k);
		pos += reclen;
	}
	return g_string_free(keys, FALSE);
}

/* The value of the first record with key (NUL-terminated copy), or NULL. */
static char *record_value(const uint8_t *data, size_t len, const char *key, size_t *vlen)
{
	size_t pos = 0, klen = strlen(key);
	while (pos < len) {
		char *end;
		size_t reclen = strtoul((const char *)data + pos, &end, 10);
		const char *k = end + 1;
		if (!memcmp(k, key, klen) && k[klen] == '=') {
			const char *v = k + klen + 1;
			*vlen = (size_t)((const char *)data + pos + reclen - 1 - v);
			return g_strndup(v, *vlen);
		}
		pos += reclen;
	}
	return NULL;
}

struct encoded {
	uint8_t *hdr;       /* the header blocks */
	size_t hdr_len;
	char *keys;         /* pax record keys, "" for a plain ustar header */
	const uint8_t *pax; /* the pax records inside hdr, or NULL */
	size_t pax_len;
	struct tm_tar_header h; /* the ustar block, decoded */
};

/* The first record for key holds want. */
static void assert_record(const struct encoded *e, const char *key, const char *want)
{
	size_t vlen;
	char *v = record_value(e->pax, e->pax_len, key, &vlen);
	ck_assert_msg(v && !strcmp(v, want), "record %s='%s', want '%s'", key, v ? v : "(none)",
		      want);
	g_free(v);
}

static void encoded_free(struct encoded *e)
{
	g_free(e->hdr);
	g_free(e->keys);
}

/* Encode d, checking the size functions, determinism, bounds and the blocks' framing. */
static void encode(const struct tm_tar_desc *d, struct encoded *e)
{
	char err[TM_TAR_ERRLEN] = "";
	memset(e, 0, sizeof *e);
	size_t n = tm_tar_member_header_size(d, err);
	ck_assert_msg(n > 0, "header size: %s", err);
	ck_assert_uint_eq(n % TU_BLOCK, 0);
	uint64_t pad = tm_tar_padding((uint64_t)d->size);
	ck_assert_uint_eq((d->size + pad) % TU_BLOCK, 0);
	ck_assert_uint_lt(pad, TU_BLOCK);
	ck_assert_uint_eq(tm_tar_member_total(d, err), n + (uint64_t)d->size + pad);

	/* Exactly n bytes written: a guard byte after them stays, a short buffer is refused
	 * untouched. */
	uint8_t *buf = g_malloc(n + 1);
	memset(buf, 0xa5, n + 1);
	ck_assert_uint_eq(tm_tar_encode_header(d, buf, n - 1, err), 0);
	ck_assert_msg(err[0] && !strchr(err, '\n'), "short buffer: '%s'", err);
	for (size_t i = 0; i <= n; i++)
		ck_assert_uint_eq(buf[i], 0xa5);
	ck_assert_uint_eq(tm_tar_encode_header(d, buf, n + 1, err), n);
	ck_assert_uint_eq(buf[n], 0xa5);
	uint8_t *again = g_malloc(n);
	ck_assert_uint_eq(tm_tar_encode_header(d, again, n, err), n);
	ck_assert_msg(!memcmp(buf, again, n), "two encodings differ");
	g_free(again);
	e->hdr = buf;
	e->hdr_len = n;

	/* Every block is a valid ustar header; an 'x' one first when there are records. */
	char derr[TM_TAR_ERRLEN];
	struct tm_tar_header x;
	ck_assert_int_eq(tm_tar_header_decode(buf, &x, derr), TM_TAR_HDR_OK);
	ck_assert_int_eq(x.format, TM_TAR_USTAR);
	ck_assert(!memcmp(buf + TU_MAGIC, "ustar\0" "00", 8));
	if (x.typeflag == 'x') {
		ck_assert_uint_eq(n, 2 * TU_BLOCK + (x.size + TU_BLOCK - 1) / TU_BLOCK * TU_BLOCK);
		e->pax = buf + TU_BLOCK;
		e->pax_len = (size_t)x.size;
		e->keys = record_keys(e->pax, e->pax_len);
		for (size_t i = TU_BLOCK + e->pax_len; i < n - TU_BLOCK; i++)
			ck_assert_uint_eq(buf[i], 0);
		ck_assert_int_eq(x.mode, 0644);
		ck_assert_int_eq(x.uid, 0);
		ck_assert_int_eq(x.gid, 0);
	} else {
		ck_assert_uint_eq(n, TU_BLOCK);
		e->keys = g_strdup("");
	}
	const uint8_t *last = buf + n - TU_BLOCK;
	ck_assert_int_eq(tm_tar_header_decode(last, &e->h, derr), TM_TAR_HDR_OK);
	ck_assert_int_eq(e->h.format, TM_TAR_USTAR);
	/* The checksum as GNU tar writes it: 6 octal digits, NUL, space. */
	for (int i = 0; i < 6; i++)
		ck_assert(last[TU_CHKSUM + i] >= '0' && last[TU_CHKSUM + i] <= '7');
	ck_assert_uint_eq(last[TU_CHKSUM + 6], 0);
	ck_assert_uint_eq(last[TU_CHKSUM + 7], ' ');
}

/* The path as stored: a directory's with one trailing '/'. */
static char *stored_path(const struct tm_tar_desc *d)
{
	size_t n = d->path_len ? d->path_len : strlen(d->path);
	if (d->type == TM_TAR_DIR && d->path[n - 1] != '/')
		return g_strdup_printf("%.*s/", (int)n, d->path);
	return g_strndup(d->path, n);
}

/* The whole member read back by tm_tar_reader: every field as described. */
static void read_back(const struct tm_tar_desc *d, const struct encoded *e)
{
	uint64_t size = (uint64_t)d->size;
	/* Small data is a pattern, checked; large data is the zeros of the device. */
	bool small = size <= 64 * 1024;
	GByteArray *a = g_byte_array_new();
	g_byte_array_append(a, e->hdr, (guint)e->hdr_len);
	uint8_t *data = NULL;
	if (small) {
		data = g_malloc(size + 1);
		tu_fill(data, size, (uint32_t)size + 7);
		g_byte_array_append(a, data, (guint)size);
		tu_append_zeros(a, tm_tar_padding(size));
	}
	uint8_t end[TM_TAR_END_SIZE];
	memset(end, 0xff, sizeof end);
	tm_tar_encode_end(end);
	for (size_t i = 0; i < sizeof end; i++)
		ck_assert_uint_eq(end[i], 0);
	uint64_t total = e->hdr_len + size + tm_tar_padding(size) + TM_TAR_END_SIZE;
	if (small)
		g_byte_array_append(a, end, sizeof end);
	struct tm_block *b = tu_zext_new(a->data, a->len, total);

	struct diag_log log = { g_string_new(NULL) };
	struct tm_tar_reader *r = tm_tar_reader_new(b, diag_cb, &log);
	struct tm_tar_member *m;
	struct tm_block_error berr;
	ck_assert_int_eq(tm_tar_reader_next(r, &m, &berr), TM_TAR_MEMBER);
	char *path = stored_path(d);
	ck_assert_msg(!strcmp(m->path, path), "path '%s', want '%s'", m->path, path);
	ck_assert_int_eq(m->type, d->type);
	if (d->linkpath) {
		size_t ln = d->linkpath_len ? d->linkpath_len : strlen(d->linkpath);
		ck_assert_uint_eq(strlen(m->linkpath), ln);
		ck_assert(!memcmp(m->linkpath, d->linkpath, ln));
	} else {
		ck_assert_str_eq(m->linkpath, "");
	}
	ck_assert_uint_eq(m->mode, d->mode);
	ck_assert_int_eq(m->uid, d->uid);
	ck_assert_int_eq(m->gid, d->gid);
	ck_assert_str_eq(m->uname, d->uname ? d->uname : "");
	ck_assert_str_eq(m->gname, d->gname ? d->gname : "");
	ck_assert_int_eq(m->mtime, d->mtime.sec);
	ck_assert_uint_eq(m->mtime_nsec, d->mtime.nsec);
	uint64_t want_size = d->type == TM_TAR_REG ? size
			     : d->type == TM_TAR_SYMLINK ? strlen(m->linkpath) : 0;
	ck_assert_uint_eq(m->size, want_size);
	ck_assert_uint_eq(m->header_offset, 0);
	ck_assert_uint_eq(m->data_offset, e->hdr_len);
	if (d->type == TM_TAR_REG)
		ck_assert_uint_eq(m->stored_size, size);
	if (d->type == TM_TAR_CHR || d->type == TM_TAR_BLK) {
		ck_assert_uint_eq(m->devmajor, d->devmajor);
		ck_assert_uint_eq(m->devminor, d->devminor);
	}
	ck_assert(m->sparse == NULL);
	ck_assert_uint_eq(m->xattrs ? m->xattrs->len : 0, d->nxattrs);
	for (size_t i = 0; i < d->nxattrs; i++) {
		const struct tm_pax_xattr *x = g_ptr_array_index(m->xattrs, i);
		ck_assert_str_eq(x->name, d->xattrs[i].name);
		gsize vlen;
		const void *v = g_bytes_get_data(x->value, &vlen);
		ck_assert_uint_eq(vlen, d->xattrs[i].len);
		ck_assert(vlen == 0 || !memcmp(v, d->xattrs[i].value, vlen));
	}
	if (small && size) {
		uint8_t *got = g_malloc(size);
		ck_assert_int_eq(tm_block_pread(b, got, size, m->data_offset, &berr), 0);
		ck_assert(!memcmp(got, data, size));
		g_free(got);
	}
	ck_assert_int_eq(tm_tar_reader_next(r, &m, &berr), TM_TAR_END);
	ck_assert(!tm_tar_reader_truncated(r));
	ck_assert_msg(log.s->len == 0, "reader diagnostics: %s", log.s->str);
	tm_tar_reader_free(r);
	tm_block_disconnect(b);
	g_string_free(log.s, TRUE);
	g_free(path);
	g_free(data);
	g_byte_array_free(a, TRUE);
}

/* Encode, read back, and check that the pax records are exactly want_keys ("" for none). */
static void roundtrip(const struct tm_tar_desc *d, const char *want_keys)
{
	struct encoded e;
	encode(d, &e);
	ck_assert_msg(!strcmp(e.keys, want_keys), "pax keys '%s', want '%s'", e.keys, want_keys);
	read_back(d, &e);
	encoded_free(&e);
}

static struct tm_tar_desc file_desc(const char *path, int64_t size)
{
	return (struct tm_tar_desc){ .type = TM_TAR_REG, .path = path, .mode = 0644, .uid = 1000,
				     .gid = 1000, .uname = "user", .gname = "group",
				     .mtime = { 1700000000, 0 }, .size = size };
}

static char *repeat(char c, size_t n)
{
	char *s = g_malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- exact bytes ---- */

START_TEST(test_ustar_bytes)
{
	/* A member that fits ustar is the block testutil builds from the spec. */
	struct tm_tar_desc d = file_desc("dir/file.txt", 5);
	uint8_t want[TU_BLOCK];
	tu_header_init(want, TU_USTAR, "dir/file.txt", '0', 5);
	tu_checksum(want, false);
	uint8_t got[TU_BLOCK];
	char err[TM_TAR_ERRLEN];
	ck_assert_uint_eq(tm_tar_encode_header(&d, got, sizeof got, err), TU_BLOCK);
	for (size_t i = 0; i < TU_BLOCK; i++)
		ck_assert_msg(got[i] == want[i], "byte %zu: %u, want %u", i, got[i], want[i]);

	/* A directory gets its '/', mode 0755 */
	d = file_desc("a/dir", 0);
	d.type = TM_TAR_DIR;
	d.mode = 0755;
	tu_header_init(want, TU_USTAR, "a/dir/", '5', 0);
	tu_checksum(want, false);
	ck_assert_uint_eq(tm_tar_encode_header(&d, got, sizeof got, err), TU_BLOCK);
	ck_assert(!memcmp(got, want, TU_BLOCK));
}
END_TEST

START_TEST(test_pax_bytes)
{
	/* A 300-byte path and a fraction of a second: records "path", "mtime", in that order,
	 * byte for byte what tu_pax_str frames; the ustar name is the path's first 100 bytes. */
	char *path = repeat('p', 300);
	struct tm_tar_desc d = file_desc(path, 3);
	d.mtime.nsec = 250000000;
	GString *want = g_string_new(NULL);
	tu_pax_str(want, "path", path);
	tu_pax_str(want, "mtime", "1700000000.25");
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "path,mtime");
	ck_assert_uint_eq(e.pax_len, want->len);
	ck_assert(!memcmp(e.pax, want->str, want->len));
	ck_assert_uint_eq(strlen(e.h.name), 100);
	ck_assert(!strncmp(e.h.name, path, 100));
	ck_assert_int_eq(e.h.mtime, 1700000000);
	/* The 'x' header: "./PaxHeaders/BASE" cut to 100 bytes, the member's mtime. */
	struct tm_tar_header x;
	char derr[TM_TAR_ERRLEN];
	tm_tar_header_decode(e.hdr, &x, derr);
	ck_assert_int_eq(x.typeflag, 'x');
	ck_assert(!strncmp(x.name, "./PaxHeaders/ppp", 16));
	ck_assert_uint_eq(strlen(x.name), 100);
	ck_assert_int_eq(x.mtime, 1700000000);
	read_back(&d, &e);
	encoded_free(&e);
	g_string_free(want, TRUE);

	/* "DIR/PaxHeaders/BASE" for a path with a directory */
	d = file_desc("some/dir/n\xc3\xa4me", 0);
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "path");
	tm_tar_header_decode(e.hdr, &x, derr);
	ck_assert_str_eq(x.name, "some/dir/PaxHeaders/n\xc3\xa4me");
	encoded_free(&e);
	g_free(path);
}
END_TEST

/* ---- names ---- */

struct name_case {
	size_t prefix_len; /* 0: a path without a slash */
	size_t name_len;
	enum tm_tar_type type;
	bool pax;
};

static const struct name_case name_cases[] = {
	{ 0, 99, TM_TAR_REG, false },
	{ 0, 100, TM_TAR_REG, false },
	{ 0, 101, TM_TAR_REG, true },   /* no slash: no split */
	{ 0, 99, TM_TAR_DIR, false },   /* 100 with its '/' */
	{ 0, 100, TM_TAR_DIR, true },   /* 101 with its '/', which cannot split it */
	{ 10, 100, TM_TAR_REG, false }, /* 111: prefix 10, name 100 */
	{ 10, 101, TM_TAR_REG, true },  /* the name part too long */
	{ 155, 100, TM_TAR_REG, false }, /* 256: the largest split */
	{ 155, 99, TM_TAR_DIR, false },  /* 256 with its '/' */
	{ 155, 100, TM_TAR_DIR, true },  /* 257 */
	{ 156, 99, TM_TAR_REG, true },   /* 256 but the prefix 156 */
	{ 155, 101, TM_TAR_REG, true },  /* 257 */
	{ 154, 101, TM_TAR_REG, true },  /* 256 but the name 101 */
	{ 1000, 100, TM_TAR_REG, true },
};

START_TEST(test_names)
{
	const struct name_case *c = &name_cases[_i];
	GString *p = g_string_new(NULL);
	for (size_t i = 0; i < c->prefix_len; i++)
		g_string_append_c(p, i % 20 == 19 && i + 1 < c->prefix_len ? '/' : 'a' + i % 26);
	if (c->prefix_len)
		g_string_append_c(p, '/');
	for (size_t i = 0; i < c->name_len; i++)
		g_string_append_c(p, 'A' + i % 26);
	struct tm_tar_desc d = file_desc(p->str, 0);
	d.type = c->type;
	struct encoded e;
	encode(&d, &e);
	ck_assert_msg(!strcmp(e.keys, c->pax ? "path" : ""), "case %d: keys '%s'", _i, e.keys);
	char *path = stored_path(&d);
	if (!c->pax)
		ck_assert_str_eq(e.h.name, path); /* prefix '/' name, decoded */
	else
		ck_assert(!strncmp(e.h.name, path, strlen(e.h.name)) && strlen(e.h.name) == 100);
	read_back(&d, &e);
	encoded_free(&e);
	g_free(path);
	g_string_free(p, TRUE);
}
END_TEST

START_TEST(test_split_choice)
{
	/* Several slashes: any prefix of at most 155 bytes with a name of at most 100 will
	 * do; the prefix is the longest one (so the name the shortest). */
	char *a = repeat('a', 100), *b = repeat('b', 50), *c = repeat('c', 60);
	char *path = g_strdup_printf("%s/%s/%s", a, b, c); /* 212 bytes */
	struct tm_tar_desc d = file_desc(path, 0);
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "");
	const uint8_t *blk = e.hdr;
	ck_assert_uint_eq(strnlen((const char *)blk + TU_PREFIX, TU_PREFIX_LEN), 151);
	ck_assert_uint_eq(strnlen((const char *)blk + TU_NAME, TU_NAME_LEN), 60);
	read_back(&d, &e);
	encoded_free(&e);
	g_free(a), g_free(b), g_free(c), g_free(path);
}
END_TEST

START_TEST(test_non_ascii_names)
{
	/* UTF-8 goes to pax however short; not UTF-8: raw, after hdrcharset=BINARY. */
	struct tm_tar_desc d = file_desc("caf\xc3\xa9", 0);
	struct encoded e;
	roundtrip(&d, "path");
	d = file_desc("caf\xe9", 0);
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "hdrcharset,path");
	assert_record(&e, "hdrcharset", "BINARY");
	read_back(&d, &e);
	encoded_free(&e);

	/* A UTF-8 placeholder is not cut inside a character: 99 'a' then "é" */
	char *a99 = repeat('a', 99);
	char *p = g_strdup_printf("%s\xc3\xa9", a99);
	g_free(a99);
	d = file_desc(p, 0);
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "path");
	ck_assert_uint_eq(strlen(e.h.name), 99);
	read_back(&d, &e);
	encoded_free(&e);
	g_free(p);

	/* link targets, owners */
	d = file_desc("l", 0);
	d.type = TM_TAR_SYMLINK;
	d.linkpath = "../t\xc3\xa4rget";
	roundtrip(&d, "linkpath");
	d.linkpath = "t\xff";
	roundtrip(&d, "hdrcharset,linkpath");
	d = file_desc("f", 0);
	d.uname = "J\xc3\xb6rg";
	d.gname = "gr\xf6up";
	roundtrip(&d, "hdrcharset,uname,gname");
}
END_TEST

START_TEST(test_links)
{
	struct tm_tar_desc d = file_desc("dir/hard", 0);
	d.type = TM_TAR_HARDLINK;
	d.linkpath = "dir/target";
	roundtrip(&d, "");
	char *t = repeat('t', 100);
	d.linkpath = t;
	roundtrip(&d, "");
	g_free(t);
	t = repeat('t', 101);
	d.linkpath = t;
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "linkpath");
	ck_assert_uint_eq(strlen(e.h.linkname), 100);
	read_back(&d, &e);
	encoded_free(&e);
	d.type = TM_TAR_SYMLINK;
	roundtrip(&d, "linkpath");
	g_free(t);
	d.linkpath = "/abs/../olute\nwith newline";
	roundtrip(&d, "");
}
END_TEST

/* ---- numbers ---- */

START_TEST(test_sizes)
{
	struct tm_tar_desc d = file_desc("big", 077777777777ll); /* 8 GiB - 1 */
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "");
	ck_assert_int_eq(e.h.size, 077777777777ll);
	read_back(&d, &e);
	encoded_free(&e);
	d.size = 8ll << 30;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "size");
	ck_assert_int_eq(e.h.size, 0); /* GNU tar's placeholder */
	assert_record(&e, "size", "8589934592");
	read_back(&d, &e);
	encoded_free(&e);
	d.size = 999999999999999999ll; /* the largest */
	roundtrip(&d, "size");
	for (int64_t s = 0; s <= 1030; s += 1 + s / 3)
		roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_REG, .path = "s", .size = s }, "");
}
END_TEST

START_TEST(test_ids)
{
	struct tm_tar_desc d = file_desc("f", 0);
	d.uid = 2097151;
	d.gid = 2097151;
	roundtrip(&d, "");
	d.uid = 2097152;
	roundtrip(&d, "uid");
	d.gid = 2097152;
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "uid,gid");
	ck_assert_int_eq(e.h.uid, 0);
	ck_assert_int_eq(e.h.gid, 0);
	encoded_free(&e);
	d.uid = 4294967294ll;
	d.gid = 0;
	roundtrip(&d, "uid");

	/* owner names: 31 bytes fit (NUL-terminated), 32 do not */
	d = file_desc("f", 0);
	char *u31 = repeat('u', 31), *u32 = repeat('u', 32);
	d.uname = u31;
	d.gname = u32;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "gname");
	ck_assert_str_eq(e.h.uname, u31);
	ck_assert_str_eq(e.h.gname, u31); /* cut */
	read_back(&d, &e);
	encoded_free(&e);
	d.uname = NULL;
	d.gname = "";
	roundtrip(&d, "");
	g_free(u31), g_free(u32);

	/* devices */
	d = file_desc("dev/sda", 0);
	d.type = TM_TAR_BLK;
	d.devmajor = 8;
	d.devminor = 2097151;
	roundtrip(&d, "");
	d.type = TM_TAR_CHR;
	d.devmajor = 2097152;
	d.devminor = UINT32_MAX;
	roundtrip(&d, "SCHILY.devmajor,SCHILY.devminor");
	d = file_desc("fifo", 0);
	d.type = TM_TAR_FIFO;
	d.mode = 07777;
	roundtrip(&d, "");
}
END_TEST

struct time_case {
	struct tm_pax_time t;
	const char *pax; /* the mtime record's value, or NULL for none */
	int64_t ustar;   /* the header's field */
};

static const struct time_case time_cases[] = {
	{ { 0, 0 }, NULL, 0 },
	{ { 077777777777ll, 0 }, NULL, 077777777777ll },
	{ { 077777777777ll + 1, 0 }, "8589934592", 0 },
	{ { -1, 0 }, "-1", 0 },
	{ { -2, 500000000 }, "-1.5", 0 },
	{ { -1, 999999999 }, "-0.000000001", 0 },
	{ { -1, 1 }, "-0.999999999", 0 },
	{ { 0, 1 }, "0.000000001", 0 },
	{ { 1700000000, 123456789 }, "1700000000.123456789", 1700000000 },
	{ { 1700000000, 100000000 }, "1700000000.1", 1700000000 },
	{ { 999999999999999999ll, 999999999 }, "999999999999999999.999999999", 0 },
	{ { -999999999999999999ll, 0 }, "-999999999999999999", 0 },
};

START_TEST(test_times)
{
	const struct time_case *c = &time_cases[_i];
	struct tm_tar_desc d = file_desc("t", 0);
	d.mtime = c->t;
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, c->pax ? "mtime" : "");
	if (c->pax) {
		assert_record(&e, "mtime", c->pax);
		struct tm_tar_header x;
		char derr[TM_TAR_ERRLEN];
		tm_tar_header_decode(e.hdr, &x, derr);
		ck_assert_int_eq(x.mtime, c->ustar);
	}
	ck_assert_int_eq(e.h.mtime, c->ustar);
	read_back(&d, &e);
	encoded_free(&e);

	/* atime and ctime are pax records, always */
	d.has_atime = d.has_ctime = true;
	d.atime = c->t;
	d.ctime = (struct tm_pax_time){ 5, 5 };
	encode(&d, &e);
	ck_assert_str_eq(e.keys, c->pax ? "mtime,atime,ctime" : "atime,ctime");
	struct tm_pax p;
	char err[TM_TAR_ERRLEN];
	tm_pax_init(&p);
	ck_assert_msg(tm_pax_parse(e.pax, e.pax_len, &p, err), "%s", err);
	ck_assert(p.has_atime && p.has_ctime);
	ck_assert_int_eq(p.atime.sec, c->t.sec);
	ck_assert_uint_eq(p.atime.nsec, c->t.nsec);
	ck_assert_int_eq(p.ctime.sec, 5);
	ck_assert_uint_eq(p.ctime.nsec, 5);
	tm_pax_clear(&p);
	encoded_free(&e);
}
END_TEST

/* ---- xattrs and record lengths ---- */

#define XNAME "user.\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "de" /* "user.ünïcöde" */

START_TEST(test_xattrs)
{
	static const uint8_t bin[] = { 0, 1, '\n', '=', 0xff, 0x80, 0, '\n' };
	struct tm_tar_wxattr xs[] = {
		{ "user.bin", bin, sizeof bin },
		{ "user.empty", NULL, 0 },
		{ "security.selinux", "system_u:object_r:etc_t:s0", 26 },
		{ XNAME, "v", 1 },
		{ "trusted.x y", "with space", 10 },
	};
	struct tm_tar_desc d = file_desc("x", 10);
	d.xattrs = xs;
	d.nxattrs = G_N_ELEMENTS(xs);
	struct encoded e;
	encode(&d, &e);
	ck_assert_str_eq(e.keys, "SCHILY.xattr.user.bin,SCHILY.xattr.user.empty,"
				 "SCHILY.xattr.security.selinux,"
				 "SCHILY.xattr." XNAME ","
				 "SCHILY.xattr.trusted.x y");
	GString *want = g_string_new(NULL);
	for (size_t i = 0; i < G_N_ELEMENTS(xs); i++) {
		char *k = g_strconcat("SCHILY.xattr.", xs[i].name, NULL);
		tu_pax_rec(want, k, xs[i].value, xs[i].len);
		g_free(k);
	}
	ck_assert_uint_eq(e.pax_len, want->len);
	ck_assert(!memcmp(e.pax, want->str, want->len));
	g_string_free(want, TRUE);
	read_back(&d, &e);
	encoded_free(&e);

	/* with the other records: xattrs come last */
	d.path = "caf\xe9/x";
	d.uid = 1u << 30;
	roundtrip(&d, "hdrcharset,path,uid,SCHILY.xattr.user.bin,SCHILY.xattr.user.empty,"
		      "SCHILY.xattr.security.selinux,"
		      "SCHILY.xattr." XNAME ",SCHILY.xattr.trusted.x y");
}
END_TEST

START_TEST(test_record_lengths)
{
	/* Where the length's digit count grows.  A body (key, value, " =\n") of 8 bytes makes a
	 * 9-byte record, 9 an 11-byte one: a 10-byte record is only the other self-consistent
	 * length of a body of 8 ("10 " + 7), and the shortest is written.  Likewise 97 -> 99
	 * (not 100), 98 -> 101, 99 -> 102, 996 -> 999, 997 -> 1001, 9995 -> 9999,
	 * 9996 -> 10001. */
	static const struct {
		size_t body, len;
	} cases[] = { { 8, 9 }, { 9, 11 }, { 10, 12 }, { 97, 99 }, { 98, 101 }, { 99, 102 },
		      { 100, 103 }, { 996, 999 }, { 997, 1001 }, { 998, 1002 }, { 9995, 9999 },
		      { 9996, 10001 }, { 99994, 99999 }, { 99995, 100001 } };
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		size_t body = cases[i].body;
		struct tm_tar_desc d;
		struct tm_tar_wxattr x = { "user.k", NULL, 0 };
		char *v = NULL;
		struct encoded e;
		if (body == 8) {
			/* "path" and one byte: a path of one non-ASCII byte (with hdrcharset) */
			d = file_desc("\xe9", 0);
			encode(&d, &e);
			ck_assert_str_eq(e.keys, "hdrcharset,path");
			ck_assert(!memcmp(e.pax + 21, "9 path=\xe9\n", 9));
		} else if (body < 22) {
			/* "path" and body-7 bytes of UTF-8 */
			v = repeat('x', body - 7);
			v[0] = (char)0xc3, v[1] = (char)0xa9;
			d = file_desc(v, 0);
			encode(&d, &e);
			ck_assert_str_eq(e.keys, "path");
		} else {
			/* "SCHILY.xattr.user.k" (19 bytes) and a value */
			x.len = body - 22;
			v = repeat('v', x.len);
			x.value = v;
			d = file_desc("f", 0);
			d.xattrs = &x;
			d.nxattrs = 1;
			encode(&d, &e);
			ck_assert_str_eq(e.keys, "SCHILY.xattr.user.k");
		}
		size_t first = body == 8 ? 21 : 0;
		ck_assert_uint_eq(e.pax_len - first, cases[i].len);
		char num[16];
		snprintf(num, sizeof num, "%zu ", cases[i].len);
		ck_assert(!memcmp(e.pax + first, num, strlen(num)));
		read_back(&d, &e);
		encoded_free(&e);
		g_free(v);
	}
}
END_TEST

/* ---- bad descriptions ---- */

static const uint8_t nul_path[] = "a\0b";

static const struct {
	struct tm_tar_desc d;
	const char *what; /* in the message */
} bad_cases[] = {
	{ { .type = TM_TAR_REG, .path = "" }, "empty" },
	{ { .type = TM_TAR_REG }, "no path" },
	{ { .type = TM_TAR_REG, .path = (const char *)nul_path, .path_len = 3 }, "NUL" },
	{ { .type = TM_TAR_REG, .path = ".." }, "'..'" },
	{ { .type = TM_TAR_REG, .path = "a/../b" }, "'..'" },
	{ { .type = TM_TAR_REG, .path = "a/.." }, "'..'" },
	{ { .type = TM_TAR_REG, .path = "a/./b" }, "'.'" },
	{ { .type = TM_TAR_REG, .path = "." }, "root" },
	{ { .type = TM_TAR_REG, .path = "./." }, "'.'" },
	{ { .type = TM_TAR_DIR, .path = "." }, "root" },
	{ { .type = TM_TAR_SYMLINK, .path = "./", .linkpath = "t" }, "ends in '/'" },
	{ { .type = TM_TAR_REG, .path = "/etc/passwd" }, "absolute" },
	{ { .type = TM_TAR_DIR, .path = "/" }, "empty" },
	{ { .type = TM_TAR_REG, .path = "a//b" }, "empty segment" },
	{ { .type = TM_TAR_DIR, .path = "a//" }, "empty segment" },
	{ { .type = TM_TAR_REG, .path = "a/" }, "ends in '/'" },
	{ { .type = TM_TAR_REG, .path = "f", .size = -1 }, "negative size" },
	{ { .type = TM_TAR_REG, .path = "f", .size = 1000000000000000000ll }, "range" },
	{ { .type = TM_TAR_DIR, .path = "d", .size = 1 }, "no data" },
	{ { .type = TM_TAR_SYMLINK, .path = "l", .linkpath = "t", .size = 1 }, "no data" },
	{ { .type = TM_TAR_REG, .path = "f", .linkpath = "t" }, "no link target" },
	{ { .type = TM_TAR_SYMLINK, .path = "l" }, "needs a link target" },
	{ { .type = TM_TAR_SYMLINK, .path = "l", .linkpath = "" }, "empty" },
	{ { .type = TM_TAR_SYMLINK, .path = "l", .linkpath = (const char *)nul_path,
	    .linkpath_len = 3 }, "NUL" },
	{ { .type = TM_TAR_HARDLINK, .path = "l", .linkpath = "../x" }, "'..'" },
	{ { .type = TM_TAR_HARDLINK, .path = "l", .linkpath = "/x" }, "absolute" },
	{ { .type = TM_TAR_REG, .path = "f", .mode = 010644 }, "mode" },
	{ { .type = TM_TAR_REG, .path = "f", .uid = -1 }, "uid" },
	{ { .type = TM_TAR_REG, .path = "f", .gid = 4294967295ll }, "gid" },
	{ { .type = TM_TAR_REG, .path = "f", .devmajor = 1 }, "device" },
	{ { .type = TM_TAR_REG, .path = "f", .mtime = { 0, 1000000000 } }, "nanoseconds" },
	{ { .type = TM_TAR_REG, .path = "f", .mtime = { 1000000000000000000ll, 0 } }, "range" },
	{ { .type = TM_TAR_REG, .path = "f", .has_atime = true, .atime = { 0, 1u << 31 } },
	  "atime" },
	{ { .type = TM_TAR_REG, .path = "f", .has_ctime = true,
	    .ctime = { -1000000000000000000ll, 0 } }, "ctime" },
	{ { .type = (enum tm_tar_type)42, .path = "f" }, "type" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 1 }, "no array" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 1,
	    .xattrs = &(struct tm_tar_wxattr){ "", "v", 1 } }, "no name" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 1,
	    .xattrs = &(struct tm_tar_wxattr){ "user.a=b", "v", 1 } }, "'='" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 1,
	    .xattrs = &(struct tm_tar_wxattr){ "user.\xe9", "v", 1 } }, "UTF-8" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 1,
	    .xattrs = &(struct tm_tar_wxattr){ "user.a", NULL, 1 } }, "no value" },
	{ { .type = TM_TAR_REG, .path = "f", .nxattrs = 2,
	    .xattrs = (struct tm_tar_wxattr[]){ { "user.a", "1", 1 }, { "user.a", "2", 1 } } },
	  "twice" },
};

START_TEST(test_bad)
{
	const struct tm_tar_desc *d = &bad_cases[_i].d;
	char err[TM_TAR_ERRLEN] = "";
	uint8_t buf[2048];
	memset(buf, 0x5a, sizeof buf);
	ck_assert_uint_eq(tm_tar_member_header_size(d, err), 0);
	ck_assert_msg(strstr(err, bad_cases[_i].what), "case %d: '%s' lacks '%s'", _i, err,
		      bad_cases[_i].what);
	ck_assert(!strchr(err, '\n'));
	ck_assert_uint_eq(tm_tar_member_total(d, NULL), 0);
	err[0] = '\0';
	ck_assert_uint_eq(tm_tar_encode_header(d, buf, sizeof buf, err), 0);
	ck_assert(strstr(err, bad_cases[_i].what));
	for (size_t i = 0; i < sizeof buf; i++)
		ck_assert_uint_eq(buf[i], 0x5a);
}
END_TEST

START_TEST(test_too_large)
{
	/* pax data past what our reader takes (64 MiB) is refused before anything is built */
	size_t n = 64u * 1024 * 1024;
	uint8_t *v = g_malloc0(n);
	struct tm_tar_wxattr x = { "user.big", v, n - 100 };
	struct tm_tar_desc d = file_desc("f", 0);
	d.xattrs = &x;
	d.nxattrs = 1;
	char err[TM_TAR_ERRLEN];
	ck_assert_uint_gt(tm_tar_member_header_size(&d, err), n - 100);
	x.len = n;
	ck_assert_uint_eq(tm_tar_member_header_size(&d, err), 0);
	ck_assert(strstr(err, "too large"));
	g_free(v);
}
END_TEST

START_TEST(test_good_paths)
{
	/* "./" leading, dots inside names, a directory given with its '/' */
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_REG, .path = "./a" }, "");
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_REG, .path = "a/.b/..c/...", .uid = 5 },
		  "");
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_DIR, .path = "a/b/", .mode = 0700 }, "");
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_DIR, .path = "./d" }, "");
	/* the root, as the first member of tar -C DIR . (tarmount -o rw: its attributes) */
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_DIR, .path = "./", .mode = 0700 }, "");
	/* a path given by length stops there */
	roundtrip(&(struct tm_tar_desc){ .type = TM_TAR_REG, .path = "abcdef", .path_len = 3 },
		  "");
}
END_TEST

Suite *tar_writer_suite(void)
{
	Suite *s = suite_create("tar_writer");
	TCase *tc = tcase_create("encode");
	tcase_add_test(tc, test_ustar_bytes);
	tcase_add_test(tc, test_pax_bytes);
	tcase_add_loop_test(tc, test_names, 0, (int)G_N_ELEMENTS(name_cases));
	tcase_add_test(tc, test_split_choice);
	tcase_add_test(tc, test_non_ascii_names);
	tcase_add_test(tc, test_links);
	tcase_add_test(tc, test_sizes);
	tcase_add_test(tc, test_ids);
	tcase_add_loop_test(tc, test_times, 0, (int)G_N_ELEMENTS(time_cases));
	tcase_add_test(tc, test_xattrs);
	tcase_add_test(tc, test_record_lengths);
	tcase_add_test(tc, test_good_paths);
	suite_add_tcase(s, tc);

	tc = tcase_create("refuse");
	tcase_add_loop_test(tc, test_bad, 0, (int)G_N_ELEMENTS(bad_cases));
	tcase_add_test(tc, test_too_large);
	suite_add_tcase(s, tc);
	return s;
}
