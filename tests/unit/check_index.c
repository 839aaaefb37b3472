/* The index: the tree GNU tar would extract, built over in-memory archives on devices with
 * 512- and 4096-byte sectors (loop tests: _i = 0 is 512, 1 is 4096; the archives are not a
 * whole number of 4096-byte sectors). */
#include <check.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "index.h"
#include "suites.h"
#include "testutil.h"

/* ---- helpers ---- */

#define IDX (t.idx)

static uint32_t must_resolve(const struct tu_built *t, const char *path)
{
	uint32_t ino = tm_index_resolve(t->idx, path);
	ck_assert_msg(ino != TM_NONE, "\"%s\" not in the index; diagnostics:\n%s", path,
		      t->diags.log->str);
	ck_assert_uint_lt(ino, t->idx->ninodes);
	return ino;
}

static const struct tm_inode *inode_of(const struct tu_built *t, const char *path)
{
	return tm_index_inode(t->idx, must_resolve(t, path));
}

static void assert_absent(const struct tu_built *t, const char *path)
{
	ck_assert_msg(tm_index_resolve(t->idx, path) == TM_NONE, "\"%s\" should not exist", path);
}

static void assert_dir(const struct tu_built *t, const char *path)
{
	const struct tm_inode *n = inode_of(t, path);
	ck_assert_msg(S_ISDIR(n->mode), "\"%s\" is not a directory (mode %o)", path, n->mode);
}

/* A regular, non-sparse file whose bytes at inode.offset on the device are want[0..len). */
static void assert_content(const struct tu_built *t, const char *path, const void *want,
			   size_t len)
{
	uint32_t ino = must_resolve(t, path);
	const struct tm_inode *n = tm_index_inode(t->idx, ino);
	ck_assert_msg(S_ISREG(n->mode), "\"%s\" is not a regular file (mode %o)", path, n->mode);
	ck_assert_msg(n->size == len, "\"%s\": size %llu, expected %zu", path,
		      (unsigned long long)n->size, len);
	ck_assert_msg(tu_sparse_map(t->idx, ino) == NULL, "\"%s\" is sparse", path);
	if (len == 0)
		return;
	uint8_t *buf = g_malloc(len);
	struct tm_block_error err;
	ck_assert_msg(tm_block_pread(t->block, buf, len, n->offset, &err) == 0,
		      "\"%s\": reading %zu bytes at %llu failed", path, len,
		      (unsigned long long)n->offset);
	ck_assert_msg(memcmp(buf, want, len) == 0, "\"%s\": wrong content", path);
	g_free(buf);
}

static void assert_str_content(const struct tu_built *t, const char *path, const char *want)
{
	assert_content(t, path, want, strlen(want));
}

static const char *child_name(const struct tu_built *t, uint32_t dir, uint32_t i)
{
	return tm_index_string(t->idx, tm_index_child(t->idx, dir, i)->name);
}

/* The names in a directory, joined by '|'. */
static char *listing(const struct tu_built *t, const char *path)
{
	uint32_t dir = must_resolve(t, path);
	GString *s = g_string_new(NULL);
	for (uint32_t i = 0; i < tm_index_child_count(t->idx, dir); i++)
		g_string_append_printf(s, "%s%s", i ? "|" : "", child_name(t, dir, i));
	return g_string_free(s, FALSE);
}

static void assert_listing(const struct tu_built *t, const char *path, const char *want)
{
	char *got = listing(t, path);
	ck_assert_msg(strcmp(got, want) == 0, "listing of \"%s\": \"%s\", expected \"%s\"", path,
		      got, want);
	g_free(got);
}

static void assert_clean(const struct tu_built *t)
{
	ck_assert_msg(t->idx != NULL, "no index: code %d %s; diagnostics:\n%s", t->err.code,
		      t->err.msg, t->diags.log->str);
	ck_assert_msg(t->idx->errors == 0 && t->diags.errors == 0, "errors:\n%s",
		      t->diags.log->str);
}

/* A header with everything set by hand; checksum filled. */
static void hdr(uint8_t h[TU_BLOCK], enum tu_fmt fmt, const char *name, char type, uint64_t size)
{
	tu_header_init(h, fmt, name, type, size);
}

/* ---- tm_index_normalize ---- */

static const struct {
	const char *in;
	const char *out; /* NULL: rejected */
} norm_cases[] = {
	{ "a", "a" },
	{ "a/b/c", "a/b/c" },
	{ "/a/b", "a/b" },
	{ "///a", "a" },
	{ "./a", "a" },
	{ "././a/./", "a" },
	{ "a//b", "a/b" },
	{ "a/./b", "a/b" },
	{ "a/.", "a" },
	{ "a/b/", "a/b" },
	{ "a/b//", "a/b" },
	{ "/./a//./b/.", "a/b" },
	{ ".", "" },
	{ "./", "" },
	{ "/", "" },
	{ "", "" },
	{ "..a", "..a" },
	{ "a..", "a.." },
	{ "a/...", "a/..." },
	{ ".a/.b", ".a/.b" },
	{ "..", NULL },
	{ "../a", NULL },
	{ "a/..", NULL },
	{ "a/../b", NULL },
	{ "/../a", NULL },
	{ "./../a", NULL },
	{ "a/b/../../c", NULL },
	{ "a/../", NULL },
};

START_TEST(test_normalize)
{
	const char *in = norm_cases[_i].in, *want = norm_cases[_i].out;
	char out[64];
	memset(out, 'Z', sizeof out);
	bool ok = tm_index_normalize(in, out);
	if (!want) {
		ck_assert_msg(!ok, "\"%s\" accepted as \"%s\"", in, out);
	} else {
		ck_assert_msg(ok, "\"%s\" rejected", in);
		ck_assert_msg(strcmp(out, want) == 0, "\"%s\" -> \"%s\", expected \"%s\"", in, out,
			      want);
	}
}
END_TEST

/* ---- building ---- */

