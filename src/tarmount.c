/* tarmount: mount a tar archive read-only with FUSE.
 *
 *   tarmount [OPTIONS] SOURCE MOUNTPOINT
 *
 * The archive is indexed before the mount is made, so every error about the source is
 * printed (and the exit status non-zero) with nothing mounted; once the command returns the
 * mount answers. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "fuse_fill.h"
#include "fuse_ops.h"
#include "fuse_rw.h"
#include "fuse_spin.h"

struct options {
	char *source;
	struct tm_block_options src;
	int cache, nocache;
	char *index_path;
	char *index_cache_max;
	int noindex;
	int no_copy;    /* -o noseekable_copy */
	int nofill;     /* -o nofill */
	int rw;         /* -o readwrite */
	int ro;         /* -o ro given */
	double commit;  /* -o commit=SECONDS */
	int nosync;     /* -o nosync */
	int64_t uid, gid;
	int umask;
	int quiet;
	int others_see; /* allow_other or allow_root given */
	int default_permissions; /* given by the user */
	int ignore_permissions; /* the opt-out: no mode checks even when others see */
	int readahead; /* KiB; INT_MIN: not given; negative: a default, not asked for */
	unsigned spin; /* -o spin=MICROSECONDS */
	char *compression_name;
	enum tm_decomp_format compression;
	int show_help, show_version;
	int nonopt; /* positional arguments seen */
};

/* Options of libfuse's that we need to know about but leave on the line for libfuse. */
enum { KEY_OTHERS_SEE, KEY_DEFAULT_PERMISSIONS, KEY_RW, KEY_RO };

#define OPT(t, p, v) { t, offsetof(struct options, p), v }
static const struct fuse_opt option_spec[] = {
	FUSE_OPT_KEY("allow_other", KEY_OTHERS_SEE),
	FUSE_OPT_KEY("allow_root", KEY_OTHERS_SEE),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	/* Not "rw": mount(8) passes rw to every mount it makes, asked for or not. */
	FUSE_OPT_KEY("readwrite", KEY_RW),
	FUSE_OPT_KEY("ro", KEY_RO),
	OPT("commit=%lf", commit, 0),
	OPT("nosync", nosync, 1),
	OPT("ignore_permissions", ignore_permissions, 1),
	OPT("uid=%" SCNd64, uid, 0),
	OPT("gid=%" SCNd64, gid, 0),
	OPT("umask=%o", umask, 0),
	OPT("quiet", quiet, 1),
	OPT("direct", src.direct, 1),
	OPT("partition=%u", src.partition, 0),
	OPT("offset=%" SCNu64, src.offset, 0),
	OPT("size=%" SCNu64, src.size, 0),
	OPT("cache", cache, 1),
	OPT("nocache", nocache, 1),
	OPT("cache_size=%" SCNu64, src.cache_size, 0),
	OPT("timeout=%u", src.timeout, 0),
	OPT("index=%s", index_path, 0),
	OPT("index_cache_max=%s", index_cache_max, 0),
	OPT("compression=%s", compression_name, 0),
	OPT("noindex", noindex, 1),
	OPT("noseekable_copy", no_copy, 1),
	OPT("nofill", nofill, 1),
	OPT("readahead=%d", readahead, 0),
	OPT("spin=%u", spin, 0),
	OPT("-h", show_help, 1),
	OPT("--help", show_help, 1),
	OPT("-V", show_version, 1),
	OPT("--version", show_version, 1),
	FUSE_OPT_END
};

static bool daemonized;
static const char *source_for_log = "tarmount";

