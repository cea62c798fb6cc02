// What the train_gpt end-to-end tests share: learnable synthetic shards, a
// tiny config, running train_gpt, and reading loss.csv.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/shard.h"
#include "test_util.h"

namespace llmdion {

using test::kBuildDir;

// Shards of a learnable stream: short random "words" repeated with noise.
inline void write_synthetic_shards(const test::ScratchDir& dir) {
  SplitMix64 rng{5};
  std::vector<std::vector<uint32_t>> words(40);
  for (auto& w : words)
    for (int k = 0; k < 4; k++) w.push_back(uint32_t(rng.below(250)));
  for (int shard = 0; shard < 3; shard++) {
    std::vector<uint32_t> tokens;
    while (tokens.size() < 20000) {
      const auto& w = words[rng.below(words.size())];
      tokens.insert(tokens.end(), w.begin(), w.end());
    }
    write_shard(dir / (shard == 0 ? "d_val_000000.bin" : "d_train_00000" + std::to_string(shard) + ".bin"), tokens, 2);
  }
}

inline std::string tiny_config(const test::ScratchDir& dir, const std::string& out) {
  const std::string yaml = "run:\n  out_dir: " + (dir / out) +
                           "\nmodel:\n  n_layer: 2\n  n_head: 2\n  d_model: 32\n  seq_len: 32\n  vocab_size: 256\n"
                           "data:\n  train: " + (dir / "d_train_*.bin") + "\n  val: " + (dir / "d_val_*.bin") +
                           "\ntrain:\n  micro_batch: 4\n  batch_tokens: 256\n  steps: 40\n  eval_every: 10\n"
                           "  eval_tokens: 1024\n  ckpt_every: 10\n"
                           "schedule:\n  warmup_steps: 5\noptim:\n  lr: 0.003\nscalar_opt:\n  lr: 0.003\n";
  test::write_text(dir / (out + ".yaml"), yaml);
  return dir / (out + ".yaml");
}

// Runs train_gpt on `config`; `launcher` (mpirun and its options) starts it, where given.
inline int train(const std::string& config, const std::string& extra, std::string* output = nullptr,
                 const std::string& launcher = "") {
  return test::run_command(launcher + kBuildDir + "/train_gpt --config " + config + " " + extra, output);
}

// loss.csv without the timing columns (step_ms, opt_ms, tokens_per_s, comm_bytes), which no two runs share.
inline std::vector<std::string> deterministic_rows(const std::string& path) {
  std::istringstream in(test::read_text(path));
  std::vector<std::string> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, ',')) fields.push_back(f);
    while (fields.size() < 10) fields.push_back("");
    rows.push_back(fields[0] + "," + fields[1] + "," + fields[2] + "," + fields[3] + "," + fields[4] + "," + fields[5]);
  }
  return rows;
}

// Field `index` of a CSV row, as text (empty where the row leaves it empty).
inline std::string field(const std::string& row, int index) {
  std::stringstream ss(row);
  std::string f;
  for (int i = 0; i <= index; i++) std::getline(ss, f, ',');
  return f;
}

inline double column(const std::string& row, int index) { return std::stod(field(row, index)); }

}  // namespace llmdion
