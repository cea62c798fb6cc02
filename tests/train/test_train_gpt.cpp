// build/train_gpt end to end on a tiny model and synthetic shards: falling loss,
// bit-for-bit determinism, exact resume after SIGTERM, refusals, NaN handling,
// and llm.c checkpoint interop checked by an independent numpy reader.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "core/rng.h"
#include "core/safetensors.h"
#include "train/trainer.h"
#include "data/shard.h"
#include "test_util.h"
#include "core/device.h"
#include "train/train_util.h"

namespace llmdion {
namespace {

class TrainGpt : public ::testing::Test {
 protected:
  void SetUp() override { write_synthetic_shards(dir_); }
  test::ScratchDir dir_;
};

TEST_F(TrainGpt, loss_falls_and_the_csv_has_its_documented_columns) {
  std::string out;
  ASSERT_EQ(train(tiny_config(dir_, "a"), "", &out), 0) << out;
  const std::vector<std::string> rows = deterministic_rows(dir_ / "a/loss.csv");
  ASSERT_EQ(rows.size(), 41u);
  const std::string csv = test::read_text(dir_ / "a/loss.csv");
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,opt_ms,tokens_per_s,comm_bytes");
  EXPECT_EQ(column(rows[1], 1), 256);     // tokens after step 0
  EXPECT_EQ(column(rows[40], 1), 10240);  // after step 39
  EXPECT_NEAR(column(rows[1], 2), 0.003 / 5, 1e-12);  // warmup
  EXPECT_EQ(column(rows[40], 2), 0);                  // decayed to final_lr_frac 0
  const double first = column(rows[1], 3), last = column(rows[40], 3);
  EXPECT_NEAR(first, std::log(256.0), 0.3) << "initial loss should be near ln(vocab)";
  EXPECT_LT(last, first - 1.5) << "loss did not fall: " << first << " -> " << last;
  EXPECT_FALSE(rows[10].ends_with(",,")) << "val_loss missing at step 9: " << rows[10];
  EXPECT_TRUE(std::filesystem::exists(dir_ / "a/config.yaml"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "a/train.log"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "a/checkpoints/step_00000040/COMPLETE"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "a/checkpoints/step_00000030/COMPLETE"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a/checkpoints/step_00000020")) << "ckpt_keep 2";
}

TEST_F(TrainGpt, same_config_and_seed_give_the_same_losses_bit_for_bit) {
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  ASSERT_EQ(train(config, "", &out), 0) << out;
  ASSERT_EQ(train(config, "--set run.out_dir=" + (dir_ / "b"), &out), 0) << out;
  EXPECT_EQ(deterministic_rows(dir_ / "a/loss.csv"), deterministic_rows(dir_ / "b/loss.csv"));
  ASSERT_EQ(train(config, "--set run.out_dir=" + (dir_ / "c") + " --set run.seed=7", &out), 0) << out;
  EXPECT_NE(deterministic_rows(dir_ / "a/loss.csv"), deterministic_rows(dir_ / "c/loss.csv"));
}

// done.yaml summarizes the run: its values recomputed by numpy from loss.csv
// (numpy.percentile, argmin), the wall time at least the steps' summed time,
// the config hash and the version of the binary.
TEST_F(TrainGpt, done_yaml_summarizes_the_run_as_numpy_reads_its_loss_csv) {
  if (test::run_command("/usr/bin/python3 -c 'import numpy, yaml'") != 0) GTEST_SKIP() << "numpy or yaml is missing";
  std::string out;
  ASSERT_EQ(train(tiny_config(dir_, "a"), "--set train.steps=24 --set train.eval_every=5", &out), 0) << out;
  test::write_text(dir_ / "check.py", R"(
import csv, sys, numpy as np, yaml
done = yaml.safe_load(open(sys.argv[1] + "/done.yaml"))
rows = list(csv.DictReader(open(sys.argv[1] + "/loss.csv")))
assert done["steps"] == 24 and done["tokens"] == int(rows[-1]["tokens"]), done
assert done["train_loss"] == float(rows[-1]["train_loss"]) and done["val_loss"] == float(rows[-1]["val_loss"])
vals = [(float(r["val_loss"]), int(r["step"])) for r in rows if r["val_loss"]]
assert [s for _, s in vals] == [0, 4, 9, 14, 19, 23], vals  # step 0, every 5, the last
assert (done["best_val_loss"], done["best_val_step"]) == min(vals), (done, min(vals))
assert done["timing_warmup_steps"] == 6
timed = rows[6:]
for key, column in [("step_ms", "step_ms"), ("opt_ms", "opt_ms"), ("tokens_per_s", "tokens_per_s")]:
    values = np.array([float(r[column]) for r in timed])
    for q, name in [(25, "p25"), (50, "median"), (75, "p75")]:
        expect = np.percentile(values, q)
        assert abs(done[f"{key}_{name}"] - expect) <= 1e-5 * abs(expect) + 1e-9, (key, name, done[f"{key}_{name}"], expect)
seconds = sum(float(r["step_ms"]) for r in rows) / 1000
assert abs(done["tokens_per_s_mean"] - done["tokens"] / seconds) <= 1e-5 * done["tokens_per_s_mean"]
assert done["wall_seconds"] >= seconds * 0.999, (done["wall_seconds"], seconds)
assert len(done["config_hash"]) == 16 and done["version"].startswith("0."), done
print("ok")
)");
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + (dir_ / "check.py") + " " + (dir_ / "a"), &out), 0) << out;
  // The hash is the config's (train_gpt --describe prints the same).
  ASSERT_EQ(train(tiny_config(dir_, "a"), "--set train.steps=24 --set train.eval_every=5 --describe", &out), 0) << out;
  const std::string done = test::read_text(dir_ / "a/done.yaml");
  const size_t at = done.find("config_hash: \"");
  ASSERT_NE(at, std::string::npos) << done;
  EXPECT_NE(out.find("config hash: " + done.substr(at + 14, 16)), std::string::npos) << out << done;
}

// build/generate on a checkpoint: by default the very sample the trainer
// logged after that step (its sampler, seed and weights); for a seed, the same
// text every time, another for another seed; a prompt is continued.
TEST_F(TrainGpt, generate_prints_the_trainers_sample_and_repeats_for_a_seed) {
  const std::string vocab = test::kSourceDir + "/data/gpt2";
  if (!std::filesystem::exists(vocab + "/encoder.json")) GTEST_SKIP() << "data/gpt2 is not prepared";
  std::string out;
  ASSERT_EQ(train(tiny_config(dir_, "a"), "--set train.steps=6 --set train.sample_every=3 --set train.sample_tokens=12 "
                  "--set model.vocab_size=50257 --set data.vocab_dir=" + vocab, &out), 0) << out;
  const std::string log = test::read_text(dir_ / "a/train.log");
  const std::string generate = kBuildDir + "/generate --checkpoint " + (dir_ / "a/checkpoints/step_00000006");
  std::string text;
  ASSERT_EQ(test::run_command(generate, &text), 0) << text;
  EXPECT_NE(log.find("sample at step 5:\n" + text), std::string::npos) << "generate printed:\n" << text << log;
  std::string seeded, again, other, prompted;
  ASSERT_EQ(test::run_command(generate + " --seed 7 --tokens 20 --top-k 5 --temperature 0.8", &seeded), 0) << seeded;
  ASSERT_EQ(test::run_command(generate + " --seed 7 --tokens 20 --top-k 5 --temperature 0.8", &again), 0) << again;
  ASSERT_EQ(test::run_command(generate + " --seed 8 --tokens 20 --top-k 5 --temperature 0.8", &other), 0) << other;
  EXPECT_EQ(seeded, again);
  EXPECT_NE(seeded, other);
  ASSERT_EQ(test::run_command(generate + " --prompt 'The people' --seed 7", &prompted), 0) << prompted;
  EXPECT_EQ(prompted.rfind("The people", 0), 0u) << prompted;
  EXPECT_NE(test::run_command(generate + "_missing", &out), 0);
  EXPECT_NE(out.find("is not a folder"), std::string::npos) << out;
}

// The memory estimate printed before the model is allocated is within 20% of
// the peak resident memory the run then reaches (measured by the kernel:
// getrusage of the finished process), here about 300 MiB.
TEST_F(TrainGpt, memory_estimate_is_within_20_percent_of_the_measured_peak) {
  std::string out;
  const std::string run = kBuildDir + "/train_gpt --config " + tiny_config(dir_, "a") +
                          " --set model.vocab_size=50257 --set model.d_model=256 --set model.n_head=4 "
                          "--set model.n_layer=4 --set model.seq_len=128 --set train.micro_batch=8 "
                          "--set train.batch_tokens=1024 --set train.steps=2 --set train.eval_tokens=1024 "
                          "--set model.tied_embeddings=false --set optim.matrix=dion2";
  ASSERT_EQ(test::run_command("/usr/bin/python3 -c 'import resource, subprocess, sys; "
                              "code = subprocess.run(sys.argv[1], shell=True).returncode; "
                              "print(\"peak_kib\", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
                              "sys.exit(code)' \"" + run + "\"", &out), 0) << out;
  const size_t estimate_at = out.find("memory per rank, estimated: host "), peak_at = out.find("peak_kib ");
  ASSERT_NE(estimate_at, std::string::npos) << out;
  ASSERT_NE(peak_at, std::string::npos) << out;
  const double estimate_mib = std::stod(out.substr(estimate_at + 33)), peak_mib = std::stod(out.substr(peak_at + 9)) / 1024;
  EXPECT_GT(peak_mib, 200) << "too small a run to test the estimate";
  std::printf("memory: estimated %.0f MiB, measured peak %.0f MiB\n", estimate_mib, peak_mib);
  EXPECT_NEAR(estimate_mib / peak_mib, 1.0, 0.2) << "estimated " << estimate_mib << " MiB, measured " << peak_mib
                                                 << " MiB\n" << out;
}

// A run too big for this machine's memory is refused before anything is
// allocated, with the estimate and the remedy.
TEST_F(TrainGpt, a_run_beyond_the_machines_memory_is_refused_before_allocating) {
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(train(tiny_config(dir_, "a"), "--set model.d_model=65536 --set model.n_layer=512 --set model.n_head=512", &out), 0);
  EXPECT_NE(out.find("MiB of host memory per rank (host "), std::string::npos) << out;
  EXPECT_NE(out.find("lower train.micro_batch"), std::string::npos) << out;
  EXPECT_EQ(out.find("model:"), std::string::npos) << "a model was allocated:\n" << out;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a/loss.csv"));
}

// run.export_hf at the end of a run and build/export_hf on its last checkpoint
// write the same folder (the layouts themselves: test_cpu_gpt.cpp against an
// independent reader); the paper's GPT is exported with what does not map named.
TEST_F(TrainGpt, hugging_face_export_at_the_end_equals_the_converters_from_the_checkpoint) {
  for (const std::string arch : {"llama", "paper"}) {
    std::string out;
    const std::string run = dir_ / arch;
    ASSERT_EQ(train(tiny_config(dir_, arch), "--set train.steps=3 --set model.arch=" + arch + " --set run.export_hf=" +
                                                 run + "/hf", &out), 0) << out;
    ASSERT_EQ(test::run_command(kBuildDir + "/export_hf --checkpoint " + run + "/checkpoints/step_00000003 --out " +
                                run + "/hf2", &out), 0) << out;
    for (const char* file : {"config.json", "model.safetensors"})
      EXPECT_EQ(test::read_text(run + "/hf/" + file), test::read_text(run + "/hf2/" + file)) << arch << " " << file;
    const std::string config = test::read_text(run + "/hf/config.json");
    if (arch == "llama") EXPECT_NE(config.find("\"architectures\": [\"LlamaForCausalLM\"]"), std::string::npos) << config;
    if (arch == "paper") {
      EXPECT_NE(config.find("qk-norm"), std::string::npos) << config;
      EXPECT_NE(out.find("no Hugging Face class holds the relu^2 MLP"), std::string::npos) << out;
    }
  }
}

TEST_F(TrainGpt, interrupted_by_sigterm_and_resumed_equals_an_uninterrupted_run) {
  std::string out;
  const std::string config = tiny_config(dir_, "whole");
  const std::string options = " --set train.ckpt_every=0 --set train.steps=300";  // long enough to interrupt
  ASSERT_EQ(train(config, options, &out), 0) << out;

  // Same run, stopped by SIGTERM once a few steps are logged, then resumed.
  const std::string resumed = dir_ / "resumed";
  const std::string command = kBuildDir + "/train_gpt --config " + config + " --set run.out_dir=" + resumed +
                              options + " > " + (dir_ / "first.log") + " 2>&1 & echo $!";
  std::string pid_text;
  ASSERT_EQ(test::run_command(command, &pid_text), 0);
  const pid_t pid = std::stoi(pid_text);
  for (int i = 0; i < 2000 && deterministic_rows(resumed + "/loss.csv").size() < 4; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGTERM);
  for (int i = 0; i < 2000 && kill(pid, 0) == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::string first_log = test::read_text(dir_ / "first.log");
  ASSERT_NE(first_log.find("stopped by signal"), std::string::npos) << first_log;
  const size_t rows_at_stop = deterministic_rows(resumed + "/loss.csv").size();
  ASSERT_LT(rows_at_stop, 301u) << "the run finished before the signal";

  // A damaged newer checkpoint (no COMPLETE marker) and a partial folder must be ignored.
  std::filesystem::create_directories(resumed + "/checkpoints/step_00000099.partial");
  std::filesystem::create_directories(resumed + "/checkpoints/step_00000098");
  ASSERT_EQ(train(config, "--set run.out_dir=" + resumed + options + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(resumed + "/loss.csv"), deterministic_rows(dir_ / "whole/loss.csv"));
}

// A damaged checkpoint is never loaded: a flipped bit in either safetensors
// file fails its checksum, a cut state.yaml is unreadable, NaN in the weights
// is refused; each named with its file (and tensor), set aside as
// step_<n>.damaged, and the run resumes from the newest intact one, ending
// where an uninterrupted run does. With none intact, one error with the folder.
TEST_F(TrainGpt, a_damaged_checkpoint_is_named_and_the_run_resumes_from_the_newest_intact_one) {
  namespace fs = std::filesystem;
  std::string out;
  const std::string config = tiny_config(dir_, "whole");
  const std::string options = " --set train.steps=15 --set train.ckpt_every=5 --set train.ckpt_keep=0";
  ASSERT_EQ(train(config, options, &out), 0) << out;
  const std::vector<std::string> whole = deterministic_rows(dir_ / "whole/loss.csv");
  ASSERT_EQ(whole.size(), 16u);

  const auto flip_last_byte = [](const std::string& path) {
    std::string bytes = test::read_text(path);
    bytes.back() = char(bytes.back() ^ 0x10);
    test::write_text(path, bytes);
  };
  const auto nan_in_weights = [](const std::string& path) {
    TensorFile file = read_safetensors(path);
    std::vector<TensorView> views;
    file.tensors.at("wpe").values[3] = NAN;
    for (const auto& [name, t] : file.tensors) views.push_back({name, t.shape, t.values});
    write_safetensors(path, views, file.metadata);  // valid checksums of a NaN
  };
  struct Damage {
    std::string name, file, expected;
    std::function<void(const std::string&)> apply;
  };
  const std::vector<Damage> damages = {
      {"weights_bit", "model.safetensors", "model.safetensors' is damaged: tensor '", flip_last_byte},
      {"optimizer_bit", "optimizer.safetensors", "optimizer.safetensors' is damaged: tensor '", flip_last_byte},
      {"state_cut", "state.yaml", "state.yaml is unreadable: it does not match its checksum",
       [](const std::string& path) {
         const std::string text = test::read_text(path);
         test::write_text(path, text.substr(0, text.size() / 2));
       }},
      {"weights_nan", "model.safetensors", "model.safetensors tensor 'wpe' holds nan at index 3", nan_in_weights},
  };
  for (const Damage& d : damages) {
    const std::string run = dir_ / d.name;
    fs::copy(dir_ / "whole", run, fs::copy_options::recursive);
    fs::remove_all(run + "/checkpoints/step_00000015");
    fs::remove(run + "/done.yaml");
    d.apply(run + "/checkpoints/step_00000010/" + d.file);
    ASSERT_EQ(train(config, options + " --set run.out_dir=" + run + " --resume", &out), 0) << d.name << "\n" << out;
    EXPECT_NE(out.find("step_00000010': "), std::string::npos) << d.name << "\n" << out;
    EXPECT_NE(out.find(d.expected), std::string::npos) << d.name << "\n" << out;
    EXPECT_NE(out.find("resumed from " + run + "/checkpoints/step_00000005"), std::string::npos) << out;
    EXPECT_TRUE(fs::exists(run + "/checkpoints/step_00000010.damaged/" + d.file)) << d.name;
    EXPECT_EQ(deterministic_rows(run + "/loss.csv"), whole) << d.name;
    EXPECT_TRUE(fs::exists(run + "/done.yaml")) << d.name;
  }

  // Every checkpoint damaged: one error naming the folder to clear; nothing trained.
  const std::string run = dir_ / "all_damaged";
  fs::copy(dir_ / "whole", run, fs::copy_options::recursive);
  fs::remove(run + "/done.yaml");
  for (const char* step : {"step_00000005", "step_00000010", "step_00000015"})
    flip_last_byte(run + "/checkpoints/" + step + "/model.safetensors");
  EXPECT_NE(train(config, options + " --set run.out_dir=" + run + " --resume", &out), 0);
  EXPECT_NE(out.find("no intact checkpoint in '" + run + "/checkpoints' (3 damaged, named above): remove that "
                     "folder to start the run over"), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(run + "/loss.csv"), whole) << "a refused resume touched loss.csv";

  // --resume where there is no checkpoint says so, and starts from step 0.
  ASSERT_EQ(train(config, options + " --set run.out_dir=" + (dir_ / "fresh") + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("no checkpoint in " + (dir_ / "fresh") + ": starting from step 0"), std::string::npos) << out;
  EXPECT_EQ(deterministic_rows(dir_ / "fresh/loss.csv"), whole);
}

// On resume loss.csv is cut back to the checkpoint's steps; a row that is not
// one stops the run naming the file and line, and leaves the file as it was.
TEST_F(TrainGpt, a_malformed_loss_csv_row_stops_a_resume_naming_file_and_line) {
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  const std::string options = " --set train.steps=10 --set train.ckpt_every=5 --set train.ckpt_keep=0";
  ASSERT_EQ(train(config, options, &out), 0) << out;
  std::filesystem::remove_all(dir_ / "a/checkpoints/step_00000010");
  std::filesystem::remove(dir_ / "a/done.yaml");
  std::string csv = test::read_text(dir_ / "a/loss.csv");
  const size_t third = csv.find('\n', csv.find('\n', csv.find('\n') + 1) + 1) + 1;  // line 4
  csv.replace(third, csv.find('\n', third) - third, "2;512;0.001");
  test::write_text(dir_ / "a/loss.csv", csv);
  EXPECT_NE(train(config, options + " --resume", &out), 0);
  EXPECT_NE(out.find("a/loss.csv' line 4 is not a row of step,tokens,lr,train_loss,val_loss,grad_norm,step_ms,"
                     "opt_ms,tokens_per_s,comm_bytes (it starts '2;512;0.001'): repair or remove the file to resume"),
            std::string::npos) << out;
  EXPECT_EQ(test::read_text(dir_ / "a/loss.csv"), csv);
}

// A glob that matches nothing is named by its config key; a val set shorter than
// train.eval_tokens is said once, with the tokens an evaluation reads instead.
TEST_F(TrainGpt, data_errors_name_their_key_and_a_short_val_set_is_said_once) {
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  const std::string nothing = dir_ / "nothing_*.bin";
  EXPECT_NE(train(config, "--set data.val=" + nothing, &out), 0);
  EXPECT_NE(out.find("data.val: no shard file matches '" + nothing + "'"), std::string::npos) << out;
  EXPECT_NE(train(config, "--set data.train=" + nothing, &out), 0);
  EXPECT_NE(out.find("data.train: no shard file matches '" + nothing + "'"), std::string::npos) << out;
  ASSERT_EQ(train(config, "--set train.steps=2 --set train.eval_every=0 --set train.eval_tokens=100000000", &out), 0)
      << out;
  const size_t warning = out.find("data.val holds ");
  ASSERT_NE(warning, std::string::npos) << out;
  EXPECT_NE(out.find("in whole windows of 128: each evaluation reads those, not train.eval_tokens 100000000"),
            std::string::npos) << out;
  EXPECT_EQ(out.find("data.val holds ", warning + 1), std::string::npos) << "said more than once: " << out;
}

// A train.log that cannot be written (a full disk, here /dev/full) stops the run with the reason.
TEST_F(TrainGpt, a_train_log_that_cannot_be_written_stops_the_run) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full on this machine";
  std::filesystem::create_directories(dir_ / "a");
  std::filesystem::create_symlink("/dev/full", dir_ / "a/train.log");
  std::string out;
  EXPECT_NE(train(tiny_config(dir_, "a"), "--set train.steps=3", &out), 0);
  EXPECT_NE(out.find("cannot write " + (dir_ / "a") + "/train.log: "), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a/done.yaml"));
}

TEST_F(TrainGpt, every_matrix_optimizer_trains_and_resumes_exactly_from_its_checkpointed_state) {
  // Muon (Nesterov, NorMuon) on a LLaMA block with grouped-query attention,
  // Dion2 (random selection) on the paper's GPT, Dion on GPT-2: the loss falls,
  // and a run resumed from its step-10 checkpoint (momentum, Q, second moments
  // restored) repeats steps 10-19 bit for bit.
  const std::vector<std::pair<std::string, std::string>> variants = {
      {"muon", "--set optim.matrix=muon --set optim.nesterov=true --set optim.normalize=neuron"
               " --set model.arch=llama --set model.n_kv_head=1"},
      {"dion2", "--set optim.matrix=dion2 --set optim.select=random --set optim.alpha=0.5 --set model.arch=paper"},
      {"dion", "--set optim.matrix=dion --set optim.rank_frac=0.5"}};
  for (const auto& [name, options] : variants) {
    std::string out;
    const std::string config = tiny_config(dir_, name);
    const std::string common = options + " --set optim.lr=0.02 --set train.steps=20 --set train.ckpt_keep=0";
    ASSERT_EQ(train(config, common, &out), 0) << out;
    EXPECT_NE(out.find("matrices: " + std::string(name == "muon" ? "NorMuon" : name == "dion2" ? "Dion2" : "Dion")),
              std::string::npos) << out;
    const std::vector<std::string> whole = deterministic_rows(dir_ / (name + "/loss.csv"));
    ASSERT_EQ(whole.size(), 21u);
    EXPECT_LT(column(whole[20], 3), column(whole[1], 3) - 0.5) << name << ": loss did not fall";
    std::filesystem::remove_all(dir_ / (name + "/checkpoints/step_00000020"));
    std::filesystem::remove(dir_ / (name + "/done.yaml"));
    ASSERT_EQ(train(config, common + " --resume", &out), 0) << out;
    EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
    EXPECT_EQ(deterministic_rows(dir_ / (name + "/loss.csv")), whole) << name;
  }
}

TEST_F(TrainGpt, device_cuda_without_a_usable_gpu_fails_with_one_message_and_auto_falls_back_to_cpu) {
  const std::string reason = cuda_unavailable_reason();
  if (reason.empty()) GTEST_SKIP() << "this machine can run CUDA: the gpu tests cover run.device cuda";
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  EXPECT_NE(train(config, "--set train.steps=2 --set run.device=cuda", &out), 0);
  EXPECT_NE(out.find("run.device is cuda but " + reason), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a/loss.csv")) << "nothing is written before the device is known";
  ASSERT_EQ(train(config, "--set train.steps=2 --set run.device=auto", &out), 0) << out;
  EXPECT_NE(out.find("memory: cpu"), std::string::npos) << out;
}

TEST_F(TrainGpt, resume_refuses_another_model_shape_seed_optimizer_or_training_setting) {
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  ASSERT_EQ(train(config, "--set train.steps=10", &out), 0) << out;
  const std::string accepted_config = test::read_text(dir_ / "a/config.yaml");
  const std::string rows = test::read_text(dir_ / "a/loss.csv");
  EXPECT_NE(accepted_config.find("steps: 10"), std::string::npos) << accepted_config;
  // A finished run: the same config has nothing to train (other output keys
  // aside); another config is refused with exit code 3 naming what changed,
  // before anything is allocated or written.
  EXPECT_EQ(train(config, "--resume --set train.steps=10 --set train.ckpt_keep=0", &out), 0) << out;
  EXPECT_NE(out.find("holds this run, finished (done.yaml): nothing to train"), std::string::npos) << out;
  EXPECT_EQ(out.find("model:"), std::string::npos) << "a finished run allocated a model:\n" << out;
  EXPECT_EQ(train(config, "--resume --set train.steps=20", &out), kExitAnotherRun) << out;
  EXPECT_NE(out.find("holds a finished run of another config: train.steps 10 -> 20;"), std::string::npos) << out;
  EXPECT_EQ(test::read_text(dir_ / "a/loss.csv"), rows);
  // An unfinished run (no done.yaml): its checkpoint decides.
  std::filesystem::remove(dir_ / "a/done.yaml");
  EXPECT_EQ(train(config, "--resume --set model.n_layer=3", &out), kExitAnotherRun) << out;
  EXPECT_NE(out.find("the config changed model.n_layer 2 -> 3"), std::string::npos) << out;
  EXPECT_EQ(train(config, "--resume --set run.seed=5", &out), kExitAnotherRun) << out;
  EXPECT_NE(out.find("run.seed"), std::string::npos) << out;
  EXPECT_EQ(train(config, "--resume --set train.batch_tokens=512", &out), kExitAnotherRun) << out;
  EXPECT_NE(out.find("train.batch_tokens 256 -> 512"), std::string::npos) << out;
  EXPECT_EQ(train(config, "--resume --set optim.matrix=dion2", &out), kExitAnotherRun) << out;
  EXPECT_NE(out.find("optim.matrix adamw -> dion2"), std::string::npos) << out;
  EXPECT_EQ(out.find("model:"), std::string::npos) << "a refused resume allocated a model:\n" << out;
  EXPECT_EQ(test::read_text(dir_ / "a/config.yaml"), accepted_config) << "a refused resume rewrote config.yaml";
  EXPECT_EQ(train(config, "--resume --set train.eval_every=3 --set train.steps=10", &out), 0) << out;
  const std::string resumed_config = test::read_text(dir_ / "a/config.yaml");
  EXPECT_NE(resumed_config.find("eval_every: 3"), std::string::npos) << "an accepted resume writes its config";
  EXPECT_NE(train(config, "--set train.steps=3", &out), 0) << "a fresh run over an earlier run's checkpoints";
  EXPECT_NE(out.find("already holds checkpoints"), std::string::npos) << out;
  EXPECT_EQ(test::read_text(dir_ / "a/config.yaml"), resumed_config) << "a refused run rewrote config.yaml";
}

TEST_F(TrainGpt, nonfinite_loss_stops_naming_step_and_tensor_and_never_checkpoints_it) {
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  const std::string blowup = "--set optim.lr=1000 --set scalar_opt.lr=1000 --set schedule.warmup_steps=0 "
                             "--set train.grad_clip=0 --set train.ckpt_every=1 --set train.ckpt_keep=0";
  EXPECT_NE(train(config, blowup, &out), 0);
  EXPECT_NE(out.find("non-finite gradient first in"), std::string::npos) << out;
  EXPECT_NE(out.find("step "), std::string::npos) << out;
  // Skipping is bounded: past train.max_skipped_steps the diverged run stops,
  // and it is never marked done with a NaN loss; every checkpoint written holds
  // finite weights only (the save refuses others).
  const std::string skip = blowup + " --set train.skip_nonfinite=true --set train.steps=12 --set run.out_dir=";
  EXPECT_NE(train(config, skip + (dir_ / "skip") + " --set train.max_skipped_steps=2", &out), 0);
  EXPECT_NE(out.find("step skipped (2 of at most 2)"), std::string::npos) << out;
  EXPECT_NE(out.find("3 steps skipped, over train.max_skipped_steps (2): the run diverged"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "skip/done.yaml"));
  EXPECT_NE(train(config, skip + (dir_ / "skip_all") + " --set train.max_skipped_steps=100", &out), 0);
  EXPECT_NE(out.find("the run diverged and is not marked done"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "skip_all/done.yaml"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "skip_all/checkpoints/step_00000012/COMPLETE"));
}

TEST_F(TrainGpt, llmc_export_matches_llmc_layout_read_independently_and_loads_back) {
  if (test::run_command("/usr/bin/python3 -c 'import numpy'") != 0) GTEST_SKIP() << "numpy is not installed";
  std::string out;
  const std::string config = tiny_config(dir_, "a");
  ASSERT_EQ(train(config, "--set train.steps=5 --set run.export_llmc=" + (dir_ / "model.bin"), &out), 0) << out;
  // llm.c's layout, restated in numpy, against the safetensors tensors by name.
  const std::string script = R"(
import json, struct, sys, numpy as np
raw = open(sys.argv[1], 'rb').read()
h = np.frombuffer(raw[:1024], dtype='<i4')
assert h[0] == 20240326 and h[1] == 3, h[:8]
maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
w = np.frombuffer(raw[1024:], dtype='<f4')
sizes = [('wte', Vp*C), ('wpe', maxT*C), ('ln1w', L*C), ('ln1b', L*C), ('qkvw', L*3*C*C), ('qkvb', L*3*C),
         ('attprojw', L*C*C), ('attprojb', L*C), ('ln2w', L*C), ('ln2b', L*C), ('fcw', L*4*C*C), ('fcb', L*4*C),
         ('fcprojw', L*4*C*C), ('fcprojb', L*C), ('lnfw', C), ('lnfb', C)]
assert sum(n for _, n in sizes) == w.size
llmc, at = {}, 0
for name, n in sizes:
    llmc[name] = w[at:at+n]; at += n
st = open(sys.argv[2], 'rb').read()
n = struct.unpack('<Q', st[:8])[0]
hdr = json.loads(st[8:8+n])
def ours(name):
    b, e = hdr[name]['data_offsets']
    return np.frombuffer(st[8+n+b:8+n+e], dtype='<f4')
assert (llmc['wte'] == ours('wte')).all() and (llmc['wpe'] == ours('wpe')).all()
for l in range(L):
    p = f'blocks.{l}.'
    qkv = llmc['qkvw'].reshape(L, 3*C*C)[l]
    assert (qkv == np.concatenate([ours(p+'attn.q.weight'), ours(p+'attn.k.weight'), ours(p+'attn.v.weight')])).all()
    assert (llmc['fcprojw'].reshape(L, -1)[l] == ours(p+'mlp.proj.weight')).all()
    assert (llmc['ln2b'].reshape(L, C)[l] == ours(p+'ln2.bias')).all()
    assert (llmc['qkvb'].reshape(L, 3*C)[l] == np.concatenate([ours(p+'attn.q.bias'), ours(p+'attn.k.bias'), ours(p+'attn.v.bias')])).all()
assert (llmc['lnfb'] == ours('lnf.bias')).all()
print('ok')
)";
  test::write_text(dir_ / "check.py", script);
  ASSERT_EQ(test::run_command("/usr/bin/python3 " + (dir_ / "check.py") + " " + (dir_ / "model.bin") + " " +
                                  (dir_ / "a/checkpoints/step_00000005/model.safetensors"),
                              &out),
            0)
      << out;
  // init_from the export and export again: the same bytes.
  ASSERT_EQ(train(config, "--set train.steps=1 --set optim.lr=0 --set scalar_opt.lr=0 --set run.out_dir=" +
                              (dir_ / "b") + " --set model.init_from=" + (dir_ / "model.bin") +
                              " --set run.export_llmc=" + (dir_ / "again.bin"),
                  &out),
            0)
      << out;
  EXPECT_EQ(test::read_text(dir_ / "model.bin"), test::read_text(dir_ / "again.bin"));
  EXPECT_NE(train(config, "--set model.d_model=64 --set model.init_from=" + (dir_ / "model.bin"), &out), 0);
  EXPECT_NE(out.find("d_model 32"), std::string::npos) << out;
  EXPECT_NE(train(config, "--set model.tied_embeddings=false --set train.steps=2 --set run.out_dir=" + (dir_ / "c") +
                              " --set run.export_llmc=" + (dir_ / "x.bin"),
                  &out),
            0);
  EXPECT_NE(out.find("GPT-2 only"), std::string::npos) << out;
}

}  // namespace
}  // namespace llmdion
