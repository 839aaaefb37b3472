/* bzip2 through libbz2: one stream (bzip2, lbzip2) or many (pbzip2, concatenated files).
 * Seek points at stream starts, which need no state: pbzip2 writes a stream per block, so
 * its files seek at every block; a single-stream file has one point, its start.  libbz2
 * checks every block's and stream's CRC. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <bzlib.h>

#include "decomp_codec.h"

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	bz_stream s;
	bool scan, ended, active;
	uint64_t uoff;
};

static void bz_close(struct tm_dec *x)
{
	if (x->active)
		BZ2_bzDecompressEnd(&x->s);
	tm_cin_free(&x->in);
	g_free(x);
}

static int stream_start(struct tm_dec *x, struct tm_block_error *err)
{
	if (x->active)
		BZ2_bzDecompressEnd(&x->s);
	char *out = x->s.next_out; /* the caller's buffer, part filled */
	unsigned avail = x->s.avail_out;
	memset(&x->s, 0, sizeof x->s);
	x->s.next_out = out;
	x->s.avail_out = avail;
	x->active = BZ2_bzDecompressInit(&x->s, 0, 0) == BZ_OK;
	if (!x->active)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "libbz2: cannot start a decoder");
	return 0;
}

static struct tm_dec *bz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	if (stream_start(x, err) < 0) {
		bz_close(x);
		return NULL;
	}
	return x;
}

static bool stream_magic(const uint8_t *h)
{
	return h[0] == 'B' && h[1] == 'Z' && h[2] == 'h' && h[3] >= '1' && h[3] <= '9';
}

static int next_stream(struct tm_dec *x, struct tm_block_error *err)
{
	ssize_t n = tm_cin_peek(&x->in, 4, err);
	if (n < 0)
		return -1;
	const uint8_t *h = x->in.buf + x->in.at;
	if (n >= 4 && stream_magic(h)) {
		if (x->scan && tm_decomp_want_point(x->d, x->uoff, true)) {
			struct tm_point p = { .uoff = x->uoff, .coff = tm_cin_pos(&x->in) };
			tm_decomp_add_point(x->d, &p, NULL, 0);
		}
		return stream_start(x, err);
	}
	x->ended = true;
	if (x->scan && n > 0) {
		bool zeros = true;
		for (ssize_t i = 0; i < n; i++)
			zeros = zeros && !h[i];
		if (!zeros)
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "bzip2: %llu bytes of trailing garbage ignored",
				       (unsigned long long)(x->in.end - tm_cin_pos(&x->in)));
	}
	return 0;
}

static ssize_t bz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	size_t cap = len > UINT32_MAX ? UINT32_MAX : len;
	x->s.next_out = (char *)buf;
	x->s.avail_out = (unsigned)cap;
	while (x->s.avail_out > 0 && !x->ended) {
		if (x->in.at >= x->in.len) {
			ssize_t n = tm_cin_fill(&x->in, err);
			if (n < 0)
				return -1;
			if (n == 0) {
				if (!x->scan)
					return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in),
								 "stream truncated");
				tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
					       "bzip2 stream truncated at byte %llu; using what "
					       "precedes it", (unsigned long long)tm_cin_pos(&x->in));
				x->ended = true;
				break;
			}
		}
		x->s.next_in = (char *)x->in.buf + x->in.at;
		size_t avail = x->in.len - x->in.at;
		x->s.avail_in = avail > UINT32_MAX ? UINT32_MAX : (unsigned)avail;
		unsigned before_in = x->s.avail_in, before_out = x->s.avail_out;
		int r = BZ2_bzDecompress(&x->s);
		x->in.at += before_in - x->s.avail_in;
		x->uoff += before_out - x->s.avail_out;
		if (r == BZ_STREAM_END) {
			if (next_stream(x, err) < 0)
				return -1;
			continue;
		}
		if (r != BZ_OK)
			return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s",
						 r == BZ_DATA_ERROR ? "CRC mismatch or corrupt block"
						 : r == BZ_DATA_ERROR_MAGIC ? "bad magic"
						 : r == BZ_MEM_ERROR ? "out of memory" : "decoder failed");
	}
	return (ssize_t)(cap - x->s.avail_out);
}

const struct tm_codec tm_codec_bzip2 = {
	.format = TM_DECOMP_BZIP2,
	.name = "bzip2",
	.open = bz_open,
	.read = bz_read,
	.close = bz_close,
};
