// The emulated device: one device thread that runs what streams queue, device
// memory with a guard page after each allocation, and the runtime calls on top.
//
// Streams (Runtime API, "Stream synchronization behavior"): work on a stream
// runs in the order it was queued; work on the legacy default stream (null)
// waits for all earlier work on every blocking stream, and work on a blocking
// stream for all earlier work on the legacy stream; non-blocking streams
// (cudaStreamNonBlocking) order against nothing but their events. Among the
// streams whose next work may run, the device thread picks one at random, so
// a missing cudaStreamWaitEvent or synchronization shows as a wrong result
// (and, under ThreadSanitizer, as a race between the host and the device thread).
//
// Copies follow "API synchronization behavior" for pageable host memory (the
// only kind our sources use): a host-to-device copy reads the host buffer
// before it returns and lands in stream order; cudaMemcpy from the device
// returns when the bytes are there; cudaMemcpyAsync to the host returns at once
// and the bytes land in stream order; device-to-device copies and memsets return at once.
#include <cuda_runtime.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "emu/runtime.h"

struct CUstream_st {
  bool blocking = true;
  bool destroyed = false;
  uint64_t queued = 0;  // work numbered 1, 2, ... in queue order
  uint64_t done = 0;    // work 1 .. done has run
  struct Work {
    uint64_t number;
    std::vector<std::pair<CUstream_st*, uint64_t>> waits;  // (stream, number): that work has run
    std::function<void()> run;
    const char* what;
  };
  std::deque<Work> queue;
};

struct CUevent_st {
  CUstream_st* stream = nullptr;  // null: never recorded
  uint64_t number = 0;
  std::chrono::steady_clock::time_point when;
  bool timing = true;
};

namespace emu {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kAlignment = 256;                    // cudaMalloc's
constexpr size_t kTotalMemory = 80ull << 30;           // an H100 80GB
constexpr int kDefaultSharedBytes = 48 * 1024;
constexpr int kOptInSharedBytes = 227 * 1024;          // sm_90's most per block
constexpr unsigned char kCanary = 0xa5;

// ---- the device thread and its streams ----------------------------------------

class Device {
 public:
  ~Device() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  CUstream_st* legacy() { return &legacy_; }

  CUstream_st* create_stream(bool blocking) {
    std::lock_guard<std::mutex> lock(mutex_);
    streams_.push_back(std::make_unique<CUstream_st>());
    streams_.back()->blocking = blocking;
    return streams_.back().get();
  }

  // `on`, when given, is one more wait: work `number` of stream `on` first.
  void enqueue(CUstream_st* stream, const char* what, std::function<void()> run, CUstream_st* on = nullptr,
               uint64_t number = 0) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    CUstream_st::Work work{++stream->queued, {}, std::move(run), what};
    if (on) work.waits.push_back({on, number});
    if (stream == &legacy_) {
      for (auto& other : streams_)
        if (other->blocking && other->queued > 0) work.waits.push_back({other.get(), other->queued});
    } else if (stream->blocking && legacy_.queued > 0) {
      work.waits.push_back({&legacy_, legacy_.queued});
    }
    stream->queue.push_back(std::move(work));
    lock.unlock();
    changed_.notify_all();
  }

  // Queues a wait: later work on `stream` runs after work `number` of `on`.
  void enqueue_wait(CUstream_st* stream, CUstream_st* on, uint64_t number) {
    enqueue(stream, "cudaStreamWaitEvent", [] {}, on, number);
  }

