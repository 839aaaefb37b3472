/* Where the fields of a 512-byte tar header block sit (POSIX ustar; old GNU and star reuse
 * the prefix area).  Private to tar_*.c: the decoder and the writer share it. */
#ifndef TM_TAR_LAYOUT_H
#define TM_TAR_LAYOUT_H

enum {
	F_NAME = 0, L_NAME = 100,
	F_MODE = 100, F_UID = 108, F_GID = 116, L_ID = 8,
	F_SIZE = 124, F_MTIME = 136, L_NUM12 = 12,
	F_CHKSUM = 148, L_CHKSUM = 8,
	F_TYPE = 156,
	F_LINK = 157, L_LINK = 100,
	F_MAGIC = 257, F_VERSION = 263,
	F_UNAME = 265, F_GNAME = 297, L_OWNER = 32,
	F_DEVMAJOR = 329, F_DEVMINOR = 337,
	F_PREFIX = 345, L_PREFIX = 155, L_STAR_PREFIX = 131,
	F_GNU_ATIME = 345, F_GNU_CTIME = 357,
	F_GNU_SPARSE = 386, GNU_SPARSE_IN_HEADER = 4,
	F_GNU_EXTENDED = 482, F_GNU_REALSIZE = 483,
	F_STAR_TAIL = 508,
	EXT_SPARSE = 21, F_EXT_EXTENDED = 504,
};

#endif
