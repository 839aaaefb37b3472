/* zstd through libzstd: one frame (the zstd CLI, also -T0 and --long) or many (pzstd, zstd
 * --seekable, concatenated files).  Seek points at frame starts, which need no state: a
 * single-frame stream has one, at its start, and every read that misses the cache decodes
 * from there (tm_decomp_advice says how to make such a file seekable).  The decoder checks
 * each frame's checksum when the frame has one; skippable frames (pzstd's and the seekable
 * format's tables) are passed over. */
#include "config.h"

#include <errno.h>
#include <string.h>

/* ZSTD_getFrameHeader: in the experimental section, exported by the shared library. */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include "decomp_codec.h"

/* Largest window accepted: the zstd CLI's own default limit (--long's 128 MiB). */
#define WINDOW_LOG_MAX 27

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	ZSTD_DCtx *z;
	bool scan, ended, in_frame;
	uint64_t uoff;
};

static void zs_close(struct tm_dec *x)
{
	ZSTD_freeDCtx(x->z);
	tm_cin_free(&x->in);
	g_free(x);
}

static struct tm_dec *zs_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	x->z = ZSTD_createDCtx();
	if (!x->z || ZSTD_isError(ZSTD_DCtx_setParameter(x->z, ZSTD_d_windowLogMax,
							 WINDOW_LOG_MAX))) {
		ZSTD_freeDCtx(x->z);
		g_free(x);
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "libzstd: cannot start a decoder");
		return NULL;
	}
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	return x;
}

static bool frame_magic(const uint8_t *h)
{
	return (h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd) ||
	       ((h[0] & 0xf0) == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18);
}

/* Between frames: start the next one, or end at zeros, garbage or the end. */
static int next_frame(struct tm_dec *x, struct tm_block_error *err)
{
	ssize_t n = tm_cin_peek(&x->in, 4, err);
	if (n < 0)
		return -1;
	const uint8_t *h = x->in.buf + x->in.at;
	if (n >= 4 && frame_magic(h)) {
		if (x->scan && h[0] == 0x28 && x->uoff > 0 &&
		    tm_decomp_want_point(x->d, x->uoff, true)) {
			struct tm_point p = { .uoff = x->uoff, .coff = tm_cin_pos(&x->in) };
			tm_decomp_add_point(x->d, &p, NULL, 0);
		}
		x->in_frame = true;
		if (x->scan)
			tm_decomp_unit_start(x->d, x->uoff);
		return 0;
	}
	x->ended = true;
	if (x->scan && n > 0) {
		bool zeros = true;
		for (ssize_t i = 0; i < n; i++)
			zeros = zeros && !h[i];
		if (!zeros || n >= 4)
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "zstd: %llu bytes after the last frame ignored",
				       (unsigned long long)(x->in.end - tm_cin_pos(&x->in)));
	}
	return 0;
}

static ssize_t zs_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	ZSTD_outBuffer out = { buf, len, 0 };
	while (out.pos < out.size && !x->ended) {
		if (!x->in_frame) {
			if (next_frame(x, err) < 0)
				return -1;
			continue;
		}
		ssize_t n = tm_cin_fill(&x->in, err);
		if (n < 0)
			return -1;
		if (n == 0) {
			tm_decomp_truncated(x->d, x->scan, tm_cin_pos(&x->in));
			x->ended = true;
			break;
		}
		ZSTD_inBuffer in = { x->in.buf + x->in.at, x->in.len - x->in.at, 0 };
		size_t before = out.pos;
		size_t ret = ZSTD_decompressStream(x->z, &out, &in);
		x->in.at += in.pos;
		x->uoff += out.pos - before;
		if (ZSTD_isError(ret)) {
			if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge)
				return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in),
							 "the frame needs a window over 128 MiB "
							 "(zstd --long=28 or more)");
			return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s",
						 ZSTD_getErrorName(ret));
		}
		if (ret == 0)
			x->in_frame = false;
	}
	return (ssize_t)out.pos;
}

