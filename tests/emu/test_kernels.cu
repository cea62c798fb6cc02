// The execution layer's threads, barriers and warp collectives against the
// CUDA C++ Programming Guide, and the faults it must catch.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <vector>

namespace {

__global__ void write_coordinates(int* out) {
  const int block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const int thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * blockDim.x * blockDim.y * blockDim.z + thread] = block * 10000 + thread;
}

TEST(EmuKernel, every_thread_of_every_block_runs_once_with_its_coordinates) {
  int* out;
  ASSERT_EQ(cudaMalloc(&out, 3 * 2 * 4 * 5 * 3 * 2 * sizeof(int)), cudaSuccess);
  write_coordinates<<<dim3(3, 2, 4), dim3(5, 3, 2)>>>(out);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  std::vector<int> host(3 * 2 * 4 * 5 * 3 * 2);
  ASSERT_EQ(cudaMemcpy(host.data(), out, host.size() * sizeof(int), cudaMemcpyDeviceToHost), cudaSuccess);
  for (int b = 0; b < 24; b++)
    for (int t = 0; t < 30; t++) EXPECT_EQ(host[b * 30 + t], b * 10000 + t);
  cudaFree(out);
}

}  // namespace
