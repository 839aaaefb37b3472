/* libFuzzer target: saved seek tables.  A compressed stream is opened without a table (the
 * reference: its decompressed bytes, at most FZD_MAX_OUT), then again with a table made
 * from the input: tm_decomp_new must refuse it (NULL, an error) or give a device whose
 * reads, at every point's edge, at random offsets and from the start, fail with an error or
 * succeed.  Never a crash, an out-of-bounds access or a hang.
 *
 * Input: a control byte, the stream's length L (3 bytes, little-endian), the stream, then
 * the table part:
 *   bits 0-2  format: gzip, zstd, xz, bzip2, lz4 (value mod 5)
 *   bit 3     seal: recompute the table's fingerprint (tm_decomp_test_seal_table), so that
 *             the validation behind it is reached
 *   bit 4     patch mode: the table part is 4-byte patches (u16 position mod the table's
 *             length, u8 op: set, xor, add, sub (with carry over 8 bytes), u8 value) on the
 *             table that the reference open made; else the table part is the table itself
 *   bits 5-6  spacing of the reference scan's costly points: 32 KiB, 1 MiB, 64 KiB, 256 KiB
 *   bit 7     sector size 4096 (else 512)
 *
 * What a read must give: the reference bytes when the table is the reference table (no
 * failure either); when a patched table was not sealed, the reference bytes or a clean
 * failure (only a table whose fingerprint matches was accepted, and a matching fingerprint
 * is the layer's promise that the table describes the source).  A sealed table that was
 * changed forges the fingerprint, and a raw table may have been made from another stream
 * (the fingerprint only samples the source): their reads are only checked to fail cleanly
 * or succeed.
 *
 * Checks that can be switched off (FUZZ_SKIP_CHECKS, see fuzz_common.h):
 *   table-unhashed  an accepted, unsealed table whose bytes differ from the reference's
 *                   gives other bytes (a part of the table the fingerprint does not cover)
 *   reread          the reference table itself gives other bytes, or fails
 *   own-table       the reference table (tm_decomp_table's) is refused */
#include "config.h"

#include "fuzz_decomp_util.h"

