/* Decorators over the in-memory device: the byte window (offsets of any alignment, 512- and
 * 4096-byte sectors), partition tables built by hand from the specs (MBR primary and logical
 * partitions, GPT with 512- and 4096-byte LBAs) and the sharded LRU cache (many threads,
 * sequential runs, a cache of one chunk per shard).
 *
 * Partition tables follow the published layouts, never the code under test: the MBR as in
 * the IBM PC boot sector (four 16-byte entries at byte 446, 0x55 0xAA at 510), extended boot
 * records as Linux and sfdisk write them (the first entry relative to the EBR itself, the
 * second, the link, relative to the start of the extended partition), GPT as in UEFI 2.x
 * chapter 5 (protective MBR, header at LBA 1 with its CRC32, entry array, backup header and
 * array at the end of the disk). */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "block.h"
#include "suites.h"
#include "testutil.h"

/* ---- helpers ---- */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* CRC-32 as in UEFI (IEEE 802.3, reflected, init and final xor 0xffffffff). */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return c ^ 0xffffffffu;
}

/* A device image of len pseudo-random bytes (g_free it). */
static uint8_t *random_image(size_t len, uint32_t seed)
{
	uint8_t *d = g_malloc(len);
	tu_fill(d, len, seed);
	return d;
}

/* The bytes the in-memory device serves: exactly the data (its exact size is len; a
 * sector read of the last, partial sector gives zeros past it, so the copy is padded). */
static uint8_t *padded_copy(const uint8_t *src, size_t len, uint32_t ss, uint64_t *size)
{
	uint64_t padded = (uint64_t)((len + ss - 1) / ss) * ss;
	*size = len;
	uint8_t *p = g_malloc0(padded ? padded : 1);
	memcpy(p, src, len);
	return p;
}

/* b reads as ref[0..size): whole, in pieces at unaligned offsets, and not one byte more. */
static void check_same(struct tm_block *b, const uint8_t *ref, uint64_t size, const char *what)
{
	struct tm_block_error err;
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	ck_assert_msg(info.size_sectors == (size + info.sector_size - 1) / info.sector_size,
		      "%s: %llu sectors of %u bytes, want %llu bytes", what,
		      (unsigned long long)info.size_sectors, info.sector_size,
		      (unsigned long long)size);
	ck_assert_msg(!info.read_write, "%s: writable", what);
	ck_assert_uint_eq(tm_block_size_bytes(b), size);

	uint8_t *all = g_malloc(size + 1);
	memset(&err, 0, sizeof err);
	ck_assert_msg(tm_block_pread(b, all, size, 0, &err) == 0, "%s: whole read: %d %s", what,
		      err.code, err.msg);
	ck_assert_msg(memcmp(all, ref, size) == 0, "%s: whole read differs", what);
	g_free(all);

	static const uint64_t offs[] = { 0, 1, 7, 511, 512, 513, 1000, 4095, 4096, 4097, 8191,
					 12345 };
	static const size_t lens[] = { 1, 2, 100, 511, 512, 513, 4095, 4096, 4097, 9000 };
	uint8_t buf[9001];
	for (size_t i = 0; i < G_N_ELEMENTS(offs); i++) {
		for (size_t j = 0; j < G_N_ELEMENTS(lens); j++) {
			uint64_t off = offs[i];
			size_t len = lens[j];
			if (off + len > size)
				continue;
			memset(buf, 0xee, sizeof buf);
			memset(&err, 0, sizeof err);
			ck_assert_msg(tm_block_pread(b, buf, len, off, &err) == 0,
				      "%s: pread(%llu, %zu): %d %s", what, (unsigned long long)off,
				      len, err.code, err.msg);
			ck_assert_msg(memcmp(buf, ref + off, len) == 0, "%s: pread(%llu, %zu) differs",
				      what, (unsigned long long)off, len);
			ck_assert_int_eq(buf[len], 0xee);
		}
	}
	/* the last bytes, and one past them */
	if (size >= 3) {
		ck_assert_int_eq(tm_block_pread(b, buf, 3, size - 3, &err), 0);
		ck_assert(memcmp(buf, ref + size - 3, 3) == 0);
	}
	memset(&err, 0, sizeof err);
	ck_assert_msg(tm_block_pread(b, buf, 2, size - 1, &err) < 0, "%s: read past the end", what);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
	memset(&err, 0, sizeof err);
	ck_assert_int_lt(tm_block_pread(b, buf, 1, size, &err), 0);
	ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);

	/* whole sectors through read(), two buffers, ending at the last sector */
	uint32_t ss = info.sector_size;
	if (info.size_sectors >= 3) {
		uint8_t *b1 = g_malloc(ss), *b2 = g_malloc(2 * (size_t)ss);
		struct iovec iov[2] = { { b1, ss }, { b2, 2 * (size_t)ss } };
		uint64_t first = info.size_sectors - 3;
		ck_assert_int_eq(tm_block_read(b, first, iov, 2, &err), 0);
		ck_assert(memcmp(b1, ref + first * ss, ss) == 0);
		/* the last sector may be partial: the device's bytes, then zeros */
		size_t valid = (size_t)(size - (first + 1) * ss);
		ck_assert(memcmp(b2, ref + (first + 1) * ss, valid) == 0);
		for (size_t k = valid; k < 2 * (size_t)ss; k++)
			ck_assert_int_eq(b2[k], 0);
		memset(&err, 0, sizeof err);
		ck_assert_int_lt(tm_block_read(b, first + 1, iov, 2, &err), 0);
		ck_assert_int_eq(err.code, TM_BLOCK_OUT_OF_RANGE);
		/* read-only */
		memset(&err, 0, sizeof err);
		ck_assert_int_lt(tm_block_write(b, 0, iov, 1, &err), 0);
		ck_assert_int_eq(err.code, TM_BLOCK_READ_ONLY);
		g_free(b1);
		g_free(b2);
	}
}

