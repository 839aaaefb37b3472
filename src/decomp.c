/* The generic part of the decompressing layer: format detection, the seek table, the chunk
 * cache and its decoders, and the scan thread.  The formats are in decomp_<format>.c.
 *
 * Locking: one mutex (d->lock) guards the table, the cache and the decoder pool; decoding
 * never happens with it held.  A chunk being decoded sits in the cache as a placeholder
 * (FILLING), so that a second reader of it waits (d->cond) instead of decoding it again. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "decomp_codec.h"

#define CHUNK (128u * 1024)
#define POOL_MAX 4            /* parked decoders */
#define READAHEAD_CHUNKS 4    /* decoded ahead of a sequential reader */
#define TAIL_MAX (64ull << 20) /* decoded past the archive's end to check the stream */
#define SAMPLE_POINTS 64
#define SAMPLE_BYTES 64

enum { READY, FILLING };

struct chunk {
	uint64_t index;
	uint32_t len;
	int state;
	GList link; /* in lru while READY */
	uint8_t *data;
};

struct parked {
	struct tm_dec *dec;
	uint64_t pos; /* decompressed offset of its next byte */
};

struct tm_decomp {
	struct tm_block base;
	struct tm_block *inner;
	const struct tm_codec *codec;
	struct tm_decomp_options opts;
	uint64_t csize;

	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* The seek table: grows during the scan, fixed after. */
	GArray *points; /* struct tm_point */
	GByteArray *aux;
	const uint8_t *aux_ext; /* a saved table's aux bytes, used in place (not copied) */
	uint64_t aux_ext_len;
	uint64_t size;  /* decompressed size, once size_known */
	bool size_known;
	uint64_t fingerprint;

	/* The scan. */
	GThread *scan;
	bool scanning;        /* started and not yet ended */
	bool scanned;         /* ran in this process */
	uint64_t frontier;    /* bytes the scan has produced */
	uint64_t want;        /* highest chunk the reader waits for */
	bool reader_done;
	uint64_t used_end;
	bool scan_failed;     /* ended on an error (size is what was good) */
	struct tm_block_error scan_err;
	bool partial;         /* stopped past the archive's end, not at the stream's */

	/* The cache. */
	GHashTable *chunks;   /* &chunk->index -> chunk */
	GQueue lru;           /* READY chunks, most recent first */
	size_t capacity;      /* chunks */
	struct parked pool[POOL_MAX];
	int npool;

	uint64_t decoded, restarts; /* stats */
	_Atomic uint64_t scan_cpos; /* compressed bytes the scan has read */
	uint64_t size_hint;         /* what the stream says of its size, or 0 */
	uint64_t unit_start;        /* the scan: where the piece its decoder is in started */

	/* The seekable copy, once attached: reads decode its frames instead of the stream,
	 * until one fails (then copy_off, and the stream again).  Freed at disconnect. */
	struct tm_copy *_Atomic copy;
	atomic_bool copy_off;
	atomic_bool copy_cancel;    /* tm_decomp_copy_build: stop */
	char *copy_path;
	tm_decomp_diag_fn copy_diag;
	void *copy_diag_ud;
};

static const struct tm_codec *const codecs[] = {
	[TM_DECOMP_GZIP] = &tm_codec_gzip,   [TM_DECOMP_ZSTD] = &tm_codec_zstd,
	[TM_DECOMP_XZ] = &tm_codec_xz,       [TM_DECOMP_BZIP2] = &tm_codec_bzip2,
	[TM_DECOMP_LZ4] = &tm_codec_lz4,
};

/* ---- formats ---- */

static const char *const format_names[] = { "none", "gzip", "zstd", "xz", "bzip2", "lz4" };

const char *tm_decomp_format_name(enum tm_decomp_format f)
{
	if (f == TM_DECOMP_AUTO)
		return "auto";
	return f >= 0 && (size_t)f < G_N_ELEMENTS(format_names) ? format_names[f] : "?";
}

bool tm_decomp_format_parse(const char *s, enum tm_decomp_format *out)
{
	if (!strcmp(s, "auto")) {
		*out = TM_DECOMP_AUTO;
		return true;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(format_names); i++)
		if (!strcmp(s, format_names[i])) {
			*out = (enum tm_decomp_format)i;
			return true;
		}
	return false;
}

