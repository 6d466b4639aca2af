/* kernel_avx2.c -- net.c for x86-64-v3 (AVX2 + FMA), chosen at run time when the CPU has it.
 * Empty on other architectures. */
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma,bmi,bmi2,lzcnt,movbe,f16c")
#define H2O_SYM(name) name##_avx2
#include "net.c"
#endif
