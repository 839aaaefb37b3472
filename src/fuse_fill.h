/* Filling the kernel's page cache ahead of a reader.  When a file of a directory is first
 * read, the directory's small regular files after it (in listing order) are pushed into the
 * kernel's cache with fuse_lowlevel_notify_store by a thread of their own, and so is the rest
 * of that file: a reader that goes on through the directory (tar -c, cp -r, grep -r) then
 * finds them cached and sends no READ for them.  While files are being read (a first read
 * less than FILL_ACTIVE_MS ago), a directory listed to its end is filled from its first file
 * on.  A walk that only lists (find, ls -l) pushes nothing. */
#ifndef TM_FUSE_FILL_H
#define TM_FUSE_FILL_H

#include <stddef.h>
#include <stdint.h>

#include <glib.h>

struct tm_fs;
struct fuse_session;
struct tm_fill;

/* A filler for fs's tree on session se, or NULL when out of memory (then there is none:
 * every call below takes NULL and does nothing).  Nothing is pushed until tm_fill_run runs
 * in a thread of its own. */
struct tm_fill *tm_fill_new(struct tm_fs *fs, struct fuse_session *se);

/* Called by any request thread, lock-free.  listed: the directory dir listed the regular
 * file ino.  read: the kernel asked for ino's bytes [off, off + size). */
void tm_fill_listed(struct tm_fill *f, uint32_t dir, uint32_t ino);
void tm_fill_read(struct tm_fill *f, uint32_t ino, uint64_t off, size_t size);
/* A listing of dir reached its end. */
void tm_fill_listed_all(struct tm_fill *f, uint32_t dir);

/* The thread's body (data: the filler): pushes until tm_fill_stop.  Pushes nothing once the
 * source has changed (tm_block_changed), so that the kernel never caches other bytes than
 * those the index describes. */
gpointer tm_fill_run(gpointer data);
/* Make tm_fill_run return (soon: after the file it is pushing). */
void tm_fill_stop(struct tm_fill *f);
/* After tm_fill_run has returned, or when it never ran. */
void tm_fill_free(struct tm_fill *f);

#endif
