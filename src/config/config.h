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
  std::string device = "cpu";           // cpu | cuda | auto (cuda when this binary and machine have it)
  std::string resume = "never";         // never | auto: continue from out_dir's last checkpoint
  std::string export_llmc;              // at the end, also write the weights in llm.c's format here
  std::string export_hf;                // at the end, also write a Hugging Face folder here
};

// The model. `arch` is a preset of the block's options (norm ... bias below):
//   gpt2:  layernorm (learned scale and shift), learned positions, gelu MLP, biases, tied head
//   llama: rmsnorm (learned scale), rope, swiglu MLP, no biases, untied head
//   paper: the Dion2 paper's GPT (modded-nanogpt): rmsnorm without a learned
//          scale, rope, qk-norm, relu^2 MLP, no biases, untied head
// A key given in the file or by --set overrides its preset value.
struct ModelConfig {
  std::string arch = "gpt2";   // gpt2 | llama | paper
  int64_t n_layer = 4;
  int64_t n_head = 4;
  int64_t n_kv_head = 0;       // k and v heads; 0: n_head; fewer: grouped-query attention
  int64_t d_model = 128;
  int64_t mlp_ratio = 4;       // MLP width over d_model (gelu, relu2)
  int64_t ffn_hidden = 0;      // the MLP width itself; 0: mlp_ratio * d_model, or for
                               // swiglu 8/3 d_model rounded up to a multiple of 256
  int64_t seq_len = 256;       // T: tokens per sequence (and rows of the position table)
  int64_t vocab_size = 50257;  // token ids in the data must be below it
  std::string norm = "layernorm";  // layernorm | rmsnorm
  bool norm_affine = true;     // norms have a learned scale (and, layernorm with bias, shift)
  std::string pos = "learned"; // learned | rope
  double rope_theta = 10000;
  std::string mlp = "gelu";    // gelu | relu2 | swiglu
  bool qk_norm = false;        // RMSNorm (no scale) of each head's q and k
  bool tied_embeddings = true; // the head reuses wte (GPT-2)
  bool bias = true;            // biases in linear layers and LayerNorms (GPT-2)
  std::string init_from;       // llm.c checkpoint (.bin) to start from instead of a fresh init
};

struct DataConfig {
  std::string train = "data/sotu/sotu_train_*.bin";  // glob of training shards
  std::string val = "data/sotu/sotu_val_*.bin";      // glob of validation shards
  std::string order = "shuffled";                    // sequential | shuffled
  std::string vocab_dir = "data/gpt2";               // encoder.json + vocab.bpe, to print samples
};

struct TrainConfig {
  int64_t micro_batch = 8;     // B: sequences per rank per micro-step
  int64_t batch_tokens = 0;    // tokens per optimizer step, all ranks; 0 = one micro-step
  int64_t steps = 1000;
  double grad_clip = 1.0;      // clip the global gradient norm to this; 0 = off
  bool skip_nonfinite = false; // skip a step with NaN/Inf instead of stopping
  int64_t max_skipped_steps = 5; // with skip_nonfinite: stop once a run has skipped more steps than this
  int64_t eval_every = 100;    // val loss every this many steps (and at the end); 0 = only at the end
  int64_t eval_tokens = 65536; // val tokens per evaluation
  int64_t ckpt_every = 0;      // checkpoint every this many steps (and at the end); 0 = only at the end
  int64_t ckpt_keep = 2;       // newest checkpoints kept; 0 = all
  int64_t sample_every = 0;    // print a sample every this many steps (and at the end); 0 = never
  int64_t sample_tokens = 64;
  int64_t sample_top_k = 40;
};

// Learning-rate multiplier over steps: linear warmup, then constant, then a
// linear decay to final_lr_frac over the last decay_frac of the steps (wsd),
// or a cosine from 1 to final_lr_frac after the warmup (cosine).
struct ScheduleConfig {
  std::string kind = "wsd";    // wsd | cosine
  int64_t warmup_steps = 0;
  double decay_frac = 0.25;
  double final_lr_frac = 0.0;
};

