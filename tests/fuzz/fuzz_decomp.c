/* libFuzzer target: the decompressing layer on a compressed stream.  The stream is opened
 * with tm_decomp_new (no table: the scan runs on its thread), read from the start (at most
 * FZD_MAX_OUT bytes) and then at chunk edges and pseudo-random offsets, which must give the
 * bytes the sequential pass gave; tm_decomp_finish must return; the table it leaves must be
 * accepted by a second open of the same source, which must give the same bytes at every
 * seek point's edge and at the same offsets (decoding from the points, in reverse order).
 * Every diagnostic and error is one line.
 *
 * Input: one control byte, then the compressed stream:
 *   bits 0-2  format: gzip, zstd, xz, bzip2, lz4 (value mod 5)
 *   bit 3     sector size 4096 (else 512)
 *   bit 4     the stream sits in a window, 1 + 97 * (size mod 8) bytes into a larger device
 *   bits 5-6  spacing of the scan's costly points: 1 MiB, 32 KiB, 128 KiB, 300 KiB
 *   bit 7     cache of 3 MiB (else 1 MiB, the smallest the layer keeps)
 *
 * Checks that can be switched off (FUZZ_SKIP_CHECKS, see fuzz_common.h):
 *   reread     a read of bytes the scan gave fails, or gives other bytes, later
 *   own-table  tm_decomp_new refuses the table tm_decomp_table gave for this source */
#include "config.h"

#include "fuzz_decomp_util.h"

#define NRANDOM 8

static void check_reread(bool ok, const char *when, uint64_t off, size_t n)
{
	FZ_CHECK(ok || fz_skipped("reread"),
		 "%s: bytes [%llu, +%zu) the scan gave read differently (%s)", when,
		 (unsigned long long)off, n, fzd_last_err.msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	const uint8_t *stream = data + 1;
	size_t slen = size - 1;
	enum tm_decomp_format fmt = fzd_format(ctl & 7);
	uint32_t ss = ctl & 8 ? 4096 : 512;
	bool win = (ctl & 16) && slen > 0;
	size_t pad = 1 + 97 * (size % 8);
	static const uint64_t spacings[4] = { 0, 32 << 10, 128 << 10, 300 << 10 };
	struct fzd_diags diags = { 0 };
	struct tm_decomp_options opts = {
		.cache_size = ctl & 128 ? 3u << 20 : 1u << 20,
		.spacing = spacings[(ctl >> 5) & 3],
		.diag = fzd_diag,
		.diag_ud = &diags,
	};
	uint64_t rng = fzd_seed(data, size);

	uint8_t *backing;
	struct tm_block *src = fzd_source(stream, slen, ss, win, pad, &backing);
	FZ_CHECK(src != NULL, "no source device");
	struct tm_block_error err = { 0 };
	struct tm_block *b = tm_decomp_new(src, fmt, &opts, NULL, 0, &err);
	FZ_CHECK(b != NULL, "tm_decomp_new without a table failed: %s", err.msg);

	size_t n;
	bool failed;
	uint8_t *seq = fzd_read_all(b, FZD_MAX_OUT, &n, &failed, &err);
	uint8_t *scratch = g_malloc(2 * FZD_CHUNK + 2);

	/* Again, at random offsets and across chunk edges: the cache or a decoder. */
	uint64_t offs[NRANDOM];
	size_t lens[NRANDOM];
	for (int i = 0; i < NRANDOM; i++) {
		uint64_t off = fzd_rand(&rng) % (n + 1);
		size_t len = 1 + fzd_rand(&rng) % (2 * FZD_CHUNK);
		if (len > n - off)
			len = (size_t)(n - off);
		offs[i] = off, lens[i] = len;
		check_reread(fzd_read_cmp(b, off, len, seq + off, scratch) == 1, "random", off, len);
	}
	for (uint64_t e = FZD_CHUNK; e + 1 <= n; e += FZD_CHUNK)
		check_reread(fzd_read_cmp(b, e - 1, 2 < n - (e - 1) ? 2 : 1, seq + e - 1, scratch) == 1,
			     "chunk edge", e - 1, 2);

	/* The reader is done: the scan checks the rest of the stream and stops; damage is
	 * told here, as one line. */
	bool fin = tm_decomp_finish(b, n, &err);
	FZ_CHECK(fin || (err.code != TM_BLOCK_OK && !strchr(err.msg, '\n')),
		 "tm_decomp_finish failed after %zu bytes were read without a clean error: %s", n,
		 err.msg);
	struct tm_decomp_stats st;
	tm_decomp_stats(b, &st);
	FZ_CHECK(st.format == fmt && st.compressed == slen && st.points >= 1 && st.size >= n &&
			 st.scanned,
		 "stats: format %d, %llu compressed, %llu points, size %llu after %zu read",
		 st.format, (unsigned long long)st.compressed, (unsigned long long)st.points,
		 (unsigned long long)st.size, n);
	FZ_CHECK(failed || n == FZD_MAX_OUT || st.size == n, "size %llu, but the stream ended at %zu",
		 (unsigned long long)st.size, n);

	GByteArray *table = g_byte_array_new();
	tm_decomp_table(b, table);
	FZ_CHECK(table->len == st.table_bytes && fzd_table_npoints(table->data, table->len) ==
							    st.points,
		 "table of %u bytes, stats say %llu", table->len, (unsigned long long)st.table_bytes);

	/* The round trip: the same source with the table. */
	uint8_t *backing2;
	struct tm_block *src2 = fzd_source(stream, slen, ss, win, pad, &backing2);
	struct tm_block *b2 = tm_decomp_new(src2, fmt, &opts, table->data, table->len, &err);
	if (!b2) {
		FZ_CHECK(fz_skipped("own-table"), "the table of this very source was refused: %s",
			 err.msg);
		tm_block_disconnect(src2);
		goto out;
	}
	FZ_CHECK(tm_block_size_bytes(b2) == st.size, "size %llu with the table, %llu scanned",
		 (unsigned long long)tm_block_size_bytes(b2), (unsigned long long)st.size);
	FZ_CHECK(tm_decomp_fingerprint(b2) == tm_decomp_fingerprint(b), "fingerprints differ");
	uint64_t np = fzd_table_npoints(table->data, table->len);
	for (uint64_t i = np; i-- > 0;) {
		if (np > 64 && fzd_rand(&rng) % np >= 64)
			continue;
		uint64_t u = fzd_point_uoff(table->data, i);
		uint64_t off = u ? u - 1 : 0;
		if (off >= n)
			continue;
		size_t len = n - off < 3 ? (size_t)(n - off) : 3;
		check_reread(fzd_read_cmp(b2, off, len, seq + off, scratch) == 1, "with the table, point",
			     off, len);
	}
	for (int i = NRANDOM; i-- > 0;)
		check_reread(fzd_read_cmp(b2, offs[i], lens[i], seq + offs[i], scratch) == 1,
			     "with the table, random", offs[i], lens[i]);
	/* Past the end: an error, not bytes. */
	if (st.size < UINT64_MAX - 1024)
		FZ_CHECK(fzd_read_cmp(b2, st.size, 1, NULL, scratch) == 0, "read past the end");
	FZ_CHECK(tm_decomp_release(b2) == src2, "release gave another block");
	tm_block_disconnect(src2);
out:
	tm_block_disconnect(b);

	g_byte_array_free(table, TRUE);
	free(backing2);
	free(backing);
	g_free(scratch);
	g_free(seq);
	return 0;
}
