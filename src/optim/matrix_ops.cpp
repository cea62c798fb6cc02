// make_matrix_ops: the one place that sees every backend's MatrixOps.
#include "optim/matrix_ops.h"

#include "core/device.h"
#include "optim/cpu/matrix_ops.h"

#ifdef LLMDION_WITH_CUDA
#include "optim/cuda/matrix_ops.h"
#endif

namespace llmdion {

std::unique_ptr<MatrixOps> make_matrix_ops(const std::string& device) {
  // Throws, saying why, for a cuda that this binary or this machine cannot run.
  [[maybe_unused]] const Device resolved = resolve_device(device);
#ifdef LLMDION_WITH_CUDA
  if (resolved == Device::kCuda) return make_cuda_matrix_ops();
#endif
  return make_cpu_matrix_ops();
}

}  // namespace llmdion
