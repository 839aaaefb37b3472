/* gzip with ISA-L's inflate (about 2.5 times zlib's speed on the Linux tarball here): single
 * streams, concatenated members (pigz, cat a.gz b.gz) and BGZF.
 *
 * Seek points: every member start (free), and inside a member, at a deflate block boundary
 * once per spacing bytes of output, with the bit offset of the boundary and the 32 KiB of
 * output before it, stored deflated (pack_window): what zlib's Z_BLOCK stopped at when it
 * made them, so tables saved then still serve.  The scan finds the boundaries as told at
 * "finding block boundaries" below.  A decoder resumes at a point with the bits in ISA-L's
 * bit buffer and the window as its dictionary, then goes on member by member.  Resumes are
 * ISA-L too, not zlib: ISA-L takes some headers zlib refuses (fuzz_decomp found an
 * incomplete distance code, zlib's "invalid distances set"), and a resume must decode what
 * the scan did.  Every decoder inflates raw deflate and reads the gzip framing itself
 * (RFC 1952 headers and trailers).
 * The scan checks every member's CRC (ISA-L's crc32_gzip_refl, five times zlib's crc32
 * here) and length; resumed decoders do not (they start mid-member), and need not: the scan
 * checked the same bytes, and the source's identity says they are the same. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include "decomp_codec.h"

enum { AT_MEMBER = 0, AT_BLOCK = 1 };
#define WINDOW 32768u

/* ISA-L's raw inflate, and what the scan needs to find block boundaries with it. */
struct inflater {
	struct inflate_state st;
	uint8_t *counted;           /* output up to here went into the CRC, size and uoff */
	uint64_t due;               /* the decompressed offset where a point is next due */
	bool seek;                  /* a point is due: feeding pieces to stop at a boundary */
	struct inflate_state *snap; /* the scan's: st before the piece being fed */
	uint8_t *hist;              /* the scan's WINDOW bytes: output of the reads before this
				     * one, near a due point */
	uint64_t hist_end;          /* decompressed offset of hist's end */
	uint32_t hist_len;
};

/* Deflating the scan's windows (pack_window). */
struct window_packer {
	struct isal_zstream s;
	uint8_t level_buf[ISAL_DEF_LVL1_MEDIUM]; /* tokens for a whole window: one block */
	uint8_t in[WINDOW + 64];                 /* the window, zeros after it */
};

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	struct inflater *isal; /* raw deflate: the gzip framing is ours */
	struct window_packer *pack; /* the scan's, made at its first point */
	bool scan;
	bool in_member;
	bool checked;  /* the member was decoded from its start: its CRC and size are checked */
	bool ended;
	uint32_t crc;  /* of the member's output so far (ISA-L's crc32_gzip_refl) */
	uint32_t isize;
	uint64_t uoff; /* decompressed offset of the next byte produced */
	uint64_t member_uoff; /* ... of the member's first byte */
};

static void gz_close(struct tm_dec *x)
{
	g_free(x->isal->snap);
	g_free(x->isal->hist);
	g_free(x->isal);
	g_free(x->pack);
	tm_cin_free(&x->in);
	g_free(x);
}

/* The decoder at a member's start, its framing read. */
static void restart(struct tm_dec *x)
{
	isal_inflate_reset(&x->isal->st);
	x->isal->st.crc_flag = ISAL_DEFLATE;
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
	x->isal = g_new0(struct inflater, 1);
	if (scan) {
		x->isal->snap = g_new(struct inflate_state, 1);
		x->isal->hist = g_malloc(WINDOW);
	}
	struct inflate_state *st = &x->isal->st;
	isal_inflate_init(st);
	x->isal->due = x->uoff + tm_decomp_spacing(d);
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
	if (ok && p->bits) { /* the decoder takes them first, as zlib's inflatePrime does */
		ok = tm_cin_fill(&x->in, err) > 0 && p->bits < 8;
		if (ok) {
			st->read_in = (uint64_t)(x->in.buf[x->in.at++] >> (8 - p->bits));
			st->read_in_length = p->bits;
		}
	}
	if (ok)
		ok = isal_inflate_set_dict(st, window, wlen) == COMP_OK;
	if (!ok) {
		if (err->code == TM_BLOCK_OK || err->code != TM_BLOCK_IO)
			tm_decomp_corrupt(d, err, p->coff, "bad seek point");
		gz_close(x);
		return NULL;
	}
	return x;
}

/* The window deflated in zlib's format (uncompress reads it) into out, *len bytes at most
 * (the count on return): false if it did not fit.  ISA-L's level 1: zlib's level 1 took
 * 0.4 ms a point here (a sixth of the scan with ISA-L), this a fifth of that, in as few
 * bytes. */
