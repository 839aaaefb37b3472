/* KV_RW: changing an indexed archive, after MirageOS Mirage_kv.RW.  A tar archive is
 * append-only: a change appends members where its end-of-archive marker is, with a new
 * marker after them; only the last member can be removed, and a member renamed, in place.
 *
 * Crash safety: an append writes everything but its first block past the old end while the
 * old end marker still stands (readers, GNU tar too, stop at its first zero block), flushes,
 * then writes that first block over the marker's first block, and flushes again.  Until
 * that one-block write lands the archive is what it was; after it, it holds the whole
 * change.  The room a change needs is checked (a file: reserved with fallocate) before any
 * byte is written.
 *
 * The index follows every change at once (tm_kv_rw_index): appended members are read back
 * and added with tm_index_build_resume; a change in place gets the index of the changed
 * archive.  Indexes given out before a change stay valid until tm_kv_rw_close.
 *
 * One writer at a time: the functions lock a mutex, and the source's writer lock
 * (tm_block_lock_writer) is held from open to close, so that two processes cannot
 * interleave appends. */
#ifndef TM_KV_RW_H
#define TM_KV_RW_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "block.h"
#include "index.h"
#include "kv.h"
#include "tar.h"

struct tm_kv_rw;

struct tm_kv_rw_options {
	bool wait;                       /* for another writer's lock (else TM_BLOCK_LOCKED) */
	/* The caller holds the writer lock already, and keeps it past the close (to save the
	 * index before another writer changes the archive again); the index must have been
	 * made under it. */
	bool caller_locked;
	/* Do not flush: the order of writes still holds for readers and for a writer that is
	 * killed (the kernel keeps what was written), not across a power loss, as with tar -r.
	 * For bulk jobs that make an archive they can make again. */
	bool no_flush;
	struct tm_index_options index;   /* for reading back what is appended */
};

/* Open b (opened read_write, borrowed) whose index is idx (taken over, also on failure)
 * for changes.  Refused: a source that cannot be written (Read_only, saying why), an
 * archive whose index found it truncated or damaged (Append_only: appending after damage
 * would hide what follows it), another writer's lock (the backend's error). */
struct tm_kv_rw *tm_kv_rw_open(struct tm_block *b, struct tm_index *idx,
			       const struct tm_kv_rw_options *o, struct tm_kv_error *err);
/* The index as it is now; valid until tm_kv_rw_close. */
const struct tm_index *tm_kv_rw_index(struct tm_kv_rw *rw);
/* Whether a change was made since the open. */
bool tm_kv_rw_changed(struct tm_kv_rw *rw);
/* Let go of the lock; the index and every earlier one are freed. */
void tm_kv_rw_close(struct tm_kv_rw *rw);
/* As tm_kv_rw_close, but give the current index to the caller. */
struct tm_index *tm_kv_rw_close_keep(struct tm_kv_rw *rw);

/* What a new member gets.  Zero fields: mode 0644 (files), 0755 (directories), 0777
 * (symlinks); uid and gid 0 with no names; mtime 0. */
struct tm_kv_rw_attr {
	uint32_t mode;       /* permission bits; 0: the default above */
	int64_t uid, gid;
	const char *uname, *gname;
	struct tm_pax_time mtime;
	const struct tm_tar_wxattr *xattrs;
	size_t nxattrs;
};

/* Where a value's bytes come from: up to len bytes into buf, the count (0 only at the end),
 * or -1 with errno set. */
typedef ssize_t (*tm_kv_rw_source)(void *ud, void *buf, size_t len);

/* set: key becomes a regular file of size bytes read from src (NULL: zeros).  An existing
 * value of that name is replaced (a new member; the last member wins, as on extraction);
 * missing parent directories are appended as directory members first (0755, with a's
 * owner and time).  Dictionary_expected when a parent is a value, Value_expected when key
 * is a directory, Invalid for a key the archive cannot hold; src failing or ending early is
 * a TM_KV_BLOCK error, and nothing is appended. */
int tm_kv_rw_set(struct tm_kv_rw *rw, const char *key, uint64_t size, tm_kv_rw_source src,
		 void *ud, const struct tm_kv_rw_attr *a, struct tm_kv_error *err);
