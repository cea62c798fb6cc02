// Checksums of what a run writes and later trusts: XXH64 (Debian's libxxhash),
// 16 hex digits, so that a flipped bit in a checkpoint is found on load.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace llmdion {

// XXH64 (seed 0) of `bytes` bytes at `data`, as 16 lowercase hex digits.
std::string xxh64_hex(const void* data, size_t bytes);
inline std::string xxh64_hex(std::string_view text) { return xxh64_hex(text.data(), text.size()); }

}  // namespace llmdion
