#ifndef PRISM_FUZZER_DRIVER_H
#define PRISM_FUZZER_DRIVER_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

/// libFuzzer's entry point for a program that has its own main (compiler-rt FuzzerInterface.h):
/// parses libFuzzer's flags from argv and runs `callback` on each input. Linked by
/// -sanitize=fuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// An anonymous in-memory file (glibc's memfd_create is not visible to Swift).
static inline int prism_fuzz_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

#endif
