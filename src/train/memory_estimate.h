// What a run will hold per rank, known before anything is allocated, so that
// a run too big for the machine is refused with the numbers and the remedy
// instead of growing until the kernel kills it. Per rank, in bytes:
//   model        fp32 weights and gradients, activations at train.micro_batch x
//                seq_len and the backward's scratch: the CPU model's sizes
//                (cpu::planned_activation_floats) or the CUDA model's one
//                allocation (cuda_model_bytes: + bf16 weights, cuBLASLt workspace)
//   optimizer    its state (AdamW m, v; Muon/Dion2 momentum, NorMuon's row
//                moments; Dion's momentum and Q), this rank's share, and the
//                orthonormalization's workspace (4 x the largest matrix, an estimate)
//   sampler      a batch-1 copy of the model, when train.sample_every > 0 (rank 0)
//   host copies  the trainer's fp32 weights, and a checkpoint's staging copy of
//                the weights and optimizer state
//   process      the program, its libraries and thread stacks (a measured constant)
// On cpu all of it is host memory; on cuda model, optimizer and sampler are on
// the GPU and the rest on the host. The shards are memory-mapped: their pages
// are the kernel's to drop and are not counted.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "core/device.h"

namespace llmdion {

struct MemoryEstimate {
  Device device = Device::kCpu;
  int64_t model = 0, optimizer = 0, sampler = 0, host_copies = 0, process = 0;
  int64_t gpu_bytes() const { return device == Device::kCuda ? model + optimizer + sampler : 0; }
  int64_t host_bytes() const { return host_copies + process + (device == Device::kCpu ? model + optimizer + sampler : 0); }
};

// Throws std::runtime_error for a cuda estimate this binary cannot make (no CUDA backend).
MemoryEstimate estimate_memory(const Config& config, Device device, int world_size);

// "host 412 MiB (model 210, optimizer 96, ...)" and, on cuda, the GPU's part.
std::string describe_memory(const MemoryEstimate& estimate);

// Throws, with the estimate, what is free and the remedy, when the run cannot fit.
void check_memory_fits(const MemoryEstimate& estimate);

}  // namespace llmdion
