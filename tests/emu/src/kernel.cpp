// Running a grid: its blocks one after another in a seeded random order, the
// threads of a block as fibers (context.h) that the scheduler resumes in rounds,
// each round in a fresh seeded random order. A thread runs until it reaches a
// barrier, a warp collective or its end, and then resumes the round's next
// itself; the last thread (or lane) to arrive completes the barrier (or
// collective) and makes its peers ready again.
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "emu/kernel.h"
#include "emu/runtime.h"
#include "context.h"
#include "sanitizers.h"

namespace emu {
namespace detail {
constinit thread_local Thread* current_thread = nullptr;
}

namespace {

using sanitizers::IgnoreAccesses;

constexpr size_t kPage = 4096;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr size_t kStackBytes = 1024 * 1024;
#else
constexpr size_t kStackBytes = 256 * 1024;
#endif
constexpr int kMaxThreads = 1024;

enum class State { kReady, kAtBarrier, kAtWarp, kExited };

struct Fiber {
  Thread thread;
  Context context;
  char* stack = nullptr;  // lowest usable byte; a PROT_NONE page below it catches an overflow
  State state = State::kExited;
  // Where it waits: the barrier or collective, its mask and data.
  const char* what = nullptr;
  unsigned mask = 0;
  void* data = nullptr;
  WarpCompletion complete = nullptr;
  int predicate = 0;
  int barrier_result = 0;
  unsigned barrier_generation = 0;  // of the block barrier it waits at
  // Under ThreadSanitizer: the fiber, what it releases on arriving at a
  // __syncwarp, what it is released through.
  void* tsan_fiber = nullptr;
  char arrived_sync = 0, released_sync = 0;
  void* asan_fake_stack = nullptr;
};

// The grid being run; the device thread's alone.
struct Grid {
  const char* kernel = nullptr;
  dim3 grid_dim, block_dim;
  const std::function<void()>* body = nullptr;
  uint3 block_idx{};
  bool in_block = false;
  int threads = 0;
  int exited = 0;
  int at_barrier = 0;
  // Per warp, the lanes waiting at a warp collective and the lanes that exited
  // (the fibers' states, indexed so that an arrival need not visit every lane).
  unsigned lanes_at_warp[kMaxThreads / 32] = {}, lanes_exited[kMaxThreads / 32] = {};
  unsigned char* shared = nullptr;  // the block's dynamic shared memory
  size_t shared_bytes = 0;
  void* shared_mapping = nullptr;
  size_t shared_mapping_bytes = 0;
  char start_sync = 0, exit_sync = 0;
  // Block barriers passed; under ThreadSanitizer every thread releases into
  // barrier_sync[generation % 2] on arriving and acquires it on going on (two,
  // so a thread already at the next barrier cannot hand its later accesses to
  // one still leaving this one).
  unsigned barrier_generation = 0;
  char barrier_sync[2] = {};
};

thread_local Grid* running = nullptr;   // set on the device thread while a grid runs
thread_local Fiber* running_fiber = nullptr;

std::vector<std::unique_ptr<Fiber>> pool;  // fiber r runs the thread of rank r
Context scheduler_context;
void* scheduler_tsan_fiber = nullptr;
void* scheduler_fake_stack = nullptr;
const void* scheduler_stack_bottom = nullptr;
size_t scheduler_stack_bytes = 0;
// The round being run: its fibers in the round's order, and the next to resume.
std::vector<Fiber*> round_order;
size_t round_next = 0;
unsigned long long launches = 0;

std::string triple(uint3 v) {
  char text[40];
  std::snprintf(text, sizeof(text), "(%u,%u,%u)", v.x, v.y, v.z);
  return text;
}

std::string hex(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", mask);
  return text;
}

// Ranks as ranges: "0-31, 64, 96-127".
std::string ranges(const std::vector<int>& ranks) {
  std::string out;
  for (size_t i = 0; i < ranks.size();) {
    size_t j = i;
    while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) j++;
    if (!out.empty()) out += ", ";
    out += std::to_string(ranks[i]);
    if (j > i) out += '-' + std::to_string(ranks[j]);
    i = j + 1;
  }
  return out;
}

Fiber& me() { return *running_fiber; }

// A fiber that waits or exits resumes the next fiber of the round itself, and
// the scheduler after the round's last (a switch a resumption, not two).
void switch_to_next(Fiber& self) {
  Context* to = &scheduler_context;
  void* tsan_fiber = scheduler_tsan_fiber;
  const void* stack = scheduler_stack_bottom;
  size_t stack_bytes = scheduler_stack_bytes;
  {
    IgnoreAccesses ignore;
    if (round_next < round_order.size()) {
      Fiber& next = *round_order[round_next++];
      running_fiber = &next;
      detail::current_thread = &next.thread;
      to = &next.context, tsan_fiber = next.tsan_fiber, stack = next.stack, stack_bytes = kStackBytes;
    }
  }
  sanitizers::start_switch(&self.asan_fake_stack, stack, stack_bytes);
  sanitizers::switch_to_fiber(tsan_fiber);
  switch_context(self.context, *to);
  sanitizers::finish_switch(self.asan_fake_stack, nullptr, nullptr);
}

void switch_to_fiber(Fiber& fiber) {
  {
    IgnoreAccesses ignore;
    running_fiber = &fiber;
    detail::current_thread = &fiber.thread;
  }
  sanitizers::start_switch(&scheduler_fake_stack, fiber.stack, kStackBytes);
  sanitizers::switch_to_fiber(fiber.tsan_fiber);
  switch_context(scheduler_context, fiber.context);
  sanitizers::finish_switch(scheduler_fake_stack, nullptr, nullptr);
  IgnoreAccesses ignore;
  running_fiber = nullptr;
  detail::current_thread = nullptr;
}

// A thread's end: copies cp.async left in flight land, and no peer may be
// waiting for it at a barrier or a collective that names it.
void thread_exits(Fiber& self) {
  land_async_copies(self.thread, 0);
  IgnoreAccesses ignore;
  Grid& grid = *running;
  self.state = State::kExited;
  grid.exited++;
  if (grid.at_barrier > 0)
    fatal("__syncthreads not reached by every thread of the block: this thread exited while " +
          std::to_string(grid.at_barrier) + " threads wait at it");
  const int lane = self.thread.rank % 32, warp = self.thread.rank / 32, warp0 = self.thread.rank - lane;
  grid.lanes_exited[warp] |= 1u << lane;
  for (unsigned waiting = grid.lanes_at_warp[warp]; waiting; waiting &= waiting - 1) {
    const int r = warp0 + __builtin_ctz(waiting);
    const Fiber& peer = *pool[r];
    if (peer.mask >> lane & 1u)
      fatal(std::string(peer.what) + " (mask " + hex(peer.mask) + ") not reached by every lane it names: lane " +
            std::to_string(lane) + " exited while lane " + std::to_string(r - warp0) + " waits at it");
  }
}

// A fiber's first switch lands here, running_fiber set by whoever switched.
// The first of all comes from the scheduler, whose stack it records.
void fiber_main() {
  Fiber& self = *running_fiber;
  const void* from_bottom = nullptr;
  size_t from_bytes = 0;
  sanitizers::finish_switch(nullptr, &from_bottom, &from_bytes);
  if (!scheduler_stack_bottom) scheduler_stack_bottom = from_bottom, scheduler_stack_bytes = from_bytes;
  for (;;) {
    sanitizers::acquire(&running->start_sync);
    try {
      (*running->body)();
    } catch (const std::exception& e) {
      fatal(std::string("an exception escaped the kernel: ") + e.what());
    }
    thread_exits(self);
    sanitizers::release(&running->exit_sync);
    switch_to_next(self);
  }
}

Fiber& fiber_for_rank(int rank) {
  while (int(pool.size()) <= rank) {
    auto fiber = std::make_unique<Fiber>();
    void* mapping = mmap(nullptr, kStackBytes + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                         -1, 0);
    if (mapping == MAP_FAILED) fatal("no memory for the stack of a CUDA thread");
    mprotect(mapping, kPage, PROT_NONE);
    fiber->stack = static_cast<char*>(mapping) + kPage;
    make_context(fiber->context, fiber->stack, kStackBytes, fiber_main);
    fiber->tsan_fiber = sanitizers::create_fiber();
    pool.push_back(std::move(fiber));
  }
  return *pool[rank];
}

// No thread can go on, yet some have not exited: a barrier or collective that
// some thread or lane it names never reaches.
[[noreturn]] void report_deadlock(const Grid& grid) {
  std::string text = "a barrier or warp collective not reached by every thread or lane it names:";
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int r = 0; r < grid.threads; r++) {
    const Fiber& f = *pool[r];
    std::string where = f.state == State::kExited ? "exited"
                        : f.state == State::kAtBarrier
                            ? std::string("wait at ") + f.what
                            : std::string("wait at ") + f.what + " (warp " + std::to_string(r / 32) + ", mask " +
                                  hex(f.mask) + ")";
    auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == where; });
    if (it == groups.end()) groups.push_back({where, {r}});
    else it->second.push_back(r);
  }
  for (auto& [where, ranks] : groups) text += " threads " + ranges(ranks) + " " + where + ";";
  text.pop_back();
  fatal(text);
}

