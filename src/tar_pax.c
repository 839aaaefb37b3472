/* pax extended header records (POSIX.1-2001 'x' and 'g'), with the vendor keys that GNU tar,
 * libarchive and star write. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar.h"

/* Longest pax header we accept; GNU tar's own limit is far below this. */
#define PAX_RECORD_MAX (64u * 1024 * 1024)

static void xattr_free(gpointer p)
{
	struct tm_pax_xattr *x = p;
	g_free(x->name);
	g_bytes_unref(x->value);
	g_free(x);
}

void tm_pax_init(struct tm_pax *p)
{
	memset(p, 0, sizeof *p);
	p->sparse_size = -1;
}

void tm_pax_clear(struct tm_pax *p)
{
	g_free(p->path);
	g_free(p->linkpath);
	g_free(p->uname);
	g_free(p->gname);
	g_free(p->sparse_name);
	if (p->xattrs)
		g_ptr_array_unref(p->xattrs);
	if (p->xattr_names)
		g_hash_table_destroy(p->xattr_names);
	if (p->sparse_map)
		g_array_unref(p->sparse_map);
	tm_pax_init(p);
}

bool tm_pax_parse_time(const char *s, size_t len, struct tm_pax_time *t)
{
	size_t i = 0;
	bool neg = false;
	if (i < len && s[i] == '-')
		neg = true, i++;
	if (i == len || s[i] < '0' || s[i] > '9')
		return false;
	int64_t sec = 0;
	for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		if (sec > (INT64_MAX - 9) / 10)
			return false;
		sec = sec * 10 + (s[i] - '0');
	}
	uint32_t nsec = 0;
	if (i < len && s[i] == '.') {
		i++;
		int digits = 0;
		for (; i < len && s[i] >= '0' && s[i] <= '9'; i++, digits++)
			if (digits < 9)
				nsec = nsec * 10 + (uint32_t)(s[i] - '0');
		for (; digits < 9; digits++)
			nsec *= 10;
	}
	if (i != len)
		return false;
	/* "-1.5" is 1.5 s before the epoch: -2 s + 0.5 s. */
	if (neg && nsec) {
		sec = -sec - 1;
		nsec = 1000000000u - nsec;
	} else if (neg) {
		sec = -sec;
	}
	t->sec = sec;
	t->nsec = nsec;
	return true;
}

static bool parse_int(const char *s, size_t len, bool allow_neg, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	if (allow_neg && i < len && s[i] == '-')
		neg = true, i++;
	if (i == len)
		return false;
	uint64_t v = 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > ((uint64_t)INT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = neg ? -(int64_t)v : (int64_t)v;
	return true;
}

static void set_string(char **dst, enum tm_pax_state *state, const char *v, size_t len)
{
	g_free(*dst);
	*dst = NULL;
	if (len == 0) {
		*state = TM_PAX_DELETED;
		return;
	}
	*dst = g_strndup(v, len);
	*state = TM_PAX_SET;
}

/* URL-decode s[0..len) ("%XX" escapes), as libarchive encodes xattr names. */
static char *url_decode(const char *s, size_t len)
{
	GString *out = g_string_sized_new(len);
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len && g_ascii_isxdigit(s[i + 1]) &&
		    g_ascii_isxdigit(s[i + 2])) {
			g_string_append_c(out, (char)(g_ascii_xdigit_value(s[i + 1]) << 4 |
						      g_ascii_xdigit_value(s[i + 2])));
			i += 2;
		} else {
			g_string_append_c(out, s[i]);
		}
	}
	return g_string_free(out, FALSE);
}

/* A later record for the same name replaces an earlier one.  libarchive writes each xattr
 * as LIBARCHIVE.xattr.NAME (URL-encoded, base64 value) and SCHILY.xattr.NAME; for a
 * non-ASCII name the SCHILY copy keeps the URL-encoding, and bsdtar 3.6 then extracts both
 * names: so do we. */
static void add_xattr(struct tm_pax *p, char *name, GBytes *value)
{
	if (!p->xattrs) {
		p->xattrs = g_ptr_array_new_with_free_func(xattr_free);
		p->xattr_names = g_hash_table_new(g_str_hash, g_str_equal); /* keys: x->name */
	}
	guint at = GPOINTER_TO_UINT(g_hash_table_lookup(p->xattr_names, name));
	if (at) {
		struct tm_pax_xattr *x = g_ptr_array_index(p->xattrs, at - 1);
		g_free(name);
		g_bytes_unref(x->value);
		x->value = value;
		return;
	}
	struct tm_pax_xattr *x = g_new(struct tm_pax_xattr, 1);
	x->name = name;
	x->value = value;
	g_ptr_array_add(p->xattrs, x);
	g_hash_table_insert(p->xattr_names, x->name, GUINT_TO_POINTER(p->xattrs->len));
}

