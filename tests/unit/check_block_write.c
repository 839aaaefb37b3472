/* The write half of the block layer: the writable in-memory device, tm_block_pwrite at every
 * alignment, windows at odd offsets over 512- and 4096-byte-sector devices (the whole inner
 * buffer checked against a model after every write), the cache's coherence (also with
 * readers racing a writer), the file backend opened read_write (growth, fdatasync, the OFD
 * writer lock), read-only refusals with their reasons, and the new error texts.
 *
 * The oracle is a model byte array updated with memcpy by the test, never by the code under
 * test. */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "block.h"
#include "decomp.h"
#include "suites.h"
#include "testutil.h"

/* ---- helpers ---- */

static void expect_same(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	if (memcmp(got, want, len) == 0)
		return;
	size_t i = 0;
	while (got[i] == want[i])
		i++;
	ck_abort_msg("%s: byte %zu is %#x, the model says %#x", what, i, got[i], want[i]);
}

static char *err_line(const struct tm_block_error *err)
{
	static char buf[400];
	return (char *)tm_block_strerror(err, buf, sizeof buf);
}

/* Read all of b into a new buffer (size_bytes long). */
static uint8_t *read_whole(struct tm_block *b, uint64_t *size)
{
	*size = tm_block_size_bytes(b);
	uint8_t *buf = g_malloc(*size + 1);
	struct tm_block_error err;
	ck_assert_msg(tm_block_pread(b, buf, *size, 0, &err) == 0, "pread: %s", err_line(&err));
	return buf;
}

/* ---- the writable memory device ---- */

#define MEM_LEN (3 * 4096 + 700) /* a partial last sector for both sizes */