void run_block(Grid& grid, std::mt19937_64& random) {
  {
    IgnoreAccesses ignore;
    grid.in_block = true;
    grid.exited = grid.at_barrier = 0;
    std::fill(std::begin(grid.lanes_at_warp), std::end(grid.lanes_at_warp), 0u);
    std::fill(std::begin(grid.lanes_exited), std::end(grid.lanes_exited), 0u);
    if (grid.shared_bytes) std::memset(grid.shared, 0xff, grid.shared_bytes);
    for (int r = 0; r < grid.threads; r++) {
      Fiber& f = fiber_for_rank(r);
      const unsigned x = r % grid.block_dim.x, y = r / grid.block_dim.x % grid.block_dim.y,
                     z = r / (grid.block_dim.x * grid.block_dim.y);
      f.thread.thread_idx = {x, y, z};
      f.thread.block_idx = grid.block_idx;
      f.thread.block_dim = grid.block_dim;
      f.thread.grid_dim = grid.grid_dim;
      f.thread.rank = r;
      f.thread.async_open.clear();
      f.thread.async_groups.clear();
      f.state = State::kReady;
    }
  }
  sanitizers::acquire(&grid.exit_sync);
  sanitizers::release(&grid.start_sync);
  std::vector<Fiber*>& ready = round_order;
  for (;;) {
    {
      IgnoreAccesses ignore;
      ready.clear();
      for (int r = 0; r < grid.threads; r++)
        if (pool[r]->state == State::kReady) ready.push_back(pool[r].get());
      if (ready.empty() && grid.exited < grid.threads) report_deadlock(grid);
    }
    if (ready.empty()) break;
    std::shuffle(ready.begin(), ready.end(), random);
    {
      IgnoreAccesses ignore;
      round_next = 1;
    }
    switch_to_fiber(*ready[0]);  // back when the round's last fiber waits or exits
  }
  sanitizers::acquire(&grid.exit_sync);
  IgnoreAccesses ignore;
  grid.in_block = false;
}

