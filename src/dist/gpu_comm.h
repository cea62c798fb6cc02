// The Comm of cuda runs over several ranks (nccl_comm.cpp): each collective
// goes where its buffers live. GPU buffers go through NCCL, on the default
// stream (started collectives on a side stream of their own); host buffers (a
// loss to sum, a config to compare) go to the host Comm it wraps. The two
// buffers of one call must be on one side (else std::invalid_argument), and a
// host all_to_all needs values on every rank. It exists in builds with CUDA and
// NCCL (LLMDION_WITH_NCCL; over several ranks MPI too, which the host Comm
// needs, alone the serial Comm); elsewhere gpu_comm_available() is false and a
// cuda run is one process.
#pragma once

#include <memory>

#include "dist/comm.h"

namespace llmdion {

#ifdef LLMDION_WITH_NCCL

constexpr bool gpu_comm_available() { return true; }

// Picks this rank's GPU (its rank on the machine, from the launcher's
// OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or SLURM_LOCALID, else its
// rank, modulo the GPU count) and makes it current, then joins every rank's
// NCCL communicator.
// Call it before anything else touches CUDA, so that no rank allocates on
// another rank's GPU. Every rank calls it together.
//
// `host` (make_comm's) must outlive the returned Comm, which borrows it. On an
// error this throws on the rank that failed and leaves `host` usable, so the
// caller can end every rank with host.abort().
std::unique_ptr<Comm> make_gpu_comm(Comm& host);

#else

constexpr bool gpu_comm_available() { return false; }

#endif

}  // namespace llmdion
