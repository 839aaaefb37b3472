/* The persisted index (src/index_file.c): save and load round trips, refusal of every kind
 * of bad file (missing, another source, truncated, extended, bit flips, random bytes,
 * another format version), tm_index_open's persist/load/rebuild/warn behaviour, and
 * tm_index_default_path.
 *
 * Archives are built in memory with testutil.h.  The only facts about the file format used
 * here are the first fields of its header (magic "TARMIDX\n", then uint32 version and
 * uint32 header_size at bytes 8 and 12): enough to patch the version and to cut the file at
 * the end of the header.  The checksum algorithm is not copied: files with corrupt
 * contents but valid checksums are made by handing corrupted arrays to tm_index_save
 * itself, which checksums whatever it is given. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "index.h"
#include "kv.h"
#include "suites.h"
#include "testutil.h"

#define MAGIC "TARMIDX\n"
#define OFF_VERSION 8
#define OFF_HEADER_SIZE 12

/* ---- files and directories ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void rm_rf(const char *path)
{
	if (path)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *tmpdir_new(void)
{
	GError *e = NULL;
	char *d = g_dir_make_tmp("tm-index-file-XXXXXX", &e);
	ck_assert_msg(d != NULL, "g_dir_make_tmp: %s", e ? e->message : "?");
	return d;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	gchar *data = NULL;
	gsize n = 0;
	GError *e = NULL;
	ck_assert_msg(g_file_get_contents(path, &data, &n, &e), "reading %s: %s", path,
		      e ? e->message : "?");
	*len = n;
	return (uint8_t *)data;
}

/* Write data[0..len) to path (created or truncated), without fsync: scratch files. */
static void spit(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "creating %s: %s", path, strerror(errno));
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		ck_assert_msg(n > 0, "writing %s: %s", path, strerror(errno));
		p += n, len -= (size_t)n;
	}
	ck_assert_int_eq(close(fd), 0);
}

static void poke(int fd, size_t off, uint8_t byte)
{
	ck_assert_int_eq(pwrite(fd, &byte, 1, (off_t)off), 1);
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory (dot files too), sorted and joined by '|' ("" when empty). */
static char *dir_names(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	ck_assert_msg(d != NULL, "cannot list %s", dir);
	GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
	const char *n;
	while ((n = g_dir_read_name(d)))
		g_ptr_array_add(names, g_strdup(n));
	g_dir_close(d);
	if (names->len)
		qsort(names->pdata, names->len, sizeof(char *), cmp_str);
	GString *s = g_string_new(NULL);
	for (guint i = 0; i < names->len; i++)
		g_string_append_printf(s, "%s%s", i ? "|" : "", (char *)names->pdata[i]);
	g_ptr_array_free(names, TRUE);
	return g_string_free(s, FALSE);
}

static void assert_dir_names(const char *dir, const char *want)
{
	char *got = dir_names(dir);
	ck_assert_msg(strcmp(got, want) == 0, "%s holds \"%s\", expected \"%s\"", dir, got, want);
	g_free(got);
}

/* ---- source ids ---- */

/* 64 hex digits, distinct per seed. */
static void make_id(char id[65], unsigned seed)
{
	uint8_t raw[32];
	tu_fill(raw, sizeof raw, seed * 2654435761u + 1);
	for (int i = 0; i < 32; i++)
		snprintf(id + 2 * i, 3, "%02x", raw[i]);
	id[64] = '\0';
}

/* ---- archives ---- */

static const uint64_t rich_sparse_pairs[] = { 0, 100, 1000, 512, 5000, 1, 9000, 3000, 20000, 4096,
					      30001, 7 };
#define RICH_SPARSE_N 6
#define RICH_SPARSE_LOGICAL 40000

static void add_hdr(GByteArray *a, uint8_t h[TU_BLOCK], const void *data, size_t len)
{
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, data, len);
}

static char rich_longname[200], rich_longtarget[160], rich_paxpath[300];

/* Every feature the index stores: explicit and implicit directories (with metadata), files
 * of several sizes, symlinks (short, long, dangling), hard links (nlink 3), character and
 * block devices, a FIFO, old GNU and pax 1.0 sparse files, xattrs on a file and on a
 * directory (binary values), GNU long names and link names, a pax path over 255 bytes with
 * a fractional mtime, custom and base-256 owners, a directory of many entries added out of
 * order, a member replaced by a later one. */
static GByteArray *rich_archive(void)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	uint8_t bin[3000];
	tu_fill(bin, sizeof bin, 42);

	tu_header_init(h, TU_USTAR, "d/", '5', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0750);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 1600000000);
	add_hdr(a, h, NULL, 0);
	tu_add_file(a, "a.txt", "hello\n");
	tu_add(a, TU_USTAR, "d/b.bin", '0', NULL, bin, sizeof bin);
	tu_add_file(a, "d/sub/deep/e.txt", "deep\n");
	tu_add_file(a, "empty", "");
	tu_add(a, TU_USTAR, "d/link", '2', "../a.txt", NULL, 0);
	tu_add(a, TU_USTAR, "dangling", '2', "nowhere/at/all", NULL, 0);
	tu_add(a, TU_USTAR, "hard", '1', "a.txt", NULL, 0);
	tu_add(a, TU_USTAR, "d/hard2", '1', "a.txt", NULL, 0);

	tu_header_init(h, TU_USTAR, "dev/null", '3', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0666);
	tu_set_octal(h, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 1);
	tu_set_octal(h, TU_DEVMINOR, TU_DEVMINOR_LEN, 3);
	add_hdr(a, h, NULL, 0);
	tu_header_init(h, TU_USTAR, "dev/sda", '4', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0660);
	tu_set_octal(h, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 8);
	tu_set_octal(h, TU_DEVMINOR, TU_DEVMINOR_LEN, 16);
	add_hdr(a, h, NULL, 0);
	tu_add(a, TU_USTAR, "dev/fifo", '6', NULL, NULL, 0);

	tu_header_init(h, TU_USTAR, "owned.txt", '0', 6);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0640);
	tu_set_octal(h, TU_UID, TU_UID_LEN, 501);
	tu_set_octal(h, TU_GID, TU_GID_LEN, 20);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "alice");
	tu_set_str(h, TU_GNAME, TU_GNAME_LEN, "staff");
	add_hdr(a, h, "owned\n", 6);
	tu_header_init(h, TU_GNU, "bigids", '0', 0);
	tu_set_b256(h, TU_UID, TU_UID_LEN, 3000000000LL);
	tu_set_b256(h, TU_GID, TU_GID_LEN, 4000000000LL);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "bob");
	tu_set_str(h, TU_GNAME, TU_GNAME_LEN, "wheel");
	add_hdr(a, h, NULL, 0);

	/* GNU long names */
	char longdir[150];
	memset(longdir, 'L', 140);
	longdir[140] = 0;
	snprintf(rich_longname, sizeof rich_longname, "%s/file.txt", longdir);
	memset(rich_longtarget, 't', 130);
	rich_longtarget[130] = 0;
	tu_add_longlink(a, 'L', rich_longname);
	tu_header_init(h, TU_GNU, rich_longname, '0', 5);
	add_hdr(a, h, "long\n", 5);
	tu_add_longlink(a, 'K', rich_longtarget);
	tu_header_init(h, TU_GNU, "longlink", '2', 0);
	tu_set_str(h, TU_LINKNAME, TU_LINKNAME_LEN, rich_longtarget);
	add_hdr(a, h, NULL, 0);

	/* a pax path over 255 bytes, a fractional mtime, a pax uname */
	for (int i = 0; i < 280; i++)
		rich_paxpath[i] = i % 60 == 59 ? '/' : (char)('a' + i % 26);
	rich_paxpath[280] = 0;
	GString *x = g_string_new(NULL);
	tu_pax_str(x, "path", rich_paxpath);
	tu_pax_str(x, "mtime", "1700000000.123456789");
	tu_pax_str(x, "uname", "paxuser");
	tu_add_pax(a, 'x', "PaxHeaders.1/placeholder", x);
	tu_add_file(a, "placeholder", "pax\n");

	/* xattrs on a file (binary value) and on a directory */
	static const char xbin[] = { 'v', 0, 'w', 0, (char)0xff };
	g_string_truncate(x, 0);
	tu_pax_str(x, "SCHILY.xattr.user.a", "1");
	tu_pax_rec(x, "SCHILY.xattr.user.bin", xbin, sizeof xbin);
	tu_pax_str(x, "SCHILY.xattr.trusted.long.name.of.an.attribute", "some value");
	tu_add_pax(a, 'x', "PaxHeaders.1/x.txt", x);
	tu_add_file(a, "x.txt", "with xattrs\n");
	g_string_truncate(x, 0);
	tu_pax_str(x, "SCHILY.xattr.user.dir", "yes");
	tu_add_pax(a, 'x', "PaxHeaders.1/xd", x);
	tu_add_dir(a, "xd/");
	tu_add_file(a, "xd/inside", "i\n");
	g_string_free(x, TRUE);

	/* sparse files */
	uint8_t *ref = tu_sparse_ref(rich_sparse_pairs, RICH_SPARSE_N, RICH_SPARSE_LOGICAL, 7);
	tu_add_sparse_oldgnu(a, "sparse.img", rich_sparse_pairs, RICH_SPARSE_N,
			     RICH_SPARSE_LOGICAL, ref);
	tu_add_sparse_pax(a, TU_SPARSE_10, "s/v10.img", rich_sparse_pairs, RICH_SPARSE_N,
			  RICH_SPARSE_LOGICAL, ref);
	g_free(ref);

	/* many entries, out of order; a member replaced by a later one */
	for (int i = 39; i >= 0; i--) {
		char name[32], content[32];
		snprintf(name, sizeof name, "many/f%02d", i);
		snprintf(content, sizeof content, "content %d\n", i);
		tu_add_file(a, name, content);
	}
	tu_add_file(a, "dup.txt", "first version\n");
	tu_add_file(a, "dup.txt", "second, longer version\n");
	tu_finish(a);
	return a;
}

