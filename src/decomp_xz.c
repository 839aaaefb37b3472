/* xz through liblzma: one or more streams, stream padding, any number of blocks.
 *
 * Seek points at block starts, from the streams' own indexes (lzma_file_info_decoder reads
 * them from the end of the file before the scan), so a multi-block file (xz -T0, pixz,
 * xz --block-size) is seekable at once; a single-block file (xz -T1 before 5.6) has one
 * point, its start.  A decoder at a block decodes that block with lzma_block_decoder (which
 * checks its CRC or SHA-256) and moves on to the next point's block; the scan decodes the
 * streams from the start with lzma_stream_decoder, checking everything. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <lzma.h>

#include "decomp_codec.h"

enum { AT_STREAM = 0, AT_BLOCK = 1 };
#define MEMLIMIT (256ull << 20)

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	lzma_stream s;
	bool scan, ended, active;
	struct tm_point at;  /* the block being decoded (AT_BLOCK decoders) */
	lzma_block block;    /* the decoder writes to it until the block ends */
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	bool have_filters;
	uint64_t uoff;
};

static const char *lzma_text(lzma_ret r)
{
	switch (r) {
	case LZMA_MEM_ERROR: return "out of memory";
	case LZMA_MEMLIMIT_ERROR: return "needs more than 256 MiB of memory to decode";
	case LZMA_FORMAT_ERROR: return "not an xz stream";
	case LZMA_OPTIONS_ERROR: return "unsupported options";
	case LZMA_DATA_ERROR: return "corrupt";
	case LZMA_BUF_ERROR: return "truncated";
	case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
	default: return "decoder failed";
	}
}

/* Read the indexes of every stream and add a point per block. */
static void xz_prepare(struct tm_decomp *d)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	uint64_t csize = tm_decomp_csize(d);
	if (lzma_file_info_decoder(&s, &idx, MEMLIMIT, csize) != LZMA_OK)
		return;
	uint8_t *buf = g_malloc(64 * 1024);
	uint64_t pos = 0;
	lzma_ret ret = LZMA_OK;
	struct tm_block_error err;
	for (int rounds = 0; ret == LZMA_OK && rounds < 100000; rounds++) {
		if (s.avail_in == 0) {
			size_t n = pos < csize ? (size_t)MIN((uint64_t)64 * 1024, csize - pos) : 0;
			if (n && tm_block_pread(tm_decomp_inner(d), buf, n, pos, &err) < 0)
				break;
			s.next_in = buf;
			s.avail_in = n;
			pos += n;
		}
		ret = lzma_code(&s, LZMA_RUN);
		if (ret == LZMA_SEEK_NEEDED) {
			pos = s.seek_pos;
			s.avail_in = 0;
			ret = LZMA_OK;
		}
	}
	lzma_end(&s);
	g_free(buf);
	if (ret != LZMA_STREAM_END) {
		if (idx)
			lzma_index_end(idx, NULL);
		return; /* the scan will say what is wrong */
	}
	lzma_index_iter it;
	lzma_index_iter_init(&it, idx);
	while (!lzma_index_iter_next(&it, LZMA_INDEX_ITER_NONEMPTY_BLOCK)) {
		struct tm_point p = { .uoff = it.block.uncompressed_file_offset,
				      .coff = it.block.compressed_file_offset,
				      .kind = AT_BLOCK,
				      .extra = (uint32_t)it.stream.flags->check };
		tm_decomp_add_point(d, &p, NULL, 0);
	}
	tm_decomp_set_size_hint(d, lzma_index_uncompressed_size(idx));
	lzma_index_end(idx, NULL);
}

static void filters_free(struct tm_dec *x)
{
	if (x->have_filters)
		lzma_filters_free(x->filters, NULL);
	x->have_filters = false;
}

static void xz_close(struct tm_dec *x)
{
	lzma_end(&x->s);
	filters_free(x);
	tm_cin_free(&x->in);
	g_free(x);
}

