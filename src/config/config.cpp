#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/checksum.h"

namespace llmdion {

std::vector<ConfigField> config_fields(Config& c) {
  return {
      {"run.out_dir",
       "where the run writes: loss.csv, train.log, config.yaml, checkpoints/, done.yaml",
       &c.run.out_dir},
      {"run.seed",
       "seeds the init, the data order, random selection and samples",
       &c.run.seed, 0, 9.2e18},
      {"run.device",
       "the backend: cpu, cuda, or auto (cuda when this binary and machine have it)",
       &c.run.device, 0, 0, {"cpu", "cuda", "auto"}},
      {"run.resume",
       "auto: continue from out_dir's newest intact checkpoint (--resume)",
       &c.run.resume, 0, 0, {"never", "auto"}},
      {"run.export_llmc",
       "at the end, also write the weights as an llm.c checkpoint to this file",
       &c.run.export_llmc},
      {"run.export_hf",
       "at the end, also write a Hugging Face folder (config.json, model.safetensors) here",
       &c.run.export_hf},
      {"model.arch",
       "gpt2, llama or paper: a preset of the block options below (a key given overrides it)",
       &c.model.arch, 0, 0, {"gpt2", "llama", "paper"}},
      {"model.n_layer",
       "transformer blocks",
       &c.model.n_layer, 1, 1024},
      {"model.n_head",
       "attention heads",
       &c.model.n_head, 1, 1024},
      {"model.n_kv_head",
       "k and v heads; 0: n_head; fewer: grouped-query attention",
       &c.model.n_kv_head, 0, 1024},
      {"model.d_model",
       "the residual stream's width",
       &c.model.d_model, 1, 1 << 16},
      {"model.mlp_ratio",
       "MLP width over d_model (gelu, relu2)",
       &c.model.mlp_ratio, 1, 64},
      {"model.ffn_hidden",
       "the MLP width itself; 0: mlp_ratio x d_model, or 8/3 d_model rounded up to 256 for swiglu",
       &c.model.ffn_hidden, 0, 1 << 20},
      {"model.seq_len",
       "T: tokens per sequence (and rows of the position table)",
       &c.model.seq_len, 1, 1 << 20},
      {"model.vocab_size",
       "token ids must be below it; padded to a multiple of 128 inside",
       &c.model.vocab_size, 1, 1 << 30},
      {"model.norm",
       "layernorm or rmsnorm",
       &c.model.norm, 0, 0, {"layernorm", "rmsnorm"}},
      {"model.norm_affine",
       "norms have a learned scale (and, layernorm with bias, a shift)",
       &c.model.norm_affine},
      {"model.pos",
       "learned (a position table) or rope",
       &c.model.pos, 0, 0, {"learned", "rope"}},
      {"model.rope_theta",
       "rope's base",
       &c.model.rope_theta, 1, 1e12},
      {"model.mlp",
       "gelu, relu2 or swiglu",
       &c.model.mlp, 0, 0, {"gelu", "relu2", "swiglu"}},
      {"model.qk_norm",
       "RMSNorm (no scale) of each head's q and k",
       &c.model.qk_norm},
      {"model.tied_embeddings",
       "the head reuses the token embedding (GPT-2)",
       &c.model.tied_embeddings},
      {"model.bias",
       "biases in the linear layers and layernorms (GPT-2)",
       &c.model.bias},
      {"model.init_from",
       "an llm.c checkpoint (.bin) to start from instead of a fresh init",
       &c.model.init_from},
      {"data.train",
       "glob of the training shards (llm.c format)",
       &c.data.train},
      {"data.val",
       "glob of the validation shards",
       &c.data.val},
      {"data.order",
       "sequential or shuffled (windows of each epoch, seeded by run.seed)",
       &c.data.order, 0, 0, {"sequential", "shuffled"}},
      {"data.vocab_dir",
       "encoder.json and vocab.bpe: the GPT-2 tokenizer for samples and generate",
       &c.data.vocab_dir},
      {"train.micro_batch",
       "B: sequences per rank per micro-step",
       &c.train.micro_batch, 1, 1 << 20},
      {"train.batch_tokens",
       "tokens per optimizer step over all ranks; 0: one micro-step",
       &c.train.batch_tokens, 0, 1e15},
      {"train.steps",
       "optimizer steps of the run",
       &c.train.steps, 1, 1e12},
      {"train.grad_clip",
       "clip the global gradient norm to this; 0: off",
       &c.train.grad_clip, 0, 1e30},
      {"train.skip_nonfinite",
       "skip a step whose loss or gradient is NaN/Inf instead of stopping",
       &c.train.skip_nonfinite},
      {"train.max_skipped_steps",
       "with skip_nonfinite: stop (a diverged run) once more steps than this were skipped",
       &c.train.max_skipped_steps, 0, 1e12},
      {"train.eval_every",
       "val loss every this many steps, at step 0 and at the end; 0: only at the end",
       &c.train.eval_every, 0, 1e12},
      {"train.eval_tokens",
       "val tokens per evaluation",
       &c.train.eval_tokens, 1, 1e15},
      {"train.ckpt_every",
       "checkpoint every this many steps (and at the end); 0: only at the end",
       &c.train.ckpt_every, 0, 1e12},
      {"train.ckpt_keep",
       "newest checkpoints kept; 0: all",
       &c.train.ckpt_keep, 0, 1e6},
      {"train.sample_every",
       "print a text sample every this many steps (and at the end); 0: never",
       &c.train.sample_every, 0, 1e12},
      {"train.sample_tokens",
       "tokens per sample",
       &c.train.sample_tokens, 1, 1 << 20},
      {"train.sample_top_k",
       "samples draw from the k most likely tokens",
       &c.train.sample_top_k, 1, 1 << 30},
      {"schedule.kind",
       "wsd (warmup, constant, linear decay) or cosine",
       &c.schedule.kind, 0, 0, {"wsd", "cosine"}},
      {"schedule.warmup_steps",
       "linear warmup from 0 over this many steps",
       &c.schedule.warmup_steps, 0, 1e12},
      {"schedule.decay_frac",
       "wsd: the last fraction of the steps decays linearly",
       &c.schedule.decay_frac, 0, 1},
      {"schedule.final_lr_frac",
       "the multiplier the decay ends at",
       &c.schedule.final_lr_frac, 0, 1},
      {"optim.matrix",
       "the matrix parameters' optimizer: adamw, muon, dion or dion2",
       &c.optim.matrix, 0, 0, {"adamw", "muon", "dion", "dion2"}},
      {"optim.lr",
       "the matrix group's peak learning rate",
       &c.optim.lr, 0, 1e3},
      {"optim.weight_decay",
       "decoupled: W *= 1 - lr x weight_decay, every entry",
       &c.optim.weight_decay, 0, 1e3},
      {"optim.beta1",
       "AdamW's first moment (matrix: adamw)",
       &c.optim.beta1, 0, 1},
      {"optim.beta2",
       "AdamW's second moment; NorMuon's per-neuron one",
       &c.optim.beta2, 0, 1},
      {"optim.eps",
       "AdamW's and NorMuon's denominator guard",
       &c.optim.eps, 0, 1},
      {"optim.mu",
       "momentum (muon), error-feedback decay (dion, dion2)",
       &c.optim.mu, 0, 1},
      {"optim.nesterov",
       "muon: orthonormalize G + mu M instead of M",
       &c.optim.nesterov},
      {"optim.scale",
       "update scale: spectral sqrt(fan_out/fan_in), rms 0.2 sqrt(max dim), or none",
       &c.optim.scale, 0, 0, {"spectral", "rms", "none"}},
      {"optim.ortho",
       "newton_schulz (quintic 3.4445, -4.7750, 2.0315) or polar_express",
       &c.optim.ortho, 0, 0, {"newton_schulz", "polar_express"}},
      {"optim.ortho_steps",
       "iterations of the orthonormalization",
       &c.optim.ortho_steps, 1, 100},
      {"optim.ortho_precision",
       "fp32 or bf16: the orthonormalization's products on bf16 operands",
       &c.optim.ortho_precision, 0, 0, {"fp32", "bf16"}},
      {"optim.alpha",
       "dion2: the fraction of rows or columns orthonormalized per step",
       &c.optim.alpha, 1e-9, 1},
      {"optim.select",
       "dion2: l1 (top-k by l1 norm) or random (seeded, the same on every rank)",
       &c.optim.select, 0, 0, {"l1", "random"}},
      {"optim.select_dim",
       "dion2: select among the shorter side, rows or cols",
       &c.optim.select_dim, 0, 0, {"shorter", "rows", "cols"}},
      {"optim.decay",
       "dion2: selective (M[K] *= mu, the paper) or full (M *= mu, the ablation)",
       &c.optim.decay, 0, 0, {"selective", "full"}},
      {"optim.sync",
       "dion2 over ranks: full (average every gradient) or selected (only the selected slices)",
       &c.optim.sync, 0, 0, {"full", "selected"}},
      {"optim.rank_frac",
       "dion: rank r = ceil(rank_frac x min(fan_out, fan_in))",
       &c.optim.rank_frac, 1e-9, 1},
      {"optim.normalize",
       "muon, dion2: none, or neuron (NorMuon's per-row second moment)",
       &c.optim.normalize, 0, 0, {"none", "neuron"}},
      {"scalar_opt.lr",
       "AdamW for embeddings, head, norms and biases: learning rate",
       &c.scalar_opt.lr, 0, 1e3},
      {"scalar_opt.beta1",
       "its first moment",
       &c.scalar_opt.beta1, 0, 1},
      {"scalar_opt.beta2",
       "its second moment",
       &c.scalar_opt.beta2, 0, 1},
      {"scalar_opt.eps",
       "its denominator guard",
       &c.scalar_opt.eps, 0, 1},
      {"scalar_opt.weight_decay",
       "its decoupled weight decay",
       &c.scalar_opt.weight_decay, 0, 1e3},
      {"dist.grad_dtype",
       "fp32 or bf16: what gradients are reduce-scattered in over several ranks",
       &c.dist.grad_dtype, 0, 0, {"fp32", "bf16"}},
  };
}

namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

std::string format_number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, end);
}