static GByteArray *end_only_archive(void)
{
	GByteArray *a = g_byte_array_new();
	tu_finish(a);
	return a;
}

/* A bad header checksum after the first member: an index with errors. */
static GByteArray *damaged_archive(void)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "m1", "first");
	tu_add_file(a, "m2", "second");
	size_t bad = a->len;
	tu_add_file(a, "m3", "third");
	a->data[bad + TU_CHKSUM + 5] ^= 1;
	tu_add_file(a, "m4", "fourth");
	tu_finish(a);
	return a;
}

/* No end-of-archive marker: a truncated index with a warning. */
static GByteArray *truncated_archive(void)
{
	GByteArray *a = g_byte_array_new();
	uint8_t d[3584];
	tu_fill(d, sizeof d, 3);
	tu_add(a, TU_USTAR, "one", '0', NULL, d, sizeof d);
	tu_add_file(a, "two", "2");
	return a;
}

static GByteArray *small_archive(const char *extra)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "common", "common\n");
	if (extra)
		tu_add_file(a, extra, extra);
	tu_finish(a);
	return a;
}

enum { K_RICH, K_END_ONLY, K_DAMAGED, K_TRUNCATED, K_COUNT };
static const char *const kind_name[] = { "rich", "end-only", "damaged", "truncated" };

static GByteArray *archive_of(int kind)
{
	switch (kind) {
	case K_RICH:
		return rich_archive();
	case K_END_ONLY:
		return end_only_archive();
	case K_DAMAGED:
		return damaged_archive();
	default:
		return truncated_archive();
	}
}

/* ---- comparing indexes ---- */

static void assert_same_bytes(const void *a, const void *b, uint64_t len, const char *what)
{
	if (len == 0)
		return;
	ck_assert_msg(a != NULL && b != NULL, "%s: NULL array of %llu bytes", what,
		      (unsigned long long)len);
	if (memcmp(a, b, len) == 0)
		return;
	const uint8_t *x = a, *y = b;
	uint64_t i = 0;
	while (x[i] == y[i])
		i++;
	ck_abort_msg("%s differ at byte %llu of %llu", what, (unsigned long long)i,
		     (unsigned long long)len);
}

/* The same arrays byte for byte and the same scan results. */
static void assert_same_index(const struct tm_index *a, const struct tm_index *b)
{
	ck_assert_uint_eq(a->ninodes, b->ninodes);
	ck_assert_uint_eq(a->ndentries, b->ndentries);
	ck_assert_uint_eq(a->nchildren, b->nchildren);
	ck_assert_uint_eq(a->strings_len, b->strings_len);
	ck_assert_uint_eq(a->aux_len, b->aux_len);
	ck_assert_uint_eq(a->members, b->members);
	ck_assert_uint_eq(a->archive_end, b->archive_end);
	ck_assert_uint_eq(a->warnings, b->warnings);
	ck_assert_uint_eq(a->errors, b->errors);
	ck_assert_int_eq(a->truncated, b->truncated);
	assert_same_bytes(a->inodes, b->inodes, (uint64_t)a->ninodes * sizeof *a->inodes,
			  "inodes");
	assert_same_bytes(a->dentries, b->dentries, (uint64_t)a->ndentries * sizeof *a->dentries,
			  "dentries");
	assert_same_bytes(a->children, b->children, (uint64_t)a->nchildren * sizeof *a->children,
			  "children");
	assert_same_bytes(a->strings, b->strings, a->strings_len, "strings");
	assert_same_bytes(a->aux, b->aux, a->aux_len, "aux");
	ck_assert_uint_eq(tm_index_memory(a), tm_index_memory(b));
}

struct list_acc {
	GString *s;
};

static int list_cb(void *ud, const char *name, uint32_t ino, enum tm_kv_kind kind)
{
	struct list_acc *l = ud;
	g_string_append_printf(l->s, "%s:%u:%d|", name, ino, (int)kind);
	return 0;
}

static char *kv_listing(const struct tm_kv *kv, const char *key)
{
	struct list_acc l = { g_string_new(NULL) };
	struct tm_kv_error err;
	int rc = tm_kv_list(kv, key, list_cb, &l, &err);
	g_string_append_printf(l.s, "rc=%d", rc);
	return g_string_free(l.s, FALSE);
}

static char *xattr_dump(const struct tm_index *idx, uint32_t ino)
{
	GString *s = g_string_new(NULL);
	uint32_t cur = 0, vlen = 0;
	const char *name;
	const void *value;
	int n = 0;
	while (tm_index_xattr_next(idx, ino, &cur, &name, &value, &vlen) > 0) {
		ck_assert_int_lt(++n, 100);
		g_string_append_printf(s, "%s=", name);
		for (uint32_t i = 0; i < vlen; i++)
			g_string_append_printf(s, "%02x", ((const uint8_t *)value)[i]);
		g_string_append_c(s, ';');
	}
	return g_string_free(s, FALSE);
}

/* Everything a reader does, through a (built) and b (loaded), from directory ino of a at
 * path: lookups, resolution, kv reads, sizes, times, digests, listings, sparse maps and
 * xattrs agree.  Returns the number of entries visited. */
static unsigned compare_reads(struct tm_block *blk, const struct tm_index *a,
			      const struct tm_index *b, uint32_t dir, const char *path, int depth)
{
	ck_assert_int_lt(depth, 64);
	struct tm_kv ka, kb;
	tm_kv_init(&ka, a, blk);
	tm_kv_init(&kb, b, blk);
	unsigned visited = 0;

	char *la = kv_listing(&ka, path), *lb = kv_listing(&kb, path);
	ck_assert_msg(strcmp(la, lb) == 0, "listing of \"%s\": built %s, loaded %s", path, la,
		      lb);
	g_free(la);
	g_free(lb);
	ck_assert_uint_eq(tm_index_lookup(a, dir, "no such name", 12, NULL), TM_NONE);
	ck_assert_uint_eq(tm_index_lookup(b, dir, "no such name", 12, NULL), TM_NONE);

	uint32_t n = tm_index_child_count(a, dir);
	ck_assert_uint_eq(n, tm_index_child_count(b, dir));
	for (uint32_t i = 0; i < n; i++) {
		const struct tm_dentry *d = tm_index_child(a, dir, i);
		const char *name = tm_index_string(a, d->name);
		ck_assert_str_eq(name, tm_index_string(b, tm_index_child(b, dir, i)->name));
		char *p = *path ? g_strdup_printf("%s/%s", path, name) : g_strdup(name);
		uint32_t da = TM_NONE, db = TM_NONE;
		uint32_t ia = tm_index_lookup(a, dir, name, strlen(name), &da);
		uint32_t ib = tm_index_lookup(b, dir, name, strlen(name), &db);
		ck_assert_uint_ne(ia, TM_NONE);
		ck_assert_uint_eq(ia, ib);
		ck_assert_uint_eq(da, db);
		ck_assert_uint_eq(tm_index_resolve(a, p), ia);
		ck_assert_uint_eq(tm_index_resolve(b, p), ia);
		ck_assert_int_eq(tm_kv_exists(&ka, p), tm_kv_exists(&kb, p));

		int64_t sa, sb;
		uint32_t na, nb;
		struct tm_kv_error ea, eb;
		ck_assert_int_eq(tm_kv_last_modified(&ka, p, &sa, &na, &ea), 0);
		ck_assert_int_eq(tm_kv_last_modified(&kb, p, &sb, &nb, &eb), 0);
		ck_assert_int_eq(sa, sb);
		ck_assert_uint_eq(na, nb);

		char *xa = xattr_dump(a, ia), *xb = xattr_dump(b, ib);
		ck_assert_str_eq(xa, xb);
		g_free(xa);
		g_free(xb);

		const struct tm_index_sparse *ma = tu_sparse_map(a, ia);
		const struct tm_index_sparse *mb = tu_sparse_map(b, ib);
		ck_assert_int_eq(ma == NULL, mb == NULL);
		if (ma) {
			ck_assert_uint_eq(ma->count, mb->count);
			assert_same_bytes(ma->chunk, mb->chunk, ma->count * sizeof ma->chunk[0],
					  "sparse chunks");
		}

		if (tm_kv_kind_of(&ka, ia) == TM_KV_VALUE) {
			ck_assert_int_eq(tm_kv_size(&ka, p, &ea), tm_kv_size(&kb, p, &eb));
			GBytes *ga = tm_kv_get(&ka, p, &ea), *gb = tm_kv_get(&kb, p, &eb);
			ck_assert_msg(ga && gb, "\"%s\": get failed", p);
			ck_assert_msg(g_bytes_equal(ga, gb), "\"%s\": values differ", p);
			g_bytes_unref(ga);
			g_bytes_unref(gb);
			char ha[65], hb[65];
			ck_assert_int_eq(tm_kv_digest(&ka, p, ha, &ea), 0);
			ck_assert_int_eq(tm_kv_digest(&kb, p, hb, &eb), 0);
			ck_assert_str_eq(ha, hb);
			/* a partial read across the middle */
			ga = tm_kv_get_partial(&ka, p, 3, 1000, &ea);
			gb = tm_kv_get_partial(&kb, p, 3, 1000, &eb);
			ck_assert(ga && gb && g_bytes_equal(ga, gb));
			g_bytes_unref(ga);
			g_bytes_unref(gb);
		}
		visited++;
		if (S_ISDIR(tm_index_inode(a, ia)->mode))
			visited += compare_reads(blk, a, b, ia, p, depth + 1);
		g_free(p);
	}
	return visited;
}

/* ---- round trip ---- */

static const char *FNAME = "x.idx";

