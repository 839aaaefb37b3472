#!/bin/sh
# Build the libFuzzer targets into tests/fuzz/bin/ (or $OUT):
#
#   tests/fuzz/build.sh [TARGET...]       default: all nine
#
#   fuzz_header      tm_tar_header_decode, tm_tar_number, tm_tar_sparse_ext_decode
#   fuzz_pax         tm_pax_parse, tm_pax_parse_time
#   fuzz_sparse      tm_sparse_parse_list, tm_sparse_parse_v1, tm_sparse_validate
#   fuzz_archive     tm_index_build over an in-memory device, a walk of the whole tree with
#                    every file read through tm_kv_read, save/load round trip
#   fuzz_index_file  tm_index_load on crafted index files, then the same walk
#   fuzz_decomp      tm_decomp_new on a compressed stream (gzip, zstd, xz, bzip2, lz4):
#                    sequential and random reads, tm_decomp_finish, table round trip
#   fuzz_seek_table  tm_decomp_new with a mutated (and re-fingerprinted) seek table
#   fuzz_seek_copy   tm_copy_open and tm_copy_decode on raw, made and patched seekable copies
#   fuzz_tar_writer  tm_tar_encode_header and its size functions on decoded descriptions,
#                    read back by tm_tar_reader
#
# Environment: CC (default clang; needs -fsanitize=fuzzer, i.e. clang >= 6), OUT (default
# tests/fuzz/bin), EXTRA_CFLAGS, FUZZ_SRC (default: src/ of this tree; another copy of the
# sources, e.g. with a fix being tried; give it its own OUT).  The core sources are compiled
# directly with the sanitizers (not libtarmount.a, which is built without them).  Uses the
# configured tree's config.h when there is one, else tests/fuzz/include/config.h.
#
# Running: tests/fuzz/run.sh (see there), or by hand, e.g.
#   tests/fuzz/bin/fuzz_pax -dict=tests/fuzz/tar.dict SCRATCH tests/fuzz/corpus/fuzz_pax
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
CC=${CC:-clang}
OUT=${OUT:-$here/bin}
SRC=${FUZZ_SRC:-$top/src}
ALL="fuzz_header fuzz_pax fuzz_sparse fuzz_archive fuzz_index_file fuzz_decomp fuzz_seek_table"
ALL="$ALL fuzz_seek_copy fuzz_tar_writer"
targets=${*:-$ALL}

for t in $targets; do
	case " $ALL " in *" $t "*) ;; *) echo "build.sh: unknown target $t ($ALL)" >&2; exit 2 ;; esac
done
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "build.sh: $CC not found (the fuzzers need clang with libFuzzer)" >&2
	exit 1
fi
for p in glib-2.0 libnbd zlib libisal libzstd liblzma liblz4 libxxhash; do
	if ! pkg-config --exists "$p"; then
		echo "build.sh: pkg-config cannot find $p" >&2
		exit 1
	fi
done

if [ -f "$top/config.h" ]; then confdir=$top; else confdir=$here/include; fi
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE $SAN ${EXTRA_CFLAGS:-}"
PKGS="glib-2.0 libnbd zlib libisal libzstd liblzma liblz4 libxxhash"
CPPFLAGS="-I$confdir -I$SRC -I$here -I$top/tests/unit $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lbz2 -lpthread"
WARN="-Wall -Wextra -Wno-unused-function"

CORE="block block_mem block_file block_device block_window block_cache block_nbd
      tar_header tar_pax tar_sparse tar_reader tar_writer index index_build index_file index_check
      index_cache kv
      decomp decomp_gzip decomp_zstd decomp_xz decomp_bzip2 decomp_lz4 decomp_copy archive"

mkdir -p "$OUT/obj"
objs=
for c in $CORE; do
	o=$OUT/obj/$c.o
	if [ ! -f "$o" ] || [ "$SRC/$c.c" -nt "$o" ] || [ -n "$(find "$SRC" -name '*.h' -newer "$o")" ]; then
		echo "  CC       $SRC/$c.c"
		# shellcheck disable=SC2086
		$CC $CFLAGS -fsanitize=fuzzer-no-link $CPPFLAGS -c "$SRC/$c.c" -o "$o"
	fi
	objs="$objs $o"
done

for t in $targets; do
	echo "  CCLD     $OUT/$t"
	# shellcheck disable=SC2086
	$CC $CFLAGS -fsanitize=fuzzer $WARN $CPPFLAGS "$here/$t.c" $objs $LIBS -o "$OUT/$t"
done