enum tm_decomp_format tm_decomp_detect(const uint8_t *h, size_t len)
{
	static const uint8_t xz[6] = { 0xfd, '7', 'z', 'X', 'Z', 0 };
	if (len >= 3 && h[0] == 0x1f && h[1] == 0x8b && h[2] == 8)
		return TM_DECOMP_GZIP;
	if (len >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
		return TM_DECOMP_ZSTD;
	/* zstd skippable frames (a seekable file may start with one? no: but pzstd output
	 * starts with a skippable frame holding the frame sizes) */
	if (len >= 4 && (h[0] & 0xf0) == 0x50 && h[1] == 0x2a && h[2] == 0x4d && h[3] == 0x18)
		return TM_DECOMP_ZSTD;
	if (len >= 6 && !memcmp(h, xz, 6))
		return TM_DECOMP_XZ;
	if (len >= 10 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h' && h[3] >= '1' && h[3] <= '9' &&
	    !memcmp(h + 4, "\x31\x41\x59\x26\x53\x59", 6))
		return TM_DECOMP_BZIP2;
	if (len >= 4 && !memcmp(h, "\x04\x22\x4d\x18", 4))
		return TM_DECOMP_LZ4;
	if (len >= 4 && !memcmp(h, "\x02\x21\x4c\x18", 4))
		return TM_DECOMP_LZ4; /* the legacy format */
	return TM_DECOMP_NONE;
}

enum tm_decomp_format tm_decomp_detect_block(struct tm_block *b, struct tm_block_error *err)
{
	uint8_t head[16];
	uint64_t size = tm_block_size_bytes(b);
	size_t n = size < sizeof head ? (size_t)size : sizeof head;
	if (err)
		err->code = TM_BLOCK_OK;
	if (n == 0 || tm_block_pread(b, head, n, 0, err) < 0)
		return TM_DECOMP_NONE;
	return tm_decomp_detect(head, n);
}

const char *tm_decomp_advice(enum tm_decomp_format f)
{
	switch (f) {
	case TM_DECOMP_ZSTD:
		return "recompress it in frames (pzstd, zstd --seekable or zstd -B) for fast reads";
	case TM_DECOMP_XZ:
		return "recompress it in blocks (xz -T0, or xz --block-size=4MiB) for fast reads";
	default:
		return NULL;
	}
}

/* ---- helpers for the codecs ---- */

struct tm_block *tm_decomp_inner(struct tm_decomp *d)
{
	return d->inner;
}

uint64_t tm_decomp_csize(struct tm_decomp *d)
{
	return d->csize;
}

uint64_t tm_decomp_spacing(struct tm_decomp *d)
{
	return d->opts.spacing;
}

bool tm_decomp_want_point(struct tm_decomp *d, uint64_t uoff, bool free_point)
{
	pthread_mutex_lock(&d->lock);
	const struct tm_point *last = d->points->len
		? &g_array_index(d->points, struct tm_point, d->points->len - 1) : NULL;
	uint64_t need = free_point ? d->opts.spacing / 4 : d->opts.spacing;
	bool want = !last || (uoff > last->uoff && uoff - last->uoff >= need);
	pthread_mutex_unlock(&d->lock);
	return want;
}

void tm_decomp_add_point(struct tm_decomp *d, const struct tm_point *p, const void *aux,
			 size_t aux_len)
{
	struct tm_point q = *p;
	pthread_mutex_lock(&d->lock);
	const struct tm_point *last = d->points->len
		? &g_array_index(d->points, struct tm_point, d->points->len - 1) : NULL;
	if ((last && q.uoff <= last->uoff && d->points->len > 0) ||
	    d->aux->len + (uint64_t)aux_len >= UINT32_MAX) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	q.aux_off = d->aux->len;
	q.aux_len = (uint32_t)aux_len;
	if (aux_len)
		g_byte_array_append(d->aux, aux, (guint)aux_len);
	g_array_append_val(d->points, q);
	pthread_mutex_unlock(&d->lock);
}

uint8_t *tm_decomp_aux_dup(struct tm_decomp *d, const struct tm_point *p)
{
	pthread_mutex_lock(&d->lock);
	uint8_t *copy = NULL;
	const uint8_t *aux = d->aux_ext ? d->aux_ext : d->aux->data;
	uint64_t len = d->aux_ext ? d->aux_ext_len : d->aux->len;
	if ((uint64_t)p->aux_off + p->aux_len <= len)
		copy = g_memdup2(aux + p->aux_off, p->aux_len ? p->aux_len : 1);
	pthread_mutex_unlock(&d->lock);
	return copy;
}

/* The last point at or before uoff (the table is sorted and starts at 0).  Locked. */
static guint point_at(struct tm_decomp *d, uint64_t uoff)
{
	guint lo = 0, hi = d->points->len;
	while (hi - lo > 1) {
		guint mid = lo + (hi - lo) / 2;
		if (g_array_index(d->points, struct tm_point, mid).uoff <= uoff)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

bool tm_decomp_next_point(struct tm_decomp *d, const struct tm_point *p, struct tm_point *next)
{
	pthread_mutex_lock(&d->lock);
	guint i = point_at(d, p->uoff);
	bool ok = i + 1 < d->points->len;
	if (ok)
		*next = g_array_index(d->points, struct tm_point, i + 1);
	pthread_mutex_unlock(&d->lock);
	return ok;
}

void tm_decomp_diag(struct tm_decomp *d, bool error, uint64_t offset, const char *fmt, ...)
{
	if (!d->opts.diag)
		return;
	char msg[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	d->opts.diag(d->opts.diag_ud, error, offset, msg);
}

void tm_decomp_truncated(struct tm_decomp *d, bool scan, uint64_t at)
{
	if (scan)
		tm_decomp_diag(d, false, at, "%s stream truncated at byte %llu; using what precedes "
			       "it", d->codec->name, (unsigned long long)at);
}

int tm_decomp_corrupt(struct tm_decomp *d, struct tm_block_error *err, uint64_t offset,
		      const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return tm_block_fail(err, TM_BLOCK_IO, 0, "%s data at compressed byte %llu: %s",
			     d->codec->name, (unsigned long long)offset, what);
}

/* ---- compressed input ---- */

#define CIN_BUF (256u * 1024)

void tm_cin_init(struct tm_cin *in, struct tm_decomp *d, uint64_t at, bool scan)
{
	*in = (struct tm_cin){ .b = d->inner, .end = d->csize, .base = at, .cap = CIN_BUF,
			       .scan = scan ? d : NULL };
	in->buf = g_malloc(in->cap);
}

void tm_cin_free(struct tm_cin *in)
{
	g_clear_pointer(&in->priv, g_free);
	g_clear_pointer(&in->buf, g_free);
}

ssize_t tm_cin_peek(struct tm_cin *in, size_t n, struct tm_block_error *err)
{
	if (in->len - in->at >= n)
		return (ssize_t)(in->len - in->at);
	/* Move what is left to the front and read after it. */
	size_t keep = in->len - in->at;
	if (n > in->cap) {
		in->cap = n;
		uint8_t *nb = g_malloc(in->cap);
		memcpy(nb, in->buf + in->at, keep);
		g_free(in->buf);
		in->buf = nb;
	} else {
		memmove(in->buf, in->buf + in->at, keep);
	}
	in->base += in->at;
	in->at = 0;
	in->len = keep;
	uint64_t pos = in->base + keep;
	size_t want = in->cap - keep;
	if (pos >= in->end)
		return (ssize_t)keep;
	if (want > in->end - pos)
		want = (size_t)(in->end - pos);
	if (tm_block_pread(in->b, in->buf + keep, want, pos, err) < 0)
		return -1;
	in->len += want;
	if (in->scan)
		atomic_store_explicit(&in->scan->scan_cpos, pos + want, memory_order_relaxed);
	return (ssize_t)in->len;
}

ssize_t tm_cin_fill(struct tm_cin *in, struct tm_block_error *err)
{
	if (in->at < in->len)
		return (ssize_t)(in->len - in->at);
	return tm_cin_peek(in, 1, err);
}

int tm_cin_skip(struct tm_cin *in, uint64_t n, struct tm_block_error *err)
{
	while (n > 0) {
		ssize_t have = tm_cin_fill(in, err);
		if (have <= 0)
			return (int)have;
		size_t k = (uint64_t)have < n ? (size_t)have : (size_t)n;
		in->at += k;
		n -= k;
	}
	return 1;
}

void tm_decomp_set_size_hint(struct tm_decomp *d, uint64_t size)
{
	d->size_hint = size;
}

uint64_t tm_decomp_size_hint(struct tm_decomp *d)
{
	return d->size_hint;
}

bool tm_decomp_point(struct tm_decomp *d, uint64_t i, struct tm_point *p)
{
	pthread_mutex_lock(&d->lock);
	bool ok = i < d->points->len;
	if (ok)
		*p = g_array_index(d->points, struct tm_point, i);
	pthread_mutex_unlock(&d->lock);
	return ok;
}

/* ---- the cache ---- */

/* Publish a decoded chunk (replacing its placeholder, if any) and evict beyond capacity.
 * Locked.  Takes data; returns chunks evicted, to be freed by the caller after unlocking. */
static GSList *publish(struct tm_decomp *d, uint64_t index, uint8_t *data, uint32_t len)
{
	struct chunk *ch = g_hash_table_lookup(d->chunks, &index);
	if (ch && ch->state == READY) {
		g_free(data); /* another decoder was first */
		return NULL;
	}
	if (!ch) {
		ch = g_new0(struct chunk, 1);
		ch->index = index;
		g_hash_table_insert(d->chunks, &ch->index, ch);
	}
	ch->data = data;
	ch->len = len;
	ch->state = READY;
	ch->link = (GList){ .data = ch };
	g_queue_push_head_link(&d->lru, &ch->link);
	GSList *evicted = NULL;
	while (d->lru.length > d->capacity) {
		struct chunk *old = g_queue_pop_tail_link(&d->lru)->data;
		g_hash_table_remove(d->chunks, &old->index);
		evicted = g_slist_prepend(evicted, old);
	}
	pthread_cond_broadcast(&d->cond);
	return evicted;
}

static void free_chunks(GSList *list)
{
	for (GSList *l = list; l; l = l->next) {
		struct chunk *ch = l->data;
		g_free(ch->data);
		g_free(ch);
	}
	g_slist_free(list);
}

/* Drop a placeholder left by a failed decode.  Locked. */
static void unplace(struct tm_decomp *d, uint64_t index)
{
	struct chunk *ch = g_hash_table_lookup(d->chunks, &index);
	if (ch && ch->state == FILLING) {
		g_hash_table_remove(d->chunks, &index);
		g_free(ch);
	}
	pthread_cond_broadcast(&d->cond);
}

/* Fill buf with up to len decoded bytes: fewer only at the end of the stream. */
static ssize_t dec_read_full(struct tm_decomp *d, struct tm_dec *x, uint8_t *buf, size_t len,
			     struct tm_block_error *err)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = d->codec->read(x, buf + got, len - got, err);
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* A decoder positioned at or before target: a parked one when it is at least as close as
 * the nearest point, else a new one at that point.  Returns it with *pos set. */
static struct tm_dec *dec_for(struct tm_decomp *d, uint64_t target, uint64_t *pos, bool *seq,
			      struct tm_block_error *err)
{
	pthread_mutex_lock(&d->lock);
	struct tm_point p = g_array_index(d->points, struct tm_point, point_at(d, target));
	int best = -1;
	for (int i = 0; i < d->npool; i++)
		if (d->pool[i].pos <= target && d->pool[i].pos >= p.uoff &&
		    (best < 0 || d->pool[i].pos > d->pool[best].pos))
			best = i;
	struct tm_dec *x = NULL;
	if (best >= 0) {
		x = d->pool[best].dec;
		*pos = d->pool[best].pos;
		d->pool[best] = d->pool[--d->npool];
	} else {
		d->restarts++;
	}
	pthread_mutex_unlock(&d->lock);
	*seq = x && *pos == target;
	if (!x) {
		x = d->codec->open(d, &p, false, err);
		*pos = p.uoff;
	}
	return x;
}

static void dec_park(struct tm_decomp *d, struct tm_dec *x, uint64_t pos)
{
	struct tm_dec *drop = NULL;
	pthread_mutex_lock(&d->lock);
	if (d->npool == POOL_MAX) {
		/* Replace the one furthest behind: the least likely to be continued. */
		int worst = 0;
		for (int i = 1; i < d->npool; i++)
			if (d->pool[i].pos < d->pool[worst].pos)
				worst = i;
		drop = d->pool[worst].dec;
		d->pool[worst] = d->pool[--d->npool];
	}
	d->pool[d->npool++] = (struct parked){ x, pos };
	pthread_mutex_unlock(&d->lock);
	if (drop)
		d->codec->close(drop);
}

/* Decode the frame of the seekable copy that holds chunk index (its placeholder is in the
 * cache) and publish the chunks of the frame no one holds yet, index last.  -1 when there
 * is no copy or it failed: the copy is then given up (said once, and its file removed so
 * that the next mount makes another) and the caller decodes the stream. */
static int copy_chunk(struct tm_decomp *d, uint64_t index)
{
	struct tm_copy *c = atomic_load(&d->copy);
	if (!c || atomic_load(&d->copy_off))
		return -1;
	uint64_t f = index * CHUNK / TM_COPY_FRAME, first = f * (TM_COPY_FRAME / CHUNK);
	uint8_t *frame = g_malloc(TM_COPY_FRAME);
	struct tm_block_error err;
	ssize_t n = tm_copy_decode(c, f, frame, &err);
	if (n <= (ssize_t)((index - first) * CHUNK)) {
		g_free(frame);
		if (!atomic_exchange(&d->copy_off, true)) {
			char msg[300], line[600];
			if (n >= 0)
				tm_block_fail(&err, TM_BLOCK_IO, EIO, "seekable copy: frame %llu short",
					      (unsigned long long)f);
			snprintf(line, sizeof line, "%s: %s; reading the %s stream instead",
				 d->copy_path, tm_block_strerror(&err, msg, sizeof msg),
				 d->codec->name);
			if (d->copy_diag)
				d->copy_diag(d->copy_diag_ud, true, 0, line);
			unlink(d->copy_path);
		}
		return -1;
	}
	GSList *ev = NULL;
	pthread_mutex_lock(&d->lock);
	d->decoded += (uint64_t)n;
	for (uint64_t k = first; (k - first) * CHUNK < (uint64_t)n; k++) {
		if (k == index || g_hash_table_contains(d->chunks, &k))
			continue;
		size_t len = MIN((uint64_t)CHUNK, (uint64_t)n - (k - first) * CHUNK);
		ev = g_slist_concat(publish(d, k, g_memdup2(frame + (k - first) * CHUNK, len),
					    (uint32_t)len), ev);
	}
	size_t len = MIN((uint64_t)CHUNK, (uint64_t)n - (index - first) * CHUNK);
	ev = g_slist_concat(publish(d, index, g_memdup2(frame + (index - first) * CHUNK, len),
				    (uint32_t)len), ev);
	pthread_mutex_unlock(&d->lock);
	free_chunks(ev);
	g_free(frame);
	return 0;
}

/* Decode chunk index (its placeholder is in the cache) and, for a sequential reader, a few
 * after it; publish them.  Returns -1 with err. */
static int decode_chunk(struct tm_decomp *d, uint64_t index, struct tm_block_error *err)
{
	if (copy_chunk(d, index) == 0)
		return 0;
	uint64_t target = index * CHUNK, pos;
	bool seq;
	struct tm_dec *x = dec_for(d, target, &pos, &seq, err);
	if (!x) {
		pthread_mutex_lock(&d->lock);
		unplace(d, index);
		pthread_mutex_unlock(&d->lock);
		return -1;
	}
	uint8_t *buf = g_malloc(CHUNK);
	uint64_t produced = 0;
	int ahead = 0;
	while (pos < target) { /* decode up to the chunk, discarding */
		size_t n = target - pos < CHUNK ? (size_t)(target - pos) : CHUNK;
		ssize_t got = dec_read_full(d, x, buf, n, err);
		if (got <= 0) {
			if (got == 0)
				tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
					      "%s stream ends before byte %llu", d->codec->name,
					      (unsigned long long)target);
			goto fail;
		}
		pos += (uint64_t)got, produced += (uint64_t)got;
	}
	for (;; ahead++) {
		ssize_t got = dec_read_full(d, x, buf, CHUNK, err);
		if (got < 0)
			goto fail;
		pos += (uint64_t)got, produced += (uint64_t)got;
		pthread_mutex_lock(&d->lock);
		d->decoded += produced;
		produced = 0;
		GSList *ev = got > 0 ? publish(d, index, buf, (uint32_t)got) : NULL;
		if (got == 0)
			unplace(d, index);
		/* Read ahead of a sequential reader, into chunks no one holds yet. */
		bool more = got == CHUNK && seq && ahead < READAHEAD_CHUNKS &&
			    !g_hash_table_contains(d->chunks, &(uint64_t){ index + 1 });
		if (more) {
			struct chunk *ph = g_new0(struct chunk, 1);
			ph->index = index + 1;
			ph->state = FILLING;
			g_hash_table_insert(d->chunks, &ph->index, ph);
		}
		pthread_mutex_unlock(&d->lock);
		free_chunks(ev);
		if (got == 0) {
			g_free(buf);
			if (ahead == 0)
				return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
						     "%s stream ends before byte %llu",
						     d->codec->name, (unsigned long long)target);
			break;
		}
		if (!more)
			break;
		index++;
		buf = g_malloc(CHUNK);
	}
	dec_park(d, x, pos);
	return 0;
fail:
	g_free(buf);
	d->codec->close(x);
	pthread_mutex_lock(&d->lock);
	unplace(d, index);
	pthread_mutex_unlock(&d->lock);
	/* A chunk read ahead failed: the one asked for was published before. */
	return ahead > 0 ? 0 : -1;
}

/* Copy [from, from+len) of chunk index into out, decoding it when no one has. */
static int read_chunk(struct tm_decomp *d, uint64_t index, uint32_t from, uint32_t len,
		      uint8_t *out, struct tm_block_error *err)
{
	pthread_mutex_lock(&d->lock);
	for (;;) {
		struct chunk *ch = g_hash_table_lookup(d->chunks, &index);
		if (ch && ch->state == READY) {
			if ((uint64_t)from + len > ch->len) {
				pthread_mutex_unlock(&d->lock);
				return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
						     "past the end of the %s stream",
						     d->codec->name);
			}
			g_queue_unlink(&d->lru, &ch->link);
			g_queue_push_head_link(&d->lru, &ch->link);
			memcpy(out, ch->data + from, len);
			pthread_mutex_unlock(&d->lock);
			return 0;
		}
		if (ch) { /* being decoded */
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		if (d->scanning && index * CHUNK >= d->frontier) {
			/* The scan brings it: say how far we wait, and wait. */
			if (index > d->want)
				d->want = index;
			pthread_cond_broadcast(&d->cond);
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		if (d->size_known && index * CHUNK >= d->size) {
			/* Also where a damaged stream broke: for the reader, it ends there. */
			pthread_mutex_unlock(&d->lock);
			return tm_block_fail(err, TM_BLOCK_OUT_OF_RANGE, 0,
					     "past the end of the %s stream", d->codec->name);
		}
		struct chunk *ph = g_new0(struct chunk, 1);
		ph->index = index;
		ph->state = FILLING;
		g_hash_table_insert(d->chunks, &ph->index, ph);
		pthread_mutex_unlock(&d->lock);
		if (decode_chunk(d, index, err) < 0)
			return -1;
		pthread_mutex_lock(&d->lock);
	}
}

/* ---- the tm_block ---- */

#define SECTOR 512u

static void decomp_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	pthread_mutex_lock(&d->lock);
	*info = (struct tm_block_info){ .sector_size = SECTOR };
	if (d->size_known) {
		info->size_sectors = (d->size + SECTOR - 1) / SECTOR;
		info->size_bytes = d->size;
	} else {
		info->size_pending = true;
		info->size_sectors = (UINT64_MAX / 4) / SECTOR;
	}
	pthread_mutex_unlock(&d->lock);
}

static int decomp_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		       struct tm_block_error *err)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	struct tm_block_info info;
	decomp_get_info(b, &info);
	int64_t total = tm_block_check_range(&info, sector, iov, iovcnt, err);
	if (total < 0)
		return -1;
	if (tm_block_changed(d->inner))
		return tm_block_fail(err, TM_BLOCK_IO, EIO, "the compressed source changed");
	uint64_t off = sector * SECTOR;
	for (int i = 0; i < iovcnt; i++) {
		uint8_t *out = iov[i].iov_base;
		size_t len = iov[i].iov_len;
		while (len > 0) {
			uint64_t index = off / CHUNK;
			uint32_t from = (uint32_t)(off % CHUNK);
			uint32_t n = CHUNK - from < len ? CHUNK - from : (uint32_t)len;
			/* The partial last sector reads as zeros past the end. */
			if (info.size_bytes && off + n > info.size_bytes) {
				uint64_t real = off < info.size_bytes ? info.size_bytes - off : 0;
				memset(out + real, 0, n - real);
				if (real && read_chunk(d, index, from, (uint32_t)real, out, err) < 0)
					return -1;
			} else if (read_chunk(d, index, from, n, out, err) < 0) {
				return -1;
			}
			out += n, off += n, len -= n;
		}
	}
	return 0;
}

