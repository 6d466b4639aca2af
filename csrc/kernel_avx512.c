/* kernel_avx512.c -- net.c for x86-64-v4 (AVX-512 F/BW/CD/DQ/VL), chosen at run time when
 * the CPU has it.  Empty on other architectures. */
#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx2,fma,bmi,bmi2,lzcnt,movbe,f16c,avx512f,avx512bw,avx512cd,avx512dq,avx512vl")
#define H2O_SYM(name) name##_avx512
#include "net.c"
#endif
