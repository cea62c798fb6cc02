// One run's configuration: typed sections with defaults, read from one YAML file
// plus `--set key.path=value` overrides. Every key is declared once, in
// config_fields(), with its range; loading, overriding and writing the resolved
// file all go through that table.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace llmdion {

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunConfig {
  std::string out_dir = "out/default";  // loss.csv, train.log, config.yaml, checkpoints
  int64_t seed = 1337;
};

struct ModelConfig {
  int64_t vocab_size = 50257;  // token ids in the data must be below it
  int64_t seq_len = 256;       // T: tokens per sequence
};

struct DataConfig {
  std::string train = "data/sotu/sotu_train_*.bin";  // glob of training shards
  std::string val = "data/sotu/sotu_val_*.bin";      // glob of validation shards
  std::string order = "shuffled";                    // sequential | shuffled
};

struct TrainConfig {
  int64_t micro_batch = 8;     // B: sequences per rank per micro-step
  int64_t batch_tokens = 0;    // tokens per optimizer step, all ranks; 0 = one micro-step
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
};

// A config key: its dotted name, where its value lives, and what it may hold.
struct ConfigField {
  std::string key;
  std::variant<int64_t*, double*, bool*, std::string*> value;
  double min = -1e300, max = 1e300;   // numbers
  std::vector<std::string> choices;   // strings; empty = any
};

std::vector<ConfigField> config_fields(Config& config);

// Reads `path` (YAML), applies "key.path=value" overrides in order, and checks
// every key, type and range. Throws ConfigError naming the key and its source.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The fully resolved config as YAML: every key, defaults included.
std::string config_to_yaml(const Config& config);

// Micro-steps per optimizer step for a world of `world_size` ranks; throws
// ConfigError when train.batch_tokens is not a whole number of micro-batches.
int64_t grad_accum_steps(const Config& config, int world_size);

}  // namespace llmdion
