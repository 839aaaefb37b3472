/* Opening an archive: detect the compression, reuse the saved index and seek table when
 * they still describe the source, else scan it (decompressing on the scan's own thread
 * while the index is built on this one). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "archive.h"

struct diag_relay {
	const struct tm_index_options *index;
	unsigned warnings, errors;
	const struct tm_archive_options *o;
	struct tm_block *data;
};

static void relay_progress(void *ud, uint64_t bytes, uint64_t members)
{
	struct diag_relay *r = ud;
	uint64_t total = tm_block_size_bytes(r->data);
	if (tm_decomp_is(r->data)) {
		struct tm_decomp_stats st;
		tm_decomp_stats(r->data, &st);
		bytes = tm_decomp_scan_position(r->data);
		total = st.compressed;
	}
	r->o->progress(r->o->progress_ud, bytes, total, members);
}

/* The decompressor's findings, told as the index's are (from the scan thread). */
static void relay_diag(void *ud, bool error, uint64_t offset, const char *msg)
{
	struct diag_relay *r = ud;
	__atomic_add_fetch(error ? &r->errors : &r->warnings, 1, __ATOMIC_RELAXED);
	if (r->index->diag)
		r->index->diag(r->index->diag_ud, error ? TM_TAR_ERROR : TM_TAR_WARNING, offset,
			       NULL, msg);
}

/* The saved index, when there is one for this source and it is current (for a compressed
 * source: with a seek table that matches). */
static struct tm_index *load_saved(struct tm_archive *a, struct tm_block **src,
				   const struct tm_archive_options *o, struct tm_block_error *err)
{
	char why[300];
	struct tm_index *idx = tm_index_load_fd(a->index_fd, a->id, why, sizeof why);
	if (!idx) {
		snprintf(a->why_rebuilt, sizeof a->why_rebuilt, "%s", why);
		return NULL;
	}
	if (a->format == TM_DECOMP_NONE) {
		if (!idx->seek && tm_index_verify(idx, *src, why, sizeof why))
			return idx;
		snprintf(a->why_rebuilt, sizeof a->why_rebuilt, "%s",
			 idx->seek ? "made for a compressed stream" : why);
		tm_index_free(idx);
		return NULL;
	}
	struct tm_block_error e = { .code = TM_BLOCK_OK };
	struct tm_block *data = idx->seek ? tm_decomp_new(*src, a->format, &o->decomp, idx->seek,
							  idx->seek_len, &e)
					  : NULL;
	if (data && tm_decomp_fingerprint(data) == idx->fingerprint) {
		a->data = data;
		*src = NULL;
		return idx;
	}
	if (e.code == TM_BLOCK_IO) /* the source failed: say so, do not rebuild */
		*err = e;
	snprintf(a->why_rebuilt, sizeof a->why_rebuilt, "%s",
		 data ? "seek table of another index" : e.msg[0] ? e.msg : "no seek table");
	if (data)
		*src = tm_decomp_release(data);
	tm_index_free(idx);
	return NULL;
}

/* The index of a plain archive that only grew since an index of it was saved (GNU tar -r or
 * -A, another writer's appends): that index, extended by the members after its end, with
 * the old file removed.  Only an index whose sampled headers still read the same and whose
 * end is inside the source is extended; NULL when there is none. */
static struct tm_index *extend_earlier(struct tm_archive *a, struct tm_block *src,
				       const struct tm_index_options *iopts)
{
	/* Only a regular file as a whole grows that way (a device or a window of one is
	 * written by us, and we save its index as we go); its path names it alone. */
	if (a->format != TM_DECOMP_NONE || !a->source_path || !a->index_path ||
	    strcmp(src->ops->name, "file"))
		return NULL;
	char **paths;
	if (a->in_cache) {
		char *dir = g_path_get_dirname(a->index_path);
		paths = tm_index_cache_by_source(dir, a->source_path, a->id, 4);
		g_free(dir);
	} else {
		paths = g_new0(char *, 2);
		paths[0] = g_strdup(a->index_path);
	}
	struct tm_index *idx = NULL;
	for (char **p = paths; *p && !idx; p++) {
		int fd = tm_index_cache_hold(*p);
		struct tm_index_peek peek = { 0 };
		if (fd < 0 || !tm_index_peek_fd(fd, &peek) || !peek.header_ok || !peek.source ||
		    strcmp(peek.source, a->source_path)) {
			g_free(peek.source);
			if (fd >= 0)
				close(fd);
			continue;
		}
		g_free(peek.source);
		char why[300];
		struct tm_index *base = tm_index_load_fd(fd, peek.source_id, why, sizeof why);
		struct tm_block_error err;
		if (base && !base->seek && !base->truncated &&
		    base->archive_end <= tm_block_size_bytes(src) &&
		    tm_index_verify(base, src, why, sizeof why) && tm_index_check_all(base))
			idx = tm_index_build_resume(base, src, iopts, &err);
		if (idx && a->in_cache)
			(void)tm_index_cache_drop(*p, fd);
		tm_index_free(base);
		close(fd);
	}
	g_strfreev(paths);
	a->extended = idx != NULL;
	return idx;
}

