/* lz4: the frame format (independent or linked blocks, block and content checksums,
 * skippable frames, concatenated frames) and the legacy format (lz4 -l, the kernel's).
 *
 * The frame layout is parsed here and each block decoded with liblz4's block decoder, so
 * that decoding can start at any block: independent blocks (the lz4 CLI's default) are all
 * seek points, with nothing to keep; linked blocks (-BD) are seek points once per spacing,
 * with the 64 KiB of output before them (stored lz4-compressed).  Checksums are xxHash32
 * (libxxhash): block checksums are checked by every decoder, content checksums by the scan,
 * which alone sees whole frames. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <lz4.h>
#include <xxhash.h>

#include "decomp_codec.h"

enum { AT_FRAME = 0, AT_BLOCK = 1, AT_LEGACY = 2 };
#define DICT 65536u
#define LEGACY_BLOCK (8u << 20)
#define FLG_INDEP 0x20
#define FLG_BSUM 0x10
#define FLG_CSIZE 0x08
#define FLG_CSUM 0x04
#define FLG_DICTID 0x01

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	bool scan, ended;
	uint64_t uoff;
	int where;          /* AT_FRAME: between frames; AT_BLOCK: in a frame; AT_LEGACY */
	uint8_t flg, bd;    /* the frame's descriptor */
	uint32_t bmax;      /* its largest block */
	bool check_content; /* the scan saw the frame from its start */
	XXH32_state_t *sum;
	uint8_t *cbuf, *out; /* a block, compressed and decoded */
	uint32_t out_len, out_at;
	uint8_t dict[DICT];  /* linked blocks: the last output */
	uint32_t dict_len;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void lz_close(struct tm_dec *x)
{
	if (x->sum)
		XXH32_freeState(x->sum);
	tm_cin_free(&x->in);
	g_free(x->cbuf);
	g_free(x->out);
	g_free(x);
}

static uint32_t block_max(uint8_t bd)
{
	unsigned id = (bd >> 4) & 7;
	return id >= 4 ? 1u << (8 + 2 * id) : 0;
}

/* Buffers for blocks of up to bmax bytes. */
static void set_bmax(struct tm_dec *x, uint32_t bmax)
{
	if (bmax > x->bmax) {
		g_free(x->cbuf);
		g_free(x->out);
		x->cbuf = g_malloc((size_t)LZ4_compressBound((int)bmax) + 8);
		x->out = g_malloc(bmax);
	}
	x->bmax = bmax;
}

static struct tm_dec *lz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	x->where = p ? p->kind : AT_FRAME;
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	if (scan && !(x->sum = XXH32_createState())) {
		lz_close(x);
		tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
		return NULL;
	}
	if (x->where == AT_LEGACY) {
		set_bmax(x, LEGACY_BLOCK);
	} else if (x->where == AT_BLOCK) {
		x->flg = (uint8_t)(p->flags & 0xff);
		x->bd = (uint8_t)(p->flags >> 8);
		set_bmax(x, block_max(x->bd) ? block_max(x->bd) : DICT);
		if (!(x->flg & FLG_INDEP) && p->aux_len) {
			uint8_t *aux = tm_decomp_aux_dup(d, p);
			int n = aux ? LZ4_decompress_safe((const char *)aux, (char *)x->dict,
							  (int)p->aux_len, DICT) : -1;
			g_free(aux);
			if (n < 0) {
				lz_close(x);
				tm_decomp_corrupt(d, err, p->coff, "bad seek point");
				return NULL;
			}
			x->dict_len = (uint32_t)n;
		}
	}
	return x;
}

/* Between frames: the next frame's header, a skippable frame, a legacy frame, or the end
 * (zeros, garbage).  Returns -1 on error. */
