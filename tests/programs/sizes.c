/* sizes: one thread, a known sequence of calls: malloc(1) .. malloc(300),
 * every third block grown with realloc to twice its size, every fifth
 * calloc'd instead, then all freed in reverse order. */
#include <stdlib.h>

int main(void) {
    void *p[300];
    for (int i = 0; i < 300; i++) {
        p[i] = i % 5 == 4 ? calloc(1, i + 1) : malloc(i + 1);
        if (i % 3 == 2) p[i] = realloc(p[i], 2 * (i + 1));
    }
    for (int i = 299; i >= 0; i--) free(p[i]);
    return 0;
}
