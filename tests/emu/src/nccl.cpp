// NCCL on the emulated device (include/nccl.h), with the semantics of NVIDIA's
// NCCL User Guide ("Collective Operations", "CUDA Stream Semantics", "Group
// Calls", "Point-to-point communication") and API reference:
//
// - A call returns once its work is queued on its stream; the work runs on the
//   device thread in stream order (emu::enqueue), never on the host thread.
//   Between ncclGroupStart and the outermost ncclGroupEnd nothing is queued;
//   that ncclGroupEnd queues the group's calls as one unit, which posts all
//   their sends and receives before it waits for any, so the send/receive pairs
//   and the several collectives of a group progress together. A group over
//   several streams runs after the work queued so far on each, and each waits
//   for it ("Mixing Multiple Streams within the same ncclGroupStart/End() group").
// - One communicator's units run in the order they were queued, whatever their
//   streams, as NCCL's launches do (each waits for the communicator's previous
//   one, its deviceStream in enqueue.cc): every rank meets its peers in one order.
// - Between ranks a unit's messages travel over MPI, on a communicator of the
//   emulation's own split from MPI_COMM_WORLD by the unique id. Messages are
//   matched in the order of the calls, and each names the call it belongs to,
//   so ranks whose calls differ stop with both calls named instead of hanging.
//   A communicator of one rank needs no MPI.
// - A sum adds the ranks' values in rank order, 0 first, so every rank gets the
//   same bits, run after run. bf16 values add in fp32, rounded to bf16 once per
//   addition, as NCCL's FuncSum<__nv_bfloat16> does (__hadd; fp32 add and
//   round before sm_80). ncclSum of ncclFloat32, ncclFloat64 and ncclBfloat16 is
//   emulated; broadcasts, sends and receives move any type.
// - Inputs are read when the unit starts and outputs written when it ends, so a
//   call is in place when sendbuff == recvbuff. Every buffer a call reads or
//   writes must lie in one device allocation (on a GPU a stray one faults).
// - A refused call returns ncclInvalidArgument or ncclInvalidUsage, and
//   ncclGetLastError() names the call and the argument. Inside a group it fails
//   the group: ncclGroupEnd returns the error and queues nothing (as NCCL's
//   ncclGroupErrCheck does).
#include <nccl.h>

#ifdef LLMDION_EMU_WITH_MPI
#include <mpi.h>
#endif
#include <cuda_bf16.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "emu/runtime.h"

// This rank's place in its clique, the order of its calls, and its units' state.
struct ncclComm {
  int rank = 0, nranks = 1;
#ifdef LLMDION_EMU_WITH_MPI
  MPI_Comm mpi = MPI_COMM_NULL;  // the clique, in NCCL rank order; null alone
#endif
  cudaEvent_t last_unit = nullptr;  // recorded after each unit queued
  // Numbered as called (host thread): the collectives, and the sends to and receives from each peer.
  uint64_t collectives = 0;
  std::vector<uint64_t> sends, receives;
  std::mutex mutex;
  std::condition_variable changed;
  uint64_t units_queued = 0, units_run = 0;
  bool running = false, aborted = false;
};

namespace {

enum Kind : int32_t { kAllReduce, kReduce, kBroadcast, kSend, kRecv };
const char* const kCallNames[] = {"ncclAllReduce", "ncclReduce", "ncclBroadcast", "ncclSend", "ncclRecv"};

// One call as given. `root` is the root of a reduce or broadcast, the peer of a send or receive.
struct Call {
  Kind kind;
  const void* sendbuff;
  void* recvbuff;
  size_t count;
  ncclDataType_t type;
  int root;
  std::shared_ptr<ncclComm> comm;
  cudaStream_t stream;
  uint64_t number = 0;  // the comm's collective, or the pair's send or receive, numbered when queued
};

// ---- errors, communicators, groups ------------------------------------------------

std::mutex last_error_mutex;
char last_error[1024] = "";

ncclResult_t fail(ncclResult_t result, const std::string& message) {
  std::lock_guard<std::mutex> lock(last_error_mutex);
  std::snprintf(last_error, sizeof last_error, "%s", message.c_str());
  return result;
}

std::string text(const void* pointer) {
  char out[32];
  std::snprintf(out, sizeof out, "%p", pointer);
  return out;
}

std::mutex live_mutex;
std::map<ncclComm*, std::shared_ptr<ncclComm>> live;  // made and neither destroyed nor aborted

std::shared_ptr<ncclComm> find_live(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(live_mutex);
  auto it = live.find(comm);
  return it == live.end() ? nullptr : it->second;
}

std::shared_ptr<ncclComm> take_live(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(live_mutex);
  auto it = live.find(comm);
  if (it == live.end()) return nullptr;
  std::shared_ptr<ncclComm> out = std::move(it->second);
  live.erase(it);
  return out;
}

// The calling thread's groups (NCCL's group state is per thread).
struct Group {
  int depth = 0;
  std::vector<Call> calls;
  ncclResult_t error = ncclSuccess;  // the first refused call's
};
thread_local Group group;

size_t size_of(ncclDataType_t type) {
  switch (type) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
    default: return 0;
  }
}

