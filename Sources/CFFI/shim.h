// libffi's type descriptors are mutable globals; Swift 6 refuses `&ffi_type_pointer` as shared
// mutable state, so hand out their addresses from C.
#ifndef PRISM_CFFI_SHIM_H
#define PRISM_CFFI_SHIM_H
#include <ffi.h>
static inline ffi_type *prism_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *prism_ffi_type_pointer(void) { return &ffi_type_pointer; }
static inline ffi_type *prism_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *prism_ffi_type_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *prism_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *prism_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *prism_ffi_type_size_t(void) { return sizeof(size_t) == 8 ? &ffi_type_uint64 : &ffi_type_uint32; }
#endif
