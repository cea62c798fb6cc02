// The matrix optimizers' operations on the CPU (matrix_ops.cpp); chosen by make_matrix_ops.
#pragma once

#include <memory>

#include "optim/matrix_ops.h"

namespace llmdion {

std::unique_ptr<MatrixOps> make_cpu_matrix_ops();

}  // namespace llmdion