static bool decomp_changed(struct tm_block *b)
{
	return tm_block_changed(((struct tm_decomp *)b)->inner);
}

static bool decomp_identity(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	return tm_block_identity_update(((struct tm_decomp *)b)->inner, sum, err);
}

static void scan_stop(struct tm_decomp *d)
{
	pthread_mutex_lock(&d->lock);
	d->reader_done = true;
	d->used_end = 0; /* stop as soon as it looks */
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->scan)
		g_thread_join(d->scan);
	d->scan = NULL;
}

static void decomp_disconnect(struct tm_block *b)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	scan_stop(d);
	for (int i = 0; i < d->npool; i++)
		d->codec->close(d->pool[i].dec);
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, d->chunks);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct chunk *ch = v;
		g_free(ch->data);
		g_free(ch);
	}
	g_hash_table_destroy(d->chunks);
	tm_copy_close(atomic_load(&d->copy));
	g_free(d->copy_path);
	g_array_free(d->points, TRUE);
	g_byte_array_free(d->aux, TRUE);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	tm_block_disconnect(d->inner);
	g_free(b->source);
	g_free(d);
}

/* A compressed stream has no place to put bytes: appending would mean recompressing. */
static int decomp_write(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
			struct tm_block_error *err)
{
	(void)b, (void)sector, (void)iov, (void)iovcnt;
	return tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "a compressed archive cannot be written");
}

