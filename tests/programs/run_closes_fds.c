/* Closes stderr and every descriptor above it, fills the low numbers with
 * files of its own, then allocates in itself and in a forked child: the
 * shim's report must still reach alloc8 run. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void churn(int n) {
    for (int i = 0; i < n; i++) {
        char *p = malloc(32 + i % 200);
        memset(p, 1, 32 + i % 200);
        free(p);
    }
}

int main(void) {
    for (int fd = 2; fd < 1024; fd++)
        close(fd);
    for (int i = 0; i < 100; i++)
        open("/dev/null", O_WRONLY);
    churn(1000);
    pid_t child = fork();
    if (child == 0) {
        churn(500);
        exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    printf("child %s\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "failed");
    return 0;
}