static bool pack_window(struct tm_dec *x, const uint8_t *window, uint32_t wlen, uint8_t *out,
			uLongf *len)
{
	if (!x->pack)
		x->pack = g_new0(struct window_packer, 1);
	/* From a copy: ISA-L's output differed by a few bytes from run to run when it read
	 * the window in place, as if the bytes after it mattered. */
	memcpy(x->pack->in, window, wlen);
	memset(x->pack->in + wlen, 0, sizeof x->pack->in - wlen);
	struct isal_zstream *s = &x->pack->s;
	isal_deflate_stateless_init(s);
	s->level = 1;
	s->level_buf = x->pack->level_buf;
	s->level_buf_size = sizeof x->pack->level_buf;
	s->gzip_flag = IGZIP_ZLIB;
	s->end_of_stream = 1;
	s->next_in = x->pack->in;
	s->avail_in = wlen;
	s->next_out = out;
	s->avail_out = (uint32_t)*len;
	if (isal_deflate_stateless(s) == COMP_OK) {
		*len = s->total_out;
		return true;
	}
	return compress2(out, len, window, wlen, 1) == Z_OK;
}

/* Add a point at the block boundary at compressed bit offset bit, with the window (the
 * output before it, at most WINDOW bytes): the scan only. */
static void add_block_point(struct tm_dec *x, uint64_t bit, const uint8_t *window,
			    uint32_t wlen)
{
	uLongf clen = compressBound(WINDOW);
	uint8_t *aux = g_malloc(4 + clen);
	memcpy(aux, &wlen, 4);
	if (pack_window(x, window, wlen, aux + 4, &clen)) {
		/* coff: the first whole byte after the boundary; bits: the boundary's bits of
		 * the byte before (a resume puts them in the decoder's bit buffer). */
		struct tm_point p = { .uoff = x->uoff, .coff = (bit + 7) / 8,
				      .bits = (uint8_t)((8 - bit % 8) % 8), .kind = AT_BLOCK };
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
	restart(x);
	x->in_member = x->checked = true;
	x->crc = x->isize = 0;
	x->member_uoff = x->uoff;
	if (x->scan)
		tm_decomp_unit_start(x->d, x->uoff);
	if (x->scan && at > 0 && tm_decomp_want_point(x->d, x->uoff, true)) {
		struct tm_point p = { .uoff = x->uoff, .coff = at, .kind = AT_MEMBER };
		tm_decomp_add_point(x->d, &p, NULL, 0);
		if (x->isal)
			x->isal->due = x->uoff + tm_decomp_spacing(x->d);
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

/* The framing before or after a member's deflate data, read with f (member_header or
 * member_trailer): -1 on error, else 0, the stream ending there if the source does. */
static int framing(struct tm_dec *x, struct tm_block_error *err,
		   int (*f)(struct tm_dec *x, struct tm_block_error *err))
{
	int rc = f(x, err);
	return rc > 0 ? truncated(x, err) : rc;
}

/* ---- finding block boundaries ----
 * ISA-L's inflate cannot be told to stop at a block boundary, but it stops at one by itself
 * when its input ends inside the next block's header: it keeps what it has of the header
 * aside and says ISAL_BLOCK_HDR, the bits not yet decoded being read_in_length bits of
 * read_in and tmp_in_size bytes of tmp_in_buffer; or, when its output fills just after a
 * block's end code, ISAL_BLOCK_NEW_HDR.  Either way, once every byte it decoded has been
 * handed out, the boundary's bit offset is what it took from the source less those bits,
 * and the output so far ends there: the same point zlib's Z_BLOCK stops at. */

#define LEAD (64u << 10)        /* the search starts this far before the due offset */
#define HIST_AHEAD (256u << 10) /* keep the output's tail from this far before a due point */

static bool isal_at_boundary(const struct inflate_state *st)
{
	return (st->block_state == ISAL_BLOCK_HDR || st->block_state == ISAL_BLOCK_NEW_HDR) &&
	       st->tmp_out_valid == st->tmp_out_processed;
}

/* The part of a state that a snapshot keeps: all but its output buffer's unused end. */
static size_t isal_live(const struct inflate_state *st)
{
	return offsetof(struct inflate_state, tmp_out_buffer) + (size_t)st->tmp_out_valid;
}

/* Refill the input once ISA-L took all of it, keeping the last 8 bytes it took in front:
 * at a member's end it may hold up to 8 of them unused (read_in), the trailer's. */
static ssize_t isal_fill(struct tm_dec *x, struct tm_block_error *err)
{
	size_t keep = x->in.at < 8 ? x->in.at : 8;
	x->in.at -= keep;
	ssize_t n = tm_cin_peek(&x->in, keep + 1, err);
	x->in.at += keep;
	return n < 0 ? -1 : n - (ssize_t)keep;
}

/* One isal_inflate on at most in_max bytes of the buffered input and out_max bytes of the
 * room left; x->in follows what it took. */
static int isal_step(struct tm_dec *x, size_t in_max, uint64_t out_max)
{
	struct inflate_state *st = &x->isal->st;
	uint32_t room = st->avail_out, lim = out_max < room ? (uint32_t)out_max : room;
	size_t avail = x->in.len - x->in.at;
	st->next_in = x->in.buf + x->in.at;
	st->avail_in = (uint32_t)(avail < in_max ? avail : in_max);
	st->avail_out = lim;
	int ret = isal_inflate(st);
	st->avail_out = room - (lim - st->avail_out);
	x->in.at = (size_t)(st->next_in - x->in.buf);
	return ret;
}

/* The output decoded since the last count goes into the member's CRC and size (the scan's,
 * from the member's start). */
static void isal_count(struct tm_dec *x)
{
	struct inflater *is = x->isal;
	size_t made = (size_t)(is->st.next_out - is->counted);
	if (x->scan && x->checked) {
		x->crc = crc32_gzip_refl(x->crc, is->counted, made);
		x->isize += (uint32_t)made;
	}
	x->uoff += made;
	is->counted = is->st.next_out;
}

/* A point where the decoder stands (isal_at_boundary) if it is due, buf being this read's
 * output: its window is the member's output before it, from buf and the previous reads'
 * (hist).  false when not due yet or the window was not kept. */
static bool isal_point(struct tm_dec *x, const uint8_t *buf)
{
	struct inflater *is = x->isal;
	isal_count(x);
	if (x->uoff < is->due)
		return false;
	if (!tm_decomp_want_point(x->d, x->uoff, false)) {
		is->seek = false;
		is->due = x->uoff + tm_decomp_spacing(x->d) / 8;
		return true;
	}
	uint64_t bit = 8 * tm_cin_pos(&x->in) - (uint64_t)is->st.read_in_length -
		       8 * (uint64_t)is->st.tmp_in_size;
	uint32_t here = (uint32_t)(is->st.next_out - buf);
	uint32_t want = (uint32_t)MIN((uint64_t)WINDOW, x->uoff - x->member_uoff);
	if (here >= want) {
		add_block_point(x, bit, buf + here - want, want);
	} else {
		uint32_t old = want - here;
		if (is->hist_end != x->uoff - here || is->hist_len < old)
			return false; /* the next boundary serves */
		uint8_t window[WINDOW];
		memcpy(window, is->hist + is->hist_len - old, old);
		memcpy(window + old, buf, here);
		add_block_point(x, bit, window, want);
	}
	is->seek = false;
	is->due = x->uoff + tm_decomp_spacing(x->d);
	return true;
}

/* Whether a step from snapshot snap read a block header: it holds other Huffman tables. */
static bool isal_new_tables(const struct inflate_state *st, const struct inflate_state *snap)
{
	return memcmp(st->lit_huff_code.short_code_lookup, snap->lit_huff_code.short_code_lookup,
		      sizeof st->lit_huff_code.short_code_lookup) != 0;
}

/* While a point is due, the input goes in pieces of the first size, each after a snapshot
 * of the state.  When the decoder then stands at a boundary, that is the point.  When it
 * holds other Huffman tables, it read a block header in that piece: back to the snapshot,
 * and the piece again in pieces of the next size, down to bits so small that one ends
 * inside the header (a dynamic header is longer, in practice; a fixed block's 3 bits are
 * passed by, and the next boundary serves).  A snapshot copies some 60 KiB: the levels keep
 * them few, and the search costs the scan a few per cent on the Linux tarball.  Returns
 * isal_inflate's code, or 1 when the decoder already stood at the point. */
static const uint32_t seek_pieces[] = { 8192, 512, 16 };

static int isal_seek_step(struct tm_dec *x, const uint8_t *buf)
{
	struct inflater *is = x->isal;
	struct inflate_state *st = &is->st;
	if (isal_at_boundary(st) && isal_point(x, buf))
		return 1; /* the last step stopped there */
	size_t end = x->in.at + MIN((size_t)seek_pieces[0], x->in.len - x->in.at);
	size_t level = 0, last = G_N_ELEMENTS(seek_pieces) - 1;
	int ret = 0;
	while (is->seek && x->in.at < end && st->avail_out > 0 &&
	       st->block_state < ISAL_BLOCK_INPUT_DONE) {
		size_t n = MIN((size_t)seek_pieces[level], end - x->in.at);
		if (level < last) {
			st->next_in = x->in.buf + x->in.at; /* where the snapshot restarts */
			st->avail_in = 0;
			memcpy(is->snap, st, isal_live(st));
		}
		if ((ret = isal_step(x, n, UINT64_MAX)) < 0)
			break;
		if (isal_at_boundary(st))
			isal_point(x, buf); /* if it is due: else on to the next */
		else if (level < last && isal_new_tables(st, is->snap)) {
			memcpy(st, is->snap, isal_live(is->snap));
			x->in.at = (size_t)(st->next_in - x->in.buf);
			end = x->in.at + n;
			level++;
		}
	}
	return ret;
}

/* Near a due point, keep the tail of this read's output: the window of a boundary found
 * early in the next read reaches back into it. */
static void isal_keep(struct tm_dec *x, const uint8_t *buf)
{
	struct inflater *is = x->isal;
	uint32_t made = (uint32_t)(is->st.next_out - buf);
	if (!is->seek && x->uoff + HIST_AHEAD < is->due)
		return;
	if (is->hist_end != x->uoff - made)
		is->hist_len = 0;
	uint32_t keep = made >= WINDOW ? 0 : MIN(is->hist_len, WINDOW - made);
	uint32_t add = MIN(made, WINDOW);
	memmove(is->hist, is->hist + is->hist_len - keep, keep);
	memcpy(is->hist + keep, buf + made - add, add);
	is->hist_len = keep + add;
	is->hist_end = x->uoff;
}

static int isal_fail(struct tm_dec *x, struct tm_block_error *err, int ret)
{
	return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "corrupt: %s",
				 ret == ISAL_INVALID_LOOKBACK ? "invalid distance too far back"
				 : ret == ISAL_INVALID_SYMBOL ? "invalid code"
				 : ret == ISAL_INVALID_BLOCK  ? "invalid block"
							      : "decoder failed");
}

/* The member's deflate data ended: give back the whole bytes ISA-L took past it (its
 * trailer's), then read the trailer. */
static int isal_member_end(struct tm_dec *x, struct tm_block_error *err)
{
	struct inflate_state *st = &x->isal->st;
	isal_count(x);
	size_t back = (size_t)st->read_in_length / 8;
	if (back > x->in.at)
		return isal_fail(x, err, 0);
	x->in.at -= back;
	st->read_in = 0;
	st->read_in_length = 0;
	return framing(x, err, member_trailer);
}

static ssize_t gz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	struct inflater *is = x->isal;
	struct inflate_state *st = &is->st;
	st->next_out = is->counted = buf;
	st->avail_out = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	while (st->avail_out > 0 && !x->ended) {
		if (!x->in_member) {
			isal_count(x);
			if (framing(x, err, member_header) < 0)
				return -1;
			continue;
		}
		bool eof = false;
		if (x->in.at >= x->in.len) {
			ssize_t n = isal_fill(x, err);
			if (n < 0)
				return -1;
			eof = n == 0;
		}
		size_t at = x->in.at;
		uint8_t *out = st->next_out;
		uint64_t now = x->uoff + (uint64_t)(out - is->counted);
		/* The search starts LEAD bytes before the point is due: a step decodes up to
		 * 32 KiB past the output it hands out (pigz puts a boundary at every 128 KiB).
		 * At the end of the input or of the deflate data, the steps only flush. */
		is->seek = x->scan && (is->seek || now + LEAD >= is->due);
		int ret = is->seek && !eof && st->block_state < ISAL_BLOCK_INPUT_DONE
				  ? isal_seek_step(x, buf)
				  : isal_step(x, SIZE_MAX, x->scan && !is->seek ? is->due - LEAD - now
									 : UINT64_MAX);
		if (ret < 0)
			return isal_fail(x, err, ret);
		if (ret == 1)
			continue;
		if (st->block_state == ISAL_BLOCK_FINISH) {
			if (isal_member_end(x, err) < 0)
				return -1;
			continue;
		}
		if (x->in.at == at && st->next_out == out) { /* no progress */
			if (!eof)
				return isal_fail(x, err, 0);
			if (truncated(x, err) < 0)
				return -1;
		}
	}
	isal_count(x);
	if (x->scan)
		isal_keep(x, buf);
	return (ssize_t)(st->next_out - buf);
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
