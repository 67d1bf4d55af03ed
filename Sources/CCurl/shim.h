// curl_easy_setopt, curl_easy_getinfo and curl_multi_setopt are variadic, which Swift cannot call:
// these typed wrappers are the only way in.
#ifndef PRISM_CCURL_SHIM_H
#define PRISM_CCURL_SHIM_H
#include <curl/curl.h>

static inline CURLcode prism_curl_set_long(CURL *h, CURLoption o, long v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode prism_curl_set_string(CURL *h, CURLoption o, const char *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode prism_curl_set_pointer(CURL *h, CURLoption o, void *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode prism_curl_set_slist(CURL *h, CURLoption o, struct curl_slist *v) { return curl_easy_setopt(h, o, v); }
static inline CURLcode prism_curl_set_offset(CURL *h, CURLoption o, curl_off_t v) { return curl_easy_setopt(h, o, v); }

typedef size_t (*prism_curl_data_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode prism_curl_set_write_function(CURL *h, prism_curl_data_callback f) { return curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, f); }
static inline CURLcode prism_curl_set_header_function(CURL *h, prism_curl_data_callback f) { return curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, f); }

/* A large request body is read through a callback (and rewound through one when libcurl resends the
 * request on a fresh connection) instead of being copied whole before the transfer starts. */
typedef int (*prism_curl_seek_callback)(void *context, curl_off_t offset, int origin);
static inline CURLcode prism_curl_set_read_function(CURL *h, prism_curl_data_callback f) { return curl_easy_setopt(h, CURLOPT_READFUNCTION, f); }
static inline CURLcode prism_curl_set_seek_function(CURL *h, prism_curl_seek_callback f) { return curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, f); }

static inline CURLcode prism_curl_get_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode prism_curl_get_pointer(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode prism_curl_multi_set_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

/* CURL_WRITEFUNC_PAUSE is a macro expression Swift cannot import. */
static inline size_t prism_curl_write_pause(void) { return CURL_WRITEFUNC_PAUSE; }

/* The transport thread drives libcurl with curl_multi_socket_action from its own epoll loop
 * (CPrismSystem's helpers, whose readiness flags are CURL_CSELECT_IN/OUT/ERR's values). */

typedef int (*prism_curl_socket_callback)(CURL *easy, curl_socket_t socket, int what, void *context, void *socket_context);
typedef int (*prism_curl_timer_callback)(CURLM *multi, long timeout_ms, void *context);
static inline CURLMcode prism_curl_multi_set_socket_function(CURLM *m, prism_curl_socket_callback f) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f); }
static inline CURLMcode prism_curl_multi_set_timer_function(CURLM *m, prism_curl_timer_callback f) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f); }
/* libcurl tells of each connection socket it opens, and closes them through the second
 * callback (the engine stops watching one first). */
typedef int (*prism_curl_socket_option_callback)(void *context, curl_socket_t socket, curlsocktype purpose);
static inline CURLcode prism_curl_set_socket_option_function(CURL *h, prism_curl_socket_option_callback f) { return curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, f); }
typedef int (*prism_curl_close_socket_callback)(void *context, curl_socket_t socket);
static inline CURLcode prism_curl_set_close_socket_function(CURL *h, prism_curl_close_socket_callback f) { return curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, f); }
static inline CURLMcode prism_curl_multi_set_pointer(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }

#endif
