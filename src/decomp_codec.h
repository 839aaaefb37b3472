/* What the format-specific decoders (decomp_gzip.c, decomp_zstd.c, ...) share with the
 * generic decompressing layer (decomp.c).  Private to the layer. */
#ifndef TM_DECOMP_CODEC_H
#define TM_DECOMP_CODEC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <glib.h>

#include "decomp.h"

/* A place where decoding can start.  32 bytes, as stored in the seek table. */
struct tm_point {
	uint64_t uoff;     /* decompressed offset of the first byte decoding here produces */
	uint64_t coff;     /* compressed byte offset where the decoder starts reading */
	uint32_t aux_off;  /* the point's state in the table's aux bytes (a window...) */
	uint32_t aux_len;
	uint8_t bits;      /* gzip: bits of the byte before coff that belong to this point */
	uint8_t kind;      /* codec-defined: what starts here (a member, a block, ...) */
	uint16_t flags;    /* codec-defined */
	uint32_t extra;    /* codec-defined */
};

struct tm_decomp;
struct tm_dec; /* a codec's decoder */
struct tm_cin;

/* A piece of the stream that decodes on its own (a zstd frame, an xz block), so that the
 * scan can decode several at once. */
struct tm_unit {
	struct tm_point at; /* where it starts; at.uoff is set by the scan */
	uint64_t seq;       /* 0 for the first unit, then 1, 2, ... */
	uint64_t clen;      /* compressed bytes (at most; the decoder stops at its end) */
	uint64_t ulen;      /* decompressed bytes: exact when exact, else an upper bound */
	bool exact;
};

/* Largest unit decoded whole in memory; larger ones are decoded in order, streaming. */
#define TM_UNIT_MAX (64u << 20)

struct tm_codec {
	enum tm_decomp_format format;
	const char *name;
	/* Roughly how fast one core decodes it, in decompressed MiB/s (measured here on the
	 * Linux tarball): what a restart far from a point costs, for tm_decomp_copy_wanted. */
	unsigned mib_per_s;
	/* Optional: before the scan, read what the stream says of itself (xz's index) and add
	 * points.  A failure is not fatal: the scan finds what is wrong. */
	void (*prepare)(struct tm_decomp *d);
	/* A decoder at p; scan: at the stream's start, checking every checksum, reporting
	 * through tm_decomp_diag and adding points with tm_decomp_add_point. */
	struct tm_dec *(*open)(struct tm_decomp *d, const struct tm_point *p, bool scan,
			       struct tm_block_error *err);
	/* Up to len decoded bytes into buf: the count (> 0), 0 at the end of the stream, or -1
	 * with err.  A scan decoder that meets a truncated stream reports it and returns 0. */
	ssize_t (*read)(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err);
	void (*close)(struct tm_dec *x);
	/* Optional, for a scan on several threads.  next_unit, called in order from the scan
	 * thread with in reading the source (at 0 at first) and *u the previous unit (seq 0:
	 * none yet): the next unit (1), or 0 when what remains must be decoded in order
	 * (a unit over TM_UNIT_MAX, trailing bytes, the end), with u->at where that starts
	 * (at.coff = the compressed size: nothing), -1 with err.  decode_unit, from any thread: u decoded whole into out[0..u->ulen),
	 * returning the count, or -1 with err. */
	int (*next_unit)(struct tm_decomp *d, struct tm_cin *in, struct tm_unit *u,
			 struct tm_block_error *err);
	ssize_t (*decode_unit)(struct tm_decomp *d, const struct tm_unit *u, uint8_t *out,
			       struct tm_block_error *err);
};

extern const struct tm_codec tm_codec_gzip, tm_codec_zstd, tm_codec_xz, tm_codec_bzip2,
	tm_codec_lz4;

/* Buffered sequential reading of the compressed source. */
struct tm_cin {
	struct tm_block *b;
	uint64_t end;      /* compressed size */
	uint64_t base;     /* source offset of buf[0] */
	uint8_t *buf;
	size_t len, at;    /* valid bytes, next unread */
	size_t cap;
	struct tm_decomp *scan; /* the scan's input: its position is the scan's progress */
	void *priv;             /* a codec's splitter state (next_unit); g_free'd with it */
};
/* Start reading the source at byte at; scan: this is the scan's decoder. */
void tm_cin_init(struct tm_cin *in, struct tm_decomp *d, uint64_t at, bool scan);
void tm_cin_free(struct tm_cin *in);
/* Refill when everything buffered was used: -1 with err on a read error, 0 at the end of
 * the source, else the bytes now available. */
ssize_t tm_cin_fill(struct tm_cin *in, struct tm_block_error *err);
/* Source offset of the next unread byte. */
static inline uint64_t tm_cin_pos(const struct tm_cin *in)
{
	return in->base + in->at;
}
/* Make at least n bytes (or what is left of the source) available without consuming
 * them: returns the count available (< n only at the end), -1 with err. */
