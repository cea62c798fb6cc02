// What the cuBLAS, cuBLASLt and cuSOLVER emulations share: dense column-major
// matrices in device memory (cuBLAS Library, "Data Layout": element (i, j) of a
// matrix with leading dimension ld at i + j ld), read as float64 and written
// back with one rounding to nearest, ties to even; and the float64 product
// op(A) op(B) they all compute. Operands are fp32 or bf16, the types emulated.
#pragma once

#include <library_types.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "emu/runtime.h"

namespace emu::dense {

inline const char* type_name(cudaDataType_t type) {
  switch (type) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_64F: return "CUDA_R_64F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
  }
  return "an unknown cudaDataType_t";
}

inline size_t element_bytes(cudaDataType_t type) { return type == CUDA_R_16BF ? 2 : 4; }

inline double load(const void* data, cudaDataType_t type, int64_t index) {
  uint32_t bits = 0;
  if (type == CUDA_R_16BF) {
    uint16_t half;
    std::memcpy(&half, static_cast<const uint16_t*>(data) + index, 2);
    bits = uint32_t(half) << 16;
  } else {
    std::memcpy(&bits, static_cast<const float*>(data) + index, 4);
  }
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

// float64 to bf16 in one rounding to nearest even: first to fp32 rounding to
// odd (toward zero, the last bit set when anything was dropped), which keeps
// the 16 extra bits a single rounding to bf16's 8 needs, then fp32 to bf16 to
// nearest even. A NaN becomes the canonical 0x7fff, as __float2bfloat16 makes it.
inline uint16_t bf16_bits(double value) {
  if (std::isnan(value)) return 0x7fff;
  float narrow = float(value);
  uint32_t bits;
  if (std::isfinite(narrow) && double(narrow) != value) {
    if (std::fabs(double(narrow)) > std::fabs(value)) narrow = std::nextafter(narrow, 0.0f);
    std::memcpy(&bits, &narrow, 4);
    bits |= 1;
  } else {
    std::memcpy(&bits, &narrow, 4);
  }
  return uint16_t((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline void store(void* data, cudaDataType_t type, int64_t index, double value) {
  if (type == CUDA_R_16BF) {
    const uint16_t bits = bf16_bits(value);
    std::memcpy(static_cast<uint16_t*>(data) + index, &bits, 2);
  } else {
    const float narrow = float(value);
    std::memcpy(static_cast<float*>(data) + index, &narrow, 4);
  }
}

// The elements a rows x cols matrix with leading dimension ld spans.
inline int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (cols - 1) * ld + rows; }

// True when the matrix lies inside one device allocation (an empty one always
// does); otherwise says so on stderr.
inline bool in_device_memory(const char* call, const char* name, const void* data, int64_t rows, int64_t cols,
                             int64_t ld, size_t bytes_per_element) {
  const int64_t elements = span(rows, cols, ld);
  if (elements == 0 || is_device_memory(data, size_t(elements) * bytes_per_element)) return true;
  std::fprintf(stderr, "emu: %s: %s (%lld x %lld, leading dimension %lld, %zu-byte elements) at %p is not inside one device allocation\n",
               call, name, (long long)rows, (long long)cols, (long long)ld, bytes_per_element, data);
  return false;
}

// Host pointer mode: a scalar is read on the host at the call, so it must not be device memory.
inline bool on_host(const char* call, const char* name, const void* scalar) {
  if (!is_device_memory(scalar, 1)) return true;
  std::fprintf(stderr, "emu: %s: %s points to device memory, but the pointer mode is host\n", call, name);
  return false;
}

// A matrix as stored: rows x cols, column-major, leading dimension ld.
struct Stored {
  const void* data;
  cudaDataType_t type;
  int64_t rows, cols, ld;
};

// op(x) in float64, column-major with leading dimension its rows: x as
// stored, or its transpose.
inline std::vector<double> widen(const Stored& x, bool transpose) {
  const int64_t rows = transpose ? x.cols : x.rows;
  std::vector<double> wide(size_t(x.rows * x.cols));
  for (int64_t j = 0; j < x.cols; j++)
    for (int64_t i = 0; i < x.rows; i++)
      wide[size_t(transpose ? j + i * rows : i + j * rows)] = load(x.data, x.type, i + j * x.ld);
  return wide;
}

// op(A) op(B), m x n with leading dimension m, accumulated in float64 (the
// products of fp32 or bf16 values are exact there), each output's k products
// added in order of k: A is m x k as stored, or k x m when transposed; B is
// k x n, or n x k. (A column of the output at a time, as multiples of op(A)'s
// columns, so the inner loop runs down contiguous columns.)
inline std::vector<double> product(const Stored& a, bool transpose_a, const Stored& b, bool transpose_b) {
  const int64_t m = transpose_a ? a.cols : a.rows, k = transpose_a ? a.rows : a.cols;
  const int64_t n = transpose_b ? b.rows : b.cols;
  std::vector<double> out(size_t(m * n), 0.0);
  if (m == 0 || n == 0 || k == 0) return out;
  const std::vector<double> wide_a = widen(a, transpose_a), wide_b = widen(b, transpose_b);
  for (int64_t j = 0; j < n; j++) {
    double* column = out.data() + j * m;
    for (int64_t p = 0; p < k; p++) {
      const double* a_column = wide_a.data() + p * m;
      const double b_pj = wide_b[size_t(p + j * k)];
      for (int64_t i = 0; i < m; i++) column[i] += a_column[i] * b_pj;
    }
  }
  return out;
}

}  // namespace emu::dense
