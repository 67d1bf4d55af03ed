/*
 * prism_kit.h -- JSON reading and writing and OpenAI shapes for Prism plugins written in C.
 *
 * The C counterpart of PluginKit's JSON and OpenAI helpers (Sources/PluginKit). One header, C11,
 * libc only (no libm, no other library). Include it after <prism_plugin.h> to also get a few ABI
 * helpers (section 5); without the ABI header, sections 1-4 work on their own.
 *
 *   #include <prism_plugin.h>
 *   #include "prism_kit.h"
 *
 * Linkage: every function is `static inline`, so there is no PRISM_KIT_IMPLEMENTATION step and
 * nothing of the kit is ever exported from the plugin. This was chosen over the stb style (one .c
 * file defines the implementation) because a plugin is a shared object that must export exactly
 * one symbol, prism_plugin_entry_v1: internal linkage keeps the kit out of the dynamic symbol
 * table without -fvisibility=hidden, and two plugins built against different versions of the kit
 * can never bind to each other's copy. `inline` only keeps unused functions from warning; the
 * compiler drops them. A plugin of several .c files gets one copy per file that uses a function.
 *
 * Ownership (nothing else allocates; nothing keeps a pointer after it returns):
 *  - pk_json values are borrowed views into the bytes you parsed. They stay valid as long as those
 *    bytes do: for input the host passed to a call, only until that call returns.
 *  - The reader never allocates, except pk_json_string_dup, whose result you free() yourself.
 *  - A pk_buf owns its heap memory (malloc/realloc) until pk_buf_free, or until pk_buf_detach hands
 *    the bytes to you (free() them). A pk_buf made with pk_buf_init_fixed writes into your storage
 *    and never allocates: growing past it fails instead.
 *  - The writers (pk_jw_*, pk_openai_*, pk_sse_*) only append to a pk_buf. Host sinks copy what you
 *    give them, so a buffer can be reused or freed as soon as the sink call returns.
 *
 * Errors: reader functions return false, or a pk_result, and write nothing you did not ask for.
 * Writers never return errors: a failed allocation, a full fixed buffer or a misuse (a value where
 * a key is due, an unbalanced end) sets the sticky `failed` flag of the pk_buf, after which appends
 * do nothing. Check `buf.failed` once, before you send the bytes.
 *
 * Robustness: the reader validates what it walks (RFC 8259 grammar), never reads past the length
 * it was given, never recurses (nesting is tracked in a bit stack; deeper than PK_JSON_MAX_DEPTH,
 * default 512 like the host's scanner, is malformed) and needs no NUL terminator. Every function is
 * reentrant and thread-safe: no global state.
 */
#ifndef PRISM_KIT_H
#define PRISM_KIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PK_JSON_MAX_DEPTH
#define PK_JSON_MAX_DEPTH 512
#endif

#define PK_DEF static inline
#if defined(__GNUC__) || defined(__clang__)
#define PK_PRINTF(format_index, first_argument) \
    __attribute__((format(printf, format_index, first_argument)))
#else
#define PK_PRINTF(format_index, first_argument)
#endif

/* A length argument meaning "the text is NUL-terminated: use strlen". */
#define PK_NTS ((size_t)-1)

/* ==== 1. Reading JSON =========================================================================
 *
 *   pk_json request, value;
 *   if (!pk_json_parse(body.data, body.length, &request)) ... not JSON ...
 *   bool stream = pk_json_find_bool(request, "stream", false);
 *   bool usage = pk_json_find_bool(request, "stream_options.include_usage", false);
 *   if (pk_json_find(request, "messages[0].role", &value) && pk_json_string_eq(value, "system"))
 *
 * Member names are compared after decoding their escapes ("mod\u0065l" is "model"); when an object
 * has a name twice, the first member wins (as in PluginKit).
 */

typedef enum pk_json_type {
    PK_JSON_INVALID = 0, /* not found, or not a well-formed value */
    PK_JSON_NULL,
    PK_JSON_BOOL,
    PK_JSON_NUMBER,
    PK_JSON_STRING,
    PK_JSON_ARRAY,
    PK_JSON_OBJECT
} pk_json_type;

/* One JSON value: its exact text, borrowed from the parsed bytes. Not NUL-terminated. */
typedef struct pk_json {
    const char *data; /* first byte: a quote, bracket, brace, digit, '-' or the literal's letter */
    size_t length;    /* bytes of the value's text, no surrounding white space */
    pk_json_type type;
} pk_json;

typedef enum pk_result {
    PK_OK = 0,
    PK_TRUNCATED = 1,    /* the text was cut to fit the buffer, at a UTF-8 character boundary */
    PK_NOT_FOUND = -1,   /* no value at that path */
    PK_WRONG_TYPE = -2,  /* the value is not of the asked type (or is a malformed string) */
    PK_NO_MEMORY = -3    /* malloc failed */
} pk_result;

/* Parses `length` bytes that must be exactly one JSON value, white space around it allowed. The
 * whole text is validated. On failure *out is {NULL, 0, PK_JSON_INVALID} and false is returned. */
PK_DEF bool pk_json_parse(const void *data, size_t length, pk_json *out);

/* The member `name` (NUL-terminated; pk_json_member_n: `name_length` bytes) of an object. */
PK_DEF bool pk_json_member(pk_json object, const char *name, pk_json *out);
PK_DEF bool pk_json_member_n(pk_json object, const char *name, size_t name_length, pk_json *out);
/* Element `index` (from 0) of an array. */
PK_DEF bool pk_json_at(pk_json array, size_t index, pk_json *out);
/* The value at `path`: member names separated by '.', array indexes as [N], e.g.
 * "stream_options.include_usage", "messages[2].content[0].text". An empty path is `value` itself.
 * (A name that holds '.' or '[' needs pk_json_member.) */
PK_DEF bool pk_json_find(pk_json value, const char *path, pk_json *out);
/* Members of an object or elements of an array; 0 for anything else or a malformed container. */
PK_DEF size_t pk_json_count(pk_json container);

/* Walking an array or object in order:
 *   pk_json_iter it = pk_json_iterate(messages);
 *   pk_json key, message;
 *   while (pk_json_next(&it, &key, &message)) { ... }
 *   if (pk_json_iter_failed(&it)) ... malformed, or not a container ...
 * For an object `key` is the member name (a PK_JSON_STRING: decode it with pk_json_string or
 * compare it with pk_json_string_eq); for an array it is PK_JSON_INVALID. `key` may be NULL. */
typedef struct pk_json_iter {
    const char *next; /* internal */
    const char *end;
    int object;
    int state; /* 0 before the first item, 1 after one, 2 at the end, -1 failed */
} pk_json_iter;
PK_DEF pk_json_iter pk_json_iterate(pk_json container);
PK_DEF bool pk_json_next(pk_json_iter *iter, pk_json *key, pk_json *value);
PK_DEF bool pk_json_iter_failed(const pk_json_iter *iter);

/* Decodes a string value into `buffer` (`capacity` bytes, NUL terminator included): escapes are
 * resolved, \uXXXX and surrogate pairs become UTF-8, a lone surrogate becomes U+FFFD. Raw bytes
 * are copied as they are. Returns PK_OK, PK_TRUNCATED (the start of the text, cut at a character
 * boundary, is in the buffer) or PK_WRONG_TYPE. `buffer` is NUL-terminated whenever capacity > 0;
 * *out_length (may be NULL) is the number of bytes before the terminator. The text may itself hold
 * a NUL (from \u0000): compare strlen(buffer) with *out_length when that matters.
 * A buffer of `value.length` bytes always holds the whole string and its terminator. */
PK_DEF pk_result pk_json_string(pk_json value, char *buffer, size_t capacity, size_t *out_length);
/* The same into a new buffer: PK_OK and *out = malloc'd, NUL-terminated text that you free();
 * otherwise *out = NULL and PK_WRONG_TYPE or PK_NO_MEMORY. */
PK_DEF pk_result pk_json_string_dup(pk_json value, char **out, size_t *out_length);
/* True when `value` is a string whose decoded text equals `text` (NUL-terminated). */
PK_DEF bool pk_json_string_eq(pk_json value, const char *text);
PK_DEF bool pk_json_string_eq_n(pk_json value, const char *text, size_t length);

/* Numbers. pk_json_int64 and pk_json_uint64 take integers written without fraction or exponent
 * that fit the type; pk_json_double takes any JSON number whose magnitude fits a double (1e400
 * fails; 1e-400 is 0). Conversion does not depend on the C locale. */
