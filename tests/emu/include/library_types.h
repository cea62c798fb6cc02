// The CUDA toolkit's library_types.h as our sources use it: the data types of
// the libraries' operands, with NVIDIA's numeric values.
#pragma once

enum cudaDataType_t {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_16BF = 14,
};
typedef cudaDataType_t cudaDataType;
