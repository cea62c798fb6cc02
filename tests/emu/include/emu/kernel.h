// Kernels on the host: every CUDA thread a fiber, run by the device thread
// (runtime.cpp) one block at a time. What the CUDA C++ Programming Guide
// promises, and no more:
// - blocks run in a seeded random order, and at every barrier or warp
//   collective the threads that may go on are resumed in a seeded random order
//   (LLMDION_EMU_SEED), so a missing __syncthreads or a dependence on block
//   order changes results across seeds;
// - __syncthreads waits for every thread of the block, a warp collective for
//   every lane its mask names: one that exited, waits elsewhere or does not
//   exist stops the program, naming the kernel, the block and the threads;
// - a kernel's fault (a bad shared address, a misaligned ldmatrix or cp.async,
//   a device access past an allocation) stops the program the same way.
// Threads switch only at those points: between them a thread runs alone, so
// the memory model (fences, volatile, caching) is not emulated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "emu/types.h"

struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace emu {

// A copy cp.async has started: it lands at the wait_group that covers it.
struct AsyncCopy {
  void* to;
  const void* from;
  unsigned bytes;
};

// One CUDA thread of the block being run.
struct Thread {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
  int rank;  // x + y Dx + z Dx Dy: the lane is rank % 32, the warp rank / 32
  // cp.async: copies since the last commit_group, then the committed groups, oldest first.
  std::vector<AsyncCopy> async_open;
  std::deque<std::vector<AsyncCopy>> async_groups;
};

namespace detail {
extern constinit thread_local Thread* current_thread;  // constinit: read without a TLS init call
}
inline Thread& this_thread() { return *detail::current_thread; }

// Stops the program with `what`, naming the kernel, block and thread when
// called from one; never returns (the fault of a kernel is the process's).
// The const char* form allocates nothing, so a signal handler may call it.
[[noreturn]] void fatal(const std::string& what);
[[noreturn]] void fatal(const char* what);

// The block's dynamic shared memory (the launch's third parameter), filled
// with 0xff at the start of every block so that a read of a byte no thread
// wrote shows (NaN in fp32 and bf16).
unsigned char* dynamic_shared_base();
size_t dynamic_shared_bytes();
template <typename T>
T* dynamic_shared_memory() {
  return reinterpret_cast<T*>(dynamic_shared_base());
}

// The `bytes` at a shared-window address (what cvta.to.shared gave) as a host
// pointer; an address outside the block's dynamic shared memory stops the
// program, naming `what`.
unsigned char* shared_window(size_t address, size_t bytes, const char* what);

// cp.async: lands the thread's committed groups, oldest first, until
// `groups_left` remain (0: every copy in flight, committed or not).
void land_async_copies(Thread& thread, size_t groups_left);

// __syncthreads and its reductions: waits until every thread of the block has
// arrived; returns how many arrived with a nonzero predicate.
int block_barrier(const char* what, int predicate);

// A warp collective (shfl, vote, syncwarp, ldmatrix, mma): each lane of `mask`
// calls it with its own `lane_data`. When every lane of the mask has arrived
// at a collective of the same `what` and mask, `complete(lanes, mask)` runs
// once, lanes[i] being lane i's data (null outside the mask), and every lane
// goes on. The lane's data lives on its stack until it goes on.
// Only __syncwarp orders memory among its lanes (Programming Guide,
// "__syncwarp"): with `orders_memory` each lane's accesses before it happen
// before every lane's after it, for ThreadSanitizer. The others exchange
// registers alone (ldmatrix reads its rows before, as each lane), so a kernel
// that leans on a shuffle to order its shared memory is reported.
using WarpCompletion = void (*)(void* const lanes[32], unsigned mask);
void warp_collective(const char* what, unsigned mask, void* lane_data, WarpCompletion complete,
                     bool orders_memory = false);

// The lanes of the calling thread's warp that have not exited (__activemask).
unsigned active_lanes();

// ---- launches ----------------------------------------------------------------
// kernel<<<grid, block, shared_bytes, stream>>>(args...) is written, by the
// emulated build's source translation (translate.cmake), as
//   emu::launch("kernel", [](auto&&... a) { kernel(a...); },
//               [](auto take) -> decltype(take(kernel)) { return take(kernel); },
//               grid, block, shared_bytes, stream)(args...)
// The first lambda calls the kernel as a launch does, its template arguments
// deduced from the launch's (a kernel like map_kernel<8> with a functor);
// the second gives the kernel's address where it names one function, which
// is how cudaFuncSetAttribute finds it.

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes;
  cudaStream_t stream;
};

// Checks the configuration as the hardware would (a bad one is the launch's
// error, as cudaGetLastError reports it), then queues the grid on the stream:
// `thread_body` is run once as each thread of it. `kernel_address` is null
// for a kernel whose template arguments the launch deduces.
void launch_grid(const char* kernel, const void* kernel_address, const LaunchConfig& config,
                 std::function<void()> thread_body);

// The address of a kernel that names one function.
struct TakeAddress {
  template <typename... Params>
  const void* operator()(void (*kernel)(Params...)) const {
    return reinterpret_cast<const void*>(kernel);
  }
};

template <typename Body, typename Address>
struct Launch {
  const char* kernel_name;
  Body body;
  Address address;
  LaunchConfig config;

  // The arguments are copied at the launch; each thread calls the kernel with them.
  template <typename... Args>
  void operator()(Args&&... args) const {
    const void* kernel_address = nullptr;
    if constexpr (std::is_invocable_v<const Address&, TakeAddress>) kernel_address = address(TakeAddress{});
    auto params = std::make_shared<std::tuple<std::decay_t<Args>...>>(std::forward<Args>(args)...);
    launch_grid(kernel_name, kernel_address, config, [body = body, params] { std::apply(body, *params); });
  }
};

template <typename Body, typename Address>
Launch<Body, Address> launch(const char* kernel_name, Body body, Address address, dim3 grid, dim3 block,
                             size_t shared_bytes = 0, cudaStream_t stream = nullptr) {
  return {kernel_name, body, address, {grid, block, shared_bytes, stream}};
}

}  // namespace emu
