/* libFuzzer target: the header block decoders (tm_tar_header_decode, tm_tar_number,
 * tm_tar_sparse_ext_decode).
 *
 * The input is cut or zero-padded to one 512-byte block and decoded as it is, then again
 * with its checksum field made right (so that the fields behind the checksum test get
 * fuzzed too).  tm_tar_number runs over slices of the input and is compared with a plain
 * reference decoder written from its contract in tar.h. */
#include "config.h"

#include "fuzz_common.h"

/* The contract of tm_tar_number, done the long way: octal after leading spaces/NULs and
 * before trailing spaces/NULs, or base-256 with a 0x80 (positive) or 0xff (negative) first
 * byte; false past int64_t. */
static bool ref_number(const uint8_t *f, size_t len, int64_t *out)
{
	if (len == 0)
		return false;
	if (f[0] == 0x80) {
		/* Big-endian after the marker byte. */
		__int128 v = 0;
		for (size_t i = 1; i < len; i++) {
			v = v * 256 + f[i];
			if (v > INT64_MAX)
				return false;
		}
		*out = (int64_t)v;
		return true;
	}
	if (f[0] == 0xff) {
		/* Two's complement over the whole field: the value is -(c + 1), c being the
		 * field with every bit flipped. */
		__int128 c = 0;
		for (size_t i = 0; i < len; i++) {
			c = c * 256 + (0xff ^ f[i]);
			if (c > INT64_MAX)
				return false;
		}
		*out = (int64_t)(-(c + 1));
		return true;
	}
	if (f[0] & 0x80)
		return false;
	size_t i = 0;
	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	__int128 v = 0;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		v = v * 8 + (f[i] - '0');
		if (v > INT64_MAX)
			return false;
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	*out = (int64_t)v;
	return true;
}

static void check_number(const uint8_t *f, size_t len)
{
	/* A private copy of exactly len bytes: a read past the field is an ASan report. */
	uint8_t *copy = g_memdup2(f, len);
	int64_t got = 0x5a5a, want = 0x5a5a;
	bool g = tm_tar_number(copy, len, &got), r = ref_number(copy, len, &want);
	FZ_CHECK(g == r, "tm_tar_number says %s, the reference %s (len %zu, first byte %02x)",
		 g ? "valid" : "invalid", r ? "valid" : "invalid", len, len ? copy[0] : 0);
	if (g)
		FZ_CHECK(got == want, "tm_tar_number: %lld, the reference %lld (len %zu)",
			 (long long)got, (long long)want, len);
	g_free(copy);
}

static void check_header(const struct tm_tar_header *h, enum tm_tar_hdr_status st,
			 const char *err)
{
	if (st == TM_TAR_HDR_BAD_CHECKSUM || st == TM_TAR_HDR_BAD_FIELD) {
		fz_check_err(err, TM_TAR_ERRLEN);
		return;
	}
	if (st != TM_TAR_HDR_OK)
		return;
	FZ_CHECK(strnlen(h->name, sizeof h->name) < sizeof h->name, "name not terminated");
	FZ_CHECK(strnlen(h->linkname, sizeof h->linkname) < sizeof h->linkname,
		 "linkname not terminated");
	FZ_CHECK(strnlen(h->uname, sizeof h->uname) < sizeof h->uname, "uname not terminated");
	FZ_CHECK(strnlen(h->gname, sizeof h->gname) < sizeof h->gname, "gname not terminated");
	FZ_CHECK(h->nsparse >= 0 && h->nsparse <= 4, "nsparse %d", h->nsparse);
	for (int i = 0; i < h->nsparse; i++)
		FZ_CHECK((int64_t)h->sparse[i].offset >= 0 && (int64_t)h->sparse[i].length >= 0,
			 "negative sparse entry");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *blk = g_malloc0(TM_TAR_BLOCK);
	memcpy(blk, data, size < TM_TAR_BLOCK ? size : TM_TAR_BLOCK);
	struct tm_tar_header h;
	char err[TM_TAR_ERRLEN];

	memset(err, 'x', sizeof err);
	enum tm_tar_hdr_status st = tm_tar_header_decode(blk, &h, err);
	check_header(&h, st, err);

	fz_fix_checksum(blk);
	memset(err, 'x', sizeof err);
	st = tm_tar_header_decode(blk, &h, err);
	FZ_CHECK(st != TM_TAR_HDR_BAD_CHECKSUM, "a block with a correct unsigned sum refused");
	check_header(&h, st, err);

	/* As an old GNU sparse extension block. */
	GArray *map = g_array_new(FALSE, FALSE, sizeof(struct tm_tar_sparse_chunk));
	bool more = false;
	memset(err, 'x', sizeof err);
	if (tm_tar_sparse_ext_decode(blk, map, &more, err))
		FZ_CHECK(map->len <= 21, "%u chunks from one extension block", map->len);
	else
		fz_check_err(err, TM_TAR_ERRLEN);
	g_array_unref(map);
	g_free(blk);

	/* Numbers: every field width the format uses, at a few places, and the whole input
	 * up to 24 bytes. */
	static const size_t widths[] = { 1, 2, 7, 8, 11, 12, 13, 24 };
	for (size_t wi = 0; wi < G_N_ELEMENTS(widths); wi++)
		for (size_t at = 0; at + widths[wi] <= size && at < 64; at += 9)
			check_number(data + at, widths[wi]);
	check_number(data, size < 24 ? size : 24);
	return 0;
}
