/* Shared by the decompressing layer's fuzz targets (fuzz_decomp, fuzz_seek_table): the
 * source device, a diag callback that checks its messages, reading a decompressor whose
 * size may still be pending, and the seek table's layout as tm_decomp_table writes it.
 *
 * Test code: nothing here is linked into tarmount or tarkv. */
#ifndef TM_FUZZ_DECOMP_UTIL_H
#define TM_FUZZ_DECOMP_UTIL_H

#include "fuzz_common.h"

#include "decomp.h"

/* Decompressed bytes a target reads at most, so that a small bomb stays fast. */
#define FZD_MAX_OUT (8u << 20)
/* The decompressor's chunk (decomp.c's CHUNK): reads straddle its edges. */
#define FZD_CHUNK (128u * 1024)

/* The seek table: a 64-byte header, then npoints 32-byte points, then the aux bytes. */
enum {
	FZD_T_FORMAT = 8, FZD_T_POINT_SIZE = 12, FZD_T_SIZE = 16, FZD_T_CSIZE = 24,
	FZD_T_NPOINTS = 32, FZD_T_AUX_LEN = 40, FZD_T_FINGERPRINT = 48, FZD_T_PARTIAL = 56,
	FZD_T_HEADER = 64, FZD_T_POINT = 32,
};

static const enum tm_decomp_format fzd_formats[] = {
	TM_DECOMP_GZIP, TM_DECOMP_ZSTD, TM_DECOMP_XZ, TM_DECOMP_BZIP2, TM_DECOMP_LZ4,
};

static inline enum tm_decomp_format fzd_format(uint8_t sel)
{
	return fzd_formats[sel % G_N_ELEMENTS(fzd_formats)];
}

/* Points of a well-formed table (npoints clipped to what the bytes hold). */
static inline uint64_t fzd_table_npoints(const uint8_t *t, size_t len)
{
	if (len < FZD_T_HEADER)
		return 0;
	uint64_t n = fz_le64(t + FZD_T_NPOINTS);
	uint64_t fit = (len - FZD_T_HEADER) / FZD_T_POINT;
	return n < fit ? n : fit;
}

static inline uint64_t fzd_point_uoff(const uint8_t *t, uint64_t i)
{
	return fz_le64(t + FZD_T_HEADER + i * FZD_T_POINT);
}

/* The diag callback: one line per finding, with a message. */
struct fzd_diags {
	unsigned warnings, errors;
};

static void fzd_diag(void *ud, bool error, uint64_t offset, const char *msg)
{
	(void)offset;
	struct fzd_diags *d = ud;
	FZ_CHECK(msg != NULL, "diag without a message");
	FZ_CHECK(!strchr(msg, '\n') || fz_skipped("multiline-err"), "diag spans lines: %s", msg);
	if (error)
		d->errors++;
	else
		d->warnings++;
}

/* A failed read's error: a code and one line. */
static inline void fzd_check_error(const struct tm_block_error *err)
{
	FZ_CHECK(err->code != TM_BLOCK_OK, "a read failed with no error code");
	fz_check_err(err->msg, sizeof err->msg);
}

/* The source device for stream[0..len): a memory device of sector size ss, or (win) a
 * window over a larger device that holds it at byte offset pad. */
static inline struct tm_block *fzd_source(const uint8_t *stream, size_t len, uint32_t ss,
					  bool win, size_t pad, uint8_t **backing)
{
	*backing = NULL;
	if (!win)
		return tm_block_mem_new(stream, len, ss);
	uint8_t *b = malloc(pad + len + 37);
	FZ_CHECK(b != NULL, "out of memory");
	memset(b, 0xa5, pad);
	if (len)
		memcpy(b + pad, stream, len);
	memset(b + pad + len, 0x5a, 37);
	*backing = b;
	struct tm_block *m = tm_block_mem_new(b, pad + len + 37, ss);
	FZ_CHECK(m != NULL, "tm_block_mem_new failed");
	struct tm_block_error err = { 0 };
	struct tm_block *w = tm_block_window_new(m, pad, len, &err);
	FZ_CHECK(w != NULL || len == 0, "window: %s", err.msg);
	return w;
}

/* Read the decompressed stream of b from the start, up to max bytes, into a new buffer
 * (g_free it): its length in *got; *failed when a read failed before the end (with the
 * error in *err).  Pieces of odd lengths so that reads straddle chunk edges. */
static inline uint8_t *fzd_read_all(struct tm_block *b, size_t max, size_t *got, bool *failed,
				    struct tm_block_error *err)
{
	uint8_t *buf = g_malloc(max + 1);
	size_t off = 0, piece = 65536 + 77;
	*failed = false;
	while (off < max) {
		size_t n = max - off < piece ? max - off : piece;
		*err = (struct tm_block_error){ 0 };
		if (tm_block_pread(b, buf + off, n, off, err) == 0) {
			off += n;
			continue;
		}
		fzd_check_error(err);
		struct tm_block_info info;
		tm_block_get_info(b, &info);
		uint64_t size = tm_block_size_bytes(b);
		FZ_CHECK(!info.size_pending || err->code != TM_BLOCK_OUT_OF_RANGE,
			 "size still pending after a read past the end");
		if (info.size_pending || size <= off || size - off >= n) {
			/* Not the end: the stream is broken here. */
			*failed = !(size <= off && err->code == TM_BLOCK_OUT_OF_RANGE);
			break;
		}
		n = (size_t)(size - off);
		if (tm_block_pread(b, buf + off, n, off, err) == 0) {
			off += n;
		} else {
			fzd_check_error(err);
			*failed = true;
		}
		break;
	}
	*got = off;
	return buf;
}

/* Read [off, off+n) of b into scratch and compare with want (NULL: no comparison): 1 when
 * the read succeeded and matched, 0 when it failed (with a well-formed error), -1 when it
 * gave other bytes. */
static struct tm_block_error fzd_last_err; /* of the last failed fzd_read_cmp, for messages */

static inline int fzd_read_cmp(struct tm_block *b, uint64_t off, size_t n, const uint8_t *want,
			       uint8_t *scratch)
{
	struct tm_block_error err = { 0 };
	if (tm_block_pread(b, scratch, n, off, &err) < 0) {
		fzd_check_error(&err);
		fzd_last_err = err;
		return 0;
	}
	fzd_last_err = (struct tm_block_error){ .msg = "no error: other bytes" };
	return !want || n == 0 || !memcmp(scratch, want, n) ? 1 : -1;
}

/* A pseudo-random number stream from the input. */
static inline uint64_t fzd_seed(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ull;
	return h | 1;
}

static inline uint64_t fzd_rand(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

#endif