/* A compressed stream that is damaged from its first bytes (or not of the format asked
 * for) is one error: the decoder's, not also the tar reader's "not a tar archive". */
static bool stream_starts(struct tm_block *data, struct tm_block_error *err)
{
	uint8_t byte;
	if (tm_block_pread(data, &byte, 1, 0, err) == 0)
		return true;
	struct tm_block_error derr = { .code = TM_BLOCK_OK };
	if (!tm_decomp_finish(data, 0, &derr)) {
		*err = derr;
	} else {
		struct tm_decomp_stats st;
		tm_decomp_stats(data, &st);
		tm_block_fail(err, TM_BLOCK_INVALID, 0, "no data in the %s stream",
			      tm_decomp_format_name(st.format));
	}
	return false;
}

/* Use the seekable copy beside the index when there is one for this stream; one that is
 * not (damaged, or of an archive since rewritten) is removed, for a new one to be made. */
static void copy_find(struct tm_archive *a, const struct tm_archive_options *o)
{
	a->copy_path = tm_decomp_copy_path(a->index_path);
	a->copy_diag = o->copy_diag;
	a->copy_diag_ud = o->copy_diag_ud;
	char why[300];
	if (access(a->copy_path, F_OK) < 0)
		return;
	a->copy_used = tm_decomp_copy_attach(a->data, a->copy_path, o->copy_diag,
					     o->copy_diag_ud, why, sizeof why);
	if (!a->copy_used) {
		snprintf(a->why_no_copy, sizeof a->why_no_copy, "%s", why);
		unlink(a->copy_path);
	}
}

struct tm_archive *tm_archive_open(struct tm_block *source, const char *source_name,
				   const struct tm_archive_options *o, struct tm_block_error *err)
{
	struct tm_block_error local;
	if (!err)
		err = &local;
	struct tm_archive *a = g_new0(struct tm_archive, 1);
	a->index_fd = -1;
	struct diag_relay *relay = g_new0(struct diag_relay, 1);
	relay->index = &o->index;
	relay->o = o;
	if (err)
		err->code = TM_BLOCK_OK;
	a->format = o->compression;
	if (a->format == TM_DECOMP_AUTO) {
		a->format = tm_decomp_detect_block(source, err);
		if (err && err->code != TM_BLOCK_OK)
			goto fail;
	}
	if (source_name && !tm_block_is_nbd_uri(source_name))
		a->source_path = realpath(source_name, NULL);
	if (o->persist) {
		if (!tm_block_identity(source, a->id, err))
			goto fail;
		a->index_path = o->index_path ? g_canonicalize_filename(o->index_path, NULL)
					      : tm_index_default_path(a->id);
		a->in_cache = !o->index_path;
		a->cache_max = o->index_cache_max;
		/* Held before it is read, so that what is loaded is what no pruner removes. */
		a->index_fd = tm_index_cache_hold(a->index_path);
		if (a->index_fd < 0)
			snprintf(a->why_rebuilt, sizeof a->why_rebuilt, "%s", strerror(errno));
		else
			a->index = load_saved(a, &source, o, err);
		if (err && err->code != TM_BLOCK_OK)
			goto fail;
		a->loaded = a->index != NULL;
		if (a->loaded && a->in_cache)
			tm_index_cache_touch(a->index_fd);
		if (!a->loaded && a->index_fd >= 0) { /* tm_archive_save holds the new one */
			close(a->index_fd);
			a->index_fd = -1;
		}
	}
	if (!a->index) {
		struct tm_index_options iopts = o->index;
		if (a->format != TM_DECOMP_NONE) {
			struct tm_decomp_options dopts = o->decomp;
			dopts.diag = relay_diag;
			dopts.diag_ud = relay;
			a->data = tm_decomp_new(source, a->format, &dopts, NULL, 0, err);
			if (!a->data)
				goto fail;
			source = NULL;
			iopts.no_fingerprint = true;
		} else {
			a->data = source;
			source = NULL;
		}
		relay->data = a->data;
		if (o->progress) {
			iopts.progress = relay_progress;
			iopts.progress_ud = relay;
		}
		if (a->format != TM_DECOMP_NONE && !stream_starts(a->data, err))
			goto fail;
		a->index = o->persist ? extend_earlier(a, a->data, &iopts) : NULL;
		if (!a->index)
			a->index = tm_index_build(a->data, &iopts, err);
		if (a->index && a->format != TM_DECOMP_NONE) {
			struct tm_block_error derr = { .code = TM_BLOCK_OK };
			if (!tm_decomp_finish(a->data, a->index->archive_end, &derr)) {
				/* Damage after the members indexed: said once, counted. */
				char msg[300];
				relay_diag(relay, true, tm_decomp_scan_position(a->data),
					   tm_block_strerror(&derr, msg, sizeof msg));
			}
			a->index->fingerprint = tm_decomp_fingerprint(a->data);
		}
		if (!a->index)
			goto fail;
		a->index->warnings += relay->warnings;
		a->index->errors += relay->errors;
	} else if (!a->data) {
		a->data = source;
		source = NULL;
	}
	g_free(relay);
	if (a->index_path && a->format != TM_DECOMP_NONE && tm_decomp_copy_wanted(a->data))
		copy_find(a, o);
	if (o->persist && !a->loaded && !o->defer_save) {
		char why[300];
		if (!tm_archive_save(a, why, sizeof why) && o->index.diag) {
			char msg[400];
			snprintf(msg, sizeof msg, "index not saved: %s", why);
			o->index.diag(o->index.diag_ud, TM_TAR_WARNING, 0, NULL, msg);
		}
	}
	return a;
fail:
	tm_block_disconnect(source);
	/* The decompressor's scan may still be telling us things: stop it before relay goes. */
	tm_block_disconnect(a->data);
	a->data = NULL;
	g_free(relay);
	tm_archive_close(a);
	return NULL;
}

