/* The NBD backend: an export read (and, opened read_write, written) through libnbd.
 *
 * Up to NBD_CONNS connections when the server allows multi-conn, one otherwise; a request
 * takes one connection for its whole duration (its slot lock), since libnbd's aio state
 * machine must be driven by one thread at a time.  Requests go out with nbd_aio_pread or
 * nbd_aio_pwrite and a poll(2) loop bounded by the timeout, so that a server that dies or
 * stalls fails requests instead of hanging them.  A connection that died or timed out is
 * closed and reopened on its next use, so requests work again once the server is back.
 *
 * Writing over several connections: multi-conn promises only that a write, then a flush on
 * any connection, then a read on any connection sees the write (the NBD protocol's
 * NBD_FLAG_CAN_MULTI_CONN; nbdkit-multi-conn-filter(1)).  So several connections are kept
 * for a writable export only when the server can flush too, and a write marks every other
 * connection stale: a read there flushes first.  Durability: writes count in a generation
 * (written_gen); a flush that succeeds covers every write completed before it was sent
 * (flushed_gen).  A connection closed while it carried writes no flush covers (it died, the
 * server may have restarted) poisons the backend: every later flush fails, since those
 * writes may be lost.  So does a failed flush. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <libnbd.h>

#include "block.h"

#define NBD_CONNS 4                  /* connections when the server allows multi-conn */
#define NBD_CHUNK (4u << 20)         /* largest request unless the server wants less */
#define NBD_INFLIGHT 8               /* requests in flight on one connection */
#define NBD_DEFAULT_TIMEOUT 30       /* seconds */
#define NBD_SHUTDOWN_MS 2000         /* polite disconnects wait no longer than this */
#define NBD_EXTRA_MS 2000            /* time to open the extra multi-conn connections */
#define NBD_STALL_GRACE_MS 1000      /* after a timeout, fail at once for this long */

struct nbd_slot {
	pthread_mutex_t lock; /* held for a whole request */
	struct nbd_handle *h; /* NULL: not connected, connect on next use */
	uint64_t last_write;  /* generation of the last write completed on h */
	atomic_bool stale;    /* another connection wrote since this one last flushed */
};