const char* name_of(ncclDataType_t type) {
  switch (type) {
    case ncclInt8: return "ncclInt8";
    case ncclUint8: return "ncclUint8";
    case ncclInt32: return "ncclInt32";
    case ncclUint32: return "ncclUint32";
    case ncclInt64: return "ncclInt64";
    case ncclUint64: return "ncclUint64";
    case ncclFloat16: return "ncclFloat16";
    case ncclFloat32: return "ncclFloat32";
    case ncclFloat64: return "ncclFloat64";
    case ncclBfloat16: return "ncclBfloat16";
    case ncclFloat8e4m3: return "ncclFloat8e4m3";
    case ncclFloat8e5m2: return "ncclFloat8e5m2";
    default: return "an unknown ncclDataType_t";
  }
}

// Whether this rank's call reads its sendbuff, and writes its recvbuff.
bool reads_sendbuff(const Call& c, int rank) {
  return c.kind == kAllReduce || c.kind == kReduce || c.kind == kSend || (c.kind == kBroadcast && rank == c.root);
}
bool writes_recvbuff(const Call& c, int rank) {
  return c.kind == kAllReduce || c.kind == kRecv || c.kind == kBroadcast || (c.kind == kReduce && rank == c.root);
}

// Header, then values: a message of a unit, naming the call it belongs to.
struct Header {
  int32_t kind, type, root, sender;
  uint64_t count, number;
};

// Refuses what NCCL's ArgsCheck refuses, and buffers outside device memory.
ncclResult_t check(const Call& c, ncclComm_t handle, ncclRedOp_t op) {
  auto refuse = [&](ncclResult_t result, const std::string& why) {
    return fail(result, std::string(kCallNames[c.kind]) + ": " + why);
  };
  if (!c.comm)
    return refuse(ncclInvalidArgument, handle ? "comm " + text(handle) + " is no live communicator (destroyed, aborted or never made)"
                                              : "comm is NULL");
  const ncclComm& comm = *c.comm;
  const size_t size = size_of(c.type);
  if (size == 0) return refuse(ncclInvalidArgument, "datatype " + std::to_string(int(c.type)) + " is no ncclDataType_t");
  if (c.kind == kAllReduce || c.kind == kReduce) {
    if (op < 0 || op >= ncclNumOps) return refuse(ncclInvalidArgument, "op " + std::to_string(int(op)) + " is no ncclRedOp_t");
    if (op != ncclSum) return refuse(ncclInvalidArgument, "op " + std::to_string(int(op)) + ": only ncclSum is emulated");
    if (c.type != ncclFloat32 && c.type != ncclFloat64 && c.type != ncclBfloat16)
      return refuse(ncclInvalidArgument, std::string("ncclSum of ") + name_of(c.type) +
                                             " is not emulated (ncclFloat32, ncclFloat64 and ncclBfloat16 are)");
  }
  if (c.kind != kAllReduce && (c.root < 0 || c.root >= comm.nranks))
    return refuse(ncclInvalidArgument, std::string(c.kind == kSend || c.kind == kRecv ? "peer " : "root ") +
                                           std::to_string(c.root) + " is no rank of this " +
                                           std::to_string(comm.nranks) + "-rank communicator");
  if (!emu::stream_is_valid(c.stream))
    return refuse(ncclUnhandledCudaError, "stream " + text(c.stream) + " was destroyed (cudaErrorInvalidResourceHandle)");
  if (c.count > SIZE_MAX / size) return refuse(ncclInvalidArgument, "count " + std::to_string(c.count) + " overflows");
  const size_t bytes = c.count * size;
  if (c.count == 0) return ncclSuccess;
  const bool reads = reads_sendbuff(c, comm.rank), writes = writes_recvbuff(c, comm.rank);
  if (reads && !emu::is_device_memory(c.sendbuff, bytes))
    return refuse(ncclInvalidArgument, "sendbuff " + text(c.sendbuff) + ": its " + std::to_string(bytes) +
                                           " bytes are not inside one device allocation");
  if (writes && !emu::is_device_memory(c.recvbuff, bytes))
    return refuse(ncclInvalidArgument, "recvbuff " + text(c.recvbuff) + ": its " + std::to_string(bytes) +
                                           " bytes are not inside one device allocation");
  const auto* send = static_cast<const unsigned char*>(c.sendbuff);
  const auto* receive = static_cast<const unsigned char*>(c.recvbuff);
  if (reads && writes && send != receive && send < receive + bytes && receive < send + bytes)
    return refuse(ncclInvalidArgument, "sendbuff " + text(send) + " and recvbuff " + text(receive) +
                                           " overlap but differ: a call is in place only when they are equal");
  if (comm.nranks > 1 && bytes > size_t(INT32_MAX) - sizeof(Header))
    return refuse(ncclInvalidUsage, std::to_string(bytes) + " bytes: the emulation sends at most 2 GiB in one message");
  return ncclSuccess;
}

