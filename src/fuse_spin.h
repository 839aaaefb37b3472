/* Polling the FUSE device briefly before sleeping on it (tarmount -o spin=).
 *
 * A request costs its reader a wake-up of a daemon thread, and on a virtual machine a
 * wake-up of another CPU is much of what a FUSE round trip costs: here a pipe round trip
 * between two processes took 7-8 us on one CPU and 47-90 us across two (tests/bench/run's
 * first rows).  With spin_us, after each request one of the session's threads (never more
 * than one at a time) polls the device for up to spin_us microseconds before it blocks in
 * read(2): a request that follows within that time is taken at once, without the wake-up.
 * The others sleep as libfuse's threads do.  It costs up to one CPU while requests keep
 * coming, and spin_us of it after the last; measured on 2 cores: find -ls of the Linux
 * tarball 29 % faster, but reading every file of a .tar.zst 13-15 % slower (the poller
 * takes the CPU from decoding), hence off by default. */
#ifndef TM_FUSE_SPIN_H
#define TM_FUSE_SPIN_H

struct fuse_session;

/* Default of tarmount -o spin= (microseconds). */
#define TM_FUSE_SPIN_DEFAULT 0

/* Read se's requests this way from now on: after fuse_session_mount, before the session
 * loop.  spin_us 0 leaves the session as it is.  Returns 0, or -errno from libfuse (the
 * session then reads as before). */
int tm_fuse_spin_attach(struct fuse_session *se, unsigned spin_us);

#endif