/* allocate: a zero-filled regular file of size bytes; Already_present when key exists. */
int tm_kv_rw_allocate(struct tm_kv_rw *rw, const char *key, uint64_t size,
		      const struct tm_kv_rw_attr *a, struct tm_kv_error *err);
/* mkdir: a directory member; Already_present when key exists. */
int tm_kv_rw_mkdir(struct tm_kv_rw *rw, const char *key, const struct tm_kv_rw_attr *a,
		   struct tm_kv_error *err);
/* symlink: key -> target (any bytes but NUL); Already_present when key exists. */
int tm_kv_rw_symlink(struct tm_kv_rw *rw, const char *target, const char *key,
		     const struct tm_kv_rw_attr *a, struct tm_kv_error *err);
/* link: a hard link key to the value existing (a file, symlink, device or fifo: not a
 * directory, Value_expected); Already_present when key exists. */
int tm_kv_rw_link(struct tm_kv_rw *rw, const char *existing, const char *key,
		  struct tm_kv_error *err);
/* set_partial: overwrite len bytes of the regular file key from offset off, in place;
 * off + len must be within its size (else Invalid; sparse files: Append_only).  Every hard
 * link to it sees the new bytes.  Durable on return. */
int tm_kv_rw_set_partial(struct tm_kv_rw *rw, const char *key, uint64_t off, const void *data,
			 size_t len, struct tm_kv_error *err);
/* remove: when key's member is the archive's last one (a directory: with nothing under it),
 * its first header block becomes the end marker.  Otherwise, or when an earlier member of
 * the same name would come back, Append_only. */
int tm_kv_rw_remove(struct tm_kv_rw *rw, const char *key, struct tm_kv_error *err);
/* rename: src's member (not a directory, not sparse, one header block) rewritten in place
 * under the name dst when dst fits one ustar header block and nothing else in the archive
 * names src (an earlier member that would come back, a hard link to it): else Append_only.
 * dst must not exist (Already_present) and its parent must be a directory. */
int tm_kv_rw_rename(struct tm_kv_rw *rw, const char *src, const char *dst,
		    struct tm_kv_error *err);

/* ---- for a writer that keeps its own view of the tree (tarmount -o readwrite) ----
 * These skip the checks of the operations above (the caller made them on its view) and do
 * not read what they write back into the index: tm_kv_rw_index stays as it was until
 * tm_kv_rw_reindex (the operations above call it first themselves). */

/* A member described in full; header_offset is set by a successful append. */
struct tm_kv_rw_member {
	struct tm_tar_desc d;    /* d.path normalised; d.size bytes from src (NULL: zeros) */
	tm_kv_rw_source src;
	void *ud;
	uint64_t header_offset;
};
/* Append ms[0..n) as one change, crash-safely (above): all or none of them. */
int tm_kv_rw_append(struct tm_kv_rw *rw, struct tm_kv_rw_member *ms, size_t n,
		    struct tm_kv_error *err);
/* Where the archive ends now (its end marker). */
uint64_t tm_kv_rw_end(struct tm_kv_rw *rw);
/* The member at header_offset, appended since the open and the last one: its first
 * header block becomes the end marker.  Durable on return. */
int tm_kv_rw_cut(struct tm_kv_rw *rw, uint64_t header_offset, struct tm_kv_error *err);
/* Rename the member at header_offset, appended since the open and described by d, to
 * new_path in place: one block written (its ustar block; a pax header before it must not
 * name it, else Append_only), after checking that what is there is d's header.  Durable
 * on return. */
int tm_kv_rw_rename_header(struct tm_kv_rw *rw, uint64_t header_offset,
			   const struct tm_tar_desc *d, const char *new_path,
			   struct tm_kv_error *err);
/* Read what was appended since the index was made into it (one scan of the new members). */
int tm_kv_rw_reindex(struct tm_kv_rw *rw, struct tm_kv_error *err);
/* Make every write so far durable (tm_block_flush). */
int tm_kv_rw_flush(struct tm_kv_rw *rw, struct tm_kv_error *err);

#endif
