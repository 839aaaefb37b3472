/* Walks an archive on a block device, header by header, folding extension headers ('L', 'K',
 * 'x', 'g', 'S' extension blocks, sparse maps in the data area) into whole members.  File data
 * is skipped, never read. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tar.h"

/* Headers are read through a window of this size, so that the headers of small members come
 * from one device read; members larger than the window are skipped over with a seek. */
#define READAHEAD (64u * 1024)
/* Largest long name, long link or pax header we read into memory. */
#define META_MAX (64u * 1024 * 1024)

struct tm_tar_reader {
	struct tm_block *b;
	tm_tar_diag_fn diag;
	void *ud;
	uint64_t dev_size;
	bool size_pending;       /* dev_size is an upper bound (see tm_block_info) */
	uint64_t pos;            /* offset of the next header */
	bool done;
	bool truncated;
	uint64_t members;

	uint8_t *win;            /* readahead window: device bytes [win_off, win_off + win_len) */
	uint64_t win_off;
	size_t win_len;
	int fd;                  /* the source's descriptor (tm_block_get_fd), or -1 */

	/* Extension state carried to the next member. */
	struct tm_pax global, local;
	char *longname, *longlink;
	bool seen_x, seen_L, seen_K; /* of each kind since the last member, to warn of repeats */
	bool pending;            /* extension headers seen since the last member */
	bool handed_out;         /* the extensions of the member handed out are still in use */
	uint64_t pending_off;    /* where they started */

	/* The member handed out, and what it owns. */
	struct tm_tar_member m;
	char *path, *linkpath, *uname, *gname;
	GArray *sparse;
	GPtrArray *xattrs;
};

