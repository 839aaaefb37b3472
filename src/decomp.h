/* The decompressing layer: a compressed stream on a tm_block, seen as the tm_block of its
 * decompressed bytes, so that the tar reader, the index, KV_RO and the front ends work on
 * it unchanged.  A decorator like the window and the cache: it takes a source and gives one.
 *
 * Random access comes from seek points: places in the compressed stream where decoding can
 * start, each with the decompressed offset it produces and whatever state the format needs
 * to resume there (gzip: a bit offset and the 32 KiB window before it; bzip2 blocks: a bit
 * offset and a length; lz4 linked blocks: the 64 KiB before them; zstd frames, xz blocks,
 * gzip members and lz4 independent blocks: nothing).  The
 * first pass (the "scan") decodes the stream once from the start on a thread of its own (or,
 * where the format has pieces that decode on their own, two at a time on worker threads),
 * records the seek points and hands the decoded bytes to the reader (the tar scan) through
 * the chunk cache; the table it made is saved in the index file (tm_decomp_table) and given
 * back on the next open, which then reads no compressed data before it answers.
 *
 * Reads decode from the nearest seek point or parked decoder at or before the wanted offset
 * into a bounded cache of decoded chunks shared by all threads; a decoder that just filled
 * a chunk is parked where it stopped, so a sequential reader decodes each byte once.
 *
 * Thread safety: read() from any number of threads, as for every tm_block. */
#ifndef TM_DECOMP_H
#define TM_DECOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "block.h"

enum tm_decomp_format {
	TM_DECOMP_AUTO = -1, /* detect from the magic bytes */
	TM_DECOMP_NONE = 0,
	TM_DECOMP_GZIP,
	TM_DECOMP_ZSTD,
	TM_DECOMP_XZ,
	TM_DECOMP_BZIP2,
	TM_DECOMP_LZ4,
};

/* "none", "gzip", ... */
const char *tm_decomp_format_name(enum tm_decomp_format f);
/* Parse a -o compression= value (also "auto"); false for an unknown name. */
bool tm_decomp_format_parse(const char *s, enum tm_decomp_format *out);
/* The format whose magic bytes start head[0..len), or TM_DECOMP_NONE. */
enum tm_decomp_format tm_decomp_detect(const uint8_t *head, size_t len);
/* Read the first bytes of b and detect; TM_DECOMP_NONE also for a source too short. */
enum tm_decomp_format tm_decomp_detect_block(struct tm_block *b, struct tm_block_error *err);

/* Called with what the scan finds wrong: error false for a warning (trailing garbage, a
 * truncated stream whose good part is used), true for damage (a checksum mismatch).
 * offset is the compressed byte offset; msg names the problem and the format. */
typedef void (*tm_decomp_diag_fn)(void *ud, bool error, uint64_t offset, const char *msg);

struct tm_decomp_options {
	uint64_t cache_size;   /* bytes of decoded chunks kept; 0: 64 MiB */
	uint64_t spacing;      /* decompressed bytes between the seek points the scan makes
				  where it may choose (gzip, lz4 linked blocks); 0: 1 MiB */
	tm_decomp_diag_fn diag;
	void *diag_ud;
};

/* Wrap inner (taking ownership of it on success; on failure the caller keeps it) as the
 * decompressed stream of format fmt.  A table is used in place, not copied: it must stay
 * valid until the decompressor is disconnected.  table[0..table_len), from tm_decomp_table of an earlier open of the same source,
 * gives the seek points at once; it is checked against the source (a sample of compressed
 * bytes at its points) and NULL returned with err (TM_BLOCK_INVALID, "stale seek table")
 * when it does not match, so the caller can open again without it.  Without a table the
 * scan starts at once on its own thread; until it ends the size is pending (see
 * tm_block_info.size_pending). */
struct tm_block *tm_decomp_new(struct tm_block *inner, enum tm_decomp_format fmt,
			       const struct tm_decomp_options *opts, const void *table,
			       size_t table_len, struct tm_block_error *err);

/* Free the decompressor b and give back the source it wrapped. */
struct tm_block *tm_decomp_release(struct tm_block *b);

/* Whether b is a decompressor (then the functions below apply). */
bool tm_decomp_is(struct tm_block *b);

