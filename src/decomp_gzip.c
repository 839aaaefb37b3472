/* gzip through zlib: single streams, concatenated members (pigz, cat a.gz b.gz) and BGZF.
 *
 * Seek points: every member start (free), and inside a member, at a deflate block boundary
 * once per spacing bytes of output, with the bit offset of the boundary and the 32 KiB of
 * output before it (zlib's inflateGetDictionary), stored deflated.  A decoder resumes there
 * with a raw inflate primed with those bits and that dictionary (zlib's inflatePrime and
 * inflateSetDictionary), then goes on member by member.  Every decoder inflates raw deflate
 * and reads the gzip framing itself (RFC 1952 headers and trailers).  The scan checks every
 * member's CRC (ISA-L's crc32_gzip_refl, five times zlib's crc32 here: zlib's took a tenth
 * of the first pass) and length; resumed decoders do not (they start mid-member), and need
 * not: the scan checked the same bytes, and the source's identity says they are the same. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include "decomp_codec.h"

enum { AT_MEMBER = 0, AT_BLOCK = 1 };
#define WINDOW 32768u

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	z_stream z;    /* raw deflate: the gzip framing is ours */
	bool scan;
	bool in_member;
	bool checked;  /* the member was decoded from its start: its CRC and size are checked */
	bool ended;
	uint32_t crc;  /* of the member's output so far (ISA-L's crc32_gzip_refl) */
	uint32_t isize;
	uint64_t uoff; /* decompressed offset of the next byte produced */
};

static void gz_close(struct tm_dec *x)
{
	inflateEnd(&x->z);
	tm_cin_free(&x->in);
	g_free(x);
}

static int zfail(struct tm_dec *x, struct tm_block_error *err, const char *what)
{
	return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s%s%s", what,
				 x->z.msg ? ": " : "", x->z.msg ? x->z.msg : "");
}

static struct tm_dec *gz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	bool block = p && p->kind == AT_BLOCK;
	uint64_t start = p ? p->coff : 0;
	if (block && p->bits)
		start--; /* the byte holding the boundary's first bits */
	tm_cin_init(&x->in, d, start, scan);
	if (inflateInit2(&x->z, -15) != Z_OK) {
		tm_cin_free(&x->in);
		g_free(x);
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "zlib: cannot start a decoder");
		return NULL;
	}
	if (!block)
		return x; /* at a member's header */
	x->in_member = true;
	uint8_t *aux = tm_decomp_aux_dup(d, p);
	uint8_t window[WINDOW];
	uint32_t wlen = 0;
	uLongf out = WINDOW;
	bool ok = aux && p->aux_len >= 4;
	if (ok) {
		memcpy(&wlen, aux, 4);
		ok = wlen <= WINDOW &&
		     uncompress(window, &out, aux + 4, p->aux_len - 4) == Z_OK && out == wlen;
	}
	g_free(aux);
	if (ok && p->bits) {
		ok = tm_cin_fill(&x->in, err) > 0;
		if (ok) {
			int byte = x->in.buf[x->in.at++];
			ok = inflatePrime(&x->z, p->bits, byte >> (8 - p->bits)) == Z_OK;
		}
	}
	if (ok)
		ok = inflateSetDictionary(&x->z, window, wlen) == Z_OK;
	if (!ok) {
		if (err->code == TM_BLOCK_OK || err->code != TM_BLOCK_IO)
			tm_decomp_corrupt(d, err, p->coff, "bad seek point");
		gz_close(x);
		return NULL;
	}
	return x;
}

/* Add a point at this block boundary (the scan only). */
static void block_point(struct tm_dec *x)
{
	uint8_t window[WINDOW];
	uInt wlen = WINDOW;
	if (inflateGetDictionary(&x->z, window, &wlen) != Z_OK)
		return;
	uLongf clen = compressBound(WINDOW);
	uint8_t *aux = g_malloc(4 + clen);
	uint32_t w32 = wlen;
	memcpy(aux, &w32, 4);
	if (compress2(aux + 4, &clen, window, wlen, 1) == Z_OK) {
		struct tm_point p = { .uoff = x->uoff, .coff = tm_cin_pos(&x->in),
				      .bits = (uint8_t)(x->z.data_type & 7), .kind = AT_BLOCK };
		tm_decomp_add_point(x->d, &p, aux, 4 + clen);
	}
	g_free(aux);
}

