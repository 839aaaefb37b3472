/* blockio: raw reads and writes through the block layer, for the integration tests
 * (tests/integration/block_write.sh), which compare its results with the kernel's (dd, cmp).
 *
 *   blockio [OPTIONS] pwrite SOURCE OFF FILE   write FILE's bytes at byte OFF (FILE "-":
 *                                              standard input), then flush
 *   blockio [OPTIONS] pread SOURCE OFF LEN     LEN bytes at byte OFF to standard output
 *   blockio [OPTIONS] info SOURCE              read_write, growable, no_flush, sector_size,
 *                                              size, one "key=value" a line
 *   blockio [OPTIONS] lock SOURCE SECONDS      take the writer lock, print "locked", hold it
 *                                              SECONDS (or until standard input closes)
 *
 * Options as tarkv's: --offset, --size, --partition, --direct, --cache, --no-cache,
 * --timeout; and --read-only (open without read_write: pwrite, lock), --read-write (open
 * with it: info, pread), --lock (take the writer lock,
 * without waiting, before writing), --wait (waiting), --flushes N (flush N times after the
 * write; default 1), --compressed (read the source through the decompressor it needs).
 *
 * Exit status: 0 done, 1 the block layer failed (one line on stderr: "blockio: SOURCE:
 * message [code NAME]"), 2 bad usage. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

#include "block.h"
#include "decomp.h"

static const char *code_name(enum tm_block_code c)
{
	switch (c) {
	case TM_BLOCK_OK: return "OK";
	case TM_BLOCK_IO: return "IO";
	case TM_BLOCK_READ_ONLY: return "READ_ONLY";
	case TM_BLOCK_OUT_OF_RANGE: return "OUT_OF_RANGE";
	case TM_BLOCK_UNALIGNED: return "UNALIGNED";
	case TM_BLOCK_DISCONNECTED: return "DISCONNECTED";
	case TM_BLOCK_OPEN: return "OPEN";
	case TM_BLOCK_INVALID: return "INVALID";
	case TM_BLOCK_NO_SPACE: return "NO_SPACE";
	case TM_BLOCK_LOCKED: return "LOCKED";
	case TM_BLOCK_NOT_SUPPORTED: return "NOT_SUPPORTED";
	}
	return "?";
}

static const char *source;

static int fail(const struct tm_block_error *err)
{
	char buf[400];
	fprintf(stderr, "blockio: %s: %s [code %s]\n", source, tm_block_strerror(err, buf, sizeof buf),
		code_name(err->code));
	return 1;
}

static bool parse_u64(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return false;
	*v = x;
	return true;
}

int main(int argc, char **argv)
{
	gboolean direct = FALSE, cache = FALSE, no_cache = FALSE, read_only = FALSE;
	gboolean read_write = FALSE;
	gboolean lock = FALSE, wait = FALSE, compressed = FALSE;
	gint partition = 0, timeout = 0, flushes = 1;
	gint64 offset = 0, size = 0;
	GOptionEntry entries[] = {
		{ "direct", 0, 0, G_OPTION_ARG_NONE, &direct, "O_DIRECT", NULL },
		{ "partition", 0, 0, G_OPTION_ARG_INT, &partition, "partition N", "N" },
		{ "offset", 0, 0, G_OPTION_ARG_INT64, &offset, "window start", "BYTES" },
		{ "size", 0, 0, G_OPTION_ARG_INT64, &size, "window size", "BYTES" },
		{ "cache", 0, 0, G_OPTION_ARG_NONE, &cache, "cache", NULL },
		{ "no-cache", 0, 0, G_OPTION_ARG_NONE, &no_cache, "no cache", NULL },
		{ "timeout", 0, 0, G_OPTION_ARG_INT, &timeout, "NBD timeout", "SECONDS" },
		{ "read-only", 0, 0, G_OPTION_ARG_NONE, &read_only, "open read-only", NULL },
		{ "read-write", 0, 0, G_OPTION_ARG_NONE, &read_write, "open read_write (info, pread)",
		  NULL },
		{ "lock", 0, 0, G_OPTION_ARG_NONE, &lock, "take the writer lock first", NULL },
		{ "wait", 0, 0, G_OPTION_ARG_NONE, &wait, "wait for the writer lock", NULL },
		{ "flushes", 0, 0, G_OPTION_ARG_INT, &flushes, "flushes after the write", "N" },
		{ "compressed", 0, 0, G_OPTION_ARG_NONE, &compressed, "decompress", NULL },
		{ NULL, 0, 0, 0, NULL, NULL, NULL },
	};
	GOptionContext *ctx = g_option_context_new("pwrite|pread|info|lock SOURCE ...");
	g_option_context_add_main_entries(ctx, entries, NULL);
	GError *gerr = NULL;
	if (!g_option_context_parse(ctx, &argc, &argv, &gerr)) {
		fprintf(stderr, "blockio: %s\n", gerr->message);
		return 2;
	}
	g_option_context_free(ctx);
	if (argc < 3 || partition < 0 || offset < 0 || size < 0 || timeout < 0 || flushes < 0) {
		fprintf(stderr, "blockio: usage: blockio [OPTIONS] pwrite|pread|info|lock SOURCE ...\n");
		return 2;
	}
	const char *cmd = argv[1];
	source = argv[2];
	bool writing = !strcmp(cmd, "pwrite") || !strcmp(cmd, "lock") || read_write;
	struct tm_block_options opts = {
		.read_write = writing && !read_only,
		.direct = direct,
		.partition = (unsigned)partition,
		.offset = (uint64_t)offset,
		.size = (uint64_t)size,
		.cache = no_cache ? 0 : cache ? 1 : -1,
		.timeout = (unsigned)timeout,
	};
	struct tm_block_error err = { 0 };
	struct tm_block *b = tm_block_open(source, &opts, &err);
	if (!b)
		return fail(&err);
	int rc = 0;
	if (compressed) {
		enum tm_decomp_format f = tm_decomp_detect_block(b, &err);
		if (f == TM_DECOMP_NONE) {
			fprintf(stderr, "blockio: %s: not compressed\n", source);
			tm_block_disconnect(b);
			return 2;
		}
		struct tm_block *d = tm_decomp_new(b, f, NULL, NULL, 0, &err);
		if (!d) {
			tm_block_disconnect(b);
			return fail(&err);
		}
		b = d;
	}
	uint64_t off = 0, len = 0;
	if (!strcmp(cmd, "info") && argc == 3) {
		struct tm_block_info info;
		tm_block_get_info(b, &info);
		printf("read_write=%d\ngrowable=%d\nno_flush=%d\nsector_size=%u\nsize=%llu\n",
		       info.read_write, info.growable, info.no_flush, info.sector_size,
		       (unsigned long long)tm_block_size_bytes(b));
	} else if (!strcmp(cmd, "pread") && argc == 5 && parse_u64(argv[3], &off) &&
		   parse_u64(argv[4], &len)) {
		uint8_t *buf = g_malloc(len ? len : 1);
		if (tm_block_pread(b, buf, len, off, &err) < 0)
			rc = fail(&err);
		else if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
			rc = 1, fprintf(stderr, "blockio: writing standard output: %s\n",
					strerror(errno));
		g_free(buf);
	} else if (!strcmp(cmd, "pwrite") && argc == 5 && parse_u64(argv[3], &off)) {
		gchar *data = NULL;
		gsize n = 0;
		if (!strcmp(argv[4], "-")) {
			GByteArray *a = g_byte_array_new();
			uint8_t chunk[65536];
			size_t k;
			while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0)
				g_byte_array_append(a, chunk, (guint)k);
			n = a->len;
			data = (gchar *)g_byte_array_free(a, FALSE);
		} else if (!g_file_get_contents(argv[4], &data, &n, &gerr)) {
			fprintf(stderr, "blockio: %s\n", gerr->message);
			tm_block_disconnect(b);
			return 2;
		}
		if (lock && tm_block_lock_writer(b, wait, &err) < 0)
			rc = fail(&err);
		if (rc == 0 && tm_block_pwrite(b, data, n, off, &err) < 0)
			rc = fail(&err);
		bool flush_failed = false;
		for (int i = 0; rc == 0 && i < flushes; i++)
			if (tm_block_flush(b, &err) < 0)
				rc = fail(&err), flush_failed = true;
		/* another flush after a failed one: it must fail too (sticky) */
		if (flush_failed && flushes > 1 && tm_block_flush(b, &err) == 0) {
			fprintf(stderr, "blockio: %s: a flush after a failed one succeeded\n", source);
			rc = 3;
		}
		g_free(data);
	} else if (!strcmp(cmd, "lock") && argc == 4 && parse_u64(argv[3], &len)) {
		if (tm_block_lock_writer(b, wait, &err) < 0) {
			rc = fail(&err);
		} else {
			printf("locked\n");
			fflush(stdout);
			struct pollfd p = { .fd = 0, .events = POLLIN };
			char c;
			/* until the time is up or standard input closes */
			while (poll(&p, 1, (int)len * 1000) > 0 && read(0, &c, 1) > 0)
				;
			tm_block_unlock_writer(b);
		}
	} else {
		fprintf(stderr, "blockio: usage: blockio [OPTIONS] pwrite SOURCE OFF FILE | pread "
				"SOURCE OFF LEN | info SOURCE | lock SOURCE SECONDS\n");
		rc = 2;
	}
	tm_block_disconnect(b);
	return rc;
}
