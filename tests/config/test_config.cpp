// Config loading: defaults, overrides, and one clear error per kind of mistake.
#include <gtest/gtest.h>

#include "config/config.h"
#include "test_util.h"

namespace llmdion {
namespace {

// Expects load_config to fail with a message containing every word given.
void expect_config_error(const std::string& yaml, const std::vector<std::string>& overrides,
                         const std::vector<std::string>& words) {
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", yaml);
  try {
    load_config(dir / "run.yaml", overrides);
    ADD_FAILURE() << "no error for:\n" << yaml;
  } catch (const ConfigError& e) {
    for (const std::string& w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << "no '" << w << "' in: " << e.what();
  }
}

TEST(Config, file_values_and_overrides_apply_in_order) {
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", "model:\n  seq_len: 128\ntrain:\n  micro_batch: 4\n  batch_tokens: 2e3\n");
  Config c = load_config(dir / "run.yaml", {"train.micro_batch=2", "data.order=sequential", "train.micro_batch=3",
                                            "run.out_dir='out/a b'"});
  EXPECT_EQ(c.model.seq_len, 128);
  EXPECT_EQ(c.train.micro_batch, 3);
  EXPECT_EQ(c.train.batch_tokens, 2000);
  EXPECT_EQ(c.data.order, "sequential");
  EXPECT_EQ(c.run.out_dir, "out/a b");
  EXPECT_EQ(c.model.vocab_size, Config{}.model.vocab_size);  // untouched keys keep defaults
}

TEST(Config, resolved_yaml_reloads_to_the_same_config) {
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", "run:\n  seed: 42\n  out_dir: \"x: y\"\ndata:\n  order: sequential\n");
  const Config c = load_config(dir / "run.yaml", {"model.seq_len=64"});
  const std::string yaml = config_to_yaml(c);
  test::write_text(dir / "resolved.yaml", yaml);
  const Config again = load_config(dir / "resolved.yaml");
  EXPECT_EQ(config_to_yaml(again), yaml);
  EXPECT_EQ(again.run.seed, 42);
  EXPECT_EQ(again.run.out_dir, "x: y");
  EXPECT_EQ(again.model.seq_len, 64);
}

// --print-config's text: every key with its meaning as a comment, and still a
// config that loads back to the same values.
TEST(Config, documented_yaml_has_every_key_with_its_meaning_and_reloads) {
  test::ScratchDir dir;
  const Config c = parse_config("optim: {matrix: dion2, alpha: 0.125}\n", "test", {"run.out_dir='a # b'"});
  const std::string documented = "\n" + config_to_yaml(c, true);
  Config copy = c;
  for (const ConfigField& f : config_fields(copy)) {
    ASSERT_FALSE(f.doc.empty()) << f.key << " has no meaning";
    const size_t section = documented.find("\n" + f.key.substr(0, f.key.find('.')) + ":\n");
    const size_t at = documented.find("\n  " + f.key.substr(f.key.find('.') + 1) + ": ", section);
    ASSERT_NE(at, std::string::npos) << f.key;
    const std::string line = documented.substr(at + 1, documented.find('\n', at + 1) - at - 1);
    EXPECT_NE(line.find("# " + f.doc), std::string::npos) << line;
  }
  test::write_text(dir / "documented.yaml", documented);
  const Config again = load_config(dir / "documented.yaml");
  EXPECT_EQ(config_to_yaml(again), config_to_yaml(c));
  EXPECT_EQ(again.run.out_dir, "a # b");
}

// The hash names what a run trains: where it writes or how often it
// checkpoints leave it alone, any setting of the training changes it.
TEST(Config, hash_ignores_output_only_keys_and_follows_every_other) {
  const Config base = parse_config("", "test");
  const std::string hash = config_hash(base);
  EXPECT_EQ(hash.size(), 16u);
  for (const char* output : {"run.out_dir=elsewhere", "run.resume=auto", "train.ckpt_every=7", "train.ckpt_keep=0",
                             "train.sample_every=3", "data.vocab_dir=v", "run.export_llmc=w.bin"})
    EXPECT_EQ(config_hash(parse_config("", "test", {output})), hash) << output;
  Config copy = base;
  int trained_keys = 0;
  for (const ConfigField& f : config_fields(copy)) {
    if (output_only_key(f.key)) continue;
    // Another valid value for each trained key: its first other choice, a flipped bool, a number nudged in range.
    std::string other;
    if (!f.choices.empty()) other = f.choices[f.choices[0] == parse_config("", "t", {}).model.arch ? 1 : 0];
    if (auto* p = std::get_if<bool*>(&f.value)) other = **p ? "false" : "true";
    if (auto* p = std::get_if<int64_t*>(&f.value)) other = std::to_string(**p + 1 <= f.max ? **p + 1 : **p - 1);
    if (auto* p = std::get_if<double*>(&f.value)) other = std::to_string(**p < f.max ? (**p + f.max) / 2 : **p / 2);
    if (std::holds_alternative<std::string*>(f.value) && f.choices.empty()) other = "changed";
    if (!f.choices.empty() && other == *std::get<std::string*>(f.value)) other = f.choices.back();
    try {
      EXPECT_NE(config_hash(parse_config("", "test", {f.key + "=" + other})), hash) << f.key << "=" << other;
      trained_keys++;
    } catch (const ConfigError&) {  // a value another key's check refuses (e.g. optim.sync: selected alone)
    }
  }
  EXPECT_GT(trained_keys, 50);
}

TEST(Config, unknown_key_names_key_file_and_suggestion) {
  expect_config_error("model:\n  seq_lenn: 5\n", {}, {"unknown config key 'model.seq_lenn'", "run.yaml", "model.seq_len"});
  expect_config_error("", {"trian.micro_batch=3"}, {"unknown config key 'trian.micro_batch'", "--set", "train.micro_batch"});
  expect_config_error("modle: 3\n", {}, {"unknown config key 'modle'"});
}

TEST(Config, wrong_types_and_ranges_name_the_key) {
  expect_config_error("model:\n  seq_len: abc\n", {}, {"'model.seq_len'", "run.yaml", "expected an integer", "abc"});
  expect_config_error("model:\n  seq_len: 1.5\n", {}, {"'model.seq_len'", "expected an integer"});
  expect_config_error("model:\n  seq_len: 0\n", {}, {"'model.seq_len'", "out of range"});
  expect_config_error("data:\n  order: random\n", {}, {"'data.order'", "sequential | shuffled"});
  expect_config_error("model:\n  seq_len: [1, 2]\n", {}, {"'model.seq_len'", "list"});
  expect_config_error("model:\n  seq_len:\n", {}, {"'model.seq_len'", "no value"});
  expect_config_error("model: 5\n", {}, {"'model'", "section"});
  expect_config_error("model:\n  seq_len:\n    x: 1\n", {}, {"'model.seq_len'", "got a map"});
  expect_config_error("", {"train.micro_batch"}, {"key.path=value"});
  expect_config_error("run:\n  out_dir: {}\n", {}, {"'run.out_dir'", "got a map"});
  expect_config_error("", {"run.out_dir=~"}, {"'run.out_dir'", "no value"});
  expect_config_error("", {"data.train="}, {"'data.train'", "no value"});
  expect_config_error("", {"run.seed=1e19"}, {"'run.seed'", "out of range"});
  expect_config_error("", {"train.micro_batch=-1"}, {"'train.micro_batch'", "out of range"});
}

TEST(Config, a_key_given_twice_is_an_error) {
  expect_config_error("model:\n  seq_len: 64\n  seq_len: 128\n", {}, {"config key 'model.seq_len' appears twice", "run.yaml"});
  expect_config_error("model:\n  n_layer: 2\nmodel:\n  n_head: 2\n", {}, {"config key 'model' appears twice"});
}

// A check between keys names the --set that broke it, not the file that did not.
TEST(Config, a_check_between_keys_names_the_override_that_broke_it) {
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", "model:\n  n_head: 4\n  d_model: 64\n");
  try {
    load_config(dir / "run.yaml", {"model.d_model=30"});
    ADD_FAILURE() << "d_model 30 over 4 heads was accepted";
  } catch (const ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("must be a multiple of model.n_head (4) in --set model.d_model=30"), std::string::npos) << what;
    EXPECT_EQ(what.find("run.yaml"), std::string::npos) << what;
  }
  expect_config_error("model:\n  n_head: 4\n  d_model: 30\n", {}, {"must be a multiple of model.n_head", "run.yaml"});
}

TEST(Config, bad_yaml_and_missing_file_are_clear) {
  expect_config_error("model:\n  seq_len: [1, 2\n", {}, {"not valid YAML", "line"});
  EXPECT_THROW(load_config("/nonexistent/run.yaml"), ConfigError);
}

TEST(Config, batch_tokens_must_be_whole_micro_batches) {
  Config c;
  c.model.seq_len = 64, c.train.micro_batch = 4;
  c.train.batch_tokens = 0;
  EXPECT_EQ(grad_accum_steps(c, 2), 1);
  c.train.batch_tokens = 4 * 64 * 2 * 3;
  EXPECT_EQ(grad_accum_steps(c, 2), 3);
  c.train.batch_tokens = 1000;
  EXPECT_THROW(grad_accum_steps(c, 2), ConfigError);
}

}  // namespace
}  // namespace llmdion

