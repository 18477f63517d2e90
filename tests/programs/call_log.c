/* call_log: a preloaded malloc that logs each call and hands it to glibc's
 * own (__libc_malloc & co.), for tests that need the exact sequence of calls
 * a program made: "m SIZE", "c SIZE", "r SIZE", "f" lines, written at exit
 * to $CALL_LOG_DIR/<pid>.log. Single-threaded programs only (no locking).
 * Build: gcc -shared -fPIC -o libcall_log.so call_log.c */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define CAP (256u << 20)
static char *log_buf;
static size_t used;

static void put(char kind, size_t n, int with_size) {
    if (!log_buf) {
        log_buf = mmap(NULL, CAP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (log_buf == MAP_FAILED) abort();
    }
    if (used + 32 > CAP) return;
    log_buf[used++] = kind;
    if (with_size) {
        char digits[24];
        int k = 0;
        do digits[k++] = (char)('0' + n % 10); while ((n /= 10) > 0);
        log_buf[used++] = ' ';
        while (k > 0) log_buf[used++] = digits[--k];
    }
    log_buf[used++] = '\n';
}

void *malloc(size_t n) { put('m', n, 1); return __libc_malloc(n); }
void *calloc(size_t k, size_t n) { put('c', k * n, 1); return __libc_calloc(k, n); }
void *realloc(void *p, size_t n) { put('r', n, 1); return __libc_realloc(p, n); }
void free(void *p) { if (p) put('f', 0, 0); __libc_free(p); }

__attribute__((destructor)) static void write_log(void) {
    const char *dir = getenv("CALL_LOG_DIR");
    if (!dir || !log_buf) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%d.log", dir, (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    for (size_t off = 0; off < used;) {
        ssize_t w = write(fd, log_buf + off, used - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(fd);
}