/* ---- windows ---- */

#define WIN_LEN (64 * 1024 + 700) /* a partial last sector for both sector sizes */

static const uint64_t win_offs[] = { 0, 1, 7, 511, 512, 513, 1000, 4095, 4096, 4097, 10000,
				     40000 };

START_TEST(test_window_offsets)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *src = random_image(WIN_LEN, 1001);
	uint64_t total;
	uint8_t *dev = padded_copy(src, WIN_LEN, ss, &total);
	char what[64];
	for (size_t i = 0; i < G_N_ELEMENTS(win_offs); i++) {
		uint64_t off = win_offs[i];
		struct tm_block_error err;
		memset(&err, 0, sizeof err);

		/* to the end: whole sectors of what remains */
		struct tm_block *w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss), off, 0,
							 &err);
		ck_assert_msg(w != NULL, "window at %llu: %d %s", (unsigned long long)off, err.code,
			      err.msg);
		struct tm_block_info info;
		tm_block_get_info(w, &info);
		ck_assert_uint_eq(info.sector_size, ss);
		ck_assert_uint_eq(info.size_sectors, (total - off + ss - 1) / ss);
		snprintf(what, sizeof what, "ss %u window at %llu", ss, (unsigned long long)off);
		check_same(w, dev + off, total - off, what);
		tm_block_disconnect(w);

		/* a given size, a whole number of sectors, ending before the device does */
		uint64_t size = (total - off) / ss / 2 * ss;
		if (size == 0)
			continue;
		w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss), off, size, &err);
		ck_assert_ptr_nonnull(w);
		snprintf(what, sizeof what, "ss %u window at %llu of %llu", ss,
			 (unsigned long long)off, (unsigned long long)size);
		check_same(w, dev + off, size, what);
		tm_block_disconnect(w);
	}
	g_free(dev);
	g_free(src);
}
END_TEST

/* A window of a window, a window of a cache, a cache of a window: the offsets add up. */
START_TEST(test_window_stacked)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *src = random_image(WIN_LEN, 1002);
	uint64_t total;
	uint8_t *dev = padded_copy(src, WIN_LEN, ss, &total);
	struct tm_block_error err;

	struct tm_block *w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss), 1000, 0, &err);
	ck_assert_ptr_nonnull(w);
	w = tm_block_window_new(w, 4099, 8 * (uint64_t)ss, &err);
	ck_assert_ptr_nonnull(w);
	check_same(w, dev + 5099, 8 * (uint64_t)ss, "window of a window");
	tm_block_disconnect(w);

	w = tm_block_window_new(tm_block_cache_new(tm_block_mem_new(src, WIN_LEN, ss), 1 << 20),
				333, 0, &err);
	ck_assert_ptr_nonnull(w);
	check_same(w, dev + 333, total - 333, "window of a cache");
	tm_block_disconnect(w);

	w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss), 333, 0, &err);
	ck_assert_ptr_nonnull(w);
	struct tm_block *c = tm_block_cache_new(w, 1 << 20);
	check_same(c, dev + 333, total - 333, "cache of a window");
	tm_block_disconnect(c);

	g_free(dev);
	g_free(src);
}
END_TEST

