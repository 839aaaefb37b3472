/* Checking a loaded index as it is read (src/index_check.c): private to the index layer
 * (index.c reads through it, index_file.c sets it up).
 *
 * An index file's data area is cut into pages, each with a checksum in a table that the
 * loader checks with the header.  A page is hashed the first time a reader touches it and
 * marked in a bitmap (bits set atomically: two threads checking one page at once both
 * find it good, and nothing else changes); a page that fails marks the index damaged. */
#ifndef TM_INDEX_CHECK_H
#define TM_INDEX_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"

/* The arrays of a loaded index, by where they are in the file. */
enum tm_index_section {
	TM_SEC_INODES, TM_SEC_DENTRIES, TM_SEC_CHILDREN, TM_SEC_STRINGS, TM_SEC_AUX,
	TM_SEC_PARENTS, TM_SEC_SEEK, TM_SEC_SOURCE, TM_SEC_COUNT
};

struct tm_index_parent {
	uint32_t dir, slot;
};

struct tm_index_lazy {
	const uint8_t *file;  /* the mapped file */
	uint64_t file_size;
	uint64_t data_start;  /* where page 0 starts */
	uint64_t npages;
	unsigned shift;       /* log2 of the page size */
	const uint64_t *sums; /* npages checksums (see tm_index_page_sum), checked at load */
	uint64_t *verified;   /* a bit per page: its checksum was found right */
	uint64_t off[TM_SEC_COUNT], len[TM_SEC_COUNT]; /* each section's place in the file */
	/* Of each directory inode, the directory it is a child of and the slot of children[]
	 * that lists it (TM_NONE for the root): a child directory is followed only from that
	 * one slot, which keeps what readers walk a tree (no cycle, no directory under two
	 * names) without a walk at load. */
	const struct tm_index_parent *parents;
	int damaged;          /* atomic; sticky */
	tm_index_damage_fn hook;
	void *hook_ud;
};

/* A fast non-cryptographic checksum (four independent multiply-xor lanes over 64-bit
 * words): it guards against damage, not malice; the bounds checks guard against that. */
uint64_t tm_index_hash(const void *data, size_t len);
/* The checksum of page number page (its bytes, and its place: pages swapped are seen). */
uint64_t tm_index_page_sum(const void *data, size_t len, uint64_t page);

/* Whether bytes [off, off+len) of section sec (len > 0, inside it) are on pages whose
 * checksums are right, hashing those not yet checked.  Always true for a built index.
 * False marks the index damaged. */
bool tm_index_span_ok(const struct tm_index *idx, enum tm_index_section sec, uint64_t off,
		      uint64_t len);
/* Check every page now. */
bool tm_index_pages_ok(const struct tm_index *idx);
/* Mark idx damaged; the first time, tell its hook why (printf-style). */
void tm_index_damage(const struct tm_index *idx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
