// Files appear whole or not at all: written under a temporary name in the same
// folder, synced to disk, then renamed over the final name (atomic on POSIX).
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace llmdion {

// Calls `write` with a stream to a temporary file and renames it to `path` when
// `write` returns and the data is synced. On any failure the temporary file is
// removed and std::runtime_error names `path`.
void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace llmdion
