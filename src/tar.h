/* The tar format: pure decoders (header blocks, pax records, sparse maps) and a reader that
 * walks an archive on a tm_block, resolving every extension header into whole members.
 *
 * The decoders take bytes and a length, do no I/O and keep no state: they are what the unit
 * tests and the fuzzers drive.  The reader reads headers (and sparse maps stored in the data
 * area), never file data. */
#ifndef TM_TAR_H
#define TM_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "block.h"

#define TM_TAR_BLOCK 512

/* A diagnostic buffer filled by the decoders: one line, no trailing newline. */
#define TM_TAR_ERRLEN 256

enum tm_tar_format {
	TM_TAR_V7,
	TM_TAR_USTAR,   /* "ustar\0" "00" (POSIX; pax archives too) */
	TM_TAR_OLDGNU,  /* "ustar " " \0" (GNU tar's --format=gnu and oldgnu) */
	TM_TAR_STAR,    /* ustar magic with "tar\0" at offset 508: 131-byte prefix */
};

/* ---- numeric fields ---- */

/* Decode a numeric header field: octal (leading spaces and NULs allowed, ended by space or
 * NUL) or GNU base-256 (first byte 0x80 positive, 0xff negative).  Returns false for a field
 * that is neither, or that overflows int64_t. An all-blank field decodes as 0. */
bool tm_tar_number(const uint8_t *field, size_t len, int64_t *out);

/* ---- header blocks ---- */

enum tm_tar_hdr_status {
	TM_TAR_HDR_OK,
	TM_TAR_HDR_ZERO,         /* an all-zero block: end-of-archive marker */
	TM_TAR_HDR_BAD_CHECKSUM, /* neither the unsigned nor the signed sum matches */
	TM_TAR_HDR_BAD_FIELD,    /* a numeric field that does not decode */
};

struct tm_tar_sparse_chunk {
	uint64_t offset; /* logical offset in the file */
	uint64_t length; /* bytes of data stored for it; chunks are stored back to back */
};

/* A header block decoded field by field.  Strings are NUL-terminated copies. */
struct tm_tar_header {
	enum tm_tar_format format;
	char typeflag;
	char name[100 + 1 + 155 + 1]; /* prefix "/" name, for ustar; name alone otherwise */
	char linkname[101];
	char uname[33];
	char gname[33];
	int64_t mode, uid, gid, size, mtime;
	int64_t devmajor, devminor;
	/* old GNU only */
	int64_t atime, ctime;
	int64_t realsize;                          /* 'S': the logical size */
	struct tm_tar_sparse_chunk sparse[4];      /* 'S': up to 4 in the header */
	int nsparse;
	bool isextended;                           /* 'S': extension blocks follow */
};

/* Decode one 512-byte block.  err gets a description for BAD_* results. */
enum tm_tar_hdr_status tm_tar_header_decode(const uint8_t blk[TM_TAR_BLOCK],
					    struct tm_tar_header *h, char err[TM_TAR_ERRLEN]);

/* Decode an old GNU sparse extension block: appends its chunks (up to 21) to map and sets
 * *more when another extension block follows.  Returns false with err on a bad field. */
bool tm_tar_sparse_ext_decode(const uint8_t blk[TM_TAR_BLOCK], GArray *map, bool *more,
			      char err[TM_TAR_ERRLEN]);

/* ---- pax extended headers ---- */

/* One attribute's state in a pax header set: absent (inherit), set, or deleted (an empty
 * value, which cancels a global value for this member). */
enum tm_pax_state { TM_PAX_ABSENT = 0, TM_PAX_SET, TM_PAX_DELETED };

struct tm_pax_time {
	int64_t sec;
	uint32_t nsec;
};

struct tm_pax_xattr {
	char *name;
	GBytes *value;
};

/* The attributes that a pax 'x' header carries, or that the 'g' headers read so far carry
 * (the reader drops path, linkpath and size from those). */
struct tm_pax {
	enum tm_pax_state path_s, linkpath_s, size_s, uid_s, gid_s, uname_s, gname_s, mtime_s;
	char *path, *linkpath, *uname, *gname;
	int64_t size, uid, gid;
	struct tm_pax_time mtime, atime, ctime;
	bool has_atime, has_ctime;
	enum tm_pax_state devmajor_s, devminor_s;
	int64_t devmajor, devminor;
	GPtrArray *xattrs; /* of struct tm_pax_xattr*, later names replace earlier ones */
	GHashTable *xattr_names; /* name -> position in xattrs + 1, for the replacing */
	/* GNU sparse extensions */
	bool sparse;                 /* any GNU.sparse.* key seen */
	int sparse_major, sparse_minor;
	char *sparse_name;
	int64_t sparse_size;         /* GNU.sparse.size or .realsize; -1 if not given */
	GArray *sparse_map;          /* 0.0 (offset/numbytes pairs) or 0.1 (map) */
	bool sparse_pending_offset;  /* 0.0: an offset waits for its numbytes */
	uint64_t sparse_offset;
};