static const struct tm_block_ops decomp_ops = {
	.name = "decompressor",
	.get_info = decomp_get_info,
	.read = decomp_read,
	.write = decomp_write,
	.changed = decomp_changed,
	.identity = decomp_identity,
	.disconnect = decomp_disconnect,
};

struct tm_block *tm_decomp_release(struct tm_block *b)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	struct tm_block *inner = d->inner;
	d->inner = NULL;
	decomp_disconnect(b);
	return inner;
}

bool tm_decomp_is(struct tm_block *b)
{
	return b && b->ops == &decomp_ops;
}

static bool table_fingerprint(struct tm_decomp *d, uint64_t *out, struct tm_block_error *err);

/* ---- the scan ---- */

/* The scan hands its output over in chunks: an emitter fills one at a time and publishes
 * it, staying at most half the cache ahead of what the reader asked for. */
struct emitter {
	struct tm_decomp *d;
	uint8_t *buf;    /* the chunk being filled */
	uint32_t fill;
	uint64_t index;  /* its number */
	uint64_t pos;    /* decompressed bytes emitted */
	bool partial;    /* stopped past the archive's end */
};

/* Room for the next bytes: a chunk buffer with CHUNK - fill free; false when the scan is to
 * stop (the reader is done and the end is far past its archive). */
