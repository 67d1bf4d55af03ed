#ifndef PRISM_WIRE_SCAN_H
#define PRISM_WIRE_SCAN_H
/* The JSON string scan's inner loop, 16 bytes at a time (SSE2, every x86-64). Swift's generic
 * SIMD types did not compile to vector code across modules here (a megabyte took 80 ms). */
#include <stddef.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The offset of the first quote, backslash or control byte (< 0x20) in base[start..<end], or the
 * offset where fewer than 16 bytes are left (the caller finishes those); `start` on targets
 * without SSE2. */
static inline __attribute__((always_inline)) size_t prism_skip_plain_string_bytes(const uint8_t *base, size_t start, size_t end) {
    size_t position = start;
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i highest_control = _mm_set1_epi8(0x1F);
    while (position + 16 <= end) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(base + position));
        /* unsigned bytes <= 0x1F are those equal to their minimum with 0x1F */
        __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(bytes, highest_control), bytes);
        __m128i stop = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, quote), _mm_cmpeq_epi8(bytes, backslash)), control);
        int mask = _mm_movemask_epi8(stop);
        if (mask != 0) return position + (size_t)__builtin_ctz((unsigned)mask);
        position += 16;
    }
#endif
    return position;
}

/* Whether the `count` bytes at `a` and `b` are equal (a key against a name the caller knows). */
static inline int prism_bytes_equal(const void *a, const void *b, size_t count) {
    return __builtin_memcmp(a, b, count) == 0;
}

/* JSONScanner's value skip, validating, in one loop instead of one Swift call per token (about
 * 90 instructions a token there; a stream event has about 45). It mirrors Cursor in
 * JSONScanner.swift rule for rule: the same grammar, the same error at the same offset; the
 * Swift side names the codes. Nesting is tracked in a bit stack, not by recursion. */
enum {
    PRISM_JSON_OK = 0,
    PRISM_JSON_END,             /* unexpected end of JSON */
    PRISM_JSON_DEPTH,           /* JSON nested too deeply */
    PRISM_JSON_MEMBER_NAME,     /* expected a member name */
    PRISM_JSON_COLON,           /* expected ':' */
    PRISM_JSON_OBJECT_NEXT,     /* expected ',' or '}' */
    PRISM_JSON_ARRAY_NEXT,      /* expected ',' or ']' */
    PRISM_JSON_LITERAL,         /* invalid literal */
    PRISM_JSON_NUMBER,          /* invalid number */
    PRISM_JSON_CHARACTER,       /* unexpected character */
    PRISM_JSON_UNICODE_ESCAPE,  /* invalid \u escape */
    PRISM_JSON_ESCAPE,          /* invalid escape */
    PRISM_JSON_CONTROL,         /* control character in string */
    PRISM_JSON_UNTERMINATED     /* unterminated string */
};

#define PRISM_JSON_MAXIMUM_DEPTH 512

static inline __attribute__((always_inline)) int prism_json_is_space(uint8_t byte) {
    return byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09;
}

static inline __attribute__((always_inline)) size_t prism_json_skip_space(const uint8_t *base, size_t position, size_t end) {
    /* Compact JSON has no whitespace: one compare ends the common case (every byte above 0x20). */
    while (position < end && base[position] <= 0x20 && prism_json_is_space(base[position])) position++;
    return position;
}

static inline __attribute__((always_inline)) int prism_json_is_hex(uint8_t byte) {
    return (byte >= '0' && byte <= '9') || (byte >= 'a' && byte <= 'f') || (byte >= 'A' && byte <= 'F');
}

