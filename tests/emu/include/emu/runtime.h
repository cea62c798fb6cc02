// The emulated device as the library emulations (cuBLAS, cuBLASLt, cuSOLVER,
// NCCL) use it: work queued on a stream runs on the device thread, in stream
// order, as the host goes on.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "emu/kernel.h"

namespace emu {

// Queues `work` on `stream` (null: the legacy default stream). It runs on the
// device thread after everything queued there before it, and, where stream or
// the legacy stream is involved, after what the legacy stream's rules order
// before it (Runtime API, "Stream synchronization behavior"). `what` names it
// in any fault report.
void enqueue(cudaStream_t stream, const char* what, std::function<void()> work);

// Waits until everything queued on `stream` so far has run.
void synchronize_stream(cudaStream_t stream);
// Waits until everything queued anywhere has run.
void synchronize_device();

// True when [pointer, pointer + bytes) lies inside one live device allocation.
bool is_device_memory(const void* pointer, size_t bytes);

// The seed of every random order (LLMDION_EMU_SEED, default 1).
unsigned long long seed();
// Waits for the device to be idle, then makes `value` the seed of every later order (for tests).
void set_seed(unsigned long long value);

// For launches: sets the calling host thread's last error (cudaGetLastError)
// and prints `message`; whether a stream handle is live; the dynamic shared
// memory a kernel may have (48 KB unless cudaFuncSetAttribute raised it).
void record_error(int error, const std::string& message);
bool stream_is_valid(cudaStream_t stream);
int max_dynamic_shared_bytes(const void* kernel);
// A faulting address a running kernel owns (past its dynamic shared memory, a
// thread's stack guard), in words into `text`; false when it is none of those.
// Allocates nothing (the fault handler calls it).
bool describe_kernel_address(const void* address, char* text, size_t size);

}  // namespace emu
