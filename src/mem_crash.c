/* Core dumps without plaintext in CPU registers. See mem.h.
 *
 * A core dump holds every thread's registers. A worker caught while it
 * copies a request body has that body's bytes in its vector registers
 * (glibc's AVX-512 memcpy leaves the last bytes it moved in zmm16 and up),
 * and the dump writes them out although the memory they came from is not
 * dumped. So on a signal whose default action dumps core, the thread that
 * took it first parks every other thread of the process in a handler that
 * clears its registers, clears its own, and only then lets the signal's
 * default action run. The registers each thread had when it was stopped
 * are saved by the kernel in the signal frame, on that thread's stack:
 * the threads that handle traffic have stacks excluded from dumps
 * (mem_nodump_stack), so that copy is not written out either.
 *
 * Everything the handlers call is async-signal-safe: raw syscalls, atomics
 * and the register-clearing asm. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define CRASH_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CRASH_SANITIZER 1
#endif
#endif
#ifndef CRASH_SANITIZER
#define CRASH_SANITIZER 0
#endif

/* Signals whose default action is a core dump (signal(7)). */
static const int dump_signals[] = { SIGABRT, SIGSEGV, SIGBUS, SIGILL,
				    SIGFPE,  SIGQUIT, SIGSYS, SIGTRAP,
				    SIGXCPU, SIGXFSZ };

/* How long the first thread waits for the others to park. Threads that
 * block the park signal never answer; the dump goes ahead without them. */
#define PARK_WAIT_NS (200 * 1000000L)

static int park_signal;     /* set once by install */
static int crash_owner;     /* tid of the thread that dumps; 0 before */
static unsigned parked;     /* threads cleared and parked */

static pid_t self_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Never returns: a parked thread stays in here until the process dies.
 * The kernel already hands a signal handler a fresh FPU/vector state (the
 * old one goes to the signal frame); clearing again costs nothing and does
 * not lean on that. */
static void park_forever(void)
{
	mem_scrub_registers();
	__atomic_add_fetch(&parked, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
}

static void on_park(int sig)
{
	(void)sig;
	park_forever();
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static pid_t parse_tid(const char *s)
{
	pid_t v = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* Sends the park signal to every other thread; returns how many got it. */
static unsigned park_others(pid_t me)
{
	unsigned sent = 0;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/task",
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	char buf[4096] __attribute__((aligned(8)));
	long n;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d =
				(struct linux_dirent64 *)(void *)(buf + off);
			pid_t tid = parse_tid(d->d_name);
			if (tid > 0 && tid != me &&
			    syscall(SYS_tgkill, getpid(), tid, park_signal) ==
				    0)
				sent++;
			off += d->d_reclen;
		}
	}
	syscall(SYS_close, fd);
	return sent;
}

static void wait_parked(unsigned want)
{
	struct timespec step = { 0, 1000000L };
	for (long waited = 0; waited < PARK_WAIT_NS; waited += step.tv_nsec) {
		if (__atomic_load_n(&parked, __ATOMIC_ACQUIRE) >= want)
			return;
		nanosleep(&step, NULL);
	}
}

static void on_fatal(int sig)
{
	pid_t me = self_tid(), none = 0;
	if (!__atomic_compare_exchange_n(&crash_owner, &none, me, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		/* Another thread is already dumping (or this one faulted
		 * again inside the handler: then fall through to the
		 * default action at once). */
		if (none != me)
			park_forever();
	} else {
		wait_parked(park_others(me));
	}
	mem_scrub_registers();
	/* The default action, now: the handler's own frame is what this
	 * thread's registers show in the dump. */
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	sigset_t one;
	sigemptyset(&one);
	sigaddset(&one, sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	syscall(SYS_tgkill, getpid(), me, sig);
	/* A signal that was blocked or ignored by the default action (it
	 * is not for these) would land here; leave the hard way. */
	syscall(SYS_exit_group, 128 + sig);
}

int mem_crash_guard_install(void)
{
	/* The sanitizer runtime owns these signals and prints its report
	 * from them; its builds are for finding bugs, not for dumps. */
	if (CRASH_SANITIZER)
		return 0;
	park_signal = SIGRTMIN + 3;
	struct sigaction sa = { .sa_handler = on_park };
	sigfillset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (sigaction(park_signal, &sa, NULL))
		return -errno;
	for (size_t i = 0; i < sizeof(dump_signals) / sizeof(*dump_signals);
	     i++) {
		struct sigaction fa = { .sa_handler = on_fatal };
		/* Other signals wait while the dump is prepared; the park
		 * signal must still reach the threads. */
		sigfillset(&fa.sa_mask);
		sigdelset(&fa.sa_mask, park_signal);
		for (size_t j = 0;
		     j < sizeof(dump_signals) / sizeof(*dump_signals); j++)
			sigdelset(&fa.sa_mask, dump_signals[j]);
		fa.sa_flags = SA_NODEFER;
		if (sigaction(dump_signals[i], &fa, NULL))
			return -errno;
	}
	return 0;
}