/* The end: zeros after the last member (tape padding) are fine; anything else, the scan
 * reports. */
static int trailing(struct tm_dec *x, struct tm_block_error *err)
{
	x->ended = true;
	if (!x->scan)
		return 0;
	uint64_t at = tm_cin_pos(&x->in);
	for (;;) {
		ssize_t n = tm_cin_fill(&x->in, err);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		for (; x->in.at < x->in.len; x->in.at++)
			if (x->in.buf[x->in.at]) {
				tm_decomp_diag(x->d, false, at, "gzip: %llu bytes of trailing "
					       "garbage after the last member ignored",
					       (unsigned long long)(x->in.end - at));
				return 0;
			}
	}
}

/* At a member's start: its header (RFC 1952), or the end of the stream.  Returns -1 on
 * error, 0 when the end was reached or the header taken, 1 when the source ended inside
 * the header. */
static int member_header(struct tm_dec *x, struct tm_block_error *err)
{
	uint64_t at = tm_cin_pos(&x->in);
	ssize_t n = tm_cin_peek(&x->in, 10, err);
	if (n < 0)
		return -1;
	const uint8_t *h = x->in.buf + x->in.at;
	if (n < 2 || h[0] != 0x1f || h[1] != 0x8b)
		return at == 0 ? tm_decomp_corrupt(x->d, err, at, "not a gzip stream")
			       : trailing(x, err);
	if (n < 10)
		return 1;
	if (h[2] != 8 || (h[3] & 0xe0))
		return tm_decomp_corrupt(x->d, err, at, "unknown method or flags in a member header");
	uint8_t flg = h[3];
	size_t len = 10;
	/* The optional fields: extra, name, comment, header CRC.  Names and comments are
	 * NUL-terminated: looked for in a growing window, up to 1 MiB. */
	if (flg & 4) {
		if ((n = tm_cin_peek(&x->in, len + 2, err)) < 0)
			return -1;
		if ((size_t)n < len + 2)
			return 1;
		h = x->in.buf + x->in.at;
		len += 2 + ((size_t)h[len] | (size_t)h[len + 1] << 8);
	}
	for (int field = 8; field <= 16; field <<= 1) {
		if (!(flg & field))
			continue;
		for (;;) {
			if ((n = tm_cin_peek(&x->in, len + 1, err)) < 0)
				return -1;
			if ((size_t)n <= len)
				return 1;
			h = x->in.buf + x->in.at;
			const uint8_t *nul = memchr(h + len, 0, (size_t)n - len);
			if (nul) {
				len = (size_t)(nul - h) + 1;
				break;
			}
			if ((size_t)n > (1u << 20))
				return tm_decomp_corrupt(x->d, err, at, "member header too long");
			len = (size_t)n;
		}
	}
	if (flg & 2)
		len += 2;
	if ((n = tm_cin_peek(&x->in, len, err)) < 0)
		return -1;
	if ((size_t)n < len)
		return 1;
	x->in.at += len;
	if (inflateReset(&x->z) != Z_OK)
		return zfail(x, err, "cannot restart");
	x->in_member = x->checked = true;
	x->crc = x->isize = 0;
	if (x->scan)
		tm_decomp_unit_start(x->d, x->uoff);
	if (x->scan && at > 0 && tm_decomp_want_point(x->d, x->uoff, true)) {
		struct tm_point p = { .uoff = x->uoff, .coff = at, .kind = AT_MEMBER };
		tm_decomp_add_point(x->d, &p, NULL, 0);
	}
	return 0;
}

/* After a member's deflate data: its trailer, checked when the member was decoded whole.
 * Returns -1 on error, 1 when the source ended inside it. */
