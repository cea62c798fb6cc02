#include "core/checksum.h"

#include <xxhash.h>

#include <cstdio>

namespace llmdion {

std::string xxh64_hex(const void* data, size_t bytes) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(XXH64(data, bytes, 0)));
  return hex;
}

}  // namespace llmdion
