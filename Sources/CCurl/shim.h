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

static inline CURLcode prism_curl_get_long(CURL *h, CURLINFO i, long *v) { return curl_easy_getinfo(h, i, v); }
static inline CURLcode prism_curl_get_pointer(CURL *h, CURLINFO i, void **v) { return curl_easy_getinfo(h, i, v); }
static inline CURLMcode prism_curl_multi_set_long(CURLM *m, CURLMoption o, long v) { return curl_multi_setopt(m, o, v); }

/* CURL_WRITEFUNC_PAUSE is a macro expression Swift cannot import. */
static inline size_t prism_curl_write_pause(void) { return CURL_WRITEFUNC_PAUSE; }

/* The transport thread drives libcurl with curl_multi_socket_action from its own epoll loop. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <stdint.h>

typedef int (*prism_curl_socket_callback)(CURL *easy, curl_socket_t socket, int what, void *context, void *socket_context);
typedef int (*prism_curl_timer_callback)(CURLM *multi, long timeout_ms, void *context);
static inline CURLMcode prism_curl_multi_set_socket_function(CURLM *m, prism_curl_socket_callback f) { return curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, f); }
static inline CURLMcode prism_curl_multi_set_timer_function(CURLM *m, prism_curl_timer_callback f) { return curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, f); }
static inline CURLMcode prism_curl_multi_set_pointer(CURLM *m, CURLMoption o, void *v) { return curl_multi_setopt(m, o, v); }

static inline int prism_eventfd_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void prism_eventfd_signal(int fd) { uint64_t one = 1; ssize_t ignored = write(fd, &one, sizeof one); (void)ignored; }
static inline void prism_eventfd_drain(int fd) { uint64_t value; ssize_t ignored = read(fd, &value, sizeof value); (void)ignored; }
static inline int prism_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
/* operation: EPOLL_CTL_ADD / MOD / DEL; `want`: bit 1 readable, bit 2 writable. */
static inline int prism_epoll_control(int epoll_fd, int operation, int fd, int want) {
    struct epoll_event event;
    event.events = (want & 1 ? EPOLLIN : 0) | (want & 2 ? EPOLLOUT : 0);
    event.data.u64 = 0;
    event.data.fd = fd;
    return epoll_ctl(epoll_fd, operation, fd, &event);
}
/* Waits; fills fds[i] and flags[i] (CURL_CSELECT_IN/OUT/ERR) for up to `capacity` ready descriptors. */
static inline int prism_epoll_wait(int epoll_fd, int *fds, int *flags, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    int count = epoll_wait(epoll_fd, events, capacity < 64 ? capacity : 64, timeout_ms);
    for (int i = 0; i < count; i++) {
        fds[i] = events[i].data.fd;
        flags[i] = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
                 | (events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    }
    return count;
}
#endif