namespace llmdion {
namespace {

TEST(Config, matrix_optimizer_keys_are_checked) {
  expect_config_error("optim:\n  matrix: dion3\n", {}, {"optim.matrix", "adamw | muon | dion | dion2", "dion3"});
  expect_config_error("optim:\n  alpha: 0\n", {}, {"optim.alpha", "out of range"});
  expect_config_error("optim:\n  select: top\n", {}, {"optim.select", "l1 | random"});
  expect_config_error("optim:\n  select_dim: both\n", {}, {"optim.select_dim", "shorter | rows | cols"});
  expect_config_error("optim:\n  decay: none\n", {}, {"optim.decay", "selective | full"});
  expect_config_error("optim:\n  ortho: svd\n", {}, {"optim.ortho", "newton_schulz | polar_express"});
  expect_config_error("optim:\n  matrix: dion\n  normalize: neuron\n", {}, {"optim.normalize", "muon or dion2", "dion"});
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", "optim:\n  matrix: dion2\n  alpha: 0.125\n  normalize: neuron\n");
  const Config c = load_config(dir / "run.yaml", {"optim.select=random"});
  EXPECT_EQ(c.optim.alpha, 0.125);
  EXPECT_EQ(c.optim.select, "random");
  EXPECT_EQ(c.optim.normalize, "neuron");
}

TEST(Config, gradient_dtype_is_fp32_or_bf16) {
  EXPECT_EQ(Config{}.dist.grad_dtype, "fp32");
  expect_config_error("dist:\n  grad_dtype: fp16\n", {}, {"'dist.grad_dtype'", "fp32 | bf16", "fp16"});
  expect_config_error("", {"dist.grad_type=bf16"}, {"unknown config key 'dist.grad_type'", "dist.grad_dtype"});
  test::ScratchDir dir;
  test::write_text(dir / "run.yaml", "dist:\n  grad_dtype: bf16\n");
  EXPECT_EQ(load_config(dir / "run.yaml").dist.grad_dtype, "bf16");
}

}  // namespace
}  // namespace llmdion
