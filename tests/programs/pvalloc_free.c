/* pvalloc then free: under a replacement that exports free but not pvalloc,
   glibc's pvalloc serves the block from glibc's heap and the replacement's
   free gets a pointer it never handed out. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    for (int i = 0; i < 1000; i++) {
        void *p = pvalloc(100 + i);
        if (!p) return 2;
        free(p);
    }
    puts("ok");
    return 0;
}
