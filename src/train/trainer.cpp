#include "train/trainer.h"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/atomic_file.h"
#include "core/rng.h"
#include "data/dataloader.h"
#include "data/tokenizer.h"
#include "dist/comm.h"
#include "dist/gpu_comm.h"
#include "dist/sharded_optimizer.h"
#include "model/hf_export.h"
#include "model/llmc_checkpoint.h"
#include "model/model.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"
#include "train/logging.h"
#include "train/memory_estimate.h"
#include "train/run_summary.h"
#include "train/sampler.h"
#include "train/schedule.h"

namespace llmdion {
namespace {

std::atomic<bool> stop_requested{false};
void on_stop_signal(int) { stop_requested = true; }

constexpr const char* kCsvHeader = "step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes";

DataLoaderOptions loader_options(const Config& c, const std::string& key, const std::string& pattern,
                                 int64_t grad_accum, DataOrder order, const Comm& comm) {
  DataLoaderOptions o;
  o.pattern = pattern;
  o.source = key;
  o.rank = comm.rank();
  o.world_size = comm.world_size();
  o.batch_size = c.train.micro_batch;
  o.seq_len = c.model.seq_len;
  o.grad_accum = grad_accum;
  o.order = order;
  o.seed = uint64_t(c.run.seed);
  o.vocab_size = uint32_t(c.model.vocab_size);
  return o;
}

// loss.csv: kept to the rows of the steps a resumed run has completed, then
// appended a row a step, each flushed; a write that fails stops the run.
class LossCsv {
 public:
  LossCsv(const std::string& path, int64_t completed_steps, int64_t tokens_per_step)
      : path_(path), tokens_per_step_(tokens_per_step) {
    std::string kept = std::string(kCsvHeader) + "\n";
    if (completed_steps > 0) {
      std::ifstream in(path);
      std::string line;
      std::getline(in, line);
      for (int64_t number = 2; std::getline(in, line); number++) {
        if (line.empty()) continue;
        int64_t step = -1;
        const char* end = line.data() + line.size();
        const auto [after, error] = std::from_chars(line.data(), end, step);
        if (error != std::errc() || after == end || *after != ',' || step < 0)
          throw std::runtime_error("'" + path + "' line " + std::to_string(number) + " is not a row of " +
                                   kCsvHeader + " (it starts '" + line.substr(0, 40) +
                                   "'): repair or remove the file to resume");
        if (step < completed_steps) kept += line + "\n";
      }
    }
    write_file_atomic(path, [&](std::ostream& out) { out << kept; });
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) throw std::runtime_error("cannot append to '" + path + "': " + std::strerror(errno));
  }
  ~LossCsv() { std::fclose(file_); }
  void row(int64_t step, int64_t tokens, double lr, double train_loss, std::optional<double> val_loss,
           double grad_norm, double step_ms, double opt_ms, int64_t comm_bytes) {
    const std::string text =
        fmt::format("{},{},{:.9g},{:.9g},{},{:.9g},{:.3f},{:.3f},{:.1f},{}\n", step, tokens, lr, train_loss,
                    val_loss ? fmt::format("{:.9g}", *val_loss) : "", grad_norm, step_ms, opt_ms,
                    double(tokens_per_step_) * 1000.0 / step_ms, comm_bytes);
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
      throw std::runtime_error("cannot write step " + std::to_string(step) + " to '" + path_ + "': " +
                               std::strerror(errno) + "; the run stops (its last checkpoint is intact)");
  }
  void sync() {
    if (fsync(fileno(file_)) != 0)
      throw std::runtime_error("cannot flush '" + path_ + "' to disk: " + std::strerror(errno));
  }

 private:
  std::string path_;
  int64_t tokens_per_step_;
  std::FILE* file_;
};

// Mean loss over eval_tokens of the val data, from its start; each rank
// evaluates its share of every window, and the ranks' sums are added.
double evaluate(Model& model, DataLoader& val, int64_t eval_tokens, std::vector<int32_t>& inputs,
                std::vector<int32_t>& targets, Comm& comm) {
  val.reset();
  const int64_t window_tokens = model.batch_size() * model.seq_len() * comm.world_size();
  const int64_t batches = std::max<int64_t>(1, std::min(eval_tokens / window_tokens, val.windows_per_epoch()));
  double total = 0;
  for (int64_t i = 0; i < batches; i++) {
    val.next_batch(inputs.data(), targets.data());
    total += model.forward(inputs.data(), targets.data());
  }
  return comm.sum_over_ranks(total) / double(batches * comm.world_size());
}

// The first tensor holding a NaN or Inf gradient.
std::string first_nonfinite_tensor(const Model& model) {
  std::vector<float> grads(model.layout().num_params);
  model.copy_grads_to_host(grads);
  for (const ParamTensor& t : model.layout().tensors)
    for (int64_t i = 0; i < t.numel(); i++)
      if (!std::isfinite(grads[t.offset + i])) return t.name;
  return "(none: the loss itself)";
}

std::string format_duration(double seconds) {
  char buf[32];
  const int64_t s = int64_t(seconds);
  std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buf;
}

}  // namespace

