/* bzip2 through libbz2: one stream (bzip2, lbzip2) or many (pbzip2, concatenated files).
 *
 * bzip2 blocks start at any bit, behind a 48-bit magic, and the stream ends with another
 * (and the CRC of all its blocks' CRCs).  The scan finds those magics in the compressed
 * bits and decodes each block on its own, on two threads: libbz2 decodes only whole
 * streams, so a block is given to it as a stream of its own, made here: the stream header,
 * the block's bits shifted to a byte boundary, and an end-of-stream marker whose CRC is the
 * block's (the combined CRC of a one-block stream).  libbz2 checks each block's CRC; the
 * scan checks each stream's combined CRC against its blocks'.  Every block is a seek
 * point, which records its length in bits so that a reader can make the same stream. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <bzlib.h>

#include "decomp_codec.h"

enum { AT_STREAM = 0, AT_BLOCK = 1 };
#define BLOCK_MAGIC 0x314159265359ull
#define EOS_MAGIC 0x177245385090ull
#define MASK48 0xffffffffffffull

struct tm_dec {
	struct tm_decomp *d;
	struct tm_cin in;
	bz_stream s;
	bool scan, ended, active;
	uint64_t uoff;
	/* At a block point: the stream made for the block, and the block's point. */
	uint8_t *syn;
	size_t syn_len;
	struct tm_point at;
};

struct bitw {
	uint8_t *p;
	size_t len;
	uint64_t acc;
	unsigned n;
};

static void put_bits(struct bitw *w, uint64_t v, unsigned n)
{
	for (unsigned i = n; i-- > 0;) {
		w->acc = w->acc << 1 | ((v >> i) & 1);
		if (++w->n == 8) {
			w->p[w->len++] = (uint8_t)w->acc;
			w->acc = w->n = 0;
		}
	}
}

/* The one-block stream for the block of nbits bits at bit `bits` of byte coff. */
static uint8_t *synth_block(struct tm_decomp *d, uint64_t coff, unsigned bits, uint32_t nbits,
			    unsigned level, size_t *len, struct tm_block_error *err)
{
	size_t nbytes = ((size_t)bits + nbits + 7) / 8;
	if (nbits < 80 || coff > tm_decomp_csize(d) || nbytes > tm_decomp_csize(d) - coff) {
		tm_decomp_corrupt(d, err, coff, "bad block seek point");
		return NULL;
	}
	uint8_t *in = g_malloc(nbytes + 8);
	if (tm_block_pread(tm_decomp_inner(d), in, nbytes, coff, err) < 0) {
		g_free(in);
		return NULL;
	}
	memset(in + nbytes, 0, 8);
	struct bitw w = { .p = g_malloc(nbytes + 32) };
	put_bits(&w, 'B', 8), put_bits(&w, 'Z', 8), put_bits(&w, 'h', 8);
	put_bits(&w, '0' + level, 8);
	/* The block's bits: whole bytes where they line up, else 8 at a time. */
	uint64_t crc = 0;
	for (uint32_t i = 0; i < nbits;) {
		uint64_t bit = (uint64_t)bits + i;
		unsigned take = nbits - i >= 8 ? 8 : nbits - i;
		uint16_t two = (uint16_t)(in[bit / 8] << 8 | in[bit / 8 + 1]);
		uint64_t v = (two >> (16 - bit % 8 - take)) & ((1u << take) - 1);
		if (i >= 48 && i < 80)
			crc = crc << take | v; /* the block CRC, after the magic */
		put_bits(&w, v, take);
		i += take;
	}
	put_bits(&w, EOS_MAGIC, 48);
	put_bits(&w, crc, 32);
	if (w.n)
		put_bits(&w, 0, 8 - w.n);
	g_free(in);
	*len = w.len;
	return w.p;
}

static void bz_close(struct tm_dec *x)
{
	if (x->active)
		BZ2_bzDecompressEnd(&x->s);
	tm_cin_free(&x->in);
	g_free(x->syn);
	g_free(x);
}

