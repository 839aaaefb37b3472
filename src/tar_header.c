/* Decoding of 512-byte tar header blocks: ustar, old GNU, star and v7 layouts. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "tar.h"
#include "tar_layout.h"

static bool number_base256(const uint8_t *f, size_t len, int64_t *out)
{
	/* 0x80: positive, the remaining 7 bits and bytes big-endian.  0xff: negative, two's
	 * complement over the whole field. */
	bool neg = f[0] == 0xff;
	if (!neg && f[0] != 0x80)
		return false;
	uint64_t v = neg ? ~(uint64_t)0 : 0;
	size_t i = 1;
	/* Leading bytes beyond what 64 bits hold must only carry the sign. */
	for (; len - i > 8; i++)
		if (f[i] != (neg ? 0xff : 0x00))
			return false;
	for (; i < len; i++)
		v = (v << 8) | f[i];
	int64_t s = (int64_t)v;
	if (neg ? s >= 0 : s < 0)
		return false;
	*out = s;
	return true;
}

bool tm_tar_number(const uint8_t *f, size_t len, int64_t *out)
{
	if (len == 0)
		return false;
	if (f[0] & 0x80)
		return number_base256(f, len, out);
	size_t i = 0;
	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	uint64_t v = 0;
	size_t digits = 0;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
		if (v > (uint64_t)INT64_MAX >> 3)
			return false;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	/* After the digits only terminators may follow. */
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return false;
	(void)digits;
	*out = (int64_t)v;
	return true;
}

