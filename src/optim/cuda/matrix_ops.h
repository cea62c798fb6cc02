// The matrix optimizers' operations on the GPU (matrix_ops.cu); chosen by make_matrix_ops.
// Host-only: the code that chooses needs no CUDA headers.
#pragma once

#include <memory>

#include "optim/matrix_ops.h"

namespace llmdion {

std::unique_ptr<MatrixOps> make_cuda_matrix_ops();

}  // namespace llmdion