  void wait_for(CUstream_st* stream, uint64_t number) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return stream->done >= number; });
  }
  void synchronize(CUstream_st* stream) {
    uint64_t number;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      number = stream->queued;
    }
    wait_for(stream, number);
  }
  void synchronize_all() {
    std::vector<std::pair<CUstream_st*, uint64_t>> targets;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      targets.push_back({&legacy_, legacy_.queued});
      for (auto& stream : streams_) targets.push_back({stream.get(), stream->queued});
    }
    for (auto [stream, number] : targets) wait_for(stream, number);
  }
  void reseed(unsigned long long value) {
    std::lock_guard<std::mutex> lock(mutex_);
    random_.seed(value * 0x9e3779b97f4a7c15ull + 1);
  }
  bool has_run(CUstream_st* stream, uint64_t number) {
    std::lock_guard<std::mutex> lock(mutex_);
    return stream->done >= number;
  }
  uint64_t queued(CUstream_st* stream) {
    std::lock_guard<std::mutex> lock(mutex_);
    return stream->queued;
  }

 private:
  bool ready(const CUstream_st& stream) const {
    if (stream.queue.empty()) return false;
    for (auto [on, number] : stream.queue.front().waits)
      if (on->done < number) return false;
    return true;
  }

  void loop() {
#ifndef __SANITIZE_ADDRESS__  // which has a signal stack of its own
    // Faults on the device thread are reported from a stack of their own (a CUDA thread's may be what overflowed).
    static thread_local std::vector<char> signal_stack(64 * 1024);
    stack_t alternate{};
    alternate.ss_sp = signal_stack.data();
    alternate.ss_size = signal_stack.size();
    sigaltstack(&alternate, nullptr);
#endif
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      std::vector<CUstream_st*> runnable;
      if (ready(legacy_)) runnable.push_back(&legacy_);
      for (auto& stream : streams_)
        if (ready(*stream)) runnable.push_back(stream.get());
      if (runnable.empty()) {
        if (stopping_) return;
        changed_.wait(lock);
        continue;
      }
      CUstream_st* stream = runnable[random_() % runnable.size()];
      CUstream_st::Work work = std::move(stream->queue.front());
      stream->queue.pop_front();
      lock.unlock();
      work.run();
      lock.lock();
      stream->done = work.number;
      changed_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  CUstream_st legacy_;
  std::vector<std::unique_ptr<CUstream_st>> streams_;
  bool stopping_ = false;
  std::mt19937_64 random_{seed() * 0x9e3779b97f4a7c15ull + 1};
  std::thread thread_;
};

Device& device() {
  static Device instance;
  return instance;
}

CUstream_st* resolve(cudaStream_t stream) { return stream ? stream : device().legacy(); }

// ---- device memory ----------------------------------------------------------------
// Each allocation is its own mapping: 256-byte aligned (as cudaMalloc's) and
// placed as near the end of its pages as that allows, a PROT_NONE page right
// after. A read or write past the end faults at once when the size is a
// multiple of 256 bytes; the up to 255 bytes between a smaller one's end and
// the guard hold a canary that cudaFree checks, so a write there is reported
// too. Under AddressSanitizer allocations come from malloc instead, which
// bounds every access exactly.

struct Allocation {
  size_t bytes;
  void* mapping;
  size_t mapping_bytes;
};

std::mutex memory_mutex;
std::map<uintptr_t, Allocation> allocations;   // by start address
std::deque<std::pair<uintptr_t, size_t>> freed;  // the latest freed ranges, for fault reports
size_t allocated_bytes = 0;

#ifndef __SANITIZE_ADDRESS__  // which reports faults itself
// A fault in a guard page or in freed memory, in words into `text`; false when
// the address is neither. Allocates nothing (the fault handler calls it).
bool describe_address(uintptr_t address, char* text, size_t size) {
  for (auto& [start, a] : allocations) {
    if (!a.mapping) continue;
    const uintptr_t guard = uintptr_t(a.mapping) + a.mapping_bytes - kPage;
    if (address >= start + a.bytes && address < guard + kPage) {
      std::snprintf(text, size, "%zu bytes past the end of a device allocation of %zu bytes",
                    size_t(address - start - a.bytes), a.bytes);
      return true;
    }
  }
  for (auto [start, bytes] : freed)
    if (address >= start && address < start + bytes) {
      std::snprintf(text, size, "device memory already freed (cudaFree)");
      return true;
    }
  return false;
}

void on_fault(int signal_number, siginfo_t* info, void*) {
  char where[256];
  const bool known = describe_address(uintptr_t(info->si_addr), where, sizeof(where)) ||
                     describe_kernel_address(info->si_addr, where, sizeof(where));
  char text[512];
  std::snprintf(text, sizeof(text), "invalid memory access at %p%s%s", info->si_addr, known ? ": " : "",
                known ? where : "");
  signal(signal_number, SIG_DFL);  // the return re-runs the access, which then ends the process
  if (known || detail::current_thread) fatal(text);
}

#endif

void install_fault_handler() {
#ifndef __SANITIZE_ADDRESS__
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction action {};
    action.sa_sigaction = on_fault;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &action, nullptr);
    sigaction(SIGBUS, &action, nullptr);
  });
#endif
}

void* allocate(size_t bytes) {
  install_fault_handler();
#ifdef __SANITIZE_ADDRESS__
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, std::max<size_t>(bytes, 1)) != 0) return nullptr;
  std::lock_guard<std::mutex> lock(memory_mutex);
  allocations[uintptr_t(p)] = {bytes, nullptr, 0};
  allocated_bytes += bytes;
  return p;
