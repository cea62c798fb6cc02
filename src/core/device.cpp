#include "core/device.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <utility>

#ifdef LLMDION_WITH_CUDA
#include "core/cuda/check.h"
#endif

namespace llmdion {

std::string cuda_unavailable_reason() {
#ifdef LLMDION_WITH_CUDA
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) return std::string("no usable CUDA device: ") + cudaGetErrorString(status);
  if (count == 0) return "no CUDA device on this machine";
  return "";
#else
  return "this binary was built without the CUDA backend (configure with nvcc present and -DLLMDION_CUDA=ON)";
#endif
}

int64_t free_memory_bytes(Device device) {
  if (device == Device::kCuda) {
#ifdef LLMDION_WITH_CUDA
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) return int64_t(free_bytes);
#endif
    return -1;
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(1 << 10, '\n');
  }
  return -1;
}

Device resolve_device(const std::string& requested) {
  if (requested == "cpu") return Device::kCpu;
  if (requested == "auto") return cuda_unavailable_reason().empty() ? Device::kCuda : Device::kCpu;
  if (requested == "cuda") {
    const std::string reason = cuda_unavailable_reason();
    if (!reason.empty()) throw std::runtime_error("run.device is cuda but " + reason + "; use run.device: cpu");
    return Device::kCuda;
  }
  throw std::invalid_argument("unknown run.device '" + requested + "' (cpu, cuda or auto)");
}

const char* device_name(Device device) { return device == Device::kCuda ? "cuda" : "cpu"; }

DeviceBuffer::DeviceBuffer(Device device, size_t n) : device_(device), size_(n) {
  if (device == Device::kCpu) {
    data_ = new float[n]();
    return;
  }
#ifdef LLMDION_WITH_CUDA
  CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(float)));
  CUDA_CHECK(cudaMemset(data_, 0, n * sizeof(float)));
#endif
}

DeviceBuffer::~DeviceBuffer() {
  if (device_ == Device::kCpu) delete[] data_;
#ifdef LLMDION_WITH_CUDA
  else cudaFree(data_);
#endif
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : device_(other.device_), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  std::swap(device_, other.device_);
  std::swap(data_, other.data_);
  std::swap(size_, other.size_);
  return *this;
}

void copy_to_host(Device device, const float* from, std::span<float> to) {
  if (device == Device::kCpu) {
    std::memcpy(to.data(), from, to.size_bytes());
    return;
  }
#ifdef LLMDION_WITH_CUDA
  CUDA_CHECK(cudaMemcpy(to.data(), from, to.size_bytes(), cudaMemcpyDeviceToHost));
#endif
}

void copy_from_host(Device device, std::span<const float> from, float* to) {
  if (device == Device::kCpu) {
    std::memcpy(to, from.data(), from.size_bytes());
    return;
  }
#ifdef LLMDION_WITH_CUDA
  CUDA_CHECK(cudaMemcpy(to, from.data(), from.size_bytes(), cudaMemcpyHostToDevice));
#endif
}

}  // namespace llmdion
