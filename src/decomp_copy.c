/* The seekable copy: a stream that seeks badly (one zstd frame, one xz block: a read there
 * decodes from the stream's start) re-encoded once as a file of small zstd frames kept
 * beside the index, so that a read decodes at most one frame of it.
 *
 * The file is a zstd file like any other (zstd -dc gives the archive back):
 *   a skippable frame (magic 0x184D2A51) with our header: "TMCOPY1\n", the fingerprint of
 *     the stream it stands for (tm_decomp_fingerprint), its decompressed size and the frame
 *     size;
 *   the frames, TM_COPY_FRAME bytes of the stream each (the last one shorter), each with its
 *     content size and checksum;
 *   the seek table of zstd's seekable format: a skippable frame (magic 0x184D2A5E) of one
 *     entry per frame (compressed size, decompressed size, the low 32 bits of the XXH64 of
 *     the frame's content), then a footer (frame count, descriptor, magic 0x8F92EAB1), so
 *     that tools that know that format seek in it too.
 * Everything a reader relies on is checked when the copy is opened (the header against the
 * stream, every size against the file's); each frame's checksum when it is decoded. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <xxhash.h>
#include <zstd.h>

#include "decomp_codec.h"

#define OUR_MAGIC 0x184D2A51u
#define TABLE_MAGIC 0x184D2A5Eu
#define SEEKABLE_MAGIC 0x8F92EAB1u
#define HEADER_ID "TMCOPY1\n"
#define HEADER_LEN 32u              /* our skippable frame's content */
#define FRAMES_AT (8u + HEADER_LEN) /* where the first frame starts */
#define ENTRY_LEN 12u
#define FOOTER_LEN 9u
#define CHECKSUM_FLAG 0x80u

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint64_t frame_count(uint64_t size)
{
	return (size + TM_COPY_FRAME - 1) / TM_COPY_FRAME;
}

/* ---- reading ---- */

struct tm_copy {
	struct tm_block *file;
	uint64_t size, file_size, nframes;
	uint64_t *coff; /* nframes + 1: where each frame starts, then the table */
	size_t max_clen;
	GMutex lock;    /* the free decoder contexts */
	GSList *free_dctx;
};

static bool bad(char *why, size_t why_len, const char *what)
{
	snprintf(why, why_len, "%s", what);
	return false;
}

/* Read and check the header and the seek table; fills c->coff. */
static bool copy_check(struct tm_copy *c, uint64_t fingerprint, char *why, size_t why_len)
{
	struct tm_block_error err;
	uint8_t h[FRAMES_AT], foot[FOOTER_LEN];
	char msg[200];
	if (c->file_size < FRAMES_AT + 8 + FOOTER_LEN)
		return bad(why, why_len, "too short");
	if (tm_block_pread(c->file, h, sizeof h, 0, &err) < 0 ||
	    tm_block_pread(c->file, foot, sizeof foot, c->file_size - FOOTER_LEN, &err) < 0)
		return bad(why, why_len, tm_block_strerror(&err, msg, sizeof msg));
	if (get32(h) != OUR_MAGIC || get32(h + 4) != HEADER_LEN || memcmp(h + 8, HEADER_ID, 8))
		return bad(why, why_len, "not a seekable copy");
	if (get64(h + 16) != fingerprint || get64(h + 24) != c->size)
		return bad(why, why_len, "made for another stream");
	if (get32(h + 32) != TM_COPY_FRAME || get32(foot + 5) != SEEKABLE_MAGIC ||
	    foot[4] != CHECKSUM_FLAG || get32(foot) != c->nframes)
		return bad(why, why_len, "damaged (header or seek table footer)");
	uint64_t table_len = 8 + c->nframes * ENTRY_LEN + FOOTER_LEN;
	if (table_len > c->file_size - FRAMES_AT)
		return bad(why, why_len, "damaged (seek table larger than the file)");
	uint64_t table_at = c->file_size - table_len;
	uint8_t *t = g_malloc(table_len);
	bool ok = false;
	if (tm_block_pread(c->file, t, table_len, table_at, &err) < 0) {
		bad(why, why_len, tm_block_strerror(&err, msg, sizeof msg));
		goto out;
	}
	if (get32(t) != TABLE_MAGIC || get32(t + 4) != table_len - 8) {
		bad(why, why_len, "damaged (seek table header)");
		goto out;
	}
	size_t bound = ZSTD_compressBound(TM_COPY_FRAME);
	uint64_t at = FRAMES_AT;
	for (uint64_t i = 0; i < c->nframes; i++) {
		const uint8_t *e = t + 8 + i * ENTRY_LEN;
		uint64_t want = i + 1 < c->nframes ? TM_COPY_FRAME : c->size - i * TM_COPY_FRAME;
		uint32_t clen = get32(e);
		if (get32(e + 4) != want || clen == 0 || clen > bound || at + clen > table_at) {
			bad(why, why_len, "damaged (seek table entry)");
			goto out;
		}
		c->coff[i] = at;
		at += clen;
		if (clen > c->max_clen)
			c->max_clen = clen;
	}
	c->coff[c->nframes] = at;
	if (at != table_at) {
		bad(why, why_len, "damaged (frames and seek table do not fill the file)");
		goto out;
	}
	ok = true;
out:
	g_free(t);
	return ok;
}