/* Copy a field that is NUL-terminated unless it fills its whole length. */
static void copy_str(char *dst, const uint8_t *src, size_t len)
{
	size_t n = strnlen((const char *)src, len);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Unsigned and signed sums of the whole block with the checksum field counted as spaces
 * (POSIX says unsigned; some old tars summed signed chars).  Plain loops the compiler
 * vectorises: this runs once per member. */
static void block_sums(const uint8_t *b, int64_t *usum, int64_t *ssum)
{
	uint32_t u = 0;
	int32_t sg = 0;
	for (size_t i = 0; i < TM_TAR_BLOCK; i++) {
		u += b[i];
		sg += (int8_t)b[i];
	}
	for (size_t i = F_CHKSUM; i < F_CHKSUM + L_CHKSUM; i++) {
		u -= b[i];
		sg -= (int8_t)b[i];
	}
	*usum = (int64_t)u + 8 * ' ';
	*ssum = (int64_t)sg + 8 * ' ';
}

static bool num(const uint8_t *b, size_t off, size_t len, int64_t *out, const char *what,
		char *err)
{
	if (tm_tar_number(b + off, len, out))
		return true;
	snprintf(err, TM_TAR_ERRLEN, "bad %s field in header", what);
	return false;
}

static bool decode_sparse(const uint8_t *b, int n, GArray *map, struct tm_tar_sparse_chunk *arr,
			  int *count, char *err)
{
	for (int i = 0; i < n; i++) {
		const uint8_t *e = b + i * 24;
		if (e[0] == '\0') /* an unused slot ends the list */
			break;
		int64_t off, len;
		if (!num(e, 0, 12, &off, "sparse offset", err) ||
		    !num(e, 12, 12, &len, "sparse length", err))
			return false;
		if (off < 0 || len < 0) {
			snprintf(err, TM_TAR_ERRLEN, "negative sparse offset or length");
			return false;
		}
		struct tm_tar_sparse_chunk c = { (uint64_t)off, (uint64_t)len };
		if (map)
			g_array_append_val(map, c);
		else
			arr[(*count)++] = c;
	}
	return true;
}

enum tm_tar_hdr_status tm_tar_header_decode(const uint8_t b[TM_TAR_BLOCK], struct tm_tar_header *h,
					    char err[TM_TAR_ERRLEN])
{
	int64_t usum, ssum, sum;
	block_sums(b, &usum, &ssum);
	memset(h, 0, sizeof *h);
	if (usum == 8 * ' ' && !memcmp(b + F_CHKSUM, "\0\0\0\0\0\0\0\0", L_CHKSUM))
		return TM_TAR_HDR_ZERO;
	if (!tm_tar_number(b + F_CHKSUM, L_CHKSUM, &sum) || (sum != usum && sum != ssum)) {
		snprintf(err, TM_TAR_ERRLEN, "bad header checksum");
		return TM_TAR_HDR_BAD_CHECKSUM;
	}
	if (!memcmp(b + F_MAGIC, "ustar\0", 6))
		h->format = memcmp(b + F_STAR_TAIL, "tar\0", 4) ? TM_TAR_USTAR : TM_TAR_STAR;
	else if (!memcmp(b + F_MAGIC, "ustar  \0", 8))
		h->format = TM_TAR_OLDGNU;
	else
		h->format = TM_TAR_V7;
	h->typeflag = (char)b[F_TYPE];

	if (!num(b, F_MODE, L_ID, &h->mode, "mode", err) ||
	    !num(b, F_UID, L_ID, &h->uid, "uid", err) ||
	    !num(b, F_GID, L_ID, &h->gid, "gid", err) ||
	    !num(b, F_SIZE, L_NUM12, &h->size, "size", err) ||
	    !num(b, F_MTIME, L_NUM12, &h->mtime, "mtime", err))
		return TM_TAR_HDR_BAD_FIELD;

	char name[L_NAME + 1];
	copy_str(name, b + F_NAME, L_NAME);
	copy_str(h->linkname, b + F_LINK, L_LINK);
	if (h->format == TM_TAR_V7) {
		strcpy(h->name, name);
		return TM_TAR_HDR_OK;
	}
	copy_str(h->uname, b + F_UNAME, L_OWNER);
	copy_str(h->gname, b + F_GNAME, L_OWNER);
	/* Device numbers matter only for device members; elsewhere tools leave junk there. */
	if (h->typeflag == '3' || h->typeflag == '4') {
		if (!num(b, F_DEVMAJOR, L_ID, &h->devmajor, "devmajor", err) ||
		    !num(b, F_DEVMINOR, L_ID, &h->devminor, "devminor", err))
			return TM_TAR_HDR_BAD_FIELD;
	}
	if (h->format == TM_TAR_OLDGNU) {
		strcpy(h->name, name);
		/* atime/ctime are informational: a bad one is ignored, not fatal. */
		if (!tm_tar_number(b + F_GNU_ATIME, L_NUM12, &h->atime))
			h->atime = 0;
		if (!tm_tar_number(b + F_GNU_CTIME, L_NUM12, &h->ctime))
			h->ctime = 0;
		if (h->typeflag == 'S') {
			if (!num(b, F_GNU_REALSIZE, L_NUM12, &h->realsize, "sparse real size", err) ||
			    !decode_sparse(b + F_GNU_SPARSE, GNU_SPARSE_IN_HEADER, NULL, h->sparse,
					   &h->nsparse, err))
				return TM_TAR_HDR_BAD_FIELD;
			h->isextended = b[F_GNU_EXTENDED] != 0;
		}
		return TM_TAR_HDR_OK;
	}
	char prefix[L_PREFIX + 1];
	copy_str(prefix, b + F_PREFIX, h->format == TM_TAR_STAR ? L_STAR_PREFIX : L_PREFIX);
	if (prefix[0])
		snprintf(h->name, sizeof h->name, "%s/%s", prefix, name);
	else
		strcpy(h->name, name);
	return TM_TAR_HDR_OK;
}

bool tm_tar_sparse_ext_decode(const uint8_t b[TM_TAR_BLOCK], GArray *map, bool *more,
			      char err[TM_TAR_ERRLEN])
{
	if (!decode_sparse(b, EXT_SPARSE, map, NULL, NULL, err))
		return false;
	*more = b[F_EXT_EXTENDED] != 0;
	return true;
}
