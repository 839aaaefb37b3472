/* zstd through libzstd: one frame (the zstd CLI, also -T0 and --long) or many (pzstd, zstd
 * --seekable, concatenated files).  Seek points at frame starts, which need no state: a
 * single-frame stream has one, at its start, and every read that misses the cache decodes
 * from there (tm_decomp_advice says how to make such a file seekable).  The decoder checks
 * each frame's checksum when the frame has one; skippable frames (pzstd's and the seekable
 * format's tables) are passed over. */
#include "config.h"

#include <errno.h>
#include <string.h>

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
			if (!x->scan)
				return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in),
							 "stream truncated");
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "zstd stream truncated at byte %llu; using what precedes it",
				       (unsigned long long)tm_cin_pos(&x->in));
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

const struct tm_codec tm_codec_zstd = {
	.format = TM_DECOMP_ZSTD,
	.name = "zstd",
	.open = zs_open,
	.read = zs_read,
	.close = zs_close,
};