#else
  const size_t padded = (std::max<size_t>(bytes, 1) + kAlignment - 1) / kAlignment * kAlignment;
  const size_t data_pages = (padded + kPage - 1) / kPage * kPage;
  const size_t mapping_bytes = data_pages + kPage;
  void* mapping = mmap(nullptr, mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) return nullptr;
  unsigned char* guard = static_cast<unsigned char*>(mapping) + data_pages;
  mprotect(guard, kPage, PROT_NONE);
  unsigned char* start = guard - padded;
  std::memset(start + bytes, kCanary, padded - bytes);
  std::lock_guard<std::mutex> lock(memory_mutex);
  allocations[uintptr_t(start)] = {bytes, mapping, mapping_bytes};
  allocated_bytes += bytes;
  return start;
#endif
}

thread_local cudaError_t last_error = cudaSuccess;

cudaError_t fail(cudaError_t error, const std::string& message) {
  std::fprintf(stderr, "emu: %s\n", message.c_str());
  last_error = error;
  return error;
}

const Allocation* find_allocation(const void* pointer, size_t bytes, uintptr_t* start_out = nullptr) {
  std::lock_guard<std::mutex> lock(memory_mutex);
  auto it = allocations.upper_bound(uintptr_t(pointer));
  if (it == allocations.begin()) return nullptr;
  --it;
  if (uintptr_t(pointer) + bytes > it->first + it->second.bytes) return nullptr;
  if (start_out) *start_out = it->first;
  return &it->second;
}

std::string describe(const void* pointer) {
  char text[32];
  std::snprintf(text, sizeof(text), "%p", pointer);
  return text;
}

// The kind a copy really is, from where its ends lie; an error when the
// declared kind says otherwise or a device range runs past its allocation.
cudaError_t resolve_copy(const char* call, void* to, const void* from, size_t bytes, cudaMemcpyKind& kind) {
  const bool to_device = is_device_memory(to, bytes), from_device = is_device_memory(from, bytes);
  const bool to_inside = is_device_memory(to, 1), from_inside = is_device_memory(from, 1);
  if ((to_inside && !to_device) || (from_inside && !from_device))
    return fail(cudaErrorInvalidValue, std::string(call) + ": " + std::to_string(bytes) + " bytes at " +
                                           describe(to_inside && !to_device ? to : from) +
                                           " run past the end of their device allocation");
  const cudaMemcpyKind actual = to_device ? (from_device ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                          : (from_device ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  if (kind != cudaMemcpyDefault && kind != actual) {
    static const char* names[] = {"host to host", "host to device", "device to host", "device to device", "default"};
    return fail(cudaErrorInvalidValue, std::string(call) + ": declared " + names[kind] + " but the copy is " +
                                           names[actual] + " (" + describe(from) + " -> " + describe(to) + ")");
  }
  kind = actual;
  return cudaSuccess;
}

cudaError_t copy(const char* call, void* to, const void* from, size_t bytes, cudaMemcpyKind kind,
                 cudaStream_t stream, bool host_waits) {
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t status = resolve_copy(call, to, from, bytes, kind); status != cudaSuccess) return status;
  CUstream_st* s = resolve(stream);
  switch (kind) {
    case cudaMemcpyHostToHost:
      if (host_waits) device().synchronize(s);
      std::memcpy(to, from, bytes);
      return cudaSuccess;
    case cudaMemcpyHostToDevice: {
      if (host_waits) device().synchronize(s);  // cudaMemcpy: "a stream sync is performed before the copy"
      auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(from),
                                                                 static_cast<const unsigned char*>(from) + bytes);
      device().enqueue(s, call, [to, staged] { std::memcpy(to, staged->data(), staged->size()); });
      return cudaSuccess;
    }
    case cudaMemcpyDeviceToHost:
      device().enqueue(s, call, [to, from, bytes] { std::memcpy(to, from, bytes); });
      if (host_waits) device().synchronize(s);
      return cudaSuccess;
    default:
      device().enqueue(s, call, [to, from, bytes] { std::memmove(to, from, bytes); });
      return cudaSuccess;
  }
}

cudaError_t set(const char* call, void* to, int value, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_memory(to, bytes))
    return fail(cudaErrorInvalidValue, std::string(call) + ": " + std::to_string(bytes) + " bytes at " + describe(to) +
                                           " are not inside one device allocation");
  device().enqueue(resolve(stream), call, [to, value, bytes] { std::memset(to, value, bytes); });
  return cudaSuccess;
}