static bool emit_room(struct emitter *e)
{
	if (e->buf)
		return true;
	struct tm_decomp *d = e->d;
	pthread_mutex_lock(&d->lock);
	while (!d->reader_done && e->index > d->want + d->capacity / 2)
		pthread_cond_wait(&d->cond, &d->lock);
	e->partial = d->reader_done && e->pos > d->used_end + TAIL_MAX;
	pthread_mutex_unlock(&d->lock);
	if (e->partial)
		return false;
	e->buf = g_malloc(CHUNK);
	e->fill = 0;
	return true;
}

/* n bytes were written at buf + fill: publish the chunk once full (or, last, as it is). */
static void emit_done(struct emitter *e, uint32_t n, bool last)
{
	struct tm_decomp *d = e->d;
	e->fill += n;
	e->pos += n;
	if (e->fill < CHUNK && !last)
		return;
	pthread_mutex_lock(&d->lock);
	d->decoded += e->fill;
	d->frontier = e->pos;
	if (last) { /* the end: known before anyone sees the short chunk */
		d->size = e->pos;
		d->size_known = true;
	}
	GSList *ev = NULL;
	if (e->fill && !d->reader_done)
		ev = publish(d, e->index, e->buf, e->fill);
	else
		g_free(e->buf);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	free_chunks(ev);
	e->buf = NULL;
	e->fill = 0;
	e->index++;
}

static bool emit_bytes(struct emitter *e, const uint8_t *data, size_t len)
{
	while (len > 0) {
		if (!emit_room(e))
			return false;
		uint32_t n = CHUNK - e->fill < len ? CHUNK - e->fill : (uint32_t)len;
		memcpy(e->buf + e->fill, data, n);
		emit_done(e, n, false);
		data += n, len -= n;
	}
	return true;
}

/* Decode from p (a scan decoder) to the end, in order.  false on an error (err). */
/* The scan found damage in the piece that started at decompressed offset bad (a checksum
 * that covers it whole failed at its end): what it gave from there is not to be trusted.
 * The stream ends at bad for every reader: chunks past it are dropped, as are decoders
 * parked past it. */
static void discard_from(struct emitter *e, uint64_t bad)
{
	struct tm_decomp *d = e->d;
	if (bad >= e->pos)
		return;
	g_clear_pointer(&e->buf, g_free);
	e->fill = 0;
	e->pos = bad;
	e->index = bad / CHUNK;
	GSList *dropped = NULL;
	struct tm_dec *parked[POOL_MAX];
	int nparked = 0;
	pthread_mutex_lock(&d->lock);
	GHashTableIter it;
	gpointer v;
	g_hash_table_iter_init(&it, d->chunks);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		struct chunk *ch = v;
		if (ch->state != READY || (ch->index + 1) * CHUNK <= bad)
			continue;
		g_queue_unlink(&d->lru, &ch->link);
		g_hash_table_iter_remove(&it);
		dropped = g_slist_prepend(dropped, ch);
	}
	for (int i = 0; i < d->npool; i++)
		if (d->pool[i].pos > bad)
			parked[nparked++] = d->pool[i].dec;
		else
			d->pool[i - nparked] = d->pool[i];
	d->npool -= nparked;
	d->frontier = bad;
	pthread_mutex_unlock(&d->lock);
	free_chunks(dropped);
	for (int i = 0; i < nparked; i++)
		d->codec->close(parked[i]);
}

void tm_decomp_unit_start(struct tm_decomp *d, uint64_t uoff)
{
	d->unit_start = uoff;
}