// Dynamic shared memory ends at a PROT_NONE page when its size is a multiple
// of 16 bytes, so a read past it faults. (Under AddressSanitizer it comes
// from malloc, which bounds it exactly.)
void map_dynamic_shared(Grid& grid, size_t bytes) {
#if defined(__SANITIZE_ADDRESS__)
  void* shared = nullptr;
  if (posix_memalign(&shared, 128, std::max<size_t>(bytes, 1)) != 0) fatal("no memory for dynamic shared memory");
  grid.shared = static_cast<unsigned char*>(shared);
  grid.shared_bytes = bytes;
  return;
#endif
  const size_t rounded = (bytes + 15) / 16 * 16;
  const size_t pages = (rounded + kPage - 1) / kPage * kPage;
  grid.shared_mapping_bytes = pages + kPage;
  grid.shared_mapping =
      mmap(nullptr, grid.shared_mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (grid.shared_mapping == MAP_FAILED) fatal("no memory for dynamic shared memory");
  unsigned char* guard = static_cast<unsigned char*>(grid.shared_mapping) + pages;
  mprotect(guard, kPage, PROT_NONE);
  grid.shared = guard - rounded;
  grid.shared_bytes = bytes;
}

// (The scheduler's writes of what every fiber reads are the layer's
// bookkeeping, not the kernel's: ThreadSanitizer is told to ignore them.)
void run_grid(const char* kernel, const LaunchConfig& config, const std::function<void()>& body) {
  Grid grid;
  {
    IgnoreAccesses ignore;
    grid.kernel = kernel;
    grid.grid_dim = config.grid;
    grid.block_dim = config.block;
    grid.body = &body;
    grid.threads = int(config.block.x * config.block.y * config.block.z);
    map_dynamic_shared(grid, config.shared_bytes);
    running = &grid;
    if (!scheduler_tsan_fiber) scheduler_tsan_fiber = sanitizers::current_fiber();
  }
  std::mt19937_64 random(seed() * 0x2545f4914f6cdd1dull + ++launches);
  const uint64_t blocks = uint64_t(config.grid.x) * config.grid.y * config.grid.z;
  std::vector<uint64_t> order(blocks);
  for (uint64_t b = 0; b < blocks; b++) order[b] = b;
  std::shuffle(order.begin(), order.end(), random);
  for (uint64_t b : order) {
    {
      IgnoreAccesses ignore;
      grid.block_idx = {unsigned(b % config.grid.x), unsigned(b / config.grid.x % config.grid.y),
                        unsigned(b / (uint64_t(config.grid.x) * config.grid.y))};
    }
    run_block(grid, random);
  }
  IgnoreAccesses ignore;
  running = nullptr;
  if (grid.shared_mapping) munmap(grid.shared_mapping, grid.shared_mapping_bytes);
  else std::free(grid.shared);
}

}  // namespace

