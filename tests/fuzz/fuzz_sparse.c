/* libFuzzer target: GNU sparse maps (tm_sparse_parse_list, tm_sparse_parse_v1,
 * tm_sparse_validate).
 *
 * Input: 17 bytes of sizes (logical size, stored size, both little-endian 64-bit, shifted
 * right by the 17th byte's low 6 bits so that small sizes are common), then the payload,
 * read both as a 0.1 map string ("off,len,...") and as a 1.0 map ("count\noff\nlen\n...").
 * Each map is validated against the sizes and against the sizes it implies, and compared
 * with a reference validator; maps are converted between the two notations and must
 * round-trip; a prefix of a 1.0 map must parse as "need more" or as the same map. */
#include "config.h"

#include "fuzz_common.h"

typedef struct tm_tar_sparse_chunk chunk;

/* The contract of tm_sparse_validate, from tar.h. */
static bool ref_validate(const GArray *map, uint64_t logical, uint64_t stored)
{
	__int128 next = 0, total = 0;
	for (guint i = 0; i < map->len; i++) {
		const chunk *c = &g_array_index(map, chunk, i);
		if ((__int128)c->offset < next)
			return false;
		if ((__int128)c->offset + c->length > logical)
			return false;
		next = (__int128)c->offset + c->length;
		total += c->length;
	}
	return total == stored;
}

static void check_validate(const GArray *map, uint64_t logical, uint64_t stored)
{
	char err[TM_TAR_ERRLEN];
	memset(err, 'x', sizeof err);
	bool got = tm_sparse_validate(map, logical, stored, err);
	if (!got)
		fz_check_err(err, sizeof err);
	FZ_CHECK(got == ref_validate(map, logical, stored),
		 "tm_sparse_validate says %s for %u chunks, logical %llu, stored %llu",
		 got ? "valid" : "invalid", map->len, (unsigned long long)logical,
		 (unsigned long long)stored);
}

/* Validate against the given sizes, and against the ones the map implies (its end and its
 * total), so that the order and bounds checks are reached. */
static void check_map(const GArray *map, uint64_t logical, uint64_t stored)
{
	check_validate(map, logical, stored);
	uint64_t end = 0, total = 0;
	for (guint i = 0; i < map->len; i++) {
		const chunk *c = &g_array_index(map, chunk, i);
		if (c->offset + c->length >= c->offset && c->offset + c->length > end)
			end = c->offset + c->length;
		total += c->length;
	}
	check_validate(map, end, total);
}

static bool same_map(const GArray *a, const GArray *b)
{
	return a->len == b->len &&
	       (!a->len || !memcmp(a->data, b->data, (size_t)a->len * sizeof(chunk)));
}

static char *to_list(const GArray *map)
{
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < map->len; i++) {
		const chunk *c = &g_array_index(map, chunk, i);
		g_string_append_printf(s, "%s%llu,%llu", i ? "," : "",
				       (unsigned long long)c->offset,
				       (unsigned long long)c->length);
	}
	return g_string_free(s, FALSE);
}

static GByteArray *to_v1(const GArray *map)
{
	GString *s = g_string_new(NULL);
	g_string_append_printf(s, "%u\n", map->len);
	for (guint i = 0; i < map->len; i++) {
		const chunk *c = &g_array_index(map, chunk, i);
		g_string_append_printf(s, "%llu\n%llu\n", (unsigned long long)c->offset,
				       (unsigned long long)c->length);
	}
	gsize n = s->len;
	return g_byte_array_new_take((guint8 *)g_string_free(s, FALSE), n);
}

/* tm_sparse_parse_v1 over an exact-size copy of data[0..len). */
static int parse_v1(const uint8_t *data, size_t len, GArray *map, size_t *consumed)
{
	char err[TM_TAR_ERRLEN];
	memset(err, 'x', sizeof err);
	uint8_t *copy = g_memdup2(data, len);
	*consumed = 0x5a5a5a5a;
	int rc = tm_sparse_parse_v1(copy, len, map, consumed, err);
	g_free(copy);
	FZ_CHECK(rc >= -1 && rc <= 1, "tm_sparse_parse_v1 returned %d", rc);
	if (rc < 0)
		fz_check_err(err, sizeof err);
	if (rc == 1)
		FZ_CHECK(*consumed % TM_TAR_BLOCK == 0 && *consumed > 0 &&
				 *consumed <= (len + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK,
			 "consumed %zu of %zu", *consumed, len);
	return rc;
}

static bool parse_list(const char *s, GArray *map)
{
	char err[TM_TAR_ERRLEN];
	memset(err, 'x', sizeof err);
	bool ok = tm_sparse_parse_list(s, map, err);
	if (!ok)
		fz_check_err(err, sizeof err);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[17] = { 0 };
	memcpy(hdr, data, size < sizeof hdr ? size : sizeof hdr);
	const uint8_t *payload = size > sizeof hdr ? data + sizeof hdr : data + size;
	size_t plen = size > sizeof hdr ? size - sizeof hdr : 0;
	unsigned shift = hdr[16] & 63;
	uint64_t logical = fz_le64(hdr) >> shift, stored = fz_le64(hdr + 8) >> shift;

	GArray *a = g_array_new(FALSE, FALSE, sizeof(chunk));
	GArray *b = g_array_new(FALSE, FALSE, sizeof(chunk));

	/* 0.1: a NUL-terminated copy of the payload. */
	char *s = g_malloc(plen + 1);
	memcpy(s, payload, plen);
	s[plen] = '\0';
	if (parse_list(s, a)) {
		check_map(a, logical, stored);
		char *again = to_list(a);
		g_array_set_size(b, 0);
		FZ_CHECK(parse_list(again, b) && same_map(a, b), "0.1 map does not round-trip");
		g_free(again);
		GByteArray *v1 = to_v1(a);
		size_t consumed;
		FZ_CHECK(parse_v1(v1->data, v1->len, b, &consumed) == 1 && same_map(a, b),
			 "0.1 map written as 1.0 does not parse back");
		g_byte_array_unref(v1);
	}
	g_free(s);

	/* 1.0: the payload itself, and prefixes of it. */
	size_t consumed, pconsumed;
	g_array_set_size(a, 0);
	int rc = parse_v1(payload, plen, a, &consumed);
	if (rc == 1) {
		check_map(a, logical, stored);
		char *list = to_list(a);
		g_array_set_size(b, 0);
		FZ_CHECK(parse_list(list, b) && same_map(a, b), "1.0 map written as 0.1 differs");
		g_free(list);
	}
	size_t cuts[] = { plen / 2, plen ? plen - 1 : 0, plen / 3 };
	for (size_t i = 0; i < G_N_ELEMENTS(cuts); i++) {
		int prc = parse_v1(payload, cuts[i], b, &pconsumed);
		if (prc == 1)
			FZ_CHECK(rc == 1 && pconsumed == consumed && same_map(a, b),
				 "a %zu-byte prefix is a whole map, the %zu bytes are not the same",
				 cuts[i], plen);
		if (rc == 0)
			FZ_CHECK(prc == 0, "a prefix of an incomplete map parsed as %d", prc);
	}

	g_array_unref(a);
	g_array_unref(b);
	return 0;
}
