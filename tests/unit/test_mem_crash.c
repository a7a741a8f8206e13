/* Tests for src/mem_crash.c: a core dump shows no thread's registers as
 * they were while it held plaintext.
 *
 * Each case runs in a fork child, so the signals really kill a process:
 *   - the default action of SIGABRT (raised as abort() raises it), a
 *     segfault and a SIGQUIT sent from outside still happens with the
 *     guard installed, with threads running;
 *   - a real kernel core dump (core_pattern naming a file in the current
 *     directory) of a child whose thread keeps 32 random bytes only in its
 *     vector registers (ymm1, and ymm17 where AVX-512 has it) holds neither
 *     16-byte half of them with the guard. The same child without the guard
 *     is dumped first and must show them: otherwise the search proves
 *     nothing, and the test fails as broken.
 * Skipped in sanitizer builds, where the guard is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sealtap/mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Skips where there is nothing to test: no guard in sanitizer builds, and
 * the secret is planted in ymm registers. */
static void need_guard(void)
{
	if (SANITIZED) {
		print_message("sanitizer build: the crash guard is not "
			      "installed\n");
		skip();
	}
	if (!__builtin_cpu_supports("avx")) {
		print_message("no AVX: the test plants in ymm registers\n");
		skip();
	}
}

#define SECRET_LEN 32

/* ---- the child -------------------------------------------------------------- */

/* Loads 32 bytes into ymm1 (and ymm17 with AVX-512) and spins without
 * touching a vector register again. The stack copy is wiped first, and
 * the stack is not dumped: the registers are the only place left. The
 * secret goes to |arg| (a pipe's write end) once made; a planter that
 * fails writes nothing, and the parent's read comes up short. */
static void *planter(void *arg)
{
	int ready_fd = *(int *)arg;
	uint8_t s[SECRET_LEN] __attribute__((aligned(32)));
	if (mem_nodump_stack() != 0 ||
	    getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s) ||
	    write(ready_fd, s, sizeof(s)) != (ssize_t)sizeof(s))
		return NULL;
	__asm__ volatile("vmovdqu (%0), %%ymm1" ::"r"(s) : "memory");
	if (__builtin_cpu_supports("avx512vl"))
		__asm__ volatile("vmovdqu64 (%0), %%ymm17" ::"r"(s) : "memory");
	/* Byte by byte through volatile: the compiler may not turn this
	 * into vector stores, which would put the bytes in more registers. */
	for (volatile uint8_t *v = s; v < s + sizeof(s); v++)
		*v = 0;
	__asm__ volatile("1: pause\n\tjmp 1b" ::: "memory");
	return NULL;
}

static void *spinner(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

enum how { HOW_ABORT, HOW_SEGV, HOW_WAIT };

/* An address in the never-mapped first page, hidden from the compiler. */
static volatile uintptr_t unmapped = 8;

/* The child: guard or not, a planter and two idle threads, then dies as
 * told (HOW_WAIT: until the parent sends a signal). Returns only if its
 * set-up fails, with a code the parent reports. */
static int child(bool guard, enum how how, int ready_fd, bool dump)
{
	/* cmocka catches some of these signals to report a crashing test;
	 * the child must die of them as a program does. */
	static const int sigs[] = { SIGABRT, SIGSEGV, SIGBUS, SIGILL,
				    SIGFPE,  SIGSYS,  SIGQUIT };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(*sigs); i++)
		signal(sigs[i], SIG_DFL);
	struct rlimit rl = { dump ? RLIM_INFINITY : 0, dump ? RLIM_INFINITY : 0 };
	if (setrlimit(RLIMIT_CORE, &rl))
		return 93;
	prctl(PR_SET_DUMPABLE, 1);
	if (guard && mem_crash_guard_install() != 0)
		return 94;
	pthread_t t;
	if (pthread_create(&t, NULL, planter, &ready_fd))
		return 95;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, spinner, NULL))
			return 96;
	/* The planter wrote the secret before loading it; give it a
	 * moment to reach its spin loop. */
	struct timespec ts = { 0, 50 * 1000000L };
	nanosleep(&ts, NULL);
	switch (how) {
	case HOW_ABORT:
		raise(SIGABRT); /* what abort() does first */
		break;
	case HOW_SEGV:
		*(volatile int *)unmapped = 1;
		break;
	case HOW_WAIT:
		for (;;)
			pause();
	}
	return 97; /* still alive after its signal */
}

