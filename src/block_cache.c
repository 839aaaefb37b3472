/* The cache decorator: fixed-size chunks of the inner device kept in LRU order, in shards
 * that each have their own lock, so that readers of different chunks rarely meet.  A miss
 * that continues a sequential run reads several chunks in one request (readahead).  The
 * inner device is never called with a shard lock held.
 *
 * Writes go through to the inner device one at a time (write_lock); once it has them, the
 * write generation is bumped and the cached chunks they touch are patched (or dropped, when
 * the chunk does not hold the whole range, or the write failed).  A reader that missed
 * keeps what it read from the inner device only if no write finished since it began reading
 * (the generation is unchanged when it inserts, under the shard lock): otherwise it may have
 * read bytes a write has since replaced.  It still returns them: they were the device's
 * bytes at some moment of its read. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <glib.h>

#include "block.h"

#define CHUNK (128u * 1024)
#define SHARDS 16
#define READAHEAD_CHUNKS 8

struct chunk {
	uint64_t index;
	uint32_t len;    /* valid bytes (the device's last chunk may be short) */
	GList link;      /* in the shard's LRU queue; data follows the struct */
	uint8_t data[];
};

struct shard {
	pthread_mutex_t lock;
	GHashTable *chunks; /* &chunk->index -> chunk */
	GQueue lru;         /* most recent at the head */
	size_t capacity;    /* chunks */
};

struct block_cache {
	struct tm_block base;
	struct tm_block *inner;
	struct tm_block_info info;
	uint32_t chunk_size;
	struct shard shards[SHARDS];
	_Atomic uint64_t next_expected; /* chunk after the last one missed: sequential runs */
	pthread_mutex_t write_lock;     /* one write at a time: inner and chunks agree */
	_Atomic uint64_t write_gen;     /* writes that reached the inner device */
};

/* The inner device's geometry; its size is asked again when it can grow. */
static void cache_get_info(struct tm_block *b, struct tm_block_info *info)
{
	struct block_cache *c = (struct block_cache *)b;
	if (c->info.growable)
		tm_block_get_info(c->inner, info);
	else
		*info = c->info;
}

/* Bytes the device holds, the partial last sector's tail of zeros included. */
static uint64_t sector_bytes(const struct tm_block_info *info)
{
	return info->size_sectors * info->sector_size;
}

static struct shard *shard_of(struct block_cache *c, uint64_t index)
{
	return &c->shards[(index * 0x9e3779b97f4a7c15ull) >> 60 & (SHARDS - 1)];
}

/* Copy [from, from+len) of chunk index into out if cached.  Returns true on a hit. */
static bool lookup(struct block_cache *c, uint64_t index, uint32_t from, uint32_t len,
		   uint8_t *out)
{
	struct shard *s = shard_of(c, index);
	bool hit = false;
	pthread_mutex_lock(&s->lock);
	struct chunk *ch = g_hash_table_lookup(s->chunks, &index);
	if (ch && from + len <= ch->len) {
		g_queue_unlink(&s->lru, &ch->link);
		g_queue_push_head_link(&s->lru, &ch->link);
		memcpy(out, ch->data + from, len);
		hit = true;
	}
	pthread_mutex_unlock(&s->lock);
	return hit;
}

/* Unlink ch from its shard (locked); the caller frees it. */
static void unlink_chunk(struct shard *s, struct chunk *ch)
{
	g_queue_unlink(&s->lru, &ch->link);
	g_hash_table_remove(s->chunks, &ch->index);
}

/* Cache data as chunk index, read from the inner device by a fill that began at write
 * generation gen: unless a write has finished since (the bytes may be old), replacing what
 * the chunk held (which is no newer). */
static void insert(struct block_cache *c, uint64_t index, const uint8_t *data, uint32_t len,
		   uint64_t gen)
{
	struct shard *s = shard_of(c, index);
	struct chunk *ch = g_malloc(sizeof *ch + len);
	ch->index = index;
	ch->len = len;
	ch->link = (GList){ .data = ch };
	memcpy(ch->data, data, len);
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&c->write_gen) != gen) {
		pthread_mutex_unlock(&s->lock);
		g_free(ch);
		return;
	}
	struct chunk *old = g_hash_table_lookup(s->chunks, &index);
	if (old)
		unlink_chunk(s, old);
	g_hash_table_insert(s->chunks, &ch->index, ch);
	g_queue_push_head_link(&s->lru, &ch->link);
	struct chunk *evict = NULL;
	if (s->lru.length > s->capacity) {
		GList *l = g_queue_pop_tail_link(&s->lru);
		evict = l->data;
		g_hash_table_remove(s->chunks, &evict->index);
	}
	pthread_mutex_unlock(&s->lock);
	g_free(old);
	g_free(evict);
}