/* *position is at the opening quote; on success it is past the closing one. */
static inline __attribute__((always_inline)) int prism_json_skip_string(const uint8_t *base, size_t *position, size_t end) {
    size_t at = *position + 1;
    while (at < end) {
        at = prism_skip_plain_string_bytes(base, at, end);
        while (at < end) {
            uint8_t byte = base[at];
            if (byte == '"' || byte == '\\' || byte < 0x20) break;
            at++;
        }
        if (at >= end) break;
        uint8_t byte = base[at];
        if (byte == '"') { *position = at + 1; return PRISM_JSON_OK; }
        if (byte == '\\') {
            if (at + 1 >= end) break;
            switch (base[at + 1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                at += 2;
                continue;
            case 'u':
                if (at + 6 > end || !prism_json_is_hex(base[at + 2]) || !prism_json_is_hex(base[at + 3])
                    || !prism_json_is_hex(base[at + 4]) || !prism_json_is_hex(base[at + 5])) {
                    *position = at;
                    return PRISM_JSON_UNICODE_ESCAPE;
                }
                at += 6;
                continue;
            default:
                *position = at;
                return PRISM_JSON_ESCAPE;
            }
        }
        *position = at;
        return PRISM_JSON_CONTROL;
    }
    *position = at;
    return PRISM_JSON_UNTERMINATED;
}

static inline __attribute__((always_inline)) int prism_json_skip_number(const uint8_t *base, size_t *position, size_t end) {
    size_t at = *position;
    if (at < end && base[at] == '-') at++;
    if (at >= end || base[at] < '0' || base[at] > '9') { *position = at; return PRISM_JSON_NUMBER; }
    if (base[at] == '0') at++;
    else while (at < end && base[at] >= '0' && base[at] <= '9') at++;
    if (at < end && base[at] == '.') {
        at++;
        if (at >= end || base[at] < '0' || base[at] > '9') { *position = at; return PRISM_JSON_NUMBER; }
        while (at < end && base[at] >= '0' && base[at] <= '9') at++;
    }
    if (at < end && (base[at] == 'e' || base[at] == 'E')) {
        at++;
        if (at < end && (base[at] == '+' || base[at] == '-')) at++;
        if (at >= end || base[at] < '0' || base[at] > '9') { *position = at; return PRISM_JSON_NUMBER; }
        while (at < end && base[at] >= '0' && base[at] <= '9') at++;
    }
    *position = at;
    return PRISM_JSON_OK;
}

/* *position is at 't', 'f' or 'n': the literal that letter starts (true, false, null). On failure
 * *position stays at its first byte. */
static inline __attribute__((always_inline)) int prism_json_skip_literal(const uint8_t *base, size_t *position, size_t end) {
    size_t at = *position;
    const char *literal = base[at] == 't' ? "true" : base[at] == 'f' ? "false" : "null";
    size_t length = base[at] == 'f' ? 5 : 4;
    if (at + length > end) return PRISM_JSON_LITERAL;
    for (size_t i = 0; i < length; i++) if (base[at + i] != (uint8_t)literal[i]) return PRISM_JSON_LITERAL;
    *position = at + length;
    return PRISM_JSON_OK;
}

/* Skips the value at *position (no leading whitespace), nested `depth` deep already. On success
 * *position is just past it; on failure it is where the error is. */
static inline int prism_json_skip_value(const uint8_t *base, size_t *position, size_t end, int depth) {
    uint64_t objects[PRISM_JSON_MAXIMUM_DEPTH / 64]; /* bit set: that level is an object (written at each push) */
    int open = 0;
    int inObject = 0; /* the innermost open container's bit, kept here (read back from `objects` on a pop) */
    size_t at = *position;
    int code;
#define PRISM_JSON_FAIL(c) do { *position = at; return (c); } while (0)
value:
    if (at >= end) PRISM_JSON_FAIL(PRISM_JSON_END);
    switch (base[at]) {
    case '"':
        code = prism_json_skip_string(base, &at, end);
        if (code != PRISM_JSON_OK) PRISM_JSON_FAIL(code);
        break;
    case '{':
        if (depth + open >= PRISM_JSON_MAXIMUM_DEPTH) PRISM_JSON_FAIL(PRISM_JSON_DEPTH);
        at = prism_json_skip_space(base, at + 1, end);
        if (at < end && base[at] == '}') { at++; break; }
        objects[open / 64] |= (uint64_t)1 << (open % 64);
        open++;
        inObject = 1;
        goto member;
    case '[':
        if (depth + open >= PRISM_JSON_MAXIMUM_DEPTH) PRISM_JSON_FAIL(PRISM_JSON_DEPTH);
        at = prism_json_skip_space(base, at + 1, end);
        if (at < end && base[at] == ']') { at++; break; }
        objects[open / 64] &= ~((uint64_t)1 << (open % 64));
        open++;
        inObject = 0;
        goto value;
    case 't': case 'f': case 'n':
        code = prism_json_skip_literal(base, &at, end);
        if (code != PRISM_JSON_OK) PRISM_JSON_FAIL(code);
        break;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        code = prism_json_skip_number(base, &at, end);
        if (code != PRISM_JSON_OK) PRISM_JSON_FAIL(code);
        break;
    default:
        PRISM_JSON_FAIL(PRISM_JSON_CHARACTER);
    }
after:
    if (open == 0) { *position = at; return PRISM_JSON_OK; }
    at = prism_json_skip_space(base, at, end);
    if (at >= end) PRISM_JSON_FAIL(PRISM_JSON_END);
    {
        uint8_t next = base[at];
        if (next == (inObject ? '}' : ']')) {
            at++;
            open--;
            if (open > 0) inObject = (objects[(open - 1) / 64] >> ((open - 1) % 64)) & 1;
            goto after;
        }
        if (next != ',') PRISM_JSON_FAIL(inObject ? PRISM_JSON_OBJECT_NEXT : PRISM_JSON_ARRAY_NEXT);
        at++;
        if (!inObject) { at = prism_json_skip_space(base, at, end); goto value; }
    }
member:
    at = prism_json_skip_space(base, at, end);
    if (at >= end || base[at] != '"') PRISM_JSON_FAIL(PRISM_JSON_MEMBER_NAME);
    code = prism_json_skip_string(base, &at, end);
    if (code != PRISM_JSON_OK) PRISM_JSON_FAIL(code);
    at = prism_json_skip_space(base, at, end);
    if (at >= end || base[at] != ':') PRISM_JSON_FAIL(PRISM_JSON_COLON);
    at = prism_json_skip_space(base, at + 1, end);
    goto value;
#undef PRISM_JSON_FAIL
}
#endif
