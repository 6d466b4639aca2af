/* kernel_base.c -- net.c for the instruction-set baseline of the build target. */
#define H2O_SYM(name) name##_base
#include "net.c"
