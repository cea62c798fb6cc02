# The emulated build's one source translation, run as
#   cmake -DIN=src/model/cuda/x.cu -DOUT=build/emu_src/model/cuda/x.cu.cpp -P translate.cmake
# Two CUDA constructs no host compiler parses become calls of the layer:
#   kernel<<<grid, block, shared, stream>>>(args)
#     -> ::emu::launch("kernel", [](auto&&... a) { kernel(a...); },
#                      [](auto take) -> decltype(take(kernel)) { return take(kernel); },
#                      grid, block, shared, stream)(args)
#   (include/emu/kernel.h says why two lambdas)
#   extern __shared__ __align__(16) T name[];
#     -> T* const name = ::emu::dynamic_shared_memory<T>();
# Everything else is the file as written; a #line directive keeps the
# compiler's messages, __FILE__ and __LINE__ on the original.
file(READ "${IN}" text)
set(rvalue "&&")  # (CMake has no escape for & in a replacement)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_:]*(<[^<>()]*>)?)<<<([^>]*)>>>"
       "::emu::launch(\"\\1\", [](auto${rvalue}... a) { \\1(a...); }, [](auto take) -> decltype(take(\\1)) { return take(\\1); }, \\3)"
       text "${text}")
string(REGEX REPLACE
       "extern[ ]+__shared__[ ]+(__align__\\([0-9]+\\)[ ]+)?([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_])[ ]+([A-Za-z_][A-Za-z0-9_]*)\\[\\]"
       "\\2* const \\3 = ::emu::dynamic_shared_memory<\\2>()" text "${text}")
if(text MATCHES "<<<")
  message(FATAL_ERROR "${IN}: a kernel launch the translation does not recognise (kernel<<<...>>> on one line)")
endif()
if(text MATCHES "extern[ ]+__shared__")
  message(FATAL_ERROR "${IN}: an extern __shared__ declaration the translation does not recognise")
endif()
file(WRITE "${OUT}.partial" "#line 1 \"${IN}\"\n${text}")
file(RENAME "${OUT}.partial" "${OUT}")