START_TEST(test_window_past_end)
{
	uint32_t ss = tu_sector(_i);
	uint8_t *src = random_image(WIN_LEN, 1003);
	uint64_t total = WIN_LEN; /* the device's exact size */
	const struct {
		uint64_t off, size;
	} bad[] = {
		{ total + 1, 0 },
		{ total + ss, 0 },
		{ total + 1, ss },
		{ UINT64_MAX, 0 },
		{ 0, total + 1 },
		{ 0, total + ss },
		{ 1, total },
		{ total - ss, 2 * (uint64_t)ss },
		{ 10, UINT64_MAX - 5 }, /* offset + size overflows */
		{ UINT64_MAX - 5, 10 },
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		struct tm_block_error err;
		memset(&err, 0, sizeof err);
		struct tm_block *w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss),
							 bad[i].off, bad[i].size, &err);
		ck_assert_msg(w == NULL, "window %llu+%llu of %llu bytes accepted",
			      (unsigned long long)bad[i].off, (unsigned long long)bad[i].size,
			      (unsigned long long)total);
		ck_assert_msg(err.code == TM_BLOCK_OUT_OF_RANGE, "window %llu+%llu: code %d",
			      (unsigned long long)bad[i].off, (unsigned long long)bad[i].size,
			      err.code);
		ck_assert_msg(err.msg[0] != '\0', "window %llu+%llu: no message",
			      (unsigned long long)bad[i].off, (unsigned long long)bad[i].size);
	}
	/* exactly to the end is fine */
	struct tm_block_error err;
	struct tm_block *w = tm_block_window_new(tm_block_mem_new(src, WIN_LEN, ss), ss,
						 total - ss, &err);
	ck_assert_ptr_nonnull(w);
	ck_assert_uint_eq(tm_block_size_bytes(w), total - ss);
	tm_block_disconnect(w);
	g_free(src);
}
END_TEST

/* ---- MBR ---- */

/* Entry i (0..3) of the table in the 512-byte sector at sec: LBA-only CHS, as modern tools
 * write them. */
static void mbr_entry(uint8_t *sec, int i, uint8_t type, uint32_t lba, uint32_t count)
{
	uint8_t *e = sec + 446 + 16 * i;
	memset(e, 0, 16);
	if (type == 0)
		return;
	e[0] = 0x00;
	e[1] = 0xfe, e[2] = 0xff, e[3] = 0xff;
	e[4] = type;
	e[5] = 0xfe, e[6] = 0xff, e[7] = 0xff;
	put_le32(e + 8, lba);
	put_le32(e + 12, count);
}

static void mbr_init(uint8_t *sec)
{
	memset(sec + 440, 0, 72);
	put_le32(sec + 440, 0x12345678); /* disk signature */
	sec[510] = 0x55, sec[511] = 0xaa;
}

struct expect_part {
	unsigned n;
	uint64_t start, len; /* bytes */
};

static void check_partitions(const uint8_t *img, size_t len, uint32_t ss,
			     const struct expect_part *parts, size_t nparts, const char *label)
{
	char what[96];
	for (size_t i = 0; i < nparts; i++) {
		struct tm_block_error err;
		memset(&err, 0, sizeof err);
		struct tm_block *p = tm_block_partition_open(tm_block_mem_new(img, len, ss),
							     parts[i].n, &err);
		ck_assert_msg(p != NULL, "%s: partition %u: %d %s", label, parts[i].n, err.code,
			      err.msg);
		snprintf(what, sizeof what, "%s partition %u", label, parts[i].n);
		check_same(p, img + parts[i].start, parts[i].len, what);
		tm_block_disconnect(p);
	}
}

/* partition n is refused with a message; when name_n, the message names n */
static void check_no_partition(const uint8_t *img, size_t len, uint32_t ss, unsigned n,
			       bool name_n, const char *label)
{
	struct tm_block_error err;
	memset(&err, 0, sizeof err);
	struct tm_block *p = tm_block_partition_open(tm_block_mem_new(img, len, ss), n, &err);
	ck_assert_msg(p == NULL, "%s: partition %u opened", label, n);
	ck_assert_msg(err.code != TM_BLOCK_OK, "%s: partition %u: no error code", label, n);
	ck_assert_msg(err.msg[0] != '\0', "%s: partition %u: no message", label, n);
	if (name_n) {
		char num[16];
		snprintf(num, sizeof num, " %u", n);
		ck_assert_msg(strstr(err.msg, num) != NULL, "%s: partition %u: message '%s'", label,
			      n, err.msg);
	}
}

#define MBR_SECTORS 2048u /* of the device's sector size */