static int stream_start(struct tm_dec *x, struct tm_block_error *err)
{
	if (x->active)
		BZ2_bzDecompressEnd(&x->s);
	char *out = x->s.next_out; /* the caller's buffer, part filled */
	unsigned avail = x->s.avail_out;
	memset(&x->s, 0, sizeof x->s);
	x->s.next_out = out;
	x->s.avail_out = avail;
	x->active = BZ2_bzDecompressInit(&x->s, 0, 0) == BZ_OK;
	if (x->scan)
		tm_decomp_unit_start(x->d, x->uoff);
	if (!x->active)
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "libbz2: cannot start a decoder");
	return 0;
}

/* Decode the block at p next (from its own stream). */
static int block_load(struct tm_dec *x, const struct tm_point *p, struct tm_block_error *err)
{
	g_free(x->syn);
	x->syn = synth_block(x->d, p->coff, p->bits, p->extra, p->flags, &x->syn_len, err);
	if (!x->syn)
		return -1;
	x->at = *p;
	x->s.next_in = (char *)x->syn;
	x->s.avail_in = (unsigned)x->syn_len;
	return 0;
}

static struct tm_dec *bz_open(struct tm_decomp *d, const struct tm_point *p, bool scan,
			      struct tm_block_error *err)
{
	struct tm_dec *x = g_new0(struct tm_dec, 1);
	x->d = d;
	x->scan = scan;
	x->uoff = p ? p->uoff : 0;
	tm_cin_init(&x->in, d, p ? p->coff : 0, scan);
	if (stream_start(x, err) < 0 || (p && p->kind == AT_BLOCK && block_load(x, p, err) < 0)) {
		bz_close(x);
		return NULL;
	}
	return x;
}

static bool stream_magic(const uint8_t *h)
{
	return h[0] == 'B' && h[1] == 'Z' && h[2] == 'h' && h[3] >= '1' && h[3] <= '9';
}

static int next_stream(struct tm_dec *x, struct tm_block_error *err)
{
	ssize_t n = tm_cin_peek(&x->in, 4, err);
	if (n < 0)
		return -1;
	const uint8_t *h = x->in.buf + x->in.at;
	if (n >= 4 && stream_magic(h)) {
		if (x->scan && tm_decomp_want_point(x->d, x->uoff, true)) {
			struct tm_point p = { .uoff = x->uoff, .coff = tm_cin_pos(&x->in) };
			tm_decomp_add_point(x->d, &p, NULL, 0);
		}
		return stream_start(x, err);
	}
	x->ended = true;
	if (x->scan && n > 0) {
		bool zeros = true;
		for (ssize_t i = 0; i < n; i++)
			zeros = zeros && !h[i];
		if (!zeros)
			tm_decomp_diag(x->d, false, tm_cin_pos(&x->in),
				       "bzip2: %llu bytes of trailing garbage ignored",
				       (unsigned long long)(x->in.end - tm_cin_pos(&x->in)));
	}
	return 0;
}