// Sets one key from its text form; `source` names where the text came from.
void assign(std::vector<ConfigField>& fields, const std::string& key, const std::string& text,
            const std::string& source, std::map<std::string, std::string>& given) {
  auto field = std::find_if(fields.begin(), fields.end(), [&](const ConfigField& f) { return f.key == key; });
  if (field == fields.end()) {
    std::string message = "unknown config key '" + key + "' in " + source;
    const ConfigField* closest = nullptr;
    size_t best = 4;
    for (const ConfigField& f : fields) {
      size_t d = edit_distance(key, f.key);
      if (d < best) best = d, closest = &f;
    }
    if (closest) message += " (did you mean '" + closest->key + "'?)";
    throw ConfigError(message);
  }
  given[key] = source;
  auto bad = [&](const std::string& expected) {
    return ConfigError("config key '" + key + "' in " + source + ": expected " + expected + ", got '" + text + "'");
  };
  auto check_range = [&](double v) {
    if (v < field->min || v > field->max)
      throw ConfigError("config key '" + key + "' in " + source + ": " + text + " is out of range [" +
                        format_number(field->min) + ", " + format_number(field->max) + "]");
  };
  if (auto* p = std::get_if<int64_t*>(&field->value)) {
    int64_t v;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) {
      // Also accept integral scientific forms such as 2e6.
      double d;
      auto [dend, dec] = std::from_chars(text.data(), text.data() + text.size(), d);
      if (dec != std::errc() || dend != text.data() + text.size() || d != std::floor(d)) throw bad("an integer");
      check_range(d);
      v = int64_t(d);
    }
    check_range(double(v));
    **p = v;
  } else if (auto* p = std::get_if<double*>(&field->value)) {
    double v;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) throw bad("a number");
    check_range(v);
    **p = v;
  } else if (auto* p = std::get_if<bool*>(&field->value)) {
    std::string lower = text;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (lower == "true" || lower == "yes" || lower == "on") **p = true;
    else if (lower == "false" || lower == "no" || lower == "off") **p = false;
    else throw bad("true or false");
  } else {
    const auto& choices = field->choices;
    if (!choices.empty() && std::find(choices.begin(), choices.end(), text) == choices.end()) {
      std::string list;
      for (const std::string& c : choices) list += (list.empty() ? "" : " | ") + c;
      throw bad("one of " + list);
    }
    *std::get<std::string*>(field->value) = text;
  }
}

