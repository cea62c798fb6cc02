// What the fibers tell AddressSanitizer and ThreadSanitizer, and nothing
// without them. Under ThreadSanitizer every CUDA thread is a fiber of its own,
// switched to without synchronization, so two threads that touch one address
// with no barrier, warp collective or block boundary between them are a race
// it reports: the racecheck of compute-sanitizer, on the host.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_THREAD__)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* address);
void __tsan_release(void* address);
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
#endif
#if defined(__SANITIZE_ADDRESS__)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
}
#endif

namespace emu::sanitizers {

#if defined(__SANITIZE_THREAD__)
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* create_fiber() { return __tsan_create_fiber(0); }
inline void switch_to_fiber(void* fiber) { __tsan_switch_to_fiber(fiber, 1 /* no synchronization */); }
// Everything before release(a) in one thread happens before everything after a later acquire(a) in another.
inline void release(void* address) { __tsan_release(address); }
inline void acquire(void* address) { __tsan_acquire(address); }
// The layer's own bookkeeping, which every fiber touches, is not the kernel's to race on.
struct IgnoreAccesses {
  IgnoreAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~IgnoreAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
};
#else
inline void* current_fiber() { return nullptr; }
inline void* create_fiber() { return nullptr; }
inline void switch_to_fiber(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
struct IgnoreAccesses {
  IgnoreAccesses() {}
};
#endif

#if defined(__SANITIZE_ADDRESS__)
inline void start_switch(void** fake_stack_save, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
}
inline void finish_switch(void* fake_stack_save, const void** bottom_old, size_t* size_old) {
  __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
}
#else
inline void start_switch(void**, const void*, size_t) {}
inline void finish_switch(void*, const void**, size_t*) {}
#endif

}  // namespace emu::sanitizers
