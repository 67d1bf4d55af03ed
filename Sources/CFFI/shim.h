// libffi's type descriptors are mutable globals; Swift 6 refuses `&ffi_type_pointer` as shared
// mutable state, so hand out their addresses from C.
#ifndef PRISM_CFFI_SHIM_H
#define PRISM_CFFI_SHIM_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ffi.h>
static inline ffi_type *prism_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *prism_ffi_type_pointer(void) { return &ffi_type_pointer; }
static inline ffi_type *prism_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *prism_ffi_type_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *prism_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *prism_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *prism_ffi_type_size_t(void) { return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32; }

// Plugin loading (the other half of the plugin machinery): a sealed in-memory file to dlopen,
// since glibc's memfd_create and the F_SEAL_* flags are not visible to Swift.
#include <fcntl.h>
#include <sys/mman.h>
static inline int prism_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING); }
static inline int prism_memfd_seal(int fd) {
    return fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
}
#endif