START_TEST(test_mbr_primary)
{
	uint32_t ss = tu_sector(_i);
	size_t len = (size_t)MBR_SECTORS * ss;
	uint8_t *img = random_image(len, 2001);
	mbr_init(img);
	mbr_entry(img, 0, 0x83, 64, 100);
	mbr_entry(img, 1, 0x07, 200, 1);
	mbr_entry(img, 2, 0x0c, 300, 777);
	mbr_entry(img, 3, 0x83, 1100, MBR_SECTORS - 1100); /* to the last sector */
	const struct expect_part parts[] = {
		{ 1, 64ull * ss, 100ull * ss },
		{ 2, 200ull * ss, 1ull * ss },
		{ 3, 300ull * ss, 777ull * ss },
		{ 4, 1100ull * ss, (MBR_SECTORS - 1100ull) * ss },
	};
	check_partitions(img, len, ss, parts, G_N_ELEMENTS(parts), "MBR");
	check_no_partition(img, len, ss, 5, true, "MBR without an extended partition");
	check_no_partition(img, len, ss, 1000, true, "MBR");

	/* an unused entry: type 0 */
	mbr_entry(img, 1, 0, 0, 0);
	check_no_partition(img, len, ss, 2, true, "MBR, entry 2 unused");
	check_partitions(img, len, ss, parts + 2, 2, "MBR, entry 2 unused");

	/* a partition that runs past the end of the device */
	mbr_entry(img, 2, 0x83, MBR_SECTORS - 10, 11);
	check_no_partition(img, len, ss, 3, false, "MBR, partition past the end");
	g_free(img);
}
END_TEST

/* An extended partition (type 0x05, 0x0f or 0x85) holding logical partitions 5 and 6 in a
 * chain of two EBRs, or 5, 6 and 7 in a chain of three (the third link tells a link taken
 * relative to the extended partition from one taken relative to the previous EBR). */
START_TEST(test_mbr_logical)
{
	static const uint8_t ext_types[] = { 0x05, 0x0f, 0x85 };
	for (int t = 0; t < 4 * (int)G_N_ELEMENTS(ext_types); t++) {
		uint32_t ss = tu_sector(t & 1);
		bool three = t & 2;
		uint8_t ext_type = ext_types[t / 4];
		size_t len = (size_t)MBR_SECTORS * ss;
		uint8_t *img = random_image(len, 2002 + (uint32_t)t);
		mbr_init(img);
		mbr_entry(img, 0, 0x83, 16, 100);
		mbr_entry(img, 1, ext_type, 400, 1200); /* sectors 400..1599 */
		mbr_entry(img, 2, 0, 0, 0);
		mbr_entry(img, 3, 0x83, 1700, 50);
		/* EBR 1 at 400: logical 5 at 400 + 63, 300 sectors; link to EBR 2 at 400 + 500 */
		uint8_t *ebr1 = img + 400 * (size_t)ss;
		memset(ebr1 + 446, 0, 64);
		mbr_entry(ebr1, 0, 0x83, 63, 300);
		mbr_entry(ebr1, 1, 0x05, 500, 600);
		ebr1[510] = 0x55, ebr1[511] = 0xaa;
		/* EBR 2 at 900: logical 6 at 900 + 2, 450 sectors; the end of the chain, or a
		 * link to EBR 3 at 400 + 1000 */
		uint8_t *ebr2 = img + 900 * (size_t)ss;
		memset(ebr2 + 446, 0, 64);
		mbr_entry(ebr2, 0, 0x83, 2, 450);
		if (three)
			mbr_entry(ebr2, 1, 0x05, 1000, 200);
		ebr2[510] = 0x55, ebr2[511] = 0xaa;
		/* EBR 3 at 1400: logical 7 at 1400 + 1, 150 sectors */
		uint8_t *ebr3 = img + 1400 * (size_t)ss;
		if (three) {
			memset(ebr3 + 446, 0, 64);
			mbr_entry(ebr3, 0, 0x83, 1, 150);
			ebr3[510] = 0x55, ebr3[511] = 0xaa;
		}

		const struct expect_part parts[] = {
			{ 1, 16ull * ss, 100ull * ss },
			{ 4, 1700ull * ss, 50ull * ss },
			{ 5, 463ull * ss, 300ull * ss },
			{ 6, 902ull * ss, 450ull * ss },
			{ 7, 1401ull * ss, 150ull * ss },
		};
		char label[80];
		snprintf(label, sizeof label, "MBR (ss %u, extended type 0x%02x, %d logical)", ss,
			 ext_type, three ? 3 : 2);
		check_partitions(img, len, ss, parts, G_N_ELEMENTS(parts) - !three, label);
		check_no_partition(img, len, ss, 3, true, label);
		check_no_partition(img, len, ss, three ? 8 : 7, true, label);
		check_no_partition(img, len, ss, 100, true, label);
		g_free(img);
	}
}
END_TEST