START_TEST(test_roundtrip)
{
	GByteArray *arc = archive_of(_i);
	struct tu_built t;
	tu_build(&t, arc, 512);
	ck_assert_msg(t.idx != NULL, "%s: no index: %s", kind_name[_i], t.diags.log->str);

	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, FNAME, NULL);
	char id[65], why[300] = "";
	make_id(id, (unsigned)_i + 1);
	ck_assert_msg(tm_index_save(t.idx, path, id, NULL, why, sizeof why), "save: %s", why);
	ck_assert(exists(path));
	assert_dir_names(dir, FNAME); /* no temporary file left */

	why[0] = '\0';
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	ck_assert_msg(l != NULL, "%s: load refused: %s", kind_name[_i], why);
	assert_same_index(t.idx, l);
	/* the mapped arrays are aligned for their types */
	ck_assert_uint_eq((uintptr_t)l->inodes % 8, 0);
	ck_assert_uint_eq((uintptr_t)l->aux % 8, 0);
	ck_assert_uint_eq((uintptr_t)l->dentries % 4, 0);
	ck_assert_uint_eq((uintptr_t)l->children % 4, 0);
	ck_assert_uint_eq(tm_index_resolve(l, ""), TM_ROOT);
	ck_assert_uint_eq(tm_index_resolve(l, "no/such/path"), TM_NONE);
	unsigned visited = compare_reads(t.block, t.idx, l, TM_ROOT, "", 0);
	ck_assert_uint_eq(visited, t.idx->ndentries);

	switch (_i) {
	case K_RICH: {
		/* the archive really has what it is meant to test */
		ck_assert_uint_eq(l->errors, 0);
		uint32_t a = tm_index_resolve(l, "a.txt");
		ck_assert_uint_ne(a, TM_NONE);
		ck_assert_uint_eq(tm_index_resolve(l, "hard"), a);
		ck_assert_uint_eq(tm_index_resolve(l, "d/hard2"), a);
		ck_assert_uint_eq(tm_index_inode(l, a)->nlink, 3);
		const struct tm_inode *n = tm_index_inode(l, tm_index_resolve(l, "dev/sda"));
		ck_assert_uint_eq(n->mode, S_IFBLK | 0660);
		ck_assert_uint_eq(n->a, 8);
		ck_assert_uint_eq(n->b, 16);
		n = tm_index_inode(l, tm_index_resolve(l, "dev/null"));
		ck_assert_uint_eq(n->mode, S_IFCHR | 0666);
		ck_assert_uint_eq(tm_index_inode(l, tm_index_resolve(l, "dev/fifo"))->mode & S_IFMT,
				  S_IFIFO);
		n = tm_index_inode(l, tm_index_resolve(l, "d/link"));
		ck_assert_uint_eq(n->mode & S_IFMT, S_IFLNK);
		ck_assert_str_eq(tm_index_string(l, n->a), "../a.txt");
		n = tm_index_inode(l, tm_index_resolve(l, "longlink"));
		ck_assert_str_eq(tm_index_string(l, n->a), rich_longtarget);
		ck_assert_uint_ne(tm_index_resolve(l, rich_longname), TM_NONE);
		n = tm_index_inode(l, tm_index_resolve(l, rich_paxpath));
		ck_assert_uint_eq(n->mtime_nsec, 123456789);
		ck_assert_str_eq(tm_index_string(l, n->uname), "paxuser");
		n = tm_index_inode(l, tm_index_resolve(l, "owned.txt"));
		ck_assert_str_eq(tm_index_string(l, n->uname), "alice");
		ck_assert_str_eq(tm_index_string(l, n->gname), "staff");
		n = tm_index_inode(l, tm_index_resolve(l, "bigids"));
		ck_assert_uint_eq(n->uid, 3000000000u);
		ck_assert_uint_ne(tm_index_inode(l, tm_index_resolve(l, "x.txt"))->xattrs, TM_NONE);
		ck_assert_uint_ne(tm_index_inode(l, tm_index_resolve(l, "xd"))->xattrs, TM_NONE);
		uint32_t sp = tm_index_resolve(l, "sparse.img");
		ck_assert_ptr_nonnull(tu_sparse_map(l, sp));
		ck_assert_uint_eq(tu_sparse_map(l, sp)->count, RICH_SPARSE_N);
		ck_assert_ptr_nonnull(tu_sparse_map(l, tm_index_resolve(l, "s/v10.img")));
		ck_assert_uint_eq(tm_index_child_count(l, tm_index_resolve(l, "many")), 40);
		struct tm_kv kv;
		tm_kv_init(&kv, l, t.block);
		struct tm_kv_error e;
		GBytes *v = tm_kv_get(&kv, "dup.txt", &e);
		ck_assert_ptr_nonnull(v);
		ck_assert_uint_eq(g_bytes_get_size(v), strlen("second, longer version\n"));
		g_bytes_unref(v);
		ck_assert_uint_gt(l->aux_len, 0);
		break;
	}
	case K_END_ONLY:
		ck_assert_uint_eq(l->ninodes, 1);
		ck_assert_uint_eq(l->ndentries, 0);
		ck_assert_uint_eq(l->members, 0);
		break;
	case K_DAMAGED:
		ck_assert_uint_gt(l->errors, 0);
		ck_assert_uint_ne(tm_index_resolve(l, "m2"), TM_NONE);
		ck_assert_uint_eq(tm_index_resolve(l, "m3"), TM_NONE);
		break;
	case K_TRUNCATED:
		ck_assert(l->truncated);
		ck_assert_uint_gt(l->warnings, 0);
		break;
	}

	/* loading twice gives two independent, equal indexes */
	struct tm_index *l2 = tm_index_load(path, id, why, sizeof why);
	ck_assert_msg(l2 != NULL, "second load refused: %s", why);
	assert_same_index(l, l2);
	tm_index_free(l2);

	tm_index_free(l);
	tu_built_free(&t);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(dir);
}
END_TEST

/* The same index saved twice makes the same bytes (no uninitialised padding, no time). */
START_TEST(test_save_deterministic)
{
	GByteArray *arc = rich_archive();
	struct tu_built t;
	tu_build(&t, arc, 512);
	ck_assert_ptr_nonnull(t.idx);
	char *dir = tmpdir_new();
	char *p1 = g_build_filename(dir, "1.idx", NULL), *p2 = g_build_filename(dir, "2.idx", NULL);
	char id[65], why[300];
	make_id(id, 9);
	ck_assert_msg(tm_index_save(t.idx, p1, id, NULL, why, sizeof why), "%s", why);
	ck_assert_msg(tm_index_save(t.idx, p2, id, NULL, why, sizeof why), "%s", why);
	size_t n1, n2;
	uint8_t *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
	ck_assert_uint_eq(n1, n2);
	assert_same_bytes(b1, b2, n1, "two saves of one index");
	ck_assert(memcmp(b1, MAGIC, 8) == 0);
	/* and the same index built again saves the same bytes too */
	struct tu_built t2;
	tu_build(&t2, arc, 4096);
	ck_assert_ptr_nonnull(t2.idx);
	ck_assert_msg(tm_index_save(t2.idx, p2, id, NULL, why, sizeof why), "%s", why);
	g_free(b2);
	b2 = slurp(p2, &n2);
	ck_assert_uint_eq(n1, n2);
	assert_same_bytes(b1, b2, n1, "saves of two builds");
	g_free(b1);
	g_free(b2);
	tu_built_free(&t2);
	tu_built_free(&t);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(p1);
	g_free(p2);
	g_free(dir);
}
END_TEST

/* Saving creates missing parent directories; a save over an existing file replaces it
 * atomically: an index already loaded from the old file stays intact. */
