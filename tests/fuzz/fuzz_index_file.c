/* libFuzzer target: index files (tm_index_load).  Whatever file the loader accepts must be
 * safe to walk: the whole tree is then walked as in fuzz_archive (every entry, inode, xattr,
 * sparse map, reads through tm_kv_read compared with a model of the device), over exact-size
 * copies of the arrays so that ASan sees any read past one of them.
 *
 * Input: a mode byte, then
 *   mode 0 (raw)    the file as it is: exercises the header checks (the checksums stop
 *                   almost everything else);
 *   mode 1 (fixed)  the file, with magic, version, header size, source id, file size and
 *                   both checksums then made right, so that the structural checks are what
 *                   gets fuzzed (seeds: index files saved by tarkv);
 *   mode 2 (patch)  a base byte, a 32-bit little-endian offset, then bytes written over a
 *                   valid index built here from a small archive (testutil.h), at that
 *                   offset (modulo the file's size; the file grows if they run past its
 *                   end), then fixed up as in mode 1;
 *   mode 3 (damage) a 32-bit little-endian offset, then the file: fixed up as in mode 1,
 *                   then the byte at that offset (modulo the file's size) flipped, so
 *                   that loading takes it and the readers' checks meet the damage.
 * Reads go to a zero-filled device (modes 0 and 1) or to the base archive (mode 2);
 * tm_index_verify also runs against it.
 *
 * The header is made right by tm_index_file_seal.  With FUZZ_DUMP_INDEX=PATH the file finally handed to the loader is written to PATH (to turn a
 * mode 2 reproducer into a standalone index file); with FUZZ_VERBOSE set, whether the loader
 * accepted it. */
#include "config.h"

#include "fuzz_common.h"
#include "testutil.h"

/* ---- base indexes ---- */

struct base {
	GByteArray *archive;
	uint8_t *file;
	size_t file_len;
};

static struct base bases[2];

static GByteArray *base_archive(int which)
{
	GByteArray *a = g_byte_array_new();
	if (which == 0) {
		tu_add_dir(a, "d/");
		tu_add_file(a, "d/f", "hello, world\n");
		tu_add_dir(a, "d/e/");
		tu_add_file(a, "d/e/g", "a file two directories down\n");
		tu_add(a, TU_USTAR, "l", '2', "d/f", NULL, 0);
		tu_add(a, TU_USTAR, "h", '1', "d/f", NULL, 0);
		tu_add(a, TU_USTAR, "c", '3', NULL, NULL, 0);
		tu_add(a, TU_USTAR, "p", '6', NULL, NULL, 0);
		GString *x = g_string_new(NULL);
		tu_pax_str(x, "SCHILY.xattr.user.k", "v");
		tu_pax_str(x, "SCHILY.xattr.user.other", "a longer value");
		tu_add_pax(a, 'x', "PaxHeaders/x", x);
		g_string_free(x, TRUE);
		tu_add_file(a, "x", "with xattrs\n");
		static const uint64_t pairs[] = { 0, 100, 5000, 700, 9000, 0 };
		uint8_t *ref = tu_sparse_ref(pairs, 3, 9000, 7);
		tu_add_sparse_pax(a, TU_SPARSE_10, "s10", pairs, 3, 9000, ref);
		tu_add_sparse_oldgnu(a, "d/sg", pairs, 3, 9000, ref);
		g_free(ref);
		char longname[160];
		memset(longname, 'n', sizeof longname - 1);
		longname[sizeof longname - 1] = '\0';
		tu_add_longlink(a, 'L', longname);
		tu_add(a, TU_GNU, "nnnn", '0', NULL, "long\n", 5);
	} else {
		static const char *const names[] = { "a/", "a/b/", "a/b/c/", "a/b/c/1", "a/b/2",
						     "a/3", "z", "y/", "y/q", "a/b/c/4" };
		for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
			size_t n = strlen(names[i]);
			if (names[i][n - 1] == '/')
				tu_add_dir(a, names[i]);
			else
				tu_add_file(a, names[i], names[i]);
		}
		GString *x = g_string_new(NULL);
		tu_pax_str(x, "SCHILY.xattr.user.a", "1");
		tu_pax_str(x, "SCHILY.xattr.user.b", "22");
		tu_pax_str(x, "SCHILY.xattr.security.c", "333");
		tu_pax_str(x, "path", "y/with-xattrs");
		tu_add_pax(a, 'x', "PaxHeaders/w", x);
		g_string_free(x, TRUE);
		tu_add_file(a, "ignored", "xattrs\n");
	}
	tu_finish(a);
	return a;
}