static int member_trailer(struct tm_dec *x, struct tm_block_error *err)
{
	uint64_t at = tm_cin_pos(&x->in);
	ssize_t n = tm_cin_peek(&x->in, 8, err);
	if (n < 0)
		return -1;
	if (n < 8)
		return 1;
	const uint8_t *t = x->in.buf + x->in.at;
	uint32_t crc = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 |
		       (uint32_t)t[3] << 24;
	uint32_t isize = (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 |
			 (uint32_t)t[7] << 24;
	x->in.at += 8;
	x->in_member = false;
	if (x->checked && x->scan && crc != x->crc)
		return tm_decomp_corrupt(x->d, err, at, "CRC mismatch");
	if (x->checked && x->scan && isize != x->isize)
		return tm_decomp_corrupt(x->d, err, at, "the member's length does not match");
	return 0;
}

static int truncated(struct tm_dec *x, struct tm_block_error *err)
{
	(void)err;
	tm_decomp_truncated(x->d, x->scan, tm_cin_pos(&x->in));
	x->ended = true;
	return 0;
}

static ssize_t gz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	size_t cap = len > UINT32_MAX ? UINT32_MAX : len;
	x->z.next_out = buf;
	x->z.avail_out = (uInt)cap;
	while (x->z.avail_out > 0 && !x->ended) {
		if (!x->in_member) {
			int rc = member_header(x, err);
			if (rc < 0)
				return -1;
			if (rc > 0 && truncated(x, err) < 0)
				return -1;
			continue;
		}
		if (x->in.at >= x->in.len) {
			ssize_t n = tm_cin_fill(&x->in, err);
			if (n < 0)
				return -1;
			if (n == 0) {
				if (truncated(x, err) < 0)
					return -1;
				break;
			}
		}
		x->z.next_in = x->in.buf + x->in.at;
		x->z.avail_in = (uInt)(x->in.len - x->in.at);
		uint8_t *out = x->z.next_out;
		uInt before_in = x->z.avail_in, before_out = x->z.avail_out;
		int ret = inflate(&x->z, x->scan ? Z_BLOCK : Z_NO_FLUSH);
		uInt made = before_out - x->z.avail_out;
		x->in.at += before_in - x->z.avail_in;
		x->uoff += made;
		if (x->scan && x->checked) {
			x->crc = crc32_gzip_refl(x->crc, out, made);
			x->isize += made;
		}
		if (ret == Z_STREAM_END) {
			int rc = member_trailer(x, err);
			if (rc < 0)
				return -1;
			if (rc > 0 && truncated(x, err) < 0)
				return -1;
			continue;
		}
		bool progress = before_in != x->z.avail_in || made;
		if (ret == Z_BUF_ERROR && (progress || x->z.avail_in == 0))
			continue; /* needs input */
		if (ret != Z_OK)
			return zfail(x, err, ret == Z_DATA_ERROR ? "corrupt" : "decoder failed");
		if (x->scan && (x->z.data_type & 128) && !(x->z.data_type & 64) &&
		    tm_decomp_want_point(x->d, x->uoff, false))
			block_point(x);
	}
	return (ssize_t)(cap - x->z.avail_out);
}

/* BGZF (bgzip, samtools): every member says its size in an extra field ("BC", BSIZE) and
 * ends with its output size, so runs of members up to 1 MiB of output are units that decode
 * on their own thread.  Other gzip streams are decoded in order. */
#define BGZF_RUN (1u << 20)

/* The size of the BGZF member at the input's position and its output size; 0 when it is
 * not one (or is truncated). */
static int bgzf_member(struct tm_cin *in, uint64_t *csize, uint32_t *usize,
		       struct tm_block_error *err)
{
	ssize_t n = tm_cin_peek(in, 18, err);
	if (n < 0)
		return -1;
	const uint8_t *h = in->buf + in->at;
	if (n < 18 || h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || !(h[3] & 4) ||
	    h[12] != 'B' || h[13] != 'C' || h[14] != 2 || h[15] != 0)
		return 0;
	uint64_t size = ((uint64_t)h[16] | (uint64_t)h[17] << 8) + 1;
	if ((n = tm_cin_peek(in, (size_t)size, err)) < 0)
		return -1;
	if ((uint64_t)n < size || size < 26)
		return 0;
	const uint8_t *t = in->buf + in->at + size - 4;
	*csize = size;
	*usize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
	return *usize <= 65536;
}

