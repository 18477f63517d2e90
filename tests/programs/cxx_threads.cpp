// cxx_threads.cpp: 12 std::threads building strings, vectors and maps, joined.
// Prints "cxx_threads: ok" and exits 0 if every thread computed the right sum.
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

int main() {
    const int threads = 12;
    std::vector<long> sums(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; t++) {
        pool.emplace_back([t, &sums] {
            std::map<int, std::string> m;
            for (int i = 0; i < 5000; i++) m[i] = std::to_string(i * t);
            long sum = 0;
            for (auto &kv : m) sum += std::stol(kv.second);
            sums[t] = sum;
        });
    }
    for (auto &th : pool) th.join();
    for (int t = 0; t < threads; t++) {
        if (sums[t] != 12497500L * t) {
            std::printf("thread %d: sum %ld\n", t, sums[t]);
            return 1;
        }
    }
    std::puts("cxx_threads: ok");
    return 0;
}
