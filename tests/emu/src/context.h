// Switching between fibers: the callee-saved registers and the stack pointer,
// nothing else. glibc's swapcontext also saves and restores the signal mask,
// two system calls a switch, which made a kernel's threads cost more in the
// kernel than in the kernel's code. On x86-64 a switch here is a few pushes
// and pops (elsewhere swapcontext remains).
#pragma once

#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace emu {

struct Context {
#if defined(__x86_64__)
  void* stack_pointer = nullptr;
#else
  ucontext_t context{};
#endif
};

// Prepares `context` to start `entry` (which never returns) on the stack
// [stack, stack + bytes) at its first switch_context to it.
void make_context(Context& context, char* stack, size_t bytes, void (*entry)());

// Saves the running context into `from` and resumes `to`.
void switch_context(Context& from, Context& to);

}  // namespace emu
