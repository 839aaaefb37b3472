/* Block backends: the in-memory device, the file backend, tm_block_pread's unaligned reads
 * and the shared range checks. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "block.h"
#include "suites.h"
#include "testutil.h"

#define MEM_LEN (3 * 4096 + 700) /* not a multiple of either sector size */

static uint8_t mem_src[MEM_LEN];

static void mem_setup(void)
{
	tu_fill(mem_src, sizeof mem_src, 4242);
}

/* offsets/lengths around sector boundaries of both sizes */
static const uint64_t offs[] = { 0, 1, 100, 511, 512, 513, 1000, 1023, 1024, 4095, 4096, 4097,
				 5000, 8191, 8192 };
static const size_t lens[] = { 0, 1, 2, 511, 512, 513, 1024, 1500, 4096, 4097, 8192 };

static void check_preads(struct tm_block *b, const uint8_t *src, uint64_t size)
{
	uint8_t buf[16384];
	struct tm_block_error err;
	for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
		for (size_t j = 0; j < G_N_ELEMENTS(lens); j++) {
			uint64_t off = offs[i];
			size_t len = lens[j];
			if (off + len > size)
				continue;
			memset(buf, 0xee, sizeof buf);
			memset(&err, 0, sizeof err);
			int rc = tm_block_pread(b, buf, len, off, &err);
			ck_assert_msg(rc == 0, "pread(%llu, %zu) failed: %d (%s)",
				      (unsigned long long)off, len, err.code, err.msg);
			ck_assert_msg(memcmp(buf, src + off, len) == 0, "pread(%llu, %zu): wrong data",
				      (unsigned long long)off, len);
			ck_assert_msg(buf[len] == 0xee, "pread(%llu, %zu) wrote past len",
				      (unsigned long long)off, len);
		}
	}
	/* the whole device */
	uint8_t *all = g_malloc(size + 1);
	ck_assert_int_eq(tm_block_pread(b, all, size, 0, &err), 0);
	ck_assert(memcmp(all, src, size) == 0);
	/* the last byte */
	if (size > 0) {
		ck_assert_int_eq(tm_block_pread(b, all, 1, size - 1, &err), 0);
		ck_assert_int_eq(all[0], src[size - 1]);
	}
	g_free(all);
}

