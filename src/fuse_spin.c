/* Polling the FUSE device before sleeping on it (fuse_spin.h).  Through libfuse's custom I/O
 * hooks: replies are written (or spliced) as libfuse would, and only the read of a request
 * is changed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fuse_ops.h" /* libfuse, at our API version */
#include "fuse_spin.h"

static uint64_t spin_ns;
static struct fuse_session *session;
static atomic_flag spinner = ATOMIC_FLAG_INIT; /* set while a thread polls */

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Until a request (or the end of the connection: POLLERR) is there, or the time is up.
 * false: the session is ending (a signal came; the caller returns EINTR, as a read it
 * interrupts would, so that the loop sees the exit).  A signal mostly comes between two
 * polls, which return at once, hence the check of the session's state: otherwise the thread
 * would poll out its time and then sleep in read(2), with nothing coming to wake it. */
static bool poll_for(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t end = now_ns() + spin_ns;
	while (!fuse_session_exited(session) && poll(&p, 1, 0) == 0 && now_ns() < end)
		;
	return !fuse_session_exited(session);
}

static ssize_t spin_read(int fd, void *buf, size_t len, void *ud)
{
	(void)ud;
	if (!atomic_flag_test_and_set_explicit(&spinner, memory_order_acquire)) {
		bool ok = poll_for(fd);
		atomic_flag_clear_explicit(&spinner, memory_order_release);
		if (!ok) {
			errno = EINTR;
			return -1;
		}
	}
	return read(fd, buf, len);
}

static ssize_t plain_writev(int fd, struct iovec *iov, int count, void *ud)
{
	(void)ud;
	return writev(fd, iov, count);
}

static ssize_t plain_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			    unsigned int flags, void *ud)
{
	(void)ud;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int tm_fuse_spin_attach(struct fuse_session *se, unsigned spin_us)
{
	static const struct fuse_custom_io io = {
		.read = spin_read,
		.writev = plain_writev,
		/* Replies spliced from the archive stay spliced; requests are read, not spliced
		 * (tarmount does not ask for spliced requests). */
		.splice_send = plain_splice,
	};
	if (spin_us == 0)
		return 0;
	spin_ns = (uint64_t)spin_us * 1000u;
	session = se;
	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
