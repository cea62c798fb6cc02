// build/train_gpt under mpirun: 1, 2 and 4 ranks with the same global batch
// give the same losses for every optimizer, each rank holding only its share
// of the optimizer state; a 2-rank checkpoint resumes exactly on 2 ranks and
// is refused on 4, with the reason; ranks with different configs are
// refused; Dion2 sends only its selected slices of the weights; a bad shard
// on one rank brings every rank down; a killed rank
// brings the others down promptly and the run resumes from its last complete
// checkpoint; on a GPU machine, 2 cuda ranks over NCCL follow one cuda rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/device.h"
#include "dist/gpu_comm.h"
#include "train/train_util.h"

namespace llmdion {
namespace {

// One OpenMP thread per rank: the ranks share the machine's cores.
const std::string kMpirun =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -x OMP_NUM_THREADS=1";

// tiny_config with a global batch that 1, 2 and 4 ranks can share.
const std::string kBatchOptions =
    "--set train.micro_batch=2 --set train.batch_tokens=512 --set train.steps=20 --set train.eval_every=5 "
    "--set train.ckpt_keep=0 --set schedule.warmup_steps=3 --set optim.lr=0.02";

// The process ids of train_gpt ranks whose command line mentions `marker`.
std::vector<std::string> rank_pids(const std::string& marker) {
  std::vector<std::string> pids;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = test::read_text(entry.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (test::read_text(entry.path().string() + "/comm") == "train_gpt\n" && cmdline.find(marker) != std::string::npos)
      pids.push_back(pid);
  }
  return pids;
}

// The first number after `label` in `text` (-1 where absent).
int64_t number_after(const std::string& text, const std::string& label) {
  const size_t at = text.find(label);
  return at == std::string::npos ? -1 : std::stoll(text.substr(at + label.size()));
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override { write_synthetic_shards(dir_); }

  // Runs train_gpt on `ranks` ranks (0: without mpirun) into run `out`; returns its exit code.
  int train(int ranks, const std::string& out, const std::string& extra, std::string* output = nullptr) {
    return llmdion::train(tiny_config(dir_, out), kBatchOptions + " " + extra, output,
                          ranks == 0 ? "" : kMpirun + " -np " + std::to_string(ranks) + " ");
  }

  // (train_loss, val_loss) of every step of a run's loss.csv.
  std::vector<std::pair<double, double>> losses(const std::string& out) {
    std::vector<std::string> rows = deterministic_rows(dir_ / (out + "/loss.csv"));
    std::vector<std::pair<double, double>> steps;
    for (size_t i = 1; i < rows.size(); i++)
      steps.push_back({column(rows[i], 3), field(rows[i], 4).empty() ? NAN : column(rows[i], 4)});
    return steps;
  }

  // What rank 0 sent in each step of a run (loss.csv's comm_bytes).
  std::vector<int64_t> comm_bytes(const std::string& out) {
    std::istringstream in(test::read_text(dir_ / (out + "/loss.csv")));
    std::string line;
    std::getline(in, line);
    std::vector<int64_t> bytes;
    while (std::getline(in, line)) bytes.push_back(int64_t(column(line, 9)));
    return bytes;
  }

  void expect_same_losses(const std::string& a, const std::string& b, double tolerance) {
    const auto x = losses(a), y = losses(b);
    ASSERT_EQ(x.size(), y.size()) << a << " vs " << b;
    for (size_t i = 0; i < x.size(); i++) {
      EXPECT_NEAR(x[i].first, y[i].first, tolerance * x[i].first) << a << " vs " << b << " train loss, step " << i;
      if (std::isnan(x[i].second)) continue;
      EXPECT_NEAR(x[i].second, y[i].second, tolerance * x[i].second) << a << " vs " << b << " val loss, step " << i;
    }
  }

  test::ScratchDir dir_;
};

TEST_F(DataParallel, one_two_and_four_ranks_give_the_same_losses_for_every_optimizer) {
  const std::vector<std::pair<std::string, std::string>> optimizers = {
      {"adamw", "--set optim.matrix=adamw --set optim.lr=0.003"},
      {"muon", "--set optim.matrix=muon"},
      {"dion", "--set optim.matrix=dion"},
      {"dion2_l1", "--set optim.matrix=dion2"},
      {"dion2_random", "--set optim.matrix=dion2 --set optim.select=random"}};
  for (const auto& [name, options] : optimizers) {
    std::string out;
    ASSERT_EQ(train(0, name + "_1", options, &out), 0) << out;
    for (int ranks : {2, 4}) {
      ASSERT_EQ(train(ranks, name + "_" + std::to_string(ranks), options, &out), 0) << out;
      expect_same_losses(name + "_1", name + "_" + std::to_string(ranks), 1e-5);
    }
  }
}

TEST_F(DataParallel, a_two_rank_checkpoint_resumes_exactly_on_two_ranks_and_is_refused_on_four) {
  std::string out;
  ASSERT_EQ(train(2, "whole", "--set optim.matrix=dion2", &out), 0) << out;
  std::filesystem::copy(dir_ / "whole", dir_ / "resumed", std::filesystem::copy_options::recursive);
  std::filesystem::remove_all(dir_ / "resumed/checkpoints/step_00000020");  // resume from step 10
  std::filesystem::remove(dir_ / "resumed/done.yaml");
  EXPECT_NE(train(4, "resumed", "--set optim.matrix=dion2 --resume", &out), 0);
  EXPECT_NE(out.find("sharded over 2 rank(s) and this run has 4; resume with mpirun -np 2"), std::string::npos) << out;
  ASSERT_EQ(train(2, "resumed", "--set optim.matrix=dion2 --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
  expect_same_losses("whole", "resumed", 0.0);
}

TEST_F(DataParallel, each_rank_holds_only_its_share_of_the_optimizer_state) {
  std::string out;
  for (const std::string matrix : {"adamw", "muon"}) {
    ASSERT_EQ(train(0, matrix + "_alone", "--set optim.matrix=" + matrix + " --set train.steps=1", &out), 0) << out;
    ASSERT_EQ(train(2, matrix + "_two", "--set optim.matrix=" + matrix + " --set train.steps=1", &out), 0) << out;
    const std::string step = "/checkpoints/step_00000001/";
    const double whole = double(std::filesystem::file_size(dir_ / (matrix + "_alone" + step + "optimizer.safetensors")));
    const double rank0 = double(std::filesystem::file_size(dir_ / (matrix + "_two" + step + "optimizer.rank0.safetensors")));
    const double rank1 = double(std::filesystem::file_size(dir_ / (matrix + "_two" + step + "optimizer.rank1.safetensors")));
    EXPECT_NEAR(rank0 + rank1, whole, 0.01 * whole) << matrix;
    EXPECT_LT(std::max(rank0, rank1), 0.6 * whole) << matrix << ": the state is not split";
  }
}

TEST_F(DataParallel, dion2_sends_only_its_selected_slices_of_the_weights) {
  // Rank 0 owns about half of the matrices; Dion2 at alpha 1/4 sends a quarter
  // of each (plus the indices) where Muon sends all of it.
  std::string out;
  auto last_comm_bytes = [&](const std::string& name) { return double(comm_bytes(name).back()); };
  const std::string options = " --set train.steps=2 --set train.eval_every=0 --set optim.alpha=0.25";
  ASSERT_EQ(train(2, "muon_bytes", "--set optim.matrix=muon" + options, &out), 0) << out;
  ASSERT_EQ(train(2, "dion2_bytes", "--set optim.matrix=dion2" + options, &out), 0) << out;
  const double matrix_bytes = 2 /* layers */ * 12 * 32 * 32 * 4.0;
  const double saved = last_comm_bytes("muon_bytes") - last_comm_bytes("dion2_bytes");
  std::printf("rank 0 sent %.0f bytes in a Muon step, %.0f in a Dion2 step\n", last_comm_bytes("muon_bytes"),
              last_comm_bytes("dion2_bytes"));
  EXPECT_GT(saved, 0.25 * 0.75 * matrix_bytes * 0.9);
  EXPECT_LT(saved, 0.75 * 0.75 * matrix_bytes);
}

TEST_F(DataParallel, compressed_dion2_sync_matches_full_sync_with_less_traffic) {
  // optim.sync: selected averages only the selected momentum slices; the
  // ranks' momenta differ, but the weights follow the fully synced run.
  std::string out;
  const std::string options = "--set optim.matrix=dion2 --set optim.select=random --set train.grad_clip=0";
  for (int ranks : {2, 4}) {
    const std::string full = "full_" + std::to_string(ranks), selected = "selected_" + std::to_string(ranks);
    ASSERT_EQ(train(ranks, full, options, &out), 0) << out;
    ASSERT_EQ(train(ranks, selected, options + " --set optim.sync=selected", &out), 0) << out;
    expect_same_losses(full, selected, 1e-5);
  }
  const int64_t full = comm_bytes("full_2").back(), selected = comm_bytes("selected_2").back();
  std::printf("rank 0 of 2 sent %lld bytes a step with full sync, %lld with selected sync\n",
              static_cast<long long>(full), static_cast<long long>(selected));
  EXPECT_LT(selected, full);
  EXPECT_NE(train(2, "bad", "--set optim.matrix=dion2 --set optim.sync=selected", &out), 0);
  EXPECT_NE(out.find("optim.sync: selected needs"), std::string::npos) << out;
}

TEST_F(DataParallel, bf16_gradients_halve_the_gradient_traffic_and_keep_the_losses) {
  // With AdamW every part travels whole. Rank 0 reduce-scatters the gradients
  // of the values it does not own (all P but its own N) and all-gathers its N
  // updated weights, in fp32; in bf16 only the gradients' bytes halve:
  //   comm_bytes(fp32) - comm_bytes(bf16) = 4 (P - N) / 2 in every step.
  // The checkpoints at steps 10 and 20 check that every rank holds the same
  // weights, bit for bit (the run fails otherwise).
  const std::string options = "--set optim.matrix=adamw --set optim.lr=0.003";
  for (int ranks : {2, 4}) {
    const std::string fp32 = "fp32_" + std::to_string(ranks), bf16 = "bf16_" + std::to_string(ranks);
    std::string out, log;
    ASSERT_EQ(train(ranks, fp32, options, &out), 0) << out;
    ASSERT_EQ(train(ranks, bf16, options + " --set dist.grad_dtype=bf16", &log), 0) << log;
    EXPECT_TRUE(std::filesystem::exists(dir_ / (bf16 + "/checkpoints/step_00000020/COMPLETE"))) << log;
    expect_same_losses(fp32, bf16, 1e-2);

    // "parameters: T (P with vocabulary padding)": P values in the gradient buffer.
    ASSERT_NE(log.find("parameters: "), std::string::npos) << log;
    const int64_t params = number_after(log.substr(log.find("parameters: ")), "(");
    const int64_t owned = number_after(log, "rank 0 of " + std::to_string(ranks) + ": sends ");
    ASSERT_GT(params, 0) << log;
    ASSERT_GT(owned, 0) << log;
    const int64_t fp32_gradient_bytes = 4 * (params - owned);
    const std::vector<int64_t> fp32_bytes = comm_bytes(fp32), bf16_bytes = comm_bytes(bf16);
    ASSERT_EQ(fp32_bytes.size(), bf16_bytes.size());
    for (size_t step = 0; step < fp32_bytes.size(); step++)
      EXPECT_EQ(fp32_bytes[step] - bf16_bytes[step], fp32_gradient_bytes / 2) << ranks << " ranks, step " << step;
    std::printf("%d ranks: rank 0 sent %lld bytes in a step with fp32 gradients, %lld with bf16 (gradients: %lld -> "
                "%lld)\n",
                ranks, static_cast<long long>(fp32_bytes.back()), static_cast<long long>(bf16_bytes.back()),
                static_cast<long long>(fp32_gradient_bytes), static_cast<long long>(fp32_gradient_bytes / 2));
  }
}

// On GPUs (where the build has CUDA and NCCL and a GPU is present; skipped
// elsewhere): 2 cuda ranks over NCCL, both on this machine's first GPU when it
// has one (each rank claims a host of its own, NCCL_HOSTID, so NCCL lets them
// share it, connected over sockets), follow one cuda rank to bf16 tolerance:
// the gradient buckets, the sharded optimizer and the weight rounds on device
// buffers, for AdamW, Muon and Dion2.
TEST_F(DataParallel, two_cuda_ranks_over_nccl_follow_one_cuda_rank) {
  if (!gpu_comm_available()) GTEST_SKIP() << "gpu test skipped: this build has no CUDA backend with NCCL";
  if (resolve_device("auto") != Device::kCuda) GTEST_SKIP() << "gpu test skipped: no CUDA device";
  const std::string nccl_ranks = kMpirun +
                                 " -x NCCL_IB_DISABLE=1 -x NCCL_NVLS_ENABLE=0 -x NCCL_MNNVL_ENABLE=0 -np 2 "
                                 "sh -c 'NCCL_HOSTID=llmdion_rank$OMPI_COMM_WORLD_RANK exec \"$0\" \"$@\"' ";
  const std::vector<std::pair<std::string, std::string>> optimizers = {
      {"adamw", "--set optim.matrix=adamw --set optim.lr=0.003"},
      {"muon", "--set optim.matrix=muon"},
      {"dion2", "--set optim.matrix=dion2"}};
#ifdef LLMDION_CUDA_EMULATE
  const std::string steps = " --set train.steps=6 --set train.eval_every=3";  // on the host execution layer: fewer
#else
  const std::string steps;
#endif
  for (const auto& [name, options] : optimizers) {
    std::string out;
    const std::string cuda = options + steps + " --set run.device=cuda --set model.n_head=1";  // head size 32, as flash needs
    ASSERT_EQ(train(0, name + "_cuda_1", cuda, &out), 0) << out;
    ASSERT_EQ(llmdion::train(tiny_config(dir_, name + "_cuda_2"), kBatchOptions + " " + cuda, &out, nccl_ranks), 0)
        << out;
    expect_same_losses(name + "_cuda_1", name + "_cuda_2", 1e-2);
  }
}

// The emulated build's twin of the test above (the host execution layer,
// tests/emu, its NCCL over MPI): the Dion2 paper's block trained with Dion2
// (random selection: the same slices on both devices) as 2 cuda ranks follows
// the CPU run to bf16 tolerance, a few steps.
TEST_F(DataParallel, two_emulated_cuda_ranks_follow_the_cpu_run_with_dion2) {
#ifndef LLMDION_CUDA_EMULATE
  GTEST_SKIP() << "the emulated build's check; on a GPU two_cuda_ranks_over_nccl_follow_one_cuda_rank runs";
#endif
  const std::string options =
      "--set model.arch=paper --set model.n_head=1 --set optim.matrix=dion2 --set optim.select=random "
      "--set train.steps=6 --set train.eval_every=3";
  std::string out;
  ASSERT_EQ(train(0, "dion2_cpu", options + " --set run.device=cpu", &out), 0) << out;
  ASSERT_EQ(train(2, "dion2_cuda_2", options + " --set run.device=cuda", &out), 0) << out;
  EXPECT_NE(out.find("memory: cuda ("), std::string::npos) << out;
  expect_same_losses("dion2_cpu", "dion2_cuda_2", 1e-2);
}

TEST_F(DataParallel, ranks_with_different_configs_are_refused) {
  const std::string program = kBuildDir + "/train_gpt --config " + tiny_config(dir_, "mismatch") + " " + kBatchOptions;
  std::string out;
  EXPECT_NE(test::run_command(kMpirun + " -np 1 " + program + " : -np 1 " + program + " --set optim.lr=0.01", &out), 0);
  EXPECT_NE(out.find("resolved config of rank(s) 1 differs from rank 0's"), std::string::npos) << out;
}

// One config, two working directories: rank 1's shards (the same relative
// paths) have a broken header, so rank 1 alone fails while loading its data.
// Every rank exits non-zero within seconds, and the output names the shard.
TEST_F(DataParallel, a_bad_shard_on_one_rank_brings_every_rank_down) {
  const std::filesystem::path good = dir_ / "good", bad = dir_ / "bad";
  std::filesystem::create_directories(good);
  std::filesystem::create_directories(bad);
  for (const char* shard : {"d_val_000000.bin", "d_train_000001.bin", "d_train_000002.bin"}) {
    std::filesystem::copy_file(dir_ / shard, good / shard);
    std::filesystem::copy_file(dir_ / shard, bad / shard);
  }
  {
    std::fstream header(bad / "d_train_000002.bin", std::ios::in | std::ios::out | std::ios::binary);
    const int32_t wrong_magic = 12345;
    header.write(reinterpret_cast<const char*>(&wrong_magic), sizeof wrong_magic);
  }
  std::string yaml = test::read_text(tiny_config(dir_, "one_bad_rank"));
  for (const std::string shards : {"d_train_", "d_val_"}) {  // relative to each rank's working directory
    const std::string absolute = dir_ / shards;
    yaml.replace(yaml.find(absolute), absolute.size(), shards);
  }
  const std::string config = dir_ / "relative.yaml";
  test::write_text(config, yaml);
  const std::string program = kBuildDir + "/train_gpt --config " + config + " " + kBatchOptions;
  std::string out;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_NE(test::run_command(kMpirun + " -np 1 -wdir " + good.string() + " " + program + " : -np 1 -wdir " +
                                  bad.string() + " " + program, &out),
            0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 20.0) << "the ranks did not stop promptly";
  EXPECT_NE(out.find("rank 1: shard 'd_train_000002.bin' has magic 12345"), std::string::npos) << out;
}

TEST_F(DataParallel, a_killed_rank_stops_the_others_and_the_run_resumes_from_its_last_checkpoint) {
  const std::string extra = "--set train.steps=200 --set train.ckpt_every=5";
  const std::string command = kMpirun + " -np 2 " + kBuildDir + "/train_gpt --config " + tiny_config(dir_, "killed") +
                              " " + kBatchOptions + " " + extra + " > " + (dir_ / "mpirun.log") + " 2>&1; echo $? > " +
                              (dir_ / "exit_code");
  std::thread launcher([&] { test::run_command(command); });
  // Once a checkpoint exists, SIGKILL one of the two ranks.
  for (int i = 0; i < 3000 && !std::filesystem::exists(dir_ / "killed/checkpoints/step_00000010/COMPLETE"); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const std::vector<std::string> pids = rank_pids(dir_ / "killed");
  ASSERT_EQ(pids.size(), 2u) << "rank processes not found";
  const auto killed_at = std::chrono::steady_clock::now();
  test::run_command("kill -9 " + pids.back());
  launcher.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::printf("the other rank and mpirun exited %.2f s after the kill\n", seconds);
  EXPECT_LT(seconds, 20.0) << "the surviving rank did not stop promptly";
  EXPECT_NE(test::read_text(dir_ / "exit_code"), "0\n") << test::read_text(dir_ / "mpirun.log");
  // Restarted, it resumes from the newest complete checkpoint and finishes.
  std::string out;
  ASSERT_EQ(train(2, "killed", extra + " --resume", &out), 0) << out;
  EXPECT_NE(out.find("resumed from"), std::string::npos) << out;
}

}  // namespace
}  // namespace llmdion
