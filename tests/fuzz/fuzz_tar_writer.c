/* libFuzzer target: the tar writer (tm_tar_member_header_size, tm_tar_encode_header,
 * tm_tar_member_total), read back by our reader.
 *
 * The input is a member description:
 *   byte 0   type (mod 8; 7 is an unknown type)
 *   byte 1   flags: 1 path and 2 link target drawn from a small alphabet ("ab/.", 'é', a
 *            byte that is not UTF-8), 4 has_atime, 8 has_ctime, 16 path_len and
 *            linkpath_len given (else 0: strlen), 32 uname NULL, 64 gname NULL, 128 no
 *            link target
 *   then 12 numbers, 9 bytes each (a selector and 8 bytes little-endian: selector % 3 is
 *            0 for a boundary value from a table, 1 for the low byte, 2 for all 64 bits):
 *            mode, uid, gid, mtime sec and nsec, atime sec and nsec, ctime sec and nsec,
 *            size, devmajor, devminor
 *   then the path, link target, uname and gname: a 2-byte length and bytes (repeated to
 *            that length when the input has fewer)
 *   then up to 7 xattrs: a count byte, and for each a 1-byte name length and a 2-byte
 *            value length, each followed by its bytes
 * Missing input reads as zeros.
 *
 * Checks: a refused description gets a one-line message and the same refusal from every
 * function, with the buffer untouched; an accepted one is encoded into a buffer of exactly
 * tm_tar_member_header_size bytes (ASan sees a byte past it), the same bytes twice, not at
 * all into a buffer one byte short, and tm_tar_reader reads back every field with no
 * diagnostic from the header, zero data, padding and the end marker. */
#include "config.h"

#include "fuzz_common.h"
#include "testutil.h"

struct cursor {
	const uint8_t *p;
	size_t n;
};

static uint8_t take_byte(struct cursor *c)
{
	if (!c->n)
		return 0;
	c->n--;
	return *c->p++;
}

static uint64_t take_le(struct cursor *c, int bytes)
{
	uint64_t v = 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)take_byte(c) << (8 * i);
	return v;
}

static const int64_t boundaries[] = {
	0, 1, 100, 101, 155, 156, 256, 257, 511, 512, 07777, 010000, 2097151, 2097152,
	999999999, 1000000000, 4294967294ll, 4294967295ll, 8589934591ll, 8589934592ll,
	-1, -2, 999999999999999999ll, 1000000000000000000ll, -999999999999999999ll,
	-1000000000000000000ll, INT64_MAX, INT64_MIN,
};

static int64_t take_num(struct cursor *c)
{
	uint8_t sel = take_byte(c);
	uint64_t v = take_le(c, 8);
	switch (sel % 3) {
	case 0: return boundaries[v % G_N_ELEMENTS(boundaries)];
	case 1: return (int64_t)(v & 0xff);
	default: return (int64_t)v;
	}
}

/* A string of the length the input gives, its bytes cycled from what the input has. */
static char *take_str(struct cursor *c, int len_bytes, bool mapped, size_t *len,
		      GPtrArray *keep)
{
	static const char *alphabet[] = { "a", "b", "c", "/", "/", ".", "\xc3\xa9", "\xe9", "Z",
					  "-" };
	size_t n = (size_t)take_le(c, len_bytes);
	size_t k = n < c->n ? n : c->n;
	const uint8_t *src = c->p;
	c->p += k, c->n -= k;
	GString *s = g_string_sized_new(n + 1);
	for (size_t i = 0; s->len < n; i++) {
		uint8_t b = k ? src[i % k] : 'a';
		if (mapped)
			g_string_append(s, alphabet[b % G_N_ELEMENTS(alphabet)]);
		else
			g_string_append_c(s, (char)b);
	}
	g_string_truncate(s, n);
	*len = n;
	char *out = g_string_free(s, FALSE);
	g_ptr_array_add(keep, out);
	return out;
}

struct diag_log {
	unsigned count;
	char first[512];
};

