/* tarkv: KV_RO operations on a tar archive from the command line. */
#ifndef TARKV_H
#define TARKV_H

#include <stdbool.h>

#include <glib.h>

#include "archive.h"
#include "block.h"
#include "index.h"
#include "kv.h"

/* Exit statuses, as documented in tarkv(1). */
enum { TARKV_OK = 0, TARKV_FALSE = 1, TARKV_USAGE = 2, TARKV_REFUSED = 3 };
/* A command's answer to arguments it cannot take: main prints its usage. */
#define TARKV_BADARGS (-1)

struct tarkv {
	const char *source;
	struct tm_archive *archive;
	struct tm_block *block;   /* the archive's data (decompressed when compressed) */
	struct tm_index *index;
	struct tm_kv kv;
	gboolean json, long_format, recursive, quiet; /* GOption writes gboolean */
	struct tm_block_options source_opts;
	enum tm_decomp_format compression; /* --compression (TM_DECOMP_AUTO by default) */
	char *index_path;   /* --index, or NULL for the default place */
	gboolean no_index;  /* --no-index: neither read nor write an index file */
	uint64_t index_cache_max; /* --index-cache-max or its default (tm_index_cache_max) */
	bool index_loaded;  /* the index came from its file */
	/* What a member written gets instead of what it would get (tarkv_write.c). */
	char *opt_mode, *opt_mtime;
	gint64 opt_owner, opt_group; /* -1: not given */
	gboolean no_sync;            /* --no-sync: writes not flushed (kv_rw.h, no_flush) */
	gint lock_wait;              /* --wait: seconds to wait for another writer's lock */
};

/* Print "tarkv: SOURCE: KEY: MESSAGE" (KEY may be NULL) on stderr. */
void tarkv_error(const struct tarkv *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void tarkv_warning(const struct tarkv *t, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Report a KV error for key and return the exit status it maps to. */
int tarkv_kv_failed(const struct tarkv *t, const char *key, const struct tm_kv_error *err);

/* Visit dir's subtree depth-first, each directory before its contents, children in byte
 * order.  path holds dir's path on entry (and on return); fn gets each entry's path and the
 * part of it after rel_from. */
typedef void (*tarkv_walk_fn)(struct tarkv *t, uint32_t ino, const char *path, const char *rel,
			      void *ud);
void tarkv_walk(struct tarkv *t, uint32_t dir, GString *path, size_t rel_from, tarkv_walk_fn fn,
		void *ud);

/* The commands that change the archive (tarkv_write.c), run with the source opened for
 * writing: put KEY [FILE|-], put-partial KEY OFFSET [FILE|-], allocate KEY SIZE, mkdir KEY,
 * symlink TARGET KEY, link EXISTING KEY, rm KEY, mv SRC DST. */
int tarkv_put(struct tarkv *t, int argc, char **argv);
int tarkv_put_partial(struct tarkv *t, int argc, char **argv);
int tarkv_allocate(struct tarkv *t, int argc, char **argv);
int tarkv_mkdir(struct tarkv *t, int argc, char **argv);
int tarkv_symlink(struct tarkv *t, int argc, char **argv);
int tarkv_link(struct tarkv *t, int argc, char **argv);
int tarkv_rm(struct tarkv *t, int argc, char **argv);
int tarkv_mv(struct tarkv *t, int argc, char **argv);

/* extract PATH DEST: recreate PATH's subtree under the existing directory DEST as
 * `tar -xf ARCHIVE -C DEST PATH` would. */
int tarkv_extract(struct tarkv *t, const char *path, const char *dest);

#endif
