#include "config.h"

#include <inttypes.h>
#include <string.h>

#include <glib.h>

#include "tarkv_json.h"

static void sep(struct json *j)
{
	if (j->need_comma)
		fputc(',', j->out);
	j->need_comma = true;
}

void json_begin_object(struct json *j)
{
	sep(j);
	fputc('{', j->out);
	j->need_comma = false;
}

void json_end_object(struct json *j)
{
	fputc('}', j->out);
	j->need_comma = true;
}

void json_begin_array(struct json *j)
{
	sep(j);
	fputc('[', j->out);
	j->need_comma = false;
}

void json_end_array(struct json *j)
{
	fputc(']', j->out);
	j->need_comma = true;
}


static void escape_run(FILE *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\u%04x", c);
			else
				fputc(c, out);
		}
	}
}

static void write_string(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	const char *end = s + len;
	while (s < end) {
		const gchar *bad;
		if (g_utf8_validate_len(s, (gsize)(end - s), &bad)) {
			escape_run(out, s, (size_t)(end - s));
			break;
		}
		escape_run(out, s, (size_t)(bad - s));
		fprintf(out, "\\udc%02x", (unsigned char)*bad);
		s = bad + 1;
	}
	fputc('"', out);
}

void json_string_len(struct json *j, const char *s, size_t len)
{
	sep(j);
	write_string(j->out, s, len);
}

void json_key(struct json *j, const char *key)
{
	sep(j);
	write_string(j->out, key, strlen(key));
	fputc(':', j->out);
	j->need_comma = false;
}

void json_string(struct json *j, const char *s)
{
	json_string_len(j, s, strlen(s));
}

void json_int(struct json *j, int64_t v)
{
	sep(j);
	fprintf(j->out, "%" PRId64, v);
}

void json_uint(struct json *j, uint64_t v)
{
	sep(j);
	fprintf(j->out, "%" PRIu64, v);
}

void json_bool(struct json *j, bool v)
{
	sep(j);
	fputs(v ? "true" : "false", j->out);
}