static bool scan_in_order(struct emitter *e, const struct tm_point *p, struct tm_block_error *err)
{
	struct tm_decomp *d = e->d;
	d->unit_start = e->pos;
	struct tm_dec *x = d->codec->open(d, p, true, err);
	if (!x)
		return false;
	bool ok = true;
	while (emit_room(e)) {
		ssize_t got = dec_read_full(d, x, e->buf + e->fill, CHUNK - e->fill, err);
		if (got < 0) {
			ok = false;
			discard_from(e, d->unit_start);
			break;
		}
		bool end = (uint32_t)got < CHUNK - e->fill;
		emit_done(e, (uint32_t)got, false);
		if (end)
			break;
	}
	d->codec->close(x);
	return ok;
}

/* ---- units on several threads ---- */

#define WORKERS 2

struct job {
	struct tm_unit u;
	uint8_t *out;
	ssize_t got;
	struct tm_block_error err;
	bool done;
};

static void job_run(gpointer data, gpointer user)
{
	struct job *j = data;
	struct tm_decomp *d = user;
	j->out = g_try_malloc(j->u.ulen ? j->u.ulen : 1);
	if (!j->out)
		j->got = tm_block_fail(&j->err, TM_BLOCK_IO, ENOMEM, NULL);
	else
		j->got = d->codec->decode_unit(d, &j->u, j->out, &j->err);
	pthread_mutex_lock(&d->lock);
	j->done = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Decode units on WORKERS threads, emitting them in order; then what remains in order.
 * false on an error (err). */
static bool scan_units(struct emitter *e, struct tm_block_error *err)
{
	struct tm_decomp *d = e->d;
	struct tm_cin in;
	tm_cin_init(&in, d, 0, true);
	GThreadPool *pool = g_thread_pool_new(job_run, d, WORKERS, TRUE, NULL);
	GQueue jobs = G_QUEUE_INIT;
	struct tm_unit last = { .seq = 0 }, next;
	bool more = true, ok = true, have_next = false;
	uint64_t inflight = 0; /* decoded bytes the jobs queued may hold: at most the cache's */
	struct tm_point tail = { 0 }; /* where what is left starts */
	while (ok) {
		/* Keep every worker busy, and one unit ready behind them, within the memory the
		 * cache is given; but a unit to each worker whatever their size (at most
		 * TM_UNIT_MAX each: bzip2's bound alone, 46 MB for what RLE1 could expand a
		 * block to, passes a 64 MiB cache twice, while its blocks rarely pass 1 MB). */
		while (more && jobs.length < WORKERS + 1) {
			if (!have_next) {
				next = last;
				int rc = d->codec->next_unit(d, &in, &next, err);
				if (rc < 0) {
					ok = false;
					break;
				}
				if (rc == 0) {
					more = false;
					tail = next.at;
					break;
				}
				next.seq = last.seq + 1;
				last = next;
				have_next = true;
			}
			if (jobs.length >= WORKERS && inflight + next.ulen > d->opts.cache_size)
				break;
			struct job *j = g_new0(struct job, 1);
			j->u = next;
			have_next = false;
			inflight += next.ulen;
			g_queue_push_tail(&jobs, j);
			g_thread_pool_push(pool, j, NULL);
		}
		struct job *j = g_queue_pop_head(&jobs);
		if (!j)
			break;
		pthread_mutex_lock(&d->lock);
		while (!j->done)
			pthread_cond_wait(&d->cond, &d->lock);
		pthread_mutex_unlock(&d->lock);
		if (ok && j->got < 0) {
			*err = j->err;
			ok = false;
		} else if (ok && j->u.exact && (uint64_t)j->got != j->u.ulen) {
			tm_decomp_corrupt(d, err, j->u.at.coff, "a unit decodes to %lld bytes, not %llu",
					  (long long)j->got, (unsigned long long)j->u.ulen);
			ok = false;
		}
		if (ok) {
			/* Every unit is a point: a reader may go from one to the next. */
			struct tm_point p = j->u.at;
			p.uoff = e->pos;
			tm_decomp_add_point(d, &p, NULL, 0);
			if (!emit_bytes(e, j->out, (size_t)j->got))
				more = false, tail.coff = d->csize; /* stopped: the rest is not wanted */
		}
		inflight -= j->u.ulen; /* its output is in the cache now, or dropped */
		g_free(j->out);
		g_free(j);
	}
	g_thread_pool_free(pool, FALSE, TRUE); /* waits for the jobs left */
	struct job *j;
	while ((j = g_queue_pop_head(&jobs))) {
		g_free(j->out);
		g_free(j);
	}
	tm_cin_free(&in);
	if (ok && !e->partial && tail.coff < d->csize) {
		tail.uoff = e->pos;
		if (e->pos > 0)
			tm_decomp_add_point(d, &tail, NULL, 0);
		ok = scan_in_order(e, &tail, err);
	}
	return ok;
}

static gpointer scan_main(gpointer data)
{
	struct tm_decomp *d = data;
	struct tm_block_error err = { .code = TM_BLOCK_OK };
	struct emitter e = { .d = d };
	bool ok = d->codec->next_unit ? scan_units(&e, &err) : scan_in_order(&e, NULL, &err);
	if (e.buf) /* the last, partial chunk (of good bytes: damage discarded its own) */
		emit_done(&e, 0, true);
	/* A failure is told by tm_decomp_finish; until then the stream ends where it broke. */
	pthread_mutex_lock(&d->lock);
	d->size = e.pos;
	d->size_known = true;
	/* A point where nothing follows (an empty last member or frame) is of no use. */
	while (d->points->len > 1 &&
	       g_array_index(d->points, struct tm_point, d->points->len - 1).uoff >= d->size)
		g_array_set_size(d->points, d->points->len - 1);
	d->scanning = false;
	d->scan_failed = !ok;
	d->scan_err = err;
	d->partial = e.partial;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

bool tm_decomp_finish(struct tm_block *b, uint64_t used_end, struct tm_block_error *err)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	pthread_mutex_lock(&d->lock);
	d->reader_done = true;
	d->used_end = used_end;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (d->scan)
		g_thread_join(d->scan);
	d->scan = NULL;
	d->opts.diag = NULL; /* the scan was its only user */
	if (!table_fingerprint(d, &d->fingerprint, err))
		return false;
	if (d->scan_failed) {
		if (err)
			*err = d->scan_err;
		return false;
	}
	return true;
}

/* ---- the saved table ---- */

#define TABLE_MAGIC "TMSEEK1\n"

struct table_header {
	char magic[8];
	uint32_t format, point_size;
	uint64_t size, csize, npoints, aux_len, fingerprint;
	uint32_t partial, pad;
};

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Hash the table with a sample of the compressed bytes at its points. */
static bool table_fingerprint(struct tm_decomp *d, uint64_t *out, struct tm_block_error *err)
{
	uint64_t h = 0xcbf29ce484222325ull;
	h = mix(h, &d->csize, sizeof d->csize);
	h = mix(h, &d->size, sizeof d->size);
	h = mix(h, d->points->data, (size_t)d->points->len * sizeof(struct tm_point));
	uint8_t buf[SAMPLE_BYTES];
	guint n = d->points->len, step = n / SAMPLE_POINTS + 1;
	for (guint i = 0; i <= n; i += step) {
		uint64_t at = i < n ? g_array_index(d->points, struct tm_point, i).coff
				    : (d->csize > SAMPLE_BYTES ? d->csize - SAMPLE_BYTES : 0);
		size_t len = at < d->csize ? (size_t)MIN((uint64_t)SAMPLE_BYTES, d->csize - at) : 0;
		if (len && tm_block_pread(d->inner, buf, len, at, err) < 0)
			return false;
		h = mix(h, buf, len);
		if (i == n)
			break;
		if (i + step > n)
			i = n - step; /* and the end */
	}
	*out = h;
	return true;
}

void tm_decomp_table(struct tm_block *b, GByteArray *out)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	pthread_mutex_lock(&d->lock);
	struct table_header h = {
		.format = (uint32_t)d->codec->format, .point_size = sizeof(struct tm_point),
		.size = d->size, .csize = d->csize, .npoints = d->points->len,
		.aux_len = d->aux_ext ? d->aux_ext_len : d->aux->len,
		.fingerprint = d->fingerprint, .partial = d->partial,
	};
	memcpy(h.magic, TABLE_MAGIC, 8);
	g_byte_array_append(out, (const guint8 *)&h, sizeof h);
	g_byte_array_append(out, (const guint8 *)d->points->data,
			    d->points->len * (guint)sizeof(struct tm_point));
	if (d->aux_ext)
		g_byte_array_append(out, d->aux_ext, (guint)d->aux_ext_len);
	else
		g_byte_array_append(out, d->aux->data, d->aux->len);
	pthread_mutex_unlock(&d->lock);
}

