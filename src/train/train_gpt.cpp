// build/train_gpt: one run from one YAML config.
//
//   train_gpt --config configs/default.yaml [--set key.path=value ...] [--resume]
//   train_gpt --config configs/paper_300m_dion2.yaml --describe
//   mpirun -np 4 train_gpt --config ...          (data parallel over 4 ranks)
//
// Resolves the config, prepares out_dir (config.yaml, train.log, loss.csv,
// checkpoints/) and trains (src/train/trainer.h). --describe prints the model,
// its parameter count and the optimizer's groups, allocating nothing.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "config/config.h"
#include "dist/comm.h"
#include "train/logging.h"
#include "train/trainer.h"

using namespace llmdion;

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> overrides;
  CLI::App app{"llm.dion: GPT pretraining with AdamW, Muon, Dion and Dion2"};
  app.add_option("--config", config_path, "the run's YAML config (without it, --print-config shows the defaults)");
  app.add_option("--set", overrides, "override a config key: --set train.micro_batch=4 (repeatable)");
  bool resume = false;
  app.add_flag("--resume", resume, "continue from out_dir's last complete checkpoint (run.resume: auto)");
  bool describe = false;
  app.add_flag("--describe", describe, "print the model, its parameter count and optimizer groups, then exit");
  bool print_config = false;
  app.add_flag("--print-config", print_config,
               "print the resolved config: every key with its value and meaning, then exit");
  CLI11_PARSE(app, argc, argv);
  setup_console_logging();
  if (resume) overrides.push_back("run.resume=auto");
  if (print_config) {
    try {
      const Config config = config_path.empty() ? parse_config("", "the defaults", overrides)
                                                : load_config(config_path, overrides);
      std::printf("# llm.dion config, resolved from %s%s: every key, its value and what it means\n%s",
                  config_path.empty() ? "the defaults" : config_path.c_str(),
                  overrides.empty() ? "" : " and --set", config_to_yaml(config, true).c_str());
      return 0;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
  }
  if (config_path.empty()) {
    spdlog::error("--config is required (train_gpt --print-config lists every key)");
    return 2;
  }
  if (describe) {
    try {
      describe_run(load_config(config_path, overrides));
      return 0;
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
      return 1;
    }
  }

  std::unique_ptr<Comm> comm = make_comm(&argc, &argv);
  const int rank = comm->rank();
  std::string out_dir;
  try {
    const Config config = load_config(config_path, overrides);
    out_dir = config.run.out_dir;
    std::filesystem::create_directories(out_dir);
    setup_logging(rank, out_dir);
    spdlog::info("config {}", config_path);
    return run_training(config, *comm);
  } catch (const OutDirHoldsAnotherRun& e) {
    log_fatal_error(rank, out_dir, e.what());
    if (comm->world_size() > 1) comm->abort(kExitAnotherRun);
    return kExitAnotherRun;
  } catch (const std::exception& e) {
    log_fatal_error(rank, out_dir, e.what());
    if (comm->world_size() > 1) comm->abort(1);  // the other ranks must not wait for this one
    return 1;
  }
}