START_TEST(test_basic)
{
	GByteArray *a = g_byte_array_new();
	uint64_t off_c = tu_add_file(a, "a/b/c.txt", "hello");
	uint8_t h[TU_BLOCK];
	hdr(h, TU_USTAR, "top.txt", '0', 10);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0640);
	tu_set_octal(h, TU_UID, TU_UID_LEN, 501);
	tu_set_octal(h, TU_GID, TU_GID_LEN, 20);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 1111111111);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "alice");
	tu_set_str(h, TU_GNAME, TU_GNAME_LEN, "staff");
	tu_checksum(h, false);
	tu_append_block(a, h);
	uint64_t off_top = a->len;
	tu_append_data(a, "top level\n", 10);
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	ck_assert_uint_eq(IDX->members, 2);
	ck_assert(!IDX->truncated);
	ck_assert_uint_eq(IDX->warnings, 0);
	ck_assert_uint_gt(tm_index_memory(IDX), 0);

	/* the root and the implicit parents */
	ck_assert(S_ISDIR(tm_index_inode(IDX, TM_ROOT)->mode));
	ck_assert_uint_eq(tm_index_resolve(IDX, ""), TM_ROOT);
	ck_assert_uint_eq(tm_index_resolve(IDX, "/"), TM_ROOT);
	ck_assert_uint_eq(tm_index_resolve(IDX, "."), TM_ROOT);
	assert_listing(&t, "", "a|top.txt");
	assert_dir(&t, "a");
	assert_dir(&t, "a/b");
	assert_listing(&t, "a", "b");
	assert_listing(&t, "a/b", "c.txt");

	assert_str_content(&t, "a/b/c.txt", "hello");
	ck_assert_uint_eq(inode_of(&t, "a/b/c.txt")->offset, off_c);
	ck_assert_uint_eq(inode_of(&t, "a/b/c.txt")->nlink, 1);

	const struct tm_inode *top = inode_of(&t, "top.txt");
	assert_str_content(&t, "top.txt", "top level\n");
	ck_assert_uint_eq(top->offset, off_top);
	ck_assert_uint_eq(top->mode, S_IFREG | 0640);
	ck_assert_uint_eq(top->uid, 501);
	ck_assert_uint_eq(top->gid, 20);
	ck_assert_int_eq(top->mtime, 1111111111);
	ck_assert_uint_eq(top->mtime_nsec, 0);
	ck_assert_str_eq(tm_index_string(IDX, top->uname), "alice");
	ck_assert_str_eq(tm_index_string(IDX, top->gname), "staff");
	ck_assert_uint_eq(top->nlink, 1);
	ck_assert_uint_eq(top->xattrs, TM_NONE);

	/* resolve variants */
	uint32_t c = must_resolve(&t, "a/b/c.txt");
	ck_assert_uint_eq(tm_index_resolve(IDX, "/a/b/c.txt"), c);
	ck_assert_uint_eq(tm_index_resolve(IDX, "./a//b/./c.txt"), c);
	ck_assert_uint_eq(tm_index_resolve(IDX, "a/b/"), must_resolve(&t, "a/b"));
	assert_absent(&t, "a/x");
	assert_absent(&t, "a/b/c.txt/d");
	assert_absent(&t, "A");
	assert_absent(&t, "a/b/c");

	/* lookup */
	uint32_t dentry = TM_NONE;
	uint32_t ia = tm_index_lookup(IDX, TM_ROOT, "a", 1, &dentry);
	ck_assert_uint_eq(ia, must_resolve(&t, "a"));
	ck_assert_uint_lt(dentry, IDX->ndentries);
	ck_assert_uint_eq(IDX->dentries[dentry].inode, ia);
	ck_assert_str_eq(tm_index_string(IDX, IDX->dentries[dentry].name), "a");
	/* only name[0..len) counts */
	ck_assert_uint_eq(tm_index_lookup(IDX, TM_ROOT, "top.txt-and-more", 7, NULL),
			  must_resolve(&t, "top.txt"));
	ck_assert_uint_eq(tm_index_lookup(IDX, TM_ROOT, "top", 3, NULL), TM_NONE);
	ck_assert_uint_eq(tm_index_lookup(IDX, TM_ROOT, "zzz", 3, NULL), TM_NONE);
	/* a file is not a directory */
	ck_assert_uint_eq(tm_index_lookup(IDX, c, "x", 1, NULL), TM_NONE);

	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_sorted_children)
{
	static const char *names[] = { "b", "a.txt", "B", "\xc3\xa4", "a", "a-b", "_", "~", "Z9",
				       "a0" };
	GByteArray *a = g_byte_array_new();
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
		char path[64];
		tu_add_file(a, names[i], names[i]);
		snprintf(path, sizeof path, "d/%s", names[i]);
		tu_add_file(a, path, path);
	}
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	/* bytewise: 'B' 0x42 < 'Z' < '_' 0x5f < 'a' < "a-b" ('-' 0x2d) < "a.txt" ('.' 0x2e) <
	 * "a0" < 'b' < '~' 0x7e < 0xc3 */
	assert_listing(&t, "", "B|Z9|_|a|a-b|a.txt|a0|b|d|~|\xc3\xa4");
	assert_listing(&t, "d", "B|Z9|_|a|a-b|a.txt|a0|b|~|\xc3\xa4");

	uint32_t d = must_resolve(&t, "d");
	for (uint32_t i = 0; i < tm_index_child_count(IDX, d); i++) {
		const char *nm = child_name(&t, d, i);
		uint32_t de = TM_NONE;
		uint32_t ino = tm_index_lookup(IDX, d, nm, strlen(nm), &de);
		ck_assert_uint_eq(ino, tm_index_child(IDX, d, i)->inode);
		char path[64];
		snprintf(path, sizeof path, "d/%s", nm);
		assert_str_content(&t, path, path);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		assert_str_content(&t, names[i], names[i]);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_duplicates)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	tu_add_file(a, "f", "one");
	tu_add_dir(a, "e/");
	tu_add_file(a, "g", "was a file");
	tu_add_file(a, "x/y", "child");
	tu_add_file(a, "f", "two2");       /* file replaces file */
	tu_add_file(a, "e", "file now");   /* file replaces (empty) dir */
	tu_add_dir(a, "g/");               /* dir replaces file */
	hdr(h, TU_USTAR, "x/", '5', 0);     /* dir entry after the implicit one */
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0700);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 12345);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "xowner");
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_add_file(a, "x/z", "second child");
	hdr(h, TU_USTAR, "x", '5', 0);      /* and again, without the slash */
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0750);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 23456);
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);
	assert_listing(&t, "", "e|f|g|x");
	assert_str_content(&t, "f", "two2");
	assert_str_content(&t, "e", "file now");
	assert_dir(&t, "g");
	ck_assert_uint_eq(tm_index_child_count(IDX, must_resolve(&t, "g")), 0);
	assert_dir(&t, "x");
	assert_listing(&t, "x", "y|z");
	assert_str_content(&t, "x/y", "child");
	const struct tm_inode *x = inode_of(&t, "x");
	ck_assert_uint_eq(x->mode, S_IFDIR | 0750);
	ck_assert_int_eq(x->mtime, 23456);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_dir_metadata_after_implicit)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	tu_add_file(a, "x/y", "child");
	hdr(h, TU_USTAR, "x/", '5', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0700);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 12345);
	tu_set_octal(h, TU_UID, TU_UID_LEN, 4321);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "xowner");
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	const struct tm_inode *x = inode_of(&t, "x");
	ck_assert_uint_eq(x->mode, S_IFDIR | 0700);
	ck_assert_int_eq(x->mtime, 12345);
	ck_assert_uint_eq(x->uid, 4321);
	ck_assert_str_eq(tm_index_string(IDX, x->uname), "xowner");
	assert_listing(&t, "x", "y");
	assert_str_content(&t, "x/y", "child");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_root_entry)
{
	/* "tar -C dir ." archives start with "./": it describes the root */
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	hdr(h, TU_USTAR, "./", '5', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0750);
	tu_set_octal(h, TU_MTIME, TU_MTIME_LEN, 4242);
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_add_file(a, "./a", "A");
	tu_add_dir(a, "./sub/");
	tu_add_file(a, "./sub/b", "B");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	const struct tm_inode *r = tm_index_inode(IDX, TM_ROOT);
	ck_assert_uint_eq(r->mode, S_IFDIR | 0750);
	ck_assert_int_eq(r->mtime, 4242);
	assert_listing(&t, "", "a|sub");
	assert_str_content(&t, "a", "A");
	assert_str_content(&t, "sub/b", "B");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_hardlinks)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "f", "hello");
	tu_add(a, TU_USTAR, "l1", '1', "f", NULL, 0);
	tu_add_file(a, "g", "three names");
	tu_add(a, TU_USTAR, "m1", '1', "g", NULL, 0);
	tu_add(a, TU_USTAR, "d/m2", '1', "./m1", NULL, 0); /* through another name */
	tu_add(a, TU_USTAR, "bad", '1', "nope", NULL, 0);  /* no such target */
	tu_add_file(a, "after", "still here");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);

	uint32_t f = must_resolve(&t, "f"), l1 = must_resolve(&t, "l1");
	ck_assert_uint_eq(f, l1);
	ck_assert_uint_eq(tm_index_inode(IDX, f)->nlink, 2);
	assert_str_content(&t, "l1", "hello");
	/* two dentries, one inode */
	uint32_t df = TM_NONE, dl = TM_NONE;
	tm_index_lookup(IDX, TM_ROOT, "f", 1, &df);
	tm_index_lookup(IDX, TM_ROOT, "l1", 2, &dl);
	ck_assert_uint_ne(df, dl);
	ck_assert_uint_eq(IDX->dentries[df].inode, IDX->dentries[dl].inode);

	uint32_t g = must_resolve(&t, "g");
	ck_assert_uint_eq(must_resolve(&t, "m1"), g);
	ck_assert_uint_eq(must_resolve(&t, "d/m2"), g);
	ck_assert_uint_eq(tm_index_inode(IDX, g)->nlink, 3);
	assert_str_content(&t, "d/m2", "three names");

	assert_absent(&t, "bad");
	ck_assert_msg(t.diags.warnings + t.diags.errors > 0, "no diagnostic for a dangling link");
	assert_str_content(&t, "after", "still here");
	ck_assert_uint_eq(inode_of(&t, "after")->nlink, 1);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* Two trees are the same: the same names under each directory, naming the same inode
 * numbers, whose fields are equal (a directory's child slot aside, which numbers dentries),
 * symlink targets and names alike. */
static void assert_same_tree(const struct tm_index *x, const struct tm_index *y, uint32_t dir)
{
	uint32_t n = tm_index_child_count(x, dir);
	ck_assert_uint_eq(n, tm_index_child_count(y, dir));
	for (uint32_t i = 0; i < n; i++) {
		const struct tm_dentry *dx = tm_index_child(x, dir, i), *dy = tm_index_child(y, dir, i);
		ck_assert_str_eq(tm_index_string(x, dx->name), tm_index_string(y, dy->name));
		ck_assert_uint_eq(dx->inode, dy->inode);
		struct tm_inode ix = *tm_index_inode(x, dx->inode), iy = *tm_index_inode(y, dy->inode);
		if (S_ISDIR(ix.mode))
			ix.a = iy.a = 0;
		if (S_ISLNK(ix.mode)) {
			ck_assert_str_eq(tm_index_string(x, ix.a), tm_index_string(y, iy.a));
			ix.a = iy.a = 0;
		}
		ck_assert_str_eq(tm_index_string(x, ix.uname), tm_index_string(y, iy.uname));
		ix.uname = iy.uname = ix.gname = iy.gname = 0;
		ck_assert_msg(!memcmp(&ix, &iy, sizeof ix), "inode of %s differs",
			      tm_index_string(x, dx->name));
		if (S_ISDIR(ix.mode))
			assert_same_tree(x, y, dx->inode);
	}
}

/* An index extended by the members appended after its end equals the index built from
 * scratch: files, an implied directory listed later, a member replaced, hard links to
 * earlier members, a directory replacing a file, long names. */
START_TEST(test_resume)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "d/sub/f", "first");
	tu_add_file(a, "top", "a file for now");
	tu_add_file(a, "keep", "kept");
	tu_add(a, TU_USTAR, "link-to-keep", '2', "keep", NULL, 0);
	size_t end = a->len;
	GByteArray *base_bytes = g_byte_array_new();
	g_byte_array_append(base_bytes, a->data, (guint)a->len);
	tu_finish(base_bytes);
	tu_add_file(a, "d/sub/f", "replaced");
	tu_add_dir(a, "d/sub");
	tu_add(a, TU_USTAR, "hard", '1', "keep", NULL, 0);
	tu_add_dir(a, "top");
	tu_add_file(a, "top/inside", "in a directory where a file was");
	tu_add_longlink(a, 'L', "long/" "name-that-needs-a-gnu-long-name-header-because-it-is-"
				"longer-than-a-hundred-bytes-in-all-of-its-segments");
	tu_add_file(a, "long/name", "x");
	tu_finish(a);

	struct tu_built base, fresh;
	tu_build(&base, base_bytes, tu_sector(_i));
	ck_assert_ptr_nonnull(base.idx);
	ck_assert_uint_eq(base.idx->archive_end, end);
	tu_build(&fresh, a, tu_sector(_i));
	ck_assert_ptr_nonnull(fresh.idx);
	struct tm_block_error err;
	struct tm_index *grown = tm_index_build_resume(base.idx, fresh.block, NULL, &err);
	ck_assert_ptr_nonnull(grown);
	ck_assert_uint_eq(grown->members, fresh.idx->members);
	ck_assert_uint_eq(grown->archive_end, fresh.idx->archive_end);
	ck_assert_uint_eq(grown->ninodes, fresh.idx->ninodes);
	ck_assert_uint_eq(tm_index_inode(grown, TM_ROOT)->mtime,
			  tm_index_inode(fresh.idx, TM_ROOT)->mtime);
	assert_same_tree(grown, fresh.idx, TM_ROOT);
	/* and the base index is as it was */
	ck_assert_uint_eq(tm_index_resolve(base.idx, "top/inside"), TM_NONE);
	tm_index_free(grown);
	tu_built_free(&base);
	tu_built_free(&fresh);
	g_byte_array_free(base_bytes, TRUE);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_hardlink_replaced)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "f", "target");
	tu_add(a, TU_USTAR, "l", '1', "f", NULL, 0);
	tu_add_file(a, "l", "other");        /* the link name is reused */
	tu_add_file(a, "t", "old data");
	tu_add(a, TU_USTAR, "u", '1', "t", NULL, 0);
	tu_add_file(a, "t", "new data!");    /* the target is replaced: u keeps the old file */
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	ck_assert_uint_ne(must_resolve(&t, "f"), must_resolve(&t, "l"));
	ck_assert_uint_eq(inode_of(&t, "f")->nlink, 1);
	ck_assert_uint_eq(inode_of(&t, "l")->nlink, 1);
	assert_str_content(&t, "f", "target");
	assert_str_content(&t, "l", "other");

	ck_assert_uint_ne(must_resolve(&t, "t"), must_resolve(&t, "u"));
	ck_assert_uint_eq(inode_of(&t, "t")->nlink, 1);
	ck_assert_uint_eq(inode_of(&t, "u")->nlink, 1);
	assert_str_content(&t, "t", "new data!");
	assert_str_content(&t, "u", "old data");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_gnu_longnames)
{
	char longname[200], longtarget[200], longdir[160];
	memset(longdir, 'd', 140);
	longdir[140] = 0;
	snprintf(longname, sizeof longname, "%s/file.txt", longdir);
	ck_assert_uint_gt(strlen(longname), 100);
	memset(longtarget, 't', 130);
	longtarget[130] = 0;

	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	/* a long file name */
	tu_add_longlink(a, 'L', longname);
	hdr(h, TU_GNU, longname, '0', 4); /* name field: the first 100 bytes */
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, "long", 4);
	/* a symlink with a long name and a long target */
	char symname[200];
	snprintf(symname, sizeof symname, "%s/symlink", longdir);
	tu_add_longlink(a, 'K', longtarget);
	tu_add_longlink(a, 'L', symname);
	hdr(h, TU_GNU, symname, '2', 0);
	tu_set_str(h, TU_LINKNAME, TU_LINKNAME_LEN, longtarget);
	tu_checksum(h, false);
	tu_append_block(a, h);
	/* a hard link to the long name */
	tu_add_longlink(a, 'K', longname);
	hdr(h, TU_GNU, "hard", '1', 0);
	tu_set_str(h, TU_LINKNAME, TU_LINKNAME_LEN, longname);
	tu_checksum(h, false);
	tu_append_block(a, h);
	/* two 'L' in a row: the last one wins */
	tu_add_longlink(a, 'L', "wrong/name");
	tu_add_longlink(a, 'L', "right/name");
	hdr(h, TU_GNU, "trunc", '0', 3);
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, "yes", 3);
	/* a long name does not leak into the next member */
	tu_add_file(a, "plain", "p");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_dir(&t, longdir);
	assert_str_content(&t, longname, "long");

	const struct tm_inode *s = inode_of(&t, symname);
	ck_assert_uint_eq(s->mode & S_IFMT, S_IFLNK);
	ck_assert_uint_eq(s->size, 130);
	ck_assert_str_eq(tm_index_string(IDX, s->a), longtarget);

	ck_assert_uint_eq(must_resolve(&t, "hard"), must_resolve(&t, longname));
	ck_assert_uint_eq(inode_of(&t, "hard")->nlink, 2);

	assert_str_content(&t, "right/name", "yes");
	assert_absent(&t, "wrong");
	assert_absent(&t, "trunc");
	assert_absent(&t, "././@LongLink");
	assert_absent(&t, "@LongLink");
	assert_str_content(&t, "plain", "p");
	char *want = g_strdup_printf("%s|hard|plain|right", longdir);
	assert_listing(&t, "", want);
	g_free(want);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_pax_overrides)
{
	char longpath[260], longlink[200];
	for (int i = 0; i < 245; i++)
		longpath[i] = i % 50 == 49 ? '/' : (char)('a' + i % 26);
	longpath[245] = 0; /* 5 components of 49 letters (the last 45), no trailing '/' */
	memset(longlink, 'L', 150);
	longlink[150] = 0;

	uint8_t data[600];
	tu_fill(data, sizeof data, 7);

	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	GString *x = g_string_new(NULL);
	tu_pax_str(x, "path", longpath);
	tu_pax_str(x, "size", "600");
	tu_pax_str(x, "mtime", "1234567890.123456789");
	tu_pax_str(x, "uid", "3000000000");
	tu_pax_str(x, "gid", "3000000001");
	tu_pax_str(x, "uname", "paxuser");
	tu_pax_str(x, "gname", "paxgroup");
	tu_add_pax(a, 'x', "PaxHeaders.1/short", x);
	hdr(h, TU_USTAR, "short", '0', 0); /* the header says 0 bytes; pax says 600 */
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "hdruser");
	tu_checksum(h, false);
	tu_append_block(a, h);
	uint64_t off = a->len;
	tu_append_data(a, data, sizeof data);

	/* a symlink with a pax linkpath */
	g_string_truncate(x, 0);
	tu_pax_str(x, "linkpath", longlink);
	tu_pax_str(x, "mtime", "-1.5");
	tu_add_pax(a, 'x', "PaxHeaders.1/sym", x);
	hdr(h, TU_USTAR, "sym", '2', 0);
	tu_set_str(h, TU_LINKNAME, TU_LINKNAME_LEN, "short-target");
	tu_checksum(h, false);
	tu_append_block(a, h);

	/* a hard link to the long path through linkpath */
	g_string_truncate(x, 0);
	tu_pax_str(x, "linkpath", longpath);
	tu_add_pax(a, 'x', "PaxHeaders.1/hard", x);
	tu_add(a, TU_USTAR, "hard", '1', "whatever", NULL, 0);

	/* pax values apply to one member only */
	tu_add_file(a, "after", "next");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_absent(&t, "short");
	assert_content(&t, longpath, data, sizeof data);
	const struct tm_inode *n = inode_of(&t, longpath);
	ck_assert_uint_eq(n->offset, off);
	ck_assert_int_eq(n->mtime, 1234567890);
	ck_assert_uint_eq(n->mtime_nsec, 123456789);
	ck_assert_uint_eq(n->uid, 3000000000u);
	ck_assert_uint_eq(n->gid, 3000000001u);
	ck_assert_str_eq(tm_index_string(IDX, n->uname), "paxuser");
	ck_assert_str_eq(tm_index_string(IDX, n->gname), "paxgroup");

	const struct tm_inode *s = inode_of(&t, "sym");
	ck_assert_uint_eq(s->mode & S_IFMT, S_IFLNK);
	ck_assert_uint_eq(s->size, 150);
	ck_assert_str_eq(tm_index_string(IDX, s->a), longlink);
	ck_assert_int_eq(s->mtime, -2);
	ck_assert_uint_eq(s->mtime_nsec, 500000000);

	ck_assert_uint_eq(must_resolve(&t, "hard"), must_resolve(&t, longpath));
	ck_assert_uint_eq(n->nlink, 2);

	const struct tm_inode *af = inode_of(&t, "after");
	assert_str_content(&t, "after", "next");
	ck_assert_int_eq(af->mtime, 1700000000);
	ck_assert_uint_eq(af->mtime_nsec, 0);
	ck_assert_uint_eq(af->uid, 1000);
	ck_assert_str_eq(tm_index_string(IDX, af->uname), "user");
	g_string_free(x, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_pax_global)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	GString *g = g_string_new(NULL), *x = g_string_new(NULL);
	tu_pax_str(g, "comment", "0123456789abcdef0123456789abcdef01234567"); /* git archive */
	tu_pax_str(g, "uname", "gu");
	tu_pax_str(g, "gid", "77");
	tu_add_pax(a, 'g', "pax_global_header", g);

	const char *names[] = { "f1", "f2", "f3", "f4" };
	for (int i = 0; i < 4; i++) {
		if (i == 1) {
			/* an empty value cancels the global one for this member */
			tu_pax_str(x, "uname", "");
			tu_pax_str(x, "gid", "");
			tu_add_pax(a, 'x', "PaxHeaders.1/f2", x);
		}
		if (i == 3) {
			g_string_truncate(g, 0);
			tu_pax_str(g, "gid", "88");
			tu_add_pax(a, 'g', "pax_global_header", g);
		}
		hdr(h, TU_USTAR, names[i], '0', 1);
		tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "");
		tu_set_octal(h, TU_GID, TU_GID_LEN, 5);
		tu_checksum(h, false);
		tu_append_block(a, h);
		tu_append_data(a, "x", 1);
	}
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_listing(&t, "", "f1|f2|f3|f4");
	const struct tm_inode *f1 = inode_of(&t, "f1"), *f2 = inode_of(&t, "f2"),
			      *f3 = inode_of(&t, "f3"), *f4 = inode_of(&t, "f4");
	ck_assert_str_eq(tm_index_string(IDX, f1->uname), "gu");
	ck_assert_uint_eq(f1->gid, 77);
	ck_assert_str_eq(tm_index_string(IDX, f2->uname), "");
	ck_assert_uint_eq(f2->gid, 5);
	ck_assert_str_eq(tm_index_string(IDX, f3->uname), "gu");
	ck_assert_uint_eq(f3->gid, 77);
	ck_assert_str_eq(tm_index_string(IDX, f4->uname), "gu");
	ck_assert_uint_eq(f4->gid, 88);
	assert_str_content(&t, "f4", "x");
	g_string_free(g, TRUE);
	g_string_free(x, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* ---- runs of extension headers before one member ---- */

/* How many lines of the diagnostics log hold needle. */
static unsigned diag_count(const struct tu_built *t, const char *needle)
{
	unsigned n = 0;
	for (const char *p = t->diags.log->str; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void assert_symlink(const struct tu_built *t, const char *path, const char *target)
{
	const struct tm_inode *n = inode_of(t, path);
	ck_assert_msg((n->mode & S_IFMT) == S_IFLNK, "\"%s\" is not a symlink", path);
	ck_assert_str_eq(tm_index_string(t->idx, n->a), target);
}

static void assert_same_inode(const struct tu_built *t, const char *a, const char *b)
{
	ck_assert_msg(must_resolve(t, a) == must_resolve(t, b), "\"%s\" is not a link to \"%s\"",
		      a, b);
}

/* A member whose header has its own name, uname "user", size and mtime 1700000000. */
static void add_gnu(GByteArray *a, const char *name, char type, const char *link,
		    const char *data)
{
	tu_add(a, TU_GNU, name, type, link, data, data ? strlen(data) : 0);
}

/* Two or more 'x' before one member: the last replaces the others wholly (GNU tar, bsdtar
 * 3.6, Go), whatever keys each carries.  The earlier size must not be used to skip data. */
START_TEST(test_pax_x_runs)
{
	GByteArray *a = g_byte_array_new();
	GString *x1 = g_string_new(NULL), *x2 = g_string_new(NULL);

	/* 1: x1 names the member, sizes it, owns it, gives an xattr; x2 only a time */
	tu_pax_str(x1, "path", "x1/name");
	tu_pax_str(x1, "size", "2048");
	tu_pax_str(x1, "uname", "x1user");
	tu_pax_str(x1, "uid", "4242");
	tu_pax_str(x1, "SCHILY.xattr.user.x1", "v");
	tu_pax_str(x2, "mtime", "1234567890.5");
	tu_add_pax(a, 'x', "PaxHeaders/1", x1);
	tu_add_pax(a, 'x', "PaxHeaders/2", x2);
	tu_add_file(a, "hdr1", "abc");
	/* 2: three in a row, each with a path: the third's */
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "path", "wrong1");
	tu_add_pax(a, 'x', "PaxHeaders/a", x1);
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "path", "wrong2");
	tu_add_pax(a, 'X', "PaxHeaders/b", x1); /* Sun's 'X' is one more of the same */
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "path", "right");
	tu_add_pax(a, 'x', "PaxHeaders/c", x1);
	tu_add_file(a, "hdr2", "r");
	/* 3: a symlink whose first x gave a linkpath: the header's target */
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "linkpath", "x1target");
	tu_add_pax(a, 'x', "PaxHeaders/3", x1);
	tu_add_pax(a, 'x', "PaxHeaders/3", x2);
	tu_add(a, TU_USTAR, "sym", '2', "hdrtarget", NULL, 0);
	/* 4: a hard link, the same */
	tu_add_pax(a, 'x', "PaxHeaders/4", x1);
	tu_add_pax(a, 'x', "PaxHeaders/4", x2);
	tu_add(a, TU_USTAR, "hard", '1', "hdr1", NULL, 0);
	tu_add_file(a, "x1target", "t");
	/* 5: x (path), L, x (no path): the second x drops the first's path; the L stays */
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "path", "x1path");
	tu_add_pax(a, 'x', "PaxHeaders/5", x1);
	tu_add_longlink(a, 'L', "long/name");
	tu_add_pax(a, 'x', "PaxHeaders/5", x2);
	add_gnu(a, "hdr5", '0', NULL, "L");
	/* 6: sparse keys in the first only: not sparse */
	g_string_truncate(x1, 0);
	tu_pax_str(x1, "GNU.sparse.size", "100000");
	tu_pax_str(x1, "GNU.sparse.map", "0,1");
	tu_add_pax(a, 'x', "PaxHeaders/6", x1);
	tu_add_pax(a, 'x', "PaxHeaders/6", x2);
	tu_add_file(a, "plain6", "six");
	tu_add_file(a, "after", "end");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_listing(&t, "", "after|hard|hdr1|long|plain6|right|sym|x1target");
	assert_absent(&t, "x1");
	assert_str_content(&t, "hdr1", "abc");
	const struct tm_inode *n = inode_of(&t, "hdr1");
	ck_assert_str_eq(tm_index_string(IDX, n->uname), "user");
	ck_assert_uint_eq(n->uid, 1000);
	ck_assert_int_eq(n->mtime, 1234567890);
	ck_assert_uint_eq(n->mtime_nsec, 500000000);
	ck_assert_uint_eq(n->xattrs, TM_NONE);
	assert_str_content(&t, "right", "r");
	assert_symlink(&t, "sym", "hdrtarget");
	assert_same_inode(&t, "hard", "hdr1");
	ck_assert_uint_eq(inode_of(&t, "x1target")->nlink, 1);
	assert_str_content(&t, "long/name", "L");
	assert_absent(&t, "x1path");
	assert_str_content(&t, "plain6", "six");
	assert_str_content(&t, "after", "end");
	/* one warning per replaced header: 1, 2 (twice), 3, 4, 5, 6 */
	ck_assert_uint_eq(diag_count(&t, "second pax extended header"), 7);
	g_string_free(x1, TRUE);
	g_string_free(x2, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* Runs of 'L' or 'K': the last of a kind wins (GNU tar and bsdtar agree); an 'L' between two
 * others does not disturb a 'K', nor the reverse. */
START_TEST(test_gnu_long_runs)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "k1", "1");
	tu_add_file(a, "k2", "2");
	tu_add_longlink(a, 'L', "first/name");
	tu_add_longlink(a, 'L', "second/name");
	tu_add_longlink(a, 'L', "third");
	add_gnu(a, "hdrL", '0', NULL, "L3");
	tu_add_longlink(a, 'K', "k1");
	tu_add_longlink(a, 'K', "k2");
	add_gnu(a, "symK", '2', "hdrtarget", NULL);
	tu_add_longlink(a, 'K', "k1");
	tu_add_longlink(a, 'K', "k2");
	add_gnu(a, "hardK", '1', "hdrtarget", NULL);
	tu_add_longlink(a, 'L', "wrong");
	tu_add_longlink(a, 'K', "k1");
	tu_add_longlink(a, 'L', "symLKL");
	add_gnu(a, "hdr", '2', "hdrtarget", NULL);
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_listing(&t, "", "hardK|k1|k2|symK|symLKL|third");
	assert_str_content(&t, "third", "L3");
	assert_symlink(&t, "symK", "k2");
	assert_same_inode(&t, "hardK", "k2");
	ck_assert_uint_eq(inode_of(&t, "k1")->nlink, 1);
	assert_symlink(&t, "symLKL", "k1");
	ck_assert_uint_eq(diag_count(&t, "second GNU long name header"), 3);
	ck_assert_uint_eq(diag_count(&t, "second GNU long link name header"), 2);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* A pax path/linkpath and an 'L'/'K' before one member: the pax value, in either order.
 * GNU tar 1.34 does so in both orders; bsdtar 3.6 agrees when the 'x' comes first and takes
 * the 'L'/'K' when it comes first (libarchive 3.8 takes the later of the two). */