/* Forks a child; returns its pid with the secret it planted in |secret|. */
static pid_t spawn(bool guard, enum how how, bool dump, uint8_t *secret)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		/* A fork child of a test never returns into cmocka. */
		_exit(child(guard, how, fds[1], dump));
	}
	close(fds[1]);
	size_t got = 0;
	while (got < SECRET_LEN) {
		ssize_t n = read(fds[0], secret + got, SECRET_LEN - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fds[0]);
	assert_int_equal(got, SECRET_LEN);
	return pid;
}

/* Waits up to 10 s; the child must have died of |sig|. */
static int reap(pid_t pid, int sig)
{
	int st = 0;
	for (int i = 0; i < 1000; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			break;
		assert_int_equal(r, 0);
		struct timespec ts = { 0, 10 * 1000000L };
		nanosleep(&ts, NULL);
		if (i == 999) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			fail_msg("child %d did not die within 10 s (guard hung)",
				 (int)pid);
		}
	}
	if (!WIFSIGNALED(st))
		fail_msg("child exited with %d, not by a signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	assert_int_equal(WTERMSIG(st), sig);
	return st;
}

/* ---- default actions --------------------------------------------------------- */

static void test_default_actions_kept(void **state)
{
	(void)state;
	need_guard();
	uint8_t s[SECRET_LEN];
	reap(spawn(true, HOW_ABORT, false, s), SIGABRT);
	reap(spawn(true, HOW_SEGV, false, s), SIGSEGV);
	pid_t pid = spawn(true, HOW_WAIT, false, s);
	assert_int_equal(kill(pid, SIGQUIT), 0);
	reap(pid, SIGQUIT);
}

/* ---- a real core dump ---------------------------------------------------------- */

static bool find(const uint8_t *hay, size_t n, const uint8_t *needle,
		 size_t len)
{
	return memmem(hay, n, needle, len) != NULL;
}

/* Dumps a child in |dir| and says whether either half of its secret is
 * in the core file. */
static bool dump_shows_secret(const char *dir, bool guard)
{
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	uint8_t s[SECRET_LEN];
	int st = reap(spawn(guard, HOW_ABORT, true, s), SIGABRT);
	assert_int_equal(chdir(cwd), 0);
	if (!WCOREDUMP(st))
		fail_msg("the kernel wrote no core (check core_pattern and "
			 "the file system of %s)", dir);
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	bool shown = false, seen_core = false;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "core", 4))
			continue;
		char path[4400];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		struct stat sb;
		assert_int_equal(fstat(fd, &sb), 0);
		uint8_t *m = mmap(NULL, (size_t)sb.st_size, PROT_READ,
				  MAP_PRIVATE, fd, 0);
		assert_true(m != MAP_FAILED);
		shown |= find(m, (size_t)sb.st_size, s, 16) ||
			 find(m, (size_t)sb.st_size, s + 16, 16);
		seen_core = true;
		munmap(m, (size_t)sb.st_size);
		close(fd);
		unlink(path);
	}
	closedir(d);
	assert_true(seen_core);
	return shown;
}

/* Where the kernel writes cores: a file in the dumping process's current
 * directory, or the test cannot look (a pipe to systemd-coredump, an
 * absolute directory). */
static bool cores_land_in_cwd(void)
{
	char pat[256] = "";
	FILE *f = fopen("/proc/sys/kernel/core_pattern", "r");
	if (!f)
		return false;
	bool ok = fgets(pat, sizeof(pat), f) && pat[0] != '|' &&
		  !strchr(pat, '/');
	fclose(f);
	return ok;
}

static void test_core_has_no_register_secret(void **state)
{
	(void)state;
	need_guard();
	if (!cores_land_in_cwd()) {
		print_message("core_pattern is not a plain file name; "
			      "cannot look at a core here\n");
		skip();
	}
	char dir[] = "/tmp/sealtap-crash.XXXXXX";
	assert_non_null(mkdtemp(dir));
	/* Control: without the guard the registers are in the dump. */
	bool control = dump_shows_secret(dir, false);
	bool guarded = dump_shows_secret(dir, true);
	rmdir(dir);
	if (!control)
		fail_msg("control core (no guard) does not show the secret: the "
			 "search is broken");
	if (guarded)
		fail_msg("with the guard, a core still shows a thread's "
			 "register contents");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_actions_kept),
		cmocka_unit_test(test_core_has_no_register_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
