#include "train/memory_estimate.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/cpu/cpu_gpt.h"
#include "model/gpt.h"
#include "optim/dion.h"
#ifdef LLMDION_WITH_CUDA
#include "model/cuda/cuda_model.h"
#endif

namespace llmdion {
namespace {

// The program, its libraries (OpenBLAS, OpenMP, MPI), thread stacks and heap
// beyond the planned buffers: the peak RSS of a 2-step run of a 1-layer,
// d_model 32 model (whose own buffers are under 1 MiB), 12 MiB measured on the
// 2-core build machine, rounded up.
constexpr int64_t kProcessBytes = 16 << 20;

int64_t model_bytes(Device device, const GptShape& shape, const GptLayout& layout, int64_t B, int64_t T) {
  if (device == Device::kCuda) {
#ifdef LLMDION_WITH_CUDA
    return cuda_model_bytes(shape, B, T);
#else
    throw std::runtime_error("this binary has no CUDA backend to estimate run.device cuda's memory");
#endif
  }
  return 4 * (2 * layout.num_params + cpu::planned_activation_floats(shape, B, T, omp_get_max_threads()));
}

}  // namespace

MemoryEstimate estimate_memory(const Config& config, Device device, int world_size) {
  const GptShape shape = shape_from_config(config.model);
  const GptLayout layout = gpt_layout(shape);
  MemoryEstimate e;
  e.device = device;
  e.model = model_bytes(device, shape, layout, config.train.micro_batch, config.model.seq_len);
  // Optimizer state in floats: the matrices' by optim.matrix, AdamW's (m, v) for the rest.
  int64_t matrix_values = 0, matrix_rows = 0, dion_q = 0, largest = 0, other_values = 0;
  for (const ParamTensor& t : layout.tensors) {
    if (t.role != ParamRole::kMatrix) {
      other_values += t.numel();
      continue;
    }
    const int64_t rows = t.shape[0], cols = t.shape[1];
    matrix_values += t.numel(), matrix_rows += rows, largest = std::max(largest, t.numel());
    dion_q += cols * dion_rank(config.optim.rank_frac, rows, cols);
  }
  const std::string& matrix = config.optim.matrix;
  int64_t state = 2 * other_values;
  if (matrix == "adamw") state += 2 * matrix_values;
  if (matrix == "muon" || matrix == "dion2")
    state += matrix_values + (config.optim.normalize == "neuron" ? matrix_rows : 0);
  if (matrix == "dion") state += matrix_values + dion_q;
  state = (state + world_size - 1) / world_size;
  const int64_t workspace = matrix == "adamw" ? 0 : 4 * largest;
  e.optimizer = 4 * (state + workspace);
  if (config.train.sample_every > 0) e.sampler = model_bytes(device, shape, layout, 1, config.model.seq_len);
  e.host_copies = 4 * (2 * layout.num_params + state);
  e.process = kProcessBytes;
  return e;
}

std::string describe_memory(const MemoryEstimate& e) {
  const auto mib = [](int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20); };
  const std::string parts = "model " + mib(e.model) + ", optimizer " + mib(e.optimizer) +
                            (e.sampler ? ", sampler " + mib(e.sampler) : "");
  if (e.device == Device::kCuda)
    return "gpu " + mib(e.gpu_bytes()) + " MiB (" + parts + "), host " + mib(e.host_bytes()) + " MiB (weight copies " +
           mib(e.host_copies) + ", process " + mib(e.process) + ")";
  return "host " + mib(e.host_bytes()) + " MiB (" + parts + ", weight copies " + mib(e.host_copies) + ", process " +
         mib(e.process) + ")";
}

void check_memory_fits(const MemoryEstimate& e) {
  const auto mib = [](int64_t bytes) { return std::to_string(bytes >> 20); };
  const std::string remedy = "lower train.micro_batch (train.batch_tokens stays, with more micro-steps), use more "
                             "ranks (the optimizer state is sharded), or a smaller model";
  const int64_t host_free = free_memory_bytes(Device::kCpu);
  if (host_free >= 0 && e.host_bytes() > host_free)
    throw std::runtime_error("the run needs about " + mib(e.host_bytes()) + " MiB of host memory per rank (" +
                             describe_memory(e) + ") and " + mib(host_free) + " MiB are available: " + remedy);
  const int64_t gpu_free = e.device == Device::kCuda ? free_memory_bytes(Device::kCuda) : -1;
  if (gpu_free >= 0 && e.gpu_bytes() > gpu_free)
    throw std::runtime_error("the run needs about " + mib(e.gpu_bytes()) + " MiB on the GPU (" + describe_memory(e) +
                             ") and " + mib(gpu_free) + " MiB are free: " + remedy);
}

}  // namespace llmdion
