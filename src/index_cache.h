/* The cache of index files, $XDG_CACHE_HOME/tarmount (~/.cache/tarmount): kept under a cap
 * by a pruner that runs whenever a new index is saved there.
 *
 * Who may remove what: an index in use (an open tm_archive: a live mount, a tarkv run)
 * holds a shared flock(2) on its file; the pruner removes a file only while it holds an
 * exclusive one, taken without waiting, so it skips every file in use.  It only ever removes
 * files of ours: "<64 hex>.idx" starting with the index magic, the temporary files
 * ".<64 hex>.XXXXXX" a crash during a save leaves behind, and an index's seekable copy
 * "<64 hex>.seekable.zst" (decomp.h), counted and removed with its index.
 *
 * "Last used" is the file's mtime: set when it is written and again whenever it is loaded
 * from the cache (atime would not do: noatime and relatime mounts do not keep it). */
#ifndef TM_INDEX_CACHE_H
#define TM_INDEX_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cap is taken from here when no option gives it (CI jobs set it for every run). */
#define TM_INDEX_CACHE_ENV "TARMOUNT_INDEX_CACHE_MAX"
/* The default cap: 1 GiB, but at most a tenth of the filesystem holding the cache.  1 GiB
 * holds ten indexes of 1,000,000-entry archives (92 MB each) or a thousand of typical
 * 10,000-entry ones; the tenth keeps a small CI disk from losing more than that to them. */
#define TM_INDEX_CACHE_DEFAULT_MAX (UINT64_C(1) << 30)
#define TM_INDEX_CACHE_DEFAULT_FRACTION 10
/* A temporary file older than this (seconds) is a crashed save's, not one under way. */
#define TM_INDEX_CACHE_TEMP_AGE 3600

/* Parse a size: decimal digits with an optional suffix K, M, G or T (powers of 1024, either
 * case, "KiB" and "KB" accepted as well).  "0" is a valid size (meaning: no cap). */
bool tm_index_cache_parse_size(const char *s, uint64_t *out);

/* The cap in bytes, 0 for none: given (an option's value) when not NULL, else the
 * environment's TM_INDEX_CACHE_ENV when set and not empty, else the default.  False with a
 * message in why when the value used is not a size. */
bool tm_index_cache_max(const char *given, uint64_t *max, char *why, size_t why_len);

/* The cache directory, $XDG_CACHE_HOME/tarmount.  Freed with g_free. */
char *tm_index_cache_dir(void);

/* What a pruning did. */
struct tm_index_cache_report {
	uint64_t bytes;         /* index files (with their copies) left, in bytes (st_size) */
	unsigned files;         /* index files left */
	unsigned removed_gone;  /* removed because their source is gone */
	unsigned removed_lru;   /* removed as the least recently used */
	unsigned removed_temp;  /* stale temporary files (and copies left alone) removed */
	unsigned busy;          /* would have been removed but are in use (locked) */
};

/* Remove stale temporary files from dir, then, while the index files there total more
 * than max bytes (max 0: no cap), remove those whose source path no longer exists, then the
 * least recently used, skipping any that is locked.  An index without a source path (an
 * NBD source, an older file) is only ever removed by age.  r may be NULL.  False with a
 * message in why when dir cannot be read; a file that cannot be removed is skipped. */
bool tm_index_cache_prune(const char *dir, uint64_t max, struct tm_index_cache_report *r,
			  char *why, size_t why_len);

/* Open the index file at path with a shared lock on it (see above): the descriptor, which
 * the caller closes to let go, or -1 with errno set (ENOENT: no such file).  Waits while a
 * pruner holds the file, and then sees that it was removed.  On a filesystem without
 * flock(2) the descriptor comes back unlocked. */
int tm_index_cache_hold(const char *path);

/* Remove the index file at path when it is still the file held on fd (not one saved
 * there since): a damaged index, so that the next open rebuilds it.  False with errno set
 * when it is not removed. */
bool tm_index_cache_drop(const char *path, int fd);

/* The index files in dir saved for the source at path source_path under another identity
 * than except_id (the same file, since grown or rewritten), newest first: their paths in a
 * NULL-terminated array (g_strfreev), at most max of them. */
char **tm_index_cache_by_source(const char *dir, const char *source_path, const char *except_id,
				unsigned max);

/* Mark the file on fd as used now (its mtime), for the pruner's order; failures (a
 * read-only cache) are ignored. */
void tm_index_cache_touch(int fd);

#endif