PK_DEF bool pk_json_int64(pk_json value, int64_t *out);
PK_DEF bool pk_json_uint64(pk_json value, uint64_t *out);
PK_DEF bool pk_json_double(pk_json value, double *out);
PK_DEF bool pk_json_bool(pk_json value, bool *out);
PK_DEF bool pk_json_is_null(pk_json value);

/* Shortcuts: the value at `path` when it has the type, else `fallback` (or PK_NOT_FOUND). */
PK_DEF bool pk_json_find_bool(pk_json value, const char *path, bool fallback);
PK_DEF int64_t pk_json_find_int64(pk_json value, const char *path, int64_t fallback);
PK_DEF double pk_json_find_double(pk_json value, const char *path, double fallback);
PK_DEF pk_result pk_json_find_string(pk_json value, const char *path, char *buffer,
                                     size_t capacity, size_t *out_length);

/* ==== 2. A growable byte buffer ===============================================================
 *
 *   pk_buf buf = PK_BUF_INIT;            (or pk_buf_init(&buf))
 *   pk_buf_puts(&buf, "Bearer "); pk_buf_append(&buf, key, key_length);
 *   if (buf.failed) ... out of memory ...
 *   use buf.data / buf.length, then pk_buf_free(&buf) -- or char *s = pk_buf_detach(&buf, NULL).
 *
 * `data` is NUL-terminated after every successful append (the terminator is not in `length`) and
 * is NULL before the first one. */
typedef struct pk_buf {
    char *data;
    size_t length;
    size_t capacity; /* bytes at `data` */
    bool failed;     /* sticky: an append did not happen; the content is incomplete */
    bool fixed;      /* `data` is the caller's storage (pk_buf_init_fixed) */
} pk_buf;
#define PK_BUF_INIT {NULL, 0, 0, false, false}

PK_DEF void pk_buf_init(pk_buf *buf);
/* Writes into `storage` (`capacity` bytes, one of them for the terminator); never allocates. */
PK_DEF void pk_buf_init_fixed(pk_buf *buf, char *storage, size_t capacity);
/* Frees the heap memory (not fixed storage) and leaves an empty buffer. */
PK_DEF void pk_buf_free(pk_buf *buf);
/* Empties the buffer and clears `failed`, keeping the memory. */
PK_DEF void pk_buf_clear(pk_buf *buf);
/* Makes room for `extra` more bytes; false (and `failed`) when that is impossible. */
PK_DEF bool pk_buf_reserve(pk_buf *buf, size_t extra);
PK_DEF void pk_buf_append(pk_buf *buf, const void *data, size_t length);
PK_DEF void pk_buf_puts(pk_buf *buf, const char *text);
PK_DEF void pk_buf_putc(pk_buf *buf, char c);
PK_DEF void pk_buf_printf(pk_buf *buf, const char *format, ...) PK_PRINTF(2, 3);
PK_DEF void pk_buf_vprintf(pk_buf *buf, const char *format, va_list arguments);
/* Hands the content to the caller as a malloc'd NUL-terminated string (free() it) and leaves the
 * buffer empty; a fixed buffer's content is copied. NULL when `failed` or out of memory (the
 * buffer is freed either way). *out_length may be NULL. */
PK_DEF char *pk_buf_detach(pk_buf *buf, size_t *out_length);

/* The longest prefix of `text` (at most `limit` bytes) that does not cut a UTF-8 sequence. */
PK_DEF size_t pk_utf8_prefix(const char *text, size_t length, size_t limit);

/* ==== 3. Writing JSON =========================================================================
 *
 *   pk_buf out = PK_BUF_INIT;
 *   pk_jw w;
 *   pk_jw_init(&w, &out);
 *   pk_jw_object_begin(&w);
 *   pk_jw_member_string(&w, "model", model);
 *   pk_jw_key(&w, "messages"); pk_jw_array_begin(&w); ... pk_jw_array_end(&w);
 *   pk_jw_object_end(&w);
 *   if (out.failed || !pk_jw_complete(&w)) ...
 *
 * Commas are written for you. Strings are escaped: '"', '\\' and control characters (\n, \r, \t,
 * \b, \f, others as \u00XX); well-formed UTF-8 passes through unchanged and each byte that does not
 * begin a well-formed sequence becomes U+FFFD, so the output is always valid UTF-8 and valid JSON.
 * A NULL string writes null. Non-finite doubles write null; finite ones write the shortest of
 * 15-17 significant digits that reads back exactly. The output holds no newline. */
typedef struct pk_jw {
    pk_buf *out;
    size_t depth;
    bool after_key;
    bool started; /* the one top-level value has begun */
    unsigned char object_bits[(PK_JSON_MAX_DEPTH + 7) / 8]; /* per level: an object */
    unsigned char item_bits[(PK_JSON_MAX_DEPTH + 7) / 8];   /* per level: holds an item */
} pk_jw;

PK_DEF void pk_jw_init(pk_jw *writer, pk_buf *out);
/* True when one whole value was written (every container closed) and nothing failed. A writer
 * writes one value; pk_jw_init it again for the next document. */
PK_DEF bool pk_jw_complete(const pk_jw *writer);
PK_DEF void pk_jw_object_begin(pk_jw *writer);
PK_DEF void pk_jw_object_end(pk_jw *writer);
PK_DEF void pk_jw_array_begin(pk_jw *writer);
PK_DEF void pk_jw_array_end(pk_jw *writer);
PK_DEF void pk_jw_key(pk_jw *writer, const char *name);
PK_DEF void pk_jw_key_n(pk_jw *writer, const char *name, size_t length);
PK_DEF void pk_jw_string(pk_jw *writer, const char *text);
PK_DEF void pk_jw_string_n(pk_jw *writer, const char *text, size_t length);
PK_DEF void pk_jw_int(pk_jw *writer, int64_t value);
PK_DEF void pk_jw_uint(pk_jw *writer, uint64_t value);
PK_DEF void pk_jw_double(pk_jw *writer, double value);
PK_DEF void pk_jw_bool(pk_jw *writer, bool value);
PK_DEF void pk_jw_null(pk_jw *writer);
/* Already-encoded JSON for one value, copied as it is (you vouch for it). */
PK_DEF void pk_jw_raw(pk_jw *writer, const char *json, size_t length);
/* A value read with the reader, copied with the white space between its tokens dropped. */
PK_DEF void pk_jw_value(pk_jw *writer, pk_json value);
/* key + value in one call. */
PK_DEF void pk_jw_member_string(pk_jw *writer, const char *name, const char *text);
PK_DEF void pk_jw_member_int(pk_jw *writer, const char *name, int64_t value);
PK_DEF void pk_jw_member_uint(pk_jw *writer, const char *name, uint64_t value);
PK_DEF void pk_jw_member_double(pk_jw *writer, const char *name, double value);
PK_DEF void pk_jw_member_bool(pk_jw *writer, const char *name, bool value);
PK_DEF void pk_jw_member_null(pk_jw *writer, const char *name);

/* ==== 4. OpenAI shapes ========================================================================
 *
 * Each function appends one complete document to `out`. Strings are NUL-terminated except
 * `content`, which is `content_length` bytes (PK_NTS: NUL-terminated). A NULL string is written as
 * null, or left out where the comment says so. */

/* Token counts as OpenAI reports them. */
typedef struct pk_usage {
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;    /* prompt_tokens_details.cached_tokens */
    uint64_t reasoning_tokens; /* completion_tokens_details.reasoning_tokens */
} pk_usage;

/* Reads the "usage" member of a chat.completion or chunk object. False when there is no usage
 * object; counts that are absent, negative or not integers read as 0. */
PK_DEF bool pk_openai_usage_read(pk_json response, pk_usage *out);
/* Writes a usage object (with total_tokens and both details objects) as the next value. */
PK_DEF void pk_openai_usage_write(pk_jw *writer, const pk_usage *usage);

/* {"id","object":"chat.completion","created","model","choices":[{"index":0,"message":{"role":
 * "assistant","content","refusal":null},"logprobs":null,"finish_reason"}],"usage"}; `usage` NULL
 * leaves "usage" out. */
PK_DEF void pk_openai_completion(pk_buf *out, const char *id, const char *model, int64_t created,
                                 const char *content, size_t content_length,
                                 const char *finish_reason, const pk_usage *usage);