uint64_t tm_decomp_scan_position(struct tm_block *b)
{
	return atomic_load_explicit(&((struct tm_decomp *)b)->scan_cpos, memory_order_relaxed);
}

uint64_t tm_decomp_fingerprint(struct tm_block *b)
{
	return ((struct tm_decomp *)b)->fingerprint;
}

bool tm_decomp_test_seal_table(struct tm_block *inner, void *table, size_t len)
{
	struct table_header h;
	if (len < sizeof h)
		return false;
	memcpy(&h, table, sizeof h);
	if (h.npoints > (len - sizeof h) / sizeof(struct tm_point))
		return false;
	struct tm_decomp d = { .inner = inner, .csize = tm_block_size_bytes(inner), .size = h.size };
	d.points = g_array_new(FALSE, FALSE, sizeof(struct tm_point));
	g_array_append_vals(d.points, (const uint8_t *)table + sizeof h, (guint)h.npoints);
	struct tm_block_error err;
	bool ok = table_fingerprint(&d, &h.fingerprint, &err);
	g_array_free(d.points, TRUE);
	if (ok)
		memcpy(table, &h, sizeof h);
	return ok;
}

/* Load a saved table into d, checking everything a reader relies on. */
static bool table_load(struct tm_decomp *d, const uint8_t *t, size_t len,
		       struct tm_block_error *err)
{
	struct table_header h;
	if (len < sizeof h)
		goto bad;
	memcpy(&h, t, sizeof h);
	if (memcmp(h.magic, TABLE_MAGIC, 8) || h.format != (uint32_t)d->codec->format ||
	    h.point_size != sizeof(struct tm_point) || h.csize != d->csize || h.npoints == 0 ||
	    h.npoints > (len - sizeof h) / sizeof(struct tm_point) ||
	    h.aux_len != len - sizeof h - h.npoints * sizeof(struct tm_point) ||
	    h.aux_len >= UINT32_MAX)
		goto bad;
	const uint8_t *pts = t + sizeof h;
	for (uint64_t i = 0; i < h.npoints; i++) {
		struct tm_point p;
		memcpy(&p, pts + i * sizeof p, sizeof p);
		const struct tm_point *prev = d->points->len
			? &g_array_index(d->points, struct tm_point, d->points->len - 1) : NULL;
		if ((i == 0 && p.uoff != 0) || (prev && (p.uoff <= prev->uoff || p.coff < prev->coff)) ||
		    p.uoff > h.size || p.coff > h.csize || p.bits > 7 ||
		    (uint64_t)p.aux_off + p.aux_len > h.aux_len)
			goto bad;
		g_array_append_val(d->points, p);
	}
	d->aux_ext = pts + h.npoints * sizeof(struct tm_point);
	d->aux_ext_len = h.aux_len;
	d->size = h.size;
	d->size_known = true;
	d->partial = h.partial;
	uint64_t fp;
	if (!table_fingerprint(d, &fp, err))
		return false;
	if (fp != h.fingerprint)
		goto bad;
	d->fingerprint = fp;
	return true;
bad:
	tm_block_fail(err, TM_BLOCK_INVALID, 0, "stale or damaged seek table");
	return false;
}

/* ---- opening ---- */

struct tm_block *tm_decomp_new(struct tm_block *inner, enum tm_decomp_format fmt,
			       const struct tm_decomp_options *opts, const void *table,
			       size_t table_len, struct tm_block_error *err)
{
	if (fmt <= TM_DECOMP_NONE || (size_t)fmt >= G_N_ELEMENTS(codecs) || !codecs[fmt]) {
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "no decoder for this format");
		return NULL;
	}
	struct tm_decomp *d = g_new0(struct tm_decomp, 1);
	d->base.ops = &decomp_ops;
	d->base.source = g_strdup(inner->source);
	d->inner = inner;
	d->codec = codecs[fmt];
	if (opts)
		d->opts = *opts;
	if (!d->opts.cache_size)
		d->opts.cache_size = 64ull << 20;
	if (!d->opts.spacing)
		d->opts.spacing = 1ull << 20;
	d->csize = tm_block_size_bytes(inner);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	d->points = g_array_new(FALSE, FALSE, sizeof(struct tm_point));
	d->aux = g_byte_array_new();
	d->chunks = g_hash_table_new(g_int64_hash, g_int64_equal);
	g_queue_init(&d->lru);
	d->capacity = d->opts.cache_size / CHUNK;
	if (d->capacity < 8)
		d->capacity = 8;
	if (table) {
		if (!table_load(d, table, table_len, err)) {
			d->inner = NULL; /* the caller's again */
			decomp_disconnect(&d->base);
			return NULL;
		}
		return &d->base;
	}
	if (d->codec->prepare)
		d->codec->prepare(d);
	if (d->points->len == 0)
		g_array_append_val(d->points, ((struct tm_point){ 0 }));
	d->scanning = d->scanned = true;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	d->scan = g_thread_new("decomp-scan", scan_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return &d->base;
}