struct tm_copy *tm_copy_open(struct tm_block *file, uint64_t fingerprint, uint64_t size,
			     char *why, size_t why_len)
{
	/* The seek table's entries must fit in the file before any is allocated. */
	uint64_t file_size = tm_block_size_bytes(file);
	if (size == 0 || frame_count(size) > UINT32_MAX ||
	    frame_count(size) * ENTRY_LEN > file_size) {
		bad(why, why_len, size && frame_count(size) <= UINT32_MAX
			? "damaged (too short for its frames)" : "no copy for a stream of this size");
		tm_block_disconnect(file);
		return NULL;
	}
	struct tm_copy *c = g_new0(struct tm_copy, 1);
	c->file = file;
	c->size = size;
	c->file_size = file_size;
	c->nframes = frame_count(size);
	c->coff = g_new0(uint64_t, c->nframes + 1);
	g_mutex_init(&c->lock);
	if (!copy_check(c, fingerprint, why, why_len)) {
		tm_copy_close(c);
		return NULL;
	}
	return c;
}

void tm_copy_close(struct tm_copy *c)
{
	if (!c)
		return;
	for (GSList *l = c->free_dctx; l; l = l->next)
		ZSTD_freeDCtx(l->data);
	g_slist_free(c->free_dctx);
	g_mutex_clear(&c->lock);
	tm_block_disconnect(c->file);
	g_free(c->coff);
	g_free(c);
}

uint64_t tm_copy_bytes(const struct tm_copy *c)
{
	return c->file_size;
}

ssize_t tm_copy_decode(struct tm_copy *c, uint64_t f, uint8_t *out, struct tm_block_error *err)
{
	if (f >= c->nframes)
		return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0, "past the seekable copy's end");
	size_t clen = (size_t)(c->coff[f + 1] - c->coff[f]);
	size_t want = f + 1 < c->nframes ? TM_COPY_FRAME : (size_t)(c->size - f * TM_COPY_FRAME);
	uint8_t *in = g_malloc(clen);
	ssize_t rc = -1;
	if (tm_block_pread(c->file, in, clen, c->coff[f], err) < 0)
		goto out;
	g_mutex_lock(&c->lock);
	ZSTD_DCtx *dc = c->free_dctx ? c->free_dctx->data : NULL;
	if (dc)
		c->free_dctx = g_slist_delete_link(c->free_dctx, c->free_dctx);
	g_mutex_unlock(&c->lock);
	if (!dc && !(dc = ZSTD_createDCtx())) {
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "seekable copy: out of memory");
		goto out;
	}
	/* One frame exactly, whose checksum the decoder checks (the seek table's checksum
	 * of the same bytes adds nothing to that). */
	size_t n = ZSTD_findFrameCompressedSize(in, clen) == clen
		? ZSTD_decompressDCtx(dc, out, want, in, clen) : (size_t)-1;
	g_mutex_lock(&c->lock);
	c->free_dctx = g_slist_prepend(c->free_dctx, dc);
	g_mutex_unlock(&c->lock);
	if (ZSTD_isError(n) || n != want) {
		tm_block_fail(err, TM_BLOCK_IO, EIO, "seekable copy: frame %llu at byte %llu: %s",
			      (unsigned long long)f, (unsigned long long)c->coff[f],
			      ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
		goto out;
	}
	rc = (ssize_t)n;
out:
	g_free(in);
	return rc;
}