START_TEST(test_save_replace)
{
	GByteArray *a1 = rich_archive(), *a2 = small_archive("other");
	struct tu_built t1, t2;
	tu_build(&t1, a1, 512);
	tu_build(&t2, a2, 512);
	ck_assert_ptr_nonnull(t1.idx);
	ck_assert_ptr_nonnull(t2.idx);
	char *dir = tmpdir_new();
	char *sub = g_build_filename(dir, "a", "b", NULL);
	char *path = g_build_filename(sub, "c.idx", NULL);
	char id1[65], id2[65], why[300];
	make_id(id1, 1);
	make_id(id2, 2);
	ck_assert_msg(tm_index_save(t1.idx, path, id1, NULL, why, sizeof why), "%s", why);
	assert_dir_names(sub, "c.idx");
	struct tm_index *l1 = tm_index_load(path, id1, why, sizeof why);
	ck_assert_msg(l1 != NULL, "%s", why);

	ck_assert_msg(tm_index_save(t2.idx, path, id2, NULL, why, sizeof why), "%s", why);
	assert_dir_names(sub, "c.idx");
	/* l1 still reads the old file's contents */
	assert_same_index(t1.idx, l1);
	compare_reads(t1.block, t1.idx, l1, TM_ROOT, "", 0);
	/* the file now holds the second index, for the second id only */
	ck_assert_ptr_null(tm_index_load(path, id1, why, sizeof why));
	struct tm_index *l2 = tm_index_load(path, id2, why, sizeof why);
	ck_assert_msg(l2 != NULL, "%s", why);
	assert_same_index(t2.idx, l2);
	tm_index_free(l2);
	tm_index_free(l1);

	/* a save that cannot rename (the path is a directory) fails, leaves no temporary */
	char *blocker = g_build_filename(dir, "blocker.idx", NULL);
	ck_assert_int_eq(mkdir(blocker, 0700), 0);
	why[0] = '\0';
	ck_assert(!tm_index_save(t2.idx, blocker, id2, NULL, why, sizeof why));
	ck_assert_msg(why[0] != '\0', "no reason given");
	assert_dir_names(dir, "a|blocker.idx");
	assert_dir_names(blocker, "");
	/* a parent that is a file */
	char *under_file = g_build_filename(path, "x.idx", NULL);
	why[0] = '\0';
	ck_assert(!tm_index_save(t2.idx, under_file, id2, NULL, why, sizeof why));
	ck_assert_msg(why[0] != '\0', "no reason given");
	assert_dir_names(sub, "c.idx");

	g_free(under_file);
	g_free(blocker);
	tu_built_free(&t1);
	tu_built_free(&t2);
	g_byte_array_free(a1, TRUE);
	g_byte_array_free(a2, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(sub);
	g_free(dir);
}
END_TEST

/* ---- refusals ---- */

/* A saved rich index in a fresh directory, and its bytes. */
struct saved {
	char *dir, *path, *scratch;
	char id[65];
	uint8_t *bytes;
	size_t len;
	uint32_t header_size;
	GByteArray *arc;
	struct tu_built t;
};

static void saved_make(struct saved *s, int kind)
{
	memset(s, 0, sizeof *s);
	s->arc = archive_of(kind);
	tu_build(&s->t, s->arc, 512);
	ck_assert_ptr_nonnull(s->t.idx);
	s->dir = tmpdir_new();
	s->path = g_build_filename(s->dir, "good.idx", NULL);
	s->scratch = g_build_filename(s->dir, "bad.idx", NULL);
	make_id(s->id, 77);
	char why[300];
	ck_assert_msg(tm_index_save(s->t.idx, s->path, s->id, NULL, why, sizeof why), "%s", why);
	s->bytes = slurp(s->path, &s->len);
	ck_assert(memcmp(s->bytes, MAGIC, 8) == 0);
	uint32_t version;
	memcpy(&version, s->bytes + OFF_VERSION, 4);
	ck_assert_uint_eq(version, 4);
	memcpy(&s->header_size, s->bytes + OFF_HEADER_SIZE, 4);
	ck_assert_uint_ge(s->header_size, 8 + 4 + 4 + 64);
	ck_assert_uint_lt(s->header_size, s->len);
}

static void saved_free(struct saved *s)
{
	tu_built_free(&s->t);
	g_byte_array_free(s->arc, TRUE);
	rm_rf(s->dir);
	g_free(s->bytes);
	g_free(s->path);
	g_free(s->scratch);
	g_free(s->dir);
}

/* Loading path with id must fail with a reason; what says which case. */
static void assert_refused(const char *path, const char *id, const char *what)
{
	char why[300];
	memset(why, 0, sizeof why);
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	if (l)
		tm_index_free(l);
	ck_assert_msg(l == NULL, "%s: loaded", what);
	ck_assert_msg(why[0] != '\0', "%s: refused without a reason", what);
	ck_assert_msg(memchr(why, '\0', sizeof why) != NULL, "%s: reason not terminated", what);
}

/* Everything l serves (what its accessors do not refuse as damaged) is what want, the
 * index it was saved from, holds: names, inodes, entries, lookups, sparse maps, xattrs. */
static void assert_serves_only(const struct tm_index *want, const struct tm_index *l,
			       const char *what)
{
	ck_assert_uint_eq(want->ninodes, l->ninodes);
	for (uint32_t i = 0; i < l->ninodes; i++) {
		const struct tm_inode *in = tm_index_inode(l, i);
		if (!in)
			continue;
		ck_assert_msg(!memcmp(in, &want->inodes[i], sizeof *in), "%s: inode %u differs",
			      what, i);
		const char *u = tm_index_string(l, in->uname);
		ck_assert_msg(!u || !strcmp(u, want->strings + in->uname), "%s: uname", what);
		const struct tm_index_sparse *m;
		if (tm_index_sparse_map(l, i, &m) && m)
			ck_assert_msg(!memcmp(m, want->aux + in->a, 8 + m->count * 24),
				      "%s: sparse map of %u", what, i);
		uint32_t cur = 0, vlen;
		const char *xn;
		const void *xv;
		while (tm_index_xattr_next(l, i, &cur, &xn, &xv, &vlen) > 0)
			ck_assert_msg((const uint8_t *)xn - l->aux < (ptrdiff_t)l->aux_len &&
					      !strcmp(xn, (const char *)want->aux +
								  ((const uint8_t *)xn - l->aux)),
				      "%s: xattr of %u", what, i);
		if (!S_ISDIR(in->mode))
			continue;
		for (uint32_t k = 0; k < in->b; k++) {
			const struct tm_dentry *d = tm_index_child(l, i, k);
			const struct tm_dentry *wd = tm_index_child(want, i, k);
			if (!d)
				continue;
			ck_assert_msg(!memcmp(d, wd, sizeof *d), "%s: entry %u/%u", what, i, k);
			const char *name = tm_index_string(l, d->name);
			if (!name)
				continue;
			ck_assert_msg(!strcmp(name, tm_index_string(want, wd->name)),
				      "%s: name %u/%u", what, i, k);
			uint32_t got = tm_index_lookup(l, i, name, strlen(name), NULL);
			ck_assert_msg(got == TM_DAMAGED || got == wd->inode, "%s: lookup '%s' in %u",
				      what, name, i);
		}
	}
}

/* Loading path with id is refused with a reason, or the index loads and then every
 * damaged part is refused as it is read (tm_index_check_all finds the damage), with
 * nothing else served than what want holds. */
static void assert_refused_or_damaged(const char *path, const char *id,
				      const struct tm_index *want, const char *what)
{
	char why[300];
	memset(why, 0, sizeof why);
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	if (!l) {
		ck_assert_msg(why[0] != '\0', "%s: refused without a reason", what);
		ck_assert_msg(memchr(why, '\0', sizeof why) != NULL, "%s: reason not terminated",
			      what);
		return;
	}
	assert_serves_only(want, l, what);
	ck_assert_msg(!tm_index_check_all(l), "%s: damage not found", what);
	ck_assert(tm_index_damaged(l));
	tm_index_free(l);
}

static void assert_loads(const char *path, const char *id, const struct tm_index *want,
			 const char *what)
{
	char why[300] = "";
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	ck_assert_msg(l != NULL, "%s: refused: %s", what, why);
	assert_same_index(want, l);
	tm_index_free(l);
}

START_TEST(test_missing)
{
	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, "none.idx", NULL);
	char id[65];
	make_id(id, 1);
	assert_refused(path, id, "missing file");
	char *in_missing_dir = g_build_filename(dir, "no", "such", "dir.idx", NULL);
	assert_refused(in_missing_dir, id, "missing directory");
	/* a directory is not an index */
	assert_refused(dir, id, "a directory");
	/* nor is an empty character device */
	assert_refused("/dev/null", id, "/dev/null");
	/* loading writes nothing */
	assert_dir_names(dir, "");
	rm_rf(dir);
	g_free(in_missing_dir);
	g_free(path);
	g_free(dir);
}
END_TEST

START_TEST(test_wrong_source)
{
	struct saved s;
	saved_make(&s, K_RICH);
	char other[65];
	make_id(other, 78);
	assert_refused(s.path, other, "another source id");
	/* one hex digit different, first and last */
	char near[65];
	memcpy(near, s.id, 65);
	near[0] = near[0] == '0' ? '1' : '0';
	assert_refused(s.path, near, "source id differing in its first digit");
	memcpy(near, s.id, 65);
	near[63] = near[63] == '0' ? '1' : '0';
	assert_refused(s.path, near, "source id differing in its last digit");
	/* the refusals left the file as it was */
	size_t n;
	uint8_t *b = slurp(s.path, &n);
	ck_assert_uint_eq(n, s.len);
	ck_assert(memcmp(b, s.bytes, n) == 0);
	g_free(b);
	assert_loads(s.path, s.id, s.t.idx, "the right id");
	saved_free(&s);
}
END_TEST

static void check_truncations(struct saved *s)
{
	char what[100];
	GArray *lens = g_array_new(FALSE, FALSE, sizeof(size_t));
	size_t fixed[] = { 0, 1, 7, 8, 12, 16, s->header_size - 1, s->header_size,
			   s->header_size + 1, s->len - 1 };
	g_array_append_vals(lens, fixed, G_N_ELEMENTS(fixed));
	for (size_t l = 64; l < s->len; l += 64)
		g_array_append_val(lens, l);
	for (guint i = 0; i < lens->len; i++) {
		size_t l = g_array_index(lens, size_t, i);
		if (l >= s->len)
			continue;
		spit(s->scratch, s->bytes, l);
		snprintf(what, sizeof what, "truncated to %zu of %zu bytes", l, s->len);
		assert_refused(s->scratch, s->id, what);
	}
	g_array_free(lens, TRUE);
}

START_TEST(test_truncated)
{
	struct saved s;
	saved_make(&s, _i);
	check_truncations(&s);
	/* the header alone */
	spit(s.scratch, s.bytes, s.header_size);
	assert_refused(s.scratch, s.id, "header only");
	assert_loads(s.path, s.id, s.t.idx, "the intact file");
	saved_free(&s);
}
END_TEST

START_TEST(test_extended)
{
	struct saved s;
	saved_make(&s, K_RICH);
	static const size_t extra[] = { 1, 7, 8, 64, 4096 };
	for (size_t i = 0; i < G_N_ELEMENTS(extra); i++) {
		uint8_t *b = g_malloc0(s.len + extra[i]);
		memcpy(b, s.bytes, s.len);
		spit(s.scratch, b, s.len + extra[i]);
		char what[64];
		snprintf(what, sizeof what, "%zu zero bytes appended", extra[i]);
		assert_refused(s.scratch, s.id, what);
		g_free(b);
	}
	/* the file twice */
	uint8_t *b = g_malloc(2 * s.len);
	memcpy(b, s.bytes, s.len);
	memcpy(b + s.len, s.bytes, s.len);
	spit(s.scratch, b, 2 * s.len);
	assert_refused(s.scratch, s.id, "the file twice");
	g_free(b);
	saved_free(&s);
}
END_TEST

