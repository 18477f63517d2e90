/* A program that defines its own write, open, close, getpid, getppid,
 * sched_yield and readlink (as test harnesses and sandboxes do), each of
 * which fails the run if anyone calls it: a preloaded shim must reach the
 * kernel without them, also while it writes its report (tests/invisible.rs).
 * The program itself only uses stdio, which glibc serves without these names. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static void called(const char *name) {
    char msg[64];
    int n = snprintf(msg, sizeof msg, "own %s called\n", name);
    syscall(SYS_write, 2, msg, n);
    syscall(SYS_exit_group, 99);
}

ssize_t write(int fd, const void *buf, size_t n) { (void)fd; (void)buf; (void)n; called("write"); return -1; }
int open(const char *path, int flags, ...) { (void)path; (void)flags; called("open"); return -1; }
int open64(const char *path, int flags, ...) { (void)path; (void)flags; called("open64"); return -1; }
int close(int fd) { (void)fd; called("close"); return -1; }
pid_t getpid(void) { called("getpid"); return -1; }
pid_t getppid(void) { called("getppid"); return -1; }
int sched_yield(void) { called("sched_yield"); return -1; }
ssize_t readlink(const char *p, char *b, size_t n) { (void)p; (void)b; (void)n; called("readlink"); return -1; }

int main(void) {
    void *volatile blocks[1000];
    for (int i = 0; i < 1000; i++)
        blocks[i] = malloc(16 + i);
    for (int i = 0; i < 1000; i++)
        free(blocks[i]);
    /* A forked child writes the shim's fork line, then exits through exit(). */
    pid_t child = fork();
    if (child == 0) {
        free(malloc(100));
        exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
    return 0;
}