static void bases_init(void)
{
	if (bases[0].file)
		return;
	for (int i = 0; i < 2; i++) {
		struct base *b = &bases[i];
		b->archive = base_archive(i);
		struct tm_block *blk = tm_block_mem_new(b->archive->data, b->archive->len, 512);
		struct tm_block_error err;
		struct tm_index *idx = tm_index_build(blk, NULL, &err);
		FZ_CHECK(idx && idx->errors == 0 && idx->warnings == 0, "base %d does not index", i);
		char *path = fz_scratch_path("base.idx"), why[300];
		FZ_CHECK(tm_index_save(idx, path, FZ_SOURCE_ID, NULL, why, sizeof why), "%s", why);
		gsize n;
		FZ_CHECK(g_file_get_contents(path, (gchar **)&b->file, &n, NULL), "reading %s", path);
		b->file_len = n;
		unlink(path);
		g_free(path);
		tm_index_free(idx);
		tm_block_disconnect(blk);
	}
}

/* ---- the target ---- */

static uint8_t zeros[1 << 20];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	bases_init();
	unsigned mode = data[0] % 4;
	GByteArray *f = g_byte_array_new();
	const uint8_t *devdata = zeros;
	size_t devlen = sizeof zeros;
	if (mode < 2) {
		g_byte_array_append(f, data + 1, (guint)(size - 1));
		if (mode == 1)
			tm_index_file_seal(f, FZ_SOURCE_ID);
	} else if (mode == 3) {
		uint8_t p[4] = { 0 };
		memcpy(p, data + 1, size - 1 < 4 ? size - 1 : 4);
		if (size > 5)
			g_byte_array_append(f, data + 5, (guint)(size - 5));
		tm_index_file_seal(f, FZ_SOURCE_ID);
		f->data[fz_le32(p) % f->len] ^= 0x20;
	} else {
		uint8_t p[5] = { 0 };
		memcpy(p, data + 1, size - 1 < 5 ? size - 1 : 5);
		const struct base *b = &bases[p[0] % 2];
		size_t at = fz_le32(p + 1) % b->file_len;
		const uint8_t *patch = size > 6 ? data + 6 : data + size;
		size_t plen = size > 6 ? size - 6 : 0;
		g_byte_array_append(f, b->file, (guint)b->file_len);
		if (at + plen > f->len)
			g_byte_array_set_size(f, (guint)(at + plen));
		memcpy(f->data + at, patch, plen);
		tm_index_file_seal(f, FZ_SOURCE_ID);
		devdata = b->archive->data;
		devlen = b->archive->len;
	}
	const char *dump = getenv("FUZZ_DUMP_INDEX");
	if (dump)
		fz_write_file(dump, f->data, f->len);

	char *path = fz_scratch_path("input.idx");
	fz_write_file(path, f->data, f->len);
	char why[300];
	memset(why, 'x', sizeof why);
	/* The cache's pruner reads every file's header and source path, whatever it holds. */
	int pfd = open(path, O_RDONLY);
	struct tm_index_peek peek;
	if (pfd >= 0 && tm_index_peek_fd(pfd, &peek) && peek.source)
		FZ_CHECK(peek.source[0] == '/' && strlen(peek.source) < TM_INDEX_PEEK_PATH_MAX,
			 "peeked source path");
	if (pfd >= 0) {
		g_free(peek.source);
		close(pfd);
	}
	struct tm_index *idx = tm_index_load(path, FZ_SOURCE_ID, why, sizeof why);
	if (getenv("FUZZ_VERBOSE"))
		fprintf(stderr, "mode %u, %u bytes: %s%s\n", mode, f->len,
			idx ? "accepted" : "refused: ", idx ? "" : why);
	if (idx) {
		struct tm_block *blk = tm_block_mem_new(devdata, devlen, 512);
		struct fz_dev dev = { blk, devdata, devlen, tm_block_size_bytes(blk) };
		struct tm_index *s = fz_shadow_new(idx);
		why[0] = '\0';
		/* (why may span lines here: it quotes a member name) */
		if (!tm_index_verify(s, blk, why, sizeof why))
			FZ_CHECK(strnlen(why, sizeof why) < sizeof why, "why not terminated");
		fz_walk_index(s, &dev, 0, (uint32_t)size);
		fz_shadow_free(s);
		tm_index_free(idx);
		tm_block_disconnect(blk);
	} else {
		fz_check_err(why, sizeof why);
	}
	unlink(path);
	g_free(path);
	g_byte_array_unref(f);
	return 0;
}