// ---- a unit on the device thread ------------------------------------------------------

// A call's part of a unit: its own message (header, then the values it reads
// when the unit starts) and the message from each rank it hears from.
struct Part {
  Call* call;
  std::vector<unsigned char> own;
  std::vector<std::vector<unsigned char>> from;
};

Header header_of(const Call& c, int sender) {
  return {c.kind, int32_t(c.type), c.root, sender, uint64_t(c.count), c.number};
}
// The header a message from `peer` must carry: a receive hears the peer's send to this rank.
Header expected_from(const Call& c, int peer) {
  if (c.kind == kRecv) return {kSend, int32_t(c.type), c.comm->rank, peer, uint64_t(c.count), c.number};
  return header_of(c, peer);
}

std::string describe(const Header& h) {
  if (h.kind < kAllReduce || h.kind > kRecv) return "a message of no NCCL call";
  std::string out = std::string(kCallNames[h.kind]) + " of " + std::to_string(h.count) + " " +
                    name_of(ncclDataType_t(h.type));
  if (h.kind == kReduce) out += " to root " + std::to_string(h.root);
  if (h.kind == kBroadcast) out += " from root " + std::to_string(h.root);
  if (h.kind == kSend) return out + " to rank " + std::to_string(h.root) + " (its send #" + std::to_string(h.number) + " there)";
  return out + " (collective #" + std::to_string(h.number) + ")";
}

[[noreturn]] void stop_on_mismatch(const std::string& what) {
  emu::fatal("emulated NCCL: " + what + ": the ranks' NCCL calls differ (NCCL would hang or mix them up)");
}

// Stops unless `message` is what `c` waits for from `peer`.
void check_arrived(const Call& c, int peer, const std::vector<unsigned char>& message, size_t bytes_arrived) {
  const Header expected = expected_from(c, peer);
  Header arrived{};
  if (bytes_arrived >= sizeof arrived) std::memcpy(&arrived, message.data(), sizeof arrived);
  if (bytes_arrived != message.size() || std::memcmp(&arrived, &expected, sizeof arrived) != 0)
    stop_on_mismatch("rank " + std::to_string(peer) + " sent " +
                     (bytes_arrived >= sizeof arrived ? describe(arrived) : std::to_string(bytes_arrived) + " bytes") +
                     " where rank " + std::to_string(c.comm->rank) + " waits for " + describe(expected));
}

const unsigned char* values_of(const std::vector<unsigned char>& message) { return message.data() + sizeof(Header); }