bool describe_kernel_address(const void* address, char* text, size_t size) {
  const auto* p = static_cast<const unsigned char*>(address);
  if (running && running->shared_mapping) {
    const auto* end = running->shared + running->shared_bytes;
    const auto* mapping_end = static_cast<const unsigned char*>(running->shared_mapping) + running->shared_mapping_bytes;
    if (p >= end && p < mapping_end) {
      std::snprintf(text, size, "%zu bytes past the end of the block's %zu bytes of dynamic shared memory",
                    size_t(p - end), running->shared_bytes);
      return true;
    }
  }
  for (const auto& fiber : pool)
    if (p >= reinterpret_cast<const unsigned char*>(fiber->stack) - kPage && p < reinterpret_cast<const unsigned char*>(fiber->stack)) {
      std::snprintf(text, size, "the stack of a CUDA thread overflowed");
      return true;
    }
  return false;
}

// ---- what kernels call --------------------------------------------------------------

void fatal(const char* what) {
  char where[256] = "";
  if (running) {
    size_t n = 0;
    const auto append = [&](const char* format, auto... values) {
      if (n < sizeof(where)) n += std::snprintf(where + n, sizeof(where) - n, format, values...);
    };
    append("kernel %s", running->kernel);
    if (running->in_block) append(", block (%u,%u,%u)", running->block_idx.x, running->block_idx.y, running->block_idx.z);
    if (detail::current_thread) {
      const uint3 t = detail::current_thread->thread_idx;
      append(", thread (%u,%u,%u)", t.x, t.y, t.z);
    }
    append(": ");
  }
  char line[1024];
  const int length = std::snprintf(line, sizeof(line), "emu: %s%s\n", where, what);
  if (length > 0) [[maybe_unused]] const ssize_t written = ::write(2, line, std::min<size_t>(size_t(length), sizeof(line) - 1));
  std::abort();
}

void fatal(const std::string& what) { fatal(what.c_str()); }

unsigned char* dynamic_shared_base() { return running->shared; }
size_t dynamic_shared_bytes() { return running->shared_bytes; }

unsigned char* shared_window(size_t address, size_t bytes, const char* what) {
  if (address + bytes > running->shared_bytes)
    fatal(std::string(what) + ": shared address " + std::to_string(address) + " (+" + std::to_string(bytes) +
          " bytes) outside the block's " + std::to_string(running->shared_bytes) + " bytes of dynamic shared memory");
  return running->shared + address;
}

void land_async_copies(Thread& thread, size_t groups_left) {
  if (groups_left == 0 && !thread.async_open.empty()) {
    thread.async_groups.push_back(std::move(thread.async_open));
    thread.async_open.clear();
  }
  while (thread.async_groups.size() > groups_left) {
    for (const AsyncCopy& c : thread.async_groups.front()) std::memcpy(c.to, c.from, c.bytes);
    thread.async_groups.pop_front();
  }
}