struct block_nbd {
	struct tm_block base;
	struct tm_block_info info;
	uint64_t export_size; /* bytes, when first connected: a reconnect must see the same */
	uint64_t readable;    /* bytes that can be read: export_size, less a tail shorter than
			       * the server's minimum block size */
	uint32_t chunk;       /* largest request: a multiple of the sector size */
	int64_t timeout_ms;
	bool rw;              /* opened read_write (and the export is writable) */
	bool can_flush;       /* the server offers NBD_CMD_FLUSH */
	_Atomic uint64_t written_gen; /* writes completed */
	_Atomic uint64_t flushed_gen; /* writes a successful flush covers */
	/* Sticky: a flush failed (its errno), or a connection with writes no flush covered was
	 * lost (ECONNRESET). */
	_Atomic int poisoned;
	unsigned nslots;
	atomic_uint next; /* round robin over slots */
	/* When a request last timed out (0: never).  Requests in the next NBD_STALL_GRACE_MS
	 * fail at once: the kernel retries a failed FUSE read straight away, and a reader
	 * queued behind the one that timed out would otherwise wait a whole timeout more. */
	_Atomic int64_t stalled_at;
	struct nbd_slot slots[NBD_CONNS];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fill err from libnbd's last error in this thread.  libnbd's message usually ends with
 * strerror of its errno, which tm_block_strerror prints again: drop that tail. */
static int nbd_fail(struct tm_block_error *err, enum tm_block_code code, const char *fallback)
{
	const char *msg = nbd_get_error();
	int e = nbd_get_errno();
	if (!msg || !*msg)
		msg = fallback;
	size_t len = strlen(msg);
	if (e) {
		const char *sys = strerror(e);
		size_t sl = strlen(sys);
		if (len > sl + 2 && !strcmp(msg + len - sl, sys) && !strncmp(msg + len - sl - 2, ": ", 2))
			len -= sl + 2;
	}
	return tm_block_fail(err, code, e ? e : EIO, "%.*s", (int)len, msg);
}

static bool nbd_gone(struct nbd_handle *h)
{
	return nbd_aio_is_dead(h) > 0 || nbd_aio_is_closed(h) > 0;
}

/* One turn of the aio state machine: wait until the socket is ready in the direction libnbd
 * wants (or *deadline passes) and let libnbd read or write.  Bytes from or to the server push
 * *deadline to at least extend_ms from now: a request fails when the server falls silent, not
 * when a big transfer is merely slow.  Returns 0, or -1 with err filled (ETIMEDOUT at the
 * deadline). */
static int pump(struct nbd_handle *h, int64_t *deadline, int64_t extend_ms,
		struct tm_block_error *err)
{
	for (;;) {
		unsigned dir = nbd_aio_get_direction(h);
		int fd = nbd_aio_get_fd(h);
		if (fd < 0)
			return nbd_fail(err, TM_BLOCK_IO, "not connected");
		if (!(dir & LIBNBD_AIO_DIRECTION_BOTH))
			return tm_block_fail(err, TM_BLOCK_IO, EIO, "connection is idle");
		int64_t left = *deadline - now_ms();
		if (left <= 0 && extend_ms > 0)
			return tm_block_fail(err, TM_BLOCK_IO, ETIMEDOUT,
					     "no reply from the server for %lld s",
					     (long long)(extend_ms / 1000));
		if (left <= 0)
			return tm_block_fail(err, TM_BLOCK_IO, ETIMEDOUT,
					     "the server did not answer in time");
		struct pollfd p = {
			.fd = fd,
			.events = (short)((dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
					  (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0)),
		};
		int r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return tm_block_fail(err, TM_BLOCK_IO, errno, "poll");
		if (r == 0)
			continue;
		int rc = 0;
		if ((dir & LIBNBD_AIO_DIRECTION_READ) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			int64_t later = now_ms() + extend_ms;
			if (later > *deadline)
				*deadline = later;
			rc = nbd_aio_notify_read(h);
		} else if ((dir & LIBNBD_AIO_DIRECTION_WRITE) &&
			   (p.revents & (POLLOUT | POLLHUP | POLLERR))) {
			/* Sending a big write is progress too. */
			int64_t later = now_ms() + extend_ms;
			if (later > *deadline)
				*deadline = later;
			rc = nbd_aio_notify_write(h);
		} else if (p.revents & POLLNVAL) {
			return tm_block_fail(err, TM_BLOCK_IO, EBADF, "poll");
		}
		if (rc < 0)
			return nbd_fail(err, TM_BLOCK_IO, "connection lost");
		return 0;
	}
}

/* Open a connection to uri and finish the handshake before deadline.  Returns NULL with err
 * filled (TM_BLOCK_INVALID for a URI libnbd rejects, TM_BLOCK_OPEN otherwise). */
static struct nbd_handle *connect_uri(const char *uri, int64_t deadline,
				      struct tm_block_error *err)
{
	struct nbd_handle *h = nbd_create();
	if (!h) {
		nbd_fail(err, TM_BLOCK_OPEN, "cannot create a libnbd handle");
		return NULL;
	}
	bool tls = !strncmp(uri, "nbds", 4);
	if (nbd_supports_uri(h) != 1) {
		tm_block_fail(err, TM_BLOCK_INVALID, ENOTSUP, "this libnbd cannot parse NBD URIs");
		goto fail;
	}
	if (tls && nbd_supports_tls(h) != 1) {
		tm_block_fail(err, TM_BLOCK_INVALID, ENOTSUP,
			      "this libnbd was built without TLS, which %s URIs need",
			      uri[4] == '+' ? "nbds+unix://" : "nbds://");
		goto fail;
	}
	/* The URI is the user's own: a tls-psk-file it names may be read. */
	if (nbd_set_uri_allow_transports(h, LIBNBD_ALLOW_TRANSPORT_TCP |
						    LIBNBD_ALLOW_TRANSPORT_UNIX) < 0 ||
	    nbd_set_uri_allow_local_file(h, true) < 0) {
		nbd_fail(err, TM_BLOCK_OPEN, "configuring the handle");
		goto fail;
	}
	if (nbd_aio_connect_uri(h, uri) < 0) {
		int e = nbd_get_errno();
		nbd_fail(err, e == EINVAL || e == EPROTONOSUPPORT ? TM_BLOCK_INVALID : TM_BLOCK_OPEN,
			 "cannot connect");
		goto fail;
	}
	while (nbd_aio_is_ready(h) != 1) {
		if (nbd_gone(h)) {
			tm_block_fail(err, TM_BLOCK_OPEN, ECONNRESET,
				      "the server closed the connection during the handshake");
			goto fail;
		}
		if (pump(h, &deadline, 0, err) < 0) {
			err->code = TM_BLOCK_OPEN;
			goto fail;
		}
	}
	return h;
fail:
	nbd_close(h);
	return NULL;
}

/* Tell the server goodbye if it listens before deadline, then close.  (nbd_shutdown waits
 * without a bound for a server that stalls.) */
static void close_politely(struct nbd_handle *h, int64_t deadline)
{
	if (nbd_aio_is_ready(h) == 1 && nbd_aio_disconnect(h, 0) == 0) {
		while (!nbd_gone(h) && pump(h, &deadline, 0, NULL) == 0)
			;
	}
	nbd_close(h);
}

/* A fresh connection for a slot: the export must still be the one first opened. */
static struct nbd_handle *reconnect(struct block_nbd *n, int64_t deadline,
				    struct tm_block_error *err)
{
	struct nbd_handle *h = connect_uri(n->base.source, deadline, err);
	if (!h) {
		err->code = TM_BLOCK_IO; /* for the read that needed it */
		return NULL;
	}
	int64_t size = nbd_get_size(h), min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	if (size < 0 || min < 0) {
		nbd_fail(err, TM_BLOCK_IO, "export size");
	} else if ((uint64_t)size != n->export_size || (uint64_t)min > n->info.sector_size) {
		tm_block_fail(err, TM_BLOCK_IO, EIO,
			      "after reconnecting, the export has %lld bytes in blocks of %lld, "
			      "not %llu in blocks of %u", (long long)size, (long long)min,
			      (unsigned long long)n->export_size, n->info.sector_size);
	} else if (n->rw && nbd_is_read_only(h) != 0) {
		tm_block_fail(err, TM_BLOCK_READ_ONLY, 0,
			      "after reconnecting, the NBD export is read-only");
	} else if (n->rw && n->can_flush && nbd_can_flush(h) != 1) {
		tm_block_fail(err, TM_BLOCK_IO, EIO,
			      "after reconnecting, the server no longer offers flush");
	} else {
		return h;
	}
	close_politely(h, now_ms() + NBD_SHUTDOWN_MS);
	return NULL;
}

/* The chunks of one request: consecutive device bytes from off into the iovecs. */
struct cursor {
	const struct iovec *iov;
	int iovcnt, i;
	size_t at; /* bytes of iov[i] done */
	uint64_t off;
};

static bool next_chunk(struct cursor *c, size_t max, void **buf, size_t *len, uint64_t *off)
{
	while (c->i < c->iovcnt && c->at == c->iov[c->i].iov_len)
		c->i++, c->at = 0;
	if (c->i == c->iovcnt)
		return false;
	size_t n = c->iov[c->i].iov_len - c->at;
	*len = n < max ? n : max;
	*buf = (uint8_t *)c->iov[c->i].iov_base + c->at;
	*off = c->off;
	c->at += *len, c->off += *len;
	return true;
}

/* Read or write the request on h, NBD_INFLIGHT chunks at a time.  On return nothing is in
 * flight that could still use the buffers, unless *broken: then h must be closed. */
static int io_on(struct block_nbd *n, struct nbd_handle *h, bool write, uint64_t off,
		 const struct iovec *iov, int iovcnt, int64_t *deadline, bool *broken,
		 struct tm_block_error *err)
{
	struct cursor c = { .iov = iov, .iovcnt = iovcnt, .off = off };
	int64_t cookies[NBD_INFLIGHT];
	uint64_t offsets[NBD_INFLIGHT];
	int nin = 0, rc = 0;
	for (;;) {
		void *buf;
		size_t len;
		uint64_t at;
		while (rc == 0 && nin < NBD_INFLIGHT && next_chunk(&c, n->chunk, &buf, &len, &at)) {
			if (at + len > n->readable) { /* the last sector, partly past the end */
				size_t keep = at < n->readable ? (size_t)(n->readable - at) : 0;
				if (!write)
					memset((uint8_t *)buf + keep, 0, len - keep);
				if ((len = keep) == 0)
					continue;
			}
			int64_t ck = write ? nbd_aio_pwrite(h, buf, len, at, NBD_NULL_COMPLETION, 0)
					   : nbd_aio_pread(h, buf, len, at, NBD_NULL_COMPLETION, 0);
			if (ck < 0) {
				rc = nbd_fail(err, TM_BLOCK_IO, write ? "cannot send a write request"
								      : "cannot send a read request");
			} else {
				offsets[nin] = at;
				cookies[nin++] = ck;
			}
		}
		for (int k = 0; k < nin;) {
			int r = nbd_aio_command_completed(h, cookies[k]);
			if (r == 0) {
				k++;
				continue;
			}
			if (r < 0 && rc == 0 && write) {
				int e = nbd_get_errno();
				if (!e)
					e = EIO;
				rc = tm_block_fail(err, tm_block_write_code(e), e,
						   "the server failed a write at byte %llu",
						   (unsigned long long)offsets[k]);
			} else if (r < 0 && rc == 0) {
				rc = nbd_fail(err, TM_BLOCK_IO, "read failed");
			}
			offsets[k] = offsets[nin - 1];
			cookies[k] = cookies[--nin];
		}
		if (nin == 0 && (rc < 0 || c.i == c.iovcnt))
			break;
		if (nin == 0)
			continue;
		int prc = nbd_gone(h) ? tm_block_fail(err, TM_BLOCK_IO, ECONNRESET, "connection lost")
				      : pump(h, deadline, n->timeout_ms, err);
		if (prc < 0) {
			*broken = true; /* commands still in flight: only closing h stops them */
			return -1;
		}
	}
	*broken = nbd_gone(h);
	return rc;
}

/* Flush on h: every write completed before (on any connection, with multi-conn) is then
 * durable and visible on every connection.  *broken as for io_on. */
static int flush_on(struct block_nbd *n, struct nbd_handle *h, int64_t *deadline, bool *broken,
		    struct tm_block_error *err)
{
	int64_t ck = nbd_aio_flush(h, NBD_NULL_COMPLETION, 0);
	if (ck < 0) {
		*broken = nbd_gone(h);
		return nbd_fail(err, TM_BLOCK_IO, "cannot send a flush request");
	}
	for (;;) {
		int r = nbd_aio_command_completed(h, ck);
		if (r > 0)
			break;
		if (r < 0) {
			int e = nbd_get_errno();
			*broken = nbd_gone(h);
			return tm_block_fail(err, tm_block_write_code(e ? e : EIO), e ? e : EIO,
					     "the server failed a flush");
		}
		int prc = nbd_gone(h) ? tm_block_fail(err, TM_BLOCK_IO, ECONNRESET, "connection lost")
				      : pump(h, deadline, n->timeout_ms, err);
		if (prc < 0) {
			*broken = true;
			return -1;
		}
	}
	*broken = nbd_gone(h);
	return 0;
}

/* Close a slot's connection.  Writes it completed that no flush covers may be lost with it
 * (the server may have died): poison the backend, so that the next flush says so. */
static void close_slot(struct block_nbd *n, struct nbd_slot *s)
{
	nbd_close(s->h);
	s->h = NULL;
	if (s->last_write > atomic_load(&n->flushed_gen)) {
		int zero = 0;
		atomic_compare_exchange_strong(&n->poisoned, &zero, ECONNRESET);
	}
}

static void covered(struct block_nbd *n, uint64_t gen)
{
	uint64_t f = atomic_load(&n->flushed_gen);
	while (f < gen && !atomic_compare_exchange_weak(&n->flushed_gen, &f, gen))
		;
}

static int poisoned_fail(struct block_nbd *n, struct tm_block_error *err)
{
	int e = atomic_load(&n->poisoned);
	if (e == ECONNRESET)
		return tm_block_fail(err, TM_BLOCK_IO, e,
				     "a connection was lost after writes no flush had covered: "
				     "they may not have reached the export");
	return tm_block_fail(err, tm_block_write_code(e), e,
			     "an earlier flush failed: what was written before it may not have "
			     "reached the export");
}

/* Lock a slot: a free one if any, else wait for the round robin's choice. */
static struct nbd_slot *take_slot(struct block_nbd *n)
{
	unsigned start = atomic_fetch_add_explicit(&n->next, 1, memory_order_relaxed);
	for (unsigned k = 0; k < n->nslots; k++) {
		struct nbd_slot *s = &n->slots[(start + k) % n->nslots];
		if (pthread_mutex_trylock(&s->lock) == 0)
			return s;
	}
	struct nbd_slot *s = &n->slots[start % n->nslots];
	pthread_mutex_lock(&s->lock);
	return s;
}

static void nbd_get_info_(struct tm_block *b, struct tm_block_info *info)
{
	*info = ((struct block_nbd *)b)->info;
}

/* Flush slot s (locked, connected) if another connection wrote since it last did: under
 * multi-conn, only then does a read on it see those writes. */
static int unstale(struct block_nbd *n, struct nbd_slot *s, int64_t *deadline, bool *broken,
		   struct tm_block_error *err)
{
	if (!atomic_exchange(&s->stale, false))
		return 0;
	uint64_t gen = atomic_load(&n->written_gen);
	if (flush_on(n, s->h, deadline, broken, err) < 0) {
		atomic_store(&s->stale, true);
		if (!*broken) { /* the server refused it: sticky, like any failed flush */
			int zero = 0;
			atomic_compare_exchange_strong(&n->poisoned, &zero, err->sys_errno);
		}
		return -1;
	}
	covered(n, gen);
	return 0;
}

enum nbd_op { OP_READ, OP_WRITE, OP_FLUSH };

/* One request on a slot: connect it if needed, retry once on a fresh connection when the
 * old one had died while idle; a timeout makes the next requests fail at once for a while. */
static int nbd_request(struct block_nbd *n, enum nbd_op op, uint64_t off, const struct iovec *iov,
		       int iovcnt, struct tm_block_error *err)
{
	struct nbd_slot *s = take_slot(n);
	int64_t start = now_ms(), deadline = start + n->timeout_ms;
	int64_t stalled = atomic_load(&n->stalled_at);
	if (stalled && start - stalled < NBD_STALL_GRACE_MS) {
		pthread_mutex_unlock(&s->lock);
		return tm_block_fail(err, TM_BLOCK_IO, ETIMEDOUT,
				     "no reply from the server for %lld s",
				     (long long)(n->timeout_ms / 1000));
	}
	int rc = -1;
	/* A connection that died while idle (the server restarted) gets one retry on a new
	 * one; a fresh connection that fails, or a timeout, does not. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = !s->h, broken = false;
		if (!s->h && !(s->h = reconnect(n, deadline, err)))
			break;
		/* A new connection sees only writes a flush has covered, even this slot's own. */
		if (fresh && atomic_load(&n->written_gen) > atomic_load(&n->flushed_gen))
			atomic_store(&s->stale, true);
		uint64_t gen = atomic_load(&n->written_gen);
		if (op == OP_FLUSH) {
			atomic_store(&s->stale, false); /* before: a write after it sets it again */
			rc = flush_on(n, s->h, &deadline, &broken, err);
			if (rc == 0)
				covered(n, gen);
			else
				atomic_store(&s->stale, true);
		} else {
			rc = op == OP_READ && n->can_flush ? unstale(n, s, &deadline, &broken, err) : 0;
			if (rc == 0)
				rc = io_on(n, s->h, op == OP_WRITE, off, iov, iovcnt, &deadline, &broken,
					   err);
		}
		if (rc == 0 && op == OP_WRITE) {
			s->last_write = atomic_fetch_add(&n->written_gen, 1) + 1;
			for (unsigned i = 0; i < n->nslots; i++)
				if (&n->slots[i] != s)
					atomic_store(&n->slots[i].stale, true);
		}
		if (broken)
			close_slot(n, s);
		if (rc == 0 || !broken || fresh || err->sys_errno == ETIMEDOUT)
			break;
	}
	if (rc < 0 && err->sys_errno == ETIMEDOUT)
		atomic_store(&n->stalled_at, now_ms());
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int nbd_read_(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		     struct tm_block_error *err)
{
	struct block_nbd *n = (struct block_nbd *)b;
	struct tm_block_error ignored;
	if (!err)
		err = &ignored;
	int64_t bytes = tm_block_check_range(&n->info, sector, iov, iovcnt, err);
	if (bytes <= 0)
		return (int)bytes;
	return nbd_request(n, OP_READ, sector * n->info.sector_size, iov, iovcnt, err);
}

static int nbd_write_(struct tm_block *b, uint64_t sector, const struct iovec *iov, int iovcnt,
		      struct tm_block_error *err)
{
	struct block_nbd *n = (struct block_nbd *)b;
	if (!n->rw)
		return tm_block_write_read_only(b, sector, iov, iovcnt, err);
	struct tm_block_error ignored;
	if (!err)
		err = &ignored;
	int64_t bytes = tm_block_check_write_range(&n->info, sector, iov, iovcnt, err);
	if (bytes <= 0)
		return (int)bytes;
	return nbd_request(n, OP_WRITE, sector * n->info.sector_size, iov, iovcnt, err);
}

/* Without flush on the server (info.no_flush) there is nothing to ask: writes are as durable
 * as the server keeps them. */
static int nbd_flush_(struct tm_block *b, struct tm_block_error *err)
{
	struct block_nbd *n = (struct block_nbd *)b;
	struct tm_block_error ignored;
	if (!err)
		err = &ignored;
	if (!n->rw)
		return 0;
	if (atomic_load(&n->poisoned))
		return poisoned_fail(n, err);
	if (!n->can_flush)
		return 0;
	if (atomic_load(&n->written_gen) <= atomic_load(&n->flushed_gen))
		return 0; /* nothing written since the last flush */
	if (nbd_request(n, OP_FLUSH, 0, NULL, 0, err) == 0)
		return atomic_load(&n->poisoned) ? poisoned_fail(n, err) : 0;
	/* Sticky, unless it never reached the server (that one is then poisoned, or not, by
	 * close_slot, according to what it carried). */
	if (err->sys_errno != ETIMEDOUT && err->sys_errno != ECONNRESET) {
		int zero = 0;
		atomic_compare_exchange_strong(&n->poisoned, &zero, err->sys_errno ? err->sys_errno : EIO);
	}
	return -1;
}

/* NBD has no locks: any client the server lets in may write. */
static int nbd_lock_writer_(struct tm_block *b, bool wait, struct tm_block_error *err)
{
	(void)b, (void)wait;
	return tm_block_fail(err, TM_BLOCK_NOT_SUPPORTED, 0,
			     "an NBD export has no writer lock: nothing stops another client "
			     "writing it");
}

static void nbd_disconnect_(struct tm_block *b)
{
	struct block_nbd *n = (struct block_nbd *)b;
	int64_t deadline = now_ms() + NBD_SHUTDOWN_MS; /* for all the connections together */
	for (unsigned i = 0; i < n->nslots; i++) {
		if (n->slots[i].h)
			close_politely(n->slots[i].h, deadline);
		pthread_mutex_destroy(&n->slots[i].lock);
	}
	g_free(b->source);
	g_free(n);
}

static const struct tm_block_ops nbd_ops = {
	.name = "nbd",
	.get_info = nbd_get_info_,
	.read = nbd_read_,
	.write = nbd_write_,
	.flush = nbd_flush_,
	.lock_writer = nbd_lock_writer_,
	.disconnect = nbd_disconnect_,
};

/* Sector size, request size and sector count from the first connection's handshake. */
static int take_geometry(struct block_nbd *n, struct nbd_handle *h, struct tm_block_error *err)
{
	int64_t size = nbd_get_size(h);
	int64_t min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	int64_t max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	if (size < 0 || min < 0 || max < 0)
		return nbd_fail(err, TM_BLOCK_OPEN, "export size");
	uint32_t ss = 512;
	while (ss < min && ss < (1u << 30))
		ss <<= 1;
	if (ss < min)
		return tm_block_fail(err, TM_BLOCK_INVALID, 0, "minimum block size %lld",
				     (long long)min);
	/* The protocol only reaches whole blocks of the minimum size (1 when not advertised:
	 * servers that do not say accept any length); past the end of the last readable byte,
	 * the last sector reads as zeros. */
	uint64_t unit = min > 0 ? (uint64_t)min : 1;
	uint64_t readable = (uint64_t)size - (uint64_t)size % unit;
	uint64_t chunk = NBD_CHUNK > ss ? NBD_CHUNK : ss;
	if (max > 0 && (uint64_t)max < chunk)
		chunk = (uint64_t)max - (uint64_t)max % ss;
	if (chunk == 0)
		return tm_block_fail(err, TM_BLOCK_INVALID, 0,
				     "maximum block size %lld is below the sector size %u",
				     (long long)max, ss);
	n->export_size = (uint64_t)size;
	n->readable = readable;
	n->chunk = (uint32_t)chunk;
	n->info = (struct tm_block_info){
		.read_write = n->rw,
		.no_flush = n->rw && !n->can_flush,
		.sector_size = ss,
		.size_sectors = (readable + ss - 1) / ss,
		.size_bytes = readable,
	};
	return 0;
}

struct tm_block *tm_block_nbd_open(const char *uri, const struct tm_block_options *opts,
				   struct tm_block_error *err)
{
	struct tm_block_error ignored;
	if (!err)
		err = &ignored;
	unsigned timeout = opts && opts->timeout ? opts->timeout : NBD_DEFAULT_TIMEOUT;
	int64_t timeout_ms = (int64_t)timeout * 1000;
	struct nbd_handle *h = connect_uri(uri, now_ms() + timeout_ms, err);
	if (!h)
		return NULL;
	struct block_nbd *n = g_new0(struct block_nbd, 1);
	n->base.ops = &nbd_ops;
	n->base.source = g_strdup(uri);
	n->timeout_ms = timeout_ms;
	n->rw = opts && opts->read_write;
	n->can_flush = nbd_can_flush(h) == 1;
	int ro = n->rw ? nbd_is_read_only(h) : 0;
	if (ro != 0) {
		if (ro < 0)
			nbd_fail(err, TM_BLOCK_OPEN, "export flags");
		else
			tm_block_fail(err, TM_BLOCK_READ_ONLY, 0, "the NBD export is read-only");
	}
	if (ro != 0 || take_geometry(n, h, err) < 0) {
		close_politely(h, now_ms() + NBD_SHUTDOWN_MS);
		g_free(n->base.source);
		g_free(n);
		return NULL;
	}
	/* A writable export on several connections needs flush to make writes on one visible
	 * on the others. */
	unsigned want = nbd_can_multi_conn(h) == 1 && (!n->rw || n->can_flush) ? NBD_CONNS : 1;
	for (unsigned i = 0; i < want; i++)
		pthread_mutex_init(&n->slots[i].lock, NULL);
	n->slots[0].h = h;
	n->nslots = 1;
	/* The other connections now, while the server is known to be up, each within what is
	 * left of a short shared deadline: a server that offers multi-conn but serves one client
	 * at a time must not make the open slow.  Use as many as connected. */
	int64_t extra_deadline = now_ms() + (timeout_ms < NBD_EXTRA_MS ? timeout_ms : NBD_EXTRA_MS);
	while (n->nslots < want &&
	       (n->slots[n->nslots].h = reconnect(n, extra_deadline, &ignored)) != NULL)
		n->nslots++;
	for (unsigned i = n->nslots; i < want; i++)
		pthread_mutex_destroy(&n->slots[i].lock);
	return &n->base;
}
