/* An archive opened for reading: its source, the decompressor over it when the stream is
 * compressed, and the index, loaded from its saved file when that is current, else built
 * (and saved).  What tarmount and tarkv share between opening a source and serving it. */
#ifndef TM_ARCHIVE_H
#define TM_ARCHIVE_H

#include <stdbool.h>

#include "block.h"
#include "decomp.h"
#include "index.h"
#include "index_cache.h"

struct tm_archive_options {
	enum tm_decomp_format compression; /* TM_DECOMP_AUTO: from the magic bytes */
	struct tm_decomp_options decomp;   /* its diag is set by tm_archive_open */
	struct tm_index_options index;     /* diag also gets the decompressor's findings */
	const char *index_path;            /* NULL: tm_index_default_path, in the cache */
	uint64_t index_cache_max;          /* the cache's cap (tm_index_cache_max), applied
					      when an index is saved there; 0: none */
	bool persist;                      /* read and write an index file */
	bool defer_save;                   /* the caller calls tm_archive_save (later) */
	/* Called now and then while the archive is scanned: bytes of the source done of
	 * total (compressed bytes, for a compressed source), members read. */
	void (*progress)(void *ud, uint64_t done, uint64_t total, uint64_t members);
	void *progress_ud;
	/* Told when a seekable copy in use fails later (from a reading thread); may be NULL. */
	tm_decomp_diag_fn copy_diag;
	void *copy_diag_ud;
};

struct tm_archive {
	struct tm_block *data;  /* what the index's offsets address: the source, or its
				   decompressed stream */
	struct tm_index *index;
	enum tm_decomp_format format;
	bool loaded;            /* the index (and seek table) came from the file */
	bool extended;          /* built from the index of an earlier state of the source
				   (which only grew since), scanning only what was added */
	bool saved;
	char id[65];            /* the source's identity, when persist */
	char *index_path;       /* when persist */
	int index_fd;           /* that file, held (index_cache.h) while open; -1: none */
	bool in_cache;          /* index_path is in the cache: saving there prunes it */
	uint64_t cache_max;
	struct tm_index_cache_report pruned; /* by the save */
	char *source_path;      /* the source's absolute path, when it is a path */
	char why_rebuilt[300];  /* why a saved index was not used, or "" */
	/* The seekable copy's file (decomp.h), when the stream wants one and has an index
	 * file to keep it beside; copy_used when it is attached. */
	char *copy_path;
	bool copy_used;
	char why_no_copy[300];  /* why an existing copy file was not used (and removed), or "" */
	tm_decomp_diag_fn copy_diag; /* from the options */
	void *copy_diag_ud;
};

/* Open source (taken over, also on failure) as o says.  NULL with err set, or with the
 * problem reported through o->index.diag (not a tar archive...). */
struct tm_archive *tm_archive_open(struct tm_block *source, const char *source_name,
				   const struct tm_archive_options *o, struct tm_block_error *err);
/* Save the index (and seek table) when it was built here and persist was asked; true when
 * there was nothing to do.  Saved in the cache, it is held from then on, and the cache is
 * pruned (what that did in pruned; a failure to prune is not one to save).  Safe to call
 * from another thread than the readers'. */
bool tm_archive_save(struct tm_archive *a, char *why, size_t why_len);
/* Take idx (the index of the archive as it is after a change, kv_rw.h) in place of the
 * one the archive had (which the caller freed or keeps), and save it under the source's new
 * identity; the old index file is removed.  False with why when it could not be saved
 * (the archive still has idx). */
bool tm_archive_update(struct tm_archive *a, struct tm_index *idx, char *why, size_t why_len);
/* Make the seekable copy (a->copy_path, which must be set) and use it: decodes the whole
 * stream on this thread while others read.  In the cache it may take at most half of the
 * cache's cap, and the cache is pruned after.  False with err; r as for
 * tm_decomp_copy_build. */
bool tm_archive_build_copy(struct tm_archive *a, struct tm_decomp_copy_report *r,
			   struct tm_block_error *err);
void tm_archive_close(struct tm_archive *a);

#endif
