#include "context.h"

#include <cstdint>
#include <cstring>

namespace emu {

#if defined(__x86_64__)

// System V AMD64: rbx, rbp, r12-r15, the MXCSR control bits and the x87
// control word are the callee's to keep; the rest a call may clobber anyway.
extern "C" void llmdion_emu_switch_stack(void** save_stack_pointer, void* load_stack_pointer);
asm(R"(
  .text
  .globl llmdion_emu_switch_stack
  .type llmdion_emu_switch_stack, @function
llmdion_emu_switch_stack:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size llmdion_emu_switch_stack, .-llmdion_emu_switch_stack
)");

// The stack as llmdion_emu_switch_stack leaves a context it saved: control
// words, six registers, and the return address, here `entry`; above it an
// empty slot, so that `entry` starts with the stack as a call leaves it
// (16-byte aligned before the call).
void make_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  void** top = reinterpret_cast<void**>(reinterpret_cast<uintptr_t>(stack + bytes) & ~uintptr_t(15));
  void** sp = top;
  *--sp = nullptr;
  *--sp = reinterpret_cast<void*>(entry);
  for (int i = 0; i < 6; i++) *--sp = nullptr;
  --sp;
  uint32_t mxcsr;
  uint16_t fpu_control;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpu_control));
  std::memcpy(sp, &mxcsr, 4);
  std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpu_control, 2);
  context.stack_pointer = sp;
}

void switch_context(Context& from, Context& to) { llmdion_emu_switch_stack(&from.stack_pointer, to.stack_pointer); }

#else

void make_context(Context& context, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = bytes;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

void switch_context(Context& from, Context& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace emu