/* Every bit of every header byte, one at a time. */
START_TEST(test_header_bitflips)
{
	struct saved s;
	saved_make(&s, _i);
	spit(s.scratch, s.bytes, s.len);
	int fd = open(s.scratch, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	char what[100];
	for (size_t off = 0; off < s.header_size; off++)
		for (int bit = 0; bit < 8; bit++) {
			poke(fd, off, s.bytes[off] ^ (uint8_t)(1u << bit));
			snprintf(what, sizeof what, "header byte %zu bit %d flipped", off, bit);
			assert_refused(s.scratch, s.id, what);
			poke(fd, off, s.bytes[off]);
		}
	close(fd);
	assert_loads(s.scratch, s.id, s.t.idx, "restored copy");
	saved_free(&s);
}
END_TEST

/* A sample of data bytes: every 29th, the first and last of the data, and each of the eight
 * bits at a few places. */
START_TEST(test_data_bitflips)
{
	struct saved s;
	saved_make(&s, _i);
	spit(s.scratch, s.bytes, s.len);
	int fd = open(s.scratch, O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	char what[100];
	unsigned tried = 0;
	for (size_t off = s.header_size; off < s.len; off++) {
		bool every_bit = off == s.header_size || off == s.len - 1 ||
				 off == s.header_size + (s.len - s.header_size) / 2;
		if (!every_bit && (off - s.header_size) % 29 != 0)
			continue;
		for (int bit = 0; bit < 8; bit++) {
			if (!every_bit && bit != (int)(off % 8))
				continue;
			poke(fd, off, s.bytes[off] ^ (uint8_t)(1u << bit));
			snprintf(what, sizeof what, "data byte %zu of %zu, bit %d flipped", off,
				 s.len, bit);
			assert_refused_or_damaged(s.scratch, s.id, s.t.idx, what);
			poke(fd, off, s.bytes[off]);
			tried++;
		}
	}
	ck_assert_uint_gt(tried, 8);
	/* a whole byte zeroed, and set to 0xff, in the middle */
	size_t mid = s.header_size + (s.len - s.header_size) / 3;
	uint8_t v[] = { 0x00, 0xff, (uint8_t)~s.bytes[mid] };
	for (size_t i = 0; i < G_N_ELEMENTS(v); i++) {
		if (v[i] == s.bytes[mid])
			continue;
		poke(fd, mid, v[i]);
		assert_refused_or_damaged(s.scratch, s.id, s.t.idx, "a data byte replaced");
		poke(fd, mid, s.bytes[mid]);
	}
	close(fd);
	assert_loads(s.scratch, s.id, s.t.idx, "restored copy");
	saved_free(&s);
}
END_TEST

/* Two bytes swapped inside the data (a checksum that only sums would miss it). */
START_TEST(test_data_swaps)
{
	struct saved s;
	saved_make(&s, K_RICH);
	uint8_t *b = g_malloc(s.len);
	unsigned tried = 0;
	for (size_t off = s.header_size; off + 8 < s.len && tried < 64; off += 97) {
		size_t o2 = off + 8; /* the same lane of the next word */
		if (s.bytes[off] == s.bytes[o2])
			continue;
		memcpy(b, s.bytes, s.len);
		b[off] = s.bytes[o2];
		b[o2] = s.bytes[off];
		spit(s.scratch, b, s.len);
		char what[100];
		snprintf(what, sizeof what, "data bytes %zu and %zu swapped", off, o2);
		assert_refused_or_damaged(s.scratch, s.id, s.t.idx, what);
		tried++;
	}
	ck_assert_uint_gt(tried, 4);
	g_free(b);
	saved_free(&s);
}
END_TEST

START_TEST(test_random_files)
{
	struct saved s;
	saved_make(&s, K_RICH);
	size_t sizes[] = { 1, 8, 100, s.header_size - 1, s.header_size, s.header_size + 8, 4096,
			   s.len, 65536 };
	char what[100];
	for (size_t i = 0; i < G_N_ELEMENTS(sizes); i++) {
		uint8_t *b = g_malloc(sizes[i]);
		for (uint32_t seed = 1; seed <= 3; seed++) {
			tu_fill(b, sizes[i], seed * 1000 + (uint32_t)i);
			spit(s.scratch, b, sizes[i]);
			snprintf(what, sizeof what, "%zu random bytes (seed %u)", sizes[i], seed);
			assert_refused(s.scratch, s.id, what);
			/* random bytes behind the right magic, version and header size */
			if (sizes[i] >= s.header_size) {
				memcpy(b, s.bytes, 16);
				spit(s.scratch, b, sizes[i]);
				snprintf(what, sizeof what,
					 "%zu random bytes behind a valid magic (seed %u)", sizes[i],
					 seed);
				assert_refused(s.scratch, s.id, what);
			}
			/* the valid header followed by random data */
			if (sizes[i] > s.header_size) {
				memcpy(b, s.bytes, s.header_size);
				spit(s.scratch, b, sizes[i]);
				snprintf(what, sizeof what, "valid header, %zu random bytes (seed %u)",
					 sizes[i], seed);
				assert_refused_or_damaged(s.scratch, s.id, s.t.idx, what);
			}
		}
		g_free(b);
	}
	/* zeros of the right length; the valid file with its data zeroed */
	uint8_t *z = g_malloc0(s.len);
	spit(s.scratch, z, s.len);
	assert_refused(s.scratch, s.id, "zeros");
	memcpy(z, s.bytes, s.header_size);
	spit(s.scratch, z, s.len);
	assert_refused_or_damaged(s.scratch, s.id, s.t.idx, "valid header, zero data");
	g_free(z);
	spit(s.scratch, "", 0);
	assert_refused(s.scratch, s.id, "empty file");
	saved_free(&s);
}
END_TEST

/* Another format version, patched without fixing the header checksum: refused by the
 * version or by the checksum, either is right.  The same for header_size. */
START_TEST(test_other_version)
{
	struct saved s;
	saved_make(&s, K_RICH);
	static const uint32_t versions[] = { 0, 1, 2, 3, 5, 0x100, 0x01000000, UINT32_MAX };
	uint8_t *b = g_malloc(s.len);
	char what[100];
	for (size_t i = 0; i < G_N_ELEMENTS(versions); i++) {
		memcpy(b, s.bytes, s.len);
		memcpy(b + OFF_VERSION, &versions[i], 4);
		spit(s.scratch, b, s.len);
		snprintf(what, sizeof what, "version %u", versions[i]);
		assert_refused(s.scratch, s.id, what);
		/* the version is read before anything else is trusted: said as such */
		char why[300] = "";
		ck_assert_ptr_null(tm_index_load(s.scratch, s.id, why, sizeof why));
		ck_assert_msg(strstr(why, "version") != NULL, "%s: refused for \"%s\"", what, why);
	}
	static const uint32_t hsizes[] = { 0, 8, 199, 201, 208, 4096, UINT32_MAX };
	for (size_t i = 0; i < G_N_ELEMENTS(hsizes); i++) {
		if (hsizes[i] == s.header_size)
			continue;
		memcpy(b, s.bytes, s.len);
		memcpy(b + OFF_HEADER_SIZE, &hsizes[i], 4);
		spit(s.scratch, b, s.len);
		snprintf(what, sizeof what, "header size %u", hsizes[i]);
		assert_refused(s.scratch, s.id, what);
	}
	/* another magic */
	memcpy(b, s.bytes, s.len);
	memcpy(b, "TARMIDX\r", 8);
	spit(s.scratch, b, s.len);
	assert_refused(s.scratch, s.id, "another magic");
	g_free(b);
	saved_free(&s);
}
END_TEST

/* ---- crafted files with valid checksums ----
 * tm_index_save checksums whatever arrays it is given, so a hand-corrupted index saved
 * through it has a valid header and data checksum: only the structure checks stand between
 * it and the readers.  (No checksum code is copied here.) */

struct craft {
	struct tm_index idx; /* points into the copies below; never tm_index_free'd */
	struct tm_inode *inodes;
	struct tm_dentry *dentries;
	uint32_t *children;
	char *strings;
	uint8_t *aux;
};

static void *dup_or_null(const void *p, uint64_t len)
{
	return len ? g_memdup2(p, len) : NULL;
}

static void craft_from(struct craft *c, const struct tm_index *src)
{
	memset(c, 0, sizeof *c);
	c->idx = *src;
	c->idx.storage = c->idx.map = NULL;
	c->idx.map_len = 0;
	c->inodes = dup_or_null(src->inodes, (uint64_t)src->ninodes * sizeof *src->inodes);
	c->dentries = dup_or_null(src->dentries, (uint64_t)src->ndentries * sizeof *src->dentries);
	c->children = dup_or_null(src->children, (uint64_t)src->nchildren * sizeof *src->children);
	c->strings = dup_or_null(src->strings, src->strings_len);
	/* room for a sparse map or xattr list pointed past the end */
	c->aux = g_malloc0(src->aux_len + 64);
	if (src->aux_len)
		memcpy(c->aux, src->aux, src->aux_len);
	c->idx.inodes = c->inodes;
	c->idx.dentries = c->dentries;
	c->idx.children = c->children;
	c->idx.strings = c->strings;
	c->idx.aux = c->aux;
}

static void craft_clear(struct craft *c)
{
	g_free(c->inodes);
	g_free(c->dentries);
	g_free(c->children);
	g_free(c->strings);
	g_free(c->aux);
}

/* The first inode of a type (S_IFDIR...) other than the root, with a predicate on it. */
static uint32_t first_of(const struct tm_index *idx, uint32_t type, bool sparse, bool xattrs)
{
	for (uint32_t i = 1; i < idx->ninodes; i++) {
		const struct tm_inode *n = &idx->inodes[i];
		if ((n->mode & S_IFMT) != type)
			continue;
		if (type == S_IFREG && sparse != (n->a != TM_NONE))
			continue;
		if (xattrs && n->xattrs == TM_NONE)
			continue;
		return i;
	}
	ck_abort_msg("no inode of type %o in the rich archive", type);
	return TM_NONE;
}

static bool exercise(const struct tm_index *idx, struct tm_block *blk);

enum crafted_case {
	C_DENTRY_INODE, C_DENTRY_NAME, C_CHILD_SLOT, C_ROOT_NOT_DIR, C_DIR_FIRST, C_DIR_COUNT,
	C_SYMLINK_TARGET, C_SYMLINK_SIZE, C_SPARSE_OUT, C_SPARSE_ALIGN, C_SPARSE_COUNT,
	C_SPARSE_CHUNK_PAST_SIZE, C_SPARSE_CHUNKS_UNORDERED, C_XATTR_OUT, C_XATTR_ALIGN,
	C_XATTR_NAME_LEN, C_XATTR_VALUE_LEN, C_STRINGS_END, C_STRINGS_START, C_UNAME, C_GNAME,
	C_NO_INODES, C_NO_STRINGS, C_COUNT
};

START_TEST(test_crafted)
{
	GByteArray *arc = rich_archive();
	struct tu_built t;
	tu_build(&t, arc, 512);
	ck_assert_ptr_nonnull(t.idx);
	const struct tm_index *src = t.idx;
	struct craft c;
	craft_from(&c, src);
	uint32_t dir = first_of(src, S_IFDIR, false, false);
	uint32_t sym = first_of(src, S_IFLNK, false, false);
	uint32_t sp = first_of(src, S_IFREG, true, false);
	uint32_t xf = first_of(src, S_IFREG, false, true);
	struct tm_index_sparse *map = (void *)(c.aux + c.inodes[sp].a);
	uint32_t *xl = (void *)(c.aux + c.inodes[xf].xattrs);
	switch (_i) {
	case C_DENTRY_INODE:
		c.dentries[src->ndentries - 1].inode = src->ninodes;
		break;
	case C_DENTRY_NAME:
		c.dentries[0].name = (uint32_t)src->strings_len;
		break;
	case C_CHILD_SLOT:
		c.children[src->nchildren - 1] = src->ndentries;
		break;
	case C_ROOT_NOT_DIR:
		c.inodes[TM_ROOT].mode = S_IFREG | 0644;
		break;
	case C_DIR_FIRST:
		c.inodes[dir].a = src->nchildren + 1;
		break;
	case C_DIR_COUNT:
		c.inodes[dir].b = src->nchildren - c.inodes[dir].a + 1;
		break;
	case C_SYMLINK_TARGET:
		c.inodes[sym].a = (uint32_t)src->strings_len;
		break;
	case C_SYMLINK_SIZE:
		c.inodes[sym].size++;
		break;
	case C_SPARSE_OUT:
		c.inodes[sp].a = (uint32_t)src->aux_len;
		break;
	case C_SPARSE_ALIGN:
		c.inodes[sp].a += 4;
		break;
	case C_SPARSE_COUNT:
		map->count = src->aux_len; /* more chunks than aux can hold */
		break;
	case C_SPARSE_CHUNK_PAST_SIZE:
		map->chunk[map->count - 1].length = c.inodes[sp].size; /* ends past the size */
		break;
	case C_SPARSE_CHUNKS_UNORDERED:
		map->chunk[1].offset = 0; /* overlaps chunk 0 */
		break;
	case C_XATTR_OUT:
		c.inodes[xf].xattrs = (uint32_t)src->aux_len;
		break;
	case C_XATTR_ALIGN:
		c.inodes[xf].xattrs += 1;
		break;
	case C_XATTR_NAME_LEN:
		xl[0] = (uint32_t)src->aux_len; /* the name runs past aux */
		break;
	case C_XATTR_VALUE_LEN:
		xl[1] = (uint32_t)src->aux_len;
		break;
	case C_STRINGS_END:
		c.strings[src->strings_len - 1] = 'x';
		break;
	case C_STRINGS_START:
		c.strings[0] = 'x';
		break;
	case C_UNAME:
		c.inodes[xf].uname = (uint32_t)src->strings_len;
		break;
	case C_GNAME:
		c.inodes[TM_ROOT].gname = UINT32_MAX - 1;
		break;
	case C_NO_INODES:
		c.idx.ninodes = 0;
		break;
	case C_NO_STRINGS:
		c.idx.strings_len = 0;
		break;
	}
	char *dir_ = tmpdir_new();
	char *path = g_build_filename(dir_, "c.idx", NULL);
	char id[65], why[300];
	make_id(id, 3);
	ck_assert_msg(tm_index_save(&c.idx, path, id, NULL, why, sizeof why), "save: %s", why);
	char what[64];
	snprintf(what, sizeof what, "crafted case %d", _i);
	/* Refused at load, or loaded and the change found where it is read (the fields
	 * every reader needs first are checked at load). */
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	if (l) {
		exercise(l, t.block);
		ck_assert_msg(!tm_index_check_all(l), "%s: the change is not found", what);
		tm_index_free(l);
	}
	/* the same file with the fields put back loads: the refusal was for the change */
	craft_clear(&c);
	craft_from(&c, src);
	ck_assert_msg(tm_index_save(&c.idx, path, id, NULL, why, sizeof why), "save: %s", why);
	assert_loads(path, id, src, "crafted copy, unchanged");
	craft_clear(&c);
	tu_built_free(&t);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir_);
	g_free(path);
	g_free(dir_);
}
END_TEST

/* Read everything an index offers, the way tarkv and the FUSE frontend do, without ever
 * visiting a directory twice (a crafted index may have cycles).  Returns whether a
 * directory was reached twice. */
static bool exercise(const struct tm_index *idx, struct tm_block *blk)
{
	struct tm_kv kv;
	tm_kv_init(&kv, idx, blk);
	uint8_t *seen = g_malloc0(idx->ninodes);
	GArray *stack = g_array_new(FALSE, FALSE, sizeof(uint32_t));
	uint32_t root = TM_ROOT;
	g_array_append_val(stack, root);
	seen[TM_ROOT] = 1;
	bool again = false;
	uint8_t buf[256];
	unsigned budget = 100000;
	while (stack->len && budget--) {
		uint32_t d = g_array_index(stack, uint32_t, stack->len - 1);
		g_array_set_size(stack, stack->len - 1);
		uint32_t n = tm_index_child_count(idx, d);
		for (uint32_t i = 0; i < n && budget; i++, budget--) {
			const struct tm_dentry *de = tm_index_child(idx, d, i);
			const char *name = de ? tm_index_string(idx, de->name) : NULL;
			if (!name)
				continue;
			(void)tm_index_lookup(idx, d, name, strlen(name), NULL);
			uint32_t ino = de->inode;
			const struct tm_inode *in = tm_index_inode(idx, ino);
			if (!in)
				continue;
			const char *u = tm_index_string(idx, in->uname);
			const char *g = tm_index_string(idx, in->gname);
			(void)(u ? strlen(u) : 0), (void)(g ? strlen(g) : 0);
			uint32_t cur = 0, vlen;
			const char *xn;
			const void *xv;
			for (int k = 0;
			     k < 64 && tm_index_xattr_next(idx, ino, &cur, &xn, &xv, &vlen) > 0; k++) {
				volatile uint8_t sink = vlen ? ((const uint8_t *)xv)[vlen - 1] : 0;
				(void)sink;
				(void)strlen(xn);
			}
			const struct tm_index_sparse *m;
			if (tm_index_sparse_map(idx, ino, &m) && m && m->count)
				(void)m->chunk[m->count - 1].stored;
			if (S_ISDIR(in->mode)) {
				if (seen[ino])
					again = true;
				else {
					seen[ino] = 1;
					g_array_append_val(stack, ino);
				}
			} else {
				struct tm_kv_error e;
				(void)tm_kv_read(&kv, ino, buf, sizeof buf, 0, &e);
				if (in->size > sizeof buf)
					(void)tm_kv_read(&kv, ino, buf, sizeof buf,
							 in->size - sizeof buf / 2, &e);
			}
		}
	}
	g_array_free(stack, TRUE);
	g_free(seen);
	return again;
}

/* Random words of the arrays replaced by random or boundary values, saved (so checksummed)
 * and loaded: refused, or readable without a fault.  Run it under ASan to make it mean
 * something. */
START_TEST(test_crafted_random)
{
	GByteArray *arc = rich_archive();
	struct tu_built t;
	tu_build(&t, arc, 512);
	ck_assert_ptr_nonnull(t.idx);
	const struct tm_index *src = t.idx;
	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, "r.idx", NULL);
	char id[65], why[300];
	make_id(id, 4);
	struct craft c;
	unsigned loaded = 0, cycles = 0;
	uint32_t x = 12345u + (uint32_t)_i * 7919u;
#define RND() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
	for (int iter = 0; iter < 300; iter++) {
		craft_from(&c, src);
		int changes = 1 + (int)(RND() % 3);
		for (int k = 0; k < changes; k++) {
			uint8_t *base;
			uint64_t len;
			switch (RND() % 4) {
			case 0:
				base = (uint8_t *)c.inodes, len = src->ninodes * sizeof *c.inodes;
				break;
			case 1:
				base = (uint8_t *)c.dentries, len = src->ndentries * sizeof *c.dentries;
				break;
			case 2:
				base = (uint8_t *)c.children, len = src->nchildren * sizeof *c.children;
				break;
			default:
				base = c.aux, len = src->aux_len;
				break;
			}
			if (len < 4)
				continue;
			uint64_t at = (RND() % (len / 4)) * 4;
			uint32_t vals[] = { 0, 1, 2, TM_NONE, TM_NONE - 1, src->ninodes,
					    src->ninodes - 1, src->ndentries, src->nchildren,
					    (uint32_t)src->strings_len, (uint32_t)src->strings_len - 1,
					    (uint32_t)src->aux_len, (uint32_t)src->aux_len - 8,
					    S_IFDIR | 0755, S_IFLNK | 0777, S_IFREG | 0644, RND() };
			uint32_t v = vals[RND() % G_N_ELEMENTS(vals)];
			memcpy(base + at, &v, 4);
		}
		ck_assert_msg(tm_index_save(&c.idx, path, id, NULL, why, sizeof why), "save: %s", why);
		craft_clear(&c);
		struct tm_index *l = tm_index_load(path, id, why, sizeof why);
		if (!l) {
			ck_assert_msg(why[0] != '\0', "iteration %d: refused without a reason", iter);
			continue;
		}
		loaded++;
		if (exercise(l, t.block))
			cycles++;
		/* again on exact-size heap copies of the arrays, so that ASan sees a read past
		 * any one of them (the mapping has no redzones) */
		craft_from(&c, l);
		g_free(c.aux);
		c.aux = dup_or_null(l->aux, l->aux_len);
		c.idx.aux = c.aux;
		exercise(&c.idx, t.block);
		craft_clear(&c);
		tm_index_free(l);
	}
#undef RND
	if (cycles)
		fprintf(stderr, "test_crafted_random(%d): %u of %u loaded crafted indexes reach a "
				"directory twice (cycles or directory hard links)\n",
			_i, cycles, loaded);
	tu_built_free(&t);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(dir);
}
END_TEST

