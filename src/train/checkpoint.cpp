#include "train/checkpoint.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <span>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/checksum.h"
#include "core/safetensors.h"

namespace llmdion {
namespace fs = std::filesystem;

namespace {

constexpr const char* kCompleteMarker = "COMPLETE";

std::vector<std::pair<std::string, int64_t>> shape_fields(const GptShape& s) {
  return {{"n_layer", s.n_layer},       {"n_head", s.n_head},         {"d_model", s.d_model},
          {"seq_len", s.seq_len},       {"vocab_size", s.vocab_size}, {"padded_vocab", s.padded_vocab},
          {"mlp_hidden", s.mlp_hidden}, {"tied_embeddings", s.tied_embeddings}, {"bias", s.bias},
          {"n_kv_head", s.kv_heads()},   {"norm", int64_t(s.norm)},    {"norm_affine", s.norm_affine},
          {"rope", s.rope},             {"qk_norm", s.qk_norm},       {"mlp", int64_t(s.mlp)}};
}

std::string optimizer_file(const Comm& comm) {
  return comm.world_size() == 1 ? "optimizer.safetensors"
                                : "optimizer.rank" + std::to_string(comm.rank()) + ".safetensors";
}

}  // namespace

std::vector<std::string> complete_checkpoints(const std::string& out_dir) {
  std::vector<std::string> found;
  const fs::path root = fs::path(out_dir) / "checkpoints";
  if (!fs::exists(root)) return found;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && name.starts_with("step_") && name.find('.') == std::string::npos &&
        fs::exists(entry.path() / kCompleteMarker))
      found.push_back(entry.path().string());
  }
  std::sort(found.rbegin(), found.rend());  // step numbers are zero-padded
  return found;
}

std::string save_checkpoint(const std::string& out_dir, Model& model, Optimizer& optimizer, const TrainState& state,
                            const Config& config, Comm& comm) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(state.step));
  const fs::path folder = fs::path(out_dir) / "checkpoints" / name;
  const GptLayout& layout = model.layout();
  std::vector<float> params(layout.num_params);
  model.copy_params_to_host(params);
  // Every rank holds the whole weights, and they must be the same bits
  // everywhere: each rank applies the same updates (sharded_optimizer.h).
  check_same_on_all_ranks(comm, xxh64_hex(params.data(), params.size() * sizeof(float)),
                          "weights at step " + std::to_string(state.step),
                          "the ranks' copies of the weights diverged, so no checkpoint is written");
  for (float p : params)
    if (!std::isfinite(p)) throw std::runtime_error("refusing to checkpoint step " + std::to_string(state.step) +
                                                    ": the weights hold NaN or Inf");
  const fs::path partial = folder.string() + ".partial";
  const bool root = comm.rank() == 0;
  if (root) {
    fs::remove_all(partial);
    fs::create_directories(partial);
  }
  comm.barrier();
  // Optimizer state lives where the model does: host copies first.
  const std::vector<OptimizerState> states = optimizer.state();
  std::vector<std::vector<float>> host_states;
  for (const OptimizerState& s : states) {
    host_states.emplace_back(s.data.size());
    copy_to_host(model.device(), s.data.data(), host_states.back());
  }
  std::vector<TensorView> opt_tensors;
  for (size_t i = 0; i < states.size(); i++)
    opt_tensors.push_back({states[i].name, {int64_t(host_states[i].size())}, host_states[i]});
  write_safetensors((partial / optimizer_file(comm)).string(), opt_tensors, {{"format", "llm.dion"}});
  comm.barrier();
  if (!root) {
    comm.barrier();  // until rank 0 has completed the folder
    return folder.string();
  }

  std::vector<TensorView> tensors;
  for (const ParamTensor& t : layout.tensors)
    tensors.push_back({t.name, t.shape, std::span<const float>(params).subspan(t.offset, t.numel())});
  std::map<std::string, std::string> metadata = {{"format", "llm.dion"}};
  for (const auto& [key, value] : shape_fields(model.shape())) metadata[key] = std::to_string(value);
  write_safetensors((partial / "model.safetensors").string(), tensors, metadata);

  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "step" << YAML::Value << state.step;
  out << YAML::Key << "tokens" << YAML::Value << state.tokens;
  out << YAML::Key << "update_count" << YAML::Value << state.update_count;
  out << YAML::Key << "seed" << YAML::Value << state.seed;
  out << YAML::Key << "ranks" << YAML::Value << comm.world_size();
  out << YAML::Key << "seconds" << YAML::Value << state.seconds;
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "epoch" << YAML::Value << state.data.epoch;
  out << YAML::Key << "shard_cursor" << YAML::Value << state.data.shard_cursor;
  out << YAML::Key << "window_cursor" << YAML::Value << state.data.window_cursor;
  out << YAML::Key << "micro_step" << YAML::Value << state.data.micro_step;
  out << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  for (const auto& [key, value] : shape_fields(model.shape())) out << YAML::Key << key << YAML::Value << value;
  out << YAML::EndMap;
  out << YAML::Key << "config_hash" << YAML::Value << config_hash(config);
  out << YAML::Key << "config" << YAML::Value << YAML::Literal << config_to_yaml(config);
  out << YAML::EndMap;
  const std::string state_text = std::string(out.c_str()) + "\n";
  write_file_atomic((partial / "state.yaml").string(), [&](std::ostream& o) { o << state_text; });
  write_file_atomic((partial / kCompleteMarker).string(),
                    [&](std::ostream& o) { o << "state.yaml xxh64 " << xxh64_hex(state_text) << "\n"; });
  fs::remove_all(folder);
  fs::rename(partial, folder);

  const std::vector<std::string> all = complete_checkpoints(out_dir);  // newest first
  const size_t keep = size_t(config.train.ckpt_keep);
  if (keep > 0)
    for (size_t i = keep; i < all.size(); i++) fs::remove_all(all[i]);
  comm.barrier();
  return folder.string();
}

