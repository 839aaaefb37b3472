/* A read-write mount (tarmount -o readwrite): the VFS's changes over an archive that can
 * only grow.
 *
 * The tree served is the index's (immutable, as on a read-only mount) with an overlay of
 * what changed since the mount: new entries, and entries of the index whose bytes or
 * attributes changed.  A changed file's bytes wait in a spool (memory, then a temporary file)
 * until they are appended.  Appends are made in batches (one crash-safe change, kv_rw.h):
 * every `commit` seconds after a change, on fsync of any file or directory (durable when it
 * returns), when the spools grow past a bound, and at unmount.  Until then the mount shows
 * every change at once.
 *
 * What an append cannot express answers EPERM with one log line: removing or renaming an
 * entry that has a member in the archive, unless it is the last member, appended by this
 * mount (then it is cut off or renamed in place).  Entries created since the last batch are
 * removed and renamed freely: nothing of them is in the archive yet.
 *
 * One lock serialises the overlay and the appends; reads of entries the mount did not change
 * take it only to find that out. */
#ifndef TM_FUSE_RW_H
#define TM_FUSE_RW_H

#include "fuse_ops.h"
#include "kv_rw.h"

struct tm_rw_options {
	double commit;          /* seconds between a change and its batch; > 0 */
	const char *spool_dir;  /* for spools past spool_mem (NULL: $TMPDIR or /tmp) */
	uint64_t spool_mem;     /* bytes of spools kept in memory, all files together */
	uint64_t spool_max;     /* bytes of spools waiting before a batch is made at once */
};

struct tm_rw;

/* The overlay over fs (its index and block, which must stay valid) appending through kv
 * (borrowed; its index is fs->index).  fs->rw is set. */
struct tm_rw *tm_rw_new(struct tm_fs *fs, struct tm_kv_rw *kv, const struct tm_rw_options *o);
/* Start making batches on a timer (a thread of the caller's making: run tm_rw_run). */
gpointer tm_rw_run(gpointer rw);
/* Stop the timer, and append everything still waiting: 0, or -1 with err (what could not
 * be appended is lost; the archive holds every earlier batch). */
int tm_rw_finish(struct tm_rw *rw, struct tm_kv_error *err);
void tm_rw_free(struct tm_rw *rw);

extern const struct fuse_lowlevel_ops tm_fuse_rw_ops;

#endif
