/* libFuzzer target: pax extended header records (tm_pax_parse, tm_pax_parse_time).
 *
 * The input is parsed as it is into a fresh tm_pax, then a second time on top of the first
 * (every key replaced), then cleared.  Since a mutated length prefix ends most inputs at
 * the first record, the input is also read as lines "KEY=VALUE" and re-framed into records
 * with correct lengths, so that the mutations reach the keys' handlers.  Finally the input,
 * as a string of its exact length, goes to tm_pax_parse_time and is checked against a
 * reference. */
#include "config.h"

#include "fuzz_common.h"

static void check_str(const char *s, enum tm_pax_state st, const char *what)
{
	FZ_CHECK((s != NULL) == (st == TM_PAX_SET), "%s: state %d with value %p", what, st,
		 (const void *)s);
}

static void check_pax(const struct tm_pax *p)
{
	check_str(p->path, p->path_s, "path");
	check_str(p->linkpath, p->linkpath_s, "linkpath");
	check_str(p->uname, p->uname_s, "uname");
	check_str(p->gname, p->gname_s, "gname");
	FZ_CHECK(p->size_s != TM_PAX_SET || p->size >= 0, "negative size");
	FZ_CHECK(p->uid_s != TM_PAX_SET || p->uid >= 0, "negative uid");
	FZ_CHECK(p->gid_s != TM_PAX_SET || p->gid >= 0, "negative gid");
	FZ_CHECK(p->mtime.nsec < 1000000000u && p->atime.nsec < 1000000000u &&
			 p->ctime.nsec < 1000000000u,
		 "nanoseconds out of range");
	FZ_CHECK(p->sparse_major >= 0 && p->sparse_major <= 1000 && p->sparse_minor >= 0 &&
			 p->sparse_minor <= 1000,
		 "sparse version %d.%d", p->sparse_major, p->sparse_minor);
	if (p->xattrs) {
		/* Later records for a name replace earlier ones: names are unique. */
		GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);
		for (guint i = 0; i < p->xattrs->len; i++) {
			const struct tm_pax_xattr *x = g_ptr_array_index(p->xattrs, i);
			FZ_CHECK(x && x->name && x->value, "xattr %u incomplete", i);
			FZ_CHECK(g_hash_table_add(seen, x->name), "xattr '%s' twice", x->name);
			gsize n;
			const uint8_t *v = g_bytes_get_data(x->value, &n);
			volatile unsigned t = 0;
			for (gsize k = 0; k < n; k++)
				t += v[k];
			(void)t;
		}
		g_hash_table_destroy(seen);
	}
	if (p->sparse_map)
		for (guint i = 0; i < p->sparse_map->len; i++)
			(void)g_array_index(p->sparse_map, struct tm_tar_sparse_chunk, i).length;
}

static void parse_checked(const uint8_t *data, size_t len, struct tm_pax *p)
{
	char err[TM_TAR_ERRLEN];
	memset(err, 'x', sizeof err);
	/* An exact-size copy: a read past the header is an ASan report. */
	uint8_t *copy = g_memdup2(data, len);
	if (!tm_pax_parse(copy, len, p, err))
		fz_check_err(err, sizeof err);
	g_free(copy);
	check_pax(p);
}

static size_t digits(size_t n)
{
	size_t d = 1;
	while (n >= 10)
		n /= 10, d++;
	return d;
}

/* Lines "KEY=VALUE" (split at '\n') as records "LEN KEY=VALUE\n" with LEN right. */
static GByteArray *reframe(const uint8_t *data, size_t size)
{
	GByteArray *out = g_byte_array_new();
	size_t at = 0;
	while (at < size) {
		const uint8_t *nl = memchr(data + at, '\n', size - at);
		size_t n = nl ? (size_t)(nl - (data + at)) : size - at;
		size_t len = n + 3;
		while (n + 2 + digits(len) != len)
			len = n + 2 + digits(len);
		char num[32];
		int k = snprintf(num, sizeof num, "%zu ", len);
		g_byte_array_append(out, (const guint8 *)num, (guint)k);
		g_byte_array_append(out, data + at, (guint)n);
		g_byte_array_append(out, (const guint8 *)"\n", 1);
		at += n + 1;
	}
	return out;
}

/* tm_pax_parse_time against a reference: "[-]DIGITS[.DIGITS]", truncated to ns. */
static void check_time(const uint8_t *data, size_t size)
{
	char *s = g_memdup2(data, size); /* not NUL-terminated: len is the contract */
	struct tm_pax_time t = { 0x5a5a, 0x5a5a };
	bool got = tm_pax_parse_time(s, size, &t);

	size_t i = 0;
	bool neg = i < size && s[i] == '-';
	i += neg;
	bool valid = i < size && s[i] >= '0' && s[i] <= '9';
	__int128 sec = 0;
	bool small = true;
	for (; i < size && s[i] >= '0' && s[i] <= '9'; i++) {
		sec = sec * 10 + (s[i] - '0');
		if (sec > (__int128)1 << 62)
			small = false, sec = (__int128)1 << 62;
	}
	uint32_t frac = 0;
	if (i < size && s[i] == '.') {
		int d = 0;
		for (i++; i < size && s[i] >= '0' && s[i] <= '9'; i++, d++)
			if (d < 9)
				frac = frac * 10 + (uint32_t)(s[i] - '0');
		for (; d < 9; d++)
			frac *= 10;
	}
	valid = valid && i == size;
	if (got) {
		FZ_CHECK(valid, "tm_pax_parse_time accepted a malformed value");
		FZ_CHECK(t.nsec < 1000000000u, "nsec %u", t.nsec);
		__int128 want_ns = (neg ? -1 : 1) * (sec * 1000000000 + frac);
		__int128 got_ns = (__int128)t.sec * 1000000000 + t.nsec;
		FZ_CHECK(!small || want_ns == got_ns, "tm_pax_parse_time: %lld.%09u",
			 (long long)t.sec, t.nsec);
	} else {
		FZ_CHECK(!valid || !small, "tm_pax_parse_time refused a valid value");
	}
	g_free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tm_pax p;
	tm_pax_init(&p);
	parse_checked(data, size, &p);
	parse_checked(data, size, &p);
	tm_pax_clear(&p);

	GByteArray *recs = reframe(data, size);
	tm_pax_init(&p);
	parse_checked(recs->data, recs->len, &p);
	/* A second header on top, as a global one under a local one: the second half. */
	size_t half = recs->len / 2;
	const uint8_t *nl = recs->len ? memchr(recs->data + half, '\n', recs->len - half) : NULL;
	if (nl)
		parse_checked(nl + 1, recs->len - (size_t)(nl + 1 - recs->data), &p);
	tm_pax_clear(&p);
	g_byte_array_unref(recs);

	check_time(data, size);
	return 0;
}