static void diag(struct tm_tar_reader *r, enum tm_tar_diag_level lvl, uint64_t off,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void diag(struct tm_tar_reader *r, enum tm_tar_diag_level lvl, uint64_t off,
		 const char *fmt, ...)
{
	if (!r->diag)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	r->diag(r->ud, lvl, off, msg);
}

struct tm_tar_reader *tm_tar_reader_new(struct tm_block *b, tm_tar_diag_fn fn, void *ud)
{
	struct tm_tar_reader *r = g_new0(struct tm_tar_reader, 1);
	r->b = b;
	r->diag = fn;
	r->ud = ud;
	struct tm_block_info info;
	tm_block_get_info(b, &info);
	r->dev_size = info.size_bytes ? info.size_bytes : info.size_sectors * info.sector_size;
	r->size_pending = info.size_pending;
	r->win = g_malloc(READAHEAD);
	/* The file backend advises its descriptor POSIX_FADV_RANDOM, for the mount's reads of
	 * members; a scan only goes forward, and on a cold page cache the kernel's read-ahead
	 * (doubled by SEQUENTIAL) brings the headers of small members in with large reads in
	 * flight instead of one synchronous window read after another: the Linux tarball's
	 * scan 3.5 s -> 1.0 s here, GNU tar -t 1.7 s.  The advice covers the whole open file
	 * (Linux ignores the range); tm_tar_reader_free gives RANDOM back. */
	uint64_t base;
	if (!tm_block_get_fd(b, &r->fd, &base))
		r->fd = -1;
	else
		posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	tm_pax_init(&r->global);
	tm_pax_init(&r->local);
	r->sparse = g_array_new(FALSE, FALSE, sizeof(struct tm_tar_sparse_chunk));
	return r;
}

void tm_tar_reader_start_at(struct tm_tar_reader *r, uint64_t pos)
{
	r->pos = pos;
}

static void member_release(struct tm_tar_reader *r)
{
	g_clear_pointer(&r->path, g_free);
	g_clear_pointer(&r->linkpath, g_free);
	g_clear_pointer(&r->uname, g_free);
	g_clear_pointer(&r->gname, g_free);
	g_clear_pointer(&r->xattrs, g_ptr_array_unref);
	g_array_set_size(r->sparse, 0);
}

static void extensions_reset(struct tm_tar_reader *r)
{
	tm_pax_clear(&r->local);
	g_clear_pointer(&r->longname, g_free);
	g_clear_pointer(&r->longlink, g_free);
	r->seen_x = r->seen_L = r->seen_K = false;
	r->pending = false;
}

void tm_tar_reader_free(struct tm_tar_reader *r)
{
	if (!r)
		return;
	member_release(r);
	extensions_reset(r);
	tm_pax_clear(&r->global);
	g_array_unref(r->sparse);
	g_free(r->win);
	if (r->fd >= 0)
		posix_fadvise(r->fd, 0, 0, POSIX_FADV_RANDOM);
	g_free(r);
}

uint64_t tm_tar_reader_position(const struct tm_tar_reader *r)
{
	return r->pos;
}

/* A read failed past the end of a device whose size was pending: learn the real size.
 * False when that failed (err says why). */
static bool size_learned(struct tm_tar_reader *r, struct tm_block_error *err)
{
	if (!r->size_pending || err->code != TM_BLOCK_OUT_OF_RANGE)
		return false;
	struct tm_block_info info;
	tm_block_get_info(r->b, &info);
	if (info.size_pending)
		return false;
	r->size_pending = false;
	r->dev_size = info.size_bytes ? info.size_bytes : info.size_sectors * info.sector_size;
	return true;
}

/* pread that learns the size of a pending device: 1 read, 0 past the end, -1 error. */
static int read_at(struct tm_tar_reader *r, void *buf, size_t len, uint64_t off,
		   struct tm_block_error *err)
{
	if (off > r->dev_size || len > r->dev_size - off)
		return 0;
	if (tm_block_pread(r->b, buf, len, off, err) == 0)
		return 1;
	if (!size_learned(r, err))
		return -1;
	return read_at(r, buf, len, off, err);
}

/* Whether the device holds bytes up to end (for a pending size, by reading the last). */
static int reaches(struct tm_tar_reader *r, uint64_t end, struct tm_block_error *err)
{
	uint8_t byte;
	if (!r->size_pending || end == 0)
		return end <= r->dev_size;
	return read_at(r, &byte, 1, end - 1, err);
}

/* Make [off, off+len) available and return a pointer to it, len <= READAHEAD.  Returns NULL
 * with *eof set when the range passes the end of the device, or with err on a read error. */
static const uint8_t *window(struct tm_tar_reader *r, uint64_t off, size_t len, bool *eof,
			     struct tm_block_error *err)
{
	*eof = false;
	for (;;) {
		if (off > r->dev_size || len > r->dev_size - off) {
			*eof = true;
			return NULL;
		}
		if (off >= r->win_off && off + len <= r->win_off + r->win_len)
			return r->win + (off - r->win_off);
		size_t n = READAHEAD;
		if (n > r->dev_size - off)
			n = (size_t)(r->dev_size - off);
		r->win_len = 0;
		if (tm_block_pread(r->b, r->win, n, off, err) == 0) {
			r->win_off = off;
			r->win_len = n;
			return r->win;
		}
		if (!size_learned(r, err))
			return NULL;
	}
}

/* Read len bytes at off into a new buffer (NUL-terminated for convenience). */
static uint8_t *read_blob(struct tm_tar_reader *r, uint64_t off, size_t len, bool *eof,
			  struct tm_block_error *err)
{
	*eof = false;
	if (off > r->dev_size || len > r->dev_size - off) {
		*eof = true;
		return NULL;
	}
	uint8_t *p = g_malloc(len + 1);
	p[len] = 0;
	if (len <= READAHEAD) {
		const uint8_t *w = window(r, off, len, eof, err);
		if (!w) {
			g_free(p);
			return NULL;
		}
		memcpy(p, w, len);
		return p;
	}
	int rc = read_at(r, p, len, off, err);
	if (rc <= 0) {
		*eof = rc == 0;
		g_free(p);
		return NULL;
	}
	return p;
}

static uint64_t round_block(uint64_t n)
{
	return (n + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK;
}

/* The pax value for a key, local over global; DELETED in local cancels global. */
#define PAX_PICK(r, state, field, fallback)                                                \
	((r)->local.state == TM_PAX_SET	      ? (r)->local.field                          \
	 : (r)->local.state == TM_PAX_DELETED ? (fallback)                                \
	 : (r)->global.state == TM_PAX_SET    ? (r)->global.field                         \
					      : (fallback))

static GPtrArray *merge_xattrs(struct tm_tar_reader *r)
{
	GPtrArray *g = r->global.xattrs, *l = r->local.xattrs;
	if (!g && !l)
		return NULL;
	GPtrArray *out = g_ptr_array_new();
	if (l)
		for (guint i = 0; i < l->len; i++)
			g_ptr_array_add(out, l->pdata[i]);
	if (g)
		for (guint i = 0; i < g->len; i++) {
			struct tm_pax_xattr *x = g->pdata[i];
			if (!l || !g_hash_table_contains(r->local.xattr_names, x->name))
				g_ptr_array_add(out, x);
		}
	return out;
}

static enum tm_tar_type type_of(char flag, const char *name, bool *known)
{
	*known = true;
	switch (flag) {
	case '0':
	case '\0': {
		size_t n = strlen(name);
		return n && name[n - 1] == '/' ? TM_TAR_DIR : TM_TAR_REG;
	}
	case '7':
	case 'S': return TM_TAR_REG;
	case '1': return TM_TAR_HARDLINK;
	case '2': return TM_TAR_SYMLINK;
	case '3': return TM_TAR_CHR;
	case '4': return TM_TAR_BLK;
	case '5':
	case 'D': return TM_TAR_DIR;
	case '6': return TM_TAR_FIFO;
	}
	*known = false;
	return TM_TAR_REG;
}

static int64_t clamp_id(struct tm_tar_reader *r, int64_t v, const char *what, uint64_t off)
{
	if (v >= 0 && v <= (int64_t)UINT32_MAX - 1)
		return v;
	diag(r, TM_TAR_WARNING, off, "%s %lld out of range; using 0", what, (long long)v);
	return 0;
}

/* Old GNU 'S': the header's map, then extension blocks.  Advances *data_off past them. */
static int read_gnu_sparse(struct tm_tar_reader *r, const struct tm_tar_header *h,
			   uint64_t *data_off, struct tm_block_error *err)
{
	for (int i = 0; i < h->nsparse; i++)
		g_array_append_val(r->sparse, h->sparse[i]);
	bool more = h->isextended, eof;
	char e[TM_TAR_ERRLEN];
	while (more) {
		const uint8_t *blk = window(r, *data_off, TM_TAR_BLOCK, &eof, err);
		if (!blk)
			return eof ? 0 : -1;
		if (!tm_tar_sparse_ext_decode(blk, r->sparse, &more, e)) {
			diag(r, TM_TAR_ERROR, *data_off, "%s", e);
			return -2;
		}
		*data_off += TM_TAR_BLOCK;
		if (r->sparse->len > 16u * 1024 * 1024) {
			diag(r, TM_TAR_ERROR, *data_off, "sparse map too long");
			return -2;
		}
	}
	return 1;
}

/* pax 1.0: the map heads the data area.  Advances *data_off and shrinks *stored. */
static int read_v1_map(struct tm_tar_reader *r, uint64_t *data_off, uint64_t *stored,
		       struct tm_block_error *err)
{
	GByteArray *buf = g_byte_array_new();
	char e[TM_TAR_ERRLEN];
	int rc;
	/* Read the map in growing steps (1, 2, 4... blocks) and parse what is there after each:
	 * the parse starts over each time, so doubling keeps a long map linear. */
	size_t step = TM_TAR_BLOCK;
	for (;;) {
		bool eof;
		if (buf->len >= *stored || buf->len >= META_MAX) {
			diag(r, TM_TAR_ERROR, *data_off, "sparse map runs past the member's data");
			rc = -2;
			break;
		}
		size_t n = step;
		if (n > *stored - buf->len)
			n = (size_t)((*stored - buf->len + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK);
		if (n > META_MAX - buf->len)
			n = META_MAX - buf->len;
		uint8_t *more = read_blob(r, *data_off + buf->len, n, &eof, err);
		if (!more) {
			rc = eof ? 0 : -1;
			break;
		}
		g_byte_array_append(buf, more, (guint)n);
		g_free(more);
		step *= 2;
		size_t consumed;
		int p = tm_sparse_parse_v1(buf->data, buf->len, r->sparse, &consumed, e);
		if (p < 0) {
			diag(r, TM_TAR_ERROR, *data_off, "%s", e);
			rc = -2;
			break;
		}
		if (p == 1) {
			*data_off += consumed;
			*stored -= consumed < *stored ? consumed : *stored;
			rc = 1;
			break;
		}
	}
	g_byte_array_unref(buf);
	return rc;
}

/* Fill r->m from the header and the pending extensions.  Returns 1 when the member is
 * ready, 0 when the archive ended inside it, -1 on a device error, -2 when the member is
 * invalid and skipped (already reported). r->pos is past the member in every case but -1. */
static int build_member(struct tm_tar_reader *r, const struct tm_tar_header *h, uint64_t hdr_off,
			uint64_t first_off, struct tm_block_error *err)
{
	struct tm_tar_member *m = &r->m;
	memset(m, 0, sizeof *m);
	member_release(r);

	/* A pax path (linkpath) wins over an 'L' ('K') whichever of the two comes first, as in
	 * GNU tar 1.34; bsdtar 3.6 takes the earlier one, libarchive 3.8 the later. */
	const char *path = r->longname ? r->longname : h->name;
	path = PAX_PICK(r, path_s, path, path);
	if (r->local.sparse_name)
		path = r->local.sparse_name;
	const char *link = r->longlink ? r->longlink : h->linkname;
	/* An empty pax value deletes the header's field too (POSIX pax, "zero length"). */
	link = PAX_PICK(r, linkpath_s, linkpath, link);
	r->path = g_strdup(path);
	r->linkpath = g_strdup(r->local.linkpath_s == TM_PAX_DELETED ? "" : link);
	r->uname = g_strdup(r->local.uname_s == TM_PAX_DELETED
				    ? "" : PAX_PICK(r, uname_s, uname, h->uname));
	r->gname = g_strdup(r->local.gname_s == TM_PAX_DELETED
				    ? "" : PAX_PICK(r, gname_s, gname, h->gname));

	bool known;
	m->typeflag = h->typeflag;
	m->type = type_of(h->typeflag, r->path, &known);
	if (!known)
		diag(r, TM_TAR_WARNING, hdr_off,
		     "%s: unknown file type '%c'; treated as a regular file", r->path,
		     g_ascii_isprint(h->typeflag) ? h->typeflag : '?');
	m->path = r->path;
	m->linkpath = r->linkpath;
	m->uname = r->uname;
	m->gname = r->gname;
	m->mode = (uint32_t)(h->mode & 07777);
	m->uid = clamp_id(r, PAX_PICK(r, uid_s, uid, h->uid), "uid", hdr_off);
	m->gid = clamp_id(r, PAX_PICK(r, gid_s, gid, h->gid), "gid", hdr_off);
	struct tm_pax_time hdr_time = { h->mtime, 0 };
	struct tm_pax_time t = PAX_PICK(r, mtime_s, mtime, hdr_time);
	m->mtime = t.sec;
	m->mtime_nsec = t.nsec;
	m->devmajor = (uint32_t)PAX_PICK(r, devmajor_s, devmajor, h->devmajor);
	m->devminor = (uint32_t)PAX_PICK(r, devminor_s, devminor, h->devminor);
	m->header_offset = first_off;

	int64_t size = PAX_PICK(r, size_s, size, h->size);
	if (size < 0) {
		diag(r, TM_TAR_ERROR, hdr_off, "%s: negative size", r->path);
		return -3;
	}
	uint64_t data_off = hdr_off + TM_TAR_BLOCK;
	/* Links, devices, FIFOs and directories have no data, whatever their size field says:
	 * GNU tar, bsdtar and tarfile all read the next header right after them. */
	if (strchr("123456", h->typeflag) && h->typeflag != '\0')
		size = 0;
	uint64_t stored = (uint64_t)size;
	int rc;
	bool sparse = false;
	uint64_t logical = stored;
	if (h->typeflag == 'S') {
		sparse = true;
		logical = (uint64_t)(h->realsize < 0 ? 0 : h->realsize);
		if ((rc = read_gnu_sparse(r, h, &data_off, err)) <= 0 && rc != -2)
			return rc;
		if (rc == -2) {
			r->pos = data_off + round_block(stored);
			return -2;
		}
	} else if (r->local.sparse && m->type == TM_TAR_REG) {
		sparse = true;
		if (r->local.sparse_size < 0) {
			diag(r, TM_TAR_ERROR, hdr_off, "%s: sparse member without a real size",
			     r->path);
			r->pos = data_off + round_block(stored);
			return -2;
		}
		logical = (uint64_t)r->local.sparse_size;
		if (r->local.sparse_major == 1) {
			uint64_t end = data_off + round_block(stored);
			if ((rc = read_v1_map(r, &data_off, &stored, err)) <= 0 && rc != -2)
				return rc;
			if (rc == -2) {
				r->pos = end;
				return -2;
			}
		} else if (r->local.sparse_map) {
			g_array_append_vals(r->sparse, r->local.sparse_map->data,
					    r->local.sparse_map->len);
		}
	}
	r->pos = data_off + round_block(stored);
	if (data_off > r->dev_size || stored > r->dev_size - data_off)
		return 0;
	int whole = reaches(r, data_off + stored, err);
	if (whole <= 0)
		return whole;
	if (sparse) {
		char e[TM_TAR_ERRLEN];
		if (!tm_sparse_validate(r->sparse, logical, stored, e)) {
			diag(r, TM_TAR_ERROR, hdr_off, "%s: %s", r->path, e);
			return -2;
		}
		m->sparse = r->sparse;
	}
	m->data_offset = data_off;
	m->stored_size = stored;
	switch (m->type) {
	case TM_TAR_REG: m->size = logical; break;
	case TM_TAR_SYMLINK: m->size = strlen(r->linkpath); break;
	default: m->size = 0; break;
	}
	r->xattrs = merge_xattrs(r);
	m->xattrs = r->xattrs;
	return 1;
}

/* Read an 'L', 'K' or pax header's data.  Returns the blob, or NULL with *rc set. */
static uint8_t *read_meta(struct tm_tar_reader *r, const struct tm_tar_header *h,
			  uint64_t hdr_off, int *rc, struct tm_block_error *err)
{
	if (h->size < 0 || (uint64_t)h->size > META_MAX) {
		diag(r, TM_TAR_ERROR, hdr_off, "extension header of %lld bytes is too large",
		     (long long)h->size);
		*rc = -2;
		return NULL;
	}
	bool eof;
	uint8_t *p = read_blob(r, hdr_off + TM_TAR_BLOCK, (size_t)h->size, &eof, err);
	if (!p)
		*rc = eof ? 0 : -1;
	return p;
}

/* A GNU long name ('L') or long link name ('K'), blob its NUL-terminated data (taken).  Of
 * two of a kind before one member the last wins, as in GNU tar and bsdtar. */
static void long_name(struct tm_tar_reader *r, char type, char *blob, uint64_t off)
{
	bool *seen = type == 'L' ? &r->seen_L : &r->seen_K;
	char **dst = type == 'L' ? &r->longname : &r->longlink;
	if (*seen)
		diag(r, TM_TAR_WARNING, off,
		     "a second GNU long %s header before one member; the earlier one is ignored",
		     type == 'L' ? "name" : "link name");
	*seen = true;
	g_free(*dst);
	*dst = blob;
	r->pending = true;
}

/* path, linkpath and size in a global header would give every later member one name, link
 * target or size: libarchive and Go ignore them, and so do we (GNU tar applies them).  The
 * other global keys keep applying.  Called after each global header is parsed, so that
 * whatever of the three is set came from that header. */
static void global_drop_names(struct tm_tar_reader *r, uint64_t off)
{
	struct tm_pax *g = &r->global;
	if (!g->path_s && !g->linkpath_s && !g->size_s)
		return;
	char keys[32] = "";
	if (g->path_s)
		g_strlcat(keys, ", path", sizeof keys);
	if (g->linkpath_s)
		g_strlcat(keys, ", linkpath", sizeof keys);
	if (g->size_s)
		g_strlcat(keys, ", size", sizeof keys);
	diag(r, TM_TAR_WARNING, off,
	     "pax global header: %s ignored (a global header names no one member)", keys + 2);
	g_clear_pointer(&g->path, g_free);
	g_clear_pointer(&g->linkpath, g_free);
	g->path_s = g->linkpath_s = g->size_s = TM_PAX_ABSENT;
}

/* A pax header's records, data[0..len).  A local header ('x', or Sun's 'X') replaces any
 * local header before it for the same member, wholly: GNU tar, bsdtar 3.6 and Go never merge
 * two (libarchive 3.8 refuses the second).  Global headers ('g') add to the global state. */
static void pax_header(struct tm_tar_reader *r, char type, const uint8_t *data, size_t len,
		       uint64_t off)
{
	char e[TM_TAR_ERRLEN];
	struct tm_pax *p = type == 'g' ? &r->global : &r->local;
	if (type != 'g') {
		if (r->seen_x)
			diag(r, TM_TAR_WARNING, off,
			     "a second pax extended header before one member; it replaces the "
			     "earlier one");
		r->seen_x = true;
		tm_pax_clear(p);
		r->pending = true;
	}
	if (!tm_pax_parse(data, len, p, e))
		diag(r, TM_TAR_ERROR, off, "malformed pax header: %s", e);
	if (type == 'g')
		global_drop_names(r, off);
}

bool tm_tar_reader_truncated(const struct tm_tar_reader *r)
{
	return r->truncated;
}

static void warn_truncated(struct tm_tar_reader *r, uint64_t off)
{
	r->truncated = true;
	diag(r, TM_TAR_WARNING, off,
	     "archive ends without an end-of-archive marker (truncated?); "
	     "using the %llu complete members", (unsigned long long)r->members);
}

enum tm_tar_next tm_tar_reader_next(struct tm_tar_reader *r, struct tm_tar_member **out,
				    struct tm_block_error *err)
{
	struct tm_block_error local;
	if (!err)
		err = &local;
	char e[TM_TAR_ERRLEN];
	/* The last member borrowed from the extension state (its xattrs): drop it only now. */
	if (r->handed_out) {
		extensions_reset(r);
		r->handed_out = false;
	}
	while (!r->done) {
		uint64_t off = r->pos;
		bool eof;
		const uint8_t *blk = window(r, off, TM_TAR_BLOCK, &eof, err);
		if (!blk && !eof)
			return TM_TAR_FAIL;
		if (!blk) {
			r->done = true;
			if (off == 0) {
				diag(r, TM_TAR_ERROR, off,
				     "not a tar archive (shorter than one 512-byte block)");
				return TM_TAR_FAIL;
			}
			warn_truncated(r, off);
			break;
		}
		struct tm_tar_header h;
		enum tm_tar_hdr_status st = tm_tar_header_decode(blk, &h, e);
		if (st == TM_TAR_HDR_ZERO) {
			r->done = true;
			const uint8_t *next = window(r, off + TM_TAR_BLOCK, TM_TAR_BLOCK, &eof, err);
			struct tm_tar_header h2;
			if (next && tm_tar_header_decode(next, &h2, e) != TM_TAR_HDR_ZERO)
				diag(r, TM_TAR_WARNING, off, "a lone zero block ends the archive");
			if (r->pending)
				diag(r, TM_TAR_WARNING, r->pending_off,
				     "extension headers with no member before the end marker");
			break;
		}
		if (st != TM_TAR_HDR_OK) {
			r->done = true;
			if (off == 0) {
				diag(r, TM_TAR_ERROR, off, "not a tar archive (%s)", e);
				return TM_TAR_FAIL;
			}
			diag(r, TM_TAR_ERROR, off, "%s; ignoring the rest of the archive", e);
			break;
		}
		if (!r->pending) {
			r->pending_off = off;
		}
		int rc = 1;
		uint8_t *blob = NULL;
		switch (h.typeflag) {
		case 'L':
		case 'K':
			if (!(blob = read_meta(r, &h, off, &rc, err)))
				break;
			long_name(r, h.typeflag, (char *)blob, off);
			break;
		case 'x':
		case 'X':
		case 'g':
			if (!(blob = read_meta(r, &h, off, &rc, err)))
				break;
			pax_header(r, h.typeflag, blob, (size_t)h.size, off);
			g_free(blob);
			break;
		case 'V':
		case 'M':
		case 'N':
			if (h.typeflag != 'V')
				diag(r, TM_TAR_WARNING, off, "%s: %s member skipped", h.name,
				     h.typeflag == 'M' ? "multi-volume continuation" : "old GNU long-name");
			break;
		default: {
			rc = build_member(r, &h, off, r->pending_off, err);
			if (rc == -3) {
				r->done = true;
				return TM_TAR_END;
			}
			if (rc == 1) {
				r->handed_out = true;
				r->members++;
				*out = &r->m;
				return TM_TAR_MEMBER;
			}
			extensions_reset(r);
			if (rc == 0) {
				r->done = true;
				warn_truncated(r, off);
				return TM_TAR_END;
			}
			if (rc == -1)
				return TM_TAR_FAIL;
			continue; /* -2: reported and skipped */
		}
		}
		if (rc == -1)
			return TM_TAR_FAIL;
		if (rc == 0) {
			r->done = true;
			warn_truncated(r, off);
			break;
		}
		r->pos = off + TM_TAR_BLOCK + (h.size > 0 ? round_block((uint64_t)h.size) : 0);
	}
	return TM_TAR_END;
}
