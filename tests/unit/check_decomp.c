/* The decompressing layer (decomp.c and its codecs) over in-memory devices: streams made
 * here with the libraries themselves (zlib with full flushes and several members, zstd
 * frames, multi-block xz, bzip2 streams, linked lz4 blocks), read back at every chunk edge
 * and seek point from 8 threads with a small cache, the table round trip, detection, and
 * truncated and corrupted streams. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <bzlib.h>
#include <check.h>
#include <lz4frame.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include "decomp.h"
#include "suites.h"
#include "testutil.h"

#define CHUNK 131072u /* decomp.c's chunk */
#define NTHREADS 8

/* ---- the data: a tar-like buffer, part random, part repetitive ---- */

static GByteArray *make_tar(void)
{
	GByteArray *a = g_byte_array_new();
	uint8_t *buf = g_malloc(700000);
	for (int i = 0; i < 4; i++) {
		size_t len = 300000 + 97 * (size_t)i;
		if (i % 2) {
			tu_fill(buf, len, 7 + (uint32_t)i);
			for (size_t k = 0; k < len; k++)
				buf[k] &= 0x0f; /* compressible, not trivially */
		} else {
			for (size_t k = 0; k < len; k++)
				buf[k] = (uint8_t)("tarmount decomp test line\n"[k % 26] + (k / 4096) % 3);
		}
		char name[32];
		snprintf(name, sizeof name, "dir/file%d", i);
		tu_add(a, TU_USTAR, name, '0', NULL, buf, len);
	}
	g_free(buf);
	tu_finish(a);
	return a;
}

/* ---- compressors ---- */

/* A gzip member of p, fully flushed every flush_every bytes; mem_level sizes zlib's blocks
 * (1: 128 symbols a block, 8: the default, 16 Ki). */
static void deflate_into(GByteArray *out, const uint8_t *p, size_t len, size_t flush_every,
			 int mem_level)
{
	z_stream z = { 0 };
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 31, mem_level, Z_DEFAULT_STRATEGY),
			 Z_OK);
	uint8_t *buf = g_malloc(1 << 16);
	size_t at = 0;
	int ret;
	do {
		size_t n = len - at < flush_every ? len - at : flush_every;
		z.next_in = (uint8_t *)p + at;
		z.avail_in = (uInt)n;
		at += n;
		int flush = at == len ? Z_FINISH : Z_FULL_FLUSH;
		do {
			z.next_out = buf;
			z.avail_out = 1 << 16;
			ret = deflate(&z, flush);
			ck_assert(ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR);
			g_byte_array_append(out, buf, (guint)((1 << 16) - z.avail_out));
		} while (z.avail_out == 0);
	} while (ret != Z_STREAM_END);
	deflateEnd(&z);
	g_free(buf);
}

static GByteArray *c_gzip_flush(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	deflate_into(o, a->data, a->len, 200000, 8);
	return o;
}

static GByteArray *c_gzip_members(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	for (size_t at = 0; at < a->len; at += 333333)
		deflate_into(o, a->data + at, MIN((size_t)333333, a->len - at), SIZE_MAX, 8);
	return o;
}

/* One member without flushes: the scan (ISA-L) finds the block boundaries by itself. */
static GByteArray *c_gzip_stream(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	deflate_into(o, a->data, a->len, SIZE_MAX, 8);
	return o;
}

/* ... in thousands of small blocks, some headers shorter than the scan's finest piece. */
static GByteArray *c_gzip_small_blocks(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	deflate_into(o, a->data, a->len, SIZE_MAX, 1);
	return o;
}

static GByteArray *c_zstd(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	for (size_t at = 0; at < a->len; at += 400000) {
		size_t n = MIN((size_t)400000, a->len - at);
		size_t cap = ZSTD_compressBound(n), old = o->len;
		g_byte_array_set_size(o, (guint)(old + cap));
		size_t r = ZSTD_compress(o->data + old, cap, a->data + at, n, 3);
		ck_assert(!ZSTD_isError(r));
		g_byte_array_set_size(o, (guint)(old + r));
	}
	return o;
}

