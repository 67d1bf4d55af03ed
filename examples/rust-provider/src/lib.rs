//! A Prism provider plugin in Rust, std only: the provider component `rust-example`, which
//! forwards OpenAI-format requests to any OpenAI-compatible upstream. It is the Rust counterpart of
//! `examples/plugins/c_example_provider.c`; see README.md beside Cargo.toml.
//!
//! - `abi`: `#[repr(C)]` mirrors of `prism_plugin.h`, checked against the header by `cargo test`.
//! - `ffi`: the boundary (views, sinks, host services, the panic barrier, the `extern "C"` table).
//! - `provider`: the translation, in safe Rust.
//! - `json`: a small borrowed-bytes JSON scanner.
//!
//! The shared object exports one symbol, `prism_plugin_entry_v1` (cdylib exports only
//! `#[no_mangle]` functions).

mod abi;
mod ffi;
mod json;
mod provider;

#[cfg(test)]
mod layout_test;
#[cfg(test)]
mod tests;

use std::ffi::{c_char, c_void};
use std::mem::size_of;

use abi::*;

// ---- The descriptor: plugin-static, never written, valid until exit --------------------------

/// The configuration keys the provider reads (ABI 1.4 `config_keys`), NULL-terminated. With them
/// the gateway can warn about a typo in a `providers.<name>` section that selects `rust-example`.
/// (`base_url` and `api_key` are also gateway keys; `name` and `timeout_ms` are added by the
/// gateway.) A host older than 1.4 does not read this field.
struct KeyList([*const c_char; 3]);
// SAFETY: pointers to static string literals, never written.
unsafe impl Sync for KeyList {}
static CONFIG_KEYS: KeyList = KeyList([c"base_url".as_ptr(), c"api_key".as_ptr(), std::ptr::null()]);

static PROVIDER: prism_provider_v1 = prism_provider_v1 {
    struct_size: size_of::<prism_provider_v1>() as u32,
    instance_new: Some(ffi::instance_new),
    instance_destroy: Some(ffi::instance_destroy),
    exchange_new: Some(ffi::exchange_new),
    exchange_destroy: Some(ffi::exchange_destroy),
    build_request: Some(ffi::build_request),
    translate_response: Some(ffi::translate_response),
    translate_event: Some(ffi::translate_event),
    translate_chunk: None, // SSE only: no raw framing
    finish_stream: Some(ffi::finish_stream),
    translate_error: Some(ffi::translate_error),
    config_keys: &CONFIG_KEYS.0 as *const [*const c_char; 3] as *const *const c_char,
    model_patterns: None,
};

static COMPONENTS: [prism_component; 1] = [prism_component {
    struct_size: size_of::<prism_component>() as u32,
    kind: PRISM_COMPONENT_PROVIDER,
    name: c"rust-example".as_ptr(),
    vtable: &PROVIDER as *const prism_provider_v1 as *const c_void,
}];

static DESCRIPTOR: prism_plugin_descriptor = prism_plugin_descriptor {
    struct_size: size_of::<prism_plugin_descriptor>() as u32,
    abi_major: PRISM_ABI_MAJOR,
    abi_minor: PRISM_ABI_MINOR,
    // Needs nothing newer than 1.0: the key-value and metrics services are looked up with
    // get_service and simply not used when the host does not have them; the 1.4 fields (the
    // error sink's add_header, config_keys) are used only when the host's struct_size covers them.
    // struct_size is this header's sizeof, as for every struct the plugin fills.
    min_host_abi_minor: 0,
    flags: 0,
    id: c"dev.prism.example.rust-provider".as_ptr(),
    version: concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast(),
    components: &COMPONENTS as *const [prism_component; 1] as *const prism_component,
    component_count: COMPONENTS.len() as u32,
    reserved: 0,
};

/// The entry point the host looks up with dlsym. Called once, on the control thread: no I/O, no
/// threads. Refuses a host of another major version.
///
/// # Safety
/// Called by the host with its entry table (or NULL) and a place for the descriptor pointer.
#[no_mangle]
pub unsafe extern "C" fn prism_plugin_entry_v1(
    host: *const prism_host_api,
    out_descriptor: *mut *const prism_plugin_descriptor,
) -> prism_status {
    let mut status = PRISM_ERROR_INTERNAL;
    ffi::guard_void(|| {
        if out_descriptor.is_null() {
            status = PRISM_ERROR_ABI;
            return;
        }
        if read_field!(host, prism_host_api, abi_major) != Some(PRISM_ABI_MAJOR) {
            status = PRISM_ERROR_ABI;
            return;
        }
        out_descriptor.write(&DESCRIPTOR);
        status = PRISM_OK;
    });
    status
}