static ssize_t bz_read(struct tm_dec *x, uint8_t *buf, size_t len, struct tm_block_error *err)
{
	size_t cap = len > UINT32_MAX ? UINT32_MAX : len;
	x->s.next_out = (char *)buf;
	x->s.avail_out = (unsigned)cap;
	while (x->s.avail_out > 0 && !x->ended) {
		if (x->syn) { /* a block's own stream */
			unsigned before_out = x->s.avail_out;
			int r = BZ2_bzDecompress(&x->s);
			x->uoff += before_out - x->s.avail_out;
			struct tm_point next;
			if (r == BZ_STREAM_END) {
				if (!tm_decomp_next_point(x->d, &x->at, &next) ||
				    next.kind != AT_BLOCK || next.uoff != x->uoff)
					x->ended = true;
				else if (stream_start(x, err) < 0 || block_load(x, &next, err) < 0)
					return -1;
			} else if (r != BZ_OK || (x->s.avail_in == 0 && before_out == x->s.avail_out)) {
				return tm_decomp_corrupt(x->d, err, x->at.coff, "block: %s",
							 r == BZ_OK ? "truncated" : "corrupt");
			}
			continue;
		}
		if (x->in.at >= x->in.len) {
			ssize_t n = tm_cin_fill(&x->in, err);
			if (n < 0)
				return -1;
			if (n == 0) {
				tm_decomp_truncated(x->d, x->scan, tm_cin_pos(&x->in));
				x->ended = true;
				break;
			}
		}
		x->s.next_in = (char *)x->in.buf + x->in.at;
		size_t avail = x->in.len - x->in.at;
		x->s.avail_in = avail > UINT32_MAX ? UINT32_MAX : (unsigned)avail;
		unsigned before_in = x->s.avail_in, before_out = x->s.avail_out;
		int r = BZ2_bzDecompress(&x->s);
		x->in.at += before_in - x->s.avail_in;
		x->uoff += before_out - x->s.avail_out;
		if (r == BZ_STREAM_END) {
			if (next_stream(x, err) < 0)
				return -1;
			continue;
		}
		if (r != BZ_OK)
			return tm_decomp_corrupt(x->d, err, tm_cin_pos(&x->in), "%s",
						 r == BZ_DATA_ERROR ? "CRC mismatch or corrupt block"
						 : r == BZ_DATA_ERROR_MAGIC ? "bad magic"
						 : r == BZ_MEM_ERROR ? "out of memory" : "decoder failed");
	}
	return (ssize_t)(cap - x->s.avail_out);
}

/* The splitter's state: where it is, in bits, and the stream it is in. */
struct split {
	uint64_t bit;      /* next bit to look at */
	bool in_stream;
	unsigned level;
	uint32_t combined; /* of the stream's block CRCs so far */
	uint64_t stream_at;
	bool cut;          /* the source ended inside the end-of-stream marker */
};

/* n (<= 57) bits at bit offset `bit` of the source, through in: -1 error, 0 end, 1 ok. */
static int get_bits(struct tm_cin *in, uint64_t bit, unsigned n, uint64_t *v,
		    struct tm_block_error *err)
{
	uint64_t byte = bit / 8;
	if (byte < tm_cin_pos(in))
		return tm_block_fail(err, TM_BLOCK_IO, EIO, "bzip2: splitter went back"), -1;
	int rc = tm_cin_skip(in, byte - tm_cin_pos(in), err);
	if (rc <= 0)
		return rc;
	ssize_t have = tm_cin_peek(in, 8, err);
	if (have < 0)
		return -1;
	uint64_t w = 0;
	for (int i = 0; i < 8; i++)
		w = w << 8 | (i < have ? in->buf[in->at + i] : 0);
	if ((uint64_t)have * 8 < bit % 8 + n)
		return 0;
	*v = (w >> (64 - bit % 8 - n)) & ((1ull << n) - 1);
	return 1;
}

/* The first block or end-of-stream magic at or after bit from: its bit offset in *at and
 * whether it ends the stream; 0 when the source ends first. */
static int find_magic(struct tm_cin *in, uint64_t from, uint64_t *at, bool *eos,
		      struct tm_block_error *err)
{
	uint64_t v;
	int rc = get_bits(in, from, 48, &v, err);
	if (rc <= 0)
		return rc;
	uint64_t reg = v, bit = from + 48; /* reg: the 48 bits before bit */
	for (;;) {
		if (reg == BLOCK_MAGIC || reg == EOS_MAGIC) {
			*at = bit - 48;
			*eos = reg == EOS_MAGIC;
			return 1;
		}
		/* A byte at a time where the buffer allows, then bit by bit. */
		if (bit % 8 == 0 && tm_cin_pos(in) <= bit / 8) {
			if ((rc = tm_cin_skip(in, bit / 8 - tm_cin_pos(in), err)) <= 0)
				return rc;
			ssize_t have = tm_cin_fill(in, err);
			if (have <= 0)
				return (int)have;
			const uint8_t *p = in->buf + in->at;
			for (ssize_t i = 0; i < have; i++) {
				uint64_t r = reg;
				for (int k = 7; k >= 0; k--) {
					r = (r << 1 | ((p[i] >> k) & 1)) & MASK48;
					if (r == BLOCK_MAGIC || r == EOS_MAGIC) {
						*at = bit + (uint64_t)i * 8 + (uint64_t)(8 - k) - 48;
						*eos = r == EOS_MAGIC;
						return 1;
					}
				}
				reg = r;
			}
			bit += (uint64_t)have * 8;
			in->at += (size_t)have;
			continue;
		}
		if ((rc = get_bits(in, bit, 1, &v, err)) <= 0)
			return rc;
		reg = (reg << 1 | v) & MASK48;
		bit++;
	}
}

