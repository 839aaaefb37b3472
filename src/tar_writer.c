/* Encoding tar members: header blocks, padding and the end-of-archive marker.
 *
 * Format policy
 * -------------
 * A member gets a plain POSIX ustar header ("ustar\0" "00") when every field fits one:
 *   path      ASCII, at most 100 bytes, or split at a '/' into a prefix of at most 155 bytes
 *             and a non-empty name of at most 100 (the longest prefix that works);
 *   linkpath  ASCII, at most 100 bytes;
 *   size      below 8 GiB (11 octal digits), uid and gid below 2^21, devmajor and devminor
 *             below 2^21 (7 octal digits);
 *   mtime     whole seconds, 0 ... 8^11 - 1;
 *   uname, gname  ASCII, at most 31 bytes (POSIX wants them NUL-terminated in their 32);
 * and it has no atime, ctime or xattrs.  Otherwise a pax extended header ('x') comes first,
 * carrying exactly the fields that do not fit, in this order: hdrcharset, path, linkpath,
 * size, uid, gid, uname, gname, mtime ("SEC[.FRACTION]", trailing zeros dropped; "-1.5" is
 * half a second before -1), atime, ctime, SCHILY.devmajor, SCHILY.devminor, then
 * SCHILY.xattr.NAME=VALUE for each xattr in the caller's order (values are raw bytes, which a
 * pax record's length prefix allows).  GNU base-256 numbers are never written: pax says the
 * same for every reader.  SCHILY.devmajor/devminor are star's keys, which bsdtar and our
 * reader take; GNU tar 1.34 (with a warning) and tarfile ignore them, but no Linux device
 * needs them (majors have 12 bits, minors 20).
 *
 * The ustar fields of a value that went to pax hold what GNU tar 1.34 puts there, so that a
 * reader without pax support still sees something close: names cut to their field (the
 * first 100 bytes of the path, no prefix; backed up so as not to split a UTF-8 character),
 * numbers 0 (GNU tar's substitute for an id or a size out of range), an mtime out of range 0
 * and one with a fraction its whole seconds.
 *
 * Names that are not ASCII go to pax whatever their length.  pax wants UTF-8; a path,
 * linkpath, uname or gname that is not valid UTF-8 is written as its raw bytes with a
 * "hdrcharset=BINARY" record first (POSIX's way to say so, and what bsdtar and Python's
 * tarfile write and read).  GNU tar 1.34 extracts those names right but says "Ignoring
 * unknown extended header keyword 'hdrcharset'"; without the record bsdtar 3.6 refuses the
 * name ("Pathname can't be converted from UTF-8"), which is worse.  xattr names must be UTF-8
 * (a pax keyword is; hdrcharset covers values only).
 *
 * The 'x' header is named "%d/PaxHeaders/%f" from the member's path alone (GNU tar's form
 * without the process id, so that output is deterministic), cut to 100 bytes; mode 0644,
 * owner 0, mtime the member's (clamped to the ustar range).  Directories are stored with a
 * trailing '/', as GNU tar writes them.  Numbers are zero-padded octal ended by a NUL; the
 * checksum is the unsigned byte sum with the field counted as spaces, written as 6 octal
 * digits, NUL, space.
 *
 * Appending
 * ---------
 * Every reader we test against stops at the first zero block where a header is due, so the
 * old archive stays whole while a new member is written over its end marker as long as the
 * block at the old end (the first of the two zero blocks) is written last: everything after
 * it (the rest of the new headers, data, padding, new end marker) is invisible until then.
 * The encoder only makes the bytes; ordering and flushing are the caller's.
 *
 * One more thing an appender should know: GNU tar's extraction sets a directory's times as
 * soon as it leaves the directory's subtree (it counts on `tar -c`'s tree-walk order), so a
 * member appended into an old directory leaves that directory with the extraction time.
 * bsdtar sets directory times last.  Appending the directory's header again after its new
 * entries (a later member wins) would give GNU tar its times back. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tar.h"
#include "tar_layout.h"

#define OCTAL7_MAX 07777777ll         /* 8-byte fields: uid, gid, devmajor, devminor */
#define OCTAL11_MAX 077777777777ll    /* 12-byte fields: size, mtime */
#define OWNER_MAX (L_OWNER - 1)       /* uname, gname: NUL-terminated */
#define ID_MAX 4294967294ll
/* Sizes and times stay below 10^18 (an exabyte; 30 billion years) in magnitude: our pax
 * parser takes every 18-digit number, not every 19-digit one. */
