/* Checking a loaded index as it is read: page checksums verified on first touch, damage
 * marked and told once.  See index_check.h. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "index_check.h"

uint64_t tm_index_hash(const void *data, size_t len)
{
	const uint8_t *p = data;
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h[4] = { 1, 2, 3, (uint64_t)len };
	size_t i = 0;
	for (; i + 32 <= len; i += 32)
		for (int l = 0; l < 4; l++) {
			uint64_t w;
			memcpy(&w, p + i + 8 * l, 8);
			h[l] = (h[l] ^ w) * k;
			h[l] ^= h[l] >> 29;
		}
	uint64_t r = h[0] ^ (h[1] << 1) ^ (h[2] << 2) ^ (h[3] << 3);
	for (; i < len; i++)
		r = (r ^ p[i]) * k;
	return r ^ r >> 31;
}

uint64_t tm_index_page_sum(const void *data, size_t len, uint64_t page)
{
	uint64_t h = tm_index_hash(data, len) ^ (page + 1) * 0xc2b2ae3d27d4eb4full;
	return h ^ h >> 33;
}

static const char *const section_name[TM_SEC_COUNT] = {
	[TM_SEC_INODES] = "inodes", [TM_SEC_DENTRIES] = "entries", [TM_SEC_CHILDREN] = "children",
	[TM_SEC_STRINGS] = "names", [TM_SEC_AUX] = "sparse maps and xattrs",
	[TM_SEC_PARENTS] = "parents", [TM_SEC_SEEK] = "seek table", [TM_SEC_SOURCE] = "source",
};

void tm_index_damage(const struct tm_index *idx, const char *fmt, ...)
{
	struct tm_index_lazy *z = idx->lazy;
	if (!z || __atomic_exchange_n(&z->damaged, 1, __ATOMIC_ACQ_REL))
		return;
	if (!z->hook)
		return;
	char why[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	z->hook(z->hook_ud, why);
}

/* Hash page p; mark it checked when right. */
static bool page_ok(const struct tm_index *idx, uint64_t p)
{
	struct tm_index_lazy *z = idx->lazy;
	uint64_t at = z->data_start + (p << z->shift);
	uint64_t len = MIN((uint64_t)1 << z->shift, z->file_size - at);
	if (tm_index_page_sum(z->file + at, len, p) != z->sums[p]) {
		const char *what = "padding";
		for (int s = 0; s < TM_SEC_COUNT; s++)
			if (z->len[s] && z->off[s] < at + len && at < z->off[s] + z->len[s])
				what = section_name[s];
		tm_index_damage(idx, "page %llu of %llu (%s) fails its checksum",
				(unsigned long long)p, (unsigned long long)z->npages, what);
		return false;
	}
	__atomic_fetch_or(&z->verified[p / 64], 1ull << (p % 64), __ATOMIC_RELEASE);
	return true;
}

bool tm_index_span_ok(const struct tm_index *idx, enum tm_index_section sec, uint64_t off,
		      uint64_t len)
{
	struct tm_index_lazy *z = idx->lazy;
	if (!z)
		return true;
	uint64_t at = z->off[sec] + off - z->data_start;
	for (uint64_t p = at >> z->shift, last = (at + len - 1) >> z->shift; p <= last; p++) {
		uint64_t word = __atomic_load_n(&z->verified[p / 64], __ATOMIC_ACQUIRE);
		if (!(word >> (p % 64) & 1) && !page_ok(idx, p))
			return false;
	}
	return true;
}

bool tm_index_pages_ok(const struct tm_index *idx)
{
	bool ok = true;
	for (uint64_t p = 0; idx->lazy && p < idx->lazy->npages; p++)
		ok = page_ok(idx, p) && ok;
	return ok;
}
