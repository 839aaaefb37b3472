/* libFuzzer target: the seekable copy's file (decomp_copy.c): tm_copy_open's checks of the
 * header and of zstd's seekable-format seek table, then tm_copy_decode of every frame.
 * Never a crash, an out-of-bounds access or a hang.
 *
 * Input: a control byte, then
 *   bit 0 clear (raw): the copy file itself.  tm_copy_open is given the fingerprint and the
 *     size that its header claims (bytes 16..31), so that the checks behind those are
 *     reached; every frame must then fail cleanly or give exactly the frame's size.
 *   bit 0 set (made): a length L (3 bytes, little-endian, at most 3 MiB) and seed bytes; the
 *     stream is the seed repeated to L bytes, written by tm_copy_writer at level 1 + (bits
 *     1-2), then changed by 4-byte patches taken from the rest of the input after the seed
 *     (its length: the byte after L) (u16 position mod the file's length, u8 op: set, xor,
 *     add, sub, u8 value).  Unpatched, the copy must open and every frame must give the
 *     stream's bytes; patched, open and decode must fail cleanly or succeed (a patch that
 *     keeps the file valid, or one in a checksum the decoder does not need).
 *
 * Checks that can be switched off (FUZZ_SKIP_CHECKS, see fuzz_common.h):
 *   copy-roundtrip  an unpatched copy is refused, or a frame fails or gives other bytes */
#include "config.h"

#include <sys/mman.h>

#include "fuzz_common.h"

#include "decomp_codec.h"

#define MAX_STREAM (3u << 20)

/* Open data[0..len) as a copy of a stream of size bytes, and decode every frame; when want
 * is not NULL each frame must equal it (the stream) and nothing may fail. */
static void open_and_read(const uint8_t *data, size_t len, uint64_t fingerprint, uint64_t size,
			  const uint8_t *want)
{
	char why[200];
	struct tm_block *file = tm_block_mem_new(data, len, 512);
	struct tm_copy *c = tm_copy_open(file, fingerprint, size, why, sizeof why);
	if (!c) {
		FZ_CHECK(!want || fz_skipped("copy-roundtrip"), "own copy refused: %s", why);
		FZ_CHECK(why[0], "refused without a reason");
		return;
	}
	uint8_t *frame = g_malloc(TM_COPY_FRAME);
	uint64_t nframes = (size + TM_COPY_FRAME - 1) / TM_COPY_FRAME;
	for (uint64_t f = 0; f <= nframes; f++) {
		struct tm_block_error err = { .code = TM_BLOCK_OK };
		ssize_t n = tm_copy_decode(c, f, frame, &err);
		uint64_t expect = f < nframes ? MIN((uint64_t)TM_COPY_FRAME, size - f * TM_COPY_FRAME)
					      : 0;
		if (f == nframes) {
			FZ_CHECK(n < 0, "frame %llu past the end decoded", (unsigned long long)f);
			break;
		}
		if (n < 0) {
			FZ_CHECK(err.code != TM_BLOCK_OK, "failed without an error");
			FZ_CHECK(!want || fz_skipped("copy-roundtrip"),
				 "frame %llu of our own copy failed", (unsigned long long)f);
			continue;
		}
		FZ_CHECK((uint64_t)n == expect, "frame %llu: %zd bytes, want %llu",
			 (unsigned long long)f, n, (unsigned long long)expect);
		if (want)
			FZ_CHECK(!memcmp(frame, want + f * TM_COPY_FRAME, (size_t)n) ||
					 fz_skipped("copy-roundtrip"),
				 "frame %llu differs", (unsigned long long)f);
	}
	g_free(frame);
	tm_copy_close(c);
}

static void patch(uint8_t *t, size_t len, const uint8_t *p, size_t n)
{
	for (size_t i = 0; len && i + 4 <= n; i += 4) {
		size_t pos = (size_t)(p[i] | p[i + 1] << 8) % len;
		uint8_t op = p[i + 2] % 4, v = p[i + 3];
		t[pos] = op == 0 ? v : op == 1 ? t[pos] ^ v : op == 2 ? t[pos] + v : t[pos] - v;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t ctl = data[0];
	data++, size--;
	if (!(ctl & 1)) {
		if (size >= 32)
			open_and_read(data, size, fz_le64(data + 16), fz_le64(data + 24), NULL);
		return 0;
	}
	if (size < 5)
		return 0;
	size_t slen = (size_t)(data[0] | data[1] << 8 | data[2] << 16) % (MAX_STREAM + 1);
	size_t seed_len = MIN((size_t)data[3], size - 4);
	const uint8_t *seed = data + 4, *patches = seed + seed_len;
	size_t npatch = size - 4 - seed_len;
	if (slen == 0 || seed_len == 0)
		return 0;
	uint8_t *stream = g_malloc(slen);
	for (size_t i = 0; i < slen; i++)
		stream[i] = seed[i % seed_len];
	int fd = memfd_create("copy", MFD_CLOEXEC);
	FZ_CHECK(fd >= 0, "memfd_create: %s", strerror(errno));
	uint64_t fingerprint = 0x1234567890abcdefull ^ slen;
	struct tm_block_error err;
	struct tm_copy_writer *w = tm_copy_writer_new(fd, fingerprint, slen, 1 + ((ctl >> 1) & 3),
						      &err);
	FZ_CHECK(w, "tm_copy_writer_new failed");
	bool ok = true;
	for (size_t at = 0; ok && at < slen; at += TM_COPY_FRAME)
		ok = tm_copy_writer_add(w, stream + at, MIN((size_t)TM_COPY_FRAME, slen - at), &err);
	FZ_CHECK(ok && tm_copy_writer_finish(w, &err), "writing the copy failed");
	off_t len = lseek(fd, 0, SEEK_END);
	FZ_CHECK(len > 0, "empty copy");
	uint8_t *file = g_malloc((size_t)len);
	FZ_CHECK(pread(fd, file, (size_t)len, 0) == len, "reading the copy back");
	close(fd);
	patch(file, (size_t)len, patches, npatch);
	open_and_read(file, (size_t)len, fingerprint, slen, npatch >= 4 ? NULL : stream);
	g_free(file);
	g_free(stream);
	return 0;
}