/* The source ends inside a stream: what the blocks before gave is used (a block's output
 * comes only once it is whole, so in-order decoding would give nothing more). */
static void truncated(struct tm_decomp *d, struct tm_unit *u)
{
	tm_decomp_truncated(d, true, tm_decomp_csize(d));
	u->at = (struct tm_point){ .coff = tm_decomp_csize(d) };
}

/* Whether the one-block stream for the block at bit `at` with nbits bits decodes whole. */
static bool block_decodes(struct tm_decomp *d, uint64_t at, uint64_t nbits, unsigned level)
{
	struct tm_block_error err;
	size_t len;
	uint8_t *syn = nbits <= UINT32_MAX ? synth_block(d, at / 8, at % 8, (uint32_t)nbits, level,
							 &len, &err) : NULL;
	if (!syn)
		return false;
	bz_stream s = { 0 };
	int r = BZ2_bzDecompressInit(&s, 0, 0) == BZ_OK ? BZ_OK : BZ_MEM_ERROR;
	char *scratch = g_malloc(1u << 20);
	s.next_in = (char *)syn;
	s.avail_in = (unsigned)len;
	while (r == BZ_OK) {
		s.next_out = scratch;
		s.avail_out = 1u << 20;
		r = BZ2_bzDecompress(&s);
		if (r == BZ_OK && s.avail_in == 0 && s.avail_out > 0)
			r = BZ_DATA_ERROR; /* wants more than the block */
	}
	BZ2_bzDecompressEnd(&s);
	g_free(scratch);
	g_free(syn);
	return r == BZ_STREAM_END;
}

/* The source ends inside the end-of-stream marker after the block at bit at (cut within its
 * last bytes): where the block ends, found as the bit after which what is left is the start
 * of that marker, and checked by decoding the block. */
static bool cut_block_end(struct tm_decomp *d, uint64_t at, unsigned level, uint64_t *end)
{
	uint64_t csize = tm_decomp_csize(d), total = csize * 8;
	uint8_t tail[16] = { 0 };
	size_t n = csize < sizeof tail ? (size_t)csize : sizeof tail;
	struct tm_block_error err;
	if (total < at + 81 || tm_block_pread(tm_decomp_inner(d), tail + sizeof tail - n, n,
					      csize - n, &err) < 0)
		return false;
	uint64_t lo = total - 87 > at + 80 ? total - 87 : at + 80;
	for (uint64_t len = total - lo; len >= 8; len--) {
		uint64_t p = total - len, k = len < 48 ? len : 48, v = 0;
		for (uint64_t q = p; q < p + k; q++) {
			uint64_t i = q / 8 - (csize - sizeof tail);
			v = v << 1 | ((tail[i] >> (7 - q % 8)) & 1);
		}
		if (v == EOS_MAGIC >> (48 - k) && block_decodes(d, at, p - at, level)) {
			*end = p;
			return true;
		}
	}
	return false;
}