/* ---- GPT ---- */

struct gpt_part {
	uint64_t first, last; /* LBAs, inclusive; first == 0: unused entry */
};

/* Write a GPT into img (len bytes) laid out for LBAs of lba bytes: protective MBR, primary
 * header at LBA 1, entry array at entries_lba, backup array and header at the end. */
static void gpt_write(uint8_t *img, size_t len, uint32_t lba, uint64_t entries_lba,
		      uint32_t nentries, uint32_t esize, const struct gpt_part *parts,
		      size_t nparts)
{
	uint64_t nlba = len / lba;
	uint64_t array_lbas = ((uint64_t)nentries * esize + lba - 1) / lba;

	/* protective MBR */
	memset(img, 0, 512);
	mbr_init(img);
	put_le32(img + 440, 0);
	mbr_entry(img, 0, 0xee, 1, nlba - 1 > 0xffffffffu ? 0xffffffffu : (uint32_t)(nlba - 1));
	if (lba > 512)
		memset(img + 512, 0, lba - 512);

	/* entry array */
	size_t abytes = (size_t)nentries * esize;
	uint8_t *array = g_malloc0(abytes);
	static const uint8_t linux_data[16] = { 0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47,
						0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4 };
	for (size_t i = 0; i < nparts && i < nentries; i++) {
		if (parts[i].first == 0)
			continue;
		uint8_t *e = array + i * esize;
		memcpy(e, linux_data, 16);
		tu_fill(e + 16, 16, 3000 + (uint32_t)i); /* unique partition GUID */
		put_le64(e + 32, parts[i].first);
		put_le64(e + 40, parts[i].last);
		put_le64(e + 48, 0);
		char name[16];
		int n = snprintf(name, sizeof name, "part%zu", i + 1);
		for (int k = 0; k < n; k++)
			put_le16(e + 56 + 2 * k, (uint8_t)name[k]);
	}
	uint32_t array_crc = crc32_ieee(array, abytes);
	uint64_t backup_array = nlba - 1 - array_lbas;

	for (int backup = 0; backup < 2; backup++) {
		uint64_t my = backup ? nlba - 1 : 1, alt = backup ? 1 : nlba - 1;
		uint64_t at = backup ? backup_array : entries_lba;
		memcpy(img + at * lba, array, abytes);
		uint8_t *h = img + my * lba;
		memset(h, 0, lba);
		memcpy(h, "EFI PART", 8);
		put_le32(h + 8, 0x00010000);
		put_le32(h + 12, 92);
		put_le64(h + 24, my);
		put_le64(h + 32, alt);
		put_le64(h + 40, entries_lba + array_lbas); /* first usable */
		put_le64(h + 48, backup_array - 1);          /* last usable */
		tu_fill(h + 56, 16, 4242);                   /* disk GUID */
		put_le64(h + 72, at);
		put_le32(h + 80, nentries);
		put_le32(h + 84, esize);
		put_le32(h + 88, array_crc);
		put_le32(h + 16, crc32_ieee(h, 92));
	}
	g_free(array);
}

/* sizes in bytes of the partitions, given LBAs */
static struct expect_part gpt_expect(unsigned n, const struct gpt_part *p, uint32_t lba)
{
	struct expect_part e = { n, p->first * lba, (p->last - p->first + 1) * lba };
	return e;
}

START_TEST(test_gpt)
{
	/* i: 0 512-byte sectors and LBAs, 1 4096 and 4096, 2 4096-byte LBAs on a device of
	 * 512-byte sectors (an image made for a 4K disk), 3 as 0 with 256-byte entries at
	 * LBA 10 */
	static const struct {
		uint32_t ss, lba, esize;
		uint64_t entries_lba;
	} layouts[] = {
		{ 512, 512, 128, 2 },
		{ 4096, 4096, 128, 2 },
		{ 512, 4096, 128, 2 },
		{ 512, 512, 256, 10 },
	};
	uint32_t ss = layouts[_i].ss, lba = layouts[_i].lba, esize = layouts[_i].esize;
	size_t len = (size_t)4096 * lba; /* 4096 LBAs */
	uint8_t *img = random_image(len, 5000 + (uint32_t)_i);
	const struct gpt_part parts[] = {
		{ 256, 511 },
		{ 0, 0 }, /* unused */
		{ 512, 512 },
		{ 1000, 3999 },
	};
	gpt_write(img, len, lba, layouts[_i].entries_lba, 128, esize, parts, G_N_ELEMENTS(parts));
	const struct expect_part want[] = {
		gpt_expect(1, &parts[0], lba),
		gpt_expect(3, &parts[2], lba),
		gpt_expect(4, &parts[3], lba),
	};
	char label[64];
	snprintf(label, sizeof label, "GPT (ss %u, LBA %u, entries of %u at LBA %llu)", ss, lba,
		 esize, (unsigned long long)layouts[_i].entries_lba);
	check_partitions(img, len, ss, want, G_N_ELEMENTS(want), label);
	check_no_partition(img, len, ss, 2, true, label);   /* unused entry */
	check_no_partition(img, len, ss, 5, true, label);   /* unused, after the last used */
	check_no_partition(img, len, ss, 128, true, label); /* the last entry */
	check_no_partition(img, len, ss, 129, true, label); /* past the array */
	check_no_partition(img, len, ss, 100000, true, label);
	g_free(img);
}
END_TEST

