// Rank-aware logging through spdlog: rank 0 prints progress to the console and to
// out_dir/train.log; other ranks print only warnings and errors, and write their
// fatal error to out_dir/train.rank<r>.log so a failure on any rank is on disk.
#pragma once

#include <string>

namespace llmdion {

// Every message, from the first: "[HH:MM:SS] level message" on stderr; then,
// once out_dir is known, setup_logging adds train.log (rank 0) and the rank.
void setup_console_logging();
void setup_logging(int rank, const std::string& out_dir);
void log_fatal_error(int rank, const std::string& out_dir, const std::string& message);

// The first failed write or flush of train.log (a full disk), empty while there
// is none: the training loop stops on it.
std::string log_write_error();

}  // namespace llmdion