int block_barrier(const char* what, int predicate) {
  Fiber& self = me();
  {
    IgnoreAccesses ignore;
    Grid& grid = *running;
    if (grid.exited > 0) {
      int exited = 0;
      while (pool[exited]->state != State::kExited) exited++;
      fatal(std::string(what) + " not reached by every thread of the block: thread " +
            triple(pool[exited]->thread.thread_idx) + " has exited");
    }
    self.state = State::kAtBarrier;
    self.what = what;
    self.predicate = predicate;
    self.barrier_generation = grid.barrier_generation;
    grid.at_barrier++;
  }
  char* barrier_sync = &running->barrier_sync[self.barrier_generation % 2];
  sanitizers::release(barrier_sync);
  bool last;
  {
    IgnoreAccesses ignore;
    last = running->at_barrier == running->threads;
  }
  if (last) {
    Grid& grid = *running;
    IgnoreAccesses ignore;
    int count = 0;
    for (int r = 0; r < grid.threads; r++) {
      if (std::strcmp(pool[r]->what, what) != 0)
        fatal(std::string("threads of one block meet at different barriers: thread ") +
              triple(pool[r]->thread.thread_idx) + " at " + pool[r]->what + ", this one at " + what);
      count += pool[r]->predicate;
    }
    for (int r = 0; r < grid.threads; r++) {
      pool[r]->barrier_result = count;
      pool[r]->state = State::kReady;
    }
    grid.at_barrier = 0;
    grid.barrier_generation++;
  }
  switch_to_next(self);
  sanitizers::acquire(barrier_sync);
  IgnoreAccesses ignore;
  return self.barrier_result;
}

void warp_collective(const char* what, unsigned mask, void* lane_data, WarpCompletion complete, bool orders_memory) {
  Fiber& self = me();
  Grid& grid = *running;
  const int lane = self.thread.rank % 32, warp = self.thread.rank / 32, warp0 = self.thread.rank - lane;
  const int lanes = std::min(32, grid.threads - warp0);
  bool last = true;
  {
    IgnoreAccesses ignore;
    if (!(mask >> lane & 1u))
      fatal(std::string(what) + " with mask " + hex(mask) + " called by lane " + std::to_string(lane) +
            ", which the mask leaves out");
    if (lanes < 32 && (mask >> lanes) != 0)
      fatal(std::string(what) + " with mask " + hex(mask) + " names lanes past the " + std::to_string(lanes) +
            " this warp has (a block of " + std::to_string(grid.threads) + " threads)");
    if (const unsigned exited = grid.lanes_exited[warp] & mask)
      fatal(std::string(what) + " (mask " + hex(mask) + ") not reached by every lane it names: lane " +
            std::to_string(__builtin_ctz(exited)) + " has exited");
    // The last to arrive: every other lane of the mask waits at a collective of this mask.
    const unsigned peers = mask & ~(1u << lane);
    last = (grid.lanes_at_warp[warp] & peers) == peers;
    for (unsigned rest = peers; last && rest; rest &= rest - 1)
      last = pool[warp0 + __builtin_ctz(rest)]->mask == mask;
    grid.lanes_at_warp[warp] |= 1u << lane;
    self.state = State::kAtWarp;
    self.what = what;
    self.mask = mask;
    self.data = lane_data;
    self.complete = complete;
  }
  if (orders_memory) sanitizers::release(&self.arrived_sync);
  if (last) {
    void* data[32] = {};
    if (orders_memory)
      for (int l = 0; l < lanes; l++)
        if (mask >> l & 1u) sanitizers::acquire(&pool[warp0 + l]->arrived_sync);
    IgnoreAccesses ignore;  // the lanes' data is registers, not memory the kernel shares
    for (int l = 0; l < lanes; l++) {
      if (!(mask >> l & 1u)) continue;
      const Fiber& peer = *pool[warp0 + l];
      if (std::strcmp(peer.what, what) != 0)
        fatal(std::string("lanes of one mask (") + hex(mask) + ") meet at different warp collectives: lane " +
              std::to_string(l) + " at " + peer.what + ", lane " + std::to_string(lane) + " at " + what);
      data[l] = peer.data;
    }
    complete(data, mask);
    grid.lanes_at_warp[warp] &= ~mask;
    for (int l = 0; l < lanes; l++) {
      if (!(mask >> l & 1u)) continue;
      pool[warp0 + l]->state = State::kReady;
      if (orders_memory) sanitizers::release(&pool[warp0 + l]->released_sync);
    }
  }
  switch_to_next(self);
  if (orders_memory) sanitizers::acquire(&self.released_sync);
}