/* A GPT partition that ends past the device's last byte is refused, not truncated. */
START_TEST(test_gpt_past_end)
{
	size_t len = 2048 * 512;
	uint8_t *img = random_image(len, 6000);
	const struct gpt_part parts[] = { { 100, 2100 } };
	gpt_write(img, len, 512, 2, 128, 128, parts, 1);
	check_no_partition(img, len, 512, 1, false, "GPT partition past the end");
	g_free(img);
}
END_TEST

/* No table at all: random bytes, zeros, a tar archive. */
START_TEST(test_no_table)
{
	uint32_t ss = tu_sector(_i);
	size_t len = 64 * 4096;
	uint8_t *img = random_image(len, 7000);
	img[510] = 0x12; /* no boot signature by chance */
	for (unsigned n = 1; n <= 6; n++)
		check_no_partition(img, len, ss, n, false, "random bytes");
	struct tm_block_error err;
	memset(&err, 0, sizeof err);
	ck_assert_ptr_null(tm_block_partition_open(tm_block_mem_new(img, len, ss), 1, &err));
	ck_assert_msg(strstr(err.msg, "partition table") != NULL, "message '%s'", err.msg);

	memset(img, 0, len);
	check_no_partition(img, len, ss, 1, false, "zeros");

	GByteArray *a = g_byte_array_new();
	tu_add_dir(a, "dir/");
	tu_add_file(a, "dir/file", "content\n");
	tu_finish(a);
	check_no_partition(a->data, a->len, ss, 1, false, "a tar archive");
	check_no_partition(a->data, a->len, ss, 2, false, "a tar archive");
	g_byte_array_free(a, TRUE);

	/* shorter than one sector of table */
	check_no_partition(img, 100, 512, 1, false, "100 bytes");
	g_free(img);
}
END_TEST

/* ---- cache ---- */

#define CACHE_LEN (8u * 1024 * 1024 + 1000) /* last chunk short, last sector partial */
#define CACHE_THREADS 8
#define CACHE_READS 2000

struct reader {
	struct tm_block *b;
	const uint8_t *ref;
	uint64_t size;
	uint32_t seed;
	bool sequential; /* a sequential run over its own part of the device */
	unsigned part;
	unsigned bad, failed;
	char first_problem[300];
};

static gpointer reader_thread(gpointer p)
{
	struct reader *r = p;
	GRand *rnd = g_rand_new_with_seed(r->seed);
	uint8_t *buf = g_malloc(300 * 1024);
	uint64_t seq_off = r->size / CACHE_THREADS * r->part;
	for (int i = 0; i < CACHE_READS; i++) {
		uint64_t off;
		size_t len;
		if (r->sequential) {
			len = (size_t)g_rand_int_range(rnd, 1, 20000);
			if (seq_off + len > r->size)
				seq_off = 0;
			off = seq_off;
			seq_off += len;
		} else {
			off = (uint64_t)g_rand_double_range(rnd, 0, (double)r->size);
			if (off >= r->size)
				off = r->size - 1;
			/* mostly small reads, some spanning several chunks */
			len = g_rand_int_range(rnd, 0, 8) ? (size_t)g_rand_int_range(rnd, 1, 9000)
							  : (size_t)g_rand_int_range(rnd, 1, 300 * 1024);
			if (len > r->size - off)
				len = (size_t)(r->size - off);
		}
		struct tm_block_error err;
		memset(&err, 0, sizeof err);
		if (tm_block_pread(r->b, buf, len, off, &err) < 0) {
			if (!r->failed++ && !r->bad)
				snprintf(r->first_problem, sizeof r->first_problem,
					 "pread(%llu, %zu) failed: %d %s", (unsigned long long)off,
					 len, err.code, err.msg);
		} else if (memcmp(buf, r->ref + off, len) != 0) {
			if (!r->bad++ && !r->failed)
				snprintf(r->first_problem, sizeof r->first_problem,
					 "pread(%llu, %zu) returned other bytes",
					 (unsigned long long)off, len);
		}
	}
	g_free(buf);
	g_rand_free(rnd);
	return NULL;
}