template <typename T, typename Add>
void add_in_rank_order(const std::vector<const unsigned char*>& values, void* out, size_t count, Add add) {
  T* sums = static_cast<T*>(out);
  for (size_t i = 0; i < count; i++) {
    T sum = reinterpret_cast<const T*>(values[0])[i];
    for (size_t r = 1; r < values.size(); r++) sum = add(sum, reinterpret_cast<const T*>(values[r])[i]);
    sums[i] = sum;
  }
}

void sum_into(const std::vector<const unsigned char*>& values, void* out, size_t count, ncclDataType_t type) {
  switch (type) {
    case ncclFloat32: return add_in_rank_order<float>(values, out, count, [](float a, float b) { return a + b; });
    case ncclFloat64: return add_in_rank_order<double>(values, out, count, [](double a, double b) { return a + b; });
    case ncclBfloat16:
      return add_in_rank_order<__nv_bfloat16>(values, out, count, [](__nv_bfloat16 a, __nv_bfloat16 b) {
        return __float2bfloat16_rn(__bfloat162float(a) + __bfloat162float(b));
      });
    default: emu::fatal(std::string("emulated NCCL: a sum of ") + name_of(type));  // refused when called
  }
}

// The ranks a call hears from.
std::vector<int> hears_from(const Call& c) {
  const int me = c.comm->rank, n = c.comm->nranks;
  std::vector<int> out;
  if (c.kind == kRecv || (c.kind == kBroadcast && me != c.root)) out.push_back(c.root);
  if (c.kind == kAllReduce || (c.kind == kReduce && me == c.root))
    for (int r = 0; r < n; r++)
      if (r != me) out.push_back(r);
  return out;
}

// Writes a call's result from what it read and heard.
void finish(const Part& p) {
  const Call& c = *p.call;
  const int me = c.comm->rank;
  const size_t bytes = c.count * size_of(c.type);
  if (c.kind == kAllReduce || (c.kind == kReduce && me == c.root)) {
    std::vector<const unsigned char*> values;
    for (int r = 0; r < c.comm->nranks; r++) values.push_back(values_of(r == me ? p.own : p.from[size_t(r)]));
    sum_into(values, c.recvbuff, c.count, c.type);
  }
  if (c.kind == kBroadcast) std::memcpy(c.recvbuff, values_of(me == c.root ? p.own : p.from[size_t(c.root)]), bytes);
  if (c.kind == kRecv) std::memcpy(c.recvbuff, values_of(p.from[size_t(c.root)]), bytes);
}

#ifdef LLMDION_EMU_WITH_MPI
constexpr int kCollectiveTag = 1, kPointToPointTag = 2;

// The ranks a call sends its own message to.
std::vector<int> sends_to(const Call& c) {
  const int me = c.comm->rank, n = c.comm->nranks;
  std::vector<int> out;
  if (c.kind == kSend) out.push_back(c.root);
  if (c.kind == kReduce && me != c.root) out.push_back(c.root);
  if (c.kind == kAllReduce || (c.kind == kBroadcast && me == c.root))
    for (int r = 0; r < n; r++)
      if (r != me) out.push_back(r);
  return out;
}

bool any_aborted(const std::vector<ncclComm*>& comms) {
  for (ncclComm* comm : comms) {
    std::lock_guard<std::mutex> lock(comm->mutex);
    if (comm->aborted) return true;
  }
  return false;
}

std::string mpi_text(int code) {
  char out[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, out, &length);
  return std::string(out, size_t(length));
}

// One MPI message of a unit: which part, which peer, and whether it arrives here.
struct Transfer {
  size_t part;
  int peer;
  bool incoming;
};