static GByteArray *c_xz(const GByteArray *a)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_mt mt = { .threads = 2, .block_size = 256 * 1024, .preset = 1,
		       .check = LZMA_CHECK_CRC64 };
	ck_assert_int_eq(lzma_stream_encoder_mt(&s, &mt), LZMA_OK);
	GByteArray *o = g_byte_array_new();
	g_byte_array_set_size(o, a->len + a->len / 2 + 65536);
	s.next_in = a->data;
	s.avail_in = a->len;
	s.next_out = o->data;
	s.avail_out = o->len;
	lzma_ret r;
	while ((r = lzma_code(&s, LZMA_FINISH)) == LZMA_OK)
		;
	ck_assert_int_eq(r, LZMA_STREAM_END);
	g_byte_array_set_size(o, (guint)s.total_out);
	lzma_end(&s);
	return o;
}

static GByteArray *c_bzip2(const GByteArray *a)
{
	GByteArray *o = g_byte_array_new();
	for (size_t at = 0; at < a->len; at += 250000) {
		unsigned n = (unsigned)MIN((size_t)250000, a->len - at);
		unsigned cap = n + n / 50 + 1024, old = o->len;
		g_byte_array_set_size(o, old + cap);
		ck_assert_int_eq(BZ2_bzBuffToBuffCompress((char *)o->data + old, &cap,
							  (char *)a->data + at, n, 1, 0, 0),
				 BZ_OK);
		g_byte_array_set_size(o, old + cap);
	}
	return o;
}

/* Frames of linked 64 KiB blocks (the codec's points are at frame starts). */
static GByteArray *c_lz4(const GByteArray *a)
{
	LZ4F_preferences_t prefs = { 0 };
	prefs.frameInfo.blockSizeID = LZ4F_max64KB;
	prefs.frameInfo.blockMode = LZ4F_blockLinked;
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	GByteArray *o = g_byte_array_new();
	for (size_t at = 0; at < a->len; at += 300000) {
		size_t n = MIN((size_t)300000, a->len - at);
		size_t cap = LZ4F_compressFrameBound(n, &prefs), old = o->len;
		g_byte_array_set_size(o, (guint)(old + cap));
		size_t r = LZ4F_compressFrame(o->data + old, cap, a->data + at, n, &prefs);
		ck_assert(!LZ4F_isError(r));
		g_byte_array_set_size(o, (guint)(old + r));
	}
	return o;
}

static const struct variant {
	const char *name;
	enum tm_decomp_format fmt;
	GByteArray *(*compress)(const GByteArray *);
	bool checked; /* a checksum covers the data: damage is always seen */
} variants[] = {
	{ "gzip full flush", TM_DECOMP_GZIP, c_gzip_flush, true },
	{ "gzip members", TM_DECOMP_GZIP, c_gzip_members, true },
	{ "gzip one stream", TM_DECOMP_GZIP, c_gzip_stream, true },
	{ "gzip small blocks", TM_DECOMP_GZIP, c_gzip_small_blocks, true },
	{ "zstd frames", TM_DECOMP_ZSTD, c_zstd, false },
	{ "xz blocks", TM_DECOMP_XZ, c_xz, true },
	{ "bzip2 streams", TM_DECOMP_BZIP2, c_bzip2, true },
	{ "lz4 linked", TM_DECOMP_LZ4, c_lz4, true },
};
#define NVARIANTS ((int)G_N_ELEMENTS(variants))

/* ---- shared fixtures ---- */

static GByteArray *plain;
static GByteArray *packed[G_N_ELEMENTS(variants)];

static void setup(void)
{
	plain = make_tar();
	for (int i = 0; i < NVARIANTS; i++)
		packed[i] = variants[i].compress(plain);
}

static void teardown(void)
{
	for (int i = 0; i < NVARIANTS; i++)
		g_byte_array_free(packed[i], TRUE);
	g_byte_array_free(plain, TRUE);
}

struct diags {
	unsigned warnings, errors;
};

static void diag_cb(void *ud, bool error, uint64_t offset, const char *msg)
{
	(void)offset;
	struct diags *d = ud;
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_null(strchr(msg, '\n'));
	if (error)
		d->errors++;
	else
		d->warnings++;
}

static struct tm_decomp_options small_opts(struct diags *d)
{
	return (struct tm_decomp_options){ .cache_size = 1u << 20, .spacing = 256 * 1024,
					   .diag = diag_cb, .diag_ud = d };
}