std::mutex attributes_mutex;
std::map<const void*, int> max_dynamic_shared;  // by kernel

}  // namespace

// ---- what the rest of the layer uses -------------------------------------------

void enqueue(cudaStream_t stream, const char* what, std::function<void()> work) {
  install_fault_handler();
  device().enqueue(resolve(stream), what, std::move(work));
}
void synchronize_stream(cudaStream_t stream) { device().synchronize(resolve(stream)); }
void synchronize_device() { device().synchronize_all(); }

bool is_device_memory(const void* pointer, size_t bytes) {
  return find_allocation(pointer, std::max<size_t>(bytes, 1)) != nullptr;
}

namespace {
std::atomic<unsigned long long> seed_value{[] {
  const char* text = std::getenv("LLMDION_EMU_SEED");
  return text && *text ? std::strtoull(text, nullptr, 10) : 1ull;
}()};
}  // namespace

unsigned long long seed() { return seed_value.load(); }

void set_seed(unsigned long long value) {
  synchronize_device();
  seed_value = value;
  device().reseed(value);
}

void record_error(int error, const std::string& message) { fail(cudaError_t(error), message); }

bool stream_is_valid(cudaStream_t stream) { return !stream || !stream->destroyed; }

int max_dynamic_shared_bytes(const void* kernel) {
  std::lock_guard<std::mutex> lock(attributes_mutex);
  auto it = max_dynamic_shared.find(kernel);
  return it == max_dynamic_shared.end() ? kDefaultSharedBytes : it->second;
}

}  // namespace emu

using emu::device;

// ---- errors ------------------------------------------------------------------------

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
  }
  return "cudaErrorUnknown";
}

// The runtime's own sentences for these codes.
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorMisalignedAddress: return "misaligned address";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t error = emu::last_error;
  emu::last_error = cudaSuccess;
  return error;
}
cudaError_t cudaPeekAtLastError() { return emu::last_error; }

// ---- the device ----------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* ordinal) {
  *ordinal = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int ordinal) {
  return ordinal == 0 ? cudaSuccess
                      : emu::fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(ordinal) +
                                                              "): the emulated machine has one device, 0");
}

// An H100 SXM (sm_90) as the Programming Guide's "Technical Specifications" lists it.
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int ordinal) {
  if (ordinal != 0) return emu::fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties: no device " + std::to_string(ordinal));
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "NVIDIA H100 80GB HBM3 (emulated on the host)");
  prop->totalGlobalMem = emu::kTotalMemory;
  prop->sharedMemPerBlock = emu::kDefaultSharedBytes;
  prop->sharedMemPerBlockOptin = emu::kOptInSharedBytes;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024, prop->maxThreadsDim[1] = 1024, prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647, prop->maxGridSize[1] = 65535, prop->maxGridSize[2] = 65535;
  prop->multiProcessorCount = 132;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->major = 9, prop->minor = 0;
  prop->l2CacheSize = 50 * 1024 * 1024;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  emu::synchronize_device();
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() {
  emu::synchronize_device();
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(emu::memory_mutex);
  *total_bytes = emu::kTotalMemory;
  *free_bytes = emu::kTotalMemory - std::min(emu::allocated_bytes, emu::kTotalMemory);
  return cudaSuccess;
}

// ---- memory ------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** pointer, size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(emu::memory_mutex);
    if (bytes > emu::kTotalMemory - emu::allocated_bytes)
      return emu::fail(cudaErrorMemoryAllocation, "cudaMalloc(" + std::to_string(bytes) + "): over the device's 80 GB");
  }
  *pointer = emu::allocate(bytes);
  return *pointer ? cudaSuccess
                  : emu::fail(cudaErrorMemoryAllocation, "cudaMalloc(" + std::to_string(bytes) + "): the host has no room");
}