static int bz_next_unit(struct tm_decomp *d, struct tm_cin *in, struct tm_unit *u,
			struct tm_block_error *err)
{
	struct split *s = in->priv ? in->priv : (in->priv = g_new0(struct split, 1));
	if (s->cut) {
		truncated(d, u);
		return 0;
	}
	for (;;) {
		if (!s->in_stream) {
			uint64_t byte = (s->bit + 7) / 8, v;
			u->at = (struct tm_point){ .coff = byte };
			int rc = get_bits(in, byte * 8, 32, &v, err);
			if (rc < 0)
				return -1;
			if (rc == 0 || (v >> 8) != 0x425a68 || (v & 0xff) < '1' || (v & 0xff) > '9') {
				/* The end, or bytes after the last stream: nothing in order
				 * (a first stream that is not one is the in-order decoder's to
				 * report). */
				if (s->bit == 0)
					return 0;
				u->at.coff = tm_decomp_csize(d);
				if (byte < tm_decomp_csize(d) && (rc == 0 || v != 0))
					tm_decomp_diag(d, false, byte, "bzip2: %llu bytes of trailing "
						       "garbage ignored", (unsigned long long)
						       (tm_decomp_csize(d) - byte));
				return 0;
			}
			s->level = (v & 0xff) - '0';
			s->in_stream = true;
			s->combined = 0;
			s->stream_at = byte;
			s->bit = byte * 8 + 32;
		}
		uint64_t at, v;
		bool eos;
		int rc = find_magic(in, s->bit, &at, &eos, err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			truncated(d, u);
			return 0;
		}
		if (at != s->bit)
			return tm_decomp_corrupt(d, err, s->bit / 8, "no block where one belongs");
		if (eos) {
			if ((rc = get_bits(in, at + 48, 32, &v, err)) < 0)
				return -1;
			if (rc == 0) {
				truncated(d, u);
				return 0;
			}
			if ((uint32_t)v != s->combined)
				return tm_decomp_corrupt(d, err, at / 8, "stream CRC mismatch");
			s->bit = at + 80;
			s->in_stream = false;
			continue;
		}
		uint64_t end;
		if ((rc = get_bits(in, at + 48, 32, &v, err)) < 0 ||
		    (rc > 0 && (rc = find_magic(in, at + 80, &end, &eos, err)) < 0))
			return -1;
		if (rc == 0) { /* the last block has no end: cut inside what follows it? */
			if (!cut_block_end(d, at, s->level, &end)) {
				truncated(d, u);
				return 0;
			}
			s->cut = true; /* nothing follows the block */
		}
		if (end - at > UINT32_MAX)
			return tm_decomp_corrupt(d, err, at / 8, "block too long");
		s->combined = (s->combined << 1 | s->combined >> 31) ^ (uint32_t)v;
		u->at = (struct tm_point){ .coff = at / 8, .bits = (uint8_t)(at % 8),
					   .kind = AT_BLOCK, .flags = (uint16_t)s->level,
					   .extra = (uint32_t)(end - at) };
		u->clen = (at % 8 + (end - at) + 7) / 8;
		u->ulen = (uint64_t)s->level * 100000 * 51 + 4096; /* what RLE1 can expand to */
		u->exact = false;
		s->bit = end;
		return 1;
	}
}

static ssize_t bz_decode_unit(struct tm_decomp *d, const struct tm_unit *u, uint8_t *out,
			      struct tm_block_error *err)
{
	size_t len;
	uint8_t *syn = synth_block(d, u->at.coff, u->at.bits, u->at.extra, u->at.flags, &len,
				   err);
	if (!syn)
		return -1;
	bz_stream s = { 0 };
	ssize_t rc = -1;
	if (BZ2_bzDecompressInit(&s, 0, 0) != BZ_OK) {
		g_free(syn);
		return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, "libbz2: cannot start a decoder");
	}
	s.next_in = (char *)syn;
	s.avail_in = (unsigned)len;
	s.next_out = (char *)out;
	s.avail_out = (unsigned)u->ulen;
	int r = BZ2_bzDecompress(&s);
	if (r == BZ_STREAM_END)
		rc = (ssize_t)(u->ulen - s.avail_out);
	else
		tm_decomp_corrupt(d, err, u->at.coff, "block CRC mismatch or corrupt block");
	BZ2_bzDecompressEnd(&s);
	g_free(syn);
	return rc;
}

const struct tm_codec tm_codec_bzip2 = {
	.format = TM_DECOMP_BZIP2,
	.name = "bzip2",
	.mib_per_s = 45,
	.open = bz_open,
	.read = bz_read,
	.close = bz_close,
	.next_unit = bz_next_unit,
	.decode_unit = bz_decode_unit,
};