/* Read b from the start until it ends or fails: the count read into out (cap bytes). */
static size_t read_all(struct tm_block *b, uint8_t *out, size_t cap, bool *failed)
{
	size_t off = 0;
	*failed = false;
	while (off < cap) {
		size_t n = MIN((size_t)100003, cap - off);
		struct tm_block_error err = { 0 };
		if (tm_block_pread(b, out + off, n, off, &err) == 0) {
			off += n;
			continue;
		}
		uint64_t size = tm_block_size_bytes(b);
		if (size > off && size - off < n &&
		    tm_block_pread(b, out + off, (size_t)(size - off), off, &err) == 0)
			return (size_t)size;
		*failed = size > off || err.code != TM_BLOCK_OUT_OF_RANGE;
		break;
	}
	return off;
}

/* ---- reads from 8 threads at every chunk edge and seek point ---- */

struct reader {
	struct tm_block *b;
	const GByteArray *want;
	const uint64_t *offs;
	size_t noffs, start;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t buf[3];
	for (size_t k = 0; k < r->noffs; k++) {
		uint64_t off = r->offs[(r->start + k * 7) % r->noffs];
		size_t n = MIN((size_t)3, (size_t)(r->want->len - off));
		struct tm_block_error err = { 0 };
		if (tm_block_pread(r->b, buf, n, off, &err) < 0 ||
		    memcmp(buf, r->want->data + off, n))
			r->bad++;
	}
	return NULL;
}

static GArray *edges(const GByteArray *table, size_t len)
{
	GArray *offs = g_array_new(FALSE, FALSE, sizeof(uint64_t));
	for (uint64_t e = CHUNK; e < len; e += CHUNK) {
		uint64_t o = e - 1;
		g_array_append_val(offs, o);
	}
	uint64_t np;
	memcpy(&np, table->data + 32, 8); /* the table's header: npoints at 32, points at 64 */
	for (uint64_t i = 0; i < np; i++) {
		uint64_t u;
		memcpy(&u, table->data + 64 + 32 * i, 8);
		u = u ? u - 1 : 0;
		if (u < len)
			g_array_append_val(offs, u);
	}
	return offs;
}