static void patch(GByteArray *t, const uint8_t *p, size_t n)
{
	if (t->len == 0)
		return;
	for (size_t i = 0; i + 4 <= n; i += 4) {
		size_t pos = (size_t)(p[i] | p[i + 1] << 8) % t->len;
		uint8_t op = p[i + 2] % 4, v = p[i + 3];
		if (op == 0) {
			t->data[pos] = v;
		} else if (op == 1) {
			t->data[pos] ^= v;
		} else {
			/* add or subtract v at pos, carrying into the next bytes (a u64 field) */
			unsigned carry = v;
			for (size_t k = pos; k < t->len && k < pos + 8 && carry; k++) {
				unsigned x = op == 2 ? t->data[k] + carry : t->data[k] - carry;
				t->data[k] = (uint8_t)x;
				carry = op == 2 ? x >> 8 : (x >> 8) & 1;
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint8_t ctl = data[0];
	size_t slen = (size_t)(data[1] | data[2] << 8 | data[3] << 16);
	if (slen > size - 4)
		slen = size - 4;
	const uint8_t *stream = data + 4, *rest = stream + slen;
	size_t rlen = size - 4 - slen;
	enum tm_decomp_format fmt = fzd_format(ctl & 7);
	bool seal = ctl & 8, patched = ctl & 16;
	uint32_t ss = ctl & 128 ? 4096 : 512;
	static const uint64_t spacings[4] = { 32 << 10, 0, 64 << 10, 256 << 10 };
	struct fzd_diags diags = { 0 };
	struct tm_decomp_options opts = {
		.cache_size = 1u << 20, .spacing = spacings[(ctl >> 5) & 3],
		.diag = fzd_diag, .diag_ud = &diags,
	};
	uint64_t rng = fzd_seed(data, size);

	/* The reference. */
	uint8_t *backing; /* stays NULL: no window */
	struct tm_block *src = fzd_source(stream, slen, ss, false, 0, &backing);
	struct tm_block_error err = { 0 };
	struct tm_block *ref = tm_decomp_new(src, fmt, &opts, NULL, 0, &err);
	FZ_CHECK(ref != NULL, "tm_decomp_new without a table failed: %s", err.msg);
	size_t n;
	bool failed;
	uint8_t *want = fzd_read_all(ref, FZD_MAX_OUT, &n, &failed, &err);
	bool fin = tm_decomp_finish(ref, n, &err);
	GByteArray *reft = g_byte_array_new();
	if (fin)
		tm_decomp_table(ref, reft);
	uint64_t ref_size = tm_block_size_bytes(ref);
	tm_block_disconnect(ref);
	if (!fin || (patched && reft->len == 0)) {
		g_byte_array_free(reft, TRUE);
		g_free(want);
		return 0;
	}

	GByteArray *t = g_byte_array_new();
	if (patched) {
		g_byte_array_append(t, reft->data, reft->len);
		patch(t, rest, rlen);
	} else if (rlen) {
		g_byte_array_append(t, rest, (guint)rlen);
	}
	struct tm_block *src2 = fzd_source(stream, slen, ss, false, 0, &backing);
	if (seal)
		tm_decomp_test_seal_table(src2, t->data, t->len);
	bool same = t->len == reft->len && !memcmp(t->data, reft->data, t->len);

	err = (struct tm_block_error){ 0 };
	const void *tp = t->len ? (const void *)t->data : ""; /* never NULL: that means no table */
	struct tm_block *b = tm_decomp_new(src2, fmt, &opts, tp, t->len, &err);
	if (!b) {
		fzd_check_error(&err);
		FZ_CHECK(!same || fz_skipped("own-table"), "the reference table was refused: %s",
			 err.msg);
		tm_block_disconnect(src2);
		goto out;
	}
	/* Raw tables may come from another stream: the fingerprint samples the source, and a
	 * stream changed between the samples is not told apart (the index's source identity
	 * is what guards against that). */
	bool strict = same || (patched && !seal);
	const char *check = same ? "reread" : "table-unhashed";
	uint64_t size2 = tm_block_size_bytes(b);
	if (strict)
		FZ_CHECK(size2 == ref_size || fz_skipped(check), "size %llu with the table, %llu",
			 (unsigned long long)size2, (unsigned long long)ref_size);

	/* Reads at the points' edges, at random offsets, then from the start. */
	uint8_t *scratch = g_malloc(2 * FZD_CHUNK + 2);
	uint64_t np = fzd_table_npoints(t->data, t->len);
	uint64_t top = size2 < n + 4 * FZD_CHUNK ? size2 : n + 4 * FZD_CHUNK;
	int reads = 0;
	for (uint64_t i = np; i-- > 0 && reads < 96; reads++) {
		uint64_t u = fzd_point_uoff(t->data, i);
		uint64_t off = u ? u - 1 : 0;
		if (off >= top)
			continue;
		size_t len = top - off < 3 ? (size_t)(top - off) : 3;
		bool inref = off + len <= n;
		int r = fzd_read_cmp(b, off, len, inref ? want + off : NULL, scratch);
		FZ_CHECK(!strict || !inref || r > 0 || (r == 0 && !same) || fz_skipped(check),
			 "point %llu: bytes [%llu, +%zu) differ or fail", (unsigned long long)i,
			 (unsigned long long)off, len);
	}
	for (int i = 0; i < 8 && top; i++) {
		uint64_t off = fzd_rand(&rng) % top;
		size_t len = 1 + fzd_rand(&rng) % (2 * FZD_CHUNK);
		if (len > top - off)
			len = (size_t)(top - off);
		bool inref = off + len <= n;
		int r = fzd_read_cmp(b, off, len, inref ? want + off : NULL, scratch);
		FZ_CHECK(!strict || !inref || r > 0 || (r == 0 && !same) || fz_skipped(check),
			 "random: bytes [%llu, +%zu) differ or fail", (unsigned long long)off, len);
	}
	size_t n2;
	uint8_t *got = fzd_read_all(b, n < FZD_MAX_OUT ? n + FZD_CHUNK : n, &n2, &failed, &err);
	bool match = n2 <= n && (n2 == 0 || !memcmp(got, want, n2));
	if (strict)
		FZ_CHECK((match && (n2 == n || (failed && !same))) || fz_skipped(check),
			 "read %zu bytes from the start (%s), %zu in the reference", n2,
			 failed ? "failed" : "ended", n);
	g_free(got);
	g_free(scratch);
	FZ_CHECK(tm_decomp_release(b) == src2, "release gave another block");
	tm_block_disconnect(src2);
out:
	g_byte_array_free(t, TRUE);
	g_byte_array_free(reft, TRUE);
	g_free(want);
	return 0;
}