/* ---- tm_index_open ---- */

struct opened {
	struct tm_block *block;
	struct tu_diags diags;
	struct tm_index_options opts;
};

static void opened_init(struct opened *o, const GByteArray *arc)
{
	memset(o, 0, sizeof *o);
	o->block = tm_block_mem_new(arc->data, arc->len, 512);
	ck_assert_ptr_nonnull(o->block);
	o->diags.log = g_string_new(NULL);
	o->opts.diag = tu_diag_cb;
	o->opts.diag_ud = &o->diags;
}

static void opened_clear(struct opened *o)
{
	tm_block_disconnect(o->block);
	g_string_free(o->diags.log, TRUE);
}

/* tm_index_open(path, persist) on o; the index must come back. */
static struct tm_index *open_idx(struct opened *o, const char *path, bool persist, bool *loaded)
{
	struct tm_block_error err;
	memset(&err, 0, sizeof err);
	*loaded = true; /* must be set either way */
	g_string_truncate(o->diags.log, 0);
	o->diags.warnings = o->diags.errors = 0;
	struct tm_index *idx = tm_index_open(o->block, &o->opts, path, persist, loaded, &err);
	ck_assert_msg(idx != NULL, "tm_index_open(%s, %d): no index: %d %s; %s",
		      path ? path : "NULL", persist, err.code, err.msg, o->diags.log->str);
	return idx;
}