// Posts every message of the unit, then waits for them, checking each one that
// arrives; false when a communicator of the unit was aborted first, leaving
// the buffers to MPI.
bool exchange_over_mpi(std::vector<Part>& parts, const std::vector<ncclComm*>& comms) {
  std::vector<Transfer> transfers;
  std::vector<MPI_Request> requests;
  auto posted = [](int code, const char* call) {
    if (code != MPI_SUCCESS) emu::fatal(std::string("emulated NCCL: ") + call + ": " + mpi_text(code));
  };
  for (size_t i = 0; i < parts.size(); i++) {
    const Call& c = *parts[i].call;
    if (c.count == 0) continue;
    const int tag = c.kind == kSend || c.kind == kRecv ? kPointToPointTag : kCollectiveTag;
    for (int peer : hears_from(c)) {
      if (peer == c.comm->rank) continue;
      std::vector<unsigned char>& message = parts[i].from[size_t(peer)];
      requests.push_back(MPI_REQUEST_NULL);
      transfers.push_back({i, peer, true});
      posted(MPI_Irecv(message.data(), int(message.size()), MPI_BYTE, peer, tag, c.comm->mpi, &requests.back()),
             "MPI_Irecv");
    }
    for (int peer : sends_to(c)) {
      if (peer == c.comm->rank) continue;
      std::vector<unsigned char>& message = parts[i].own;
      requests.push_back(MPI_REQUEST_NULL);
      transfers.push_back({i, peer, false});
      posted(MPI_Isend(message.data(), int(message.size()), MPI_BYTE, peer, tag, c.comm->mpi, &requests.back()),
             "MPI_Isend");
    }
  }
  if (requests.empty()) return true;  // all on this rank (a communicator of one needs no MPI)
  std::vector<int> indices(requests.size());
  std::vector<MPI_Status> statuses(requests.size());
  for (int idle = 0;;) {
    int completed = 0;
    const int code = MPI_Testsome(int(requests.size()), requests.data(), &completed, indices.data(), statuses.data());
    if (code != MPI_SUCCESS && code != MPI_ERR_IN_STATUS) emu::fatal("emulated NCCL: MPI_Testsome: " + mpi_text(code));
    if (completed == MPI_UNDEFINED) return true;  // no request left
    for (int k = 0; k < completed; k++) {
      const Transfer& t = transfers[size_t(indices[size_t(k)])];
      const Part& p = parts[t.part];
      const MPI_Status& status = statuses[size_t(k)];
      if (code == MPI_ERR_IN_STATUS && status.MPI_ERROR == MPI_ERR_TRUNCATE)
        stop_on_mismatch("rank " + std::to_string(t.peer) + " sent more than the " +
                         std::to_string(p.from[size_t(t.peer)].size()) + " bytes of rank " +
                         std::to_string(p.call->comm->rank) + "'s " + describe(expected_from(*p.call, t.peer)));
      if (code == MPI_ERR_IN_STATUS && status.MPI_ERROR != MPI_SUCCESS)
        emu::fatal("emulated NCCL: a message " + std::string(t.incoming ? "from" : "to") + " rank " +
                   std::to_string(t.peer) + ": " + mpi_text(status.MPI_ERROR));
      if (!t.incoming) continue;
      int bytes = 0;
      MPI_Get_count(&status, MPI_BYTE, &bytes);
      check_arrived(*p.call, t.peer, p.from[size_t(t.peer)], size_t(bytes));
    }
    if (completed > 0) {
      idle = 0;
      continue;
    }
    if (any_aborted(comms)) {
      for (size_t i = 0; i < requests.size(); i++) {
        if (requests[i] == MPI_REQUEST_NULL) continue;
        if (transfers[i].incoming) MPI_Cancel(&requests[i]);
        MPI_Request_free(&requests[i]);
      }
      return false;
    }
    // Other ranks' threads may need this core (several ranks share a machine).
    if (++idle < 1000) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}
#endif

// Runs one unit: reads the inputs, moves the messages, writes the results.
void run_unit(std::vector<Call>& calls) {
  std::vector<ncclComm*> comms;
  for (const Call& c : calls)
    if (std::find(comms.begin(), comms.end(), c.comm.get()) == comms.end()) comms.push_back(c.comm.get());
  bool go = true;
  for (ncclComm* comm : comms) {
    std::lock_guard<std::mutex> lock(comm->mutex);
    comm->running = true;
    go = go && !comm->aborted;
  }

  std::vector<Part> parts(calls.size());
  std::vector<size_t> self_sends, self_receives;  // parts whose peer is their own rank
  for (size_t i = 0; go && i < calls.size(); i++) {
    Call& c = calls[i];
    Part& p = parts[i];
    p.call = &c;
    p.from.resize(size_t(c.comm->nranks));
    if (c.count == 0) continue;
    const size_t bytes = c.count * size_of(c.type);
    if (reads_sendbuff(c, c.comm->rank)) {
      const Header header = header_of(c, c.comm->rank);
      p.own.resize(sizeof header + bytes);
      std::memcpy(p.own.data(), &header, sizeof header);
      std::memcpy(p.own.data() + sizeof header, c.sendbuff, bytes);
    }
    for (int peer : hears_from(c)) p.from[size_t(peer)].resize(sizeof(Header) + bytes);
    if (c.kind == kSend && c.root == c.comm->rank) self_sends.push_back(i);
    if (c.kind == kRecv && c.root == c.comm->rank) self_receives.push_back(i);
  }
  // A rank's sends to itself meet its receives from itself in the same unit, in order.
  if (go && self_sends.size() != self_receives.size()) {
    const Call& c = calls[self_sends.size() > self_receives.size() ? self_sends.back() : self_receives.back()];
    emu::fatal("emulated NCCL: rank " + std::to_string(c.comm->rank) + " has " + std::to_string(self_sends.size()) +
               " ncclSend to itself and " + std::to_string(self_receives.size()) +
               " ncclRecv from itself in one group: each needs its twin there (NCCL would wait forever)");
  }
  for (size_t k = 0; go && k < self_sends.size(); k++) {
    Part& receiver = parts[self_receives[k]];
    const std::vector<unsigned char>& message = parts[self_sends[k]].own;
    std::vector<unsigned char>& into = receiver.from[size_t(receiver.call->root)];
    std::copy_n(message.begin(), std::min(message.size(), into.size()), into.begin());
    check_arrived(*receiver.call, receiver.call->root, into, message.size());
  }
#ifdef LLMDION_EMU_WITH_MPI
  // Aborted while waiting: MPI may still read or write the unit's buffers, which are left to it.
  if (go && !exchange_over_mpi(parts, comms)) {
    new std::vector<Part>(std::move(parts));
    go = false;
  }
#endif
  for (size_t i = 0; go && i < parts.size(); i++)
    if (parts[i].call->count > 0) finish(parts[i]);

  for (ncclComm* comm : comms) {
    {
      std::lock_guard<std::mutex> lock(comm->mutex);
      comm->running = false;
      comm->units_run++;
    }
    comm->changed.notify_all();
  }
}

// `waiting` waits for the work queued so far on `on`.
void join(cudaStream_t waiting, cudaStream_t on) {
  cudaEvent_t event;
  cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
  cudaEventRecord(event, on);
  cudaStreamWaitEvent(waiting, event, 0);
  cudaEventDestroy(event);
}

// Queues checked calls (one, or an outermost group's) as one unit on the first
// call's stream, after its communicators' earlier units and the work queued so
// far on the other calls' streams, which then wait for it.
void queue_unit(std::vector<Call> calls) {
  const cudaStream_t stream = calls[0].stream;
  std::vector<cudaStream_t> others;
  std::vector<ncclComm*> comms;
  for (Call& c : calls) {
    if (c.stream != stream && std::find(others.begin(), others.end(), c.stream) == others.end())
      others.push_back(c.stream);
    if (std::find(comms.begin(), comms.end(), c.comm.get()) == comms.end()) comms.push_back(c.comm.get());
    ncclComm& comm = *c.comm;
    c.number = c.kind == kSend   ? comm.sends[size_t(c.root)]++
               : c.kind == kRecv ? comm.receives[size_t(c.root)]++
                                 : comm.collectives++;
  }
  for (cudaStream_t other : others) join(stream, other);
  for (ncclComm* comm : comms) {
    cudaStreamWaitEvent(stream, comm->last_unit, 0);
    std::lock_guard<std::mutex> lock(comm->mutex);
    comm->units_queued++;
  }
  const char* what = calls.size() == 1 ? kCallNames[calls[0].kind] : "ncclGroupEnd";
  auto unit = std::make_shared<std::vector<Call>>(std::move(calls));
  emu::enqueue(stream, what, [unit] { run_unit(*unit); });
  for (ncclComm* comm : comms) cudaEventRecord(comm->last_unit, stream);
  for (cudaStream_t other : others) join(other, stream);
}

// Checks a call, then queues it, or keeps it for the open group's end.
ncclResult_t submit(Call call, ncclComm_t handle, ncclRedOp_t op = ncclSum) {
  call.comm = find_live(handle);
  const ncclResult_t result = check(call, handle, op);
  if (group.depth > 0) {
    if (result == ncclSuccess) group.calls.push_back(std::move(call));
    else if (group.error == ncclSuccess) group.error = result;
    return result;
  }
  if (result == ncclSuccess) queue_unit({std::move(call)});
  return result;
}

#ifdef LLMDION_EMU_WITH_MPI
// The id as an MPI color: a hash of its bytes, non-negative.
int color_of(const ncclUniqueId& id) {
  uint64_t hash = 14695981039346656037ull;  // FNV-1a
  for (char byte : id.internal) hash = (hash ^ uint64_t(uint8_t(byte))) * 1099511628211ull;
  return int(hash & 0x7fffffff);
}

// Every MPI rank calls this together (MPI_Comm_split is collective over
// MPI_COMM_WORLD): the processes that pass one id form its clique, in NCCL rank order.
ncclResult_t join_clique(ncclComm& comm, const ncclUniqueId& id) {
  const std::string ranks = std::to_string(comm.nranks) + " ranks";
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized)
    return fail(ncclInvalidUsage, "ncclCommInitRank: " + ranks + " meet over MPI, which this process has not " +
                                      "initialized (start it under mpirun)");
  int level = 0;
  MPI_Query_thread(&level);
  if (level != MPI_THREAD_MULTIPLE)
    return fail(ncclInvalidUsage, "ncclCommInitRank: MPI runs at thread level " + std::to_string(level) +
                                      ", but the emulated NCCL calls MPI from the device thread while the host "
                                      "thread calls it too: initialize MPI with MPI_Init_thread(MPI_THREAD_MULTIPLE)");
  MPI_Comm clique = MPI_COMM_NULL;
  if (int code = MPI_Comm_split(MPI_COMM_WORLD, color_of(id), comm.rank, &clique); code != MPI_SUCCESS)
    return fail(ncclSystemError, "ncclCommInitRank: MPI_Comm_split: " + mpi_text(code));
  MPI_Comm_set_errhandler(clique, MPI_ERRORS_RETURN);
  int size = 0;
  MPI_Comm_size(clique, &size);
  const int mine[2] = {comm.nranks, comm.rank};
  std::vector<int> all(2 * size_t(size));
  MPI_Allgather(mine, 2, MPI_INT, all.data(), 2, MPI_INT, clique);
  std::string problem;
  if (size != comm.nranks)
    problem = std::to_string(size) + " processes passed this unique id, but nranks is " + std::to_string(comm.nranks);
  for (int i = 0; problem.empty() && i < size; i++) {
    if (all[2 * size_t(i) + 1] != i)
      problem = "rank " + std::to_string(all[2 * size_t(i) + 1]) + " is given by two processes";
    else if (all[2 * size_t(i)] != comm.nranks)
      problem = "rank " + std::to_string(i) + " passed nranks " + std::to_string(all[2 * size_t(i)]) + ", this one " +
                std::to_string(comm.nranks);
  }
  if (!problem.empty()) {
    MPI_Comm_free(&clique);
    return fail(ncclInvalidArgument, "ncclCommInitRank: " + problem);
  }
  comm.mpi = clique;
  return ncclSuccess;
}