static int frame_start(struct tm_dec *x, struct tm_block_error *err)
{
	for (;;) {
		uint64_t at = tm_cin_pos(&x->in);
		ssize_t n = tm_cin_peek(&x->in, 19, err);
		if (n < 0)
			return -1;
		const uint8_t *h = x->in.buf + x->in.at;
		uint32_t magic = n >= 4 ? le32(h) : 0;
		if (n >= 8 && (magic & 0xfffffff0u) == 0x184d2a50u) {
			int rc = tm_cin_skip(&x->in, 8 + (uint64_t)le32(h + 4), err);
			if (rc <= 0)
				return rc < 0 ? -1 : (x->ended = true, 0);
			continue;
		}
		if (n >= 4 && magic == 0x184c2102u) {
			x->in.at += 4;
			x->where = AT_LEGACY;
			set_bmax(x, LEGACY_BLOCK);
			return 0;
		}
		if (n < 7 || magic != 0x184d2204u) {
			x->ended = true;
			bool zeros = true;
			for (ssize_t i = 0; i < n; i++)
				zeros = zeros && !h[i];
			if (x->scan && n > 0 && !zeros)
				tm_decomp_diag(x->d, false, at, "lz4: %llu bytes after the last frame "
					       "ignored", (unsigned long long)(x->in.end - at));
			return 0;
		}
		uint8_t flg = h[4], bd = h[5];
		size_t dlen = 2 + (flg & FLG_CSIZE ? 8 : 0) + (flg & FLG_DICTID ? 4 : 0);
		if ((flg >> 6) != 1 || (flg & 2) || !block_max(bd) || (bd & 0x8f))
			return tm_decomp_corrupt(x->d, err, at, "bad frame descriptor");
		if (flg & FLG_DICTID)
			return tm_decomp_corrupt(x->d, err, at, "frames with a dictionary are not "
						 "supported");
		if (((XXH32(h + 4, dlen, 0) >> 8) & 0xff) != h[4 + dlen])
			return tm_decomp_corrupt(x->d, err, at, "frame descriptor checksum mismatch");
		x->in.at += 4 + dlen + 1;
		x->flg = flg;
		x->bd = bd;
		set_bmax(x, block_max(bd));
		x->dict_len = 0;
		x->where = AT_BLOCK;
		x->check_content = x->scan && (flg & FLG_CSUM);
		if (x->scan)
			tm_decomp_unit_start(x->d, x->uoff);
		if (x->check_content)
			XXH32_reset(x->sum, 0);
		if (x->scan && x->uoff > 0 && tm_decomp_want_point(x->d, x->uoff, true)) {
			struct tm_point p = { .uoff = x->uoff, .coff = at, .kind = AT_FRAME };
			tm_decomp_add_point(x->d, &p, NULL, 0);
		}
		return 0;
	}
}

/* The scan, at a block start inside a frame: a point when it costs nothing (independent
 * blocks) or once per spacing (linked: with the last 64 KiB of output). */
static void block_point(struct tm_dec *x, uint64_t coff)
{
	bool indep = x->flg & FLG_INDEP;
	if (!x->scan || x->uoff == 0 || !tm_decomp_want_point(x->d, x->uoff, indep))
		return;
	struct tm_point p = { .uoff = x->uoff, .coff = coff, .kind = AT_BLOCK,
			      .flags = (uint16_t)(x->flg | x->bd << 8) };
	if (indep) {
		tm_decomp_add_point(x->d, &p, NULL, 0);
		return;
	}
	char *aux = g_malloc((size_t)LZ4_compressBound(DICT));
	int n = LZ4_compress_default((const char *)x->dict, aux, (int)x->dict_len,
				     LZ4_compressBound(DICT));
	if (n > 0)
		tm_decomp_add_point(x->d, &p, aux, (size_t)n);
	g_free(aux);
}

/* Read n bytes of input into dst; 0 when the source ends first. */
static int take(struct tm_dec *x, void *dst, size_t n, struct tm_block_error *err)
{
	ssize_t have = tm_cin_peek(&x->in, n, err);
	if (have < 0)
		return -1;
	if ((size_t)have < n)
		return 0;
	memcpy(dst, x->in.buf + x->in.at, n);
	x->in.at += n;
	return 1;
}

static int truncated(struct tm_dec *x, struct tm_block_error *err)
{
	(void)err;
	tm_decomp_truncated(x->d, x->scan, tm_cin_pos(&x->in));
	x->ended = true;
	return 0;
}