START_TEST(test_mem_rw)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *data = g_malloc(MEM_LEN), *model = g_malloc(MEM_LEN);
	tu_fill(data, MEM_LEN, 1);
	memcpy(model, data, MEM_LEN);
	struct tm_block *b = tm_block_mem_new_rw(data, MEM_LEN, ss);
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	ck_assert(info.read_write);
	ck_assert(!info.growable);
	ck_assert_uint_eq(info.sector_size, ss);
	ck_assert_uint_eq(info.size_bytes, MEM_LEN);
	struct tm_block_error err;

	/* two buffers, consecutive sectors */
	uint8_t *a = g_malloc(ss), *c = g_malloc(2 * ss);
	tu_fill(a, ss, 2);
	tu_fill(c, 2 * ss, 3);
	struct iovec iov[2] = { { a, ss }, { c, 2 * ss } };
	ck_assert_int_eq(tm_block_write(b, 0, iov, 2, &err), 0);
	memcpy(model, a, ss);
	memcpy(model + ss, c, 2 * ss);
	expect_same(data, model, MEM_LEN, "two buffers");

	/* the partial last sector: only the bytes before the end are stored */
	uint64_t last = info.size_sectors - 1;
	struct iovec one = { a, ss };
	ck_assert_int_eq(tm_block_write(b, last, &one, 1, &err), 0);
	memcpy(model + last * ss, a, MEM_LEN - last * ss);
	expect_same(data, model, MEM_LEN, "partial last sector");
	uint8_t *back = g_malloc(ss);
	struct iovec rb = { back, ss };
	ck_assert_int_eq(tm_block_read(b, last, &rb, 1, &err), 0);
	for (size_t i = MEM_LEN - last * ss; i < ss; i++)
		ck_assert_msg(back[i] == 0, "byte %zu past the end reads %#x", i, back[i]);

	/* past the end, unaligned: refused, nothing changed */
	ck_assert_int_lt(tm_block_write(b, last + 1, &one, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	ck_assert_int_lt(tm_block_write(b, last, iov + 1, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	struct iovec odd = { a, ss - 1 };
	ck_assert_int_lt(tm_block_write(b, 0, &odd, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_UNALIGNED);
	ck_assert_int_lt(tm_block_pwrite(b, a, 2, MEM_LEN - 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	ck_assert_int_lt(tm_block_pwrite(b, a, 0, MEM_LEN + 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	ck_assert_int_eq(tm_block_pwrite(b, a, 0, MEM_LEN, &err), 0);
	ck_assert_int_eq(tm_block_pwrite(b, a, 1, MEM_LEN - 1, &err), 0);
	model[MEM_LEN - 1] = a[0];
	expect_same(data, model, MEM_LEN, "refused writes");

	/* flush and the writer lock: nothing to do, success */
	ck_assert_int_eq(tm_block_flush(b, &err), 0);
	ck_assert_int_eq(tm_block_lock_writer(b, false, &err), 0);
	tm_block_unlock_writer(b);
	tm_block_disconnect(b);

	/* the read-only device refuses, before reading anything, and says why */
	b = tm_block_mem_new(data, MEM_LEN, ss);
	tm_block_get_info(b, &info);
	ck_assert(!info.read_write);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_write(b, 0, &one, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_str_eq(err_line(&err), "not writable: opened read-only");
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pwrite(b, a, 10, 3, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_lock_writer(b, true, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_int_eq(tm_block_flush(b, &err), 0);
	tm_block_disconnect(b);
	expect_same(data, model, MEM_LEN, "read-only device");

	g_free(back);
	g_free(a);
	g_free(c);
	g_free(data);
	g_free(model);
}
END_TEST

/* ---- tm_block_pwrite at every alignment ---- */

START_TEST(test_pwrite_alignments)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *data = g_malloc(MEM_LEN), *model = g_malloc(MEM_LEN), *src = g_malloc(3 * 4096);
	tu_fill(data, MEM_LEN, 10);
	memcpy(model, data, MEM_LEN);
	struct tm_block *b = tm_block_mem_new_rw(data, MEM_LEN, ss);
	struct tm_block_error err;
	static const size_t lens[] = { 0, 1, 2, 3, 100, 511, 512, 513, 1024, 4095, 4096, 4097,
				       8192 + 17 };
	uint32_t seed = 100;
	/* every offset inside the first two sectors and the last two, every length */
	for (int edge = 0; edge < 2; edge++) {
		uint64_t base = edge ? MEM_LEN - 2 * (uint64_t)ss : 0;
		for (uint64_t k = 0; k < 2 * (uint64_t)ss; k++) {
			uint64_t off = base + k;
			for (size_t j = 0; j < G_N_ELEMENTS(lens); j++) {
				size_t len = lens[j];
				if (off + len > MEM_LEN)
					continue;
				tu_fill(src, len, seed++);
				int rc = tm_block_pwrite(b, src, len, off, &err);
				ck_assert_msg(rc == 0, "pwrite(%llu, %zu): %s",
					      (unsigned long long)off, len, err_line(&err));
				memcpy(model + off, src, len);
			}
			/* whole buffer, once per offset: bytes beside the range never change */
			expect_same(data, model, MEM_LEN, "pwrite");
		}
	}
	/* and read back through tm_block_pread */
	uint64_t size;
	uint8_t *all = read_whole(b, &size);
	ck_assert_uint_eq(size, MEM_LEN);
	expect_same(all, model, MEM_LEN, "pread after pwrite");
	g_free(all);
	tm_block_disconnect(b);
	g_free(src);
	g_free(data);
	g_free(model);
}
END_TEST

/* ---- windows at odd offsets ---- */

#define WIN_INNER (6 * 4096 + 123)

/* Random writes into a window of an in-memory device; after each, the whole inner buffer
 * against the model: the window's bytes changed as asked, nothing outside it. */
static void window_case(uint32_t ss, uint64_t start, uint64_t wsize, uint32_t seed)
{
	uint8_t *data = g_malloc(WIN_INNER), *model = g_malloc(WIN_INNER);
	tu_fill(data, WIN_INNER, seed);
	memcpy(model, data, WIN_INNER);
	struct tm_block_error err;
	struct tm_block *w =
		tm_block_window_new(tm_block_mem_new_rw(data, WIN_INNER, ss), start, wsize, &err);
	ck_assert_msg(w != NULL, "window %llu+%llu: %s", (unsigned long long)start,
		      (unsigned long long)wsize, err_line(&err));
	uint64_t size = wsize ? wsize : WIN_INNER - start;
	struct tm_block_info info;
	tm_block_get_info(w, &info);
	ck_assert(info.read_write);
	ck_assert(!info.growable);
	ck_assert_uint_eq(info.sector_size, ss);
	ck_assert_uint_eq(tm_block_size_bytes(w), size);
	uint64_t sectors = info.size_sectors;
	uint8_t *buf = g_malloc(3 * 4096 + 1);
	GRand *r = g_rand_new_with_seed(seed);
	char what[160];
	for (int step = 0; step < 300; step++) {
		int kind = step < 8 ? step % 4 : g_rand_int_range(r, 0, 4);
		snprintf(what, sizeof what, "ss %u window %llu+%llu step %d kind %d", ss,
			 (unsigned long long)start, (unsigned long long)size, step, kind);
		if (kind <= 1) {
			/* sectors: the first, the last (maybe partial), or any; one or two */
			uint64_t sec = step < 8 ? (kind ? sectors - 1 : 0)
						: (uint64_t)g_rand_int_range(r, 0, (gint32)sectors);
			uint64_t n = sec + 1 < sectors && g_rand_boolean(r) ? 2 : 1;
			tu_fill(buf, n * ss, g_rand_int(r));
			struct iovec iov = { buf, n * ss };
			int rc = tm_block_write(w, sec, &iov, 1, &err);
			ck_assert_msg(rc == 0, "%s: write %llu+%llu: %s", what,
				      (unsigned long long)sec, (unsigned long long)n, err_line(&err));
			uint64_t pos = sec * ss, keep = MIN(n * ss, size - pos);
			memcpy(model + start + pos, buf, keep);
		} else if (kind == 2) {
			/* bytes anywhere, often across the window's edges' inner sectors */
			uint64_t off = step < 8 ? (step == 2 ? 0 : size - MIN(size, (uint64_t)5))
						: (uint64_t)g_rand_int_range(r, 0, (gint32)size);
			uint64_t len = (uint64_t)g_rand_int_range(r, 0, 3 * 4096);
			len = MIN(len, size - off);
			if (step == 2)
				len = MIN(size, (uint64_t)ss + 1);
			tu_fill(buf, len, g_rand_int(r));
			int rc = tm_block_pwrite(w, buf, len, off, &err);
			ck_assert_msg(rc == 0, "%s: pwrite %llu+%llu: %s", what,
				      (unsigned long long)off, (unsigned long long)len, err_line(&err));
			memcpy(model + start + off, buf, len);
		} else {
			/* past the end: refused, nothing written */
			uint64_t back = (uint64_t)g_rand_int_range(r, 0, 3);
			uint64_t off = size - MIN(size, back);
			tu_fill(buf, 8, g_rand_int(r));
			ck_assert_int_lt(tm_block_pwrite(w, buf, 8, off, &err), 0);
			ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
			struct iovec iov = { buf, ss };
			ck_assert_int_lt(tm_block_write(w, sectors, &iov, 1, &err), 0);
			ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
		}
		expect_same(data, model, WIN_INNER, what);
	}
	/* reads through the window agree, the zero tail of a partial last sector too */
	uint64_t got;
	uint8_t *all = read_whole(w, &got);
	ck_assert_uint_eq(got, size);
	expect_same(all, model + start, size, "read back through the window");
	g_free(all);
	if (size % ss) {
		struct iovec iov = { buf, ss };
		ck_assert_int_eq(tm_block_read(w, sectors - 1, &iov, 1, &err), 0);
		for (uint64_t i = size % ss; i < ss; i++)
			ck_assert_msg(buf[i] == 0, "window tail byte %llu: %#x", (unsigned long long)i,
				      buf[i]);
	}
	g_rand_free(r);
	g_free(buf);
	tm_block_disconnect(w);
	g_free(data);
	g_free(model);
}

START_TEST(test_window_rmw)
{
	uint32_t ss = tu_sector(_i);
	static const uint64_t starts[] = { 0, 1, 511, 512, 513, 4095, 4096, 4097, 5000 };
	for (size_t i = 0; i < G_N_ELEMENTS(starts); i++) {
		uint64_t s = starts[i];
		window_case(ss, s, 0, (uint32_t)(1000 + i)); /* to the end */
		window_case(ss, s, 2 * 4096 + 1001, (uint32_t)(2000 + i)); /* ends mid-sector */
		window_case(ss, s, 3, (uint32_t)(3000 + i)); /* smaller than a sector */
		window_case(ss, s, 2 * (uint64_t)ss, (uint32_t)(4000 + i)); /* whole sectors */
	}
}
END_TEST

/* A partition of an MBR on a writable device: writes stay inside it. */
START_TEST(test_partition_rw)
{
	enum { DISK = 64 * 512, PSTART = 5, PLEN = 20 };
	uint8_t *data = g_malloc0(DISK), *model = g_malloc(DISK);
	tu_fill(data + 512, DISK - 512, 77);
	uint8_t *e = data + 446;
	e[4] = 0x83;
	uint32_t st = PSTART, ln = PLEN;
	memcpy(e + 8, &st, 4);
	memcpy(e + 12, &ln, 4);
	data[510] = 0x55;
	data[511] = 0xaa;
	memcpy(model, data, DISK);
	struct tm_block_error err;
	struct tm_block *p = tm_block_partition_open(tm_block_mem_new_rw(data, DISK, 512), 1, &err);
	ck_assert_msg(p != NULL, "partition: %s", err_line(&err));
	ck_assert_uint_eq(tm_block_size_bytes(p), PLEN * 512);
	uint8_t buf[PLEN * 512];
	tu_fill(buf, sizeof buf, 78);
	ck_assert_int_eq(tm_block_pwrite(p, buf, sizeof buf, 0, &err), 0);
	memcpy(model + PSTART * 512, buf, sizeof buf);
	ck_assert_int_lt(tm_block_pwrite(p, buf, 1, sizeof buf, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	tu_fill(buf, 700, 79);
	ck_assert_int_eq(tm_block_pwrite(p, buf, 700, 333, &err), 0);
	memcpy(model + PSTART * 512 + 333, buf, 700);
	expect_same(data, model, DISK, "partition writes");
	tm_block_disconnect(p);
	g_free(data);
	g_free(model);
}
END_TEST

/* ---- the cache ---- */

/* A decorator that fails every write after storing its first half: what a device that
 * fails midway leaves. */
struct halfway {
	struct tm_block base;
	struct tm_block *inner;
};

static void halfway_get_info(struct tm_block *b, struct tm_block_info *info)
{
	tm_block_get_info(((struct halfway *)b)->inner, info);
}

static int halfway_read(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			int iovcnt, struct tm_block_error *err)
{
	return tm_block_read(((struct halfway *)b)->inner, sector, iov, iovcnt, err);
}

static int halfway_write(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			 int iovcnt, struct tm_block_error *err)
{
	struct halfway *h = (struct halfway *)b;
	struct tm_block_info info;
	tm_block_get_info(h->inner, &info);
	if (iovcnt < 1)
		return tm_block_write(h->inner, sector, iov, iovcnt, err);
	size_t half = iov[0].iov_len / info.sector_size / 2 * info.sector_size;
	struct iovec first = { iov[0].iov_base, half };
	if (half && tm_block_write(h->inner, sector, &first, 1, err) < 0)
		return -1;
	return tm_block_fail(err, TM_BLOCK_IO, EIO, "failing on purpose");
}

static void halfway_disconnect(struct tm_block *b)
{
	tm_block_disconnect(((struct halfway *)b)->inner);
	g_free(b->source);
	g_free(b);
}

static const struct tm_block_ops halfway_ops = {
	.name = "halfway",
	.get_info = halfway_get_info,
	.read = halfway_read,
	.write = halfway_write,
	.disconnect = halfway_disconnect,
};

#define CACHE_LEN (5 * 131072 + 3000) /* five chunks and a bit: a partial last chunk */

START_TEST(test_cache_coherence)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *data = g_malloc(CACHE_LEN), *model = g_malloc(CACHE_LEN);
	tu_fill(data, CACHE_LEN, 5);
	memcpy(model, data, CACHE_LEN);
	struct tm_block *c = tm_block_cache_new(tm_block_mem_new_rw(data, CACHE_LEN, ss), 64u << 20);
	struct tm_block_info info;
	tm_block_get_info(c, &info);
	ck_assert(info.read_write);
	struct tm_block_error err;
	uint64_t size;
	uint8_t *all = read_whole(c, &size); /* everything cached */
	expect_same(all, model, CACHE_LEN, "first read");
	g_free(all);

	GRand *r = g_rand_new_with_seed(6);
	uint8_t *buf = g_malloc(300000);
	for (int step = 0; step < 200; step++) {
		uint64_t off, len;
		if (step == 0) /* across a chunk edge */
			off = 131072 - 100, len = 200;
		else if (step == 1) /* the last sector, partial */
			off = CACHE_LEN - 10, len = 10;
		else if (step == 2) /* several chunks */
			off = 1000, len = 2 * 131072 + 5;
		else
			off = (uint64_t)g_rand_int_range(r, 0, CACHE_LEN),
			len = (uint64_t)g_rand_int_range(r, 0, 20000),
			len = MIN(len, CACHE_LEN - off);
		tu_fill(buf, len, g_rand_int(r));
		if (g_rand_boolean(r) && off % ss == 0 && len >= ss) {
			len -= len % ss;
			struct iovec iov = { buf, len };
			ck_assert_int_eq(tm_block_write(c, off / ss, &iov, 1, &err), 0);
		} else {
			ck_assert_int_eq(tm_block_pwrite(c, buf, len, off, &err), 0);
		}
		memcpy(model + off, buf, len);
		/* read the range again (from the cache), and sometimes everything */
		uint8_t *back = g_malloc(len + 1);
		ck_assert_int_eq(tm_block_pread(c, back, len, off, &err), 0);
		expect_same(back, model + off, len, "read after write");
		g_free(back);
		if (step % 20 == 0) {
			all = read_whole(c, &size);
			expect_same(all, model, CACHE_LEN, "whole read after writes");
			g_free(all);
		}
	}
	expect_same(data, model, CACHE_LEN, "the device under the cache");
	/* the zero tail of the partial last sector stays zero through the cache */
	uint64_t last = info.size_sectors - 1;
	struct iovec iov = { buf, ss };
	memset(buf, 0xab, ss);
	ck_assert_int_eq(tm_block_write(c, last, &iov, 1, &err), 0);
	memcpy(model + last * ss, buf, CACHE_LEN - last * ss);
	memset(buf, 0, ss);
	ck_assert_int_eq(tm_block_read(c, last, &iov, 1, &err), 0);
	for (uint64_t i = CACHE_LEN - last * ss; i < ss; i++)
		ck_assert_msg(buf[i] == 0, "tail byte %llu reads %#x", (unsigned long long)i, buf[i]);
	tm_block_disconnect(c);

	/* a write that fails midway: the cache drops what it covered and reads what the device
	 * holds */
	struct halfway *h = g_new0(struct halfway, 1);
	h->base.ops = &halfway_ops;
	h->base.source = g_strdup("(halfway)");
	h->inner = tm_block_mem_new_rw(data, CACHE_LEN, ss);
	c = tm_block_cache_new(&h->base, 64u << 20);
	all = read_whole(c, &size);
	g_free(all);
	uint64_t off = 131072 - 2 * (uint64_t)ss, len = 4 * (uint64_t)ss;
	tu_fill(buf, len, 7);
	struct iovec w = { buf, len };
	ck_assert_int_lt(tm_block_write(c, off / ss, &w, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_IO);
	memcpy(model + off, buf, len / 2);
	all = read_whole(c, &size);
	expect_same(all, model, CACHE_LEN, "after a failed write");
	expect_same(data, model, CACHE_LEN, "the device after a failed write");
	g_free(all);
	tm_block_disconnect(c);

	/* a cache over a read-only device refuses with the device's reason */
	c = tm_block_cache_new(tm_block_mem_new(data, CACHE_LEN, ss), 1u << 20);
	ck_assert_int_lt(tm_block_pwrite(c, buf, 1, 0, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_int_lt(tm_block_write(c, 0, &iov, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	tm_block_disconnect(c);

	g_rand_free(r);
	g_free(buf);
	g_free(data);
	g_free(model);
}
END_TEST

/* Readers race a writer through a small cache.  The writer stamps sectors in order, round
 * after round: every 8-byte word of sector j in round r holds r << 32 | j; `committed`
 * counts the sector writes that returned.  A reader notes committed, reads a chunk's worth
 * through the cache, and checks each sector: every word names that sector, and a round no
 * older than the last write of it that returned before the read began (a stale chunk kept
 * in the cache would give an older one).  Words of a sector being written may mix rounds r
 * and r+1; both are new enough. */
#define RACE_SECTORS 8192u
#define RACE_ROUNDS 3u
#define RACE_READERS 3

struct race {
	struct tm_block *c;
	uint32_t ss;
	_Atomic uint64_t committed;
	atomic_bool done;
	_Atomic unsigned failures;
	char failure[200];
};

static void stamp(uint8_t *p, uint32_t ss, uint64_t round, uint64_t j)
{
	uint64_t v = round << 32 | j;
	for (uint32_t k = 0; k < ss; k += 8)
		memcpy(p + k, &v, 8);
}

static uint64_t min_round(uint64_t committed, uint64_t j)
{
	/* write k (from 0) stamps sector k % N with round k / N + 1 */
	if (committed <= j)
		return 0;
	return (committed - 1 - j) / RACE_SECTORS + 1;
}

static void *race_reader(void *arg)
{
	struct race *t = arg;
	GRand *r = g_rand_new_with_seed((guint32)(uintptr_t)&r);
	size_t span = 131072;
	uint8_t *buf = g_malloc(span);
	uint64_t sectors_per_read = span / t->ss;
	while (!atomic_load(&t->done)) {
		uint64_t first = (uint64_t)g_rand_int_range(r, 0, (gint32)(RACE_SECTORS * 512 / t->ss));
		first -= first % sectors_per_read;
		uint64_t n = MIN(sectors_per_read, RACE_SECTORS * 512 / t->ss - first);
		uint64_t before = atomic_load(&t->committed);
		struct iovec iov = { buf, n * t->ss };
		struct tm_block_error err;
		if (tm_block_read(t->c, first, &iov, 1, &err) < 0) {
			atomic_fetch_add(&t->failures, 1);
			snprintf(t->failure, sizeof t->failure, "read: %s", err_line(&err));
			break;
		}
		/* in 512-byte stamp units: stamps are per 512 bytes whatever the sector size */
		for (uint64_t k = 0; k < n * t->ss / 512; k++) {
			uint64_t j = first * (t->ss / 512) + k;
			uint64_t want = min_round(before, j);
			for (uint32_t x = 0; x < 512; x += 8) {
				uint64_t v;
				memcpy(&v, buf + k * 512 + x, 8);
				if ((v & 0xffffffffu) != j || (v >> 32) < want) {
					atomic_fetch_add(&t->failures, 1);
					snprintf(t->failure, sizeof t->failure,
						 "unit %llu word %u: round %llu of unit %llu, want "
						 "round >= %llu", (unsigned long long)j, x,
						 (unsigned long long)(v >> 32),
						 (unsigned long long)(v & 0xffffffffu),
						 (unsigned long long)want);
					goto out;
				}
			}
		}
	}
out:
	g_free(buf);
	g_rand_free(r);
	return NULL;
}

START_TEST(test_cache_race)
{
	uint32_t ss = tu_sector(_i);
	size_t len = RACE_SECTORS * 512u;
	uint8_t *data = g_malloc(len);
	for (uint64_t j = 0; j < RACE_SECTORS; j++)
		stamp(data + j * 512, 512, 0, j);
	struct race t = { .ss = ss };
	atomic_init(&t.committed, 0);
	atomic_init(&t.done, false);
	atomic_init(&t.failures, 0);
	/* 16 chunks at most (one per shard) of the device's 32: misses all the time */
	t.c = tm_block_cache_new(tm_block_mem_new_rw(data, len, ss), 1);
	pthread_t th[RACE_READERS];
	for (int i = 0; i < RACE_READERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_reader, &t), 0);
	uint8_t *s = aligned_alloc(4096, 4096);
	struct tm_block_error err;
	/* 512-byte units, written one at a time: by pwrite (read-modify-write of a 4096-byte
	 * sector) or, on 512-byte sectors, sector writes */
	for (uint64_t k = 0; k < (uint64_t)RACE_SECTORS * RACE_ROUNDS && !atomic_load(&t.failures);
	     k++) {
		uint64_t j = k % RACE_SECTORS, round = k / RACE_SECTORS + 1;
		stamp(s, 512, round, j);
		int rc;
		if (ss == 512 && k % 2) {
			struct iovec iov = { s, 512 };
			rc = tm_block_write(t.c, j, &iov, 1, &err);
		} else {
			rc = tm_block_pwrite(t.c, s, 512, j * 512, &err);
		}
		ck_assert_msg(rc == 0, "write %llu: %s", (unsigned long long)k, err_line(&err));
		atomic_store(&t.committed, k + 1);
	}
	atomic_store(&t.done, true);
	for (int i = 0; i < RACE_READERS; i++)
		pthread_join(th[i], NULL);
	ck_assert_msg(atomic_load(&t.failures) == 0, "stale read: %s", t.failure);
	/* and at rest: everything in the last round */
	uint64_t size;
	uint8_t *all = read_whole(t.c, &size);
	for (uint64_t j = 0; j < RACE_SECTORS; j++) {
		stamp(s, 512, RACE_ROUNDS, j);
		expect_same(all + j * 512, s, 512, "at rest");
	}
	g_free(all);
	free(s);
	tm_block_disconnect(t.c);
	g_free(data);
}
END_TEST

/* ---- the file backend ---- */

static char *tmp_file(const uint8_t *data, size_t len)
{
	GError *gerr = NULL;
	char *path = NULL;
	int fd = g_file_open_tmp("tarmount-write-XXXXXX", &path, &gerr);
	ck_assert_msg(fd >= 0, "g_file_open_tmp: %s", gerr ? gerr->message : "?");
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	gchar *buf = NULL;
	gsize n = 0;
	ck_assert(g_file_get_contents(path, &buf, &n, NULL));
	*len = n;
	return (uint8_t *)buf;
}

#define FILE_LEN (2 * 4096 + 300)

START_TEST(test_file_rw)
{
	uint8_t *model = g_malloc0(1 << 20), buf[9000];
	tu_fill(model, FILE_LEN, 50);
	char *path = tmp_file(model, FILE_LEN);
	size_t model_len = FILE_LEN;
	struct tm_block_options opts = { .read_write = true, .cache = -1 };
	struct tm_block_error err;
	struct tm_block *b = tm_block_open(path, &opts, &err);
	ck_assert_msg(b != NULL, "open: %s", err_line(&err));
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	ck_assert(info.read_write);
	ck_assert(info.growable);
	ck_assert(!info.no_flush);
	ck_assert_uint_eq(info.size_bytes, FILE_LEN);

	/* inside, unaligned */
	tu_fill(buf, 1000, 51);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 1000, 77, &err), 0);
	memcpy(model + 77, buf, 1000);
	/* a sector write */
	tu_fill(buf, 1024, 52);
	struct iovec iov = { buf, 1024 };
	ck_assert_int_eq(tm_block_write(b, 4, &iov, 1, &err), 0);
	memcpy(model + 2048, buf, 1024);
	ck_assert(!tm_block_changed(b)); /* our own writes are no change */
	/* across the end: the file grows to exactly off + len */
	tu_fill(buf, 5000, 53);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 5000, FILE_LEN - 100, &err), 0);
	memcpy(model + FILE_LEN - 100, buf, 5000);
	model_len = FILE_LEN - 100 + 5000;
	ck_assert_uint_eq(tm_block_size_bytes(b), model_len);
	/* past the end, leaving a hole (zeros) */
	tu_fill(buf, 10, 54);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 10, model_len + 3000, &err), 0);
	memcpy(model + model_len + 3000, buf, 10);
	model_len += 3010;
	ck_assert_uint_eq(tm_block_size_bytes(b), model_len);
	/* a sector write of the partial last sector stores the whole sector */
	tm_block_get_info(b, &info);
	uint64_t last = info.size_sectors - 1;
	tu_fill(buf, 512, 55);
	iov = (struct iovec){ buf, 512 };
	ck_assert_int_eq(tm_block_write(b, last, &iov, 1, &err), 0);
	memcpy(model + last * 512, buf, 512);
	model_len = (last + 1) * 512;
	ck_assert_uint_eq(tm_block_size_bytes(b), model_len);
	ck_assert(!tm_block_changed(b));
	ck_assert_int_eq(tm_block_flush(b, &err), 0);

	/* what the kernel has */
	size_t n;
	uint8_t *file = slurp(path, &n);
	ck_assert_uint_eq(n, model_len);
	expect_same(file, model, n, "the file");
	g_free(file);
	/* and what we read */
	uint64_t size;
	uint8_t *all = read_whole(b, &size);
	ck_assert_uint_eq(size, model_len);
	expect_same(all, model, size, "read back");
	g_free(all);

	/* an identity that changes with the contents, and stays put without writes */
	char id1[65], id2[65], id3[65];
	ck_assert(tm_block_identity(b, id1, &err));
	ck_assert(tm_block_identity(b, id2, &err));
	ck_assert_str_eq(id1, id2);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 1, 0, &err), 0);
	model[0] = buf[0];
	ck_assert(tm_block_identity(b, id3, &err));
	ck_assert_str_ne(id1, id3);

	/* someone else's truncation is a change */
	ck_assert_int_eq(truncate(path, 100), 0);
	ck_assert(tm_block_changed(b));
	tm_block_disconnect(b);

	/* a window to the end of the file grows with it; a sized one does not */
	ck_assert_int_eq(truncate(path, 0), 0);
	ck_assert_int_eq(truncate(path, 1000), 0);
	opts.offset = 10;
	b = tm_block_open(path, &opts, &err);
	ck_assert_msg(b != NULL, "open: %s", err_line(&err));
	tm_block_get_info(b, &info);
	ck_assert(info.growable);
	tu_fill(buf, 2000, 56);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 2000, 900, &err), 0);
	ck_assert_uint_eq(tm_block_size_bytes(b), 2900);
	tm_block_disconnect(b);
	opts.size = 1000;
	b = tm_block_open(path, &opts, &err);
	ck_assert_msg(b != NULL, "open: %s", err_line(&err));
	tm_block_get_info(b, &info);
	ck_assert(!info.growable);
	ck_assert_int_lt(tm_block_pwrite(b, buf, 2, 999, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	tm_block_disconnect(b);
	file = slurp(path, &n);
	ck_assert_uint_eq(n, 2910);
	expect_same(file + 910, buf, 2000, "the window's write");
	g_free(file);

	/* a cache over the file: growth and coherence */
	opts.offset = opts.size = 0;
	opts.cache = 1;
	b = tm_block_open(path, &opts, &err);
	ck_assert_msg(b != NULL, "open: %s", err_line(&err));
	all = read_whole(b, &size);
	g_free(all);
	tu_fill(buf, 3000, 57);
	ck_assert_int_eq(tm_block_pwrite(b, buf, 3000, 2000, &err), 0);
	ck_assert_uint_eq(tm_block_size_bytes(b), 5000);
	uint8_t back[3000];
	ck_assert_int_eq(tm_block_pread(b, back, 3000, 2000, &err), 0);
	expect_same(back, buf, 3000, "through the cache");
	ck_assert_int_eq(tm_block_flush(b, &err), 0);
	tm_block_disconnect(b);

	unlink(path);
	g_free(path);
	g_free(model);
}
END_TEST

START_TEST(test_file_lock)
{
	uint8_t data[1024] = { 0 };
	char *path = tmp_file(data, sizeof data);
	struct tm_block_options rw = { .read_write = true }, win = { .read_write = true,
								      .offset = 512 };
	struct tm_block_error err;
	struct tm_block *a = tm_block_open(path, &rw, &err);
	struct tm_block *b = tm_block_open(path, &win, &err); /* a window: the same lock */
	ck_assert(a && b);
	ck_assert_int_eq(tm_block_lock_writer(a, false, &err), 0);
	ck_assert_int_eq(tm_block_lock_writer(a, false, &err), 0); /* again: still ours */
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_lock_writer(b, false, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_LOCKED);
	ck_assert_ptr_nonnull(strstr(err_line(&err), "locked by another writer"));
	tm_block_unlock_writer(a);
	ck_assert_int_eq(tm_block_lock_writer(b, false, &err), 0);
	ck_assert_int_lt(tm_block_lock_writer(a, false, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_LOCKED);
	tm_block_disconnect(b); /* releases it */
	ck_assert_int_eq(tm_block_lock_writer(a, true, &err), 0);

	/* opened read-only: no lock, no writes, a flush that has nothing to do */
	struct tm_block_options ro = { 0 };
	b = tm_block_open(path, &ro, &err);
	ck_assert_ptr_nonnull(b);
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	ck_assert(!info.read_write && !info.growable);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_lock_writer(b, false, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_str_eq(err_line(&err), "not writable: opened read-only");
	ck_assert_int_lt(tm_block_pwrite(b, data, 1, 0, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	struct iovec iov = { data, 512 };
	ck_assert_int_lt(tm_block_write(b, 0, &iov, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_int_eq(tm_block_flush(b, &err), 0);
	tm_block_disconnect(b);
	tm_block_disconnect(a);

	/* a directory is not a file to write */
	char *dir = g_path_get_dirname(path);
	ck_assert_ptr_null(tm_block_file_open(dir, &rw, &err));
	ck_assert_int_eq(err.code, TM_BLOCK_INVALID);
	g_free(dir);
	unlink(path);
	g_free(path);
}
END_TEST

/* ---- refusals and messages ---- */

START_TEST(test_decomp_refuses)
{
	static uint8_t plain[4096], gz[8192];
	tu_fill(plain, sizeof plain, 60);
	z_stream z = { 0 };
	ck_assert_int_eq(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = plain;
	z.avail_in = sizeof plain;
	z.next_out = gz;
	z.avail_out = sizeof gz;
	ck_assert_int_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
	size_t gzlen = sizeof gz - z.avail_out;
	deflateEnd(&z);
	struct tm_block_error err;
	struct tm_block *inner = tm_block_mem_new_rw(gz, gzlen, 512);
	struct tm_block *d = tm_decomp_new(inner, TM_DECOMP_GZIP, NULL, NULL, 0, &err);
	ck_assert_msg(d != NULL, "decomp: %s", err_line(&err));
	struct tm_block_info info;
	tm_block_get_info(d, &info);
	ck_assert(!info.read_write);
	uint8_t buf[512] = { 0 };
	struct iovec iov = { buf, sizeof buf };
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_write(d, 0, &iov, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	ck_assert_str_eq(err_line(&err), "not writable: a compressed archive cannot be written");
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pwrite(d, buf, 3, 1, &err), 0);
	ck_assert_str_eq(err.msg, "a compressed archive cannot be written");
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_lock_writer(d, false, &err), 0);
	ck_assert_str_eq(err.msg, "a compressed archive cannot be written");
	ck_assert_int_eq(tm_block_flush(d, &err), 0);
	/* a window over it says the same */
	d = tm_block_window_new(d, 1, 0, &err);
	ck_assert_ptr_nonnull(d);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pwrite(d, buf, 3, 1, &err), 0);
	ck_assert_str_eq(err.msg, "a compressed archive cannot be written");
	tm_block_disconnect(d);
}
END_TEST

START_TEST(test_write_errors_text)
{
	struct tm_block_error err;
	char buf[300];
	static const struct {
		int e;
		enum tm_block_code code;
		const char *line;
	} cases[] = {
		{ ENOSPC, TM_BLOCK_NO_SPACE,
		  "no space left: writing at byte 4096: No space left on device" },
		{ EDQUOT, TM_BLOCK_NO_SPACE, "no space left: writing at byte 4096: Disk quota exceeded" },
		{ EFBIG, TM_BLOCK_NO_SPACE, "no space left: writing at byte 4096: File too large" },
		{ EIO, TM_BLOCK_IO, "I/O error: writing at byte 4096: Input/output error" },
		{ EROFS, TM_BLOCK_READ_ONLY,
		  "not writable: writing at byte 4096: Read-only file system" },
		{ EPERM, TM_BLOCK_READ_ONLY,
		  "not writable: writing at byte 4096: Operation not permitted" },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		ck_assert_int_eq(tm_block_write_code(cases[i].e), cases[i].code);
		tm_block_fail(&err, tm_block_write_code(cases[i].e), cases[i].e,
			      "writing at byte %d", 4096);
		ck_assert_str_eq(tm_block_strerror(&err, buf, sizeof buf), cases[i].line);
	}
	static const enum tm_block_code codes[] = { TM_BLOCK_NO_SPACE, TM_BLOCK_LOCKED,
						    TM_BLOCK_NOT_SUPPORTED };
	for (size_t i = 0; i < G_N_ELEMENTS(codes); i++) {
		memset(&err, 0, sizeof err);
		err.code = codes[i];
		const char *s = tm_block_strerror(&err, buf, sizeof buf);
		ck_assert(s[0] && !strchr(s, '\n') && strcmp(s, "unknown error"));
	}
	/* a source without a writer lock (the memory device has one; a test decorator not) */
	uint8_t data[512];
	struct halfway *h = g_new0(struct halfway, 1);
	h->base.ops = &halfway_ops;
	h->base.source = g_strdup("(halfway)");
	h->inner = tm_block_mem_new_rw(data, sizeof data, 512);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_lock_writer(&h->base, false, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_NOT_SUPPORTED);
	ck_assert_str_eq(tm_block_strerror(&err, buf, sizeof buf),
			 "not supported: this source (halfway) has no writer lock");
	tm_block_unlock_writer(&h->base); /* harmless */
	ck_assert_int_eq(tm_block_flush(&h->base, &err), 0); /* no flush op: nothing pending */
	tm_block_disconnect(&h->base);
}
END_TEST

Suite *block_write_suite(void)
{
	Suite *s = suite_create("block_write");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_mem_rw, 0, 2);
	tcase_add_loop_test(tc, test_pwrite_alignments, 0, 2);
	tcase_add_loop_test(tc, test_window_rmw, 0, 2);
	tcase_add_test(tc, test_partition_rw);
	tcase_add_loop_test(tc, test_cache_coherence, 0, 2);
	tcase_add_loop_test(tc, test_cache_race, 0, 2);
	tcase_add_test(tc, test_file_rw);
	tcase_add_test(tc, test_file_lock);
	tcase_add_test(tc, test_decomp_refuses);
	tcase_add_test(tc, test_write_errors_text);
	suite_add_tcase(s, tc);
	return s;
}
