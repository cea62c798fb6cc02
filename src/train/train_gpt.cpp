// build/train_gpt: one run from one YAML config.
//
//   train_gpt --config configs/default.yaml [--set key.path=value ...]
//
// Resolves the config, prepares out_dir (config.yaml, train.log), and opens the
// train and val data, checking every shard header before any compute starts.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "config/config.h"
#include "core/atomic_file.h"
#include "data/dataloader.h"
#include "train/logging.h"

using namespace llmdion;

namespace {

DataLoaderOptions loader_options(const Config& config, const std::string& pattern, int64_t grad_accum,
                                 DataOrder order) {
  DataLoaderOptions o;
  o.pattern = pattern;
  o.batch_size = config.train.micro_batch;
  o.seq_len = config.model.seq_len;
  o.grad_accum = grad_accum;
  o.order = order;
  o.seed = uint64_t(config.run.seed);
  o.vocab_size = uint32_t(config.model.vocab_size);
  return o;
}

void describe_data(const char* split, const DataLoader& loader) {
  spdlog::info("{} data: {} shards, {} tokens, {} steps of {} tokens per epoch", split, loader.shards().size(),
               loader.total_tokens(), loader.windows_per_epoch(), loader.window_tokens());
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> overrides;
  CLI::App app{"llm.dion: GPT pretraining with AdamW, Muon, Dion and Dion2"};
  app.add_option("--config", config_path, "the run's YAML config")->required();
  app.add_option("--set", overrides, "override a config key: --set train.micro_batch=4 (repeatable)");
  CLI11_PARSE(app, argc, argv);

  const int rank = 0;
  std::string out_dir;
  try {
    const Config config = load_config(config_path, overrides);
    out_dir = config.run.out_dir;
    std::filesystem::create_directories(out_dir);
    setup_logging(rank, out_dir);
    write_file_atomic(out_dir + "/config.yaml", [&](std::ostream& out) { out << config_to_yaml(config); });
    spdlog::info("config {} resolved into {}/config.yaml", config_path, out_dir);

    const int64_t grad_accum = grad_accum_steps(config, 1);
    const DataOrder order = config.data.order == "shuffled" ? DataOrder::kShuffled : DataOrder::kSequential;
    DataLoader train_loader(loader_options(config, config.data.train, grad_accum, order));
    DataLoader val_loader(loader_options(config, config.data.val, 1, DataOrder::kSequential));
    describe_data("train", train_loader);
    describe_data("val", val_loader);
    return 0;
  } catch (const std::exception& e) {
    log_fatal_error(rank, out_dir, e.what());
    return 1;
  }
}