/* LIBARCHIVE.xattr.NAME: NAME is URL-encoded, the value base64. */
static bool add_libarchive_xattr(struct tm_pax *p, const char *k, size_t klen, const char *v,
				 size_t vlen)
{
	char *name = url_decode(k, klen);
	/* g_base64_decode needs a NUL-terminated string and accepts garbage silently: check
	 * the alphabet first. */
	for (size_t i = 0; i < vlen; i++)
		if (!g_ascii_isalnum(v[i]) && v[i] != '+' && v[i] != '/' && v[i] != '=') {
			g_free(name);
			return false;
		}
	/* libarchive leaves out the '=' padding, which g_base64_decode needs. */
	char *tmp = g_malloc(vlen + 4);
	memcpy(tmp, v, vlen);
	size_t padded = vlen;
	while (padded % 4)
		tmp[padded++] = '=';
	tmp[padded] = '\0';
	gsize n = 0;
	guchar *raw = vlen ? g_base64_decode(tmp, &n) : g_malloc0(1);
	g_free(tmp);
	add_xattr(p, name, g_bytes_new_take(raw, n));
	return true;
}

static bool key_is(const char *k, size_t klen, const char *lit)
{
	return klen == strlen(lit) && !memcmp(k, lit, klen);
}

static bool key_prefix(const char *k, size_t klen, const char *lit)
{
	size_t n = strlen(lit);
	return klen > n && !memcmp(k, lit, n);
}

static void sparse_append(struct tm_pax *p, uint64_t off, uint64_t len)
{
	if (!p->sparse_map)
		p->sparse_map = g_array_new(FALSE, FALSE, sizeof(struct tm_tar_sparse_chunk));
	struct tm_tar_sparse_chunk c = { off, len };
	g_array_append_val(p->sparse_map, c);
}

/* "bad value for pax key 'KEY'", the key cut to 64 bytes and its control bytes shown as
 * '?', so that the message stays one line. */
static void bad_value(char *err, const char *k, size_t klen)
{
	char key[65];
	size_t n = klen < 64 ? klen : 64;
	for (size_t i = 0; i < n; i++)
		key[i] = (unsigned char)k[i] < 0x20 || k[i] == 0x7f ? '?' : k[i];
	key[n] = '\0';
	snprintf(err, TM_TAR_ERRLEN, "bad value for pax key '%s'", key);
}