/* Decode the next block into x->out (or move between frames). */
static int next_block(struct tm_dec *x, struct tm_block_error *err)
{
	uint64_t at = tm_cin_pos(&x->in);
	uint8_t w[4];
	int rc = take(x, w, 4, err);
	if (rc <= 0)
		return rc < 0 ? -1 : x->where == AT_LEGACY ? (x->ended = true, 0) : truncated(x, err);
	uint32_t word = le32(w);
	if (x->where == AT_LEGACY) {
		if (word == 0x184c2102u || (word & 0xfffffff0u) == 0x184d2a50u ||
		    word == 0x184d2204u || word > (uint32_t)LZ4_compressBound(LEGACY_BLOCK)) {
			x->in.at -= 4; /* another frame, or the end */
			x->where = AT_FRAME;
			return 0;
		}
		if ((rc = take(x, x->cbuf, word, err)) <= 0)
			return rc < 0 ? -1 : truncated(x, err);
		if (x->scan && x->uoff > 0 && tm_decomp_want_point(x->d, x->uoff, true)) {
			struct tm_point p = { .uoff = x->uoff, .coff = at, .kind = AT_LEGACY };
			tm_decomp_add_point(x->d, &p, NULL, 0);
		}
		int n = LZ4_decompress_safe((const char *)x->cbuf, (char *)x->out, (int)word,
					    LEGACY_BLOCK);
		if (n < 0)
			return tm_decomp_corrupt(x->d, err, at, "corrupt block");
		x->out_len = (uint32_t)n, x->out_at = 0;
		return 0;
	}
	if (word == 0) { /* the end mark */
		if (x->flg & FLG_CSUM) {
			if ((rc = take(x, w, 4, err)) <= 0)
				return rc < 0 ? -1 : truncated(x, err);
			if (x->check_content && XXH32_digest(x->sum) != le32(w))
				return tm_decomp_corrupt(x->d, err, at, "content checksum mismatch");
		}
		x->where = AT_FRAME;
		return 0;
	}
	uint32_t size = word & 0x7fffffffu;
	bool raw = word >> 31;
	if (size > x->bmax)
		return tm_decomp_corrupt(x->d, err, at, "block larger than the frame allows");
	block_point(x, at);
	if ((rc = take(x, x->cbuf, size, err)) <= 0)
		return rc < 0 ? -1 : truncated(x, err);
	if (x->flg & FLG_BSUM) {
		if ((rc = take(x, w, 4, err)) <= 0)
			return rc < 0 ? -1 : truncated(x, err);
		if (XXH32(x->cbuf, size, 0) != le32(w))
			return tm_decomp_corrupt(x->d, err, at, "block checksum mismatch");
	}
	int n;
	if (raw) {
		memcpy(x->out, x->cbuf, size);
		n = (int)size;
	} else if (x->flg & FLG_INDEP) {
		n = LZ4_decompress_safe((const char *)x->cbuf, (char *)x->out, (int)size,
					(int)x->bmax);
	} else {
		n = LZ4_decompress_safe_usingDict((const char *)x->cbuf, (char *)x->out, (int)size,
						  (int)x->bmax, (const char *)x->dict,
						  (int)x->dict_len);
	}
	if (n < 0)
		return tm_decomp_corrupt(x->d, err, at, "corrupt block");
	if (!(x->flg & FLG_INDEP)) { /* the next block's dictionary: the last 64 KiB */
		uint32_t keep = (uint32_t)n >= DICT ? 0 : MIN(x->dict_len, DICT - (uint32_t)n);
		memmove(x->dict, x->dict + x->dict_len - keep, keep);
		uint32_t add = MIN((uint32_t)n, DICT);
		memcpy(x->dict + keep, x->out + n - add, add);
		x->dict_len = keep + add;
	}
	if (x->check_content)
		XXH32_update(x->sum, x->out, (size_t)n);
	x->out_len = (uint32_t)n, x->out_at = 0;
	return 0;
}

static ssize_t lz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	size_t done = 0;
	while (done < len && !x->ended) {
		if (x->out_at < x->out_len) {
			size_t n = MIN((size_t)(x->out_len - x->out_at), len - done);
			memcpy(buf + done, x->out + x->out_at, n);
			x->out_at += (uint32_t)n;
			x->uoff += n;
			done += n;
			continue;
		}
		int rc = x->where == AT_FRAME ? frame_start(x, err) : next_block(x, err);
		if (rc < 0)
			return -1;
	}
	return (ssize_t)done;
}

const struct tm_codec tm_codec_lz4 = {
	.format = TM_DECOMP_LZ4,
	.name = "lz4",
	.mib_per_s = 2000,
	.open = lz_open,
	.read = lz_read,
	.close = lz_close,
};
