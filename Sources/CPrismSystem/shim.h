#ifndef PRISM_CPRISMSYSTEM_SHIM_H
#define PRISM_CPRISMSYSTEM_SHIM_H
/* Linux event plumbing for the host's own threads (the event loops, the Redis client): eventfd
 * wake-ups, epoll, accept. */
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* accept4 is a GNU extension its header hides without _GNU_SOURCE (glibc has it since 2.10):
 * a connection's socket non-blocking and close-on-exec in the same call. */
extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
static inline int prism_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC); }

/* Large buffers (request and answer bodies) from the heap, kept for reuse: glibc would otherwise
 * mmap and munmap each one above its threshold, paying page faults on every copy. 32 MiB is the
 * largest threshold glibc accepts on 64-bit (a larger one is refused and, with the trim threshold
 * set, would freeze the default 128 KiB). Returns 1 when both were taken. */
static inline int prism_malloc_keep_large_buffers(void) {
    return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 64 << 20) == 1;
}

/* How many times the calling thread was preempted (involuntary context switches, getrusage's
 * RUSAGE_THREAD, which <sys/resource.h> hides without _GNU_SOURCE); -1 on failure. */
#include <sys/resource.h>
static inline long prism_thread_preemptions(void) {
    struct rusage usage;
    return getrusage(1 /* RUSAGE_THREAD */, &usage) == 0 ? usage.ru_nivcsw : -1;
}

/* CPU affinity for the event loops. sched_getaffinity/sched_setaffinity and the CPU_SET macros
 * are GNU extensions <sched.h> hides without _GNU_SOURCE; the mask here is a plain bit array of
 * 1024 CPUs (the kernel's cpu_set_t), pid 0 the calling thread. */
extern int sched_getaffinity(int pid, size_t size, void *mask);
extern int sched_setaffinity(int pid, size_t size, const void *mask);
/* The CPUs thread `tid` (0: the calling thread) may run on, in `cpus` (up to `capacity`): how
 * many, or -1. */
static inline int prism_allowed_cpus(int tid, int *cpus, int capacity) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
    if (sched_getaffinity(tid, sizeof mask, mask) != 0) return -1;
    int count = 0;
    for (int cpu = 0; cpu < 1024 && count < capacity; cpu++) {
        if (mask[cpu / (8 * sizeof(unsigned long))] >> (cpu % (8 * sizeof(unsigned long))) & 1) cpus[count++] = cpu;
    }
    return count;
}
/* Lets thread `tid` (0: the calling thread; another of this process's threads needs no
 * privilege) run on the `count` CPUs in `cpus`: 0, or -1 (errno says why). The kernel may keep
 * fewer (a cpuset), so a caller that must know reads the mask back. */
static inline int prism_set_thread_cpus(int tid, const int *cpus, int count) {
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
    for (int index = 0; index < count; index++) {
        int cpu = cpus[index];
        if (cpu >= 0 && cpu < 1024) mask[cpu / (8 * sizeof(unsigned long))] |= 1UL << (cpu % (8 * sizeof(unsigned long)));
    }
    return sched_setaffinity(tid, sizeof mask, mask);
}
/* An idle upstream connection that received an answer nobody asked for: "HTTP/" waits unread
 * (a server's 408 before it closes). libcurl 7.88 checks a pooled connection before reuse by
 * peeking one byte, finds it alive, and would read those bytes as the next request's answer.
 * 1 if so, else 0. A TLS connection's bytes never start so (a record starts with 0x14-0x18). */
#include <string.h>
static inline int prism_socket_has_unsolicited_http(int fd) {
    char bytes[5];
    return recv(fd, bytes, sizeof bytes, MSG_PEEK | MSG_DONTWAIT) == (ssize_t)sizeof bytes
        && memcmp(bytes, "HTTP/", sizeof bytes) == 0;
}
/* Ends the connection at once and drops what it had unread (connect with AF_UNSPEC: a reset is
 * sent); the descriptor stays open for its owner. libcurl's next send on it fails, and libcurl
 * retries a request whose reused connection failed that way on a new connection. */