START_TEST(test_open_no_persist)
{
	GByteArray *arc = rich_archive();
	struct opened o;
	opened_init(&o, arc);
	struct tu_built t;
	tu_build(&t, arc, 512);
	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, "x.idx", NULL);
	bool loaded;
	struct tm_index *idx = open_idx(&o, path, false, &loaded);
	ck_assert(!loaded);
	assert_same_index(t.idx, idx);
	tm_index_free(idx);
	ck_assert(!exists(path));
	assert_dir_names(dir, "");

	/* an existing, valid file is not read either */
	char id[65];
	struct tm_block_error err;
	ck_assert(tm_block_identity(o.block, id, &err));
	char why[300];
	ck_assert_msg(tm_index_save(t.idx, path, id, NULL, why, sizeof why), "%s", why);
	idx = open_idx(&o, path, false, &loaded);
	ck_assert(!loaded);
	tm_index_free(idx);

	/* nor is the default place written: with the cache pointed at dir (when glib has not
	 * read the cache directory yet in this process) */
	char *cache = g_build_filename(dir, "cache", NULL);
	ck_assert_int_eq(mkdir(cache, 0700), 0);
	g_setenv("XDG_CACHE_HOME", cache, TRUE);
	if (strcmp(g_get_user_cache_dir(), cache) == 0) {
		idx = open_idx(&o, NULL, false, &loaded);
		ck_assert(!loaded);
		tm_index_free(idx);
		assert_dir_names(cache, "");
	}
	g_free(cache);
	ck_assert_uint_eq(o.diags.warnings, 0);
	tu_built_free(&t);
	opened_clear(&o);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(dir);
}
END_TEST

START_TEST(test_open_persist)
{
	GByteArray *arc = archive_of(_i);
	struct opened o;
	opened_init(&o, arc);
	struct tu_built t;
	tu_build(&t, arc, 512);
	ck_assert_ptr_nonnull(t.idx);
	char *dir = tmpdir_new();
	char *sub = g_build_filename(dir, "made", "here", NULL);
	char *path = g_build_filename(sub, "x.idx", NULL);
	bool loaded;

	/* first: built and written (parent directories created) */
	struct tm_index *i1 = open_idx(&o, path, true, &loaded);
	ck_assert(!loaded);
	ck_assert_msg(exists(path), "%s not written; diagnostics: %s", path, o.diags.log->str);
	assert_dir_names(sub, "x.idx");
	assert_same_index(t.idx, i1);
	ck_assert_msg(strstr(o.diags.log->str, "index not saved") == NULL, "%s",
		      o.diags.log->str);
	size_t n1;
	uint8_t *b1 = slurp(path, &n1);

	/* second: loaded, no diagnostics at all (the archive is not scanned again) */
	struct tm_index *i2 = open_idx(&o, path, true, &loaded);
	ck_assert(loaded);
	ck_assert_uint_eq(o.diags.warnings + o.diags.errors, 0);
	assert_same_index(i1, i2);
	compare_reads(o.block, i1, i2, TM_ROOT, "", 0);
	size_t n2;
	uint8_t *b2 = slurp(path, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert(memcmp(b1, b2, n1) == 0);
	g_free(b2);
	tm_index_free(i2);

	/* a corrupt file: loaded, and found damaged where it is read (or refused and rebuilt
	 * when the damage is in what loading checks); removed as the front ends do on
	 * damage, rebuilt and replaced, then loaded */
	uint8_t *bad = g_memdup2(b1, n1);
	bad[n1 / 2] ^= 0x10;
	spit(path, bad, n1);
	g_free(bad);
	i2 = open_idx(&o, path, true, &loaded);
	if (loaded) {
		ck_assert(!tm_index_check_all(i2));
		tm_index_free(i2);
		ck_assert_int_eq(unlink(path), 0);
		i2 = open_idx(&o, path, true, &loaded);
	}
	ck_assert(!loaded);
	assert_same_index(t.idx, i2);
	tm_index_free(i2);
	b2 = slurp(path, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_msg(memcmp(b1, b2, n1) == 0, "the corrupt file was not replaced");
	g_free(b2);
	i2 = open_idx(&o, path, true, &loaded);
	ck_assert(loaded);
	tm_index_free(i2);

	/* an empty file and a truncated one: the same */
	spit(path, "", 0);
	i2 = open_idx(&o, path, true, &loaded);
	ck_assert(!loaded);
	tm_index_free(i2);
	spit(path, b1, n1 - 1);
	i2 = open_idx(&o, path, true, &loaded);
	ck_assert(!loaded);
	tm_index_free(i2);
	i2 = open_idx(&o, path, true, &loaded);
	ck_assert(loaded);
	tm_index_free(i2);
	assert_dir_names(sub, "x.idx");

	g_free(b1);
	tm_index_free(i1);
	tu_built_free(&t);
	opened_clear(&o);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(sub);
	g_free(dir);
}
END_TEST

/* One path, two archives: the index always describes the archive asked about. */
START_TEST(test_open_source_changed)
{
	GByteArray *a1 = small_archive("only-in-one"), *a2 = small_archive("only-in-two");
	struct opened o1, o2;
	opened_init(&o1, a1);
	opened_init(&o2, a2);
	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, "x.idx", NULL);
	bool loaded;
	struct tm_index *i;

	i = open_idx(&o1, path, true, &loaded);
	ck_assert(!loaded);
	ck_assert_uint_ne(tm_index_resolve(i, "only-in-one"), TM_NONE);
	tm_index_free(i);

	i = open_idx(&o2, path, true, &loaded);
	ck_assert_msg(!loaded, "the index of another archive was used");
	ck_assert_uint_ne(tm_index_resolve(i, "only-in-two"), TM_NONE);
	ck_assert_uint_eq(tm_index_resolve(i, "only-in-one"), TM_NONE);
	tm_index_free(i);

	i = open_idx(&o2, path, true, &loaded);
	ck_assert(loaded);
	ck_assert_uint_ne(tm_index_resolve(i, "only-in-two"), TM_NONE);
	tm_index_free(i);

	i = open_idx(&o1, path, true, &loaded);
	ck_assert(!loaded);
	ck_assert_uint_ne(tm_index_resolve(i, "only-in-one"), TM_NONE);
	ck_assert_uint_eq(tm_index_resolve(i, "only-in-two"), TM_NONE);
	tm_index_free(i);

	/* the identities differ, and are 64 lowercase hex digits */
	char id1[65], id2[65];
	struct tm_block_error err;
	ck_assert(tm_block_identity(o1.block, id1, &err));
	ck_assert(tm_block_identity(o2.block, id2, &err));
	ck_assert_str_ne(id1, id2);
	ck_assert_uint_eq(strlen(id1), 64);
	ck_assert_uint_eq(strspn(id1, "0123456789abcdef"), 64);

	opened_clear(&o1);
	opened_clear(&o2);
	g_byte_array_free(a1, TRUE);
	g_byte_array_free(a2, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(dir);
}
END_TEST

/* tm_index_verify, on a loaded index: the source it was made from passes, even where pax
 * names are not what the headers' own name fields say (tools put an ASCII stand-in
 * there); the same bytes with any one member's header changed do not (with under 64
 * members, every header is in the sample); nor does a shorter source. */
START_TEST(test_verify)
{
	GByteArray *a = g_byte_array_new();
	static const char *const names[] = { "caf\xc3\xa9", "na\xc3\xafve", "\xe6\x97\xa5",
					     "d/x", "plain" };
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		GString *x = g_string_new(NULL);
		tu_pax_str(x, "path", names[i]);
		tu_pax_str(x, "size", "5");
		tu_add_pax(a, 'x', "PaxHeaders/stand-in", x);
		g_string_free(x, TRUE);
		tu_add_file(a, "caf?", "12345");
	}
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, 512);
	ck_assert_ptr_nonnull(t.idx);
	ck_assert_uint_eq(t.idx->errors + t.idx->warnings, 0);
	char *dir = tmpdir_new();
	char *path = g_build_filename(dir, "x.idx", NULL);
	char id[65], why[300];
	make_id(id, 7);
	ck_assert_msg(tm_index_save(t.idx, path, id, NULL, why, sizeof why), "%s", why);
	struct tm_index *l = tm_index_load(path, id, why, sizeof why);
	ck_assert_msg(l != NULL, "%s", why);
	ck_assert_msg(tm_index_verify(l, t.block, why, sizeof why), "refused: %s", why);

	unsigned changed = 0;
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		const struct tm_inode *in = tm_index_inode(l, tm_index_resolve(l, names[i]));
		ck_assert_uint_ge(in->offset, 512);
		GByteArray *b = g_byte_array_new();
		g_byte_array_append(b, a->data, a->len);
		b->data[in->offset - 512 + TU_MTIME] ^= 1; /* a header field, checksum aside */
		struct tm_block *blk = tm_block_mem_new(b->data, b->len, 512);
		why[0] = '\0';
		ck_assert_msg(!tm_index_verify(l, blk, why, sizeof why), "%s: change not seen",
			      names[i]);
		ck_assert_msg(strstr(why, "not those the index was made from"), "%s", why);
		changed++;
		tm_block_disconnect(blk);
		g_byte_array_free(b, TRUE);
	}
	ck_assert_uint_eq(changed, G_N_ELEMENTS(names));

	/* a source shorter than the archive the index describes */
	struct tm_block *shorter = tm_block_mem_new(a->data, 1024, 512);
	why[0] = '\0';
	ck_assert(!tm_index_verify(l, shorter, why, sizeof why));
	ck_assert_str_ne(why, "");
	tm_block_disconnect(shorter);

	tm_index_free(l);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
	rm_rf(dir);
	g_free(path);
	g_free(dir);
}
END_TEST