// The optimizer of the matrix parameters (attention and MLP weights). Keys
// that an optimizer does not use are ignored by it.
struct OptimConfig {
  std::string matrix = "adamw";      // adamw | muon | dion | dion2
  double lr = 6e-4;
  double weight_decay = 0.1;         // decoupled: W *= 1 - lr * weight_decay, every entry
  double beta1 = 0.9;                // AdamW's moments (matrix: adamw)
  double beta2 = 0.95;               // AdamW's second moment; NorMuon's per-neuron one
  double eps = 1e-8;                 // AdamW's and NorMuon's denominator guard
  double mu = 0.95;                  // momentum (muon), error-feedback decay (dion, dion2)
  bool nesterov = false;             // muon: orthonormalize G + mu M instead of M
  std::string scale = "spectral";    // spectral: sqrt(fan_out/fan_in) | rms: 0.2 sqrt(max) | none
  std::string ortho = "newton_schulz";  // newton_schulz (quintic 3.4445, -4.7750, 2.0315) | polar_express
  int64_t ortho_steps = 5;
  std::string ortho_precision = "fp32";  // fp32 | bf16: operands of the orthonormalization's products
  double alpha = 0.25;               // dion2: fraction of rows or columns orthonormalized per step
  std::string select = "l1";         // dion2: l1 (top-k by l1 norm) | random (seeded, same on every rank)
  std::string select_dim = "shorter";  // dion2: shorter | rows | cols
  std::string decay = "selective";   // dion2: selective (M[K] *= mu) | full (M *= mu, the ablation)
  std::string sync = "full";         // dion2 over ranks: full (average every gradient) | selected
                                     // (average only the selected momentum slices, paper section 3.2)
  double rank_frac = 0.25;           // dion: rank r = ceil(rank_frac * min(fan_out, fan_in))
  std::string normalize = "none";    // muon, dion2: none | neuron (NorMuon's per-row second moment)
};

// AdamW for every other parameter: embeddings, head, norms and biases.
struct ScalarOptConfig {
  double lr = 6e-4;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

// Training over several ranks (mpirun). grad_dtype: what the gradients travel
// in when they are reduce-scattered: fp32, or bf16 (half the bytes; each rank's
// fp32 gradients are rounded to bf16 and summed in bf16, rounding at every
// addition, then widened back to fp32 for the optimizer; weights stay fp32).
struct DistConfig {
  std::string grad_dtype = "fp32";   // fp32 | bf16
};

struct Config {
  RunConfig run;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  ScheduleConfig schedule;
  OptimConfig optim;
  ScalarOptConfig scalar_opt;
  DistConfig dist;
};

// A config key: its dotted name, what it means (one line: --print-config's
// comment and the README's table), where its value lives, and what it may hold.
struct ConfigField {
  std::string key;
  std::string doc;
  std::variant<int64_t*, double*, bool*, std::string*> value;
  double min = -1e300, max = 1e300;   // numbers
  std::vector<std::string> choices;   // strings; empty = any
};

std::vector<ConfigField> config_fields(Config& config);

// Reads `path` (YAML), applies "key.path=value" overrides in order, and checks
// every key, type and range. Throws ConfigError naming the key and its source.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text; `source` names it in errors (e.g. "checkpoint 'x'").
Config parse_config(const std::string& yaml, const std::string& source,
                    const std::vector<std::string>& overrides = {});

// The keys whose values differ, as "key old -> new".
std::vector<std::string> differing_keys(const Config& a, const Config& b);

// The fully resolved config as YAML: every key, defaults included; with
// `with_docs`, each key followed by its meaning as a comment (--print-config).
std::string config_to_yaml(const Config& config, bool with_docs = false);

// The keys that change neither the weights a run trains nor its losses: where
// it writes, whether it resumes, exports, checkpoint cadence and samples.
bool output_only_key(const std::string& key);

// XXH64 of the resolved YAML without the output-only keys: two configs that
// train the same run have the same hash (checkpoints and done.yaml record it,
// the sweep scripts compare it).
std::string config_hash(const Config& config);

// Micro-steps per optimizer step for a world of `world_size` ranks; throws
// ConfigError when train.batch_tokens is not a whole number of micro-batches.
int64_t grad_accum_steps(const Config& config, int world_size);

}  // namespace llmdion