static void diag_cb(void *ud, enum tm_tar_diag_level level, uint64_t off, const char *msg)
{
	struct diag_log *l = ud;
	(void)level, (void)off;
	if (!l->count++)
		g_strlcpy(l->first, msg, sizeof l->first);
}

static void check_refused(const struct tm_tar_desc *d)
{
	char err[TM_TAR_ERRLEN];
	memset(err, 'x', sizeof err);
	FZ_CHECK(tm_tar_member_header_size(d, err) == 0, "size and encoder disagree");
	fz_check_err(err, sizeof err);
	FZ_CHECK(err[0], "refused without a message");
	FZ_CHECK(tm_tar_member_total(d, NULL) == 0, "total of a refused description");
	uint8_t buf[1024];
	memset(buf, 0x5a, sizeof buf);
	FZ_CHECK(tm_tar_encode_header(d, buf, sizeof buf, NULL) == 0, "encoded a refused one");
	for (size_t i = 0; i < sizeof buf; i++)
		FZ_CHECK(buf[i] == 0x5a, "refused description wrote byte %zu", i);
}

static void check_read_back(const struct tm_tar_desc *d, const uint8_t *hdr, size_t n)
{
	uint64_t size = (uint64_t)d->size;
	uint64_t total = n + size + tm_tar_padding(size) + TM_TAR_END_SIZE;
	struct tm_block *b = tu_zext_new(hdr, n, total);
	struct diag_log log = { 0 };
	struct tm_tar_reader *r = tm_tar_reader_new(b, diag_cb, &log);
	struct tm_tar_member *m;
	struct tm_block_error berr;
	FZ_CHECK(tm_tar_reader_next(r, &m, &berr) == TM_TAR_MEMBER, "no member: %s", log.first);

	size_t pn = d->path_len ? d->path_len : strlen(d->path);
	if (d->type == TM_TAR_DIR && d->path[pn - 1] == '/')
		pn--;
	bool dir = d->type == TM_TAR_DIR;
	FZ_CHECK(strlen(m->path) == pn + dir && !memcmp(m->path, d->path, pn) &&
			 (!dir || m->path[pn] == '/'),
		 "path '%s'", m->path);
	FZ_CHECK(m->type == d->type, "type %d, want %d", m->type, d->type);
	size_t ln = !d->linkpath ? 0 : d->linkpath_len ? d->linkpath_len : strlen(d->linkpath);
	FZ_CHECK(strlen(m->linkpath) == ln && (!ln || !memcmp(m->linkpath, d->linkpath, ln)),
		 "link target '%s'", m->linkpath);
	FZ_CHECK(m->mode == d->mode, "mode %o", m->mode);
	FZ_CHECK(m->uid == d->uid && m->gid == d->gid, "uid %lld gid %lld", (long long)m->uid,
		 (long long)m->gid);
	FZ_CHECK(!strcmp(m->uname, d->uname ? d->uname : ""), "uname '%s'", m->uname);
	FZ_CHECK(!strcmp(m->gname, d->gname ? d->gname : ""), "gname '%s'", m->gname);
	FZ_CHECK(m->mtime == d->mtime.sec && m->mtime_nsec == d->mtime.nsec, "mtime %lld.%09u",
		 (long long)m->mtime, m->mtime_nsec);
	uint64_t want = d->type == TM_TAR_REG ? size : d->type == TM_TAR_SYMLINK ? ln : 0;
	FZ_CHECK(m->size == want, "size %llu", (unsigned long long)m->size);
	FZ_CHECK(m->data_offset == n, "data at %llu", (unsigned long long)m->data_offset);
	if (d->type == TM_TAR_CHR || d->type == TM_TAR_BLK)
		FZ_CHECK(m->devmajor == d->devmajor && m->devminor == d->devminor, "device %u,%u",
			 m->devmajor, m->devminor);
	FZ_CHECK((m->xattrs ? m->xattrs->len : 0) == d->nxattrs, "%u xattrs",
		 m->xattrs ? m->xattrs->len : 0);
	for (size_t i = 0; i < d->nxattrs; i++) {
		const struct tm_pax_xattr *x = g_ptr_array_index(m->xattrs, i);
		gsize vlen;
		const void *v = g_bytes_get_data(x->value, &vlen);
		FZ_CHECK(!strcmp(x->name, d->xattrs[i].name) && vlen == d->xattrs[i].len &&
				 (!vlen || !memcmp(v, d->xattrs[i].value, vlen)),
			 "xattr %zu", i);
	}
	FZ_CHECK(tm_tar_reader_next(r, &m, &berr) == TM_TAR_END, "a second member");
	FZ_CHECK(!tm_tar_reader_truncated(r), "truncated");
	FZ_CHECK(log.count == 0, "reader said: %s", log.first);
	tm_tar_reader_free(r);
	tm_block_disconnect(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = { data, size };
	GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
	struct tm_tar_desc d = { 0 };
	uint8_t type = take_byte(&c) % 8, flags = take_byte(&c);
	d.type = type == 7 ? (enum tm_tar_type)99 : (enum tm_tar_type)type;
	d.mode = (uint32_t)take_num(&c);
	d.uid = take_num(&c);
	d.gid = take_num(&c);
	d.mtime.sec = take_num(&c);
	d.mtime.nsec = (uint32_t)take_num(&c);
	d.has_atime = flags & 4;
	d.atime.sec = take_num(&c);
	d.atime.nsec = (uint32_t)take_num(&c);
	d.has_ctime = flags & 8;
	d.ctime.sec = take_num(&c);
	d.ctime.nsec = (uint32_t)take_num(&c);
	d.size = take_num(&c);
	d.devmajor = (uint32_t)take_num(&c);
	d.devminor = (uint32_t)take_num(&c);
	size_t n;
	d.path = take_str(&c, 2, flags & 1, &n, keep);
	d.path_len = flags & 16 ? n : 0;
	const char *link = take_str(&c, 2, flags & 2, &n, keep);
	if (!(flags & 128)) {
		d.linkpath = link;
		d.linkpath_len = flags & 16 ? n : 0;
	}
	const char *uname = take_str(&c, 2, false, &n, keep);
	const char *gname = take_str(&c, 2, false, &n, keep);
	d.uname = flags & 32 ? NULL : uname;
	d.gname = flags & 64 ? NULL : gname;
	struct tm_tar_wxattr xs[8];
	d.nxattrs = take_byte(&c) % 8;
	for (size_t i = 0; i < d.nxattrs; i++) {
		xs[i].name = take_str(&c, 1, false, &n, keep);
		xs[i].value = take_str(&c, 2, false, &xs[i].len, keep);
	}
	d.xattrs = xs;

	char err[TM_TAR_ERRLEN];
	size_t hs = tm_tar_member_header_size(&d, err);
	if (!hs) {
		check_refused(&d);
	} else {
		FZ_CHECK(hs % TM_TAR_BLOCK == 0, "header size %zu", hs);
		uint64_t total = tm_tar_member_total(&d, err);
		FZ_CHECK(total == hs + (uint64_t)d.size + tm_tar_padding((uint64_t)d.size) &&
				 total % TM_TAR_BLOCK == 0,
			 "total %llu", (unsigned long long)total);
		uint8_t *buf = g_malloc(hs), *again = g_malloc(hs);
		FZ_CHECK(tm_tar_encode_header(&d, buf, hs - 1, err) == 0, "one byte short");
		FZ_CHECK(tm_tar_encode_header(&d, buf, hs, err) == hs, "encode: %s", err);
		FZ_CHECK(tm_tar_encode_header(&d, again, hs, err) == hs, "encode again: %s", err);
		FZ_CHECK(!memcmp(buf, again, hs), "two encodings differ");
		check_read_back(&d, buf, hs);
		g_free(buf);
		g_free(again);
	}
	g_ptr_array_free(keep, TRUE);
	return 0;
}
