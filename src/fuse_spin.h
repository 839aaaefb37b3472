/* Polling the FUSE device briefly before sleeping on it.
 *
 * A request costs its reader a wake-up of a daemon thread, and each wake-up of another CPU
 * is what a FUSE round trip mostly is on a virtual machine: here a pipe round trip between
 * two processes takes 8 us on one CPU and 85 us across two (tests/bench/run's first rows).
 * So after each request one of the session's threads (never more than one at a time) polls
 * the device for up to spin_us microseconds before it blocks in read(2): a request that
 * follows within that time is taken at once, without the wake-up.  The others sleep as
 * libfuse's threads do.  This costs up to one CPU while requests keep coming, and
 * spin_us of it after the last. */
#ifndef TM_FUSE_SPIN_H
#define TM_FUSE_SPIN_H

struct fuse_session;

/* Default of tarmount -o spin= (microseconds). */
#define TM_FUSE_SPIN_DEFAULT 200

/* Read se's requests this way from now on: after fuse_session_mount, before the session
 * loop.  spin_us 0 leaves the session as it is.  Returns 0, or -errno from libfuse (the
 * session then reads as before). */
int tm_fuse_spin_attach(struct fuse_session *se, unsigned spin_us);

#endif