static int gz_next_unit(struct tm_decomp *d, struct tm_cin *in, struct tm_unit *u,
			struct tm_block_error *err)
{
	uint64_t at = tm_cin_pos(in), ulen = 0;
	u->at = (struct tm_point){ .coff = at, .kind = AT_MEMBER };
	for (;;) {
		uint64_t csize;
		uint32_t usize;
		int rc = bgzf_member(in, &csize, &usize, err);
		if (rc < 0)
			return -1;
		if (rc == 0 || ulen + usize > BGZF_RUN)
			break;
		in->at += (size_t)csize;
		ulen += usize;
	}
	if (tm_cin_pos(in) == at && at > 0) {
		/* After BGZF members: more members in order, or trailing bytes. */
		ssize_t n = tm_cin_peek(in, 2, err);
		if (n < 0)
			return -1;
		const uint8_t *h = in->buf + in->at;
		if (n < 2 || h[0] != 0x1f || h[1] != 0x8b) {
			u->at.coff = tm_decomp_csize(d);
			for (ssize_t i = 0; i < n; i++)
				if (h[i]) {
					tm_decomp_diag(d, false, at, "gzip: %llu bytes of trailing "
						       "garbage after the last member ignored",
						       (unsigned long long)(tm_decomp_csize(d) - at));
					break;
				}
		}
		return 0;
	}
	if (tm_cin_pos(in) == at)
		return 0; /* not BGZF: in order from the start */
	u->clen = tm_cin_pos(in) - at;
	u->ulen = ulen;
	u->exact = true;
	return 1;
}

/* A run of BGZF members, whole, with ISA-L's inflate (about twice zlib's speed here), which
 * reads each member's gzip header and checks its CRC and size. */
static ssize_t gz_decode_unit(struct tm_decomp *d, const struct tm_unit *u, uint8_t *out,
			      struct tm_block_error *err)
{
	uint8_t *in = g_try_malloc(u->clen ? u->clen : 1);
	struct inflate_state *st = g_try_new(struct inflate_state, 1);
	ssize_t rc = -1;
	if (!in || !st) {
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
		goto out;
	}
	if (tm_block_pread(tm_decomp_inner(d), in, u->clen, u->at.coff, err) < 0)
		goto out;
	isal_inflate_init(st);
	st->next_in = in;
	st->avail_in = (uint32_t)u->clen;
	st->next_out = out;
	st->avail_out = (uint32_t)u->ulen;
	for (;;) { /* member after member */
		st->crc_flag = ISAL_GZIP;
		int ret = isal_inflate(st);
		if (ret != ISAL_DECOMP_OK || st->block_state != ISAL_BLOCK_FINISH) {
			tm_decomp_corrupt(d, err, u->at.coff + (u->clen - st->avail_in), "%s",
					  ret == ISAL_INCORRECT_CHECKSUM ? "CRC mismatch"
					  : ret == ISAL_DECOMP_OK ? "member longer than it says"
								  : "corrupt member");
			break;
		}
		if (st->avail_in == 0) {
			rc = (ssize_t)(u->ulen - st->avail_out);
			break;
		}
		uint8_t *next_in = st->next_in, *next_out = st->next_out;
		uint32_t avail_in = st->avail_in, avail_out = st->avail_out;
		isal_inflate_reset(st);
		st->next_in = next_in, st->avail_in = avail_in;
		st->next_out = next_out, st->avail_out = avail_out;
	}
out:
	g_free(st);
	g_free(in);
	return rc;
}

const struct tm_codec tm_codec_gzip = {
	.format = TM_DECOMP_GZIP,
	.name = "gzip",
	.mib_per_s = 200,
	.open = gz_open,
	.read = gz_read,
	.close = gz_close,
	.next_unit = gz_next_unit,
	.decode_unit = gz_decode_unit,
};