// Frees after the device is idle (cudaFree synchronizes); a write into the
// bytes between the end and the guard page is reported here.
cudaError_t cudaFree(void* pointer) {
  if (!pointer) return cudaSuccess;
  emu::synchronize_device();
  std::lock_guard<std::mutex> lock(emu::memory_mutex);
  auto it = emu::allocations.find(uintptr_t(pointer));
  if (it == emu::allocations.end()) {
    emu::last_error = cudaErrorInvalidValue;
    std::fprintf(stderr, "emu: cudaFree(%p): not the start of a live device allocation\n", pointer);
    return cudaErrorInvalidValue;
  }
  const emu::Allocation a = it->second;
  emu::allocations.erase(it);
  emu::allocated_bytes -= a.bytes;
  if (a.mapping) {
    const unsigned char* end = static_cast<const unsigned char*>(pointer) + a.bytes;
    const unsigned char* guard = static_cast<const unsigned char*>(a.mapping) + a.mapping_bytes - emu::kPage;
    for (const unsigned char* p = end; p < guard; p++)
      if (*p != emu::kCanary)
        emu::fatal("cudaFree: a write " + std::to_string(p - end) + " bytes past the end of a device allocation of " +
                          std::to_string(a.bytes) + " bytes (found when it was freed)");
    munmap(a.mapping, a.mapping_bytes);
  } else {
    std::free(pointer);
  }
  emu::freed.push_back({uintptr_t(pointer), a.bytes});
  if (emu::freed.size() > 4096) emu::freed.pop_front();
  return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* pointer) {
  *attributes = cudaPointerAttributes{};
  if (emu::is_device_memory(pointer, 1)) {
    attributes->type = cudaMemoryTypeDevice;
    attributes->devicePointer = const_cast<void*>(pointer);
  } else {
    attributes->type = cudaMemoryTypeUnregistered;
    attributes->hostPointer = const_cast<void*>(pointer);
  }
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* to, const void* from, size_t bytes, cudaMemcpyKind kind) {
  return emu::copy("cudaMemcpy", to, from, bytes, kind, nullptr, true);
}
cudaError_t cudaMemcpyAsync(void* to, const void* from, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!emu::stream_is_valid(stream)) return emu::fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: a destroyed stream");
  return emu::copy("cudaMemcpyAsync", to, from, bytes, kind, stream, false);
}
cudaError_t cudaMemset(void* to, int value, size_t bytes) { return emu::set("cudaMemset", to, value, bytes, nullptr); }
cudaError_t cudaMemsetAsync(void* to, int value, size_t bytes, cudaStream_t stream) {
  if (!emu::stream_is_valid(stream)) return emu::fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: a destroyed stream");
  return emu::set("cudaMemsetAsync", to, value, bytes, stream);
}

// ---- streams and events ------------------------------------------------------------------

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  *stream = device().create_stream((flags & cudaStreamNonBlocking) == 0);
  return cudaSuccess;
}
// The stream's queued work still runs; the handle is dead from here on.
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream || stream->destroyed) return emu::fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream");
  stream->destroyed = true;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!emu::stream_is_valid(stream)) return emu::fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: a destroyed stream");
  emu::synchronize_stream(stream);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  CUstream_st* s = emu::resolve(stream);
  return device().has_run(s, device().queued(s)) ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  if (!event) return emu::fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: a null event");
  if (event->stream) device().enqueue_wait(emu::resolve(stream), event->stream, event->number);
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  *event = new CUevent_st;
  (*event)->timing = (flags & cudaEventDisableTiming) == 0;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (!event) return emu::fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy: a null event");
  // Work queued to record it may still be pending: it is freed once that has run.
  if (event->stream) {
    CUstream_st* stream = event->stream;
    device().enqueue(stream, "cudaEventDestroy", [event] { delete event; });
  } else {
    delete event;
  }
  return cudaSuccess;
}
// The event stands for everything queued on the stream so far.
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return emu::fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: a null event");
  CUstream_st* s = emu::resolve(stream);
  auto* when = &event->when;
  device().enqueue(s, "cudaEventRecord", [when] { *when = std::chrono::steady_clock::now(); });
  event->stream = s;
  event->number = device().queued(s);
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event->stream) device().wait_for(event->stream, event->number);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  return !event->stream || device().has_run(event->stream, event->number) ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->timing || !end->timing)
    return emu::fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event created with cudaEventDisableTiming");
  if (!start->stream || !end->stream || !device().has_run(start->stream, start->number) ||
      !device().has_run(end->stream, end->number))
    return cudaErrorNotReady;
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

// ---- kernels' attributes -------------------------------------------------------------------

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > emu::kOptInSharedBytes)
    return emu::fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                                " bytes of dynamic shared memory, over sm_90's " +
                                                std::to_string(emu::kOptInSharedBytes) + " per block");
  std::lock_guard<std::mutex> lock(emu::attributes_mutex);
  emu::max_dynamic_shared[kernel] = value;
  return cudaSuccess;
}
