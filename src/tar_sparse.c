/* GNU sparse maps: the 0.1 map string, the 1.0 map stored in the data area, validation. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tar.h"

/* A map of more chunks than this is refused rather than allocated. */
#define SPARSE_MAX_CHUNKS (16u * 1024 * 1024)

static bool parse_u64(const char **s, const char *end, char stop, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (p == end || *p < '0' || *p > '9')
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p < end && *p != stop)
		return false;
	*s = p < end ? p + 1 : p;
	*out = v;
	return true;
}

bool tm_sparse_parse_list(const char *s, GArray *map, char err[TM_TAR_ERRLEN])
{
	const char *p = s, *end = s + strlen(s);
	while (p < end) {
		uint64_t off, len;
		if (!parse_u64(&p, end, ',', &off) || p >= end || !parse_u64(&p, end, ',', &len)) {
			snprintf(err, TM_TAR_ERRLEN, "bad GNU.sparse.map near byte %zu",
				 (size_t)(p - s));
			return false;
		}
		if (map->len >= SPARSE_MAX_CHUNKS) {
			snprintf(err, TM_TAR_ERRLEN, "sparse map too long");
			return false;
		}
		struct tm_tar_sparse_chunk c = { off, len };
		g_array_append_val(map, c);
	}
	return true;
}

/* One newline-terminated decimal number from data[*pos..len): 1 ok, 0 need more, -1 bad. */
static int v1_number(const uint8_t *data, size_t len, size_t *pos, uint64_t *out)
{
	size_t i = *pos;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < len && data[i] != '\n'; i++, digits++) {
		if (data[i] < '0' || data[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(data[i] - '0');
	}
	if (i == len)
		return 0;
	if (digits == 0)
		return -1;
	*pos = i + 1;
	*out = v;
	return 1;
}

int tm_sparse_parse_v1(const uint8_t *data, size_t len, GArray *map, size_t *consumed,
		       char err[TM_TAR_ERRLEN])
{
	size_t pos = 0;
	uint64_t count;
	g_array_set_size(map, 0);
	int rc = v1_number(data, len, &pos, &count);
	if (rc <= 0)
		goto out;
	if (count > SPARSE_MAX_CHUNKS) {
		snprintf(err, TM_TAR_ERRLEN, "sparse map of %llu chunks is too long",
			 (unsigned long long)count);
		return -1;
	}
	for (uint64_t i = 0; i < count; i++) {
		struct tm_tar_sparse_chunk c;
		if ((rc = v1_number(data, len, &pos, &c.offset)) <= 0 ||
		    (rc = v1_number(data, len, &pos, &c.length)) <= 0)
			goto out;
		g_array_append_val(map, c);
	}
	*consumed = (pos + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK;
	return 1;
out:
	if (rc < 0)
		snprintf(err, TM_TAR_ERRLEN, "bad sparse map in the data area near byte %zu", pos);
	return rc;
}

bool tm_sparse_validate(const GArray *map, uint64_t logical_size, uint64_t stored,
			char err[TM_TAR_ERRLEN])
{
	uint64_t next = 0, total = 0;
	for (guint i = 0; i < map->len; i++) {
		const struct tm_tar_sparse_chunk *c =
			&g_array_index(map, struct tm_tar_sparse_chunk, i);
		if (c->offset < next) {
			snprintf(err, TM_TAR_ERRLEN, "sparse chunk %u is out of order or overlaps", i);
			return false;
		}
		if (c->offset > logical_size || c->length > logical_size - c->offset) {
			snprintf(err, TM_TAR_ERRLEN, "sparse chunk %u ends past the file's size", i);
			return false;
		}
		next = c->offset + c->length;
		total += c->length;
	}
	if (total != stored) {
		snprintf(err, TM_TAR_ERRLEN,
			 "sparse map holds %llu bytes but the member stores %llu",
			 (unsigned long long)total, (unsigned long long)stored);
		return false;
	}
	return true;
}