static void check_past_end(struct tm_block *b, uint64_t size)
{
	uint8_t buf[8192];
	struct tm_block_error err;
	const struct {
		uint64_t off;
		size_t len;
	} cases[] = {
		{ size - 10, 20 }, { size, 1 }, { size + 1, 1 }, { size - 1, 2 }, { 0, size + 1 },
		{ size + 4096, 512 }, { UINT64_MAX - 10, 100 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		if (cases[i].len > sizeof buf && cases[i].len != size + 1)
			continue;
		uint8_t *p = cases[i].len > sizeof buf ? g_malloc(cases[i].len) : buf;
		memset(&err, 0, sizeof err);
		int rc = tm_block_pread(b, p, cases[i].len, cases[i].off, &err);
		ck_assert_msg(rc < 0, "pread(%llu, %zu) past the end succeeded",
			      (unsigned long long)cases[i].off, cases[i].len);
		ck_assert_msg(err.code == TM_BLOCK_OUT_OF_RANGE, "pread(%llu, %zu): code %d",
			      (unsigned long long)cases[i].off, cases[i].len, err.code);
		if (p != buf)
			g_free(p);
	}
}

/* The device's bytes: the source, then zeros to the end of the last (partial) sector. */
static uint8_t *padded_ref(uint32_t ss, uint64_t *size)
{
	*size = (uint64_t)((MEM_LEN + ss - 1) / ss) * ss;
	uint8_t *ref = g_malloc0(*size);
	memcpy(ref, mem_src, MEM_LEN);
	return ref;
}

START_TEST(test_mem_info_and_reads)
{
	uint32_t ss = tu_sector(_i);
	struct tm_block *b = tm_block_mem_new(mem_src, MEM_LEN, ss);
	ck_assert_ptr_nonnull(b);
	struct tm_block_info info;
	memset(&info, 0xff, sizeof info);
	tm_block_get_info(b, &info);
	ck_assert(!info.read_write);
	ck_assert_uint_eq(info.sector_size, ss);
	/* a partial last sector counts, read as if padded with zeros */
	ck_assert_uint_eq(info.size_sectors, (MEM_LEN + ss - 1) / ss);
	uint64_t size;
	uint8_t *ref = padded_ref(ss, &size);
	/* the exact length is the buffer's; the rest of the last sector reads as zeros */
	ck_assert_uint_eq(tm_block_size_bytes(b), MEM_LEN);
	ck_assert_uint_eq(info.size_bytes, MEM_LEN);

	check_preads(b, ref, MEM_LEN);
	check_past_end(b, MEM_LEN);

	/* the padding of the last sector reads as zeros through a sector read */
	uint8_t *last = g_malloc(ss);
	struct tm_block_error err;
	memset(last, 0xee, ss);
	struct iovec iov = { last, ss };
	ck_assert_int_eq(tm_block_read(b, size / ss - 1, &iov, 1, &err), 0);
	ck_assert(memcmp(last, ref + size - ss, ss) == 0);
	for (uint64_t i = MEM_LEN % ss; i < ss && MEM_LEN % ss; i++)
		ck_assert_int_eq(last[i], 0);
	g_free(last);
	g_free(ref);
	tm_block_disconnect(b);
}
END_TEST

START_TEST(test_mem_sector_reads)
{
	uint32_t ss = tu_sector(_i);
	struct tm_block *b = tm_block_mem_new(mem_src, MEM_LEN, ss);
	struct tm_block_error err;
	uint64_t size;
	uint8_t *ref = padded_ref(ss, &size);
	uint64_t nsec = size / ss;

	/* two buffers filled from consecutive sectors, up to the (padded) last one */
	uint8_t *b1 = g_malloc(ss), *b2 = g_malloc(2 * (size_t)ss);
	struct iovec iov[2] = { { b1, ss }, { b2, 2 * (size_t)ss } };
	ck_assert_int_eq(tm_block_read(b, nsec - 3, iov, 2, &err), 0);
	ck_assert(memcmp(b1, ref + (nsec - 3) * ss, ss) == 0);
	ck_assert(memcmp(b2, ref + (nsec - 2) * ss, 2 * (size_t)ss) == 0);

	/* one sector too many */
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_read(b, nsec - 2, iov, 2, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);

	/* a buffer that is not whole sectors */
	struct iovec odd = { b1, ss - 1 };
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_read(b, 0, &odd, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_UNALIGNED);

	/* read-only */
	struct iovec w = { b1, ss };
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_write(b, 0, &w, 1, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
	/* and the source is untouched */
	uint8_t check[MEM_LEN];
	tu_fill(check, sizeof check, 4242);
	ck_assert(memcmp(check, mem_src, MEM_LEN) == 0);

	/* memory has no file descriptor */
	int fd = -1;
	uint64_t base = 0;
	ck_assert(!tm_block_get_fd(b, &fd, &base));

	g_free(b1);
	g_free(b2);
	g_free(ref);
	tm_block_disconnect(b);
}
END_TEST

START_TEST(test_mem_empty)
{
	static const uint8_t none[1];
	struct tm_block *b = tm_block_mem_new(none, 0, 512);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_eq(tm_block_size_bytes(b), 0);
	uint8_t buf[4096];
	struct tm_block_error err;
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pread(b, buf, 1, 0, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	tm_block_disconnect(b);

	/* shorter than one sector: one sector, zero-padded */
	b = tm_block_mem_new(mem_src, 4000, 4096);
	ck_assert_uint_eq(tm_block_size_bytes(b), 4000);
	memset(buf, 0xee, sizeof buf);
	struct iovec whole = { buf, 4096 };
	ck_assert_int_eq(tm_block_read(b, 0, &whole, 1, &err), 0);
	ck_assert(memcmp(buf, mem_src, 4000) == 0);
	for (int i = 4000; i < 4096; i++)
		ck_assert_int_eq(buf[i], 0);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pread(b, buf, 1, 4096, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	tm_block_disconnect(b);
}
END_TEST

START_TEST(test_check_range)
{
	struct tm_block_info info = { .sector_size = 512, .size_sectors = 10 };
	static uint8_t buf[2048];
	struct tm_block_error err;
	struct iovec one = { buf, 1024 };
	struct iovec two[2] = { { buf, 512 }, { buf + 512, 1024 } };
	struct iovec bad1 = { buf, 100 };
	struct iovec bad2[2] = { { buf, 512 }, { buf + 512, 700 } };

	ck_assert_int_eq(tm_block_check_range(&info, 0, &one, 1, &err), 1024);
	ck_assert_int_eq(tm_block_check_range(&info, 8, &one, 1, &err), 1024);
	ck_assert_int_eq(tm_block_check_range(&info, 7, two, 2, &err), 1536);

	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, 9, &one, 1, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, 8, two, 2, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, 10, &one, 1, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, UINT64_MAX, &one, 1, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);

	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, 0, &bad1, 1, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_UNALIGNED);
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&info, 0, bad2, 2, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_UNALIGNED);

	/* 4096-byte sectors: 512 bytes is not a whole sector */
	struct tm_block_info big = { .sector_size = 4096, .size_sectors = 4 };
	struct iovec half = { buf, 512 };
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_check_range(&big, 0, &half, 1, &err), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_UNALIGNED);
}
END_TEST