/* Start decoding the block at point p, the input positioned at its header. */
static int block_start(struct tm_dec *x, const struct tm_point *p, struct tm_block_error *err)
{
	filters_free(x);
	ssize_t n = tm_cin_peek(&x->in, 1, err);
	if (n < 0)
		return -1;
	if (n < 1 || x->in.buf[x->in.at] == 0)
		return tm_decomp_corrupt(x->d, err, p->coff, "no block header at a seek point");
	size_t hsize = lzma_block_header_size_decode(x->in.buf[x->in.at]);
	if ((n = tm_cin_peek(&x->in, hsize, err)) < 0)
		return -1;
	if ((size_t)n < hsize)
		return tm_decomp_corrupt(x->d, err, p->coff, "truncated block header");
	x->block = (lzma_block){ .version = 1, .check = (lzma_check)p->extra,
				 .filters = x->filters };
	x->block.header_size = (uint32_t)hsize;
	lzma_ret r = lzma_block_header_decode(&x->block, NULL, x->in.buf + x->in.at);
	if (r != LZMA_OK)
		return tm_decomp_corrupt(x->d, err, p->coff, "block header: %s", lzma_text(r));
	x->have_filters = true;
	x->in.at += hsize;
	if ((r = lzma_block_decoder(&x->s, &x->block)) != LZMA_OK)
		return tm_decomp_corrupt(x->d, err, p->coff, "block: %s", lzma_text(r));
	x->at = *p;
	x->active = true;
	return 0;
}

static int stream_start(struct tm_dec *x, struct tm_block_error *err)
{
	lzma_ret r = lzma_stream_decoder(&x->s, MEMLIMIT, 0);
	if (r != LZMA_OK)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "liblzma: %s", lzma_text(r));
	x->active = true;
	if (x->scan)
		tm_decomp_unit_start(x->d, x->uoff);
	return 0;
}

static struct tm_dec *xz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->s = (lzma_stream)LZMA_STREAM_INIT;
	x->uoff = p ? p->uoff : 0;
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	int rc = p && p->kind == AT_BLOCK ? block_start(x, p, err) : stream_start(x, err);
	if (rc < 0) {
		xz_close(x);
		return NULL;
	}
	return x;
}

/* After a stream's end: padding, then another stream, or the end. */
static int next_stream(struct tm_dec *x, struct tm_block_error *err)
{
	static const uint8_t magic[6] = { 0xfd, '7', 'z', 'X', 'Z', 0 };
	uint64_t pad_at = tm_cin_pos(&x->in);
	for (;;) {
		ssize_t n = tm_cin_peek(&x->in, 6, err);
		if (n < 0)
			return -1;
		const uint8_t *h = x->in.buf + x->in.at;
		if (n >= 6 && !memcmp(h, magic, 6))
			return stream_start(x, err);
		if (n > 0 && h[0] == 0) {
			x->in.at++;
			continue;
		}
		x->ended = true;
		if (x->scan && n > 0)
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "xz: %llu bytes of trailing garbage ignored",
				       (unsigned long long)(x->in.end - tm_cin_pos(&x->in)));
		else if (x->scan && (tm_cin_pos(&x->in) - pad_at) % 4)
			tm_decomp_diag(x->d, false, pad_at, "xz: stream padding not a multiple "
				       "of four bytes");
		return 0;
	}
}

static ssize_t xz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	x->s.next_out = buf;
	x->s.avail_out = len;
	while (x->s.avail_out > 0 && !x->ended) {
		if (x->in.at >= x->in.len) {
			ssize_t n = tm_cin_fill(&x->in, err);
			if (n < 0)
				return -1;
			if (n == 0) {
				tm_decomp_truncated(x->d, x->scan, tm_cin_pos(&x->in));
				x->ended = true;
				break;
			}
		}
		x->s.next_in = x->in.buf + x->in.at;
		x->s.avail_in = x->in.len - x->in.at;
		size_t before_in = x->s.avail_in, before_out = x->s.avail_out;
		lzma_ret r = lzma_code(&x->s, LZMA_RUN);
		x->in.at += before_in - x->s.avail_in;
		x->uoff += before_out - x->s.avail_out;
		if (r == LZMA_STREAM_END) {
			x->active = false;
			if (x->at.kind == AT_BLOCK) {
				/* The block is done: the next point is the next block. */
				struct tm_point next;
				if (!tm_decomp_next_point(x->d, &x->at, &next)) {
					x->ended = true;
				} else if (next.uoff != x->uoff || next.kind != AT_BLOCK) {
					return tm_decomp_corrupt(x->d, err, next.coff,
								 "blocks do not follow each other");
				} else {
					tm_cin_free(&x->in);
					tm_cin_init(&x->in, x->d, next.coff, false);
					if (block_start(x, &next, err) < 0)
						return -1;
				}
			} else if (next_stream(x, err) < 0) {
				return -1;
			}
			continue;
		}
		if (r != LZMA_OK)
			return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s",
						 lzma_text(r));
	}
	return (ssize_t)(len - x->s.avail_out);
}