/* The reader of the scan is done with everything before used_end (the end of the archive):
 * the scan goes on to the end of the stream to check it (or stops a bounded distance past
 * used_end, for a stream that goes on long after the archive), then this returns.  False
 * with err when the stream is damaged (corrupt data, a checksum mismatch): the stream then
 * ended, for the reader, where the damage starts; the table is still good for what
 * precedes. */
bool tm_decomp_finish(struct tm_block *b, uint64_t used_end, struct tm_block_error *err);

/* Compressed bytes the scan has read so far (for progress reports; any thread). */
uint64_t tm_decomp_scan_position(struct tm_block *b);

/* The seek table for tm_decomp_new, after the scan. */
void tm_decomp_table(struct tm_block *b, GByteArray *out);
/* A hash of the table and of the compressed bytes it was checked against: stands in for
 * the index's fingerprint of header blocks, which would cost a decode per sample. */
uint64_t tm_decomp_fingerprint(struct tm_block *b);

/* Test hook, for the fuzzers and unit tests only (tm_index_file_seal's counterpart): set
 * the fingerprint field of table[0..len), laid out as tm_decomp_table writes it, to what
 * tm_decomp_new computes over inner for its size and points, so that a table changed on
 * purpose gets past the fingerprint to the rest of the validation.  False (table unchanged)
 * when it is too short for its header and points, or inner cannot be read. */
bool tm_decomp_test_seal_table(struct tm_block *inner, void *table, size_t len);

struct tm_decomp_stats {
	enum tm_decomp_format format;
	uint64_t compressed;   /* bytes of compressed input */
	uint64_t size;         /* decompressed bytes (as far as the scan went) */
	uint64_t points;       /* seek points */
	uint64_t max_gap;      /* largest decompressed distance between points (or to the end) */
	uint64_t table_bytes;  /* size of the seek table */
	uint64_t decoded;      /* decompressed bytes produced since the open (all decoders) */
	uint64_t restarts;     /* decoders started at a seek point */
	bool scanned;          /* the scan ran in this process (no saved table) */
	uint64_t copy_bytes;   /* the seekable copy's file, when one is in use; else 0 */
};
void tm_decomp_stats(struct tm_block *b, struct tm_decomp_stats *out);

/* The advice to print when the stream seeks badly (max_gap large), or NULL. */
const char *tm_decomp_advice(enum tm_decomp_format f);

/* ---- the seekable copy ----
 * A stream whose seek points are far apart for its format's speed (one zstd frame, one xz
 * block, xz's 24 MiB blocks: a read outside the cache would decode up to all of it) is
 * worth re-encoding once as a seekable copy: zstd frames of 1 MiB of the stream each, at
 * level 1, kept beside the index (its name: tm_decomp_copy_path).  Attached, it serves
 * every read outside the cache by decoding one frame; a frame that fails gives the copy up
 * (said through diag, its file removed) and reads decode the stream again. */

/* Whether b, after its scan, seeks badly enough for a copy. */
bool tm_decomp_copy_wanted(struct tm_block *b);
/* The copy's file beside an index file: "X.idx" -> "X.seekable.zst".  g_free. */
char *tm_decomp_copy_path(const char *index_path);
/* Use the copy at path, when it is one made for this stream (checked: its header, sizes and
 * seek table; its frames as they are decoded).  False with why otherwise (ENOENT's message
 * when there is none).  diag (may be NULL) hears of a frame that fails later, from the
 * reading thread. */
bool tm_decomp_copy_attach(struct tm_block *b, const char *path, tm_decomp_diag_fn diag,
			   void *diag_ud, char *why, size_t why_len);

struct tm_decomp_copy_report {
	uint64_t done;  /* bytes of the stream encoded so far (another thread may look) */
	uint64_t bytes; /* of the finished file */
};
/* Make the copy for b at path (written under a temporary name beside it, then renamed):
 * decodes the whole stream on the calling thread, which readers do not wait for.  limit:
 * give up when the file grows past it (0: no limit).  False with err (a failure, the limit,
 * tm_decomp_copy_cancel); nothing is left behind then.  Does not attach it. */
bool tm_decomp_copy_build(struct tm_block *b, const char *path, uint64_t limit,
			  struct tm_decomp_copy_report *r, struct tm_block_error *err);
/* Make a tm_decomp_copy_build under way on another thread stop soon (before disconnect). */
void tm_decomp_copy_cancel(struct tm_block *b);

#endif