/* A stream whose size is pending until its first read, as a decompressor's during its
 * scan: the read learns the end, and reads the partial last sector as zeros past it. */
struct settling {
	struct tm_block b;
	uint64_t size;
	bool known;
};

static void settling_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct settling *s = (struct settling *)b;
	*info = (struct tm_block_info){ .sector_size = 512 };
	if (s->known) {
		info->size_sectors = (s->size + 511) / 512;
		info->size_bytes = s->size;
	} else {
		info->size_pending = true;
		info->size_sectors = 1u << 20;
	}
}

static int settling_read(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			 int iovcnt, struct tm_block_error *err)
{
	struct settling *s = (struct settling *)b;
	s->known = true;
	struct tm_block_info info;
	settling_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint64_t off = sector * 512;
	for (int i = 0; i < iovcnt; i++) {
		uint8_t *p = iov[i].iov_base;
		for (size_t k = 0; k < iov[i].iov_len; k++, off++)
			p[k] = off < s->size ? (uint8_t)(off % 251 + 1) : 0;
	}
	return 0;
}

static void settling_disconnect(struct tm_block *b)
{
	g_free(b);
}

static const struct tm_block_ops settling_ops = {
	.name = "settling",
	.get_info = settling_get_info,
	.read = settling_read,
	.write = tm_block_write_read_only,
	.disconnect = settling_disconnect,
};

/* The range is checked again once the size is known: bytes past the end found meanwhile
 * are out of range, not zeros. */
