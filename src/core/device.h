// Where tensors live and compute runs: the one place that decides cpu vs cuda
// (run.device: auto picks cuda when this binary has the CUDA backend and a GPU
// is present), and the float buffers and host copies every backend shares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace llmdion {

enum class Device { kCpu, kCuda };

// "cpu", "cuda" or "auto" -> the device a run uses; a clear error when cuda is
// asked for and this binary or this machine cannot run it.
Device resolve_device(const std::string& requested);
const char* device_name(Device device);
// The memory a new allocation can take now: the host's MemAvailable (cpu), the
// current GPU's free memory (cuda); -1 when unknown.
int64_t free_memory_bytes(Device device);
// Why this process cannot run CUDA kernels; empty when it can.
std::string cuda_unavailable_reason();

// n floats on a device, zeroed, freed with the buffer.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Device device, size_t n);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<float> span() const { return {data_, size_}; }

 private:
  Device device_ = Device::kCpu;
  float* data_ = nullptr;
  size_t size_ = 0;
};

// Copies between a device's memory and the host (synchronous).
void copy_to_host(Device device, const float* from, std::span<float> to);
void copy_from_host(Device device, std::span<const float> from, float* to);

}  // namespace llmdion
