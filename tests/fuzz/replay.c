/* A main() for the fuzz targets without libFuzzer, so that the normal build (gcc, and the
 * sanitizer build in CI) replays their reproducers and seeds:
 *
 *   tests/fuzz/replay_TARGET FILE...
 *
 * Each file is handed to LLVMFuzzerTestOneInput once, as libFuzzer would replay it.  A
 * target's own check failing aborts; otherwise the exit status is 0, or 2 when a file
 * cannot be read. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	int status = 0;
	for (int i = 1; i < argc; i++) {
		gchar *data;
		gsize len;
		GError *e = NULL;
		if (!g_file_get_contents(argv[i], &data, &len, &e)) {
			fprintf(stderr, "replay: %s\n", e->message);
			g_error_free(e);
			status = 2;
			continue;
		}
		LLVMFuzzerTestOneInput((const uint8_t *)data, len);
		g_free(data);
	}
	return status;
}
