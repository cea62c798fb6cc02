#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace llmdion {

void write_file_atomic(const std::string& path, const std::function<void(std::ostream&)>& write) {
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  try {
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      if (!out) throw std::runtime_error("cannot create '" + temp + "': " + std::strerror(errno));
      write(out);
      out.flush();
      if (!out) throw std::runtime_error("cannot write '" + temp + "' (disk full?)");
    }
    const int fd = open(temp.c_str(), O_RDONLY);
    const bool synced = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    if (!synced) throw std::runtime_error("cannot flush '" + temp + "' to disk: " + std::strerror(errno));
    if (std::rename(temp.c_str(), path.c_str()) != 0)
      throw std::runtime_error("cannot rename '" + temp + "' to '" + path + "': " + std::strerror(errno));
  } catch (...) {
    std::remove(temp.c_str());
    throw;
  }
}

}  // namespace llmdion
