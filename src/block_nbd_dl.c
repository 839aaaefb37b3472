/* libnbd, loaded when the first NBD source is opened rather than when a program starts.
 *
 * Linking libnbd pulls in gnutls, libxml2 and their dependencies, and the dynamic loader
 * spent 6-7 ms on them before main() of every tarkv run and every mount (measured here:
 * a remount of a 1,000,000-entry archive in 13 ms, of which 7 went there), for the few runs
 * that name an NBD export.  So the core is linked without it, and these definitions of the
 * libnbd calls block_nbd.c makes forward to the real ones, found with dlopen/dlsym the first
 * time nbd_create is called.  Without the library, nbd_create fails and nbd_get_error says
 * what to install. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#include <libnbd.h>

#define LIBNBD_SONAME "libnbd.so.0"

/* Every libnbd function block_nbd.c calls: X(return type, name, (parameters), (arguments)). */
#define NBD_CALLS(X)                                                                        \
	X(int, nbd_aio_command_completed, (struct nbd_handle *h, uint64_t c), (h, c))           \
	X(int, nbd_aio_connect_uri, (struct nbd_handle *h, const char *u), (h, u))              \
	X(int, nbd_aio_disconnect, (struct nbd_handle *h, uint32_t f), (h, f))                  \
	X(int64_t, nbd_aio_flush, (struct nbd_handle *h, nbd_completion_callback cb,            \
				  uint32_t f), (h, cb, f))                                       \
	X(unsigned, nbd_aio_get_direction, (struct nbd_handle *h), (h))                         \
	X(int, nbd_aio_get_fd, (struct nbd_handle *h), (h))                                     \
	X(int, nbd_aio_is_closed, (struct nbd_handle *h), (h))                                  \
	X(int, nbd_aio_is_dead, (struct nbd_handle *h), (h))                                    \
	X(int, nbd_aio_is_ready, (struct nbd_handle *h), (h))                                   \
	X(int, nbd_aio_notify_read, (struct nbd_handle *h), (h))                                \
	X(int, nbd_aio_notify_write, (struct nbd_handle *h), (h))                               \
	X(int64_t, nbd_aio_pread, (struct nbd_handle *h, void *b, size_t n, uint64_t o,         \
				  nbd_completion_callback cb, uint32_t f), (h, b, n, o, cb, f))  \
	X(int64_t, nbd_aio_pwrite, (struct nbd_handle *h, const void *b, size_t n, uint64_t o,  \
				   nbd_completion_callback cb, uint32_t f), (h, b, n, o, cb, f)) \
	X(int, nbd_can_flush, (struct nbd_handle *h), (h))                                      \
	X(int, nbd_can_multi_conn, (struct nbd_handle *h), (h))                                 \
	X(int64_t, nbd_get_block_size, (struct nbd_handle *h, int t), (h, t))                   \
	X(int64_t, nbd_get_size, (struct nbd_handle *h), (h))                                   \
	X(int, nbd_is_read_only, (struct nbd_handle *h), (h))                                   \
	X(int, nbd_set_uri_allow_local_file, (struct nbd_handle *h, bool a), (h, a))            \
	X(int, nbd_set_uri_allow_transports, (struct nbd_handle *h, uint32_t m), (h, m))        \
	X(int, nbd_supports_tls, (struct nbd_handle *h), (h))                                   \
	X(int, nbd_supports_uri, (struct nbd_handle *h), (h))
/* And the ones that must answer even when the library could not be loaded. */
#define NBD_BASE_CALLS(X)                                                                   \
	X(struct nbd_handle *, nbd_create, (void), ())                                         \
	X(void, nbd_close, (struct nbd_handle *h), (h))                                         \
	X(const char *, nbd_get_error, (void), ())                                              \
	X(int, nbd_get_errno, (void), ())

static struct {
#define FIELD(ret, name, params, args) ret(*name) params;
	NBD_CALLS(FIELD)
	NBD_BASE_CALLS(FIELD)
#undef FIELD
	bool loaded;
	char why[300];
} lib;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void)
{
	void *h = dlopen(LIBNBD_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(lib.why, sizeof lib.why, "%s (install the Debian package libnbd0)",
			 dlerror());
		return;
	}
	const char *missing = NULL;
#define RESOLVE(ret, name, params, args)                                                    \
	if (!(*(void **)&lib.name = dlsym(h, #name)) && !missing)                               \
		missing = #name;
	NBD_CALLS(RESOLVE)
	NBD_BASE_CALLS(RESOLVE)
#undef RESOLVE
	if (missing) {
		snprintf(lib.why, sizeof lib.why, "%s has no %s (libnbd >= 1.14 is needed)",
			 LIBNBD_SONAME, missing);
		return;
	}
	lib.loaded = true;
}

/* Called only with a handle, which only a loaded library gives. */
#define FORWARD(ret, name, params, args)                                                    \
	ret name params                                                                         \
	{                                                                                       \
		return lib.name args;                                                           \
	}
NBD_CALLS(FORWARD)
#undef FORWARD

struct nbd_handle *nbd_create(void)
{
	pthread_once(&once, load);
	if (!lib.loaded) {
		errno = ENOENT;
		return NULL;
	}
	return lib.nbd_create();
}

void nbd_close(struct nbd_handle *h)
{
	if (h)
		lib.nbd_close(h);
}

const char *nbd_get_error(void)
{
	pthread_once(&once, load);
	return lib.loaded ? lib.nbd_get_error() : lib.why;
}

int nbd_get_errno(void)
{
	pthread_once(&once, load);
	return lib.loaded ? lib.nbd_get_errno() : ENOENT;
}