/* Units are frames: walked by their block headers (3 bytes each, no decoding), so that
 * each can be decoded whole on its own thread.  A frame whose output could pass
 * TM_UNIT_MAX (the zstd CLI's single frame) and whatever follows the frames are left to the
 * in-order decoder. */
static int zs_next_unit(struct tm_decomp *d, struct tm_cin *in, struct tm_unit *u,
			struct tm_block_error *err)
{
	for (;;) {
		uint64_t at = tm_cin_pos(in);
		u->at = (struct tm_point){ .coff = at };
		ssize_t n = tm_cin_peek(in, ZSTD_FRAMEHEADERSIZE_MAX, err);
		if (n < 0)
			return -1;
		const uint8_t *h = in->buf + in->at;
		if (n < 8 || !frame_magic(h))
			return 0;
		if (h[0] != 0x28) { /* a skippable frame */
			uint32_t size = (uint32_t)h[4] | (uint32_t)h[5] << 8 |
					(uint32_t)h[6] << 16 | (uint32_t)h[7] << 24;
			int rc = tm_cin_skip(in, 8 + (uint64_t)size, err);
			if (rc <= 0)
				return rc;
			continue;
		}
		ZSTD_frameHeader fh;
		if (ZSTD_getFrameHeader(&fh, h, (size_t)n) != 0 ||
		    (fh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN &&
		     fh.frameContentSize > TM_UNIT_MAX))
			return 0;
		int rc = tm_cin_skip(in, fh.headerSize, err);
		uint64_t bound = 0;
		uint32_t bmax = fh.blockSizeMax < (128u << 10) ? fh.blockSizeMax : 128u << 10;
		for (bool last = false; rc > 0 && !last;) {
			if ((n = tm_cin_peek(in, 3, err)) < 0)
				return -1;
			if (n < 3)
				return 0; /* truncated: the in-order decoder says so */
			const uint8_t *b = in->buf + in->at;
			uint32_t bh = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
			uint32_t type = (bh >> 1) & 3, size = bh >> 3;
			last = bh & 1;
			if (type == 3 || (type != 2 && size > bmax && size > fh.blockSizeMax))
				return 0; /* corrupt: the in-order decoder says where */
			bound += type == 2 ? bmax : size;
			if (bound > TM_UNIT_MAX)
				return 0;
			rc = tm_cin_skip(in, 3 + (type == 1 ? 1 : (uint64_t)size), err);
		}
		if (rc > 0 && fh.checksumFlag)
			rc = tm_cin_skip(in, 4, err);
		if (rc <= 0)
			return rc < 0 ? -1 : 0;
		bool exact = fh.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN;
		u->clen = tm_cin_pos(in) - at;
		u->ulen = exact ? fh.frameContentSize : bound;
		u->exact = exact;
		(void)d;
		return 1;
	}
}

static ssize_t zs_decode_unit(struct tm_decomp *d, const struct tm_unit *u, uint8_t *out,
			      struct tm_block_error *err)
{
	uint8_t *in = g_try_malloc(u->clen ? u->clen : 1);
	ZSTD_DCtx *z = ZSTD_createDCtx();
	ssize_t rc = -1;
	if (!in || !z) {
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
	} else if (tm_block_pread(tm_decomp_inner(d), in, u->clen, u->at.coff, err) == 0) {
		size_t r = ZSTD_decompressDCtx(z, out, u->ulen, in, u->clen);
		if (ZSTD_isError(r))
			tm_decomp_corrupt(d, err, u->at.coff, "%s", ZSTD_getErrorName(r));
		else
			rc = (ssize_t)r;
	}
	ZSTD_freeDCtx(z);
	g_free(in);
	return rc;
}

const struct tm_codec tm_codec_zstd = {
	.format = TM_DECOMP_ZSTD,
	.name = "zstd",
	.mib_per_s = 1100,
	.open = zs_open,
	.read = zs_read,
	.close = zs_close,
	.next_unit = zs_next_unit,
	.decode_unit = zs_decode_unit,
};