#define NUM_MAX 1000000000000000000ll
/* The largest pax header our reader takes (META_MAX in tar_reader.c). */
#define PAX_MAX (64u * 1024 * 1024)

static bool fail(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(char *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, TM_TAR_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return false;
}

/* ---- checking a description ---- */

static bool ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

/* An archive path: relative, segments non-empty and neither "." nor ".." after one optional
 * leading "./".  n excludes a directory's trailing '/'. */
static bool check_path(const char *p, size_t n, const char *what, char *err)
{
	if (n == 0)
		return fail(err, "%s is empty", what);
	if (memchr(p, '\0', n))
		return fail(err, "%s holds a NUL byte", what);
	if (p[0] == '/')
		return fail(err, "%s is absolute", what);
	size_t i = 0;
	if (n >= 2 && p[0] == '.' && p[1] == '/')
		i = 2;
	if (i == n || (n == 1 && p[0] == '.'))
		return fail(err, "%s names the archive's root", what);
	while (i <= n) {
		const char *seg = p + i;
		const char *slash = memchr(seg, '/', n - i);
		size_t len = slash ? (size_t)(slash - seg) : n - i;
		if (len == 0)
			return fail(err, "%s has an empty segment", what);
		if (len == 1 && seg[0] == '.')
			return fail(err, "%s has a '.' segment", what);
		if (len == 2 && seg[0] == '.' && seg[1] == '.')
			return fail(err, "%s has a '..' segment", what);
		i += len + 1;
	}
	return true;
}

static const char *type_name(enum tm_tar_type t)
{
	switch (t) {
	case TM_TAR_REG: return "regular file";
	case TM_TAR_HARDLINK: return "hard link";
	case TM_TAR_SYMLINK: return "symbolic link";
	case TM_TAR_CHR: return "character device";
	case TM_TAR_BLK: return "block device";
	case TM_TAR_DIR: return "directory";
	case TM_TAR_FIFO: return "FIFO";
	}
	return "?";
}

static bool check_time(const struct tm_pax_time *t, const char *what, char *err)
{
	if (t->sec <= -NUM_MAX || t->sec >= NUM_MAX)
		return fail(err, "%s %lld out of range", what, (long long)t->sec);
	return t->nsec < 1000000000u || fail(err, "%s nanoseconds %u out of range", what, t->nsec);
}

static bool check_xattrs(const struct tm_tar_desc *d, char *err)
{
	if (d->nxattrs && !d->xattrs)
		return fail(err, "%zu xattrs but no array", d->nxattrs);
	GHashTable *seen = d->nxattrs > 1 ? g_hash_table_new(g_str_hash, g_str_equal) : NULL;
	bool ok = true;
	for (size_t i = 0; ok && i < d->nxattrs; i++) {
		const struct tm_tar_wxattr *x = &d->xattrs[i];
		if (!x->name || !x->name[0])
			ok = fail(err, "xattr %zu has no name", i);
		else if (strchr(x->name, '='))
			ok = fail(err, "xattr %zu: a name with '=' cannot be a pax keyword", i);
		else if (!g_utf8_validate(x->name, -1, NULL))
			ok = fail(err, "xattr %zu: name not UTF-8 (pax keywords are)", i);
		else if (x->len && !x->value)
			ok = fail(err, "xattr %zu: %zu bytes but no value", i, x->len);
		else if (x->len > PAX_MAX)
			ok = fail(err, "xattr %zu: value of %zu bytes is too large", i, x->len);
		else if (seen && !g_hash_table_add(seen, (gpointer)x->name))
			ok = fail(err, "xattr %zu: name given twice", i);
	}
	if (seen)
		g_hash_table_destroy(seen);
	return ok;
}

/* ---- the plan: what goes where ---- */

struct str {
	const char *p;
	size_t n;
};

struct plan {
	char typeflag;
	char *path;        /* as stored (a directory's '/' added); owned */
	size_t path_len;
	struct str link, uname, gname;
	/* Which fields need pax records. */
	bool x_path, x_link, x_size, x_uid, x_gid, x_uname, x_gname, x_mtime, x_major, x_minor;
	bool binary;       /* hdrcharset=BINARY */
	size_t split;      /* path: index of the '/' between prefix and name, 0 for none */
	size_t pax_len;    /* bytes of pax records, 0 for none */
};

static void plan_clear(struct plan *pl)
{
	g_free(pl->path);
	pl->path = NULL;
}

/* Where to split path[0..n) into prefix '/' name: the '/' with the longest prefix that fits,
 * or 0 when none does. */
static size_t ustar_split(const char *p, size_t n)
{
	if (n < 3)
		return 0;
	size_t i = n - 2 < L_PREFIX ? n - 2 : L_PREFIX; /* the name is never empty */
	for (; i > 0 && n - i - 1 <= L_NAME; i--)
		if (p[i] == '/')
			return i;
	return 0;
}

static struct str opt_str(const char *s)
{
	return (struct str){ s ? s : "", s ? strlen(s) : 0 };
}

static bool owner_fits(struct str s)
{
	return s.n <= OWNER_MAX && ascii(s.p, s.n);
}

static bool utf8(struct str s)
{
	return g_utf8_validate_len(s.p, s.n, NULL);
}

static const char typeflags[] = {
	[TM_TAR_REG] = '0', [TM_TAR_HARDLINK] = '1', [TM_TAR_SYMLINK] = '2', [TM_TAR_CHR] = '3',
	[TM_TAR_BLK] = '4', [TM_TAR_DIR] = '5', [TM_TAR_FIFO] = '6',
};

/* Check d and decide its layout, except pax_len.  On false nothing is left to clear. */
static bool plan_fields(const struct tm_tar_desc *d, struct plan *pl, char *err)
{
	memset(pl, 0, sizeof *pl);
	if ((unsigned)d->type >= sizeof typeflags)
		return fail(err, "unknown member type %d", (int)d->type);
	pl->typeflag = typeflags[d->type];
	const char *what = type_name(d->type);
	bool dir = d->type == TM_TAR_DIR;
	bool link = d->type == TM_TAR_HARDLINK || d->type == TM_TAR_SYMLINK;
	bool dev = d->type == TM_TAR_CHR || d->type == TM_TAR_BLK;

	if (!d->path)
		return fail(err, "no path");
	size_t n = d->path_len ? d->path_len : strlen(d->path);
	if (n > PAX_MAX)
		return fail(err, "path of %zu bytes is too long", n);
	if (n && d->path[n - 1] == '/') {
		if (!dir)
			return fail(err, "path ends in '/' but the member is a %s", what);
		n--;
	}
	/* "./" as a directory describes the root (the first member of tar -C DIR .); any other
	 * member naming the root is refused. */
	bool root = dir && n == 1 && d->path[0] == '.' && d->path[1] == '/';
	if (!root && !check_path(d->path, n, "path", err))
		return false;

	if (link) {
		if (!d->linkpath)
			return fail(err, "a %s needs a link target", what);
		size_t ln = d->linkpath_len ? d->linkpath_len : strlen(d->linkpath);
		if (ln > PAX_MAX)
			return fail(err, "link target of %zu bytes is too long", ln);
		if (d->type == TM_TAR_HARDLINK) {
			if (!check_path(d->linkpath, ln, "hard link target", err))
				return false;
		} else if (ln == 0 || memchr(d->linkpath, '\0', ln)) {
			return fail(err, "symbolic link target %s", ln ? "holds a NUL byte"
								     : "is empty");
		}
		pl->link = (struct str){ d->linkpath, ln };
	} else if (d->linkpath) {
		return fail(err, "a %s has no link target", what);
	}
	if (d->mode & ~07777u)
		return fail(err, "mode %o has bits beyond 07777", d->mode);
	if (d->uid < 0 || d->uid > ID_MAX || d->gid < 0 || d->gid > ID_MAX)
		return fail(err, "uid or gid out of range (0 ... %lld)", ID_MAX);
	if (d->size < 0)
		return fail(err, "negative size");
	if (d->size >= NUM_MAX)
		return fail(err, "size %lld out of range", (long long)d->size);
	if (d->size && d->type != TM_TAR_REG)
		return fail(err, "a %s has no data (size must be 0)", what);
	if (!dev && (d->devmajor || d->devminor))
		return fail(err, "a %s has no device numbers", what);
	if (!check_time(&d->mtime, "mtime", err) ||
	    (d->has_atime && !check_time(&d->atime, "atime", err)) ||
	    (d->has_ctime && !check_time(&d->ctime, "ctime", err)) || !check_xattrs(d, err))
		return false;

	pl->path_len = n + dir;
	pl->path = g_malloc(pl->path_len + 1);
	memcpy(pl->path, d->path, n);
	if (dir)
		pl->path[n] = '/';
	pl->path[pl->path_len] = '\0';
	pl->uname = opt_str(d->uname);
	pl->gname = opt_str(d->gname);

	struct str path = { pl->path, pl->path_len };
	if (ascii(path.p, path.n) && path.n > L_NAME)
		pl->split = ustar_split(path.p, path.n);
	pl->x_path = !ascii(path.p, path.n) || (path.n > L_NAME && !pl->split);
	pl->x_link = link && (pl->link.n > L_LINK || !ascii(pl->link.p, pl->link.n));
	pl->x_size = d->size > OCTAL11_MAX;
	pl->x_uid = d->uid > OCTAL7_MAX;
	pl->x_gid = d->gid > OCTAL7_MAX;
	pl->x_uname = !owner_fits(pl->uname);
	pl->x_gname = !owner_fits(pl->gname);
	pl->x_mtime = d->mtime.nsec || d->mtime.sec < 0 || d->mtime.sec > OCTAL11_MAX;
	pl->x_major = dev && d->devmajor > OCTAL7_MAX;
	pl->x_minor = dev && d->devminor > OCTAL7_MAX;
	pl->binary = (pl->x_path && !utf8(path)) || (pl->x_link && !utf8(pl->link)) ||
		     (pl->x_uname && !utf8(pl->uname)) || (pl->x_gname && !utf8(pl->gname));
	return true;
}

/* ---- pax records ---- */

/* Records are counted, and appended to s when it is not NULL. */
struct recs {
	GString *s;
	size_t len;
};

static size_t digits(size_t n)
{
	size_t d = 1;
	for (; n >= 10; n /= 10)
		d++;
	return d;
}

/* "LEN KEY=VALUE\n", LEN counting its own digits: a fixed point that adding a digit to LEN
 * can move once (a 98-byte body makes 100 with its "LEN ", not 99+2). */
static void rec(struct recs *r, const char *key, const char *key2, const void *v, size_t vlen)
{
	size_t klen = strlen(key) + (key2 ? strlen(key2) : 0);
	size_t body = klen + vlen + 3; /* ' ', '=', '\n' */
	size_t len = body + digits(body);
	while (len != body + digits(len))
		len = body + digits(len);
	r->len += len;
	if (!r->s)
		return;
	g_string_append_printf(r->s, "%zu %s%s=", len, key, key2 ? key2 : "");
	g_string_append_len(r->s, v, (gssize)vlen);
	g_string_append_c(r->s, '\n');
}

static void rec_num(struct recs *r, const char *key, long long v)
{
	char buf[24];
	int n = snprintf(buf, sizeof buf, "%lld", v);
	rec(r, key, NULL, buf, (size_t)n);
}

/* pax time: seconds, and a fraction with its trailing zeros dropped.  A negative time with
 * a fraction counts back from the second after it: {-2, 500000000} is "-1.5". */
static void rec_time(struct recs *r, const char *key, struct tm_pax_time t)
{
	char buf[48];
	int n;
	uint32_t frac = t.nsec;
	if (t.sec < 0 && frac) {
		n = snprintf(buf, sizeof buf, "-%lld", -(long long)(t.sec + 1));
		frac = 1000000000u - frac;
	} else {
		n = snprintf(buf, sizeof buf, "%lld", (long long)t.sec);
	}
	if (frac) {
		int w = 9;
		while (frac % 10 == 0)
			frac /= 10, w--;
		n += snprintf(buf + n, sizeof buf - (size_t)n, ".%0*u", w, frac);
	}
	rec(r, key, NULL, buf, (size_t)n);
}

static void pax_records(const struct tm_tar_desc *d, const struct plan *pl, struct recs *r)
{
	if (pl->binary)
		rec(r, "hdrcharset", NULL, "BINARY", 6);
	if (pl->x_path)
		rec(r, "path", NULL, pl->path, pl->path_len);
	if (pl->x_link)
		rec(r, "linkpath", NULL, pl->link.p, pl->link.n);
	if (pl->x_size)
		rec_num(r, "size", d->size);
	if (pl->x_uid)
		rec_num(r, "uid", d->uid);
	if (pl->x_gid)
		rec_num(r, "gid", d->gid);
	if (pl->x_uname)
		rec(r, "uname", NULL, pl->uname.p, pl->uname.n);
	if (pl->x_gname)
		rec(r, "gname", NULL, pl->gname.p, pl->gname.n);
	if (pl->x_mtime)
		rec_time(r, "mtime", d->mtime);
	if (d->has_atime)
		rec_time(r, "atime", d->atime);
	if (d->has_ctime)
		rec_time(r, "ctime", d->ctime);
	if (pl->x_major)
		rec_num(r, "SCHILY.devmajor", d->devmajor);
	if (pl->x_minor)
		rec_num(r, "SCHILY.devminor", d->devminor);
	for (size_t i = 0; i < d->nxattrs; i++)
		rec(r, "SCHILY.xattr.", d->xattrs[i].name, d->xattrs[i].value, d->xattrs[i].len);
}

static bool plan_member(const struct tm_tar_desc *d, struct plan *pl, char *err)
{
	if (!plan_fields(d, pl, err))
		return false;
	/* Sizes add up without overflow: each part is at most PAX_MAX, and there are few. */
	struct recs r = { NULL, 0 };
	pax_records(d, pl, &r);
	if (r.len > PAX_MAX) {
		plan_clear(pl);
		return fail(err, "pax header of %zu bytes is too large (at most %u)", r.len,
			    PAX_MAX);
	}
	pl->pax_len = r.len;
	return true;
}

static uint64_t round_block(uint64_t n)
{
	return (n + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK;
}

static size_t headers_size(const struct plan *pl)
{
	return TM_TAR_BLOCK + (pl->pax_len ? TM_TAR_BLOCK + (size_t)round_block(pl->pax_len) : 0);
}

/* ---- header blocks ---- */

/* The fields of one ustar header block; strings are cut to their field by the caller. */
struct ustar {
	struct str name, prefix, link, uname, gname;
	char typeflag;
	uint32_t mode;
	int64_t uid, gid, size, mtime, devmajor, devminor;
};

/* An empty field stays zero (s.p may be NULL then). */
static void put_str(uint8_t *blk, size_t off, struct str s)
{
	if (s.n)
		memcpy(blk + off, s.p, s.n);
}

/* Zero-padded octal in width-1 digits and a NUL; v fits (the plan saw to it). */
static void put_octal(uint8_t *blk, size_t off, size_t width, int64_t v)
{
	uint64_t u = (uint64_t)v;
	blk[off + width - 1] = '\0';
	for (size_t i = width - 1; i-- > 0; u >>= 3)
		blk[off + i] = (uint8_t)('0' + (u & 7));
}

/* blk: 512 zero bytes on entry. */
static void put_ustar(uint8_t *blk, const struct ustar *u)
{
	put_str(blk, F_NAME, u->name);
	put_octal(blk, F_MODE, L_ID, u->mode);
	put_octal(blk, F_UID, L_ID, u->uid);
	put_octal(blk, F_GID, L_ID, u->gid);
	put_octal(blk, F_SIZE, L_NUM12, u->size);
	put_octal(blk, F_MTIME, L_NUM12, u->mtime);
	blk[F_TYPE] = (uint8_t)u->typeflag;
	put_str(blk, F_LINK, u->link);
	memcpy(blk + F_MAGIC, "ustar\0" "00", 8);
	put_str(blk, F_UNAME, u->uname);
	put_str(blk, F_GNAME, u->gname);
	put_octal(blk, F_DEVMAJOR, L_ID, u->devmajor);
	put_octal(blk, F_DEVMINOR, L_ID, u->devminor);
	put_str(blk, F_PREFIX, u->prefix);
	/* The unsigned sum with the checksum field counted as spaces: 6 digits, NUL, space. */
	memset(blk + F_CHKSUM, ' ', L_CHKSUM);
	uint32_t sum = 0;
	for (size_t i = 0; i < TM_TAR_BLOCK; i++)
		sum += blk[i];
	put_octal(blk, F_CHKSUM, 7, sum);
}

/* s cut to at most max bytes, not in the middle of a UTF-8 sequence. */
static struct str cut(struct str s, size_t max)
{
	if (s.n <= max)
		return s;
	size_t n = max;
	while (n > 0 && ((unsigned char)s.p[n] & 0xc0) == 0x80)
		n--;
	return (struct str){ s.p, n };
}

static int64_t clamp_mtime(int64_t sec)
{
	return sec < 0 || sec > OCTAL11_MAX ? 0 : sec;
}

/* The 'x' header's name: "DIR/PaxHeaders/BASE" ("./PaxHeaders/BASE" at the top), cut to the
 * name field.  buf: at least L_NAME bytes. */
static struct str pax_name(const struct plan *pl, char *buf)
{
	size_t n = pl->path_len;
	while (n > 1 && pl->path[n - 1] == '/')
		n--;
	const char *slash = g_strrstr_len(pl->path, (gssize)n, "/");
	struct str dir = slash ? (struct str){ pl->path, (size_t)(slash - pl->path) }
			       : (struct str){ ".", 1 };
	struct str base = slash ? (struct str){ slash + 1, n - (size_t)(slash + 1 - pl->path) }
				: (struct str){ pl->path, n };
	GString *s = g_string_sized_new(dir.n + base.n + 16);
	g_string_append_len(s, dir.p, (gssize)dir.n);
	g_string_append(s, "/PaxHeaders/");
	g_string_append_len(s, base.p, (gssize)base.n);
	struct str c = cut((struct str){ s->str, s->len }, L_NAME);
	memcpy(buf, c.p, c.n);
	g_string_free(s, TRUE);
	return (struct str){ buf, c.n };
}

static void put_pax_header(uint8_t *blk, const struct tm_tar_desc *d, const struct plan *pl,
			   const GString *recs)
{
	char name[L_NAME];
	struct ustar x = { .name = pax_name(pl, name), .typeflag = 'x', .mode = 0644,
			   .size = (int64_t)recs->len, .mtime = clamp_mtime(d->mtime.sec) };
	put_ustar(blk, &x);
	memcpy(blk + TM_TAR_BLOCK, recs->str, recs->len);
}

static void put_member_header(uint8_t *blk, const struct tm_tar_desc *d, const struct plan *pl)
{
	struct str path = { pl->path, pl->path_len };
	struct ustar u = {
		.typeflag = pl->typeflag,
		.link = cut(pl->link, L_LINK),
		.uname = cut(pl->uname, OWNER_MAX),
		.gname = cut(pl->gname, OWNER_MAX),
		.mode = d->mode,
		.uid = pl->x_uid ? 0 : d->uid,
		.gid = pl->x_gid ? 0 : d->gid,
		.size = pl->x_size ? 0 : d->size,
		.mtime = clamp_mtime(d->mtime.sec),
		.devmajor = pl->x_major ? 0 : d->devmajor,
		.devminor = pl->x_minor ? 0 : d->devminor,
	};
	if (pl->split) {
		u.prefix = (struct str){ path.p, pl->split };
		u.name = (struct str){ path.p + pl->split + 1, path.n - pl->split - 1 };
	} else {
		u.name = cut(path, L_NAME);
	}
	put_ustar(blk, &u);
}

/* ---- the interface ---- */

size_t tm_tar_member_header_size(const struct tm_tar_desc *d, char err[TM_TAR_ERRLEN])
{
	struct plan pl;
	if (!plan_member(d, &pl, err))
		return 0;
	size_t n = headers_size(&pl);
	plan_clear(&pl);
	return n;
}

uint64_t tm_tar_padding(uint64_t size)
{
	return round_block(size) - size;
}

uint64_t tm_tar_member_total(const struct tm_tar_desc *d, char err[TM_TAR_ERRLEN])
{
	size_t h = tm_tar_member_header_size(d, err);
	if (!h)
		return 0;
	return h + (uint64_t)d->size + tm_tar_padding((uint64_t)d->size);
}

size_t tm_tar_encode_header(const struct tm_tar_desc *d, uint8_t *buf, size_t len,
			    char err[TM_TAR_ERRLEN])
{
	struct plan pl;
	if (!plan_member(d, &pl, err))
		return 0;
	size_t n = headers_size(&pl);
	if (len < n) {
		plan_clear(&pl);
		fail(err, "header needs %zu bytes, the buffer has %zu", n, len);
		return 0;
	}
	memset(buf, 0, n);
	uint8_t *blk = buf;
	if (pl.pax_len) {
		GString *recs = g_string_sized_new(pl.pax_len);
		struct recs r = { recs, 0 };
		pax_records(d, &pl, &r);
		g_assert(recs->len == pl.pax_len);
		put_pax_header(blk, d, &pl, recs);
		blk += TM_TAR_BLOCK + round_block(recs->len);
		g_string_free(recs, TRUE);
	}
	put_member_header(blk, d, &pl);
	plan_clear(&pl);
	return n;
}

void tm_tar_encode_end(uint8_t out[TM_TAR_END_SIZE])
{
	memset(out, 0, TM_TAR_END_SIZE);
}