namespace {

std::string read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw std::runtime_error("cannot read '" + path.string() + "'");
  return text.str();
}

}  // namespace

TrainState read_checkpoint_state(const std::string& folder, const GptShape* shape) {
  const fs::path dir(folder);
  const auto damaged = [&](const std::string& why) { return CheckpointDamaged("checkpoint '" + folder + "': " + why); };
  if (!fs::exists(dir / kCompleteMarker))
    throw damaged(std::string("incomplete (no ") + kCompleteMarker + " marker)");
  // COMPLETE: "state.yaml xxh64 <16 hex>".
  std::string text, marker;
  try {
    marker = read_whole_file(dir / kCompleteMarker);
    text = read_whole_file(dir / "state.yaml");
  } catch (const std::runtime_error& e) {
    throw damaged(e.what());
  }
  const std::string prefix = "state.yaml xxh64 ";
  if (!marker.starts_with(prefix) || marker.size() < prefix.size() + 16)
    throw damaged(std::string(kCompleteMarker) + " holds no checksum of state.yaml (damaged, or written before "
                  "checkpoints carried checksums)");
  const std::string written = marker.substr(prefix.size(), 16), actual = xxh64_hex(text);
  if (actual != written)
    throw damaged("state.yaml is unreadable: it does not match its checksum (xxh64 " + actual + ", written as " +
                  written + "), so it was cut short or changed");
  YAML::Node state_yaml;
  try {
    state_yaml = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw damaged(std::string("state.yaml is unreadable: ") + e.what());
  }
  // A value state.yaml must hold; its absence is damage, not a setting.
  const auto field = [&](const YAML::Node& node, const std::string& name) {
    if (!node.IsDefined() || !node.IsScalar()) throw damaged("state.yaml lacks " + name);
    return node;
  };
  std::string mismatch;
  for (const auto& [key, value] : shape ? shape_fields(*shape) : std::vector<std::pair<std::string, int64_t>>{}) {
    const int64_t saved = field(state_yaml["model"][key], "model." + key).as<int64_t>();
    if (saved != value)
      mismatch += (mismatch.empty() ? "" : ", ") + key + " " + std::to_string(saved) + " (config: " +
                  std::to_string(value) + ")";
  }
  if (!mismatch.empty())
    throw std::runtime_error("cannot resume from '" + folder + "': its model has " + mismatch +
                             "; resume with the same model settings or use a new run.out_dir");
  TrainState state;
  try {
    state.step = field(state_yaml["step"], "step").as<int64_t>();
    state.tokens = field(state_yaml["tokens"], "tokens").as<int64_t>();
    state.update_count = field(state_yaml["update_count"], "update_count").as<int64_t>();
    state.data.epoch = field(state_yaml["data"]["epoch"], "data.epoch").as<int64_t>();
    state.data.shard_cursor = field(state_yaml["data"]["shard_cursor"], "data.shard_cursor").as<int64_t>();
    state.data.window_cursor = field(state_yaml["data"]["window_cursor"], "data.window_cursor").as<int64_t>();
    state.data.micro_step = field(state_yaml["data"]["micro_step"], "data.micro_step").as<int64_t>();
    state.seed = field(state_yaml["seed"], "seed").as<uint64_t>();
    state.config_yaml = field(state_yaml["config"], "config").as<std::string>();
    state.ranks = field(state_yaml["ranks"], "ranks").as<int>();
    if (state_yaml["seconds"]) state.seconds = field(state_yaml["seconds"], "seconds").as<double>();
  } catch (const YAML::Exception& e) {
    throw damaged(std::string("state.yaml is unreadable: ") + e.what());
  }
  return state;
}