static inline int prism_socket_disconnect(int fd) {
    struct sockaddr address;
    memset(&address, 0, sizeof address);
    address.sa_family = AF_UNSPEC;
    return connect(fd, &address, sizeof address);
}
/* The calling thread's kernel id (glibc 2.30+ has gettid(), Debian 12's headers hide it). */
static inline int prism_thread_id(void) { return (int)syscall(SYS_gettid); }

static inline int prism_eventfd_create(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
static inline void prism_eventfd_signal(int fd) { uint64_t one = 1; ssize_t ignored = write(fd, &one, sizeof one); (void)ignored; }
static inline void prism_eventfd_drain(int fd) { uint64_t value; ssize_t ignored = read(fd, &value, sizeof value); (void)ignored; }
static inline int prism_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }
/* operation: EPOLL_CTL_ADD / MOD / DEL; `want`: bit 1 readable, bit 2 writable, bit 4 the peer
 * closed its side (EPOLLRDHUP), bit 8 edge-triggered (EPOLLET). `tag` comes back with the
 * descriptor's events: the event loops put the descriptor and a generation in it, so that an
 * event read in one epoll_wait batch for a socket closed earlier in that batch, whose number was
 * then reused, is recognised as stale. */
static inline int prism_epoll_control_tagged(int epoll_fd, int operation, int fd, int want, uint64_t tag) {
    struct epoll_event event;
    event.events = (want & 1 ? EPOLLIN : 0) | (want & 2 ? EPOLLOUT : 0) | (want & 4 ? EPOLLRDHUP : 0)
                 | (want & 8 ? EPOLLET : 0);
    event.data.u64 = tag;
    return epoll_ctl(epoll_fd, operation, fd, &event);
}
/* Waits; fills tags[i] and flags[i] (1 readable, 2 writable, 4 error or hang-up: the values of
 * libcurl's CURL_CSELECT_IN/OUT/ERR; 8 the peer closed its side, only when asked with want 4)
 * for up to `capacity` (at most 64) ready descriptors. */
static inline int prism_epoll_wait_tagged(int epoll_fd, uint64_t *tags, int *flags, int capacity, int timeout_ms) {
    struct epoll_event events[64];
    int count = epoll_wait(epoll_fd, events, capacity < 64 ? capacity : 64, timeout_ms);
    for (int i = 0; i < count; i++) {
        tags[i] = events[i].data.u64;
        flags[i] = (events[i].events & EPOLLIN ? 1 : 0) | (events[i].events & EPOLLOUT ? 2 : 0)
                 | (events[i].events & (EPOLLERR | EPOLLHUP) ? 4 : 0) | (events[i].events & EPOLLRDHUP ? 8 : 0);
    }
    return count;
}
/* The same with the descriptor as its own tag (the Redis client's loop). */
static inline int prism_epoll_control(int epoll_fd, int operation, int fd, int want) {
    return prism_epoll_control_tagged(epoll_fd, operation, fd, want, (uint32_t)fd);
}
static inline int prism_epoll_wait(int epoll_fd, int *fds, int *flags, int capacity, int timeout_ms) {
    uint64_t tags[64];
    int count = prism_epoll_wait_tagged(epoll_fd, tags, flags, capacity, timeout_ms);
    for (int i = 0; i < count; i++) fds[i] = (int)(uint32_t)tags[i];
    return count;
}

/* writev without SIGPIPE: a client that went away must fail the write, not kill the process. */
static inline ssize_t prism_send_vectors(int fd, const struct iovec *vectors, int count) {
    struct msghdr message = {0};
    message.msg_iov = (struct iovec *)vectors;
    message.msg_iovlen = (size_t)count;
    return sendmsg(fd, &message, MSG_NOSIGNAL);
}
#endif