START_TEST(test_pax_vs_gnu_long)
{
	GByteArray *a = g_byte_array_new();
	GString *x = g_string_new(NULL);
	tu_add_file(a, "ktarget", "k");
	tu_add_file(a, "xtarget", "x");

	g_string_truncate(x, 0);
	tu_pax_str(x, "path", "x-then-L");
	tu_add_pax(a, 'x', "PaxHeaders/1", x);
	tu_add_longlink(a, 'L', "L-after-x");
	add_gnu(a, "hdr1", '0', NULL, "1");

	g_string_truncate(x, 0);
	tu_pax_str(x, "path", "L-then-x");
	tu_add_longlink(a, 'L', "L-before-x");
	tu_add_pax(a, 'x', "PaxHeaders/2", x);
	add_gnu(a, "hdr2", '0', NULL, "2");

	tu_add_longlink(a, 'L', "L1");
	tu_add_pax(a, 'x', "PaxHeaders/3", x); /* path L-then-x again: replaced below */
	g_string_truncate(x, 0);
	tu_pax_str(x, "path", "LxL");
	tu_add_pax(a, 'x', "PaxHeaders/3", x);
	tu_add_longlink(a, 'L', "L2");
	add_gnu(a, "hdr3", '0', NULL, "3");

	g_string_truncate(x, 0);
	tu_pax_str(x, "linkpath", "xtarget");
	tu_add_pax(a, 'x', "PaxHeaders/4", x);
	tu_add_longlink(a, 'K', "ktarget");
	add_gnu(a, "sym-xK", '2', "hdrtarget", NULL);
	tu_add_longlink(a, 'K', "ktarget");
	tu_add_pax(a, 'x', "PaxHeaders/5", x);
	add_gnu(a, "sym-Kx", '2', "hdrtarget", NULL);
	tu_add_pax(a, 'x', "PaxHeaders/6", x);
	tu_add_longlink(a, 'K', "ktarget");
	add_gnu(a, "hard-xK", '1', "hdrtarget", NULL);
	tu_add_longlink(a, 'K', "ktarget");
	tu_add_pax(a, 'x', "PaxHeaders/7", x);
	add_gnu(a, "hard-Kx", '1', "hdrtarget", NULL);

	/* an 'x' without a path leaves the 'L' alone, in either order */
	g_string_truncate(x, 0);
	tu_pax_str(x, "uname", "xu");
	tu_add_longlink(a, 'L', "L-kept-1");
	tu_add_pax(a, 'x', "PaxHeaders/8", x);
	add_gnu(a, "hdr8", '0', NULL, "8");
	tu_add_pax(a, 'x', "PaxHeaders/9", x);
	tu_add_longlink(a, 'L', "L-kept-2");
	add_gnu(a, "hdr9", '0', NULL, "9");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_listing(&t, "", "L-kept-1|L-kept-2|L-then-x|LxL|hard-Kx|hard-xK|ktarget|sym-Kx|"
			       "sym-xK|x-then-L|xtarget");
	assert_str_content(&t, "x-then-L", "1");
	assert_str_content(&t, "L-then-x", "2");
	assert_str_content(&t, "LxL", "3");
	assert_symlink(&t, "sym-xK", "xtarget");
	assert_symlink(&t, "sym-Kx", "xtarget");
	assert_same_inode(&t, "hard-xK", "xtarget");
	assert_same_inode(&t, "hard-Kx", "xtarget");
	ck_assert_uint_eq(inode_of(&t, "ktarget")->nlink, 1);
	ck_assert_uint_eq(inode_of(&t, "xtarget")->nlink, 3);
	ck_assert_str_eq(tm_index_string(IDX, inode_of(&t, "L-kept-1")->uname), "xu");
	ck_assert_str_eq(tm_index_string(IDX, inode_of(&t, "L-kept-2")->uname), "xu");
	g_string_free(x, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* path, linkpath and size in a 'g' header are ignored with one warning per header (as
 * libarchive and Go do; GNU tar would give every member the same name); the other global
 * keys keep applying, and an 'x' path still names its member. */
START_TEST(test_pax_global_names)
{
	GByteArray *a = g_byte_array_new();
	GString *g = g_string_new(NULL), *x = g_string_new(NULL);
	tu_pax_str(g, "path", "gpath");
	tu_pax_str(g, "linkpath", "gtarget");
	tu_pax_str(g, "size", "4096");
	tu_pax_str(g, "uname", "guser");
	tu_pax_str(g, "mtime", "1111111111");
	tu_add_pax(a, 'g', "pax_global_header", g);
	tu_add_file(a, "one", "1");
	tu_add_file(a, "two", "22");
	tu_add(a, TU_USTAR, "sym", '2', "one", NULL, 0);
	tu_add(a, TU_USTAR, "hard", '1', "two", NULL, 0);
	tu_pax_str(x, "path", "xname");
	tu_add_pax(a, 'x', "PaxHeaders/3", x);
	tu_add_file(a, "three", "333");
	/* a second global header with a path alone: its own warning; one with neither: none */
	g_string_truncate(g, 0);
	tu_pax_str(g, "path", "gpath2");
	tu_add_pax(a, 'g', "pax_global_header", g);
	tu_add_file(a, "four", "4");
	g_string_truncate(g, 0);
	tu_pax_str(g, "gname", "ggroup");
	tu_add_pax(a, 'g', "pax_global_header", g);
	tu_add_file(a, "five", "5");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_listing(&t, "", "five|four|hard|one|sym|two|xname");
	assert_str_content(&t, "one", "1");
	assert_str_content(&t, "two", "22");
	assert_str_content(&t, "xname", "333");
	assert_str_content(&t, "four", "4");
	assert_str_content(&t, "five", "5");
	assert_symlink(&t, "sym", "one");
	assert_same_inode(&t, "hard", "two");
	const struct tm_inode *one = inode_of(&t, "one"), *five = inode_of(&t, "five");
	ck_assert_str_eq(tm_index_string(IDX, one->uname), "guser");
	ck_assert_int_eq(one->mtime, 1111111111);
	ck_assert_str_eq(tm_index_string(IDX, five->uname), "guser");
	ck_assert_str_eq(tm_index_string(IDX, five->gname), "ggroup");
	ck_assert_uint_eq(diag_count(&t, "pax global header"), 2);
	ck_assert_uint_eq(diag_count(&t, "global header: path, linkpath, size ignored"), 1);
	ck_assert_uint_eq(diag_count(&t, "global header: path ignored"), 1);
	g_string_free(g, TRUE);
	g_string_free(x, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* ---- sparse members ---- */

static const uint64_t sp_pairs[] = {
	0, 100,         /* data at the start */
	1000, 512,
	5000, 1,
	9000, 3000,
	20000, 4096,
	30001, 7,       /* 6 chunks: 4 in an old GNU header, 2 in an extension block */
};
#define SP_N 6
#define SP_LOGICAL 40000

static void assert_sparse(const struct tu_built *t, const char *path, const uint64_t *pairs,
			  size_t n, uint64_t logical, const uint8_t *ref, uint64_t data_off)
{
	uint32_t ino = must_resolve(t, path);
	const struct tm_inode *in = tm_index_inode(t->idx, ino);
	ck_assert_msg(S_ISREG(in->mode), "%s: not regular", path);
	ck_assert_uint_eq(in->size, logical);
	ck_assert_uint_eq(in->offset, data_off);
	const struct tm_index_sparse *m = tu_sparse_map(t->idx, ino);
	ck_assert_msg(m != NULL, "%s: no sparse map", path);
	ck_assert_uint_eq(m->count, n);
	uint64_t stored = 0;
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(m->chunk[i].offset, pairs[2 * i]);
		ck_assert_uint_eq(m->chunk[i].length, pairs[2 * i + 1]);
		/* the chunk's bytes are stored back to back from the data offset */
		uint64_t len = pairs[2 * i + 1];
		uint8_t *buf = g_malloc(len + 1);
		struct tm_block_error err;
		ck_assert_int_eq(tm_block_pread(t->block, buf, len, data_off + stored, &err), 0);
		ck_assert(memcmp(buf, ref + pairs[2 * i], len) == 0);
		g_free(buf);
		stored += len;
	}
}

START_TEST(test_sparse_members)
{
	uint8_t *ref = tu_sparse_ref(sp_pairs, SP_N, SP_LOGICAL, 100);
	GByteArray *a = g_byte_array_new();
	uint64_t o_old = tu_add_sparse_oldgnu(a, "old.img", sp_pairs, SP_N, SP_LOGICAL, ref);
	tu_add_file(a, "between", "b");
	uint64_t o00 = tu_add_sparse_pax(a, TU_SPARSE_00, "s/v00.img", sp_pairs, SP_N, SP_LOGICAL,
					 ref);
	uint64_t o01 = tu_add_sparse_pax(a, TU_SPARSE_01, "s/v01.img", sp_pairs, SP_N, SP_LOGICAL,
					 ref);
	uint64_t o10 = tu_add_sparse_pax(a, TU_SPARSE_10, "s/v10.img", sp_pairs, SP_N, SP_LOGICAL,
					 ref);
	tu_add_file(a, "last", "L");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_sparse(&t, "old.img", sp_pairs, SP_N, SP_LOGICAL, ref, o_old);
	assert_sparse(&t, "s/v00.img", sp_pairs, SP_N, SP_LOGICAL, ref, o00);
	assert_sparse(&t, "s/v01.img", sp_pairs, SP_N, SP_LOGICAL, ref, o01);
	assert_sparse(&t, "s/v10.img", sp_pairs, SP_N, SP_LOGICAL, ref, o10);
	assert_listing(&t, "", "between|last|old.img|s");
	assert_listing(&t, "s", "v00.img|v01.img|v10.img");
	assert_absent(&t, "GNUSparseFile.4242");
	assert_str_content(&t, "between", "b");
	assert_str_content(&t, "last", "L");
	ck_assert_uint_eq(IDX->members, 6);
	g_free(ref);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_sparse_many_ext_blocks)
{
	/* 4 + 21 + 21 + 3 chunks: three extension blocks */
	enum { N = 49 };
	uint64_t pairs[2 * N];
	for (int i = 0; i < N; i++) {
		pairs[2 * i] = (uint64_t)i * 1000 + 10;
		pairs[2 * i + 1] = (uint64_t)(i % 7) * 50 + 1;
	}
	uint64_t logical = (uint64_t)N * 1000 + 500;
	uint8_t *ref = tu_sparse_ref(pairs, N, logical, 5);
	GByteArray *a = g_byte_array_new();
	uint64_t off = tu_add_sparse_oldgnu(a, "many", pairs, N, logical, ref);
	tu_add_file(a, "next", "n");
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_sparse(&t, "many", pairs, N, logical, ref, off);
	assert_str_content(&t, "next", "n");
	g_free(ref);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* ---- damage ---- */

START_TEST(test_dotdot)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "../evil", "e");
	tu_add_file(a, "a/../../b", "b");
	tu_add_file(a, "c/..", "c");
	tu_add_file(a, "ok", "fine");
	/* GNU tar 1.34 skips members with '..' but strips a hard link target's leading
	 * "../" ("Removing leading `../' from hard link targets"): hl links to ok. */
	tu_add(a, TU_USTAR, "hl", '1', "../ok", NULL, 0);
	tu_add(a, TU_USTAR, "up", '2', "../outside", NULL, 0); /* a symlink may point anywhere */
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);
	assert_listing(&t, "", "hl|ok|up");
	assert_absent(&t, "evil");
	assert_absent(&t, "b");
	assert_absent(&t, "a");
	assert_absent(&t, "c");
	assert_str_content(&t, "ok", "fine");
	assert_str_content(&t, "hl", "fine");
	ck_assert_uint_eq(inode_of(&t, "hl")->nlink, 2);
	const struct tm_inode *up = inode_of(&t, "up");
	ck_assert_str_eq(tm_index_string(IDX, up->a), "../outside");
	ck_assert_uint_eq(up->size, 10);
	ck_assert_msg(t.diags.warnings + t.diags.errors > 0, "'..' members skipped silently");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* Two members that end exactly at 8192 bytes. */
static GByteArray *two_members(uint8_t *d1, uint8_t *d2)
{
	GByteArray *a = g_byte_array_new();
	tu_fill(d1, 3584, 1);
	tu_fill(d2, 3584, 2);
	tu_add(a, TU_USTAR, "one", '0', NULL, d1, 3584);
	tu_add(a, TU_USTAR, "two", '0', NULL, d2, 3584);
	ck_assert_uint_eq(a->len, 8192);
	return a;
}

START_TEST(test_truncated_no_end)
{
	uint8_t d1[3584], d2[3584];
	GByteArray *a = two_members(d1, d2);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);
	ck_assert(IDX->truncated);
	assert_content(&t, "one", d1, sizeof d1);
	assert_content(&t, "two", d2, sizeof d2);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_truncated_mid_data)
{
	uint8_t d1[3584], d2[3584];
	GByteArray *a = two_members(d1, d2);
	g_byte_array_set_size(a, 4096 + 512 + 1000); /* inside the data of "two" */
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);
	ck_assert(IDX->truncated);
	assert_content(&t, "one", d1, sizeof d1);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_truncated_mid_header)
{
	/* half a header: on the memory device the rest of its sector reads as zeros, so it is a
	 * damaged header either way; it must be reported (truncated or an error) */
	uint8_t d1[3584], d2[3584];
	GByteArray *a = two_members(d1, d2);
	g_byte_array_set_size(a, 4096 + 300);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_ptr_nonnull(t.idx);
	ck_assert_msg(IDX->truncated || IDX->errors > 0, "half a header went unnoticed");
	assert_content(&t, "one", d1, sizeof d1);
	assert_absent(&t, "two");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_end_in_partial_sector)
{
	/* The end marker lies in a partial last 4096-byte sector, which the memory device pads
	 * with zeros: the archive is complete with either sector size. */
	uint8_t d1[3584], d2[3584];
	GByteArray *a = two_members(d1, d2);
	tu_append_zeros(a, 1024);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	ck_assert(!IDX->truncated);
	assert_content(&t, "one", d1, sizeof d1);
	assert_content(&t, "two", d2, sizeof d2);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_bad_first_checksum)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "f", "data");
	a->data[TU_CHKSUM + 5] ^= 1;
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_msg(t.idx == NULL, "an archive with a bad first header was indexed");
	ck_assert(t.err.code != TM_BLOCK_OK || t.diags.errors > 0);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);

	/* not a tar archive at all */
	a = g_byte_array_sized_new(20480);
	g_byte_array_set_size(a, 20480);
	tu_fill(a->data, a->len, 3);
	tu_build(&t, a, tu_sector(_i));
	ck_assert_msg(t.idx == NULL, "random data was indexed");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_bad_later_checksum)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "m1", "first");
	tu_add_file(a, "m2", "second");
	size_t bad = a->len;
	tu_add_file(a, "m3", "third");
	a->data[bad + TU_CHKSUM + 5] ^= 1;
	tu_add_file(a, "m4", "fourth");
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	ck_assert_msg(t.idx != NULL, "no index for a damaged archive");
	ck_assert_uint_gt(IDX->errors, 0);
	ck_assert_uint_gt(t.diags.errors, 0);
	assert_str_content(&t, "m1", "first");
	assert_str_content(&t, "m2", "second");
	assert_absent(&t, "m3");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_garbage_after_end)
{
	GByteArray *a = g_byte_array_new();
	tu_add_file(a, "only", "content");
	tu_append_zeros(a, 1024);
	size_t g = a->len;
	g_byte_array_set_size(a, (guint)(g + 3 * TU_BLOCK));
	tu_fill(a->data + g, 3 * TU_BLOCK, 11);
	/* and something that looks like a member */
	tu_add_file(a, "ghost", "boo");
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	ck_assert(!IDX->truncated);
	assert_listing(&t, "", "only");
	assert_str_content(&t, "only", "content");
	ck_assert_uint_eq(IDX->members, 1);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_empty)
{
	/* A zero-length regular file is not an archive: GNU tar 1.34 says "This does not look
	 * like a tar archive" and exits 2 for `tar -tf empty.tar`. */
	static const uint8_t nothing[4096];
	struct tu_built t;
	tu_build_mem(&t, nothing, 0, tu_sector(_i));
	ck_assert_msg(t.idx == NULL, "an empty input was indexed");
	ck_assert_msg(strstr(t.diags.log->str, "not a tar archive"), "diagnostics: %s",
		      t.diags.log->str);
	tu_built_free(&t);
}
END_TEST

