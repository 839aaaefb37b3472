/* lz4 frames through liblz4's frame API (LZ4F): independent or linked blocks, block and
 * content checksums (checked), skippable frames, concatenated frames.  Seek points at frame
 * starts. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <lz4frame.h>

#include "decomp_codec.h"

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	LZ4F_dctx *z;
	bool scan, ended, in_frame;
	uint64_t uoff;
};

static void lz_close(struct tm_dec *x)
{
	LZ4F_freeDecompressionContext(x->z);
	tm_cin_free(&x->in);
	g_free(x);
}

static struct tm_dec *lz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	if (LZ4F_isError(LZ4F_createDecompressionContext(&x->z, LZ4F_VERSION))) {
		g_free(x);
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "liblz4: cannot start a decoder");
		return NULL;
	}
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	return x;
}

static bool frame_magic(const uint8_t *h)
{
	return (h[0] == 0x04 && h[1] == 0x22 && h[2] == 0x4d && h[3] == 0x18) ||
	       ((h[0] & 0xf0) == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18);
}

static int next_frame(struct tm_dec *x, struct tm_block_error *err)
{
	ssize_t n = tm_cin_peek(&x->in, 4, err);
	if (n < 0)
		return -1;
	const uint8_t *h = x->in.buf + x->in.at;
	if (n >= 4 && frame_magic(h)) {
		if (x->scan && h[0] == 0x04 && x->uoff > 0 &&
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
		if (!zeros)
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "lz4: %llu bytes after the last frame ignored",
				       (unsigned long long)(x->in.end - tm_cin_pos(&x->in)));
	}
	return 0;
}

static ssize_t lz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	size_t done = 0;
	while (done < len && !x->ended) {
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
				       "lz4 stream truncated at byte %llu; using what precedes it",
				       (unsigned long long)tm_cin_pos(&x->in));
			x->ended = true;
			break;
		}
		size_t dst = len - done, src = x->in.len - x->in.at;
		size_t ret = LZ4F_decompress(x->z, buf + done, &dst, x->in.buf + x->in.at, &src,
					     NULL);
		x->in.at += src;
		done += dst;
		x->uoff += dst;
		if (LZ4F_isError(ret))
			return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s",
						 LZ4F_getErrorName(ret));
		if (ret == 0)
			x->in_frame = false;
	}
	return (ssize_t)done;
}

const struct tm_codec tm_codec_lz4 = {
	.format = TM_DECOMP_LZ4,
	.name = "lz4",
	.open = lz_open,
	.read = lz_read,
	.close = lz_close,
};