ssize_t tm_cin_peek(struct tm_cin *in, size_t n, struct tm_block_error *err);

/* Skip n bytes of input (reading through them); -1 with err, 0 when the source ended
 * first, 1 done. */
int tm_cin_skip(struct tm_cin *in, uint64_t n, struct tm_block_error *err);

/* The decompressed size the stream says it has (xz's index), for the last unit. */
void tm_decomp_set_size_hint(struct tm_decomp *d, uint64_t size);
uint64_t tm_decomp_size_hint(struct tm_decomp *d);
/* The table's point number i into *p; false past the end. */
bool tm_decomp_point(struct tm_decomp *d, uint64_t i, struct tm_point *p);

/* For codecs: the source, the compressed size, and the options. */
struct tm_block *tm_decomp_inner(struct tm_decomp *d);
uint64_t tm_decomp_csize(struct tm_decomp *d);
uint64_t tm_decomp_spacing(struct tm_decomp *d);
/* Whether the scan, now at decompressed offset uoff, should make a point where a point
 * costs state (spacing since the last one); free points (frame starts) ask with free. */
bool tm_decomp_want_point(struct tm_decomp *d, uint64_t uoff, bool free_point);
/* Add a point (aux copied into the table).  Points must come in increasing uoff. */
void tm_decomp_add_point(struct tm_decomp *d, const struct tm_point *p, const void *aux,
			 size_t aux_len);
/* A copy of the point's aux bytes (the table grows during the scan): g_free it. */
uint8_t *tm_decomp_aux_dup(struct tm_decomp *d, const struct tm_point *p);
/* The point after p in the table into *next; false when p is the last. */
bool tm_decomp_next_point(struct tm_decomp *d, const struct tm_point *p, struct tm_point *next);
/* The scan's decoder starts a piece that one checksum covers whole (a gzip member, a zstd
 * or lz4 frame, an xz or bzip2 stream), at decompressed offset uoff: damage found at its
 * end discards what the piece gave, so that no reader gets bytes a checksum refused. */
void tm_decomp_unit_start(struct tm_decomp *d, uint64_t uoff);
/* The source ended inside the stream, at compressed byte at: the scan warns that what
 * precedes is used; any other decoder just ends there too (the scan said so). */
void tm_decomp_truncated(struct tm_decomp *d, bool scan, uint64_t at);
void tm_decomp_diag(struct tm_decomp *d, bool error, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A corrupt-data error for a decoder, naming format and compressed offset. */
int tm_decomp_corrupt(struct tm_decomp *d, struct tm_block_error *err, uint64_t offset,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- the seekable copy (decomp_copy.c) ----
 * A file of zstd frames of TM_COPY_FRAME bytes of the stream each, with zstd's seekable
 * format's seek table: see decomp_copy.c for the layout. */
#define TM_COPY_FRAME (1u << 20)
struct tm_copy;
/* The copy on file (taken over, also on failure), checked against the stream it must stand
 * for: its fingerprint and decompressed size.  NULL with a reason in why (not a copy, made
 * for another stream, damaged). */
struct tm_copy *tm_copy_open(struct tm_block *file, uint64_t fingerprint, uint64_t size,
			     char *why, size_t why_len);
void tm_copy_close(struct tm_copy *c);
/* Bytes of the file. */
uint64_t tm_copy_bytes(const struct tm_copy *c);
/* Decode frame f, the stream's bytes from f * TM_COPY_FRAME, into out (TM_COPY_FRAME bytes):
 * the count (TM_COPY_FRAME, less for the last frame), or -1 with err (the file failed, or
 * the frame is damaged).  Any number of threads at once. */
ssize_t tm_copy_decode(struct tm_copy *c, uint64_t f, uint8_t *out, struct tm_block_error *err);

/* Writing a copy to fd (at its current position), frame by frame, at a zstd level. */
struct tm_copy_writer;
struct tm_copy_writer *tm_copy_writer_new(int fd, uint64_t fingerprint, uint64_t size,
					  int level, struct tm_block_error *err);
/* The next frame: TM_COPY_FRAME bytes, fewer only for the last. */
bool tm_copy_writer_add(struct tm_copy_writer *w, const uint8_t *data, size_t len,
			struct tm_block_error *err);
/* Bytes written so far. */
uint64_t tm_copy_writer_bytes(const struct tm_copy_writer *w);
/* Write the seek table and free w (also on failure); fd stays open. */
bool tm_copy_writer_finish(struct tm_copy_writer *w, struct tm_block_error *err);
void tm_copy_writer_abort(struct tm_copy_writer *w);

/* Largest decompressed output we accept from a single lz4/bzip2 block etc. */
#define TM_DECOMP_WINDOW_MAX (1u << 27)

#endif