/* One chat.completion.chunk, bare JSON: what prism_stream_sink.emit_event takes (the host adds
 * "data: " and the blank line). delta holds "role" unless `role` is NULL and "content" unless
 * `content` is NULL; `finish_reason` NULL writes null. */
PK_DEF void pk_openai_chunk(pk_buf *out, const char *id, const char *model, int64_t created,
                            const char *role, const char *content, size_t content_length,
                            const char *finish_reason);
/* The usage-only last chunk of a stream with stream_options.include_usage: "choices":[] and
 * "usage". */
PK_DEF void pk_openai_usage_chunk(pk_buf *out, const char *id, const char *model, int64_t created,
                                  const pk_usage *usage);
/* The same two as SSE events, "data: {...}\n\n", for a body written whole (a middleware's local
 * answer to a streaming request, a test double). */
PK_DEF void pk_openai_chunk_event(pk_buf *out, const char *id, const char *model, int64_t created,
                                  const char *role, const char *content, size_t content_length,
                                  const char *finish_reason);
PK_DEF void pk_openai_usage_chunk_event(pk_buf *out, const char *id, const char *model,
                                        int64_t created, const pk_usage *usage);
/* One SSE event: each line of `data` becomes a "data: " line, then a blank line. */
PK_DEF void pk_sse_event(pk_buf *out, const char *data, size_t length);
/* "data: [DONE]\n\n" */
PK_DEF void pk_sse_done(pk_buf *out);
/* {"error":{"message","type","param":null,"code"}}, the host's error shape; `code` NULL writes
 * null. */
PK_DEF void pk_openai_error(pk_buf *out, const char *message, const char *type, const char *code);

/* ==== Implementation ========================================================================== */

/* ---- Reader internals ---- */

PK_DEF bool pk__is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
PK_DEF bool pk__is_digit(char c) { return c >= '0' && c <= '9'; }

PK_DEF const char *pk__space(const char *p, const char *end) {
    while (p < end && pk__is_space(*p)) p++;
    return p;
}

PK_DEF bool pk__hex4(const char *p, const char *end, uint32_t *out) {
    uint32_t value = 0;
    int i;
    if (end - p < 4) return false;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        value <<= 4;
        if (c >= '0' && c <= '9') value |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') value |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') value |= (uint32_t)(c - 'A' + 10);
        else return false;
    }
    *out = value;
    return true;
}

/* `p` at an opening quote: the position after the closing quote, or NULL. */
PK_DEF const char *pk__skip_string(const char *p, const char *end) {
    uint32_t unused;
    if (p >= end || *p != '"') return NULL;
    p++;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c != '\\') {
            p++;
            continue;
        }
        if (end - p < 2) return NULL;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u':
            if (!pk__hex4(p + 2, end, &unused)) return NULL;
            p += 6;
            break;
        default:
            return NULL;
        }
    }
    return NULL;
}

PK_DEF const char *pk__skip_digits(const char *p, const char *end) {
    while (p < end && pk__is_digit(*p)) p++;
    return p;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at `p`: the position after it, or NULL. */
PK_DEF const char *pk__skip_number(const char *p, const char *end) {
    if (p < end && *p == '-') p++;
    if (p >= end || !pk__is_digit(*p)) return NULL;
    p = *p == '0' ? p + 1 : pk__skip_digits(p, end);
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !pk__is_digit(*p)) return NULL;
        p = pk__skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !pk__is_digit(*p)) return NULL;
        p = pk__skip_digits(p, end);
    }
    return p;
}

PK_DEF const char *pk__skip_word(const char *p, const char *end, const char *word, size_t length) {
    return (size_t)(end - p) >= length && memcmp(p, word, length) == 0 ? p + length : NULL;
}

/* After an object's '{' or ',': the member name and ':'. Returns where the value begins. */
PK_DEF const char *pk__skip_name(const char *p, const char *end) {
    p = pk__skip_string(pk__space(p, end), end);
    if (p == NULL) return NULL;
    p = pk__space(p, end);
    if (p >= end || *p != ':') return NULL;
    return pk__space(p + 1, end);
}

PK_DEF bool pk__bit(const unsigned char *bits, size_t index) {
    return ((bits[index / 8] >> (index % 8)) & 1u) != 0;
}

PK_DEF void pk__set_bit(unsigned char *bits, size_t index, bool on) {
    unsigned char mask = (unsigned char)(1u << (index % 8));
    if (on) bits[index / 8] |= mask;
    else bits[index / 8] &= (unsigned char)~mask;
}

/* Skips the value at `p` (after optional white space) and returns the position after it, or NULL
 * when it is malformed, truncated or nested deeper than PK_JSON_MAX_DEPTH. No recursion: the open
 * containers are a bit stack (1 = object). */
PK_DEF const char *pk__skip_value(const char *p, const char *end) {
    unsigned char in_object[(PK_JSON_MAX_DEPTH + 7) / 8] = {0};
    size_t depth = 0;
    for (;;) {
        p = pk__space(p, end);
        if (p >= end) return NULL;
        switch (*p) {
        case '{':
        case '[': {
            const bool object = *p == '{';
            if (depth == PK_JSON_MAX_DEPTH) return NULL;
            pk__set_bit(in_object, depth, object);
            p = pk__space(p + 1, end);
            if (p < end && *p == (object ? '}' : ']')) {
                p++;
                break; /* an empty container is a finished value */
            }
            depth++;
            if (object && (p = pk__skip_name(p, end)) == NULL) return NULL;
            continue; /* the first member's or element's value */
        }
        case '"': p = pk__skip_string(p, end); break;
        case 't': p = pk__skip_word(p, end, "true", 4); break;
        case 'f': p = pk__skip_word(p, end, "false", 5); break;
        case 'n': p = pk__skip_word(p, end, "null", 4); break;
        default: p = pk__skip_number(p, end); break;
        }
        if (p == NULL) return NULL;
        /* A value ended: close containers, or go on to the next member or element. */
        for (;;) {
            bool object;
            if (depth == 0) return p;
            p = pk__space(p, end);
            if (p >= end) return NULL;
            object = pk__bit(in_object, depth - 1);
            if (*p == ',') {
                p++;
                if (object && (p = pk__skip_name(p, end)) == NULL) return NULL;
                break;
            }
            if (*p != (object ? '}' : ']')) return NULL;
            p++;
            depth--;
        }
    }
}

PK_DEF pk_json_type pk__type_of(char c) {
    switch (c) {
    case '"': return PK_JSON_STRING;
    case '{': return PK_JSON_OBJECT;
    case '[': return PK_JSON_ARRAY;
    case 't': case 'f': return PK_JSON_BOOL;
    case 'n': return PK_JSON_NULL;
    default: return PK_JSON_NUMBER;
    }
}

PK_DEF pk_json pk__invalid(void) {
    pk_json none;
    none.data = NULL;
    none.length = 0;
    none.type = PK_JSON_INVALID;
    return none;
}

/* The value that starts exactly at `p`. */
PK_DEF bool pk__value_at(const char *p, const char *end, pk_json *out) {
    const char *after;
    if (p >= end || pk__is_space(*p)) return false;
    after = pk__skip_value(p, end);
    if (after == NULL) return false;
    out->data = p;
    out->length = (size_t)(after - p);
    out->type = pk__type_of(*p);
    return true;
}