/* Units are the blocks the index lists (prepare made them points). */
static int xz_next_unit(struct tm_decomp *d, struct tm_cin *in, struct tm_unit *u,
			struct tm_block_error *err)
{
	(void)err, (void)in;
	struct tm_point p, next;
	if (!tm_decomp_point(d, u->seq, &p) || p.kind != AT_BLOCK) {
		/* No index (the whole stream in order), or past the last block (nothing). */
		u->at = (struct tm_point){ .coff = u->seq ? tm_decomp_csize(d) : 0 };
		return 0;
	}
	bool last = !tm_decomp_point(d, u->seq + 1, &next);
	uint64_t uend = last ? tm_decomp_size_hint(d) : next.uoff;
	uint64_t cend = last ? tm_decomp_csize(d) : next.coff;
	if (uend <= p.uoff || uend - p.uoff > TM_UNIT_MAX || cend < p.coff) {
		u->at = p; /* a block too large: it and the rest, in order, block by block */
		return 0;
	}
	u->at = p;
	u->clen = cend - p.coff;
	u->ulen = uend - p.uoff;
	u->exact = true;
	return 1;
}

static ssize_t xz_decode_unit(struct tm_decomp *d, const struct tm_unit *u, uint8_t *out,
			      struct tm_block_error *err)
{
	/* The block header at its start says its size; a block that says nothing ends at
	 * the next point (or its compressed size from the index). */
	uint8_t *in = g_try_malloc(u->clen ? u->clen : 1);
	if (!in)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
	ssize_t rc = -1;
	lzma_filter filters[LZMA_FILTERS_MAX + 1];
	lzma_block block = { .version = 1, .check = (lzma_check)u->at.extra, .filters = filters };
	if (tm_block_pread(tm_decomp_inner(d), in, u->clen, u->at.coff, err) < 0)
		goto out;
	if (u->clen == 0 || in[0] == 0) {
		tm_decomp_corrupt(d, err, u->at.coff, "no block header at a seek point");
		goto out;
	}
	block.header_size = lzma_block_header_size_decode(in[0]);
	lzma_ret r = block.header_size <= u->clen ? lzma_block_header_decode(&block, NULL, in)
						  : LZMA_DATA_ERROR;
	if (r != LZMA_OK) {
		tm_decomp_corrupt(d, err, u->at.coff, "block header: %s", lzma_text(r));
		goto out;
	}
	size_t in_pos = block.header_size, out_pos = 0;
	r = lzma_block_buffer_decode(&block, NULL, in, &in_pos, u->clen, out, &out_pos, u->ulen);
	lzma_filters_free(filters, NULL);
	if (r != LZMA_OK)
		tm_decomp_corrupt(d, err, u->at.coff + in_pos, "%s", lzma_text(r));
	else
		rc = (ssize_t)out_pos;
out:
	g_free(in);
	return rc;
}

const struct tm_codec tm_codec_xz = {
	.format = TM_DECOMP_XZ,
	.name = "xz",
	.mib_per_s = 150,
	.prepare = xz_prepare,
	.open = xz_open,
	.read = xz_read,
	.close = xz_close,
	.next_unit = xz_next_unit,
	.decode_unit = xz_decode_unit,
};