void assign_tree(std::vector<ConfigField>& fields, const YAML::Node& node, const std::string& key,
                 const std::string& source, std::map<std::string, std::string>& given) {
  if (node.IsMap()) {
    if (!key.empty()) {
      // A section must be one, not a leaf written as a map.
      bool is_section = std::any_of(fields.begin(), fields.end(),
                                    [&](const ConfigField& f) { return f.key.rfind(key + ".", 0) == 0; });
      if (!is_section) throw ConfigError("config key '" + key + "' in " + source + ": expected a single value, got a map");
    }
    std::set<std::string> names;
    for (const auto& entry : node) {
      const std::string name = entry.first.as<std::string>();
      if (!names.insert(name).second)
        throw ConfigError("config key '" + (key.empty() ? name : key + "." + name) + "' appears twice in " + source);
      assign_tree(fields, entry.second, key.empty() ? name : key + "." + name, source, given);
    }
  } else if (node.IsScalar()) {
    bool is_section = std::any_of(fields.begin(), fields.end(),
                                  [&](const ConfigField& f) { return f.key.rfind(key + ".", 0) == 0; });
    if (is_section) throw ConfigError("config key '" + key + "' in " + source + " is a section: give its keys below it");
    assign(fields, key, node.Scalar(), source, given);
  } else if (node.IsSequence()) {
    throw ConfigError("config key '" + key + "' in " + source + ": expected a single value, got a list");
  } else if (!key.empty()) {
    throw ConfigError("config key '" + key + "' in " + source + " has no value");
  }
}

