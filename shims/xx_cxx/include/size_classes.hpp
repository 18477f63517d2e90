// Size classes of the xx_cxx heap: 16-byte steps to 1 KiB (cached per
// thread), then powers of two to 64 KiB (shared); bigger blocks are mapped.
#pragma once

#include <cstddef>

namespace xx {

constexpr std::size_t kGrain = 16;
constexpr unsigned kCachedClasses = 64;
constexpr unsigned kClasses = kCachedClasses + 6;
constexpr std::size_t kClassMax = std::size_t{64} << 10;

constexpr unsigned class_of(std::size_t size) {
    if (size <= kCachedClasses * kGrain)
        return static_cast<unsigned>((size + kGrain - 1) / kGrain) - 1;
    unsigned c = kCachedClasses;
    for (std::size_t s = 2048; s < size; s <<= 1)
        c++;
    return c;
}

constexpr std::size_t class_size(unsigned c) {
    return c < kCachedClasses ? std::size_t{c + 1} * kGrain : std::size_t{2048} << (c - kCachedClasses);
}

static_assert(class_of(1) == 0 && class_of(16) == 0 && class_of(17) == 1 && class_of(1024) == 63);
static_assert(class_of(1025) == 64 && class_of(2048) == 64 && class_of(kClassMax) == kClasses - 1);
static_assert(class_size(class_of(3000)) >= 3000);

}  // namespace xx