void free_clique(ncclComm& comm) {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm.mpi != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm.mpi);
}
#else
void free_clique(ncclComm&) {}
#endif

constexpr char kIdMagic[] = "llm.dion emulated NCCL id";

}  // namespace

// ---- the API ----------------------------------------------------------------------------

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error";
    case ncclSystemError: return "unhandled system error";
    case ncclInternalError: return "internal error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

// Not cleared by reading it; `comm` is unused (NCCL's API reference).
const char* ncclGetLastError(ncclComm_t) { return last_error; }

// An id no other call makes: this process, a count and the time, behind a mark that says what made it.
ncclResult_t ncclGetUniqueId(ncclUniqueId* unique_id) {
  if (!unique_id) return fail(ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
  static std::atomic<uint64_t> made{0};
  const uint64_t words[3] = {uint64_t(getpid()), made++,
                             uint64_t(std::chrono::steady_clock::now().time_since_epoch().count())};
  *unique_id = ncclUniqueId{};
  std::memcpy(unique_id->internal, kIdMagic, sizeof kIdMagic);
  std::memcpy(unique_id->internal + sizeof kIdMagic, words, sizeof words);
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId comm_id, int rank) {
  if (!comm) return fail(ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
  if (nranks < 1) return fail(ncclInvalidArgument, "ncclCommInitRank: nranks " + std::to_string(nranks));
  if (rank < 0 || rank >= nranks)
    return fail(ncclInvalidArgument, "ncclCommInitRank: rank " + std::to_string(rank) + " is not in [0, " +
                                         std::to_string(nranks) + ")");
  if (std::memcmp(comm_id.internal, kIdMagic, sizeof kIdMagic) != 0)
    return fail(ncclInvalidArgument, "ncclCommInitRank: commId was not made by ncclGetUniqueId");
  auto made = std::make_shared<ncclComm>();
  made->rank = rank;
  made->nranks = nranks;
  made->sends.resize(size_t(nranks));
  made->receives.resize(size_t(nranks));
  if (nranks > 1) {
#ifdef LLMDION_EMU_WITH_MPI
    if (ncclResult_t result = join_clique(*made, comm_id); result != ncclSuccess) return result;
#else
    return fail(ncclInvalidUsage, "ncclCommInitRank: " + std::to_string(nranks) +
                                      " ranks meet over MPI, and this build has none (LLMDION_MPI=OFF)");
#endif
  }
  cudaEventCreateWithFlags(&made->last_unit, cudaEventDisableTiming);
  std::lock_guard<std::mutex> lock(live_mutex);
  *comm = made.get();
  live[made.get()] = made;
  return ncclSuccess;
}

// Waits for the communicator's queued work to run (as ncclCommFinalize would), then frees it.
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  std::shared_ptr<ncclComm> taken = take_live(comm);
  if (!taken) return fail(ncclInvalidArgument, "ncclCommDestroy: comm " + text(comm) + " is no live communicator");
  {
    std::unique_lock<std::mutex> lock(taken->mutex);
    taken->changed.wait(lock, [&] { return taken->units_run == taken->units_queued; });
  }
  free_clique(*taken);
  cudaEventDestroy(taken->last_unit);
  return ncclSuccess;
}

// Stops the unit running now (it may wait for a rank that will never come) and
// every queued one, then frees the communicator; it waits for no other rank.
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  std::shared_ptr<ncclComm> taken = take_live(comm);
  if (!taken) return fail(ncclInvalidArgument, "ncclCommAbort: comm " + text(comm) + " is no live communicator");
  {
    std::unique_lock<std::mutex> lock(taken->mutex);
    taken->aborted = true;
    taken->changed.wait(lock, [&] { return !taken->running; });
  }
  free_clique(*taken);
  cudaEventDestroy(taken->last_unit);
  return ncclSuccess;
}

ncclResult_t ncclGroupStart() {
  group.depth++;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd() {
  if (group.depth == 0) return fail(ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart is open");
  if (--group.depth > 0) return ncclSuccess;
  std::vector<Call> calls = std::move(group.calls);
  group.calls.clear();
  const ncclResult_t error = group.error;
  group.error = ncclSuccess;
  if (error != ncclSuccess) return error;
  if (!calls.empty()) queue_unit(std::move(calls));
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  return submit({kAllReduce, sendbuff, recvbuff, count, datatype, -1, nullptr, stream}, comm, op);
}

ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                        int root, ncclComm_t comm, cudaStream_t stream) {
  return submit({kReduce, sendbuff, recvbuff, count, datatype, root, nullptr, stream}, comm, op);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  return submit({kBroadcast, sendbuff, recvbuff, count, datatype, root, nullptr, stream}, comm);
}

ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return submit({kSend, sendbuff, nullptr, count, datatype, peer, nullptr, stream}, comm);
}

ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return submit({kRecv, nullptr, recvbuff, count, datatype, peer, nullptr, stream}, comm);
}