unsigned active_lanes() {
  IgnoreAccesses ignore;
  const Fiber& self = me();
  const int warp0 = self.thread.rank - self.thread.rank % 32;
  unsigned mask = 0;
  for (int l = 0; l < std::min(32, running->threads - warp0); l++)
    if (pool[warp0 + l]->state != State::kExited) mask |= 1u << l;
  return mask;
}

void complete_shuffle(void* const lanes[32], unsigned mask) {
  for (int l = 0; l < 32; l++) {
    if (!(mask >> l & 1u)) continue;
    auto* lane = static_cast<ShuffleLane*>(lanes[l]);
    if (lane->source < 0 || lane->source >= 32 || !(mask >> lane->source & 1u))
      fatal("a shuffle with mask " + hex(mask) + ": lane " + std::to_string(l) + " reads lane " +
            std::to_string(lane->source) + ", which the mask leaves out (undefined)");
    lane->result = static_cast<ShuffleLane*>(lanes[lane->source])->value;
  }
}

void complete_vote(void* const lanes[32], unsigned mask) {
  unsigned ballot = 0;
  for (int l = 0; l < 32; l++)
    if ((mask >> l & 1u) && static_cast<VoteLane*>(lanes[l])->predicate) ballot |= 1u << l;
  for (int l = 0; l < 32; l++)
    if (mask >> l & 1u) static_cast<VoteLane*>(lanes[l])->ballot = ballot;
}

// ---- launches ------------------------------------------------------------------------------

void launch_grid(const char* kernel, const void* kernel_address, const LaunchConfig& config,
                 std::function<void()> thread_body) {
  const dim3 g = config.grid, b = config.block;
  const std::string launch = std::string("launch of ") + kernel + "<<<" + triple(g) + ", " + triple(b) + ", " +
                             std::to_string(config.shared_bytes) + ">>>: ";
  if (b.x == 0 || b.y == 0 || b.z == 0 || g.x == 0 || g.y == 0 || g.z == 0)
    return record_error(cudaErrorInvalidConfiguration, launch + "a grid or block dimension is 0");
  if (b.x > 1024 || b.y > 1024 || b.z > 64 || uint64_t(b.x) * b.y * b.z > uint64_t(kMaxThreads))
    return record_error(cudaErrorInvalidConfiguration,
                        launch + "over 1024 threads per block (or a block dimension over 1024, 1024, 64)");
  if (g.y > 65535 || g.z > 65535 || g.x > 2147483647u)
    return record_error(cudaErrorInvalidConfiguration, launch + "a grid dimension over (2^31 - 1, 65535, 65535)");
  const int allowed = max_dynamic_shared_bytes(kernel_address);
  if (config.shared_bytes > size_t(allowed))
    return record_error(cudaErrorInvalidValue,
                        launch + std::to_string(config.shared_bytes) + " bytes of dynamic shared memory, over the " +
                            std::to_string(allowed) + " the kernel may have" +
                            (allowed == 48 * 1024
                                 ? " (48 KB unless cudaFuncSetAttribute(kernel, "
                                   "cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) raises it, to 227 KB)"
                                 : " (as cudaFuncSetAttribute set it)"));
  if (!stream_is_valid(config.stream))
    return record_error(cudaErrorInvalidResourceHandle, launch + "a destroyed stream");
  enqueue(config.stream, kernel,
          [kernel, config, body = std::move(thread_body)] { run_grid(kernel, config, body); });
}

}  // namespace emu

size_t __cvta_generic_to_shared(const void* pointer) {
  const auto* p = static_cast<const unsigned char*>(pointer);
  const emu::Grid* grid = emu::running;
  if (!grid || p < grid->shared || p > grid->shared + grid->shared_bytes)
    emu::fatal("cvta.to.shared of an address outside the block's dynamic shared memory");
  return size_t(p - grid->shared);
}