/* Read chunks [first, first+count) from the inner device into buf (chunk first at buf) and
 * cache them. */
static int fill(struct block_cache *c, const struct tm_block_info *info, uint64_t first,
		uint64_t count, uint8_t *buf, struct tm_block_error *err)
{
	uint64_t dev = sector_bytes(info);
	uint64_t start = first * c->chunk_size;
	uint64_t end = (first + count) * c->chunk_size;
	if (end > dev)
		end = dev;
	uint64_t gen = atomic_load(&c->write_gen);
	struct iovec iov = { buf, (size_t)(end - start) };
	if (tm_block_read(c->inner, start / info->sector_size, &iov, 1, err) < 0)
		return -1;
	for (uint64_t i = 0; i < count && start + i * c->chunk_size < end; i++) {
		uint64_t off = i * c->chunk_size;
		uint64_t len = end - start - off < c->chunk_size ? end - start - off : c->chunk_size;
		insert(c, first + i, buf + off, (uint32_t)len, gen);
	}
	return 0;
}

/* Bytes [off, off+len) (inside the device) into out, through the cache. */
static int cached_read(struct block_cache *c, const struct tm_block_info *info, uint8_t *out,
		       size_t len, uint64_t off, uint8_t **scratch, struct tm_block_error *err)
{
	uint64_t chunks = (sector_bytes(info) + c->chunk_size - 1) / c->chunk_size;
	while (len > 0) {
		uint64_t index = off / c->chunk_size;
		uint32_t from = (uint32_t)(off % c->chunk_size);
		uint32_t n = c->chunk_size - from < len ? c->chunk_size - from : (uint32_t)len;
		if (!lookup(c, index, from, n, out)) {
			/* Miss: a run that continues the last miss reads ahead. */
			uint64_t count = 1;
			if (atomic_exchange(&c->next_expected, index + 1) == index)
				count = READAHEAD_CHUNKS;
			if (count > chunks - index)
				count = chunks - index;
			atomic_store(&c->next_expected, index + count);
			if (!*scratch && !(*scratch = g_try_malloc((size_t)c->chunk_size *
								   READAHEAD_CHUNKS)))
				return tm_block_fail(err, TM_BLOCK_IO, ENOMEM, NULL);
			if (fill(c, info, index, count, *scratch, err) < 0)
				return -1;
			/* From what was read, not from the cache: a write may have kept it out. */
			memcpy(out, *scratch + from, n);
		}
		out += n, off += n, len -= n;
	}
	return 0;
}

static int cache_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		      struct tm_block_error *err)
{
	struct block_cache *c = (struct block_cache *)b;
	struct tm_block_info info = { 0 };
	cache_get_info(b, &info);
	if (tm_block_check_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint8_t *scratch = NULL; /* for misses only */
	uint64_t off = sector * info.sector_size;
	int rc = 0;
	for (int i = 0; i < iovcnt && rc == 0; i++) {
		rc = cached_read(c, &info, iov[i].iov_base, iov[i].iov_len, off, &scratch, err);
		off += iov[i].iov_len;
	}
	g_free(scratch);
	return rc;
}

/* After a write of iov at byte off reached the inner device (ok) or failed (then any part
 * of it may have): bump the generation, then patch the cached chunks it covers with what
 * the device now holds, or drop them.  Called with write_lock held.  Bytes past the end of
 * a fixed-size device were not stored: they stay zeros in the cache too. */
static void update_chunks(struct block_cache *c, const struct tm_block_info *info,
			  const struct iovec *iov, int iovcnt, uint64_t off, bool ok)
{
	atomic_fetch_add(&c->write_gen, 1);
	uint64_t limit = UINT64_MAX; /* bytes the device stores */
	if (!info->growable)
		limit = info->size_bytes ? info->size_bytes : sector_bytes(info);
	for (int i = 0; i < iovcnt; i++) {
		const uint8_t *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left > 0) {
			uint64_t index = off / c->chunk_size;
			uint32_t from = (uint32_t)(off % c->chunk_size);
			uint32_t n = c->chunk_size - from < left ? c->chunk_size - from : (uint32_t)left;
			uint32_t keep = off >= limit ? 0 : limit - off < n ? (uint32_t)(limit - off) : n;
			struct shard *s = shard_of(c, index);
			struct chunk *drop = NULL;
			pthread_mutex_lock(&s->lock);
			struct chunk *ch = g_hash_table_lookup(s->chunks, &index);
			if (ch && ok && from + n <= ch->len)
				memcpy(ch->data + from, p, keep);
			else if (ch)
				unlink_chunk(s, drop = ch);
			pthread_mutex_unlock(&s->lock);
			g_free(drop);
			p += n, off += n, left -= n;
		}
	}
}