START_TEST(test_only_end_marker)
{
	GByteArray *a = g_byte_array_new();
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	ck_assert(!IDX->truncated);
	ck_assert(S_ISDIR(tm_index_inode(IDX, TM_ROOT)->mode));
	ck_assert_uint_eq(tm_index_child_count(IDX, TM_ROOT), 0);
	ck_assert_uint_eq(IDX->members, 0);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* ---- member types ---- */

START_TEST(test_types)
{
	GByteArray *a = g_byte_array_new();
	uint8_t h[TU_BLOCK];
	tu_add(a, TU_USTAR, "olddir/", '0', NULL, NULL, 0);  /* a directory by its slash */
	tu_add(a, TU_V7, "v7dir/", '\0', NULL, NULL, 0);
	tu_add(a, TU_V7, "v7file", '\0', NULL, "seven", 5);
	tu_add(a, TU_GNU, "gnufile", '0', NULL, "gnu", 3);
	tu_add(a, TU_USTAR, "contig", '7', NULL, "contiguous", 10);
	hdr(h, TU_USTAR, "chr", '3', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0666);
	tu_set_octal(h, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 1);
	tu_set_octal(h, TU_DEVMINOR, TU_DEVMINOR_LEN, 3);
	tu_checksum(h, false);
	tu_append_block(a, h);
	hdr(h, TU_USTAR, "blk", '4', 0);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0660);
	tu_set_octal(h, TU_DEVMAJOR, TU_DEVMAJOR_LEN, 8);
	tu_set_octal(h, TU_DEVMINOR, TU_DEVMINOR_LEN, 16);
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_add(a, TU_USTAR, "fifo", '6', NULL, NULL, 0);
	tu_add(a, TU_USTAR, "sym", '2', "target/path", NULL, 0);
	hdr(h, TU_USTAR, "modebits", '0', 1);
	tu_set_octal(h, TU_MODE, TU_MODE_LEN, 0104755); /* type bits in the mode field */
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_append_data(a, "m", 1);
	hdr(h, TU_GNU, "bigids", '0', 0);
	tu_set_b256(h, TU_UID, TU_UID_LEN, 3000000000LL);
	tu_set_b256(h, TU_GID, TU_GID_LEN, 4000000000LL);
	tu_set_str(h, TU_UNAME, TU_UNAME_LEN, "alice");
	tu_set_str(h, TU_GNAME, TU_GNAME_LEN, "wheel");
	tu_checksum(h, false);
	tu_append_block(a, h);
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	assert_dir(&t, "olddir");
	assert_dir(&t, "v7dir");
	assert_str_content(&t, "v7file", "seven");
	assert_str_content(&t, "gnufile", "gnu");
	assert_str_content(&t, "contig", "contiguous");

	const struct tm_inode *n = inode_of(&t, "chr");
	ck_assert_uint_eq(n->mode, S_IFCHR | 0666);
	ck_assert_uint_eq(n->a, 1);
	ck_assert_uint_eq(n->b, 3);
	n = inode_of(&t, "blk");
	ck_assert_uint_eq(n->mode, S_IFBLK | 0660);
	ck_assert_uint_eq(n->a, 8);
	ck_assert_uint_eq(n->b, 16);
	n = inode_of(&t, "fifo");
	ck_assert_uint_eq(n->mode, S_IFIFO | 0644);
	n = inode_of(&t, "sym");
	ck_assert_uint_eq(n->mode & S_IFMT, S_IFLNK);
	ck_assert_uint_eq(n->size, 11);
	ck_assert_str_eq(tm_index_string(IDX, n->a), "target/path");
	n = inode_of(&t, "modebits");
	ck_assert_uint_eq(n->mode, S_IFREG | 04755);
	assert_str_content(&t, "modebits", "m");
	n = inode_of(&t, "bigids");
	ck_assert_uint_eq(n->uid, 3000000000u);
	ck_assert_uint_eq(n->gid, 4000000000u);
	ck_assert_str_eq(tm_index_string(IDX, n->uname), "alice");
	ck_assert_str_eq(tm_index_string(IDX, n->gname), "wheel");
	assert_listing(&t, "",
		       "bigids|blk|chr|contig|fifo|gnufile|modebits|olddir|sym|v7dir|v7file");
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

START_TEST(test_xattrs)
{
	GByteArray *a = g_byte_array_new();
	GString *x = g_string_new(NULL);
	static const char bin[] = { 'v', 0, 'w', 0 };
	tu_pax_rec(x, "SCHILY.xattr.user.bin", bin, sizeof bin);
	tu_pax_str(x, "LIBARCHIVE.xattr.user.sp%20ace", "aGVsbG8");
	tu_pax_str(x, "SCHILY.xattr.user.dup", "first");
	tu_pax_str(x, "SCHILY.xattr.user.dup", "second");
	tu_add_pax(a, 'x', "PaxHeaders.1/xf", x);
	tu_add_file(a, "xf", "with xattrs");
	tu_add_file(a, "plain", "without");
	tu_finish(a);

	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	uint32_t ino = must_resolve(&t, "xf");
	GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
						 (GDestroyNotify)g_bytes_unref);
	uint32_t cursor = 0, vlen = 0;
	const char *name = NULL;
	const void *value = NULL;
	int count = 0;
	while (tm_index_xattr_next(IDX, ino, &cursor, &name, &value, &vlen) > 0) {
		ck_assert_int_lt(++count, 10);
		g_hash_table_insert(seen, g_strdup(name), g_bytes_new(value, vlen));
	}
	ck_assert_int_eq(count, 3);
	ck_assert_uint_eq(g_hash_table_size(seen), 3);
	GBytes *v = g_hash_table_lookup(seen, "user.bin");
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(g_bytes_get_size(v), sizeof bin);
	ck_assert(memcmp(g_bytes_get_data(v, NULL), bin, sizeof bin) == 0);
	v = g_hash_table_lookup(seen, "user.sp ace");
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(g_bytes_get_size(v), 5);
	ck_assert(memcmp(g_bytes_get_data(v, NULL), "hello", 5) == 0);
	v = g_hash_table_lookup(seen, "user.dup");
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(g_bytes_get_size(v), 6);
	ck_assert(memcmp(g_bytes_get_data(v, NULL), "second", 6) == 0);
	g_hash_table_destroy(seen);

	uint32_t plain = must_resolve(&t, "plain");
	cursor = 0;
	ck_assert_int_eq(tm_index_xattr_next(IDX, plain, &cursor, &name, &value, &vlen), 0);
	ck_assert_uint_eq(tm_index_inode(IDX, plain)->xattrs, TM_NONE);
	g_string_free(x, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

/* A global pax header's xattrs apply to every member after it; the list is kept once, not
 * once per member, and a member's own xattr still makes its list differ. */
START_TEST(test_xattrs_shared)
{
	enum { N = 300 };
	GByteArray *a = g_byte_array_new();
	GString *g = g_string_new(NULL);
	char big[2000];
	memset(big, 'v', sizeof big);
	tu_pax_rec(g, "SCHILY.xattr.security.selinux", big, sizeof big);
	tu_add_pax(a, 'g', "GlobalHead", g);
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%03d", i);
		if (i == 7) {
			GString *x = g_string_new(NULL);
			tu_pax_str(x, "SCHILY.xattr.user.own", "mine");
			tu_add_pax(a, 'x', "PaxHeaders/f007", x);
			g_string_free(x, TRUE);
		}
		tu_add_file(a, name, name);
	}
	tu_finish(a);
	struct tu_built t;
	tu_build(&t, a, tu_sector(_i));
	assert_clean(&t);
	/* two lists (the shared one, f007's), not N */
	ck_assert_uint_lt(IDX->aux_len, 3 * (sizeof big + 64));
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%03d", i);
		uint32_t ino = must_resolve(&t, name), cursor = 0, vlen;
		const char *xn;
		const void *v;
		int n = 0;
		bool own = false;
		while (tm_index_xattr_next(IDX, ino, &cursor, &xn, &v, &vlen) > 0) {
			n++;
			if (!strcmp(xn, "security.selinux"))
				ck_assert(vlen == sizeof big && !memcmp(v, big, sizeof big));
			else if (!strcmp(xn, "user.own"))
				own = vlen == 4 && !memcmp(v, "mine", 4);
			else
				ck_abort_msg("%s: unexpected xattr %s", name, xn);
		}
		ck_assert_int_eq(n, i == 7 ? 2 : 1);
		ck_assert(own == (i == 7));
	}
	g_string_free(g, TRUE);
	tu_built_free(&t);
	g_byte_array_free(a, TRUE);
}
END_TEST

Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("normalize");
	tcase_add_loop_test(tc, test_normalize, 0, (int)G_N_ELEMENTS(norm_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("tree");
	tcase_add_loop_test(tc, test_basic, 0, 2);
	tcase_add_loop_test(tc, test_sorted_children, 0, 2);
	tcase_add_loop_test(tc, test_duplicates, 0, 2);
	tcase_add_loop_test(tc, test_dir_metadata_after_implicit, 0, 2);
	tcase_add_loop_test(tc, test_root_entry, 0, 2);
	tcase_add_loop_test(tc, test_hardlinks, 0, 2);
	tcase_add_loop_test(tc, test_hardlink_replaced, 0, 2);
	tcase_add_loop_test(tc, test_resume, 0, 2);
	tcase_add_loop_test(tc, test_types, 0, 2);
	tcase_add_loop_test(tc, test_xattrs, 0, 2);
	tcase_add_loop_test(tc, test_xattrs_shared, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("extensions");
	tcase_add_loop_test(tc, test_gnu_longnames, 0, 2);
	tcase_add_loop_test(tc, test_pax_overrides, 0, 2);
	tcase_add_loop_test(tc, test_pax_global, 0, 2);
	tcase_add_loop_test(tc, test_pax_x_runs, 0, 2);
	tcase_add_loop_test(tc, test_gnu_long_runs, 0, 2);
	tcase_add_loop_test(tc, test_pax_vs_gnu_long, 0, 2);
	tcase_add_loop_test(tc, test_pax_global_names, 0, 2);
	tcase_add_loop_test(tc, test_sparse_members, 0, 2);
	tcase_add_loop_test(tc, test_sparse_many_ext_blocks, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("damage");
	tcase_add_loop_test(tc, test_dotdot, 0, 2);
	tcase_add_loop_test(tc, test_truncated_no_end, 0, 2);
	tcase_add_loop_test(tc, test_truncated_mid_data, 0, 2);
	tcase_add_loop_test(tc, test_truncated_mid_header, 0, 2);
	tcase_add_loop_test(tc, test_end_in_partial_sector, 0, 2);
	tcase_add_loop_test(tc, test_bad_first_checksum, 0, 2);
	tcase_add_loop_test(tc, test_bad_later_checksum, 0, 2);
	tcase_add_loop_test(tc, test_garbage_after_end, 0, 2);
	tcase_add_loop_test(tc, test_empty, 0, 2);
	tcase_add_loop_test(tc, test_only_end_marker, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}