/* Apply one KEY=VALUE.  Returns false for a value that does not parse. */
static bool apply(struct tm_pax *p, const char *k, size_t klen, const char *v, size_t vlen,
		  char *err)
{
	int64_t n;
#define BAD() (bad_value(err, k, klen), false)
#define NUMERIC(field, state, neg)                                                           \
	do {                                                                                  \
		if (vlen == 0) {                                                              \
			p->state = TM_PAX_DELETED;                                            \
			return true;                                                          \
		}                                                                             \
		if (!parse_int(v, vlen, neg, &n))                                             \
			return BAD();                                                         \
		p->field = n;                                                                 \
		p->state = TM_PAX_SET;                                                        \
		return true;                                                                  \
	} while (0)

	if (key_is(k, klen, "path"))
		return set_string(&p->path, &p->path_s, v, vlen), true;
	if (key_is(k, klen, "linkpath"))
		return set_string(&p->linkpath, &p->linkpath_s, v, vlen), true;
	if (key_is(k, klen, "uname"))
		return set_string(&p->uname, &p->uname_s, v, vlen), true;
	if (key_is(k, klen, "gname"))
		return set_string(&p->gname, &p->gname_s, v, vlen), true;
	if (key_is(k, klen, "size"))
		NUMERIC(size, size_s, false);
	if (key_is(k, klen, "uid"))
		NUMERIC(uid, uid_s, false);
	if (key_is(k, klen, "gid"))
		NUMERIC(gid, gid_s, false);
	if (key_is(k, klen, "SCHILY.devmajor"))
		NUMERIC(devmajor, devmajor_s, false);
	if (key_is(k, klen, "SCHILY.devminor"))
		NUMERIC(devminor, devminor_s, false);
	if (key_is(k, klen, "mtime")) {
		if (vlen == 0)
			return p->mtime_s = TM_PAX_DELETED, true;
		if (!tm_pax_parse_time(v, vlen, &p->mtime))
			return BAD();
		p->mtime_s = TM_PAX_SET;
		return true;
	}
	if (key_is(k, klen, "atime") || key_is(k, klen, "ctime")) {
		bool a = k[0] == 'a';
		if (vlen == 0)
			return true;
		if (!tm_pax_parse_time(v, vlen, a ? &p->atime : &p->ctime))
			return BAD();
		*(a ? &p->has_atime : &p->has_ctime) = true;
		return true;
	}
	if (key_prefix(k, klen, "SCHILY.xattr.")) {
		size_t pre = strlen("SCHILY.xattr.");
		add_xattr(p, g_strndup(k + pre, klen - pre), g_bytes_new(v, vlen));
		return true;
	}
	if (key_prefix(k, klen, "LIBARCHIVE.xattr.")) {
		size_t pre = strlen("LIBARCHIVE.xattr.");
		return add_libarchive_xattr(p, k + pre, klen - pre, v, vlen) || BAD();
	}
	if (key_prefix(k, klen, "GNU.sparse.")) {
		const char *sk = k + strlen("GNU.sparse.");
		size_t sklen = klen - strlen("GNU.sparse.");
		p->sparse = true;
		if (key_is(sk, sklen, "name"))
			return g_free(p->sparse_name), p->sparse_name = g_strndup(v, vlen), true;
		if (key_is(sk, sklen, "map")) {
			char *s = g_strndup(v, vlen);
			if (p->sparse_map)
				g_array_set_size(p->sparse_map, 0);
			else
				p->sparse_map = g_array_new(FALSE, FALSE,
							    sizeof(struct tm_tar_sparse_chunk));
			bool ok = tm_sparse_parse_list(s, p->sparse_map, err);
			g_free(s);
			return ok;
		}
		if (!parse_int(v, vlen, false, &n))
			return BAD();
		if (key_is(sk, sklen, "size") || key_is(sk, sklen, "realsize"))
			p->sparse_size = n;
		else if (key_is(sk, sklen, "major"))
			p->sparse_major = (int)(n > 1000 ? 1000 : n);
		else if (key_is(sk, sklen, "minor"))
			p->sparse_minor = (int)(n > 1000 ? 1000 : n);
		else if (key_is(sk, sklen, "offset")) {
			/* 0.0: offset and numbytes alternate, in order. */
			if (p->sparse_pending_offset) {
				snprintf(err, TM_TAR_ERRLEN, "GNU.sparse.offset without numbytes");
				return false;
			}
			p->sparse_offset = (uint64_t)n;
			p->sparse_pending_offset = true;
		} else if (key_is(sk, sklen, "numbytes")) {
			if (!p->sparse_pending_offset) {
				snprintf(err, TM_TAR_ERRLEN, "GNU.sparse.numbytes without offset");
				return false;
			}
			sparse_append(p, p->sparse_offset, (uint64_t)n);
			p->sparse_pending_offset = false;
		}
		/* numblocks is implied by the map itself. */
		return true;
	}
	/* Unknown keys (comment, hdrcharset, other vendors' keys) are ignored, as POSIX
	 * allows. */
	return true;
#undef NUMERIC
#undef BAD
}

bool tm_pax_parse(const uint8_t *data, size_t len, struct tm_pax *p, char err[TM_TAR_ERRLEN])
{
	size_t pos = 0;
	while (pos < len) {
		const char *rec = (const char *)data + pos;
		size_t avail = len - pos;
		/* A GNU tar quirk: the header data is padded with NULs; stop at them. */
		if (rec[0] == '\0')
			break;
		size_t i = 0, reclen = 0;
		while (i < avail && rec[i] >= '0' && rec[i] <= '9') {
			reclen = reclen * 10 + (size_t)(rec[i] - '0');
			if (reclen > PAX_RECORD_MAX) {
				snprintf(err, TM_TAR_ERRLEN,
					 "pax record at byte %zu: length too large", pos);
				return false;
			}
			i++;
		}
		if (i == 0 || i >= avail || rec[i] != ' ') {
			snprintf(err, TM_TAR_ERRLEN, "pax record at byte %zu: bad length", pos);
			return false;
		}
		if (reclen > avail || reclen < i + 3) {
			snprintf(err, TM_TAR_ERRLEN,
				 "pax record at byte %zu: length %zu past the end of the header",
				 pos, reclen);
			return false;
		}
		if (rec[reclen - 1] != '\n') {
			snprintf(err, TM_TAR_ERRLEN,
				 "pax record at byte %zu: missing newline at its end", pos);
			return false;
		}
		const char *k = rec + i + 1;
		const char *end = rec + reclen - 1;
		const char *eq = memchr(k, '=', (size_t)(end - k));
		if (!eq || eq == k) {
			snprintf(err, TM_TAR_ERRLEN, "pax record at byte %zu: missing '='", pos);
			return false;
		}
		char detail[TM_TAR_ERRLEN];
		if (!apply(p, k, (size_t)(eq - k), eq + 1, (size_t)(end - eq - 1), detail)) {
			snprintf(err, TM_TAR_ERRLEN, "pax record at byte %zu: %.200s", pos, detail);
			return false;
		}
		pos += reclen;
	}
	return true;
}