// A field's value as text, as config.yaml writes it.
std::string field_text(const ConfigField& f) {
  if (auto* p = std::get_if<int64_t*>(&f.value)) return std::to_string(**p);
  if (auto* p = std::get_if<double*>(&f.value)) return format_number(**p);
  if (auto* p = std::get_if<bool*>(&f.value)) return **p ? "true" : "false";
  return *std::get<std::string*>(f.value);
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw ConfigError("cannot read config file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), "config file '" + path + "'", overrides);
}

Config parse_config(const std::string& yaml, const std::string& source, const std::vector<std::string>& overrides) {
  Config config;
  std::vector<ConfigField> fields = config_fields(config);
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source + " is not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsNull() && !root.IsMap()) throw ConfigError(source + " must be a map of sections");
  std::map<std::string, std::string> given;  // the keys the file or an override set, with where
  assign_tree(fields, root, "", source, given);
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0)
      throw ConfigError("override '--set " + o + "' must have the form key.path=value");
    const std::string key = o.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw ConfigError("override '--set " + o + "' is not a valid YAML value: " + e.msg);
    }
    assign_tree(fields, value, key, "--set " + o, given);
  }
  // Where keys were set, for the checks between keys: the --set that set one, else the file.
  const auto where = [&](std::initializer_list<const char*> keys) {
    std::string out;
    for (const char* key : keys)
      if (auto it = given.find(key); it != given.end() && it->second != source && out.find(it->second) == std::string::npos)
        out += (out.empty() ? "" : ", ") + it->second;
    return out.empty() ? source : out;
  };
  // model.arch's preset fills the block options nobody gave.
  const std::map<std::string, std::vector<std::pair<std::string, std::string>>> presets = {
      {"gpt2", {{"norm", "layernorm"}, {"norm_affine", "true"}, {"pos", "learned"}, {"mlp", "gelu"},
                {"qk_norm", "false"}, {"bias", "true"}, {"tied_embeddings", "true"}}},
      {"llama", {{"norm", "rmsnorm"}, {"norm_affine", "true"}, {"pos", "rope"}, {"mlp", "swiglu"},
                 {"qk_norm", "false"}, {"bias", "false"}, {"tied_embeddings", "false"}}},
      {"paper", {{"norm", "rmsnorm"}, {"norm_affine", "false"}, {"pos", "rope"}, {"mlp", "relu2"},
                 {"qk_norm", "true"}, {"bias", "false"}, {"tied_embeddings", "false"}}}};
  for (const auto& [key, value] : presets.at(config.model.arch))
    if (!given.count("model." + key)) assign(fields, "model." + key, value, "model.arch " + config.model.arch, given);
  const int64_t kv_heads = config.model.n_kv_head == 0 ? config.model.n_head : config.model.n_kv_head;
  if (config.model.n_head % kv_heads != 0)
    throw ConfigError("model.n_head (" + std::to_string(config.model.n_head) + ") must be a multiple of model.n_kv_head (" +
                      std::to_string(kv_heads) + ") in " + where({"model.n_head", "model.n_kv_head"}));
  if (config.model.pos == "rope" && (config.model.d_model / config.model.n_head) % 2 != 0)
    throw ConfigError("model.pos: rope needs an even head size (d_model / n_head = " +
                      std::to_string(config.model.d_model / config.model.n_head) + ") in " +
                      where({"model.pos", "model.arch", "model.d_model", "model.n_head"}));
  if (config.model.d_model % config.model.n_head != 0)
    throw ConfigError("model.d_model (" + std::to_string(config.model.d_model) + ") must be a multiple of model.n_head (" +
                      std::to_string(config.model.n_head) + ") in " + where({"model.d_model", "model.n_head"}));
  if (config.optim.beta1 >= 1 || config.optim.beta2 >= 1 || config.scalar_opt.beta1 >= 1 || config.scalar_opt.beta2 >= 1)
    throw ConfigError("AdamW betas must be below 1 (optim.beta1/beta2, scalar_opt.beta1/beta2) in " +
                      where({"optim.beta1", "optim.beta2", "scalar_opt.beta1", "scalar_opt.beta2"}));
  if (config.optim.sync == "selected" &&
      (config.optim.matrix != "dion2" || config.optim.select != "random" || config.train.grad_clip != 0))
    throw ConfigError("optim.sync: selected needs optim.matrix dion2 with optim.select random (the same slices on every "
                      "rank without seeing the whole momentum) and train.grad_clip 0 (clipping needs the averaged "
                      "gradient, which is never formed), in " +
                      where({"optim.sync", "optim.matrix", "optim.select", "train.grad_clip"}));
  if (config.optim.normalize == "neuron" && config.optim.matrix != "muon" && config.optim.matrix != "dion2")
    throw ConfigError("optim.normalize: neuron (NorMuon) applies to optim.matrix muon or dion2, not " +
                      config.optim.matrix + ", in " + where({"optim.normalize", "optim.matrix"}));
  return config;
}

