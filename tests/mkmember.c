/* mkmember: write a whole tar archive with the tar writer (tar_writer.c), for the integration
 * test tests/integration/tar_writer.sh.
 *
 *   tests/mkmember OUT.tar < DESCRIPTIONS
 *
 * One member per input line, as space-separated KEY=VALUE fields (strings hex-encoded, so
 * that any byte can be given; numbers decimal, mode octal):
 *   type=reg|hardlink|symlink|chr|blk|dir|fifo  path=HEX  link=HEX  mode=OCTAL  uid=N  gid=N
 *   uname=HEX  gname=HEX  mtime=SEC:NSEC  atime=SEC:NSEC  ctime=SEC:NSEC  size=N  major=N
 *   minor=N  xattr=HEXNAME:HEXVALUE (repeatable)  data=file:HEXPATH|zero
 * data=file copies a file of exactly size bytes; data=zero (or no data, for size 0) seeks
 * over size bytes, leaving a hole, so that an 8 GiB member takes no disk.  Each member is
 * its header blocks, its data and its padding; the end-of-archive marker follows the last.
 *
 * Exit status 0, or 1 with "mkmember: line N: MESSAGE" when a line is malformed, the writer
 * refuses a description, or an I/O fails. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tar.h"

static unsigned line_no;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "mkmember: line %u: ", line_no);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Decode hex into a new NUL-terminated buffer (kept in keep); *len gets its length. */
static char *unhex(const char *s, size_t *len, GPtrArray *keep)
{
	size_t n = strlen(s);
	if (n % 2)
		die("odd hex string '%s'", s);
	char *out = g_malloc(n / 2 + 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = g_ascii_xdigit_value(s[2 * i]), lo = g_ascii_xdigit_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			die("bad hex string '%s'", s);
		out[i] = (char)(hi << 4 | lo);
	}
	out[n / 2] = '\0';
	if (len)
		*len = n / 2;
	g_ptr_array_add(keep, out);
	return out;
}

static int64_t number(const char *s, int base)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, base);
	if (errno || end == s || *end)
		die("bad number '%s'", s);
	return v;
}

static struct tm_pax_time timeval(const char *s)
{
	char *colon = strchr(s, ':');
	if (!colon)
		die("bad time '%s' (SEC:NSEC)", s);
	*colon = '\0';
	struct tm_pax_time t = { number(s, 10), (uint32_t)number(colon + 1, 10) };
	return t;
}

static enum tm_tar_type type_of(const char *s)
{
	static const char *names[] = { [TM_TAR_REG] = "reg", [TM_TAR_HARDLINK] = "hardlink",
				       [TM_TAR_SYMLINK] = "symlink", [TM_TAR_CHR] = "chr",
				       [TM_TAR_BLK] = "blk", [TM_TAR_DIR] = "dir",
				       [TM_TAR_FIFO] = "fifo" };
	for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
		if (!strcmp(s, names[i]))
			return (enum tm_tar_type)i;
	die("unknown type '%s'", s);
}

static void put(FILE *out, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, out) != n)
		die("write: %s", strerror(errno));
}

static void copy_data(FILE *out, const char *path, uint64_t size)
{
	FILE *in = fopen(path, "rb");
	if (!in)
		die("%s: %s", path, strerror(errno));
	char buf[65536];
	uint64_t done = 0;
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
		put(out, buf, n);
		done += n;
	}
	if (ferror(in) || done != size)
		die("%s: %llu bytes, the member says %llu", path, (unsigned long long)done,
		    (unsigned long long)size);
	fclose(in);
}

/* One line: parse, encode, write. */
static void member(FILE *out, char *line)
{
	struct tm_tar_desc d = { .type = TM_TAR_REG };
	GPtrArray *keep = g_ptr_array_new_with_free_func(g_free);
	GArray *xattrs = g_array_new(FALSE, FALSE, sizeof(struct tm_tar_wxattr));
	const char *data = NULL;
	char *save;
	for (char *f = strtok_r(line, " \n", &save); f; f = strtok_r(NULL, " \n", &save)) {
		char *v = strchr(f, '=');
		if (!v)
			die("field '%s' without '='", f);
		*v++ = '\0';
		if (!strcmp(f, "type"))
			d.type = type_of(v);
		else if (!strcmp(f, "path"))
			d.path = unhex(v, &d.path_len, keep);
		else if (!strcmp(f, "link"))
			d.linkpath = unhex(v, &d.linkpath_len, keep);
		else if (!strcmp(f, "mode"))
			d.mode = (uint32_t)number(v, 8);
		else if (!strcmp(f, "uid"))
			d.uid = number(v, 10);
		else if (!strcmp(f, "gid"))
			d.gid = number(v, 10);
		else if (!strcmp(f, "uname"))
			d.uname = unhex(v, NULL, keep);
		else if (!strcmp(f, "gname"))
			d.gname = unhex(v, NULL, keep);
		else if (!strcmp(f, "mtime"))
			d.mtime = timeval(v);
		else if (!strcmp(f, "atime"))
			d.atime = timeval(v), d.has_atime = true;
		else if (!strcmp(f, "ctime"))
			d.ctime = timeval(v), d.has_ctime = true;
		else if (!strcmp(f, "size"))
			d.size = number(v, 10);
		else if (!strcmp(f, "major"))
			d.devmajor = (uint32_t)number(v, 10);
		else if (!strcmp(f, "minor"))
			d.devminor = (uint32_t)number(v, 10);
		else if (!strcmp(f, "xattr")) {
			char *colon = strchr(v, ':');
			if (!colon)
				die("bad xattr '%s' (HEXNAME:HEXVALUE)", v);
			*colon = '\0';
			struct tm_tar_wxattr x;
			x.name = unhex(v, NULL, keep);
			x.value = unhex(colon + 1, &x.len, keep);
			g_array_append_val(xattrs, x);
		} else if (!strcmp(f, "data"))
			data = v;
		else
			die("unknown field '%s'", f);
	}
	d.xattrs = (const struct tm_tar_wxattr *)xattrs->data;
	d.nxattrs = xattrs->len;

	char err[TM_TAR_ERRLEN];
	size_t n = tm_tar_member_header_size(&d, err);
	if (!n)
		die("%s", err);
	uint8_t *hdr = g_malloc(n);
	if (tm_tar_encode_header(&d, hdr, n, err) != n)
		die("%s", err);
	put(out, hdr, n);
	g_free(hdr);
	uint64_t size = (uint64_t)d.size;
	if (data && !strncmp(data, "file:", 5)) {
		copy_data(out, unhex(data + 5, NULL, keep), size);
	} else if (!data || !strcmp(data, "zero")) {
		if (size && fseeko(out, (off_t)size, SEEK_CUR) != 0)
			die("seek: %s", strerror(errno));
	} else {
		die("bad data '%s'", data);
	}
	static const uint8_t zeros[TM_TAR_BLOCK];
	put(out, zeros, (size_t)tm_tar_padding(size));
	g_array_free(xattrs, TRUE);
	g_ptr_array_free(keep, TRUE);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: mkmember OUT.tar < DESCRIPTIONS\n");
		return 2;
	}
	FILE *out = fopen(argv[1], "wb");
	if (!out) {
		fprintf(stderr, "mkmember: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	while (getline(&line, &cap, stdin) > 0) {
		line_no++;
		if (line[0] != '\n' && line[0] != '#')
			member(out, line);
	}
	free(line);
	uint8_t end[TM_TAR_END_SIZE];
	tm_tar_encode_end(end);
	put(out, end, sizeof end);
	if (fclose(out) != 0)
		die("close: %s", strerror(errno));
	return 0;
}
