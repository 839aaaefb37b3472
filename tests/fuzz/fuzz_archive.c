/* libFuzzer target: whole archives.  The input is indexed with tm_index_build over an
 * in-memory device, the whole tree is walked (every entry, inode, xattr and sparse map),
 * every regular file is read through tm_kv_read and compared with a model of the device,
 * a few are digested, and the index is saved and loaded back and must come back identical.
 *
 * Input: the archive, then one control byte (the last byte of the input):
 *   bit 0  sector size 4096 (else 512)
 *   bit 1  rewrite the checksum of every header the reader will meet, so that mutations of
 *          the fields behind it are not refused at the checksum
 *   bit 2  read through the cache decorator (tm_block_cache_new)
 *   bit 3  read through a window decorator: the archive sits 1 + 97 * (bits 4-7) bytes
 *          into a larger device (so at any alignment)
 * The high bits also seed the choice of read windows.  tm_index_verify also runs, against
 * the device the index was built from. */
#include "config.h"

#include "fuzz_common.h"

/* Follow the headers as the reader does (header, old GNU extension blocks, data) and make
 * each header's checksum right. */
static void fix_checksums(uint8_t *a, size_t len)
{
	static const uint8_t zero[TM_TAR_BLOCK];
	uint64_t pos = 0;
	while (pos + TM_TAR_BLOCK <= len) {
		uint8_t *blk = a + pos;
		if (!memcmp(blk, zero, TM_TAR_BLOCK))
			break;
		fz_fix_checksum(blk);
		int64_t size;
		if (!tm_tar_number(blk + 124, 12, &size) || size < 0)
			break;
		pos += TM_TAR_BLOCK;
		if (blk[156] == 'S' && !memcmp(blk + 257, "ustar  \0", 8) && blk[482]) {
			while (pos + TM_TAR_BLOCK <= len) {
				bool more = a[pos + 504] != 0;
				pos += TM_TAR_BLOCK;
				if (!more)
					break;
			}
		}
		if ((uint64_t)size > len)
			break;
		pos += ((uint64_t)size + TM_TAR_BLOCK - 1) / TM_TAR_BLOCK * TM_TAR_BLOCK;
	}
}

static void diag(void *ud, enum tm_tar_diag_level level, uint64_t offset, const char *path,
		 const char *msg)
{
	(void)offset;
	unsigned *n = ud;
	(*n)++;
	FZ_CHECK(level == TM_TAR_WARNING || level == TM_TAR_ERROR, "diag level %d", level);
	FZ_CHECK(msg != NULL, "diag without a message");
	volatile size_t t = strlen(msg) + (path ? strlen(path) : 0);
	(void)t;
}

static bool same(const void *a, const void *b, size_t n)
{
	return n == 0 || !memcmp(a, b, n);
}

/* Save idx, load it back: the loader must accept what the builder made, unchanged. */
static void round_trip(const struct tm_index *idx)
{
	char *path = fz_scratch_path("archive.idx");
	char why[300] = "";
	FZ_CHECK(tm_index_save(idx, path, FZ_SOURCE_ID, NULL, why, sizeof why), "save: %s", why);
	struct tm_index *l = tm_index_load(path, FZ_SOURCE_ID, why, sizeof why);
	FZ_CHECK(l != NULL, "the loader refused a built index: %s", why);
	FZ_CHECK(l->ninodes == idx->ninodes && l->ndentries == idx->ndentries &&
			 l->nchildren == idx->nchildren && l->strings_len == idx->strings_len &&
			 l->aux_len == idx->aux_len && l->members == idx->members &&
			 l->archive_end == idx->archive_end && l->warnings == idx->warnings &&
			 l->errors == idx->errors && l->truncated == idx->truncated,
		 "a loaded index's counts differ from the saved one's");
	FZ_CHECK(same(l->inodes, idx->inodes, (size_t)idx->ninodes * sizeof *idx->inodes) &&
			 same(l->dentries, idx->dentries,
			      (size_t)idx->ndentries * sizeof *idx->dentries) &&
			 same(l->children, idx->children,
			      (size_t)idx->nchildren * sizeof *idx->children) &&
			 same(l->strings, idx->strings, idx->strings_len) &&
			 same(l->aux, idx->aux, idx->aux_len),
		 "a loaded index's arrays differ from the saved one's");
	tm_index_free(l);
	unlink(path);
	g_free(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	uint8_t ctl = data[size - 1];
	size_t len = size - 1;
	uint32_t ss = ctl & 1 ? 4096 : 512;
	/* An exact-size copy: the device must not read past it. */
	uint8_t *arc = g_memdup2(data, len);
	if (ctl & 2)
		fix_checksums(arc, len);

	uint8_t *outer = NULL;
	struct tm_block *b;
	struct tm_block_error err = { 0 };
	if ((ctl & 8) && len) {
		size_t pad = 1 + 97 * (size_t)(ctl >> 4);
		outer = g_malloc(pad + len + 100);
		memset(outer, 0xa5, pad + len + 100);
		if (len)
			memcpy(outer + pad, arc, len);
		/* A window of exactly the archive, inside a device with bytes after it too. */
		b = tm_block_window_new(tm_block_mem_new(outer, pad + len + 100, ss), pad, len,
					&err);
		FZ_CHECK(b != NULL, "window: %s", err.msg);
	} else {
		b = tm_block_mem_new(arc, len, ss);
	}
	if (ctl & 4)
		b = tm_block_cache_new(b, 256 * 1024);

	struct fz_dev dev = { b, arc, len, tm_block_size_bytes(b) };
	/* Devices have exact sizes (a partial last sector reads as zeros past the end). */
	FZ_CHECK(dev.size == len, "device of %llu bytes for %zu",
		 (unsigned long long)dev.size, len);

	unsigned ndiags = 0;
	struct tm_index_options opts = { .diag = diag, .diag_ud = &ndiags };
	struct tm_index *idx = tm_index_build(b, &opts, &err);
	if (idx) {
		FZ_CHECK(ndiags == idx->warnings + idx->errors, "%u diagnostics, %u counted", ndiags,
			 idx->warnings + idx->errors);
		struct tm_index *s = fz_shadow_new(idx);
		fz_walk_index(s, &dev, FZ_BUILT, (uint32_t)size * 2654435761u ^ ctl);
		fz_shadow_free(s);
		round_trip(idx);
		/* A fresh index may fail verification (pax sizes and paths that differ from
		 * the header's fields, names that normalise to something else): only the
		 * reads and the message are checked. */
		char why[300] = "";
		if (!tm_index_verify(idx, b, why, sizeof why))
			FZ_CHECK(strnlen(why, sizeof why) < sizeof why && why[0],
				 "verification failed without a reason");
		tm_index_free(idx);
	} else {
		FZ_CHECK(ndiags > 0 || err.code != TM_BLOCK_OK, "no index, and no reason given");
	}
	tm_block_disconnect(b);
	g_free(outer);
	g_free(arc);
	return 0;
}
