/* The tar index: the tree that extracting the archive with GNU tar would create, built once
 * from the headers and immutable afterwards, so any number of threads read it without locks.
 *
 * Layout (flat arrays, no pointers, so that a later version can write it to a file and map it
 * back):
 *   inodes[]    one per file, directory, link target...; inode 0 is the root directory.
 *   dentries[]  a name and the inode it points to; hard links are several dentries, one inode.
 *   children[]  for each directory, a run of dentry numbers sorted by name (bytewise), so that
 *               a lookup is a binary search and a listing is a slice.
 *   strings     NUL-terminated names, link targets, user and group names.
 *   aux         8-byte aligned records: sparse maps and xattr lists.
 * Cost per entry: 64 bytes of inode, 8 of dentry, 4 of children slot, plus the name. */
#ifndef TM_INDEX_H
#define TM_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

#include "block.h"
#include "tar.h"

#define TM_NONE UINT32_MAX
#define TM_ROOT 0u
/* What lookups return when what they had to read is damaged (see "reading" below). */
#define TM_DAMAGED (UINT32_MAX - 1)

struct tm_inode {
	uint64_t size;   /* logical size; for a symlink, the target's length */
	uint64_t offset; /* byte offset of the data on the device (regular files); for a
			    directory, TM_INODE_IMPLICIT when no member listed it (it was made
			    for its children), else 0 */
	int64_t mtime;
	uint32_t mtime_nsec;
	uint32_t mode;   /* S_IFMT type bits | 07777 permission bits */
	uint32_t uid, gid;
	uint32_t uname, gname; /* offsets in strings; 0 is the empty string */
	uint32_t nlink;
	uint32_t xattrs;       /* offset in aux of the xattr list, or TM_NONE */
	/* By type: directory: first slot in children[] and the number of children;
	 * symlink: offset in strings of the target, unused; regular file: offset in aux of the
	 * sparse map or TM_NONE, unused; char/block device: major, minor. */
	uint32_t a, b;
};

#define TM_INODE_IMPLICIT 1u

struct tm_dentry {
	uint32_t name;  /* offset in strings */
	uint32_t inode;
};

/* A sparse map in aux: count, then count chunks in increasing offset order, each with where
 * its bytes start relative to the member's data offset. */
struct tm_index_sparse_chunk {
	uint64_t offset, length, stored;
};
struct tm_index_sparse {
	uint64_t count;
	struct tm_index_sparse_chunk chunk[];
};

struct tm_index {
	const struct tm_inode *inodes;
	const struct tm_dentry *dentries;
	const uint32_t *children;
	const char *strings;
	const uint8_t *aux;
	uint32_t ninodes, ndentries, nchildren;
	uint64_t strings_len, aux_len;
	/* What the scan found. */
	uint64_t members;      /* archive members read */
	uint64_t archive_end;  /* byte offset just past the last member used */
	unsigned warnings, errors;
	bool truncated;        /* the archive ended without an end-of-archive marker */
	uint64_t fingerprint;  /* of a sample of the archive's header blocks (see below) */
	bool has_xattrs;       /* some inode has an xattr list */
	/* Loaded from an index file: its other sections (NULL when absent). */
	const void *seek;      /* the decompressor's seek table (tm_decomp_table) */
	uint64_t seek_len;
	const char *source;    /* the source's path when it was saved */
	void *storage;         /* private: owns the arrays when built in memory */
	void *map;             /* private: the mapped index file, when loaded from one */
	size_t map_len;
	struct tm_index_lazy *lazy; /* private: what is checked as it is read (loaded only) */
};

/* Told once, from the reader's thread, when a loaded index is found damaged; why names
 * what failed. */
typedef void (*tm_index_damage_fn)(void *ud, const char *why);

/* Called for each problem found while building; path may be NULL. */
typedef void (*tm_index_diag_fn)(void *ud, enum tm_tar_diag_level level, uint64_t offset,
				 const char *path, const char *msg);

struct tm_index_options {
	tm_index_diag_fn diag; /* NULL: problems are only counted */
	void *diag_ud;
	/* Called now and then with the bytes scanned and members read; NULL for none. */
	void (*progress)(void *ud, uint64_t bytes, uint64_t members);
	void *progress_ud;
	/* Leave the fingerprint 0 (a source whose reads cost a decode: the caller sets it). */
	bool no_fingerprint;
	/* What-if, for changes in place (kv_rw.c): the member whose first header block is at
	 * edit_offset is indexed under the path edit_path instead of its own, or, with
	 * edit_path NULL, is where the archive ends (neither it nor anything after it is read). */
	bool edit;
	uint64_t edit_offset;
	const char *edit_path;
};

