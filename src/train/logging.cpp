#include "train/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <mutex>

namespace llmdion {
namespace {

std::mutex write_error_mutex;
std::string write_error;  // the first failure of a log sink

}  // namespace

void setup_console_logging() {
  auto logger = std::make_shared<spdlog::logger>("llm.dion", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern("[%H:%M:%S] %^%l%$ %v");
  spdlog::set_default_logger(logger);
}

void setup_logging(int rank, const std::string& out_dir) {
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  std::vector<spdlog::sink_ptr> sinks{console};
  if (rank == 0) {
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(out_dir + "/train.log"));
  } else {
    console->set_level(spdlog::level::warn);
  }
  auto logger = std::make_shared<spdlog::logger>("llm.dion", sinks.begin(), sinks.end());
  logger->set_pattern(rank == 0 ? "[%H:%M:%S] %^%l%$ %v" : "[%H:%M:%S] %^%l%$ rank " + std::to_string(rank) + ": %v");
  logger->flush_on(spdlog::level::info);
  logger->set_error_handler([](const std::string& message) {
    std::lock_guard<std::mutex> lock(write_error_mutex);
    if (write_error.empty()) write_error = message;
    std::fprintf(stderr, "llm.dion: logging failed: %s\n", message.c_str());
  });
  spdlog::set_default_logger(logger);
}

std::string log_write_error() {
  std::lock_guard<std::mutex> lock(write_error_mutex);
  return write_error;
}

void log_fatal_error(int rank, const std::string& out_dir, const std::string& message) {
  spdlog::error("{}", message);
  if (rank == 0 || out_dir.empty()) return;  // rank 0's train.log already has it
  try {
    spdlog::basic_logger_mt("rank_error", out_dir + "/train.rank" + std::to_string(rank) + ".log")->error(message);
  } catch (const spdlog::spdlog_ex&) {
    // the console line above is all that can be done
  }
}

}  // namespace llmdion