void describe_run(const Config& given) {
  Config config = given;  // with run.device resolved, as a run would (the hash names it)
  try {
    config.run.device = device_name(resolve_device(given.run.device));
  } catch (const std::exception&) {
  }
  const GptShape shape = shape_from_config(config.model);
  const GptLayout layout = gpt_layout(shape);
  std::printf("model: %s (arch %s)\n", describe_shape(shape).c_str(), config.model.arch.c_str());
  const int64_t total = count_trained_params(shape, layout);
  std::printf("parameters: %lld (%.2fM; %lld with vocabulary padding)\n", static_cast<long long>(total),
              double(total) / 1e6, static_cast<long long>(layout.num_params));
  for (ParamRole role : {ParamRole::kMatrix, ParamRole::kEmbedding, ParamRole::kHead, ParamRole::kNorm, ParamRole::kBias}) {
    int64_t tensors = 0, values = 0;
    for (const ParamTensor& t : layout.tensors)
      if (t.role == role) tensors++, values += t.numel();
    if (tensors == 0) continue;
    std::printf("  %-9s %4lld tensors %12lld values -> %s\n", role_name(role), static_cast<long long>(tensors),
                static_cast<long long>(values), role == ParamRole::kMatrix ? config.optim.matrix.c_str() : "adamw");
  }
  const int64_t grad_accum = grad_accum_steps(config, 1);
  std::printf("step: %lld tokens (%lld x %lld x %lld micro-steps on one rank), %lld steps\n",
              static_cast<long long>(grad_accum * config.train.micro_batch * config.model.seq_len),
              static_cast<long long>(config.train.micro_batch), static_cast<long long>(config.model.seq_len),
              static_cast<long long>(grad_accum), static_cast<long long>(config.train.steps));
  std::printf("memory per rank, estimated (src/train/memory_estimate.h):\n  cpu:  %s\n",
              describe_memory(estimate_memory(config, Device::kCpu, 1)).c_str());
  try {
    std::printf("  cuda: %s\n", describe_memory(estimate_memory(config, Device::kCuda, 1)).c_str());
  } catch (const std::exception& e) {
    std::printf("  cuda: %s\n", e.what());
  }
  for (const std::string& warning : schedule_warnings(config.schedule, config.train.steps))
    std::printf("warning: %s\n", warning.c_str());
  std::printf("config hash: %s\nresolved config:\n%s", config_hash(config).c_str(), config_to_yaml(config).c_str());
}

namespace {

// The settings of `config` that differ from the run whose resolved config is
// `saved_yaml`, as "key old -> new", but for those a run may change on resume:
// output-only keys (config.h) and the evaluation's cadence and size.
std::string training_changes(const std::string& saved_yaml, const std::string& source, const Config& config) {
  std::string changed;
  for (const std::string& d : differing_keys(parse_config(saved_yaml, source), config)) {
    const std::string key = d.substr(0, d.find(' '));
    if (!output_only_key(key) && key != "train.eval_every" && key != "train.eval_tokens")
      changed += (changed.empty() ? "" : ", ") + d;
  }
  return changed;
}

// Throws unless a run of `config` over `comm` may continue from the checkpoint
// `saved` exactly: only settings off the training path may change, and the
// optimizer state must be sharded over as many ranks.
void check_resumable(const TrainState& saved, const std::string& folder, const Config& config, const Comm& comm) {
  if (const std::string changed = training_changes(saved.config_yaml, "checkpoint '" + folder + "'", config);
      !changed.empty())
    throw OutDirHoldsAnotherRun("cannot resume from '" + folder + "' exactly: the config changed " + changed +
                                "; restore those settings or start a new run.out_dir");
  if (saved.ranks != comm.world_size())
    throw std::runtime_error("cannot resume from '" + folder + "': its optimizer state is sharded over " +
                             std::to_string(saved.ranks) + " rank(s) and this run has " +
                             std::to_string(comm.world_size()) + "; resume with mpirun -np " +
                             std::to_string(saved.ranks) + " (or start a new run.out_dir)");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  return text.str();
}

}  // namespace