static void run_readers(struct tm_block *b, const uint8_t *ref, uint64_t size, bool sequential,
			const char *what)
{
	struct reader r[CACHE_THREADS];
	GThread *th[CACHE_THREADS];
	for (unsigned i = 0; i < CACHE_THREADS; i++) {
		memset(&r[i], 0, sizeof r[i]);
		r[i].b = b, r[i].ref = ref, r[i].size = size, r[i].seed = 9000 + i;
		r[i].sequential = sequential, r[i].part = i;
		th[i] = g_thread_new("reader", reader_thread, &r[i]);
	}
	for (unsigned i = 0; i < CACHE_THREADS; i++)
		g_thread_join(th[i]);
	for (unsigned i = 0; i < CACHE_THREADS; i++)
		ck_assert_msg(r[i].bad == 0 && r[i].failed == 0,
			      "%s: thread %u: %u wrong, %u failed reads; first: %s", what, i,
			      r[i].bad, r[i].failed, r[i].first_problem);
}

static uint8_t *cache_src;

static void cache_setup(void)
{
	cache_src = random_image(CACHE_LEN, 8000);
}

static void cache_teardown(void)
{
	g_free(cache_src);
	cache_src = NULL;
}

/* cache sizes: the default, 3 MiB (some chunks per shard), 1 byte (one chunk per shard) */
static const uint64_t cache_sizes[] = { 64u << 20, 3u << 20, 1 };

/* _i: sector size (bit 0) and cache size (_i / 2) */
START_TEST(test_cache_threads_random)
{
	uint32_t ss = tu_sector(_i & 1);
	uint64_t csize = cache_sizes[_i / 2], size;
	uint8_t *ref = padded_copy(cache_src, CACHE_LEN, ss, &size);
	struct tm_block *c = tm_block_cache_new(tm_block_mem_new(cache_src, CACHE_LEN, ss), csize);
	struct tm_block_info info;
	tm_block_get_info(c, &info);
	ck_assert_uint_eq(info.sector_size, ss);
	ck_assert_uint_eq(tm_block_size_bytes(c), size);
	char what[64];
	snprintf(what, sizeof what, "ss %u, cache of %llu bytes, random", ss,
		 (unsigned long long)csize);
	run_readers(c, ref, size, false, what);
	snprintf(what, sizeof what, "ss %u, cache of %llu bytes, sequential runs", ss,
		 (unsigned long long)csize);
	run_readers(c, ref, size, true, what);
	tm_block_disconnect(c);
	g_free(ref);
}
END_TEST

START_TEST(test_cache_sequential)
{
	uint32_t ss = tu_sector(_i & 1);
	uint64_t csize = cache_sizes[_i / 2], size;
	uint8_t *ref = padded_copy(cache_src, CACHE_LEN, ss, &size);
	struct tm_block *c = tm_block_cache_new(tm_block_mem_new(cache_src, CACHE_LEN, ss), csize);
	uint8_t *buf = g_malloc(1 << 20);
	static const size_t steps[] = { 4096, 1000, 65536, 131072, 1 << 20, 512, 200000 };
	for (int pass = 0; pass < 2; pass++) {
		for (size_t s = 0; s < G_N_ELEMENTS(steps); s++) {
			for (uint64_t off = 0; off < size; off += steps[s]) {
				size_t len = steps[s] < size - off ? steps[s] : (size_t)(size - off);
				struct tm_block_error err;
				memset(&err, 0, sizeof err);
				ck_assert_msg(tm_block_pread(c, buf, len, off, &err) == 0,
					      "ss %u cache %llu: pread(%llu, %zu): %d %s", ss,
					      (unsigned long long)csize, (unsigned long long)off, len,
					      err.code, err.msg);
				ck_assert_msg(memcmp(buf, ref + off, len) == 0,
					      "ss %u cache %llu pass %d: pread(%llu, %zu) differs", ss,
					      (unsigned long long)csize, pass, (unsigned long long)off,
					      len);
			}
		}
	}
	/* backwards, chunk-straddling */
	for (uint64_t off = size - 70000; off > 70000; off -= 70001) {
		struct tm_block_error err;
		ck_assert_int_eq(tm_block_pread(c, buf, 70000, off, &err), 0);
		ck_assert(memcmp(buf, ref + off, 70000) == 0);
	}
	check_same(c, ref, size, "cache");
	g_free(buf);
	tm_block_disconnect(c);
	g_free(ref);
}
END_TEST