void tm_pax_init(struct tm_pax *p);
void tm_pax_clear(struct tm_pax *p);

/* Parse the records in data[0..len) ("LEN KEY=VALUE\n" each) into p, on top of what p holds.
 * Returns false with err naming the record's byte offset for a malformed record (bad length,
 * missing '=' or newline, a length past the end, a bad number); records before the bad one
 * are applied. */
bool tm_pax_parse(const uint8_t *data, size_t len, struct tm_pax *p, char err[TM_TAR_ERRLEN]);

/* Parse a pax time value ("[-]SECONDS[.FRACTION]"), truncating to nanoseconds. */
bool tm_pax_parse_time(const char *s, size_t len, struct tm_pax_time *t);

/* ---- sparse maps ---- */

/* Parse GNU.sparse.map ("off,len,off,len,...") and append to map. */
bool tm_sparse_parse_list(const char *s, GArray *map, char err[TM_TAR_ERRLEN]);

/* Parse a sparse 1.0 map from the start of the member's data: decimal numbers each ended by
 * '\n' (count, then offset/length pairs), padded to a 512-byte boundary.  Returns 1 and sets
 * *consumed (a multiple of 512) when complete, 0 when data[0..len) is a proper prefix (read
 * more), -1 with err when malformed. */
int tm_sparse_parse_v1(const uint8_t *data, size_t len, GArray *map, size_t *consumed,
		       char err[TM_TAR_ERRLEN]);

/* Check a map against the file's logical size and the bytes stored for it: chunks in
 * increasing order, not overlapping, inside the logical size, lengths adding up to
 * stored.  A trailing zero-length chunk at the logical end (GNU tar writes one) is fine. */
bool tm_sparse_validate(const GArray *map, uint64_t logical_size, uint64_t stored,
			char err[TM_TAR_ERRLEN]);

/* ---- the archive reader ---- */

enum tm_tar_type {
	TM_TAR_REG,
	TM_TAR_HARDLINK,
	TM_TAR_SYMLINK,
	TM_TAR_CHR,
	TM_TAR_BLK,
	TM_TAR_DIR,
	TM_TAR_FIFO,
};

/* One archive member with every extension applied.  Owned by the reader, valid until the
 * next call to tm_tar_reader_next. */
struct tm_tar_member {
	enum tm_tar_type type;
	char typeflag;           /* as stored, for messages */
	const char *path;        /* as stored (not normalised) */
	const char *linkpath;    /* hard and symbolic links */
	uint32_t mode;           /* permission bits (07777) */
	int64_t uid, gid;
	const char *uname, *gname;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t size;           /* logical size */
	uint64_t header_offset;  /* byte offset of the first header block of the member */
	uint64_t data_offset;    /* byte offset of the stored data */
	uint64_t stored_size;    /* bytes stored at data_offset (differs from size when sparse) */
	uint32_t devmajor, devminor;
	GPtrArray *xattrs;       /* of struct tm_pax_xattr*, or NULL */
	GArray *sparse;          /* of struct tm_tar_sparse_chunk, or NULL when not sparse */
};

enum tm_tar_diag_level { TM_TAR_WARNING, TM_TAR_ERROR };

/* Called for every problem the reader finds; offset is the byte offset of the header
 * concerned. The message names the problem, not the archive (the caller adds that). */
typedef void (*tm_tar_diag_fn)(void *ud, enum tm_tar_diag_level level, uint64_t offset,
			       const char *msg);

struct tm_tar_reader;

struct tm_tar_reader *tm_tar_reader_new(struct tm_block *b, tm_tar_diag_fn diag, void *ud);
void tm_tar_reader_free(struct tm_tar_reader *r);

enum tm_tar_next {
	TM_TAR_MEMBER = 1, /* *m holds the next member */
	TM_TAR_END = 0,    /* no more members (end marker, end of device, or a damaged tail
			      already reported through diag) */
	TM_TAR_FAIL = -1,  /* not a tar archive, or the device failed: *err or diag says */
};

enum tm_tar_next tm_tar_reader_next(struct tm_tar_reader *r, struct tm_tar_member **m,
				    struct tm_block_error *err);

/* Bytes of the device the reader has consumed so far (for progress reports). */
uint64_t tm_tar_reader_position(const struct tm_tar_reader *r);
/* Start at byte pos (a multiple of 512, where a header is) instead of 0: before the first
 * tm_tar_reader_next only. */