int run_training(const Config& given, Comm& host_comm, const AfterUpdate& after_update) {
  // run.device auto becomes the device this run uses, so that checkpoints and resumes name it.
  Config config = given;
  const Device device = resolve_device(given.run.device);
  config.run.device = device_name(device);
  // Every rank the same resolved config (device included) before any rank joins NCCL.
  check_same_on_all_ranks(host_comm, config_to_yaml(config), "resolved config",
                          "every rank must run the same config and data (same file, same --set overrides)");
  // Several GPU ranks: one GPU each, and NCCL for what lives on them (gpu_comm.h).
  std::unique_ptr<Comm> gpu_comm;
  if (device == Device::kCuda && host_comm.world_size() > 1) {
    if (!gpu_comm_available())
      throw std::runtime_error("run.device cuda over several ranks needs NCCL, which this build lacks (it needs "
                               "CUDA and NCCL): run one rank, or use run.device: cpu under mpirun");
#ifdef LLMDION_WITH_NCCL
    gpu_comm = make_gpu_comm(host_comm);
#endif
  }
  Comm& comm = gpu_comm ? *gpu_comm : host_comm;
  const std::string& out_dir = config.run.out_dir;
  const bool root = comm.rank() == 0;  // writes loss.csv, done.yaml, checkpoints, samples
  const GptShape shape = shape_from_config(config.model);
  const int64_t grad_accum = grad_accum_steps(config, comm.world_size());
  const int64_t B = config.train.micro_batch, T = config.model.seq_len;
  const int64_t tokens_per_step = grad_accum * B * T * comm.world_size();
  if (comm.world_size() > 1)
    spdlog::info("data parallel over {} ranks: {} x {} x {} micro-steps each", comm.world_size(), B, T, grad_accum);

  // Everything the run reads or must be able to write is checked before the model is allocated.
  for (const std::string& warning : schedule_warnings(config.schedule, config.train.steps)) spdlog::warn("{}", warning);
  if (!config.run.export_llmc.empty()) check_llmc_compatible(shape, config.run.export_llmc);
  if (!config.model.init_from.empty()) check_llmc_checkpoint(config.model.init_from, shape);
  const DataOrder order = config.data.order == "shuffled" ? DataOrder::kShuffled : DataOrder::kSequential;
  DataLoader train_data(loader_options(config, "data.train", config.data.train, grad_accum, order, comm));
  DataLoader val_data(loader_options(config, "data.val", config.data.val, 1, DataOrder::kSequential, comm));
  spdlog::info("train data: {} shards, {} tokens, {} steps of {} tokens per epoch ({} x {} x {} micro-steps)",
               train_data.shards().size(), train_data.total_tokens(), train_data.windows_per_epoch(),
               tokens_per_step, B, T, grad_accum);
  spdlog::info("val data: {} shards, {} tokens", val_data.shards().size(), val_data.total_tokens());
  // evaluate() reads at most one pass over the val data.
  const int64_t val_window = B * T * comm.world_size();
  if (val_data.windows_per_epoch() * val_window < config.train.eval_tokens)
    spdlog::warn("data.val holds {} tokens in whole windows of {}: each evaluation reads those, not "
                 "train.eval_tokens {}", val_data.windows_per_epoch() * val_window, val_window,
                 config.train.eval_tokens);
  const std::vector<std::string> checkpoints = complete_checkpoints(out_dir);  // newest first
  if (!checkpoints.empty() && config.run.resume != "auto")
    throw std::runtime_error("'" + out_dir + "' already holds checkpoints of a run (" + checkpoints.front() +
                             "): continue it with --resume, or choose another run.out_dir");
  if (config.run.resume == "auto" && std::filesystem::exists(out_dir + "/done.yaml")) {
    // A finished run: nothing to train if it is this config, an error naming the changes if not.
    if (!std::filesystem::exists(out_dir + "/config.yaml") && checkpoints.empty())
      throw std::runtime_error("'" + out_dir + "' holds done.yaml but neither config.yaml nor a checkpoint: "
                               "remove done.yaml to train there again, or choose another run.out_dir");
    const std::string finished = std::filesystem::exists(out_dir + "/config.yaml")
                                     ? read_text(out_dir + "/config.yaml")
                                     : read_checkpoint_state(checkpoints.front(), nullptr).config_yaml;
    if (const std::string changed = training_changes(finished, "'" + out_dir + "/config.yaml'", config);
        !changed.empty())
      throw OutDirHoldsAnotherRun("'" + out_dir + "' holds a finished run of another config: " + changed +
                                  "; train this one in a new run.out_dir (a sweep script: --force sets the old "
                                  "run aside)");
    spdlog::info("{} holds this run, finished (done.yaml): nothing to train", out_dir);
    return 0;
  }
  // The newest readable checkpoint must be resumable with this config, model settings included (the
  // loop below checks the tensors).
  for (const std::string& folder : config.run.resume == "auto" ? checkpoints : std::vector<std::string>{}) {
    try {
      check_resumable(read_checkpoint_state(folder, nullptr), folder, config, comm);
      break;
    } catch (const CheckpointDamaged&) {
    }
  }

  const MemoryEstimate memory = estimate_memory(config, device, comm.world_size());
  spdlog::info("memory per rank, estimated: {}", describe_memory(memory));
  check_memory_fits(memory);

  std::unique_ptr<Model> model = make_model(device, shape, B, T);
  const GptLayout& layout = model->layout();
  spdlog::info("model: {}", describe_shape(shape));
  spdlog::info("parameters: {} ({} with vocabulary padding)", count_trained_params(shape, layout), layout.num_params);
  spdlog::info("memory: {}", model->describe_memory());
  std::vector<float> host_params(layout.num_params);
  if (config.model.init_from.empty()) {
    gpt_init(shape, layout, uint64_t(config.run.seed), host_params);
  } else {
    read_llmc_checkpoint(config.model.init_from, shape, host_params);
    spdlog::info("weights from llm.c checkpoint {}", config.model.init_from);
  }
  const auto rounding_seed = [&](int64_t update_count) { return weight_rounding_seed(config.run.seed, update_count); };
  model->copy_params_from_host(host_params);
  model->params_changed(rounding_seed(0));
  DistributedOptimizer distributed = make_distributed_optimizer(config, layout, comm);
  std::unique_ptr<Optimizer>& optimizer = distributed.optimizer;
  spdlog::info("optimizer: {}", optimizer->describe());

  TrainState state;
  state.seed = uint64_t(config.run.seed);
  if (checkpoints.empty() && config.run.resume == "auto")
    spdlog::info("no checkpoint in {}: starting from step 0", out_dir);
  // Resume from the newest checkpoint every rank finds intact; a damaged one is
  // renamed step_<n>.damaged (kept for the user, never read again).
  std::vector<std::string> damaged;
  for (const std::string& folder : config.run.resume == "auto" ? checkpoints : std::vector<std::string>{}) {
    std::string damage;
    TrainState saved;
    try {
      saved = read_checkpoint_state(folder, &shape);
    } catch (const CheckpointDamaged& e) {
      damage = e.what();
    }
    if (damage.empty()) {
      check_resumable(saved, folder, config, comm);
      try {
        load_checkpoint_tensors(folder, *model, *optimizer, comm);
      } catch (const CheckpointDamaged& e) {
        damage = e.what();
      }
    }
    if (comm.sum_over_ranks(damage.empty() ? 0.0 : 1.0) > 0) {
      spdlog::error("{}", damage.empty() ? "checkpoint '" + folder + "' is damaged on another rank" : damage);
      damaged.push_back(folder);
      continue;
    }
    state = saved;
    model->params_changed(rounding_seed(state.update_count));
    train_data.restore(state.data);
    spdlog::info("resumed from {} ({} steps done)", folder, state.step);
    break;
  }
  if (!damaged.empty()) {
    if (damaged.size() == checkpoints.size())
      throw std::runtime_error("no intact checkpoint in '" + out_dir + "/checkpoints' (" +
                               std::to_string(damaged.size()) + " damaged, named above): remove that folder to " +
                               "start the run over");
    if (root)
      for (const std::string& folder : damaged) {
        std::filesystem::remove_all(folder + ".damaged");
        std::filesystem::rename(folder, folder + ".damaged");
        spdlog::warn("damaged checkpoint {} set aside as {}.damaged; resumed from the newest intact one", folder,
                     folder);
      }
  }

  // config.yaml: written once the run is accepted (its config and resume checks passed).
  if (root) write_file_atomic(out_dir + "/config.yaml", [&](std::ostream& out) { out << config_to_yaml(config); });
  spdlog::info("config resolved into {}/config.yaml", out_dir);

  std::optional<LossCsv> csv;
  if (root) csv.emplace(out_dir + "/loss.csv", state.step, tokens_per_step);
  std::unique_ptr<Gpt2Tokenizer> tokenizer;
  std::unique_ptr<Model> sampler;
  if (config.train.sample_every > 0 && root) {
    tokenizer = std::make_unique<Gpt2Tokenizer>(
        Gpt2Tokenizer::load(config.data.vocab_dir + "/encoder.json", config.data.vocab_dir + "/vocab.bpe"));
    sampler = make_model(device, shape, 1, T);
  }

  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  std::vector<int32_t> inputs(B * T), targets(B * T);
  const int64_t steps = config.train.steps;
  auto due = [&](int64_t every, int64_t step) { return step + 1 == steps || (every > 0 && (step + 1) % every == 0); };
  const auto run_start = std::chrono::steady_clock::now();
  const int64_t first_step = state.step;
  const double seconds_before = state.seconds;  // of the run's earlier starts
  std::pair<double, double> final_losses{NAN, NAN};  // train, val
  for (int64_t step = state.step; step < steps; step++) {
    const auto step_start = std::chrono::steady_clock::now();
    const BytesSent sent_before = comm.bytes_sent_by_collective();
    model->zero_grads();
    double loss_sum = 0;
    for (int64_t m = 0; m < grad_accum; m++) {
      train_data.next_batch(inputs.data(), targets.data());
      loss_sum += model->forward(inputs.data(), targets.data());
      // Data parallel: the last backward starts the gradients' reduction as it finishes them.
      const bool last = m + 1 == grad_accum && distributed.gradients_ready;
      model->backward(1.0f / float(grad_accum), last ? GradientsReady([&](int64_t from) {
        distributed.gradients_ready(model->grads(), from);
      }) : GradientsReady());
    }
    // The mean gradient of what this rank updates (sharded_optimizer.h), with
    // its global norm; then the loss of the global batch.
    const double grad_norm =
        distributed.reduce_gradients ? distributed.reduce_gradients(model->grads()) : model->grad_norm();
    const double train_loss = comm.sum_over_ranks(loss_sum / double(grad_accum)) / double(comm.world_size());
    const double lr_scale = lr_multiplier(config.schedule, step, steps);
    const bool finite = std::isfinite(train_loss) && std::isfinite(grad_norm);
    if (!finite && !config.train.skip_nonfinite)
      throw std::runtime_error("step " + std::to_string(step) + ": loss " + std::to_string(train_loss) +
                               ", non-finite gradient first in " + first_nonfinite_tensor(*model) +
                               "; stopping before the weights are touched (train.skip_nonfinite: true skips such steps)");
    double opt_ms = 0;
    if (finite) {
      if (config.train.grad_clip > 0 && grad_norm > config.train.grad_clip)
        model->scale_grads(float(config.train.grad_clip / grad_norm));
      const auto opt_start = std::chrono::steady_clock::now();
      optimizer->step(model->params(), model->grads(), lr_scale, ++state.update_count);
      model->params_changed(rounding_seed(state.update_count));
      opt_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - opt_start).count();
      if (after_update) after_update(step, *optimizer, layout);
    } else {
      // Steps skipped so far, over every resume: those without an update.
      const int64_t skipped = step + 1 - state.update_count;
      if (skipped > config.train.max_skipped_steps)
        throw std::runtime_error("step " + std::to_string(step) + ": loss " + std::to_string(train_loss) +
                                 ", non-finite gradient first in " + first_nonfinite_tensor(*model) + "; " +
                                 std::to_string(skipped) + " steps skipped, over train.max_skipped_steps (" +
                                 std::to_string(config.train.max_skipped_steps) +
                                 "): the run diverged; lower optim.lr or resume from an earlier checkpoint");
      spdlog::warn("step {}: non-finite loss or gradient (first in {}), step skipped ({} of at most {})", step,
                   first_nonfinite_tensor(*model), skipped, config.train.max_skipped_steps);
    }
    state.step = step + 1;
    state.tokens += tokens_per_step;
    state.data = train_data.position();
    const double step_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - step_start).count();

    std::optional<double> val_loss;
    if (due(config.train.eval_every, step) || (step == 0 && config.train.eval_every > 0))
      val_loss = evaluate(*model, val_data, config.train.eval_tokens, inputs, targets, comm);
    const BytesSent sent = comm.bytes_sent_by_collective() - sent_before;  // what this rank sent in the step
    if (csv)
      csv->row(step, state.tokens, config.optim.lr * lr_scale, train_loss, val_loss, grad_norm, step_ms, opt_ms,
               sent.total());
    if (step + 1 == steps) final_losses = {train_loss, val_loss.value_or(NAN)};

    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    state.seconds = seconds_before + elapsed;
    const double eta = elapsed / double(step + 1 - first_step) * double(steps - step - 1);
    if (val_loss || step % 10 == 0 || step + 1 == steps)
      spdlog::info("step {:>6}/{} | loss {:.4f}{} | lr {:.3e} | norm {:.3f} | {:.0f} ms (optimizer {:.1f}) | {:.0f} tok/s{} | ETA {}",
                   step, steps, train_loss, val_loss ? fmt::format(" | val {:.4f}", *val_loss) : "",
                   config.optim.lr * lr_scale, grad_norm, step_ms, opt_ms, double(tokens_per_step) * 1000.0 / step_ms,
                   comm.world_size() > 1 ? " | sent " + sent.describe() : "", format_duration(eta));

    if (const std::string failed = log_write_error(); !failed.empty())
      throw std::runtime_error("cannot write " + out_dir + "/train.log: " + failed +
                               "; the run stops (its last checkpoint is intact)");

    if (sampler && due(config.train.sample_every, step)) {
      model->copy_params_to_host(host_params);
      sampler->copy_params_from_host(host_params);
      sampler->params_changed(rounding_seed(state.update_count));
      SplitMix64 rng{sample_seed(state.seed, step)};
      const std::vector<uint32_t> ids = sample_tokens(*sampler, tokenizer->eot_id(), {}, config.train.sample_tokens,
                                                      config.train.sample_top_k, 1.0, rng);
      spdlog::info("sample at step {}:\n{}", step, tokenizer->decode(ids));
    }
    // A signal to any rank stops every rank after the same step.
    const bool stopping = comm.sum_over_ranks(stop_requested.load() ? 1.0 : 0.0) > 0 &&
                          state.step < steps;  // at the end, finish normally
    if (due(config.train.ckpt_every, step) || stopping) {
      if (csv) csv->sync();  // the rows up to this checkpoint are on disk before it is
      const std::string folder = save_checkpoint(out_dir, *model, *optimizer, state, config, comm);
      spdlog::info("checkpoint {}", folder);
    }
    if (stopping) {
      spdlog::info("stopped by signal after step {}; continue with --resume (run.resume: auto)", step);
      return 0;
    }
  }
  if (!config.run.export_llmc.empty() && root) {
    model->copy_params_to_host(host_params);
    write_llmc_checkpoint(config.run.export_llmc, shape, host_params);
    spdlog::info("weights exported in llm.c's format to {}", config.run.export_llmc);
  }
  if (!config.run.export_hf.empty() && root) {
    model->copy_params_to_host(host_params);
    for (const std::string& gap : write_hf_folder(config.run.export_hf, shape, layout, host_params))
      spdlog::warn("Hugging Face export: no class holds {}; {}/config.json names no architecture", gap,
                   config.run.export_hf);
    spdlog::info("weights exported as a Hugging Face folder to {}", config.run.export_hf);
  }
  // done.yaml marks a finished run (run_summary.h): written last, once the
  // final checkpoint and every output are on disk.
  if (root && state.step == steps && first_step < steps) {
    if (!std::isfinite(final_losses.first) || !std::isfinite(final_losses.second))
      throw std::runtime_error(fmt::format("the last step's train loss is {} and val loss {}: the run diverged and "
                                           "is not marked done (its checkpoints stay)",
                                           final_losses.first, final_losses.second));
    csv->sync();
    const std::string done = done_yaml(summarize_loss_csv(out_dir + "/loss.csv"), state.seconds, config_hash(config));
    write_file_atomic(out_dir + "/done.yaml", [&](std::ostream& out) { out << done; });
  }
  spdlog::info("done: {} steps, {} tokens", state.step, state.tokens);
  return 0;
}

}  // namespace llmdion