START_TEST(test_pread_size_settles)
{
	struct settling *s = g_new0(struct settling, 1);
	s->b.ops = &settling_ops;
	s->size = 1000;
	uint8_t buf[1100];
	struct tm_block_error err = { 0 };
	ck_assert_int_lt(tm_block_pread(&s->b, buf, 1036, 0, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	s->known = false;
	ck_assert_int_eq(tm_block_pread(&s->b, buf, 1000, 0, &err), 0);
	ck_assert_int_eq(buf[999], 999 % 251 + 1);
	s->known = false;
	ck_assert_int_lt(tm_block_pread(&s->b, buf, 5, 998, &err), 0);
	tm_block_disconnect(&s->b);
}
END_TEST

START_TEST(test_fail_and_strerror)
{
	struct tm_block_error err;
	char buf[300];
	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_fail(&err, TM_BLOCK_IO, EIO, "offset %d past the end", 12345), -1);
	ck_assert_int_eq(err.code, TM_BLOCK_IO);
	ck_assert_int_eq(err.sys_errno, EIO);
	ck_assert_str_eq(err.msg, "offset 12345 past the end");
	const char *s = tm_block_strerror(&err, buf, sizeof buf);
	ck_assert_ptr_nonnull(s);
	ck_assert(s[0] != 0);
	ck_assert(strchr(s, '\n') == NULL);

	memset(&err, 0, sizeof err);
	ck_assert_int_eq(tm_block_fail(&err, TM_BLOCK_OPEN, ENOENT, NULL), -1);
	ck_assert_str_eq(err.msg, "");

	static const enum tm_block_code codes[] = {
		TM_BLOCK_IO, TM_BLOCK_READ_ONLY, TM_BLOCK_OUT_OF_RANGE, TM_BLOCK_UNALIGNED,
		TM_BLOCK_DISCONNECTED, TM_BLOCK_OPEN, TM_BLOCK_INVALID,
	};
	for (size_t i = 0; i < G_N_ELEMENTS(codes); i++) {
		memset(&err, 0, sizeof err);
		err.code = codes[i];
		s = tm_block_strerror(&err, buf, sizeof buf);
		ck_assert_ptr_nonnull(s);
		ck_assert_msg(s[0] != 0, "empty message for code %d", codes[i]);
		ck_assert(strchr(s, '\n') == NULL);
	}
	/* a tiny buffer is not overrun */
	char tiny[8] = "abcdefg";
	err.code = TM_BLOCK_IO;
	err.sys_errno = EIO;
	s = tm_block_strerror(&err, tiny, 3);
	if (s == tiny)
		ck_assert_uint_le(strlen(tiny), 2);
	ck_assert_int_eq(tiny[3], 'd');
}
END_TEST

/* ---- the file backend ---- */

#define FILE_LEN (3 * 4096 + 700)

static char *write_tmp(const uint8_t *data, size_t len)
{
	GError *gerr = NULL;
	char *path = NULL;
	int fd = g_file_open_tmp("tarmount-unit-XXXXXX", &path, &gerr);
	ck_assert_msg(fd >= 0, "g_file_open_tmp: %s", gerr ? gerr->message : "?");
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		ck_assert(n > 0);
		done += (size_t)n;
	}
	close(fd);
	return path;
}

START_TEST(test_file_backend)
{
	static uint8_t src[FILE_LEN];
	tu_fill(src, sizeof src, 99);
	char *path = write_tmp(src, sizeof src);
	struct tm_block_options opts;
	memset(&opts, 0, sizeof opts);
	struct tm_block_error err;
	memset(&err, 0, sizeof err);

	for (int which = 0; which < 2; which++) {
		struct tm_block *b = which ? tm_block_open(path, &opts, &err)
					   : tm_block_file_open(path, &opts, &err);
		ck_assert_msg(b != NULL, "open: %d %s", err.code, err.msg);
		struct tm_block_info info;
		tm_block_get_info(b, &info);
		ck_assert(info.sector_size >= 512);
		ck_assert((info.sector_size & (info.sector_size - 1)) == 0);
		/* the partial last sector counts; the exact length is the file's */
		ck_assert_uint_eq(info.size_sectors,
				  (FILE_LEN + info.sector_size - 1) / info.sector_size);
		uint64_t size = tm_block_size_bytes(b);
		ck_assert_uint_eq(size, FILE_LEN);

		check_preads(b, src, size);
		check_past_end(b, size);

		/* writes are refused */
		uint8_t *buf = g_malloc0(info.sector_size);
		struct iovec w = { buf, info.sector_size };
		memset(&err, 0, sizeof err);
		ck_assert_int_lt(tm_block_write(b, 0, &w, 1, &err), 0);
		ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
		g_free(buf);

		/* a descriptor, if offered, holds the bytes at fd_base */
		int fd = -1;
		uint64_t base = 0;
		if (tm_block_get_fd(b, &fd, &base)) {
			uint8_t x[100];
			ck_assert(fd >= 0);
			ck_assert_int_eq(pread(fd, x, sizeof x, (off_t)(base + 1000)), (ssize_t)sizeof x);
			ck_assert(memcmp(x, src + 1000, sizeof x) == 0);
		}
		tm_block_disconnect(b);
	}

	/* the file is unchanged */
	gchar *contents = NULL;
	gsize n = 0;
	ck_assert(g_file_get_contents(path, &contents, &n, NULL));
	ck_assert_uint_eq(n, FILE_LEN);
	ck_assert(memcmp(contents, src, FILE_LEN) == 0);
	g_free(contents);
	unlink(path);
	g_free(path);
}
END_TEST