static void threaded_reads(struct tm_block *b, const GByteArray *table)
{
	GArray *offs = edges(table, plain->len);
	pthread_t th[NTHREADS];
	struct reader r[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		r[i] = (struct reader){ b, plain, (uint64_t *)offs->data, offs->len,
					(size_t)i * offs->len / NTHREADS, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(r[i].bad == 0, "thread %d: %d reads wrong", i, r[i].bad);
	}
	g_array_free(offs, TRUE);
}

START_TEST(test_round_trip)
{
	const struct variant *v = &variants[_i];
	GByteArray *z = packed[_i];
	struct diags dg = { 0 };
	struct tm_decomp_options o = small_opts(&dg);
	struct tm_block *mem = tm_block_mem_new(z->data, z->len, 512);
	struct tm_block_error err = { 0 };
	struct tm_block *b = tm_decomp_new(mem, v->fmt, &o, NULL, 0, &err);
	ck_assert_msg(b != NULL, "%s: %s", v->name, err.msg);
	ck_assert(tm_decomp_is(b));

	/* The scan, read sequentially, then from threads while it is fresh. */
	uint8_t *got = g_malloc(plain->len + 1);
	bool failed;
	size_t n = read_all(b, got, plain->len + 1, &failed);
	ck_assert_msg(!failed && n == plain->len, "%s: read %zu of %u", v->name, n, plain->len);
	ck_assert(!memcmp(got, plain->data, n));
	ck_assert_msg(tm_decomp_finish(b, plain->len, &err), "%s: finish: %s", v->name, err.msg);
	struct tm_decomp_stats st;
	tm_decomp_stats(b, &st);
	ck_assert_uint_eq(st.size, plain->len);
	ck_assert_uint_eq(st.compressed, z->len);
	ck_assert_msg(st.points >= 3, "%s: %llu seek points", v->name,
		      (unsigned long long)st.points);
	ck_assert_uint_eq(dg.errors, 0);
	GByteArray *table = g_byte_array_new();
	tm_decomp_table(b, table);
	ck_assert_uint_eq(table->len, st.table_bytes);
	threaded_reads(b, table);

	/* With the table: decoders start at the points, the cache (1 MiB) evicts. */
	struct tm_block *mem2 = tm_block_mem_new(z->data, z->len, 4096);
	struct tm_block *b2 = tm_decomp_new(mem2, v->fmt, &o, table->data, table->len, &err);
	ck_assert_msg(b2 != NULL, "%s: own table refused: %s", v->name, err.msg);
	ck_assert_uint_eq(tm_block_size_bytes(b2), plain->len);
	ck_assert_uint_eq(tm_decomp_fingerprint(b2), tm_decomp_fingerprint(b));
	threaded_reads(b2, table);
	memset(got, 0, plain->len);
	n = read_all(b2, got, plain->len + 1, &failed);
	ck_assert(!failed && n == plain->len && !memcmp(got, plain->data, n));
	struct tm_decomp_stats st2;
	tm_decomp_stats(b2, &st2);
	ck_assert(!st2.scanned);
	ck_assert_uint_gt(st2.restarts, 1);
	ck_assert_uint_eq(st2.points, st.points);

	/* The table of one source is stale for another. */
	GByteArray *other = g_byte_array_new();
	g_byte_array_append(other, z->data, z->len);
	other->data[other->len - 10] ^= 0x55;
	struct tm_block *mem3 = tm_block_mem_new(other->data, other->len, 512);
	ck_assert_ptr_null(tm_decomp_new(mem3, v->fmt, &o, table->data, table->len, &err));
	ck_assert_int_eq(err.code, TM_BLOCK_INVALID);
	tm_block_disconnect(mem3);
	g_byte_array_free(other, TRUE);

	ck_assert_ptr_eq(tm_decomp_release(b2), mem2);
	tm_block_disconnect(mem2);
	tm_block_disconnect(b);
	g_byte_array_free(table, TRUE);
	g_free(got);
}
END_TEST

START_TEST(test_detect)
{
	for (int i = 0; i < NVARIANTS; i++) {
		ck_assert_int_eq(tm_decomp_detect(packed[i]->data, packed[i]->len), variants[i].fmt);
		struct tm_block *m = tm_block_mem_new(packed[i]->data, packed[i]->len, 512);
		struct tm_block_error err;
		ck_assert_int_eq(tm_decomp_detect_block(m, &err), variants[i].fmt);
		tm_block_disconnect(m);
	}
	ck_assert_int_eq(tm_decomp_detect(plain->data, plain->len), TM_DECOMP_NONE);
	ck_assert_int_eq(tm_decomp_detect((const uint8_t *)"\x1f\x8b", 2), TM_DECOMP_NONE);
	ck_assert_int_eq(tm_decomp_detect((const uint8_t *)"BZh9", 4), TM_DECOMP_NONE);
	ck_assert_int_eq(tm_decomp_detect(NULL, 0), TM_DECOMP_NONE);
	/* a zstd skippable frame (pzstd's first) */
	ck_assert_int_eq(tm_decomp_detect((const uint8_t *)"\x50\x2a\x4d\x18", 4), TM_DECOMP_ZSTD);
	enum tm_decomp_format f;
	ck_assert(tm_decomp_format_parse("xz", &f) && f == TM_DECOMP_XZ);
	ck_assert(tm_decomp_format_parse("auto", &f) && f == TM_DECOMP_AUTO);
	ck_assert(!tm_decomp_format_parse("rar", &f));
	ck_assert_str_eq(tm_decomp_format_name(TM_DECOMP_LZ4), "lz4");
}
END_TEST

/* Truncated: what is read is the start of the data, and it is short (or an error). */
START_TEST(test_truncated)
{
	const struct variant *v = &variants[_i];
	GByteArray *z = packed[_i];
	size_t cuts[] = { 0, 1, 7, z->len / 3, z->len / 2, z->len - 1 };
	uint8_t *got = g_malloc(plain->len + 1);
	for (size_t c = 0; c < G_N_ELEMENTS(cuts); c++) {
		struct diags dg = { 0 };
		struct tm_decomp_options o = small_opts(&dg);
		struct tm_block *mem = tm_block_mem_new(z->data, cuts[c], 512);
		struct tm_block_error err = { 0 };
		struct tm_block *b = tm_decomp_new(mem, v->fmt, &o, NULL, 0, &err);
		ck_assert_ptr_nonnull(b);
		bool failed;
		size_t n = read_all(b, got, plain->len + 1, &failed);
		/* Without its last byte (a trailer's) the data may all be there, but not
		 * unreported; an empty source is an empty stream. */
		if (cuts[c] < z->len - 1)
			ck_assert_msg(n < plain->len || failed, "%s cut at %zu of %u: all %zu bytes read",
				      v->name, cuts[c], z->len, n);
		size_t same = 0;
		while (same < n && got[same] == plain->data[same])
			same++;
		ck_assert_msg(same == n, "%s cut at %zu: wrong bytes from %zu of the %zu read",
			      v->name, cuts[c], same, n);
		/* Reported: a warning, a failed read, or damage that tm_decomp_finish tells. */
		bool fin = tm_decomp_finish(b, n, &err);
		ck_assert_msg(cuts[c] == 0 || dg.warnings + dg.errors > 0 || failed || !fin,
			      "%s cut at %zu: not reported",
			      v->name, cuts[c]);
		tm_block_disconnect(b);
	}
	g_free(got);
}
END_TEST

/* Corrupted: never a crash; with a checksum, never wrong bytes unreported. */
START_TEST(test_corrupt)
{
	const struct variant *v = &variants[_i];
	GByteArray *z = g_byte_array_new();
	uint8_t *got = g_malloc(plain->len + 1);
	for (int k = 1; k <= 4; k++) {
		g_byte_array_set_size(z, 0);
		g_byte_array_append(z, packed[_i]->data, packed[_i]->len);
		for (size_t at = z->len * (size_t)k / 5; at < z->len && at < z->len * (size_t)k / 5 + 16;
		     at++)
			z->data[at] ^= 0xa5;
		struct diags dg = { 0 };
		struct tm_decomp_options o = small_opts(&dg);
		struct tm_block *mem = tm_block_mem_new(z->data, z->len, 512);
		struct tm_block_error err = { 0 };
		struct tm_block *b = tm_decomp_new(mem, v->fmt, &o, NULL, 0, &err);
		ck_assert_ptr_nonnull(b);
		bool failed;
		size_t n = read_all(b, got, plain->len + 1, &failed);
		bool same = n == plain->len && !memcmp(got, plain->data, n);
		if (v->checked)
			ck_assert_msg(same || failed || dg.errors > 0 || n < plain->len,
				      "%s damaged at %d/5: wrong bytes, no error", v->name, k);
		tm_decomp_finish(b, n, &err);
		tm_block_disconnect(b);
	}
	g_free(got);
	g_byte_array_free(z, TRUE);
}
END_TEST

START_TEST(test_no_decoder)
{
	struct tm_block *m = tm_block_mem_new(plain->data, 1024, 512);
	struct tm_block_error err = { 0 };
	ck_assert_ptr_null(tm_decomp_new(m, TM_DECOMP_NONE, NULL, NULL, 0, &err));
	ck_assert_int_eq(err.code, TM_BLOCK_INVALID);
	/* garbage in a format: the scan fails, reads fail, no crash */
	struct tm_block *b = tm_decomp_new(m, TM_DECOMP_XZ, NULL, NULL, 0, &err);
	ck_assert_ptr_nonnull(b);
	uint8_t buf[512];
	ck_assert_int_lt(tm_block_pread(b, buf, sizeof buf, 0, &err), 0);
	ck_assert_int_ne(err.code, TM_BLOCK_OK);
	ck_assert(!tm_decomp_finish(b, 1, &err));
	ck_assert_ptr_eq(tm_decomp_release(b), m);
	tm_block_disconnect(m);
}
END_TEST

Suite *decomp_suite(void)
{
	Suite *s = suite_create("decomp");
	TCase *tc = tcase_create("formats");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_round_trip, 0, NVARIANTS);
	tcase_add_test(tc, test_detect);
	tcase_add_loop_test(tc, test_truncated, 0, NVARIANTS);
	tcase_add_loop_test(tc, test_corrupt, 0, NVARIANTS);
	tcase_add_test(tc, test_no_decoder);
	suite_add_tcase(s, tc);
	return s;
}