static void stats_locked(struct tm_decomp *d, struct tm_decomp_stats *s)
{
	*s = (struct tm_decomp_stats){
		.format = d->codec->format, .compressed = d->csize,
		.size = d->size_known ? d->size : d->frontier, .points = d->points->len,
		.table_bytes = sizeof(struct table_header) +
			       d->points->len * sizeof(struct tm_point) +
			       (d->aux_ext ? d->aux_ext_len : d->aux->len),
		.decoded = d->decoded, .restarts = d->restarts, .scanned = d->scanned,
	};
	struct tm_copy *c = atomic_load(&d->copy);
	if (c && !atomic_load(&d->copy_off))
		s->copy_bytes = tm_copy_bytes(c);
	for (guint i = 0; i < d->points->len; i++) {
		uint64_t next = i + 1 < d->points->len
			? g_array_index(d->points, struct tm_point, i + 1).uoff : s->size;
		uint64_t gap = next - g_array_index(d->points, struct tm_point, i).uoff;
		if (gap > s->max_gap)
			s->max_gap = gap;
	}
}

void tm_decomp_stats(struct tm_block *b, struct tm_decomp_stats *out)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	pthread_mutex_lock(&d->lock);
	stats_locked(d, out);
	pthread_mutex_unlock(&d->lock);
}

/* ---- the seekable copy ---- */

/* A read outside the cache may cost this much decoding before a copy is worth its disk. */
#define COPY_WORTH_MS 50

bool tm_decomp_copy_wanted(struct tm_block *b)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	struct tm_decomp_stats st;
	tm_decomp_stats(b, &st);
	uint64_t worth = ((uint64_t)d->codec->mib_per_s << 20) * COPY_WORTH_MS / 1000;
	return st.size > 0 && !d->scanning && st.max_gap >= worth;
}

char *tm_decomp_copy_path(const char *index_path)
{
	size_t len = strlen(index_path);
	if (len > 4 && !strcmp(index_path + len - 4, ".idx"))
		len -= 4;
	return g_strdup_printf("%.*s.seekable.zst", (int)len, index_path);
}

bool tm_decomp_copy_attach(struct tm_block *b, const char *path, tm_decomp_diag_fn diag,
			   void *diag_ud, char *why, size_t why_len)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	if (atomic_load(&d->copy)) {
		snprintf(why, why_len, "a copy is attached already");
		return false;
	}
	struct tm_block_error err;
	struct tm_block *file = tm_block_file_open(path, &(struct tm_block_options){ 0 }, &err);
	if (!file) {
		tm_block_strerror(&err, why, why_len);
		return false;
	}
	struct tm_copy *c = tm_copy_open(file, d->fingerprint, d->size, why, why_len);
	if (!c)
		return false;
	d->copy_path = g_strdup(path);
	d->copy_diag = diag;
	d->copy_diag_ud = diag_ud;
	atomic_store(&d->copy, c);
	return true;
}

void tm_decomp_copy_cancel(struct tm_block *b)
{
	atomic_store(&((struct tm_decomp *)b)->copy_cancel, true);
}

bool tm_decomp_copy_build(struct tm_block *b, const char *path, uint64_t limit,
			  struct tm_decomp_copy_report *r, struct tm_block_error *err)
{
	struct tm_decomp *d = (struct tm_decomp *)b;
	if (r)
		*r = (struct tm_decomp_copy_report){ 0 };
	if (d->scanning || !d->size_known || d->size == 0)
		return tm_block_fail(err, TM_BLOCK_INVALID, 0, "the stream is not scanned yet") == 0;
	/* A temporary name the cache's pruner knows, in the same directory. */
	char *dir = g_path_get_dirname(path), *base = g_path_get_basename(path);
	char *dot = strchr(base, '.');
	if (dot)
		*dot = 0;
	char *tmp = g_strdup_printf("%s/.%s.XXXXXX", dir, base);
	(void)g_mkdir_with_parents(dir, 0700);
	g_free(dir);
	g_free(base);
	struct tm_point start = g_array_index(d->points, struct tm_point, 0);
	struct tm_dec *x = NULL;
	struct tm_copy_writer *w = NULL;
	uint8_t *buf = NULL;
	bool ok = false;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		tm_block_fail(err, TM_BLOCK_IO, errno, "%s", tmp);
		goto out;
	}
	if (!(w = tm_copy_writer_new(fd, d->fingerprint, d->size, 1, err)) ||
	    !(x = d->codec->open(d, &start, false, err)))
		goto out;
	buf = g_malloc(TM_COPY_FRAME);
	for (uint64_t at = 0; at < d->size; at += TM_COPY_FRAME) {
		if (atomic_load(&d->copy_cancel)) {
			tm_block_fail(err, TM_BLOCK_IO, ECANCELED, "stopped");
			goto out;
		}
		size_t n = (size_t)MIN((uint64_t)TM_COPY_FRAME, d->size - at);
		ssize_t got = dec_read_full(d, x, buf, n, err);
		if (got < 0)
			goto out;
		if ((size_t)got < n) {
			tm_block_fail(err, TM_BLOCK_IO, EIO, "the %s stream ended early",
				      d->codec->name);
			goto out;
		}
		if (!tm_copy_writer_add(w, buf, n, err))
			goto out;
		if (limit && tm_copy_writer_bytes(w) > limit) {
			tm_block_fail(err, TM_BLOCK_IO, EFBIG, "larger than the %llu bytes allowed",
				      (unsigned long long)limit);
			goto out;
		}
		if (r)
			r->done = at + n;
	}
	if (r)
		r->bytes = tm_copy_writer_bytes(w);
	ok = tm_copy_writer_finish(w, err);
	w = NULL;
	if (ok && rename(tmp, path) < 0)
		ok = tm_block_fail(err, TM_BLOCK_IO, errno, "%s", path) == 0;
out:
	if (w)
		tm_copy_writer_abort(w);
	if (x)
		d->codec->close(x);
	g_free(buf);
	if (fd >= 0) {
		close(fd);
		if (!ok)
			unlink(tmp);
	}
	g_free(tmp);
	return ok;
}
