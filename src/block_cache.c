/* The cache decorator: fixed-size chunks of the inner device kept in LRU order, in shards
 * that each have their own lock, so that readers of different chunks rarely meet.  A miss
 * that continues a sequential run reads several chunks in one request (readahead).  The
 * inner device is never called with a shard lock held. */
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
};

static void cache_get_info(struct tm_block *b, struct tm_block_info *info)
{
	*info = ((struct block_cache *)b)->info;
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

static void insert(struct block_cache *c, uint64_t index, const uint8_t *data, uint32_t len)
{
	struct shard *s = shard_of(c, index);
	struct chunk *ch = g_malloc(sizeof *ch + len);
	ch->index = index;
	ch->len = len;
	ch->link = (GList){ .data = ch };
	memcpy(ch->data, data, len);
	pthread_mutex_lock(&s->lock);
	if (g_hash_table_contains(s->chunks, &index)) {
		pthread_mutex_unlock(&s->lock); /* another reader was first */
		g_free(ch);
		return;
	}
	g_hash_table_insert(s->chunks, &ch->index, ch);
	g_queue_push_head_link(&s->lru, &ch->link);
	struct chunk *evict = NULL;
	if (s->lru.length > s->capacity) {
		GList *l = g_queue_pop_tail_link(&s->lru);
		evict = l->data;
		g_hash_table_remove(s->chunks, &evict->index);
	}
	pthread_mutex_unlock(&s->lock);
	g_free(evict);
}

/* Read chunks [first, first+count) from the inner device and cache them. */
static int fill(struct block_cache *c, uint64_t first, uint64_t count, uint8_t *buf,
		struct tm_block_error *err)
{
	uint64_t dev = c->info.size_sectors * c->info.sector_size;
	uint64_t start = first * c->chunk_size;
	uint64_t end = (first + count) * c->chunk_size;
	if (end > dev)
		end = dev;
	struct iovec iov = { buf, (size_t)(end - start) };
	if (tm_block_read(c->inner, start / c->info.sector_size, &iov, 1, err) < 0)
		return -1;
	for (uint64_t i = 0; i < count && start + i * c->chunk_size < end; i++) {
		uint64_t off = i * c->chunk_size;
		uint64_t len = end - start - off < c->chunk_size ? end - start - off : c->chunk_size;
		insert(c, first + i, buf + off, (uint32_t)len);
	}
	return 0;
}

/* Bytes [off, off+len) (inside the device) into out, through the cache. */
static int cached_read(struct block_cache *c, uint8_t *out, size_t len, uint64_t off,
		       uint8_t **scratch, struct tm_block_error *err)
{
	uint64_t chunks = (c->info.size_sectors * c->info.sector_size + c->chunk_size - 1) /
			  c->chunk_size;
	while (len > 0) {
		uint64_t index = off / c->chunk_size;
		uint32_t from = (uint32_t)(off % c->chunk_size);
		uint32_t n = c->chunk_size - from < len ? c->chunk_size - from : (uint32_t)len;
		while (!lookup(c, index, from, n, out)) {
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
			if (fill(c, index, count, *scratch, err) < 0)
				return -1;
		}
		out += n, off += n, len -= n;
	}
	return 0;
}

static int cache_read(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		      struct tm_block_error *err)
{
	struct block_cache *c = (struct block_cache *)b;
	if (tm_block_check_range(&c->info, sector, iov, iovcnt, err) < 0)
		return -1;
	uint8_t *scratch = NULL; /* for misses only */
	uint64_t off = sector * c->info.sector_size;
	int rc = 0;
	for (int i = 0; i < iovcnt && rc == 0; i++) {
		rc = cached_read(c, iov[i].iov_base, iov[i].iov_len, off, &scratch, err);
		off += iov[i].iov_len;
	}
	g_free(scratch);
	return rc;
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
	.write = tm_block_write_read_only,
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
	return &c->base;
}
