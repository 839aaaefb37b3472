/* A minimal streaming JSON writer for tarkv's --json output. */
#ifndef TARKV_JSON_H
#define TARKV_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json {
	FILE *out;
	bool need_comma; /* a value was written at this level */
};

void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);
/* Write an object key; the next value call writes its value. */
void json_key(struct json *j, const char *key);
/* A string of raw bytes: valid UTF-8 passes through; every byte that is not part of valid
 * UTF-8 is written as \udcXX (Python's surrogateescape), so no name is lost. */
void json_string_len(struct json *j, const char *s, size_t len);
void json_string(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);

#endif