void tm_tar_reader_start_at(struct tm_tar_reader *r, uint64_t pos);
/* After TM_TAR_END: whether the archive ended without an end-of-archive marker. */
bool tm_tar_reader_truncated(const struct tm_tar_reader *r);

/* ---- writing ----
 *
 * The encoding half of appending a member: its header blocks (a pax 'x' header and its
 * records when some field does not fit ustar, then the ustar header), the padding after its
 * data, and the end-of-archive marker.  Pure functions: bytes out of a description, no I/O,
 * no clock, no global state; the same description always gives the same bytes.  The format
 * policy is described at the top of tar_writer.c. */

/* An extended attribute to store (as a pax SCHILY.xattr.NAME record).  name: NUL-terminated,
 * non-empty, valid UTF-8, without '='; value: len bytes of anything (NULL when len is 0). */
struct tm_tar_wxattr {
	const char *name;
	const void *value;
	size_t len;
};

/* A member to write.  Zero-initialise it and fill what applies; every pointer is borrowed
 * for the duration of a call.
 *   path      relative, '/'-separated; no NUL, no empty, "." or ".." segment (one leading
 *             "./" is allowed, as `tar -C DIR .` writes); a directory's trailing '/' is
 *             optional (it is always stored with one).  path_len 0: strlen(path).
 *   linkpath  TM_TAR_HARDLINK: the archive path of the member linked to (same rules as
 *             path); TM_TAR_SYMLINK: any non-empty bytes without NUL.  Other types: NULL.
 *             linkpath_len 0: strlen(linkpath).
 *   mode      permission bits only (at most 07777); the type comes from type.
 *   uid, gid  0 ... 4294967294 (what a uid_t holds and our reader takes).
 *   uname, gname  NULL or "": none.
 *   mtime     nsec < 1000000000; -10^18 < sec < 10^18.  atime and ctime (the same ranges)
 *             are stored only when has_atime / has_ctime (always in pax records).
 *   size      bytes of data, below 10^18: regular files only, 0 for every other type.
 *   devmajor, devminor  TM_TAR_CHR and TM_TAR_BLK only, 0 for every other type.
 *   xattrs    nxattrs of them, names distinct; stored in this order. */
struct tm_tar_desc {
	enum tm_tar_type type;
	const char *path;
	size_t path_len;
	const char *linkpath;
	size_t linkpath_len;
	uint32_t mode;
	int64_t uid, gid;
	const char *uname, *gname;
	struct tm_pax_time mtime, atime, ctime;
	bool has_atime, has_ctime;
	int64_t size;
	uint32_t devmajor, devminor;
	const struct tm_tar_wxattr *xattrs;
	size_t nxattrs;
};

/* Bytes of the end-of-archive marker: two zero blocks. */
#define TM_TAR_END_SIZE (2 * TM_TAR_BLOCK)

/* The exact bytes of header blocks d needs: 512 for a plain ustar header, plus 512 and the
 * pax records rounded up to 512 when some field needs them.  Returns 0 with err (one line,
 * may be NULL) when d is not a valid description: the same test tm_tar_encode_header does,
 * so a caller can check space and validity before writing a byte. */
size_t tm_tar_member_header_size(const struct tm_tar_desc *d, char err[TM_TAR_ERRLEN]);

/* Header blocks + d->size bytes of data + padding to a 512-byte boundary; 0 with err like
 * tm_tar_member_header_size. */
uint64_t tm_tar_member_total(const struct tm_tar_desc *d, char err[TM_TAR_ERRLEN]);

/* Zero bytes that follow size bytes of data to end them on a block boundary (0 ... 511). */
uint64_t tm_tar_padding(uint64_t size);

/* Write d's header blocks into buf[0 .. tm_tar_member_header_size(d)) and return that size.
 * Returns 0 with err, buf untouched, when d is not valid or len is smaller than the size.
 * Nothing past the size is written. */
size_t tm_tar_encode_header(const struct tm_tar_desc *d, uint8_t *buf, size_t len,
			    char err[TM_TAR_ERRLEN]);

/* Write the end-of-archive marker (two zero blocks; no padding to a 10240-byte record, which
 * no reader needs).  For appending: GNU tar stops at the first zero block where a header is
 * due (1.34 lists every member before it, notes "A lone zero block" when the second is
 * missing or not zero, and exits 0); bsdtar, Python's tarfile and our reader stop there too.
 * So one zero block alone keeps the old members readable while the blocks after it are being
 * written: see "Appending" at the top of tar_writer.c. */
void tm_tar_encode_end(uint8_t out[TM_TAR_END_SIZE]);

#endif