static int cache_write(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		       struct tm_block_error *err)
{
	struct block_cache *c = (struct block_cache *)b;
	struct tm_block_info info = { 0 };
	cache_get_info(b, &info);
	if (!info.read_write) /* the inner device's refusal */
		return tm_block_write(c->inner, sector, iov, iovcnt, err);
	if (tm_block_check_write_range(&info, sector, iov, iovcnt, err) < 0)
		return -1;
	pthread_mutex_lock(&c->write_lock);
	int rc = tm_block_write(c->inner, sector, iov, iovcnt, err);
	update_chunks(c, &info, iov, iovcnt, sector * info.sector_size, rc == 0);
	pthread_mutex_unlock(&c->write_lock);
	return rc;
}

static int cache_write_bytes(struct tm_block *b, const void *buf, size_t len, uint64_t off,
			     struct tm_block_error *err)
{
	struct block_cache *c = (struct block_cache *)b;
	struct tm_block_info info = { 0 };
	cache_get_info(b, &info);
	if (!info.read_write || !len)
		return tm_block_pwrite(c->inner, buf, len, off, err);
	pthread_mutex_lock(&c->write_lock);
	int rc = tm_block_pwrite(c->inner, buf, len, off, err);
	/* Even when the range was refused, nothing is stale: dropping is harmless. */
	struct iovec iov = { (void *)buf, len };
	update_chunks(c, &info, &iov, 1, off, rc == 0);
	pthread_mutex_unlock(&c->write_lock);
	return rc;
}

static int cache_flush(struct tm_block *b, struct tm_block_error *err)
{
	return tm_block_flush(((struct block_cache *)b)->inner, err);
}

static int cache_lock_writer(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	return tm_block_lock_writer(((struct block_cache *)b)->inner, wait, err);
}

static void cache_unlock_writer(struct tm_block *b)
{
	tm_block_unlock_writer(((struct block_cache *)b)->inner);
}

static bool cache_changed(struct tm_block *b)
{
	return tm_block_changed(((struct block_cache *)b)->inner);
}

static bool cache_identity(struct tm_block *b, GChecksum *sum, struct tm_block_error *err)
{
	return tm_block_identity_update(((struct block_cache *)b)->inner, sum, err);
}

static void cache_disconnect(struct tm_block *b)
{
	struct block_cache *c = (struct block_cache *)b;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		GList *l;
		while ((l = g_queue_pop_head_link(&s->lru)))
			g_free(l->data);
		g_hash_table_destroy(s->chunks);
		pthread_mutex_destroy(&s->lock);
	}
	pthread_mutex_destroy(&c->write_lock);
	tm_block_disconnect(c->inner);
	g_free(b->source);
	g_free(c);
}

/* No get_fd: splicing from the inner device would bypass the cache, and a cached device
 * is one whose reads are expensive. */
static const struct tm_block_ops cache_ops = {
	.name = "cache",
	.get_info = cache_get_info,
	.read = cache_read,
	.write = cache_write,
	.write_bytes = cache_write_bytes,
	.flush = cache_flush,
	.lock_writer = cache_lock_writer,
	.unlock_writer = cache_unlock_writer,
	.changed = cache_changed,
	.identity = cache_identity,
	.disconnect = cache_disconnect,
};

struct tm_block *tm_block_cache_new(struct tm_block *inner, uint64_t cache_bytes)
{
	struct block_cache *c = g_new0(struct block_cache, 1);
	c->base.ops = &cache_ops;
	c->base.source = g_strdup(inner->source);
	c->inner = inner;
	tm_block_get_info(inner, &c->info);
	c->chunk_size = CHUNK > c->info.sector_size ? CHUNK : c->info.sector_size;
	uint64_t per_shard = cache_bytes / c->chunk_size / SHARDS;
	for (int i = 0; i < SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_mutex_init(&s->lock, NULL);
		s->chunks = g_hash_table_new(g_int64_hash, g_int64_equal);
		g_queue_init(&s->lru);
		s->capacity = per_shard ? per_shard : 1;
	}
	atomic_init(&c->next_expected, UINT64_MAX);
	atomic_init(&c->write_gen, 0);
	pthread_mutex_init(&c->write_lock, NULL);
	return &c->base;
}