PK_DEF size_t pk__utf8_encode(uint32_t code_point, char out[4]) {
    if (code_point < 0x80) {
        out[0] = (char)code_point;
        return 1;
    }
    if (code_point < 0x800) {
        out[0] = (char)(0xC0 | (code_point >> 6));
        out[1] = (char)(0x80 | (code_point & 0x3F));
        return 2;
    }
    if (code_point < 0x10000) {
        out[0] = (char)(0xE0 | (code_point >> 12));
        out[1] = (char)(0x80 | ((code_point >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code_point & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code_point >> 18));
    out[1] = (char)(0x80 | ((code_point >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code_point >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code_point & 0x3F));
    return 4;
}

/* Decodes the next character of a string body at *p into `out`. Returns its byte count (1-4), 0
 * at the closing quote (*p moves past it) or -1 when the string is malformed. A raw multi-byte
 * UTF-8 sequence comes out whole, so that a caller cutting the text never splits one. */
PK_DEF int pk__next_char(const char **p, const char *end, char out[4]) {
    const char *s = *p;
    unsigned char c;
    if (s >= end) return -1;
    c = (unsigned char)*s;
    if (c == '"') {
        *p = s + 1;
        return 0;
    }
    if (c < 0x20) return -1;
    if (c != '\\') {
        int count = 1;
        const int want = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        out[0] = (char)c;
        while (count < want && s + count < end && ((unsigned char)s[count] & 0xC0) == 0x80) {
            out[count] = s[count];
            count++;
        }
        *p = s + count;
        return count;
    }
    if (end - s < 2) return -1;
    switch (s[1]) {
    case '"': out[0] = '"'; break;
    case '\\': out[0] = '\\'; break;
    case '/': out[0] = '/'; break;
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u': {
        uint32_t code_point, low;
        if (!pk__hex4(s + 2, end, &code_point)) return -1;
        s += 6;
        if (code_point >= 0xD800 && code_point <= 0xDBFF) {
            if (end - s >= 6 && s[0] == '\\' && s[1] == 'u' && pk__hex4(s + 2, end, &low) &&
                low >= 0xDC00 && low <= 0xDFFF) {
                code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
                s += 6;
            } else {
                code_point = 0xFFFD;
            }
        } else if (code_point >= 0xDC00 && code_point <= 0xDFFF) {
            code_point = 0xFFFD;
        }
        *p = s;
        return (int)pk__utf8_encode(code_point, out);
    }
    default:
        return -1;
    }
    *p = s + 2;
    return 1;
}

PK_DEF bool pk__is_string(pk_json value) {
    return value.type == PK_JSON_STRING && value.data != NULL && value.length >= 2 &&
           value.data[0] == '"';
}

/* ---- Reader ---- */

PK_DEF bool pk_json_parse(const void *data, size_t length, pk_json *out) {
    const char *p = (const char *)data;
    const char *end;
    pk_json value;
    *out = pk__invalid();
    if (p == NULL) return false;
    end = p + length;
    p = pk__space(p, end);
    if (!pk__value_at(p, end, &value)) return false;
    if (pk__space(value.data + value.length, end) != end) return false;
    *out = value;
    return true;
}

PK_DEF pk_json_iter pk_json_iterate(pk_json container) {
    pk_json_iter iter;
    iter.next = NULL;
    iter.end = NULL;
    iter.object = container.type == PK_JSON_OBJECT;
    iter.state = -1;
    if ((container.type == PK_JSON_OBJECT || container.type == PK_JSON_ARRAY) &&
        container.data != NULL && container.length >= 2 &&
        container.data[0] == (iter.object ? '{' : '[')) {
        iter.next = container.data + 1;
        iter.end = container.data + container.length;
        iter.state = 0;
    }
    return iter;
}

PK_DEF bool pk_json_next(pk_json_iter *iter, pk_json *key, pk_json *value) {
    const char *p;
    pk_json item;
    if (key != NULL) *key = pk__invalid();
    if (value != NULL) *value = pk__invalid();
    if (iter->state != 0 && iter->state != 1) return false;
    p = pk__space(iter->next, iter->end);
    if (p >= iter->end) goto malformed;
    if (*p == (iter->object ? '}' : ']')) {
        iter->state = 2;
        iter->next = p + 1;
        return false;
    }
    if (iter->state == 1) {
        if (*p != ',') goto malformed;
        p = pk__space(p + 1, iter->end);
    }
    if (iter->object) {
        const char *after_name = pk__skip_string(p, iter->end);
        if (after_name == NULL) goto malformed;
        if (key != NULL) {
            key->data = p;
            key->length = (size_t)(after_name - p);
            key->type = PK_JSON_STRING;
        }
        p = pk__space(after_name, iter->end);
        if (p >= iter->end || *p != ':') goto malformed;
        p = pk__space(p + 1, iter->end);
    }
    if (!pk__value_at(p, iter->end, &item)) goto malformed;
    iter->next = item.data + item.length;
    iter->state = 1;
    if (value != NULL) *value = item;
    return true;
malformed:
    iter->state = -1;
    if (key != NULL) *key = pk__invalid();
    return false;
}

PK_DEF bool pk_json_iter_failed(const pk_json_iter *iter) { return iter->state == -1; }

/* Compares the decoded text of the string at `p` (its opening quote) with `text`. */
PK_DEF bool pk__string_eq(const char *p, const char *end, const char *text, size_t length) {
    char c[4];
    size_t matched = 0;
    int count;
    if (p >= end || *p != '"') return false;
    p++;
    while ((count = pk__next_char(&p, end, c)) > 0) {
        if ((size_t)count > length - matched || memcmp(c, text + matched, (size_t)count) != 0)
            return false;
        matched += (size_t)count;
    }
    return count == 0 && matched == length;
}

PK_DEF bool pk_json_member_n(pk_json object, const char *name, size_t name_length, pk_json *out) {
    pk_json_iter iter = pk_json_iterate(object);
    pk_json key, value;
    *out = pk__invalid();
    if (!iter.object || name == NULL) return false;
    while (pk_json_next(&iter, &key, &value)) {
        if (pk__string_eq(key.data, key.data + key.length, name, name_length)) {
            *out = value;
            return true;
        }
    }
    return false;
}

PK_DEF bool pk_json_member(pk_json object, const char *name, pk_json *out) {
    if (name == NULL) {
        *out = pk__invalid();
        return false;
    }
    return pk_json_member_n(object, name, strlen(name), out);
}

PK_DEF bool pk_json_at(pk_json array, size_t index, pk_json *out) {
    pk_json_iter iter = pk_json_iterate(array);
    pk_json value;
    size_t i = 0;
    *out = pk__invalid();
    if (array.type != PK_JSON_ARRAY) return false;
    while (pk_json_next(&iter, NULL, &value)) {
        if (i++ == index) {
            *out = value;
            return true;
        }
    }
    return false;
}

PK_DEF size_t pk_json_count(pk_json container) {
    pk_json_iter iter = pk_json_iterate(container);
    size_t count = 0;
    while (pk_json_next(&iter, NULL, NULL)) count++;
    return pk_json_iter_failed(&iter) ? 0 : count;
}

PK_DEF bool pk_json_find(pk_json value, const char *path, pk_json *out) {
    pk_json current = value;
    const char *s = path;
    *out = pk__invalid();
    if (path == NULL || value.type == PK_JSON_INVALID) return false;
    while (*s != '\0') {
        if (*s == '[') {
            size_t index = 0;
            const char *digits = ++s;
            for (; pk__is_digit(*s); s++) {
                size_t digit = (size_t)(*s - '0');
                if (index > (SIZE_MAX - digit) / 10) return false;
                index = index * 10 + digit;
            }
            if (s == digits || *s != ']') return false;
            s++;
            if (*s != '\0' && *s != '.' && *s != '[') return false;
            if (!pk_json_at(current, index, &current)) return false;
        } else {
            size_t length = strcspn(s, ".[");
            if (length == 0) return false;
            if (!pk_json_member_n(current, s, length, &current)) return false;
            s += length;
        }
        if (*s == '.') {
            s++;
            if (*s == '\0') return false;
        }
    }
    *out = current;
    return true;
}

PK_DEF pk_result pk_json_string(pk_json value, char *buffer, size_t capacity, size_t *out_length) {
    const char *p, *end;
    size_t written = 0;
    pk_result result = PK_OK;
    char c[4];
    int count;
    if (buffer == NULL) capacity = 0;
    if (capacity > 0) buffer[0] = '\0';
    if (out_length != NULL) *out_length = 0;
    if (!pk__is_string(value)) return PK_WRONG_TYPE;
    p = value.data + 1;
    end = value.data + value.length;
    while ((count = pk__next_char(&p, end, c)) > 0) {
        /* Once something did not fit, nothing after it is written; the rest is still checked. */
        if (result == PK_OK && capacity > 0 && (size_t)count <= capacity - 1 - written) {
            memcpy(buffer + written, c, (size_t)count);
            written += (size_t)count;
        } else {
            result = PK_TRUNCATED;
        }
    }
    if (capacity > 0) buffer[written] = '\0';
    if (count < 0) {
        if (capacity > 0) buffer[0] = '\0';
        return PK_WRONG_TYPE;
    }
    if (out_length != NULL) *out_length = written;
    return result;
}

PK_DEF pk_result pk_json_string_dup(pk_json value, char **out, size_t *out_length) {
    char *text;
    pk_result result;
    *out = NULL;
    if (out_length != NULL) *out_length = 0;
    if (!pk__is_string(value)) return PK_WRONG_TYPE;
    /* The decoded text is never longer than the encoded one less its two quotes. */
    text = (char *)malloc(value.length);
    if (text == NULL) return PK_NO_MEMORY;
    result = pk_json_string(value, text, value.length, out_length);
    if (result != PK_OK) {
        free(text);
        return PK_WRONG_TYPE;
    }
    *out = text;
    return PK_OK;
}

PK_DEF bool pk_json_string_eq_n(pk_json value, const char *text, size_t length) {
    return pk__is_string(value) && text != NULL &&
           pk__string_eq(value.data, value.data + value.length, text, length);
}

PK_DEF bool pk_json_string_eq(pk_json value, const char *text) {
    return text != NULL && pk_json_string_eq_n(value, text, strlen(text));
}

/* The value is a number whose whole text is well-formed. */
PK_DEF bool pk__is_number(pk_json value) {
    return value.type == PK_JSON_NUMBER && value.data != NULL && value.length > 0 &&
           pk__skip_number(value.data, value.data + value.length) == value.data + value.length;
}

/* Digits only (after an optional '-'), no fraction or exponent: the magnitude, or false. */
PK_DEF bool pk__integer_magnitude(pk_json value, bool *negative, uint64_t *magnitude) {
    const char *p, *end;
    uint64_t result = 0;
    if (!pk__is_number(value)) return false;
    p = value.data;
    end = p + value.length;
    *negative = *p == '-';
    if (*negative) p++;
    for (; p < end; p++) {
        uint64_t digit;
        if (!pk__is_digit(*p)) return false;
        digit = (uint64_t)(*p - '0');
        if (result > (UINT64_MAX - digit) / 10) return false;
        result = result * 10 + digit;
    }
    *magnitude = result;
    return true;
}

PK_DEF bool pk_json_int64(pk_json value, int64_t *out) {
    bool negative;
    uint64_t magnitude;
    if (!pk__integer_magnitude(value, &negative, &magnitude)) return false;
    if (negative) {
        if (magnitude > (uint64_t)INT64_MAX + 1) return false;
        *out = magnitude == 0 ? 0 : -(int64_t)(magnitude - 1) - 1;
    } else {
        if (magnitude > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)magnitude;
    }
    return true;
}

PK_DEF bool pk_json_uint64(pk_json value, uint64_t *out) {
    bool negative;
    uint64_t magnitude;
    if (!pk__integer_magnitude(value, &negative, &magnitude) || negative) return false;
    *out = magnitude;
    return true;
}

/* Significant digits handed to strtod; correct rounding needs at most 768. */
#define PK__MAX_DIGITS 800

/* A well-formed JSON number text to a double without the locale's decimal point: the digits and a
 * decimal exponent go to strtod as "-DDDDeN", a form every locale reads the same way. */
PK_DEF bool pk__number_to_double(const char *p, const char *end, double *out) {
    char text[PK__MAX_DIGITS + 32];
    size_t used = 0, kept = 0;
    long long exponent = 0, written_exponent = 0;
    bool dropped_nonzero = false, any_digit = false, fraction = false, negative = false;
    char *after;
    double result;
    if (p < end && *p == '-') {
        negative = true;
        text[used++] = '-';
        p++;
    }
    for (; p < end; p++) {
        char c = *p;
        if (c == '.') {
            fraction = true;
            continue;
        }
        if (!pk__is_digit(c)) break;
        if (!any_digit && c == '0') {
            if (fraction) exponent--; /* a leading zero after the point still scales */
            continue;
        }
        any_digit = true;
        if (kept < PK__MAX_DIGITS) {
            text[used++] = c;
            kept++;
            if (fraction) exponent--;
        } else {
            if (c != '0') dropped_nonzero = true;
            if (!fraction) exponent++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        bool negative_exponent = false;
        p++;
        if (p < end && (*p == '+' || *p == '-')) negative_exponent = *p++ == '-';
        /* Saturates: past 10^8 the value is 0 or infinite whatever the digits say. */
        for (; p < end && pk__is_digit(*p); p++)
            if (written_exponent < 100000000) written_exponent = written_exponent * 10 + (*p - '0');
        exponent += negative_exponent ? -written_exponent : written_exponent;
    }
    if (!any_digit) {
        *out = negative ? -0.0 : 0.0;
        return true;
    }
    if (dropped_nonzero) {
        /* A non-zero tail past the kept digits: one more digit makes ties round correctly. */
        text[used++] = '1';
        exponent--;
    }
    used += (size_t)snprintf(text + used, sizeof text - used, "e%lld", exponent);
    result = strtod(text, &after);
    if (after != text + used) return false;
    if (result > 1.7976931348623157e308 || result < -1.7976931348623157e308) return false;
    *out = result;
    return true;
}

PK_DEF bool pk_json_double(pk_json value, double *out) {
    if (!pk__is_number(value)) return false;
    return pk__number_to_double(value.data, value.data + value.length, out);
}

PK_DEF bool pk_json_bool(pk_json value, bool *out) {
    if (value.type != PK_JSON_BOOL || value.data == NULL || value.length == 0) return false;
    *out = value.data[0] == 't';
    return true;
}

PK_DEF bool pk_json_is_null(pk_json value) { return value.type == PK_JSON_NULL; }

PK_DEF bool pk_json_find_bool(pk_json value, const char *path, bool fallback) {
    pk_json found;
    bool result;
    return pk_json_find(value, path, &found) && pk_json_bool(found, &result) ? result : fallback;
}

PK_DEF int64_t pk_json_find_int64(pk_json value, const char *path, int64_t fallback) {
    pk_json found;
    int64_t result;
    return pk_json_find(value, path, &found) && pk_json_int64(found, &result) ? result : fallback;
}

PK_DEF double pk_json_find_double(pk_json value, const char *path, double fallback) {
    pk_json found;
    double result;
    return pk_json_find(value, path, &found) && pk_json_double(found, &result) ? result : fallback;
}

PK_DEF pk_result pk_json_find_string(pk_json value, const char *path, char *buffer,
                                     size_t capacity, size_t *out_length) {
    pk_json found;
    if (!pk_json_find(value, path, &found)) {
        if (buffer != NULL && capacity > 0) buffer[0] = '\0';
        if (out_length != NULL) *out_length = 0;
        return PK_NOT_FOUND;
    }
    return pk_json_string(found, buffer, capacity, out_length);
}

/* ---- Buffer ---- */

PK_DEF void pk_buf_init(pk_buf *buf) {
    buf->data = NULL;
    buf->length = 0;
    buf->capacity = 0;
    buf->failed = false;
    buf->fixed = false;
}

PK_DEF void pk_buf_init_fixed(pk_buf *buf, char *storage, size_t capacity) {
    pk_buf_init(buf);
    buf->fixed = true;
    if (storage == NULL || capacity == 0) {
        buf->failed = true;
        return;
    }
    buf->data = storage;
    buf->capacity = capacity;
    storage[0] = '\0';
}

PK_DEF void pk_buf_free(pk_buf *buf) {
    if (!buf->fixed) free(buf->data);
    pk_buf_init(buf);
}

PK_DEF void pk_buf_clear(pk_buf *buf) {
    buf->length = 0;
    buf->failed = buf->fixed && buf->data == NULL;
    if (buf->data != NULL) buf->data[0] = '\0';
}

PK_DEF bool pk_buf_reserve(pk_buf *buf, size_t extra) {
    size_t need, capacity;
    char *grown;
    if (buf->failed) return false;
    if (extra > SIZE_MAX - 1 - buf->length) goto fail;
    need = buf->length + extra + 1;
    if (need <= buf->capacity) return true;
    if (buf->fixed) goto fail;
    capacity = buf->capacity < 64 ? 64 : buf->capacity;
    while (capacity < need) capacity = capacity > SIZE_MAX / 2 ? need : capacity * 2;
    grown = (char *)realloc(buf->data, capacity);
    if (grown == NULL) goto fail;
    buf->data = grown;
    buf->capacity = capacity;
    return true;
fail:
    buf->failed = true;
    return false;
}

PK_DEF void pk_buf_append(pk_buf *buf, const void *data, size_t length) {
    if (!pk_buf_reserve(buf, length)) return;
    if (length > 0) memcpy(buf->data + buf->length, data, length);
    buf->length += length;
    buf->data[buf->length] = '\0';
}

PK_DEF void pk_buf_puts(pk_buf *buf, const char *text) { pk_buf_append(buf, text, strlen(text)); }

PK_DEF void pk_buf_putc(pk_buf *buf, char c) { pk_buf_append(buf, &c, 1); }

PK_DEF void pk_buf_vprintf(pk_buf *buf, const char *format, va_list arguments) {
    va_list copy;
    int length;
    if (buf->failed) return;
    va_copy(copy, arguments);
    length = vsnprintf(NULL, 0, format, copy);
    va_end(copy);
    if (length < 0) {
        buf->failed = true;
        return;
    }
    if (!pk_buf_reserve(buf, (size_t)length)) return;
    vsnprintf(buf->data + buf->length, (size_t)length + 1, format, arguments);
    buf->length += (size_t)length;
}

PK_DEF void pk_buf_printf(pk_buf *buf, const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    pk_buf_vprintf(buf, format, arguments);
    va_end(arguments);
}

PK_DEF char *pk_buf_detach(pk_buf *buf, size_t *out_length) {
    char *result = NULL;
    size_t length = buf->length;
    if (out_length != NULL) *out_length = 0;
    if (!buf->failed) {
        if (buf->fixed || buf->data == NULL) {
            result = (char *)malloc(length + 1);
            if (result != NULL) {
                if (length > 0) memcpy(result, buf->data, length);
                result[length] = '\0';
            }
        } else {
            result = buf->data;
            buf->data = NULL;
        }
    }
    pk_buf_free(buf);
    if (result != NULL && out_length != NULL) *out_length = length;
    return result;
}

PK_DEF size_t pk_utf8_prefix(const char *text, size_t length, size_t limit) {
    size_t start, need;
    unsigned char lead;
    if (length <= limit) return length;
    /* Only the kept bytes are looked at (the text may already have been cut there): find where the
     * last sequence before the cut starts and keep it only when it is complete. */
    start = limit;
    while (start > 0 && limit - start < 3 && ((unsigned char)text[start - 1] & 0xC0) == 0x80)
        start--;
    if (start == 0) return limit;
    lead = (unsigned char)text[start - 1];
    need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return limit - (start - 1) < need ? start - 1 : limit;
}

/* ---- Writer ---- */

/* The length of the well-formed UTF-8 sequence at `s` (1-4), or 0. */
PK_DEF size_t pk__utf8_sequence(const unsigned char *s, size_t available) {
    unsigned char c = s[0];
    size_t need, i;
    unsigned char low = 0x80, high = 0xBF;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3;
    else if (c >= 0xF0 && c <= 0xF4) need = 4;
    else return 0;
    if (available < need) return 0;
    if (c == 0xE0) low = 0xA0;        /* no overlong forms */
    else if (c == 0xED) high = 0x9F;  /* no surrogates */
    else if (c == 0xF0) low = 0x90;   /* no overlong forms */
    else if (c == 0xF4) high = 0x8F;  /* nothing past U+10FFFF */
    if (s[1] < low || s[1] > high) return 0;
    for (i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return need;
}

/* Appends `text` as a quoted, escaped JSON string. */
PK_DEF void pk__quote(pk_buf *buf, const char *text, size_t length) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, run = 0;
    if (length < SIZE_MAX / 2) pk_buf_reserve(buf, length + 2);
    pk_buf_putc(buf, '"');
    while (i < length) {
        unsigned char c = s[i];
        size_t sequence;
        char escape[6];
        size_t escape_length = 2;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80 && (sequence = pk__utf8_sequence(s + i, length - i)) > 0) {
            i += sequence;
            continue;
        }
        pk_buf_append(buf, s + run, i - run);
        escape[0] = '\\';
        switch (c) {
        case '"': escape[1] = '"'; break;
        case '\\': escape[1] = '\\'; break;
        case '\n': escape[1] = 'n'; break;
        case '\r': escape[1] = 'r'; break;
        case '\t': escape[1] = 't'; break;
        case '\b': escape[1] = 'b'; break;
        case '\f': escape[1] = 'f'; break;
        default:
            if (c < 0x20) {
                escape[1] = 'u';
                escape[2] = '0';
                escape[3] = '0';
                escape[4] = hex[c >> 4];
                escape[5] = hex[c & 0xF];
                escape_length = 6;
            } else { /* a byte that begins no well-formed UTF-8 sequence */
                memcpy(escape, "\xEF\xBF\xBD", 3);
                escape_length = 3;
            }
        }
        pk_buf_append(buf, escape, escape_length);
        run = ++i;
    }
    pk_buf_append(buf, s + run, length - run);
    pk_buf_putc(buf, '"');
}

PK_DEF void pk__jw_fail(pk_jw *writer) { writer->out->failed = true; }

/* Before a value: a comma in an array, the key's turn in an object. False on misuse. */
PK_DEF bool pk__jw_value(pk_jw *writer) {
    size_t level;
    if (writer->out->failed) return false;
    if (writer->depth == 0) {
        /* A second top-level value would run into the first ("1" "2" is "12"). */
        if (writer->started) {
            pk__jw_fail(writer);
            return false;
        }
        writer->started = true;
        return true;
    }
    level = writer->depth - 1;
    if (pk__bit(writer->object_bits, level)) {
        if (!writer->after_key) {
            pk__jw_fail(writer);
            return false;
        }
        writer->after_key = false;
        return true;
    }
    if (pk__bit(writer->item_bits, level)) pk_buf_putc(writer->out, ',');
    pk__set_bit(writer->item_bits, level, true);
    return !writer->out->failed;
}

PK_DEF void pk_jw_init(pk_jw *writer, pk_buf *out) {
    memset(writer, 0, sizeof *writer);
    writer->out = out;
}

PK_DEF bool pk_jw_complete(const pk_jw *writer) {
    return writer->started && writer->depth == 0 && !writer->after_key && !writer->out->failed;
}

PK_DEF void pk__jw_open(pk_jw *writer, bool object) {
    if (!pk__jw_value(writer)) return;
    if (writer->depth == PK_JSON_MAX_DEPTH) {
        pk__jw_fail(writer);
        return;
    }
    pk_buf_putc(writer->out, object ? '{' : '[');
    pk__set_bit(writer->object_bits, writer->depth, object);
    pk__set_bit(writer->item_bits, writer->depth, false);
    writer->depth++;
}

PK_DEF void pk__jw_close(pk_jw *writer, bool object) {
    if (writer->out->failed) return;
    if (writer->depth == 0 || writer->after_key ||
        pk__bit(writer->object_bits, writer->depth - 1) != object) {
        pk__jw_fail(writer);
        return;
    }
    pk_buf_putc(writer->out, object ? '}' : ']');
    writer->depth--;
}

PK_DEF void pk_jw_object_begin(pk_jw *writer) { pk__jw_open(writer, true); }
PK_DEF void pk_jw_object_end(pk_jw *writer) { pk__jw_close(writer, true); }
PK_DEF void pk_jw_array_begin(pk_jw *writer) { pk__jw_open(writer, false); }
PK_DEF void pk_jw_array_end(pk_jw *writer) { pk__jw_close(writer, false); }

PK_DEF void pk_jw_key_n(pk_jw *writer, const char *name, size_t length) {
    size_t level;
    if (writer->out->failed) return;
    if (writer->depth == 0 || writer->after_key || name == NULL ||
        !pk__bit(writer->object_bits, writer->depth - 1)) {
        pk__jw_fail(writer);
        return;
    }
    level = writer->depth - 1;
    if (pk__bit(writer->item_bits, level)) pk_buf_putc(writer->out, ',');
    pk__set_bit(writer->item_bits, level, true);
    pk__quote(writer->out, name, length);
    pk_buf_putc(writer->out, ':');
    writer->after_key = true;
}

PK_DEF void pk_jw_key(pk_jw *writer, const char *name) {
    pk_jw_key_n(writer, name, name == NULL ? 0 : strlen(name));
}

PK_DEF void pk_jw_raw(pk_jw *writer, const char *json, size_t length) {
    if (pk__jw_value(writer)) pk_buf_append(writer->out, json, length);
}

PK_DEF void pk_jw_null(pk_jw *writer) { pk_jw_raw(writer, "null", 4); }

PK_DEF void pk_jw_bool(pk_jw *writer, bool value) {
    pk_jw_raw(writer, value ? "true" : "false", value ? 4 : 5);
}

PK_DEF void pk_jw_string_n(pk_jw *writer, const char *text, size_t length) {
    if (text == NULL) {
        pk_jw_null(writer);
        return;
    }
    if (length == PK_NTS) length = strlen(text);
    if (pk__jw_value(writer)) pk__quote(writer->out, text, length);
}

PK_DEF void pk_jw_string(pk_jw *writer, const char *text) { pk_jw_string_n(writer, text, PK_NTS); }

PK_DEF void pk__jw_decimal(pk_jw *writer, bool negative, uint64_t magnitude) {
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude > 0);
    if (negative) digits[--i] = '-';
    pk_jw_raw(writer, digits + i, sizeof digits - i);
}

PK_DEF void pk_jw_uint(pk_jw *writer, uint64_t value) { pk__jw_decimal(writer, false, value); }

PK_DEF void pk_jw_int(pk_jw *writer, int64_t value) {
    /* The magnitude of INT64_MIN does not fit int64_t: take it as unsigned. */
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    pk__jw_decimal(writer, value < 0, magnitude);
}

PK_DEF void pk_jw_double(pk_jw *writer, double value) {
    char printed[48], text[48];
    size_t length = 0;
    int precision;
    /* NaN is not equal to itself; infinities are beyond the largest finite double. */
    if (value != value || value > 1.7976931348623157e308 || value < -1.7976931348623157e308) {
        pk_jw_null(writer);
        return;
    }
    for (precision = 15; precision <= 17; precision++) {
        double back;
        int n = snprintf(printed, sizeof printed, "%.*g", precision, value);
        int i;
        bool point = false;
        if (n < 0 || (size_t)n >= sizeof printed) n = 0;
        /* %g writes the locale's decimal point, maybe several bytes: JSON wants '.'. */
        for (length = 0, i = 0; i < n; i++) {
            char c = printed[i];
            if (pk__is_digit(c) || c == '-' || c == '+' || c == 'e' || c == 'E') {
                text[length++] = c;
            } else if (!point) {
                text[length++] = '.';
                point = true;
            }
        }
        if (pk__number_to_double(text, text + length, &back) && back == value) break;
    }
    pk_jw_raw(writer, text, length);
}

PK_DEF void pk_jw_value(pk_jw *writer, pk_json value) {
    const char *p, *end, *run;
    bool in_string = false, escaped = false;
    if (value.data == NULL || value.length == 0 || value.type == PK_JSON_INVALID) {
        if (pk__jw_value(writer)) pk__jw_fail(writer);
        return;
    }
    if (!pk__jw_value(writer)) return;
    p = run = value.data;
    end = value.data + value.length;
    for (; p < end; p++) {
        char c = *p;
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (pk__is_space(c)) {
            pk_buf_append(writer->out, run, (size_t)(p - run));
            run = p + 1;
        } else if (c == '"') {
            in_string = true;
        }
    }
    pk_buf_append(writer->out, run, (size_t)(end - run));
}

PK_DEF void pk_jw_member_string(pk_jw *writer, const char *name, const char *text) {
    pk_jw_key(writer, name);
    pk_jw_string(writer, text);
}

PK_DEF void pk_jw_member_int(pk_jw *writer, const char *name, int64_t value) {
    pk_jw_key(writer, name);
    pk_jw_int(writer, value);
}

PK_DEF void pk_jw_member_uint(pk_jw *writer, const char *name, uint64_t value) {
    pk_jw_key(writer, name);
    pk_jw_uint(writer, value);
}

PK_DEF void pk_jw_member_double(pk_jw *writer, const char *name, double value) {
    pk_jw_key(writer, name);
    pk_jw_double(writer, value);
}

PK_DEF void pk_jw_member_bool(pk_jw *writer, const char *name, bool value) {
    pk_jw_key(writer, name);
    pk_jw_bool(writer, value);
}

PK_DEF void pk_jw_member_null(pk_jw *writer, const char *name) {
    pk_jw_key(writer, name);
    pk_jw_null(writer);
}

/* ---- OpenAI shapes ---- */

PK_DEF uint64_t pk__count(pk_json object, const char *name) {
    pk_json value;
    uint64_t count = 0;
    if (pk_json_member(object, name, &value) && pk_json_uint64(value, &count)) return count;
    return 0;
}

PK_DEF bool pk_openai_usage_read(pk_json response, pk_usage *out) {
    pk_json usage, details;
    memset(out, 0, sizeof *out);
    if (!pk_json_member(response, "usage", &usage) || usage.type != PK_JSON_OBJECT) return false;
    out->prompt_tokens = pk__count(usage, "prompt_tokens");
    out->completion_tokens = pk__count(usage, "completion_tokens");
    if (pk_json_member(usage, "prompt_tokens_details", &details))
        out->cached_tokens = pk__count(details, "cached_tokens");
    if (pk_json_member(usage, "completion_tokens_details", &details))
        out->reasoning_tokens = pk__count(details, "reasoning_tokens");
    return true;
}

PK_DEF void pk_openai_usage_write(pk_jw *writer, const pk_usage *usage) {
    uint64_t total = usage->prompt_tokens + usage->completion_tokens;
    if (total < usage->prompt_tokens) total = UINT64_MAX;
    pk_jw_object_begin(writer);
    pk_jw_member_uint(writer, "prompt_tokens", usage->prompt_tokens);
    pk_jw_member_uint(writer, "completion_tokens", usage->completion_tokens);
    pk_jw_member_uint(writer, "total_tokens", total);
    pk_jw_key(writer, "prompt_tokens_details");
    pk_jw_object_begin(writer);
    pk_jw_member_uint(writer, "cached_tokens", usage->cached_tokens);
    pk_jw_object_end(writer);
    pk_jw_key(writer, "completion_tokens_details");
    pk_jw_object_begin(writer);
    pk_jw_member_uint(writer, "reasoning_tokens", usage->reasoning_tokens);
    pk_jw_object_end(writer);
    pk_jw_object_end(writer);
}

/* The members every chat.completion(.chunk) starts with. */
PK_DEF void pk__openai_head(pk_jw *writer, const char *id, const char *object, int64_t created,
                            const char *model) {
    pk_jw_object_begin(writer);
    pk_jw_member_string(writer, "id", id);
    pk_jw_member_string(writer, "object", object);
    pk_jw_member_int(writer, "created", created);
    pk_jw_member_string(writer, "model", model);
    pk_jw_key(writer, "choices");
    pk_jw_array_begin(writer);
}

PK_DEF void pk_openai_completion(pk_buf *out, const char *id, const char *model, int64_t created,
                                 const char *content, size_t content_length,
                                 const char *finish_reason, const pk_usage *usage) {
    pk_jw writer;
    pk_jw_init(&writer, out);
    pk__openai_head(&writer, id, "chat.completion", created, model);
    pk_jw_object_begin(&writer);
    pk_jw_member_int(&writer, "index", 0);
    pk_jw_key(&writer, "message");
    pk_jw_object_begin(&writer);
    pk_jw_member_string(&writer, "role", "assistant");
    pk_jw_key(&writer, "content");
    pk_jw_string_n(&writer, content, content_length);
    pk_jw_member_null(&writer, "refusal");
    pk_jw_object_end(&writer);
    pk_jw_member_null(&writer, "logprobs");
    pk_jw_member_string(&writer, "finish_reason", finish_reason);
    pk_jw_object_end(&writer);
    pk_jw_array_end(&writer);
    if (usage != NULL) {
        pk_jw_key(&writer, "usage");
        pk_openai_usage_write(&writer, usage);
    }
    pk_jw_object_end(&writer);
}

PK_DEF void pk_openai_chunk(pk_buf *out, const char *id, const char *model, int64_t created,
                            const char *role, const char *content, size_t content_length,
                            const char *finish_reason) {
    pk_jw writer;
    pk_jw_init(&writer, out);
    pk__openai_head(&writer, id, "chat.completion.chunk", created, model);
    pk_jw_object_begin(&writer);
    pk_jw_member_int(&writer, "index", 0);
    pk_jw_key(&writer, "delta");
    pk_jw_object_begin(&writer);
    if (role != NULL) pk_jw_member_string(&writer, "role", role);
    if (content != NULL) {
        pk_jw_key(&writer, "content");
        pk_jw_string_n(&writer, content, content_length);
    }
    pk_jw_object_end(&writer);
    pk_jw_member_null(&writer, "logprobs");
    pk_jw_member_string(&writer, "finish_reason", finish_reason);
    pk_jw_object_end(&writer);
    pk_jw_array_end(&writer);
    pk_jw_object_end(&writer);
}

PK_DEF void pk_openai_usage_chunk(pk_buf *out, const char *id, const char *model, int64_t created,
                                  const pk_usage *usage) {
    pk_jw writer;
    pk_jw_init(&writer, out);
    pk__openai_head(&writer, id, "chat.completion.chunk", created, model);
    pk_jw_array_end(&writer);
    pk_jw_key(&writer, "usage");
    pk_openai_usage_write(&writer, usage);
    pk_jw_object_end(&writer);
}

PK_DEF void pk_openai_chunk_event(pk_buf *out, const char *id, const char *model, int64_t created,
                                  const char *role, const char *content, size_t content_length,
                                  const char *finish_reason) {
    /* The writer's JSON holds no newline, so it can be framed in place. */
    pk_buf_append(out, "data: ", 6);
    pk_openai_chunk(out, id, model, created, role, content, content_length, finish_reason);
    pk_buf_append(out, "\n\n", 2);
}

PK_DEF void pk_openai_usage_chunk_event(pk_buf *out, const char *id, const char *model,
                                        int64_t created, const pk_usage *usage) {
    pk_buf_append(out, "data: ", 6);
    pk_openai_usage_chunk(out, id, model, created, usage);
    pk_buf_append(out, "\n\n", 2);
}

PK_DEF void pk_sse_event(pk_buf *out, const char *data, size_t length) {
    size_t start = 0, i;
    if (data == NULL) {
        data = "";
        length = 0;
    }
    for (i = 0; i <= length; i++) {
        if (i < length && data[i] != '\n' && data[i] != '\r') continue;
        pk_buf_append(out, "data: ", 6);
        pk_buf_append(out, data + start, i - start);
        pk_buf_putc(out, '\n');
        if (i + 1 < length && data[i] == '\r' && data[i + 1] == '\n') i++;
        start = i + 1;
    }
    pk_buf_putc(out, '\n');
}

PK_DEF void pk_sse_done(pk_buf *out) { pk_buf_append(out, "data: [DONE]\n\n", 14); }

PK_DEF void pk_openai_error(pk_buf *out, const char *message, const char *type, const char *code) {
    pk_jw writer;
    pk_jw_init(&writer, out);
    pk_jw_object_begin(&writer);
    pk_jw_key(&writer, "error");
    pk_jw_object_begin(&writer);
    pk_jw_member_string(&writer, "message", message);
    pk_jw_member_string(&writer, "type", type);
    pk_jw_member_null(&writer, "param");
    pk_jw_member_string(&writer, "code", code);
    pk_jw_object_end(&writer);
    pk_jw_object_end(&writer);
}

/* ==== 5. ABI helpers (only when <prism_plugin.h> was included first) ========================== */
#ifdef PRISM_PLUGIN_H

/* Views for the ABI; they borrow `text`, which must outlive the call you pass them to. */
PK_DEF prism_string pk_str(const char *text);
PK_DEF prism_string pk_str_n(const char *data, size_t length);
PK_DEF prism_bytes pk_bytes(const void *data, size_t length);
PK_DEF prism_bytes pk_buf_bytes(const pk_buf *buf);
PK_DEF bool pk_str_eq(prism_string value, const char *text);
/* error->set with NUL-terminated strings; the f form formats the message (cut at 1 KiB, on a
 * UTF-8 boundary). Nothing happens when the sink is NULL. */
PK_DEF void pk_report_error(const prism_error_sink *error, uint32_t http_status, const char *type,
                            const char *code, const char *message);
PK_DEF void pk_report_errorf(const prism_error_sink *error, uint32_t http_status, const char *type,
                             const char *code, const char *format, ...) PK_PRINTF(5, 6);
/* Formats (up to 1 KiB, cut on a UTF-8 boundary) and logs through the host, unless the host says
 * the level is off. Safe with a NULL host or one without log functions. */
PK_DEF void pk_log(const prism_host_api *host, prism_log_level level, const char *format, ...)
    PK_PRINTF(3, 4);
PK_DEF bool pk_log_enabled(const prism_host_api *host, prism_log_level level);
/* A prism_usage of this header's size, for prism_stream_sink.report_usage. */
PK_DEF prism_usage pk_usage_to_abi(const pk_usage *usage);
/* Stores into a host-owned prism_usage (translate_response's out_usage), touching only the fields
 * its struct_size covers. */
PK_DEF void pk_usage_store(prism_usage *to, const pk_usage *from);
/* status, content-type and body on a builder; the first failing call's status is returned. */
PK_DEF prism_status pk_respond(const prism_http_builder *client, uint32_t status,
                               const char *content_type, const void *body, size_t length);

PK_DEF prism_string pk_str_n(const char *data, size_t length) {
    prism_string s;
    s.data = data;
    s.length = length;
    return s;
}

PK_DEF prism_string pk_str(const char *text) {
    return pk_str_n(text, text == NULL ? 0 : strlen(text));
}

PK_DEF prism_bytes pk_bytes(const void *data, size_t length) {
    prism_bytes b;
    b.data = (const uint8_t *)data;
    b.length = length;
    return b;
}

PK_DEF prism_bytes pk_buf_bytes(const pk_buf *buf) { return pk_bytes(buf->data, buf->length); }

PK_DEF bool pk_str_eq(prism_string value, const char *text) {
    size_t length = strlen(text);
    return value.length == length && (length == 0 || memcmp(value.data, text, length) == 0);
}

PK_DEF void pk_report_error(const prism_error_sink *error, uint32_t http_status, const char *type,
                            const char *code, const char *message) {
    if (error == NULL || error->set == NULL) return;
    error->set(error->context, http_status, pk_str(type), pk_str(code), pk_str(message));
}

/* vsnprintf into `text` (1 KiB); the length kept, cut on a UTF-8 boundary. */
PK_DEF size_t pk__format(char *text, size_t capacity, const char *format, va_list arguments) {
    int n = vsnprintf(text, capacity, format, arguments);
    if (n < 0) {
        text[0] = '\0';
        return 0;
    }
    return pk_utf8_prefix(text, (size_t)n, capacity - 1);
}

PK_DEF void pk_report_errorf(const prism_error_sink *error, uint32_t http_status, const char *type,
                             const char *code, const char *format, ...) {
    char message[1024];
    size_t length;
    va_list arguments;
    if (error == NULL || error->set == NULL) return;
    va_start(arguments, format);
    length = pk__format(message, sizeof message, format, arguments);
    va_end(arguments);
    error->set(error->context, http_status, pk_str(type), pk_str(code), pk_str_n(message, length));
}

PK_DEF bool pk_log_enabled(const prism_host_api *host, prism_log_level level) {
    if (host == NULL || !PRISM_HAS_FIELD(host, prism_host_api, log) || host->log == NULL)
        return false;
    if (!PRISM_HAS_FIELD(host, prism_host_api, log_enabled) || host->log_enabled == NULL)
        return true;
    return host->log_enabled(level) != 0;
}

PK_DEF void pk_log(const prism_host_api *host, prism_log_level level, const char *format, ...) {
    char message[1024];
    size_t length;
    va_list arguments;
    if (!pk_log_enabled(host, level)) return;
    va_start(arguments, format);
    length = pk__format(message, sizeof message, format, arguments);
    va_end(arguments);
    host->log(level, pk_str_n(message, length));
}

PK_DEF prism_usage pk_usage_to_abi(const pk_usage *usage) {
    prism_usage result;
    memset(&result, 0, sizeof result);
    result.struct_size = (uint32_t)sizeof result;
    result.input_tokens = usage->prompt_tokens;
    result.output_tokens = usage->completion_tokens;
    result.cached_input_tokens = usage->cached_tokens;
    result.reasoning_tokens = usage->reasoning_tokens;
    return result;
}

PK_DEF void pk_usage_store(prism_usage *to, const pk_usage *from) {
    if (PRISM_HAS_FIELD(to, prism_usage, input_tokens)) to->input_tokens = from->prompt_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, output_tokens))
        to->output_tokens = from->completion_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, cached_input_tokens))
        to->cached_input_tokens = from->cached_tokens;
    if (PRISM_HAS_FIELD(to, prism_usage, reasoning_tokens))
        to->reasoning_tokens = from->reasoning_tokens;
}

PK_DEF prism_status pk_respond(const prism_http_builder *client, uint32_t status,
                               const char *content_type, const void *body, size_t length) {
    prism_status result = client->set_status(client->context, status);
    if (result == PRISM_OK && content_type != NULL)
        result = client->set_header(client->context, pk_str("content-type"), pk_str(content_type));
    if (result == PRISM_OK && length > 0)
        result = client->write_body(client->context, pk_bytes(body, length));
    return result;
}

#endif /* PRISM_PLUGIN_H */

#endif /* PRISM_KIT_H */