bool tm_archive_save(struct tm_archive *a, char *why, size_t why_len)
{
	if (!a->index_path || a->loaded || a->saved)
		return true;
	GByteArray *table = NULL;
	struct tm_index_extra extra = { .source = a->source_path };
	if (tm_decomp_is(a->data)) {
		table = g_byte_array_new();
		tm_decomp_table(a->data, table);
		extra.seek = table->data;
		extra.seek_len = table->len;
	}
	int held = -1;
	a->saved = tm_index_save_held(a->index, a->index_path, a->id, &extra, &held, why, why_len);
	if (table)
		g_byte_array_free(table, TRUE);
	if (!a->saved)
		return false;
	if (a->index_fd >= 0)
		close(a->index_fd);
	a->index_fd = held;
	if (a->in_cache) {
		char *dir = g_path_get_dirname(a->index_path);
		char pwhy[300];
		(void)tm_index_cache_prune(dir, a->cache_max, &a->pruned, pwhy, sizeof pwhy);
		g_free(dir);
	}
	return true;
}

bool tm_archive_update(struct tm_archive *a, struct tm_index *idx, char *why, size_t why_len)
{
	a->index = idx;
	a->loaded = a->saved = false;
	if (!a->index_path)
		return true;
	struct tm_block_error err;
	char old_id[65];
	memcpy(old_id, a->id, sizeof old_id);
	if (!tm_block_identity(a->data, a->id, &err)) {
		tm_block_strerror(&err, why, why_len);
		return false;
	}
	char *old = NULL;
	if (a->in_cache && strcmp(old_id, a->id)) {
		old = a->index_path;
		a->index_path = tm_index_default_path(a->id);
	}
	int old_fd = a->index_fd;
	a->index_fd = -1;
	bool ok = tm_archive_save(a, why, why_len);
	if (ok && old && old_fd >= 0)
		(void)tm_index_cache_drop(old, old_fd);
	if (old_fd >= 0)
		close(old_fd);
	g_free(old);
	return ok;
}

bool tm_archive_build_copy(struct tm_archive *a, struct tm_decomp_copy_report *r,
			   struct tm_block_error *err)
{
	uint64_t limit = a->in_cache ? a->cache_max / 2 : 0;
	if (!tm_decomp_copy_build(a->data, a->copy_path, limit, r, err))
		return false;
	char why[300];
	if (!tm_decomp_copy_attach(a->data, a->copy_path, a->copy_diag, a->copy_diag_ud, why,
				   sizeof why))
		return tm_block_fail(err, TM_BLOCK_INVALID, 0, "%s: %s", a->copy_path, why) == 0;
	a->copy_used = true;
	if (a->in_cache) {
		char *dir = g_path_get_dirname(a->index_path);
		(void)tm_index_cache_prune(dir, a->cache_max, &a->pruned, why, sizeof why);
		g_free(dir);
	}
	return true;
}

void tm_archive_close(struct tm_archive *a)
{
	if (!a)
		return;
	/* The decompressor first: it uses the seek table in the index's mapping. */
	tm_block_disconnect(a->data);
	tm_index_free(a->index);
	if (a->index_fd >= 0)
		close(a->index_fd);
	g_free(a->index_path);
	g_free(a->copy_path);
	free(a->source_path);
	g_free(a);
}
