/* runner: starts one timed run for `alloc8 bench`. Usage:
 *   runner PRELOAD|- -- PROGRAM ARGS...
 * Forks, and in the child sets LD_PRELOAD to PRELOAD (or removes it), sends
 * stdout to /dev/null and execs PROGRAM; waits with wait4 and prints one
 * line: "exit CODE" or "signal SIG", then wall nanoseconds, user and system
 * microseconds, peak RSS in KiB and the workload's pid (whose shim report
 * proves the contender was live in it).
 *
 * Why a separate process: Linux carries the peak RSS of the address space a
 * process had before exec into the rusage it reports, so a child started by
 * alloc8 itself would report at least alloc8's own RSS. Forked from this small
 * program, the floor is this program's RSS, the same for every contender; and
 * the contender is loaded only in the program being timed, never here. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static long micros(struct timeval t) { return t.tv_sec * 1000000L + t.tv_usec; }

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: runner PRELOAD|- -- PROGRAM ARGS...\n");
        return 2;
    }
    const char *preload = argv[1];
    pid_t runner = getpid();
    double start = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "runner: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        /* The workload dies with the runner (which dies with alloc8). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != runner) _exit(127);
        if (strcmp(preload, "-") != 0) setenv("LD_PRELOAD", preload, 1);
        else unsetenv("LD_PRELOAD");
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execv(argv[3], argv + 3);
        fprintf(stderr, "cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    int status;
    struct rusage usage;
    while (wait4(pid, &status, 0, &usage) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "runner: wait4: %s\n", strerror(errno));
            return 1;
        }
    double wall = now_ns() - start;
    printf("%s %d %.0f %ld %ld %ld %d\n", WIFSIGNALED(status) ? "signal" : "exit", WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
           wall, micros(usage.ru_utime), micros(usage.ru_stime), usage.ru_maxrss, (int)pid);
    return 0;
}