/* A device that counts the bytes read from it, to see the cache keep what it read. */
struct counting {
	struct tm_block base;
	struct tm_block *inner;
	gint64 bytes;
	gint reads;
};

static void counting_get_info(struct tm_block *b, struct tm_block_info *info)
{
	tm_block_get_info(((struct counting *)b)->inner, info);
}

static int counting_read(struct tm_block *b, uint64_t sector, const struct iovec *iov,
			 int iovcnt, struct tm_block_error *err)
{
	struct counting *c = (struct counting *)b;
	for (int i = 0; i < iovcnt; i++)
		c->bytes += (gint64)iov[i].iov_len;
	c->reads++;
	return tm_block_read(c->inner, sector, iov, iovcnt, err);
}

static void counting_disconnect(struct tm_block *b)
{
	struct counting *c = (struct counting *)b;
	tm_block_disconnect(c->inner);
	g_free(b->source);
	g_free(c);
}

static const struct tm_block_ops counting_ops = {
	.name = "counting",
	.get_info = counting_get_info,
	.read = counting_read,
	.write = tm_block_write_read_only,
	.disconnect = counting_disconnect,
};

START_TEST(test_cache_keeps)
{
	uint32_t ss = tu_sector(_i);
	uint64_t size;
	uint8_t *ref = padded_copy(cache_src, CACHE_LEN, ss, &size);
	struct counting *cnt = g_new0(struct counting, 1);
	cnt->base.ops = &counting_ops;
	cnt->base.source = g_strdup("(counting)");
	cnt->inner = tm_block_mem_new(cache_src, CACHE_LEN, ss);
	struct tm_block *c = tm_block_cache_new(&cnt->base, 64u << 20);
	uint8_t *buf = g_malloc(size);
	struct tm_block_error err;

	/* a sequential pass in small reads: every byte read from the device about once, in
	 * far fewer requests than reads (chunks and readahead) */
	for (uint64_t off = 0; off < size; off += 4096) {
		size_t len = 4096 < size - off ? 4096 : (size_t)(size - off);
		ck_assert_int_eq(tm_block_pread(c, buf + off, len, off, &err), 0);
	}
	ck_assert(memcmp(buf, ref, size) == 0);
	ck_assert_msg(cnt->bytes >= (gint64)size && cnt->bytes <= 2 * (gint64)size,
		      "%lld bytes read from the device for %llu", (long long)cnt->bytes,
		      (unsigned long long)size);
	ck_assert_msg(cnt->reads * 16 <= (gint)(size / 4096), "%d device reads for %llu reads",
		      cnt->reads, (unsigned long long)(size / 4096));

	/* all of it fits: a second pass, in any order, reads nothing from the device */
	gint64 before = cnt->bytes;
	for (uint64_t off = size; off > 0;) {
		size_t len = off < 5000 ? (size_t)off : 5000;
		off -= len;
		ck_assert_int_eq(tm_block_pread(c, buf, len, off, &err), 0);
		ck_assert(memcmp(buf, ref + off, len) == 0);
	}
	ck_assert_msg(cnt->bytes == before, "second pass read %lld bytes from the device",
		      (long long)(cnt->bytes - before));
	g_free(buf);
	tm_block_disconnect(c);
	g_free(ref);
}
END_TEST

Suite *window_suite(void)
{
	Suite *s = suite_create("window");
	TCase *tc = tcase_create("window");
	tcase_add_loop_test(tc, test_window_offsets, 0, 2);
	tcase_add_loop_test(tc, test_window_stacked, 0, 2);
	tcase_add_loop_test(tc, test_window_past_end, 0, 2);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("partition");
	tcase_add_loop_test(tc, test_mbr_primary, 0, 2);
	tcase_add_test(tc, test_mbr_logical);
	tcase_add_loop_test(tc, test_gpt, 0, 4);
	tcase_add_test(tc, test_gpt_past_end);
	tcase_add_loop_test(tc, test_no_table, 0, 2);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("cache");
	tcase_add_checked_fixture(tc, cache_setup, cache_teardown);
	tcase_add_loop_test(tc, test_cache_threads_random, 0, 2 * (int)G_N_ELEMENTS(cache_sizes));
	tcase_add_loop_test(tc, test_cache_sequential, 0, 2 * (int)G_N_ELEMENTS(cache_sizes));
	tcase_add_loop_test(tc, test_cache_keeps, 0, 2);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