std::vector<std::string> differing_keys(const Config& a, const Config& b) {
  Config ca = a, cb = b;
  const std::vector<ConfigField> fa = config_fields(ca), fb = config_fields(cb);
  std::vector<std::string> keys;
  for (size_t i = 0; i < fa.size(); i++)
    if (field_text(fa[i]) != field_text(fb[i])) keys.push_back(fa[i].key + " " + field_text(fa[i]) + " -> " + field_text(fb[i]));
  return keys;
}

std::string config_to_yaml(const Config& config, bool with_docs) {
  Config copy = config;
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const ConfigField& f : config_fields(copy)) {
    const std::string head = f.key.substr(0, f.key.find('.'));
    if (head != section) {
      if (!section.empty()) out << YAML::EndMap;
      out << YAML::Key << head << YAML::Value << YAML::BeginMap;
      section = head;
    }
    out << YAML::Key << f.key.substr(f.key.find('.') + 1) << YAML::Value;
    if (std::holds_alternative<std::string*>(f.value)) out << YAML::DoubleQuoted;
    out << field_text(f);
    if (with_docs) out << YAML::Comment(f.doc);
  }
  if (!section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

bool output_only_key(const std::string& key) {
  static const std::set<std::string> keys = {
      "run.out_dir",       "run.resume",          "run.export_llmc",     "run.export_hf",
      "data.vocab_dir",    "train.ckpt_every",    "train.ckpt_keep",     "train.sample_every",
      "train.sample_tokens", "train.sample_top_k"};
  return keys.count(key) > 0;
}

std::string config_hash(const Config& config) {
  Config copy = config;
  std::string trained;
  for (const ConfigField& f : config_fields(copy))
    if (!output_only_key(f.key)) trained += f.key + ": " + field_text(f) + "\n";
  return xxh64_hex(trained.data(), trained.size());
}

int64_t grad_accum_steps(const Config& config, int world_size) {
  const int64_t micro_tokens = config.train.micro_batch * config.model.seq_len * world_size;
  if (config.train.batch_tokens == 0) return 1;
  if (config.train.batch_tokens % micro_tokens != 0)
    throw ConfigError("train.batch_tokens (" + std::to_string(config.train.batch_tokens) +
                      ") must be a multiple of train.micro_batch x model.seq_len x ranks (" +
                      std::to_string(config.train.micro_batch) + " x " + std::to_string(config.model.seq_len) +
                      " x " + std::to_string(world_size) + " = " + std::to_string(micro_tokens) + ")");
  return config.train.batch_tokens / micro_tokens;
}

}  // namespace llmdion