START_TEST(test_open_unwritable)
{
	GByteArray *arc = rich_archive();
	struct opened o;
	opened_init(&o, arc);
	struct tu_built t;
	tu_build(&t, arc, 512);
	char *dir = tmpdir_new();
	char *file = g_build_filename(dir, "file", NULL);
	spit(file, "x", 1);
	char *under_file = g_build_filename(file, "x.idx", NULL);
	char *a_dir = g_build_filename(dir, "adir.idx", NULL);
	ck_assert_int_eq(mkdir(a_dir, 0700), 0);
	const char *paths[] = { "/proc/nonexistent/x.idx", under_file, a_dir };
	bool loaded;
	for (size_t k = 0; k < G_N_ELEMENTS(paths); k++) {
		for (int round = 0; round < 2; round++) {
			struct tm_index *i = open_idx(&o, paths[k], true, &loaded);
			ck_assert(!loaded);
			assert_same_index(t.idx, i);
			tm_index_free(i);
			ck_assert_msg(o.diags.warnings >= 1 &&
					      strstr(o.diags.log->str, "index not saved"),
				      "%s: no warning: \"%s\"", paths[k], o.diags.log->str);
			ck_assert_uint_eq(o.diags.errors, 0);
		}
		/* without a diag callback: still an index, no crash */
		struct tm_block_error err;
		struct tm_index *i = tm_index_open(o.block, NULL, paths[k], true, &loaded, &err);
		ck_assert_ptr_nonnull(i);
		ck_assert(!loaded);
		tm_index_free(i);
	}
	assert_dir_names(dir, "adir.idx|file");
	assert_dir_names(a_dir, "");
	g_free(under_file);
	g_free(a_dir);
	g_free(file);
	tu_built_free(&t);
	opened_clear(&o);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

/* path NULL: the default place under XDG_CACHE_HOME. */
START_TEST(test_open_default_place)
{
	GByteArray *arc = small_archive("dflt");
	struct opened o;
	opened_init(&o, arc);
	char *dir = tmpdir_new();
	g_setenv("XDG_CACHE_HOME", dir, TRUE);
	if (strcmp(g_get_user_cache_dir(), dir) != 0) {
		/* glib read the cache directory before this test (CK_FORK=no): writing to the
		 * real one is not for a unit test */
		fprintf(stderr, "test_open_default_place: skipped, glib's cache dir is cached\n");
	} else {
		char id[65];
		struct tm_block_error err;
		ck_assert(tm_block_identity(o.block, id, &err));
		char *want = g_strdup_printf("%s/tarmount/%s.idx", dir, id);
		bool loaded;
		struct tm_index *i = open_idx(&o, NULL, true, &loaded);
		ck_assert(!loaded);
		tm_index_free(i);
		ck_assert_msg(exists(want), "%s not written: %s", want, o.diags.log->str);
		char *tdir = g_build_filename(dir, "tarmount", NULL);
		char *base = g_strdup_printf("%s.idx", id);
		assert_dir_names(tdir, base);
		i = open_idx(&o, NULL, true, &loaded);
		ck_assert(loaded);
		tm_index_free(i);
		g_free(base);
		g_free(tdir);
		g_free(want);
	}
	opened_clear(&o);
	g_byte_array_free(arc, TRUE);
	rm_rf(dir);
	g_free(dir);
}
END_TEST

/* tm_index_default_path in a child process, with the environment set before glib reads it:
 * returns what the child computed, or NULL when glib had cached another value before. */
static char *default_path_in_child(const char *xdg, const char *home, const char *id)
{
	int fds[2];
	ck_assert_int_eq(pipe(fds), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		if (xdg)
			g_setenv("XDG_CACHE_HOME", xdg, TRUE);
		else
			g_unsetenv("XDG_CACHE_HOME");
		if (home)
			g_setenv("HOME", home, TRUE);
		char *p = tm_index_default_path(id);
		char *expect_dir = xdg ? g_strdup(xdg) : g_build_filename(home, ".cache", NULL);
		const char *out = strcmp(g_get_user_cache_dir(), expect_dir) ? "STALE" : p;
		ssize_t w = write(fds[1], out, strlen(out));
		_exit(w == (ssize_t)strlen(out) ? 0 : 1);
	}
	close(fds[1]);
	GString *s = g_string_new(NULL);
	char buf[256];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof buf)) > 0)
		g_string_append_len(s, buf, n);
	close(fds[0]);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (strcmp(s->str, "STALE") == 0) {
		g_string_free(s, TRUE);
		return NULL;
	}
	return g_string_free(s, FALSE);
}

START_TEST(test_default_path)
{
	char id[65];
	make_id(id, 5);
	char *tail = g_strdup_printf("/tarmount/%s.idx", id);
	/* in children first: this process must not have read the cache directory yet */
	char *p = default_path_in_child("/some/cache", "/home/nobody", id);
	if (p) {
		char *want = g_strdup_printf("/some/cache%s", tail);
		ck_assert_str_eq(p, want);
		g_free(want);
		g_free(p);
	} else {
		fprintf(stderr, "test_default_path: XDG_CACHE_HOME case skipped (cached)\n");
	}
	p = default_path_in_child(NULL, "/home/nobody", id);
	if (p) {
		char *want = g_strdup_printf("/home/nobody/.cache%s", tail);
		ck_assert_str_eq(p, want);
		g_free(want);
		g_free(p);
	} else {
		fprintf(stderr, "test_default_path: HOME case skipped (cached)\n");
	}
	/* whatever the environment: CACHE/tarmount/ID.idx */
	p = tm_index_default_path(id);
	char *want = g_strdup_printf("%s%s", g_get_user_cache_dir(), tail);
	ck_assert_str_eq(p, want);
	g_free(want);
	g_free(p);
	g_free(tail);
}
END_TEST

Suite *index_file_suite(void)
{
	Suite *s = suite_create("index_file");
	TCase *tc = tcase_create("roundtrip");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_roundtrip, 0, K_COUNT);
	tcase_add_test(tc, test_save_deterministic);
	tcase_add_test(tc, test_save_replace);
	suite_add_tcase(s, tc);

	tc = tcase_create("refuse");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_missing);
	tcase_add_test(tc, test_wrong_source);
	tcase_add_loop_test(tc, test_truncated, 0, K_COUNT);
	tcase_add_test(tc, test_extended);
	tcase_add_loop_test(tc, test_header_bitflips, 0, K_COUNT);
	tcase_add_loop_test(tc, test_data_bitflips, 0, K_COUNT);
	tcase_add_test(tc, test_data_swaps);
	tcase_add_test(tc, test_random_files);
	tcase_add_test(tc, test_other_version);
	tcase_add_loop_test(tc, test_crafted, 0, C_COUNT);
	tcase_add_loop_test(tc, test_crafted_random, 0, 4);
	suite_add_tcase(s, tc);

	tc = tcase_create("open");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_no_persist);
	tcase_add_loop_test(tc, test_open_persist, 0, K_COUNT);
	tcase_add_test(tc, test_open_source_changed);
	tcase_add_test(tc, test_verify);
	tcase_add_test(tc, test_open_unwritable);
	tcase_add_test(tc, test_open_default_place);
	tcase_add_test(tc, test_default_path);
	suite_add_tcase(s, tc);
	return s;
}