struct thread_arg {
	struct tm_block *b;
	const uint8_t *src;
	uint64_t size;
	uint32_t seed;
	int bad;
};

static gpointer reader_thread(gpointer p)
{
	struct thread_arg *a = p;
	GRand *r = g_rand_new_with_seed(a->seed);
	uint8_t buf[6000];
	for (int i = 0; i < 2000; i++) {
		size_t len = (size_t)g_rand_int_range(r, 0, (gint32)sizeof buf);
		uint64_t off = (uint64_t)g_rand_int_range(r, 0, (gint32)(a->size - len + 1));
		struct tm_block_error err;
		if (tm_block_pread(a->b, buf, len, off, &err) != 0 ||
		    memcmp(buf, a->src + off, len) != 0)
			a->bad++;
	}
	g_rand_free(r);
	return NULL;
}

START_TEST(test_file_threads)
{
	static uint8_t src[FILE_LEN];
	tu_fill(src, sizeof src, 1234);
	char *path = write_tmp(src, sizeof src);
	struct tm_block_options opts;
	memset(&opts, 0, sizeof opts);
	struct tm_block_error err;
	struct tm_block *b = tm_block_file_open(path, &opts, &err);
	ck_assert_ptr_nonnull(b);
	uint64_t size = tm_block_size_bytes(b);

	struct thread_arg args[4];
	GThread *th[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct thread_arg){ b, src, size, (uint32_t)(i + 1), 0 };
		th[i] = g_thread_new("reader", reader_thread, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		g_thread_join(th[i]);
		ck_assert_msg(args[i].bad == 0, "thread %d: %d bad reads", i, args[i].bad);
	}
	tm_block_disconnect(b);
	unlink(path);
	g_free(path);
}
END_TEST

START_TEST(test_file_open_errors)
{
	struct tm_block_options opts;
	memset(&opts, 0, sizeof opts);
	struct tm_block_error err;
	char buf[300];

	memset(&err, 0, sizeof err);
	struct tm_block *b = tm_block_file_open("/nonexistent/dir/archive.tar", &opts, &err);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(err.code, TM_BLOCK_OPEN);
	ck_assert_int_eq(err.sys_errno, ENOENT);
	ck_assert(tm_block_strerror(&err, buf, sizeof buf)[0] != 0);

	memset(&err, 0, sizeof err);
	b = tm_block_open("/nonexistent/dir/archive.tar", &opts, &err);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(err.code, TM_BLOCK_OPEN);
}
END_TEST

Suite *block_suite(void)
{
	Suite *s = suite_create("block");
	TCase *tc = tcase_create("mem");
	tcase_add_unchecked_fixture(tc, mem_setup, NULL);
	tcase_add_loop_test(tc, test_mem_info_and_reads, 0, 2);
	tcase_add_loop_test(tc, test_mem_sector_reads, 0, 2);
	tcase_add_test(tc, test_mem_empty);
	tcase_add_test(tc, test_check_range);
	tcase_add_test(tc, test_pread_size_settles);
	tcase_add_test(tc, test_fail_and_strerror);
	suite_add_tcase(s, tc);

	tc = tcase_create("file");
	tcase_add_test(tc, test_file_backend);
	tcase_add_test(tc, test_file_threads);
	tcase_add_test(tc, test_file_open_errors);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