namespace {

// A checkpoint file read whole, every tensor checked against its checksum.
TensorFile read_checked(const fs::path& path, const std::string& folder) {
  TensorFile file;
  try {
    file = read_safetensors(path.string());
  } catch (const std::runtime_error& e) {
    throw CheckpointDamaged("checkpoint '" + folder + "': " + e.what());
  }
  if (!file.checksummed)
    throw CheckpointDamaged("checkpoint '" + folder + "': '" + path.filename().string() +
                            "' lacks the checksums of its tensors (damaged, or written before checkpoints carried "
                            "them)");
  return file;
}

// NaN or Inf in a loaded tensor: the file is not a state training can go on from.
void check_finite(std::span<const float> values, const std::string& folder, const std::string& file,
                  const std::string& tensor) {
  for (size_t i = 0; i < values.size(); i++)
    if (!std::isfinite(values[i]))
      throw CheckpointDamaged("checkpoint '" + folder + "': " + file + " tensor '" + tensor + "' holds " +
                              std::to_string(values[i]) + " at index " + std::to_string(i));
}

}  // namespace

std::vector<float> read_checkpoint_weights(const std::string& folder, const GptLayout& layout) {
  const TensorFile weights = read_checked(fs::path(folder) / "model.safetensors", folder);
  std::vector<float> params(layout.num_params);
  for (const ParamTensor& t : layout.tensors) {
    auto it = weights.tensors.find(t.name);
    if (it == weights.tensors.end() || it->second.shape != t.shape)
      throw std::runtime_error("checkpoint '" + folder + "' lacks tensor " + t.name + " of the expected shape");
    check_finite(it->second.values, folder, "model.safetensors", t.name);
    std::copy(it->second.values.begin(), it->second.values.end(), params.begin() + t.offset);
  }
  return params;
}

void load_checkpoint_tensors(const std::string& folder, Model& model, Optimizer& optimizer, const Comm& comm) {
  const fs::path dir(folder);
  const std::vector<float> params = read_checkpoint_weights(folder, model.layout());

  const std::string opt_name = optimizer_file(comm);
  const TensorFile opt = read_checked(dir / opt_name, folder);
  std::vector<OptimizerState> states = optimizer.state();
  for (const OptimizerState& s : states) {
    auto it = opt.tensors.find(s.name);
    if (it == opt.tensors.end() || it->second.values.size() != s.data.size())
      throw std::runtime_error("checkpoint '" + folder + "' lacks optimizer state " + s.name +
                               " of the expected size (was it written with another optimizer?)");
    check_finite(it->second.values, folder, opt_name, s.name);
  }
  // Nothing is touched until every file has been checked.
  model.copy_params_from_host(params);
  for (OptimizerState& s : states) copy_from_host(model.device(), opt.tensors.at(s.name).values, s.data.data());
}

}  // namespace llmdion