/* ---- writing ---- */

struct tm_copy_writer {
	int fd;
	ZSTD_CCtx *cc;
	uint8_t *out;
	size_t out_cap;
	GByteArray *table; /* the seek table's entries so far */
	uint64_t written, nframes;
};

static bool write_all(struct tm_copy_writer *w, const void *p, size_t len,
		      struct tm_block_error *err)
{
	const uint8_t *b = p;
	while (len > 0) {
		ssize_t n = write(w->fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return tm_block_fail(err, TM_BLOCK_IO, errno,
					     "writing the seekable copy") == 0;
		b += n, len -= (size_t)n, w->written += (uint64_t)n;
	}
	return true;
}

struct tm_copy_writer *tm_copy_writer_new(int fd, uint64_t fingerprint, uint64_t size,
					  int level, struct tm_block_error *err)
{
	struct tm_copy_writer *w = g_new0(struct tm_copy_writer, 1);
	w->fd = fd;
	w->cc = ZSTD_createCCtx();
	w->out_cap = ZSTD_compressBound(TM_COPY_FRAME);
	w->out = g_malloc(w->out_cap);
	w->table = g_byte_array_new();
	if (!w->cc || ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(w->cc, ZSTD_c_contentSizeFlag, 1))) {
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "seekable copy: no zstd encoder");
		tm_copy_writer_abort(w);
		return NULL;
	}
	uint8_t h[FRAMES_AT] = { 0 };
	put32(h, OUR_MAGIC);
	put32(h + 4, HEADER_LEN);
	memcpy(h + 8, HEADER_ID, 8);
	put64(h + 16, fingerprint);
	put64(h + 24, size);
	put32(h + 32, TM_COPY_FRAME);
	if (!write_all(w, h, sizeof h, err)) {
		tm_copy_writer_abort(w);
		return NULL;
	}
	return w;
}

bool tm_copy_writer_add(struct tm_copy_writer *w, const uint8_t *data, size_t len,
			struct tm_block_error *err)
{
	size_t n = ZSTD_compress2(w->cc, w->out, w->out_cap, data, len);
	if (ZSTD_isError(n))
		return tm_block_fail(err, TM_BLOCK_IO, EIO, "seekable copy: %s",
				     ZSTD_getErrorName(n)) == 0;
	uint8_t e[ENTRY_LEN];
	put32(e, (uint32_t)n);
	put32(e + 4, (uint32_t)len);
	put32(e + 8, (uint32_t)XXH64(data, len, 0));
	g_byte_array_append(w->table, e, sizeof e);
	w->nframes++;
	return write_all(w, w->out, n, err);
}

uint64_t tm_copy_writer_bytes(const struct tm_copy_writer *w)
{
	return w->written;
}

bool tm_copy_writer_finish(struct tm_copy_writer *w, struct tm_block_error *err)
{
	uint8_t h[8], foot[FOOTER_LEN];
	put32(h, TABLE_MAGIC);
	put32(h + 4, w->table->len + FOOTER_LEN);
	put32(foot, (uint32_t)w->nframes);
	foot[4] = CHECKSUM_FLAG;
	put32(foot + 5, SEEKABLE_MAGIC);
	bool ok = write_all(w, h, sizeof h, err) &&
		  write_all(w, w->table->data, w->table->len, err) &&
		  write_all(w, foot, sizeof foot, err);
	tm_copy_writer_abort(w);
	return ok;
}

void tm_copy_writer_abort(struct tm_copy_writer *w)
{
	ZSTD_freeCCtx(w->cc);
	g_free(w->out);
	g_byte_array_free(w->table, TRUE);
	g_free(w);
}
