/* KV_RO: keyed, read-only access to an indexed archive, after MirageOS Mirage_kv.RO.
 *
 * Keys are archive paths ("dir/file"; a leading '/' is allowed, "" and "/" are the root).
 * Values are regular files and symlinks (a symlink's value is its target); directories are
 * dictionaries.  Symlinks are never followed.  All functions are thread-safe: the index is
 * immutable and the block backend takes concurrent reads. */
#ifndef TM_KV_H
#define TM_KV_H

#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

#include "block.h"
#include "index.h"

enum tm_kv_code {
	TM_KV_OK = 0,
	TM_KV_NOT_FOUND,
	TM_KV_DICTIONARY_EXPECTED, /* list on a value */
	TM_KV_VALUE_EXPECTED,      /* get/size/digest on a dictionary */
	TM_KV_BLOCK,               /* the backend failed: see block */
	TM_KV_DAMAGED,             /* the (loaded) index is damaged where it was read */
	/* KV_RW's (kv_rw.h): */
	TM_KV_ALREADY_PRESENT,     /* the operation does not replace what is there */
	TM_KV_APPEND_ONLY,         /* only appending, or changing the last member, can do it */
	TM_KV_NO_SPACE,            /* the source has no room for it (checked before writing) */
	TM_KV_READ_ONLY,           /* the source cannot be written: detail says why */
	TM_KV_INVALID,             /* a key or value the archive cannot hold: detail says why */
};

struct tm_kv_error {
	enum tm_kv_code code;
	struct tm_block_error block; /* for TM_KV_BLOCK */
	char detail[300];            /* empty, or what a refusal adds (KV_RW) */
};

/* Print the error as a user reads it: "not found" (Not_found), "not a directory"
 * (Dictionary_expected), "is a directory" (Value_expected), "index damaged", "already
 * present", "append-only archive", "no space left", "read-only", "invalid", or the
 * backend's error; then ": detail" when there is one. */
const char *tm_kv_strerror(const struct tm_kv_error *err, char *buf, size_t size);

enum tm_kv_kind { TM_KV_NONE = 0, TM_KV_VALUE, TM_KV_DICTIONARY };

struct tm_kv {
	const struct tm_index *index; /* borrowed */
	struct tm_block *block;       /* borrowed */
};

/* Both are borrowed: the caller keeps them alive and frees them. */
void tm_kv_init(struct tm_kv *kv, const struct tm_index *idx, struct tm_block *b);

/* Inode of key, or TM_NONE with err = Not_found. */
uint32_t tm_kv_find(const struct tm_kv *kv, const char *key, struct tm_kv_error *err);

/* TM_KV_NONE also when what had to be read is damaged (tm_index_damaged says so). */
enum tm_kv_kind tm_kv_exists(const struct tm_kv *kv, const char *key);
enum tm_kv_kind tm_kv_kind_of(const struct tm_kv *kv, uint32_t ino);

/* Bytes of the value (file content or symlink target), from offset for up to len bytes,
 * into buf.  Returns the count (short at the end, 0 past it) or -1 with err.  Holes of
 * sparse files read as zeros.  Works by inode so that the FUSE frontend shares it. */
ssize_t tm_kv_read(const struct tm_kv *kv, uint32_t ino, void *buf, size_t len, uint64_t off,
		   struct tm_kv_error *err);

/* The whole value; NULL with err. */
GBytes *tm_kv_get(const struct tm_kv *kv, const char *key, struct tm_kv_error *err);
/* Part of a value: up to len bytes from off (short at the end, empty past it). */
GBytes *tm_kv_get_partial(const struct tm_kv *kv, const char *key, uint64_t off, size_t len,
			  struct tm_kv_error *err);

/* Children of a dictionary, in byte order: calls fn for each until it returns non-zero.
 * Returns 0, fn's non-zero value, or -1 with err. */
typedef int (*tm_kv_list_fn)(void *ud, const char *name, uint32_t ino, enum tm_kv_kind kind);
int tm_kv_list(const struct tm_kv *kv, const char *key, tm_kv_list_fn fn, void *ud,
	       struct tm_kv_error *err);

/* Logical size of a value; -1 with err. */
int64_t tm_kv_size(const struct tm_kv *kv, const char *key, struct tm_kv_error *err);
/* Modification time of any key (dictionaries too). */
int tm_kv_last_modified(const struct tm_kv *kv, const char *key, int64_t *sec, uint32_t *nsec,
			struct tm_kv_error *err);
/* SHA-256 of a value, as 64 lowercase hex digits in out[65]. */
int tm_kv_digest(const struct tm_kv *kv, const char *key, char out[65], struct tm_kv_error *err);
int tm_kv_digest_ino(const struct tm_kv *kv, uint32_t ino, char out[65], struct tm_kv_error *err);

#endif
