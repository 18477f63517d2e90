/* alloc8 record test: `fork` forks a child that allocates on its own;
   `kill` allocates for a while (more than one buffer) then dies by SIGKILL. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        void *mine = malloc(100);
        pid_t pid = fork();
        if (pid == 0) {
            for (int i = 0; i < 1000; i++) free(malloc(48));
            free(mine);
            exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        free(mine);
        return WEXITSTATUS(status);
    }
    if (argc > 1 && strcmp(argv[1], "kill") == 0) {
        for (int i = 0; i < 200000; i++) free(malloc(16 + i % 64));
        usleep(300 * 1000); /* the buffer's age sends it */
        free(malloc(1));
        raise(SIGKILL);
    }
    return 2;
}