/* Scan the archive on b and build its index.  Returns NULL, with err or a TM_TAR_ERROR
 * diagnostic saying why, when the source is not a tar archive or the device fails; a
 * damaged archive after its first header yields the index of what was valid, with the
 * problems reported through diag and counted in warnings/errors. */
struct tm_index *tm_index_build(struct tm_block *b, const struct tm_index_options *opts,
				struct tm_block_error *err);
void tm_index_free(struct tm_index *idx);

/* The index of b when b holds base's archive with more members after it (GNU tar -r and -A,
 * our own appends): base's tree with the members from base->archive_end on applied to it,
 * as extraction would, scanning only those; what base says of the members before is taken
 * as it is.  base stays valid and unchanged; inode numbers of base are kept (new inodes
 * come after them).  Global pax headers (typeflag g) before archive_end do not carry over
 * to the new members.  NULL with err as for tm_index_build. */
struct tm_index *tm_index_build_resume(const struct tm_index *base, struct tm_block *b,
				       const struct tm_index_options *opts,
				       struct tm_block_error *err);

/* ---- the persisted index (src/index_file.c) ----
 * A file holding the arrays as they are in memory, behind a header that names the format
 * version, the source's identity (see tm_block_identity) and checksums of the header and
 * of each page of the data.  Loading maps it read-only and checks the header, the page
 * checksums' table and the few records every reader needs (the root, the ends of the
 * string pool): ready in a time that does not grow with the archive.  Every other page
 * and record is checked when it is first read (see "reading" below). */

/* What an index file holds beside the index. */
struct tm_index_extra {
	const void *seek;   /* a decompressor's seek table, or NULL */
	uint64_t seek_len;
	const char *source; /* the source's absolute path, or NULL */
};

/* Write idx (and extra, which may be NULL) to path atomically (a temporary file renamed
 * over it).  Returns false with a message in why. */
bool tm_index_save(const struct tm_index *idx, const char *path, const char *source_id,
		   const struct tm_index_extra *extra, char *why, size_t why_len);
/* As tm_index_save; with held not NULL, *held is a descriptor of the saved file that holds
 * a shared flock(2) (where the filesystem has them), taken before the file got its name:
 * no pruner can remove it in between.  The caller closes it; -1 on failure. */
bool tm_index_save_held(const struct tm_index *idx, const char *path, const char *source_id,
			const struct tm_index_extra *extra, int *held, char *why, size_t why_len);
/* Map the index at path if it is intact and describes source_id; NULL with a message in why
 * otherwise (missing, another format version, another source, truncated, corrupt). */
struct tm_index *tm_index_load(const char *path, const char *source_id, char *why,
			       size_t why_len);
/* As tm_index_load, from an open descriptor (left open: the mapping does not need it). */
struct tm_index *tm_index_load_fd(int fd, const char *source_id, char *why, size_t why_len);

/* What tm_index_peek_fd reads of an index file. */
#define TM_INDEX_PEEK_PATH_MAX 4096 /* longer source paths are not read */
struct tm_index_peek {
	uint32_t version;   /* the file's format version (0: shorter than a header) */
	bool header_ok;     /* this version's header, with a right checksum: what follows is
			       set */
	char source_id[65];
	char *source;       /* the source's absolute path, or NULL when the file has none (an
			       NBD source, an older file) or it cannot be read; g_free */
};
/* Read an index file's header and source path only, nothing else checked or mapped: for
 * the cache's pruner, which looks at every file.  False when fd is not an index file of
 * ours (not a regular file, not starting with the magic); true otherwise, with out filled
 * as far as the file allows (every offset checked against its size: it may be corrupt). */
bool tm_index_peek_fd(int fd, struct tm_index_peek *out);

/* A hash of the archive's first block and of the header blocks of up to 64 members spread
 * over the index (chosen from the index alone, so the same ones again after a load).  Set
 * by tm_index_build, kept in the index file. */
bool tm_index_fingerprint(const struct tm_index *idx, struct tm_block *b, uint64_t *out,
			  struct tm_block_error *err);
/* Check a loaded index against its source: the sampled header blocks must still hash to
 * the fingerprint.  An identity made of the size and the ends of a device cannot see an
 * archive rewritten in between; this can (a rewrite that keeps every sampled header but
 * changes data cannot be seen without reading it all: -o noindex for such sources). */
bool tm_index_verify(const struct tm_index *idx, struct tm_block *b, char *why,
		     size_t why_len);
