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
static inline size_t prism_skip_plain_string_bytes(const uint8_t *base, size_t start, size_t end) {
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
#endif