/* One line whatever the names in it hold: control bytes are shown as '?'. */
static void vlog(int prio, const char *fmt, va_list ap)
{
	char *msg = g_strdup_vprintf(fmt, ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (daemonized)
		syslog(prio, "%s", msg);
	else
		fprintf(stderr, "tarmount: %s\n", msg);
	g_free(msg);
}

static void log_at(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_at(int prio, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(prio, fmt, ap);
	va_end(ap);
}

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}

/* A loaded index found damaged by a reader: said once; the file goes, so that the next
 * mount rebuilds it; the mount stays up, and what needs the damaged parts fails with EIO. */
static void index_damaged(void *ud, const char *why)
{
	const struct tm_archive *a = ud;
	bool gone = a->index_fd >= 0 && tm_index_cache_drop(a->index_path, a->index_fd);
	log_error("%s: index %s damaged (%s); %s; reads that need it fail with EIO", source_for_log,
		  a->index_path, why, gone ? "removed: the next mount rebuilds it"
					   : "remove it or mount with -o noindex");
}

static void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_warning(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}


/* Make the seekable copy while the mount serves (at a low priority: a reader's requests come
 * first), and use it from then on. */
static void build_copy(struct tm_archive *a)
{
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct tm_decomp_copy_report r;
	struct tm_block_error err;
	char msg[300];
	if (!tm_archive_build_copy(a, &r, &err)) {
		if (err.sys_errno != ECANCELED)
			log_warning("%s: no seekable copy made: %s", a->copy_path,
				    tm_block_strerror(&err, msg, sizeof msg));
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_at(LOG_INFO, "%s: seekable copy made (%" PRIu64 " MiB in %.1f s): reads decode at "
			 "most 1 MiB from now on", a->copy_path, r.bytes >> 20,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

struct background {
	struct tm_archive *archive;
	bool save, copy;
};

/* What follows the mount: save the index built for it, then make the seekable copy (in
 * that order: the copy goes beside the index, in the directory the save makes). */
static gpointer background(gpointer data)
{
	const struct background *bg = data;
	char why[300];
	if (bg->save && !tm_archive_save(bg->archive, why, sizeof why))
		log_warning("index not saved: %s", why);
	if (bg->copy)
		build_copy(bg->archive);
	return NULL;
}

/* A seekable copy that fails while mounted. */
static void copy_diag(void *ud, bool error, uint64_t off, const char *msg)
{
	(void)ud, (void)error, (void)off;
	log_error("%s", msg);
}

static void index_diag(void *ud, enum tm_tar_diag_level lvl, uint64_t off, const char *path,
		       const char *msg)
{
	const struct options *o = ud;
	if (lvl == TM_TAR_WARNING && o->quiet)
		return;
	log_at(lvl == TM_TAR_WARNING ? LOG_WARNING : LOG_ERR, "%s: %s%s%s%s (at byte %" PRIu64 ")",
	       source_for_log, lvl == TM_TAR_WARNING ? "warning: " : "", path ? path : "",
	       path ? ": " : "", msg, off);
}

struct progress {
	bool enabled, shown;
	struct timespec start;
};

static void progress(void *ud, uint64_t done, uint64_t total, uint64_t members)
{
	struct progress *p = ud;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double dt = (double)(now.tv_sec - p->start.tv_sec) +
		    (double)(now.tv_nsec - p->start.tv_nsec) / 1e9;
	if (dt < 1.0)
		return;
	fprintf(stderr, "\rtarmount: indexing %s: %" PRIu64 " entries, %" PRIu64 " of %" PRIu64
		" MiB", source_for_log, members, done >> 20, total >> 20);
	p->shown = true;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	(void)outargs;
	if (key == KEY_OTHERS_SEE)
		o->others_see = 1;
	if (key == KEY_DEFAULT_PERMISSIONS)
		o->default_permissions = 1;
	if (key == KEY_RW) {
		o->rw = 1;
		return 0; /* the mount is made rw by leaving out ro */
	}
	if (key == KEY_RO)
		o->ro = 1;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1; /* libfuse's */
	if (o->nonopt++ == 0) {
		o->source = strdup(arg);
		return 0; /* ours; the next one is the mountpoint, for libfuse */
	}
	return 1;
}

static void usage(const char *prog)
{
	printf("usage: %s [OPTIONS] SOURCE MOUNTPOINT\n\n"
	       "Mount the tar archive SOURCE on MOUNTPOINT, read-only unless -o readwrite.\n\n"
	       "tarmount options:\n"
	       "    -o readwrite           changes are appended to the archive (a plain tar\n"
	       "                           on a file, device or NBD export); -o rw alone, which\n"
	       "                           mount(8) passes to every mount, leaves it read-only\n"
	       "    -o commit=SECONDS      -o readwrite: append changes this long after them (1)\n"
	       "    -o nosync              -o readwrite: do not flush appends to the disk (safe\n"
	       "                           against a killed daemon, not a power loss)\n"
	       "    -o uid=N               owner of every file\n"
	       "    -o gid=N               group of every file\n"
	       "    -o umask=M             clear these permission bits (octal)\n"
	       "    -o quiet               no warnings or progress\n"
	       "    -o direct              read a block device with O_DIRECT\n"
	       "    -o partition=N         partition N of the source's MBR or GPT table\n"
	       "    -o offset=BYTES        the archive starts at this byte of the source\n"
	       "    -o size=BYTES          and is this long (default: to the end)\n"
	       "    -o cache, -o nocache   cache reads or not (default: on for NBD, direct)\n"
	       "    -o cache_size=BYTES    size of that cache (default 64 MiB)\n"
	       "    -o timeout=SECONDS     NBD: fail a stalled request after this long (30)\n"
	       "    -o index=PATH          where to keep the index (default ~/.cache/tarmount)\n"
	       "    -o noindex             neither read nor write an index file\n"
	       "    -o noseekable_copy     do not make a seekable copy of a compressed stream\n"
	       "                           that seeks badly (one zstd frame, one xz block)\n"
	       "    -o nofill              do not fill the kernel's cache with a directory's\n"
	       "                           small files when one of them is first read\n"
	       "    -o index_cache_max=SIZE  cap on ~/.cache/tarmount, pruned when an index\n"
	       "                           is saved there: K, M, G suffixes; 0: no cap (default\n"
	       "                           $" TM_INDEX_CACHE_ENV " or 1G, at most 1/10 of the disk)\n"
	       "    -o compression=FORMAT  auto (default: from the magic bytes), none, gzip,\n"
	       "                           zstd, xz, bzip2 or lz4\n"
	       "    -o readahead=KIB       the kernel's read-ahead window (root; default: the\n"
	       "                           kernel's, or 1024 for NBD, direct and cached reads)\n"
	       "    -o spin=MICROSECONDS   after a request, poll for the next this long before\n"
	       "                           sleeping (one thread; default 0: off)\n"
	       "    -o ignore_permissions  with allow_other or allow_root: do not enforce the\n"
	       "                           modes and owners shown (every member readable by\n"
	       "                           every user who can reach the mount)\n"
	       "    -V, --version          print the version\n"
	       "    -h, --help             this help\n\n",
	       prog);
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_octal(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* The kernel reads ahead on a FUSE mount by the window of the mount's backing device info,
 * 128 KiB by default.  The window is /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, MAJOR:MINOR
 * being the mount's device number in mountinfo.  The kernel caps it when it takes our INIT
 * reply, so it is written when the first request after INIT comes (tm_fs.first_request):
 * not from a stat of the mountpoint, which would be this daemon asking itself.  Only root
 * may write the file: for anyone else the kernel's window stays. */
struct readahead_job {
	char path[80]; /* the sysfs file, or "" when the mount was not found */
	int kib;
	bool asked;
};

static void readahead_find(struct readahead_job *job, const char *mountpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	job->path[0] = '\0';
	/* ID PARENT MAJOR:MINOR ROOT MOUNTPOINT ...; the last match is the newest mount */
	while (f && getline(&line, &cap, f) > 0) {
		char *save, *fld[5];
		int n = 0;
		for (char *t = strtok_r(line, " ", &save); t && n < 5; t = strtok_r(NULL, " ", &save))
			fld[n++] = t;
		if (n < 5)
			continue;
		unescape_octal(fld[4]);
		if (!strcmp(fld[4], mountpoint) && strlen(fld[2]) < 32)
			snprintf(job->path, sizeof job->path, "/sys/class/bdi/%s/read_ahead_kb",
				 fld[2]);
	}
	free(line);
	if (f)
		fclose(f);
}

static void readahead_set(void *data)
{
	const struct readahead_job *job = data;
	FILE *w = job->path[0] ? fopen(job->path, "we") : NULL;
	bool ok = w && fprintf(w, "%d\n", job->kib) > 0;
	if (w && fclose(w) != 0)
		ok = false;
	if (!ok && job->asked)
		log_warning("read-ahead not set: %s%s%s",
			    job->path[0] ? job->path : "the mount is not in /proc/self/mountinfo",
			    job->path[0] ? ": " : "", job->path[0] ? strerror(errno) : "");
}

/* A thread of ours: with every signal blocked, so that signals reach the loop's thread
 * (libfuse wakes it from the signal handler's EINTR; a SIGINT taken by another thread would
 * leave the mount up), as libfuse starts its workers. */
static GThread *thread_new(const char *name, GThreadFunc fn, gpointer data)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	GThread *t = g_thread_new(name, fn, data);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return t;
}

/* Once, at mount: what reads will cost when the stream seeks badly. */
static void compression_advice(const struct options *o, const struct tm_archive *a)
{
	if (o->quiet || !tm_decomp_is(a->data) || a->copy_used)
		return;
	struct tm_decomp_stats st;
	tm_decomp_stats(a->data, &st);
	const char *advice = tm_decomp_advice(st.format);
	if (a->why_no_copy[0])
		log_warning("%s: seekable copy %s not used (%s): removed, for a new one",
			    o->source, a->copy_path, a->why_no_copy);
	if (st.max_gap < (64u << 20) || !advice)
		return;
	const char *until = a->copy_path && !o->no_copy
		? " until the seekable copy is made (in the background, beside the index)" : "";
	log_warning("%s: warning: the %s stream has %" PRIu64 " seek point%s, %" PRIu64
		    " MiB apart at most: a read outside the cache decodes up to that much%s; %s",
		    o->source, tm_decomp_format_name(st.format), st.points,
		    st.points == 1 ? "" : "s", st.max_gap >> 20, until, advice);
}

/* Whether reads go through a cache: tm_block_open's rule for tm_block_options.cache. */
static bool want_cache(const struct options *o)
{
	struct stat st;
	if (o->cache || o->nocache)
		return o->cache && !o->nocache;
	return tm_block_is_nbd_uri(o->source) ||
	       (o->src.direct && stat(o->source, &st) == 0 && S_ISBLK(st.st_mode));
}

/* Check the mountpoint before any work, for a clear message. */
static bool mountpoint_ok(const char *mp)
{
	struct stat st;
	if (stat(mp, &st) < 0) {
		fprintf(stderr, "tarmount: %s: %s\n", mp, strerror(errno));
		return false;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "tarmount: %s: not a directory\n", mp);
		return false;
	}
	return true;
}

static bool fuse_device_ok(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "tarmount: /dev/fuse: %s (is the fuse module loaded?)\n",
			strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

/* A value inside -o: libfuse splits on ',' and takes '\\' as an escape. */
static char *escape_opt(const char *s)
{
	GString *out = g_string_new(NULL);
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			g_string_append_c(out, '\\');
		g_string_append_c(out, *s);
	}
	return g_string_free(out, FALSE);
}

/* fds 0-2 must be open before the archive is, or a stray write could land in it. */
static void ensure_std_fds(void)
{
	int fd;
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= 2)
		;
	if (fd > 2)
		close(fd);
}

/* After the loop of a read-write mount: append what waits, then save the index of the
 * archive as it is now (the writer lock is held until the source closes).  False when
 * changes were lost. */
static bool finish_rw(const struct options *o, struct tm_archive *archive, struct tm_rw *rw,
		      GThread *committer, struct tm_kv_rw **kv_rw)
{
	struct tm_kv_error err;
	char msg[300], why[300];
	bool ok = tm_rw_finish(rw, &err) == 0;
	if (!ok)
		log_error("%s: changes since the last append are lost: %s", o->source,
			  tm_kv_strerror(&err, msg, sizeof msg));
	g_thread_join(committer);
	bool changed = tm_kv_rw_changed(*kv_rw);
	if (changed && tm_kv_rw_reindex(*kv_rw, &err) < 0)
		log_warning("%s: index not updated: %s", o->source,
			    tm_kv_strerror(&err, msg, sizeof msg));
	struct tm_index *idx = tm_kv_rw_close_keep(*kv_rw);
	*kv_rw = NULL;
	if (o->noindex)
		archive->index = idx;
	else if (changed && !tm_archive_update(archive, idx, why, sizeof why))
		log_warning("%s: index not saved: %s", o->source, why);
	else if (!changed && (archive->index = idx, !archive->loaded) &&
		 !tm_archive_save(archive, why, sizeof why))
		log_warning("%s: index not saved: %s", o->source, why);
	return ok;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = { .uid = -1, .gid = -1, .umask = -1, .readahead = INT_MIN,
			     .spin = TM_FUSE_SPIN_DEFAULT };
	struct fuse_cmdline_opts cmd = { 0 };
	struct tm_block *block = NULL;
	struct tm_index *index = NULL;
	struct tm_archive *archive = NULL;
	struct fuse_session *se = NULL;
	int rc = 1;

	ensure_std_fds();
	/* One malloc arena for every thread: a compressed archive's chunks, decoded by one
	 * FUSE worker and evicted while another decodes, otherwise leave each thread's arena
	 * holding what it once had (reading every file of the Linux tarball's .tar.gz: RSS
	 * 187 MB with the default arenas, 95 MB with one, in the same time). */
	mallopt(M_ARENA_MAX, 1);
	if (fuse_opt_parse(&args, &o, option_spec, opt_proc) < 0)
		return 1;
	if (o.show_version) {
		printf("tarmount %s\nFUSE library version %s\n", PACKAGE_VERSION, fuse_pkgversion());
		fuse_lowlevel_version();
		rc = 0;
		goto out_args;
	}
	if (o.show_help) {
		usage(argv[0]);
		rc = 0;
		goto out_args;
	}
	if (fuse_parse_cmdline(&args, &cmd) != 0)
		goto out_args;
	if (!o.source || !cmd.mountpoint) {
		fprintf(stderr, "usage: %s [OPTIONS] SOURCE MOUNTPOINT (try --help)\n", argv[0]);
		goto out_args;
	}
	source_for_log = o.source;
	o.compression = TM_DECOMP_AUTO;
	if (o.compression_name && !tm_decomp_format_parse(o.compression_name, &o.compression)) {
		fprintf(stderr, "tarmount: -o compression=%s: not one of auto, none, gzip, zstd, "
				"xz, bzip2, lz4\n", o.compression_name);
		goto out_args;
	}
	if (o.rw && o.ro) {
		fprintf(stderr, "tarmount: -o readwrite and -o ro: choose one\n");
		goto out_args;
	}
	if (o.commit != 0 && (!o.rw || !(o.commit > 0 && o.commit <= 86400))) {
		fprintf(stderr, "tarmount: -o commit=%g: %s\n", o.commit,
			o.rw ? "seconds, more than 0 and at most 86400" : "only with -o readwrite");
		goto out_args;
	}
	if (o.nosync && !o.rw) {
		fprintf(stderr, "tarmount: -o nosync: only with -o readwrite\n");
		goto out_args;
	}
	if (o.commit == 0)
		o.commit = 1.0;
	if (o.readahead != INT_MIN && (o.readahead < 0 || o.readahead > 1 << 20)) {
		fprintf(stderr, "tarmount: -o readahead=%d: KiB from 0 to 1048576\n", o.readahead);
		goto out_args;
	}
	if (o.spin > 1000000) {
		fprintf(stderr, "tarmount: -o spin=%u: microseconds from 0 to 1000000\n", o.spin);
		goto out_args;
	}
	uint64_t cache_max = 0;
	char why[300];
	if ((o.index_cache_max || (!o.noindex && !o.index_path)) &&
	    !tm_index_cache_max(o.index_cache_max, &cache_max, why, sizeof why)) {
		fprintf(stderr, "tarmount: %s%s\n", o.index_cache_max ? "-o index_cache_max=" : "",
			why);
		goto out_args;
	}
	if (!mountpoint_ok(cmd.mountpoint) || !fuse_device_ok())
		goto out_args;

	struct tm_block_error berr;
	char msg[300];
	/* The cache goes on here rather than in tm_block_open (by the same rule: asked for, or
	 * by default for NBD and O_DIRECT devices), so that large reads can go around it
	 * (tm_fs.uncached). */
	struct tm_block_options bopts = o.src;
	bopts.cache = 0;
	bopts.read_write = o.rw;
	block = tm_block_open(o.source, &bopts, &berr);
	/* A writer indexes under the writer lock, held until the daemon exits (kv_rw.h):
	 * another writer's appends cannot slip in between. */
	if (block && o.rw && tm_block_lock_writer(block, false, &berr) < 0 &&
	    berr.code != TM_BLOCK_NOT_SUPPORTED)
		g_clear_pointer(&block, tm_block_disconnect);
	if (!block) {
		fprintf(stderr, "tarmount: %s: %s\n", o.source,
			tm_block_strerror(&berr, msg, sizeof msg));
		goto out_args;
	}
	struct tm_block *uncached = NULL;
	if (want_cache(&o)) {
		uncached = block;
		block = tm_block_cache_new(block, o.src.cache_size ? o.src.cache_size : 64u << 20);
	}
	struct tm_block *opened = block;
	struct progress prog = { .enabled = !o.quiet && isatty(2) };
	clock_gettime(CLOCK_MONOTONIC, &prog.start);
	/* A saved index is used when current; a new one is saved by a thread once the mount
	 * is up, so that the first mount does not wait for the write. */
	struct tm_archive_options aopts = {
		.compression = o.compression,
		.decomp = { .cache_size = o.src.cache_size },
		.index = { .diag = index_diag, .diag_ud = &o },
		.progress = prog.enabled ? progress : NULL,
		.progress_ud = &prog,
		.index_path = o.index_path,
		.index_cache_max = cache_max,
		.persist = !o.noindex,
		.defer_save = true,
		.copy_diag = copy_diag,
	};
	archive = tm_archive_open(block, o.source, &aopts, &berr);
	block = NULL;
#ifdef __GLIBC__
	/* The builder's tables are freed, but glibc keeps up to 64 MiB of free heap once large
	 * blocks have been freed: give it back (1,000,000 entries: 107 MB of RSS after
	 * mounting, 94 MB after this). */
	if (archive && !archive->loaded)
		malloc_trim(0);
#endif
	if (prog.shown)
		fputc('\n', stderr);
	if (!archive) {
		if (berr.code != TM_BLOCK_OK)
			fprintf(stderr, "tarmount: %s: %s\n", o.source,
				tm_block_strerror(&berr, msg, sizeof msg));
		goto out_args;
	}
	index = archive->index;
	block = archive->data;
	if (block != opened) /* a decompressor over the cache: every read needs it */
		uncached = NULL;
	if (archive->loaded && (index->errors || index->warnings) && !o.quiet)
		fprintf(stderr, "tarmount: %s: warning: %u errors and %u warnings when the archive "
				"was indexed (-o noindex shows them)\n", o.source, index->errors,
			index->warnings);
	compression_advice(&o, archive);

	struct tm_kv_rw *kv_rw = NULL;
	struct tm_rw *rw = NULL;
	GThread *committer = NULL;
	if (o.rw) {
		/* The index moves to the writer, which keeps it (and every later one) valid
		 * until the end. */
		struct tm_kv_rw_options ro = { .caller_locked = true, .no_flush = o.nosync,
					       .index = aopts.index };
		struct tm_kv_error kerr;
		kv_rw = tm_kv_rw_open(archive->data, archive->index, &ro, &kerr);
		archive->index = NULL;
		if (!kv_rw) {
			fprintf(stderr, "tarmount: %s: -o readwrite: %s\n", o.source,
				tm_kv_strerror(&kerr, msg, sizeof msg));
			goto out_index;
		}
		index = (struct tm_index *)tm_kv_rw_index(kv_rw);
	}

	/* Read-only unless -o readwrite; nosuid and nodev unless asked otherwise (given first, so
	 * that a user's -o suid or -o dev later on the line wins). */
	char *fsname = realpath(o.source, NULL);
	char *fsopt = escape_opt(fsname ? fsname : o.source);
	char *mopts = g_strdup_printf("-osubtype=tarmount,fsname=%s", fsopt);
	fuse_opt_insert_arg(&args, 1, "-onosuid,nodev");
	fuse_opt_add_arg(&args, mopts);
	if (!o.rw)
		fuse_opt_add_arg(&args, "-oro");
	/* A mount others can see is checked by the kernel against the modes and owners
	 * getattr gives (after uid=, gid=, umask=), as a kernel filesystem would be; we do no
	 * checks of our own.  Without allow_other only the mounting user gets in at all.
	 * allow_root is allow_other to the kernel, with libfuse refusing others' requests: the
	 * kernel answers some of them from what it cached for root without asking us. */
	if (o.others_see && !o.ignore_permissions && !o.default_permissions)
		fuse_opt_add_arg(&args, "-odefault_permissions");
	g_free(mopts);
	g_free(fsopt);
	free(fsname);

	struct tm_fs fs = {
		.index = index,
		.block = block,
		.uid = o.uid,
		.gid = o.gid,
		.umask = o.umask,
		.archive_size = tm_block_size_bytes(block),
		/* Nothing changes on a read-only mount: the kernel may keep what it was told.
		 * A read-write one tells it of its own changes, but the overlay's replacements
		 * of an entry (a rename over it) are seen after a second at most. */
		.timeout = o.rw ? 1.0 : 86400.0,
		.log_error = log_error,
	};
	fs.has_xattrs = index->has_xattrs;
	tm_index_on_damage(index, index_damaged, archive);
	tm_kv_init(&fs.kv, index, block);
	if (uncached) {
		tm_kv_init(&fs.kv_uncached, index, uncached);
		fs.uncached = &fs.kv_uncached;
	}
	if (o.rw) {
		/* Spools under the cache directory, made if need be (the index is saved
		 * there at the end). */
		char *dir = archive->index_path ? g_path_get_dirname(archive->index_path) : NULL;
		if (dir && archive->in_cache)
			(void)g_mkdir_with_parents(dir, 0700);
		struct tm_rw_options wo = {
			.commit = o.commit,
			.spool_dir = dir && access(dir, W_OK) == 0 ? dir : NULL,
			.spool_mem = 64u << 20,
			.spool_max = 256u << 20,
		};
		rw = tm_rw_new(&fs, kv_rw, &wo);
		g_free(dir); /* tm_rw_new keeps a copy */
	}
	const struct fuse_lowlevel_ops *ops = o.rw ? &tm_fuse_rw_ops : &tm_fuse_ops;
	se = fuse_session_new(&args, ops, sizeof *ops, &fs);
	if (!se)
		goto out_index;
	/* Filling the kernel's cache ahead of readers assumes files that do not change. */
	fs.fill = o.nofill || o.rw ? NULL : tm_fill_new(&fs, se);
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, cmd.mountpoint) != 0)
		goto out_signals;
	int spin_rc = tm_fuse_spin_attach(se, o.spin);
	if (spin_rc < 0)
		log_warning("-o spin: %s; requests are read without polling", strerror(-spin_rc));
	if (!cmd.foreground) {
		openlog("tarmount", LOG_PID, LOG_DAEMON);
		if (fuse_daemonize(0) != 0)
			goto out_unmount;
		daemonized = true;
	} else {
		fuse_daemonize(1);
	}
	struct background bg = {
		.archive = archive,
		/* -o readwrite: saved at the end, with what was appended */
		.save = !o.noindex && !archive->loaded && !o.rw,
		.copy = archive->copy_path && !archive->copy_used && !o.no_copy,
	};
	GThread *saver = bg.save || bg.copy ? thread_new("background", background, &bg) : NULL;
	GThread *filler = fs.fill ? thread_new("fill", tm_fill_run, fs.fill) : NULL;
	if (rw)
		committer = thread_new("commit", tm_rw_run, rw);
	/* Unless asked: reads spliced from the source's descriptor (a file, a device read
	 * through the page cache) are fastest in the kernel's 128 KiB requests (measured here:
	 * 1 MiB ones take twice as long); reads we copy (NBD, O_DIRECT, the cache) gain from
	 * 1 MiB requests, which make fewer, larger backend reads (NBD: 15 % faster). */
	int spliceable_fd;
	uint64_t fd_base;
	if (o.readahead == INT_MIN && !tm_block_get_fd(block, &spliceable_fd, &fd_base))
		o.readahead = -1024;
	struct readahead_job ra = { .asked = o.readahead > 0 };
	if (o.readahead != 0 && o.readahead != INT_MIN) {
		ra.kib = abs(o.readahead);
		readahead_find(&ra, cmd.mountpoint);
		fs.first_request = readahead_set;
		fs.first_request_ud = &ra;
	}
	if (cmd.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *lc = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(lc, cmd.clone_fd);
		if (cmd.max_idle_threads != UINT_MAX) /* libfuse's "not given" */
			fuse_loop_cfg_set_idle_threads(lc, cmd.max_idle_threads);
		fuse_loop_cfg_set_max_threads(lc, cmd.max_threads);
		rc = fuse_session_loop_mt(se, lc);
		fuse_loop_cfg_destroy(lc);
	}
	if (filler) {
		tm_fill_stop(fs.fill);
		g_thread_join(filler);
	}
	if (saver) {
		if (bg.copy)
			tm_decomp_copy_cancel(block);
		g_thread_join(saver);
	}
	/* The loop returns the signal that ended it: a requested stop is a clean exit. */
	rc = !(rc == 0 || rc == SIGINT || rc == SIGTERM || rc == SIGHUP);
	if (rw && !finish_rw(&o, archive, rw, committer, &kv_rw))
		rc = 1;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
	tm_fill_free(fs.fill);
out_index:
	if (kv_rw) /* the mount failed before serving: nothing was changed */
		archive->index = tm_kv_rw_close_keep(kv_rw);
	tm_rw_free(rw);
	tm_archive_close(archive);
out_args:
	free(cmd.mountpoint);
	free(o.source);
	free(o.index_path);
	free(o.index_cache_max);
	free(o.compression_name);
	fuse_opt_free_args(&args);
	return rc;
}