/* Make the header of the index file image in file valid for source_id (64 characters):
 * magic, version, sizes and both checksums, whatever the rest holds; a file shorter than a
 * header is first padded with zeros.  For tests and fuzzers whose files the loader must
 * check structurally. */
void tm_index_file_seal(GByteArray *file, const char *source_id);
/* The default place for a source's index: $XDG_CACHE_HOME/tarmount/ID.idx, or
 * ~/.cache/tarmount/ID.idx.  Freed with g_free. */
char *tm_index_default_path(const char *source_id);

/* The index of b, from its saved file when that is intact and current (*loaded set), else
 * built and saved there.  path: the file, or NULL for tm_index_default_path.  persist
 * false: neither read nor write a file.  Failing to save is a warning through opts->diag,
 * not an error. */
struct tm_index *tm_index_open(struct tm_block *b, const struct tm_index_options *opts,
			       const char *path, bool persist, bool *loaded,
			       struct tm_block_error *err);

/* Memory the index holds (the arrays), for reports. */
size_t tm_index_memory(const struct tm_index *idx);

/* ---- reading (src/index.c) ----
 * A built index is trusted.  A loaded one is checked as it is read: a page of the file the
 * first time it is touched (its checksum), a record each time it is used (its offsets and
 * counts inside the arrays, its strings terminated inside the pool, a child directory
 * followed only from its one parent).  A failed check marks the index damaged for good
 * (tm_index_damaged), tells the damage hook once, and makes the accessor return what it
 * says it returns for damage: nothing outside the arrays, nothing unchecked.  Damage is a
 * property of the bytes read: an operation that does not touch a damaged page or record
 * works as before.  No locks: any number of threads read at once. */

/* Call fn (from the reader that finds it) the first time idx is found damaged.  Set it
 * before readers start. */
void tm_index_on_damage(struct tm_index *idx, tm_index_damage_fn fn, void *ud);
/* Whether a check has failed on idx. */
bool tm_index_damaged(const struct tm_index *idx);
/* Check every page and every record now (as loading once did): true when nothing is
 * damaged.  For tests and fuzzers. */
bool tm_index_check_all(const struct tm_index *idx);

/* Inode ino, or NULL when there is none (ino >= ninodes) or it is damaged. */
const struct tm_inode *tm_index_inode(const struct tm_index *idx, uint32_t ino);
/* The NUL-terminated string at offset off of the pool, or NULL when damaged. */
const char *tm_index_string(const struct tm_index *idx, uint32_t off);

/* The child of directory dir called name[0..len), as an inode number and (if dentry is not
 * NULL) its dentry number; TM_NONE when dir is not a directory or has no such child;
 * TM_DAMAGED when what the search read is damaged. */
uint32_t tm_index_lookup(const struct tm_index *idx, uint32_t dir, const char *name, size_t len,
			 uint32_t *dentry);

/* Resolve a path ("a/b/c", leading '/' and './', repeated '/' and '.' segments allowed;
 * symlinks are not followed).  Returns the inode, TM_NONE, or TM_DAMAGED; "" and "/" are
 * the root. */
uint32_t tm_index_resolve(const struct tm_index *idx, const char *path);

/* Children of a directory: count (0 when dir is no directory or is damaged: callers that
 * must tell get the inode first), and the dentry in slot i (0 <= i < count), or NULL when
 * it, its name's place or the inode it names is damaged. */
uint32_t tm_index_child_count(const struct tm_index *idx, uint32_t dir);
const struct tm_dentry *tm_index_child(const struct tm_index *idx, uint32_t dir, uint32_t i);

/* The sparse map of a regular file in *map, NULL when it is not sparse; false when the
 * inode or its map is damaged. */
bool tm_index_sparse_map(const struct tm_index *idx, uint32_t ino,
			 const struct tm_index_sparse **map);

/* Iterate the xattrs of an inode: *cursor starts at 0 (the whole list is checked then).
 * Returns 1 with the next one, 0 when done, -1 when the inode or its list is damaged. */
int tm_index_xattr_next(const struct tm_index *idx, uint32_t ino, uint32_t *cursor,
			const char **name, const void **value, uint32_t *value_len);

/* Normalise an archive path the way GNU tar does on extraction: strip leading '/' and './',
 * collapse '//' and drop '.' segments, drop a trailing '/'.  Writes into out (at least
 * strlen(path)+1 bytes).  Returns false for a path with a '..' segment. */
bool tm_index_normalize(const char *path, char *out);

#endif
