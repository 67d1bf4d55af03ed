//! The layout test: proves that the hand-written mirrors in `abi.rs` match the C header.
//!
//! 1. From the lists below (every struct with every field, every scalar and function-pointer
//!    typedef, every constant) it writes a C program that includes the real
//!    `prism_plugin.h` and prints `sizeof`, `_Alignof`, `offsetof` and the size of each field, and
//!    each constant's value; it compiles the program with `cc` (`$CC` if set) and runs it.
//! 2. It prints the same lines from Rust (`size_of`, `align_of`, `offset_of!`) and compares.
//! 3. It reads the header text and checks that the lists are complete: every `typedef struct` of
//!    the header is mirrored with the same number of members, and every typedef and `#define`d
//!    constant is mirrored. So a struct, a field or a constant added to the header fails here
//!    until `abi.rs` (and this list) has it; a renamed field fails to compile in the C program.
//!
//! The header is `../../Sources/PrismPluginABI/include/prism_plugin.h` from this crate, or the
//! directory in `PRISM_PLUGIN_INCLUDE_DIR`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::mem::{align_of, offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;

use crate::abi::*;
use crate::field_size;

struct Mirror {
    name: &'static str,
    size: usize,
    align: usize,
    fields: Vec<(&'static str, usize, usize)>, // name, offset, size
}

macro_rules! mirrors {
    ($($ty:ident { $($field:ident),* $(,)? })*) => {
        vec![$(Mirror {
            name: stringify!($ty),
            size: size_of::<$ty>(),
            align: align_of::<$ty>(),
            fields: vec![$((stringify!($field), offset_of!($ty, $field), field_size!($ty, $field))),*],
        }),*]
    };
}

macro_rules! named {
    ($($item:ident),* $(,)?) => { vec![$((stringify!($item), $item)),*] };
}

fn structs() -> Vec<Mirror> {
    mirrors! {
        prism_string { data, length }
        prism_bytes { data, length }
        prism_header { name, value }
        prism_host_api { struct_size, abi_major, abi_minor, log, log_enabled, monotonic_nanoseconds,
                         wall_clock_milliseconds, get_service }
        prism_bytes_sink { struct_size, context, write }
        prism_key_value_service_v1 { struct_size, get, set, remove, increment }
        prism_window_claim { struct_size, reserved, key, window_milliseconds, limit, cost }
        prism_window_usage { struct_size, granted, used, retry_after_milliseconds, reset_milliseconds, slot }
        prism_state_result { struct_size, status, flags, reserved, value, windows, window_count }
        prism_shared_state_service_v1 { struct_size, get, set, remove, window_take, window_adjust,
                                        set_value_capacity }
        prism_client_keys_service_v1 { struct_size, lookup }
        prism_metrics_service_v1 { struct_size, counter_add, gauge_set, histogram_observe }
        prism_http_builder { struct_size, context, set_status, set_method, set_url, set_header, add_header,
                             write_body, clear_body }
        prism_usage { struct_size, reserved, input_tokens, output_tokens, cached_input_tokens,
                      cache_write_tokens, reasoning_tokens }
        prism_stream_sink { struct_size, context, emit_event, report_usage, set_response_model }
        prism_error_sink { struct_size, context, set, add_header }
        prism_request_context { struct_size, context, set_attribute, get_attribute, add_response_header,
                                resume, watch_response }
        prism_request { struct_size, flags, attempt, reserved, api, method, path, headers, header_count,
                        body, model, request_id }
        prism_response { struct_size, status, headers, header_count, body }
        prism_event { struct_size, reserved, event, data, id }
        prism_completion { struct_size, status, provider, model, usage, latency_nanoseconds,
                           first_byte_nanoseconds }
        prism_provider_v1 { struct_size, instance_new, instance_destroy, exchange_new, exchange_destroy,
                            build_request, translate_response, translate_event, translate_chunk,
                            finish_stream, translate_error, config_keys, model_patterns }
        prism_middleware_v1 { struct_size, instance_new, instance_destroy, on_request, on_complete,
                              on_response, on_stream_event, config_keys }
        prism_candidate { struct_size, weight, provider, model, healthy, reserved, in_flight,
                          latency_milliseconds, error_rate }
        prism_router_v1 { struct_size, instance_new, instance_destroy, select, feedback, parallel_attempts,
                          config_keys }
        prism_route { struct_size, flags, method, path, api }
        prism_decode_resume { struct_size, context, resume }
        prism_ingress_v1 { struct_size, instance_new, instance_destroy, routes, exchange_new, exchange_destroy,
                           decode_request, encode_response, encode_event, finish_stream, encode_error,
                           keep_alive, observe_native, config_keys }
        prism_component { struct_size, kind, name, vtable }
        prism_plugin_descriptor { struct_size, abi_major, abi_minor, min_host_abi_minor, flags, id, version,
                                  components, component_count, reserved }
    }
}

/// Scalar typedefs: name, size, signed.
fn scalars() -> Vec<(&'static str, usize, bool)> {
    macro_rules! scalar {
        ($($ty:ident),*) => { vec![$((stringify!($ty), size_of::<$ty>(), <$ty>::MIN != 0)),*] };
    }
    scalar!(prism_status, prism_action, prism_component_kind, prism_framing, prism_log_level)
}

/// Function-pointer typedefs: name, size.
fn function_types() -> Vec<(&'static str, usize)> {
    macro_rules! function_type {
        ($($ty:ident),*) => { vec![$((stringify!($ty), size_of::<$ty>())),*] };
    }
    function_type!(
        prism_state_callback,
        prism_instance_new_function,
        prism_instance_destroy_function,
        prism_plugin_entry_function
    )
}

fn integer_constants() -> Vec<(&'static str, i64)> {
    let mut all: Vec<(&'static str, i64)> = Vec::new();
    all.extend(named!(PRISM_ABI_MAJOR, PRISM_ABI_MINOR).into_iter().map(|(n, v)| (n, i64::from(v))));
    all.extend(
        named!(
            PRISM_OK,
            PRISM_ANSWERED_LOCALLY,
            PRISM_ERROR_INVALID_REQUEST,
            PRISM_ERROR_UNSUPPORTED,
            PRISM_ERROR_UPSTREAM,
            PRISM_ERROR_DENIED,
            PRISM_ERROR_LIMIT,
            PRISM_ERROR_INTERNAL,
            PRISM_ERROR_ABI,
            PRISM_ERROR_UNAVAILABLE,
            PRISM_PENDING,
            PRISM_TRANSLATE_ONLY,
            PRISM_KEY_NOT_FOUND,
            PRISM_CONTINUE,
            PRISM_RESPOND,
            PRISM_PAUSE,
            PRISM_COMPONENT_PROVIDER,
            PRISM_COMPONENT_MIDDLEWARE,
            PRISM_COMPONENT_ROUTER,
            PRISM_COMPONENT_INGRESS,
            PRISM_FRAMING_NONE,
            PRISM_FRAMING_SSE,
            PRISM_FRAMING_NDJSON,
            PRISM_FRAMING_RAW,
            PRISM_LOG_DEBUG,
            PRISM_LOG_INFO,
            PRISM_LOG_WARN,
            PRISM_LOG_ERROR
        )
        .into_iter()
        .map(|(n, v)| (n, i64::from(v))),
    );
    all.extend(
        named!(PRISM_REQUEST_STREAM, PRISM_REQUEST_RETRY, PRISM_STATE_LOCAL_FALLBACK, PRISM_ROUTE_PREFIX)
            .into_iter()
            .map(|(n, v)| (n, i64::from(v))),
    );
    all.extend(
        named!(
            PRISM_HOST_API_SIZE_1_0,
            PRISM_BYTES_SINK_SIZE_1_0,
            PRISM_KEY_VALUE_SERVICE_V1_SIZE_1_0,
            PRISM_HTTP_BUILDER_SIZE_1_0,
            PRISM_USAGE_SIZE_1_0,
            PRISM_STREAM_SINK_SIZE_1_0,
            PRISM_ERROR_SINK_SIZE_1_0,
            PRISM_REQUEST_CONTEXT_SIZE_1_0,
            PRISM_REQUEST_CONTEXT_SIZE_1_2,
            PRISM_REQUEST_SIZE_1_0,
            PRISM_RESPONSE_SIZE_1_0,
            PRISM_EVENT_SIZE_1_0,
            PRISM_COMPLETION_SIZE_1_0,
            PRISM_PROVIDER_V1_SIZE_1_0,
            PRISM_MIDDLEWARE_V1_SIZE_1_0,
            PRISM_MIDDLEWARE_V1_SIZE_1_2,
            PRISM_CANDIDATE_SIZE_1_0,
            PRISM_ROUTER_V1_SIZE_1_0,
            PRISM_ROUTER_V1_SIZE_1_1,
            PRISM_COMPONENT_SIZE_1_0,
            PRISM_PLUGIN_DESCRIPTOR_SIZE_1_0,
            PRISM_WINDOW_CLAIM_SIZE_1_2,
            PRISM_WINDOW_USAGE_SIZE_1_2,
            PRISM_STATE_RESULT_SIZE_1_2,
            PRISM_SHARED_STATE_SERVICE_V1_SIZE_1_2,
            PRISM_METRICS_SERVICE_V1_SIZE_1_3,
            PRISM_ERROR_SINK_SIZE_1_4,
            PRISM_PROVIDER_V1_SIZE_1_4,
            PRISM_MIDDLEWARE_V1_SIZE_1_4,
            PRISM_ROUTER_V1_SIZE_1_4,
            PRISM_ROUTE_SIZE_1_5,
            PRISM_DECODE_RESUME_SIZE_1_5,
            PRISM_INGRESS_V1_SIZE_1_5,
            PRISM_CLIENT_KEYS_SERVICE_V1_SIZE_1_6
        )
        .into_iter()
        .map(|(n, v)| (n, v as i64)),
    );
    all
}

fn string_constants() -> Vec<(&'static str, &'static str)> {
    named!(
        PRISM_PLUGIN_ENTRY_SYMBOL,
        PRISM_KEY_VALUE_SERVICE_V1,
        PRISM_SHARED_STATE_SERVICE_V1,
        PRISM_METRICS_SERVICE_V1,
        PRISM_CLIENT_KEYS_SERVICE_V1
    )
}

// ---- The two sides -------------------------------------------------------------------------------

fn rust_lines() -> BTreeSet<String> {
    let mut lines = BTreeSet::new();
    for s in structs() {
        lines.insert(format!("struct {} size={} align={}", s.name, s.size, s.align));
        for (field, offset, size) in &s.fields {
            lines.insert(format!("field {}.{} offset={} size={}", s.name, field, offset, size));
        }
    }
    for (name, size, signed) in scalars() {
        lines.insert(format!("scalar {} size={} signed={}", name, size, u8::from(signed)));
    }
    for (name, size) in function_types() {
        lines.insert(format!("function-type {} size={}", name, size));
    }
    for (name, value) in integer_constants() {
        lines.insert(format!("int {}={}", name, value));
    }
    for (name, value) in string_constants() {
        lines.insert(format!("string {}={}", name, value));
    }
    lines
}

fn c_program() -> String {
    let mut c = String::from(
        "#include <prism_plugin.h>\n#include <stddef.h>\n#include <stdio.h>\n\n\
         #define FIELD(T, f) printf(\"field %s.%s offset=%zu size=%zu\\n\", #T, #f, offsetof(T, f), \
         sizeof(((T *)0)->f))\n\nint main(void) {\n",
    );
    for s in structs() {
        let _ = writeln!(
            c,
            "    printf(\"struct %s size=%zu align=%zu\\n\", \"{0}\", sizeof({0}), (size_t)_Alignof({0}));",
            s.name
        );
        for (field, _, _) in &s.fields {
            let _ = writeln!(c, "    FIELD({}, {});", s.name, field);
        }
    }
    for (name, _, _) in scalars() {
        let _ = writeln!(
            c,
            "    printf(\"scalar %s size=%zu signed=%d\\n\", \"{0}\", sizeof({0}), ({0})-1 < 0 ? 1 : 0);",
            name
        );
    }
    for (name, _) in function_types() {
        let _ = writeln!(c, "    printf(\"function-type %s size=%zu\\n\", \"{0}\", sizeof({0}));", name);
    }
    for (name, _) in integer_constants() {
        let _ = writeln!(c, "    printf(\"int %s=%lld\\n\", \"{0}\", (long long)({0}));", name);
    }
    for (name, _) in string_constants() {
        let _ = writeln!(c, "    printf(\"string %s=%s\\n\", \"{0}\", {0});", name);
    }
    c.push_str("    return 0;\n}\n");
    c
}

fn include_dir() -> PathBuf {
    match std::env::var_os("PRISM_PLUGIN_INCLUDE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Sources/PrismPluginABI/include"),
    }
}

fn c_lines() -> BTreeSet<String> {
    let work = std::env::temp_dir().join(format!(
        "rust-example-layout-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&work).expect("create a temporary directory");
    let source = work.join("layout.c");
    let binary = work.join("layout");
    std::fs::write(&source, c_program()).expect("write layout.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let compiled = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(include_dir())
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` (set CC): {e}"));
    assert!(
        compiled.status.success(),
        "the layout program does not compile against the header (a field the Rust mirror names is \
         missing or renamed there?):\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let ran = Command::new(&binary).output().expect("run the layout program");
    assert!(ran.status.success(), "the layout program failed");
    let _ = std::fs::remove_dir_all(&work);
    String::from_utf8(ran.stdout).expect("UTF-8 output").lines().map(str::to_string).collect()
}

/// The header without comments.
fn header_text() -> String {
    let path = include_dir().join("prism_plugin.h");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
            out.push(' ');
        } else if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |end| &after[end..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn identifier_at(text: &str) -> &str {
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    &text[..end]
}

/// `typedef struct NAME { ... } NAME;` -> NAME and its member count (one `;` per member).
fn header_structs(header: &str) -> BTreeMap<String, usize> {
    let mut found = BTreeMap::new();
    let mut rest = header;
    while let Some(at) = rest.find("typedef struct ") {
        rest = &rest[at + "typedef struct ".len()..];
        let name = identifier_at(rest).to_string();
        let body_start = rest.find('{').expect("struct body");
        let closing = format!("}} {name};");
        let body_end = rest.find(&closing).unwrap_or_else(|| panic!("end of struct {name}"));
        let members = rest[body_start..body_end].matches(';').count();
        found.insert(name, members);
        rest = &rest[body_end..];
    }
    found
}

/// Scalar typedefs (`typedef int32_t prism_status;`) and function-pointer typedefs.
fn header_typedefs(header: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut scalars = BTreeSet::new();
    let mut functions = BTreeSet::new();
    for statement in header.split(';') {
        // A statement may start with preprocessor lines: look at its last `typedef`.
        let Some(at) = statement.rfind("typedef ") else { continue };
        let rest = &statement[at + "typedef ".len()..];
        if rest.starts_with("struct ") {
            continue;
        }
        if let Some(at) = rest.find("(*") {
            functions.insert(identifier_at(&rest[at + 2..]).to_string());
        } else if let Some(name) = rest.split_whitespace().last() {
            scalars.insert(name.to_string());
        }
    }
    (scalars, functions)
}

/// `#define PRISM_X value` with a number or a string as the value (not macros, not the guard).
fn header_constants(header: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut integers = BTreeSet::new();
    let mut strings = BTreeSet::new();
    for line in header.lines() {
        let Some(rest) = line.trim().strip_prefix("#define ") else { continue };
        let name = identifier_at(rest);
        let value = rest[name.len()..].trim();
        if !name.starts_with("PRISM_") || rest[name.len()..].starts_with('(') {
            continue; // function-like macro (PRISM_HAS_FIELD)
        }
        if value.starts_with('"') {
            strings.insert(name.to_string());
        } else if value.starts_with(|c: char| c.is_ascii_digit() || c == '(' || c == '-') {
            integers.insert(name.to_string());
        }
    }
    (integers, strings)
}

// ---- The tests -----------------------------------------------------------------------------------

#[test]
fn abi_layout_matches_the_c_header() {
    let c = c_lines();
    let rust = rust_lines();
    let only_c: Vec<_> = c.difference(&rust).collect();
    let only_rust: Vec<_> = rust.difference(&c).collect();
    assert!(
        only_c.is_empty() && only_rust.is_empty(),
        "abi.rs does not match prism_plugin.h\n  header says:\n    {}\n  abi.rs says:\n    {}",
        only_c.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n    "),
        only_rust.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n    ")
    );
}

/// What only the header has and what only the mirror has, as lines; empty when they agree.
fn differences<T: Ord + std::fmt::Debug>(what: &str, header: &BTreeSet<T>, mirror: &BTreeSet<T>) -> Vec<String> {
    let mut out = Vec::new();
    for item in header.difference(mirror) {
        out.push(format!("{what} {item:?}: in prism_plugin.h, missing from abi.rs"));
    }
    for item in mirror.difference(header) {
        out.push(format!("{what} {item:?}: in abi.rs, not in prism_plugin.h"));
    }
    out
}

#[test]
fn abi_mirror_covers_every_struct_typedef_and_constant_of_the_header() {
    let header = header_text();
    let mut problems = Vec::new();

    let in_header = header_structs(&header);
    assert!(in_header.len() >= 20, "found only {} structs in the header: is it the right file?", in_header.len());
    let mirrored: BTreeMap<String, usize> =
        structs().into_iter().map(|s| (s.name.to_string(), s.fields.len())).collect();
    let header_names: BTreeSet<_> = in_header.keys().cloned().collect();
    let mirror_names: BTreeSet<_> = mirrored.keys().cloned().collect();
    problems.extend(differences("struct", &header_names, &mirror_names));
    for (name, members) in &in_header {
        if let Some(fields) = mirrored.get(name) {
            if fields != members {
                problems.push(format!("struct {name}: {members} members in prism_plugin.h, {fields} in abi.rs"));
            }
        }
    }

    let (scalar_names, function_names) = header_typedefs(&header);
    let mirrored: BTreeSet<String> = scalars().into_iter().map(|(n, _, _)| n.to_string()).collect();
    problems.extend(differences("scalar typedef", &scalar_names, &mirrored));
    let mirrored: BTreeSet<String> = function_types().into_iter().map(|(n, _)| n.to_string()).collect();
    problems.extend(differences("function-pointer typedef", &function_names, &mirrored));

    let (integers, strings) = header_constants(&header);
    let mirrored: BTreeSet<String> = integer_constants().into_iter().map(|(n, _)| n.to_string()).collect();
    problems.extend(differences("integer constant", &integers, &mirrored));
    let mirrored: BTreeSet<String> = string_constants().into_iter().map(|(n, _)| n.to_string()).collect();
    problems.extend(differences("string constant", &strings, &mirrored));

    assert!(problems.is_empty(), "abi.rs does not mirror all of prism_plugin.h:\n  {}", problems.join("\n  "));
}

#[test]
fn has_field_follows_struct_size() {
    let mut usage = prism_usage { struct_size: 16, ..Default::default() };
    let p: *const prism_usage = &usage;
    assert!(crate::has_field!(p, prism_usage, input_tokens));
    assert!(!crate::has_field!(p, prism_usage, output_tokens));
    usage.struct_size = size_of::<prism_usage>() as u32;
    let p: *const prism_usage = &usage;
    assert!(crate::has_field!(p, prism_usage, reasoning_tokens));
    assert!(!crate::has_field!(std::ptr::null::<prism_usage>(), prism_usage, struct_size));
}
