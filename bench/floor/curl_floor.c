/* curl_floor.c: the upstream half of a proxied request, alone. It sends the benchmark's request
 * to the mock upstream and reads the answer with libcurl, driven the way the gateway drives it (a
 * multi handle on the socket API, sockets in an epoll set, easy handles and connections reused),
 * and nothing else: no client connection, no parsing, no translation. Its CPU time per request is
 * the least any gateway whose outbound engine is libcurl can spend on this machine.
 *
 *   curl_floor URL BODY_FILE IN_FLIGHT SECONDS  ->  "requests=N rps=R user_us=U sys_us=S"
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>

static int epoll_fd;
static long curl_timeout = -1;

static int on_socket(CURL *easy, curl_socket_t socket, int what, void *user, void *socket_user) {
    struct epoll_event event = {0};
    event.data.fd = socket;
    if (what == CURL_POLL_REMOVE) return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, socket, &event), 0;
    event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, socket, &event) != 0) epoll_ctl(epoll_fd, EPOLL_CTL_ADD, socket, &event);
    return 0;
}
static int on_timer(CURLM *multi, long timeout, void *user) { curl_timeout = timeout; return 0; }
static size_t discard(char *bytes, size_t size, size_t count, void *user) { return size * count; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static double cpu_us(int user) {
    struct rusage usage; getrusage(RUSAGE_SELF, &usage);
    struct timeval t = user ? usage.ru_utime : usage.ru_stime;
    return t.tv_sec * 1e6 + t.tv_usec;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: curl_floor URL BODY_FILE IN_FLIGHT SECONDS\n"); return 2; }
    const char *url = argv[1];
    int in_flight = atoi(argv[3]);
    double seconds = atof(argv[4]);
    FILE *file = fopen(argv[2], "rb");
    if (!file) { perror(argv[2]); return 2; }
    static char body[1 << 20];
    size_t length = fread(body, 1, sizeof body, file);
    fclose(file);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    epoll_fd = epoll_create1(0);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    struct curl_slist *headers = curl_slist_append(NULL, "authorization: Bearer sk-bench-upstream-unused");
    headers = curl_slist_append(headers, "content-type: application/json");
    for (int i = 0; i < in_flight; i++) {
        CURL *easy = curl_easy_init();
        curl_easy_setopt(easy, CURLOPT_URL, url);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)length);
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, discard);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(easy, CURLOPT_PROXY, "");
        curl_multi_add_handle(multi, easy);
    }
    /* One second of warm-up (connections made), then the counted part. */
    long done = 0, counted_from = -1;
    double start = now(), user0 = 0, sys0 = 0;
    int running = 0;
    for (;;) {
        struct epoll_event events[64];
        int count = epoll_wait(epoll_fd, events, 64, curl_timeout < 0 ? 1000 : (int)curl_timeout);
        if (count == 0) { curl_timeout = -1; curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running); }
        for (int i = 0; i < count; i++) {
            int flags = (events[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
                      | (events[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(multi, events[i].data.fd, flags, &running);
        }
        if (curl_timeout == 0) { curl_timeout = -1; curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running); }
        CURLMsg *message;
        int left;
        while ((message = curl_multi_info_read(multi, &left))) {
            if (message->msg != CURLMSG_DONE) continue;
            if (message->data.result != CURLE_OK) {
                fprintf(stderr, "curl_floor: %s\n", curl_easy_strerror(message->data.result));
                return 1;
            }
            CURL *easy = message->easy_handle;
            curl_multi_remove_handle(multi, easy);
            done++;
            curl_multi_add_handle(multi, easy); /* the same handle again: its connection is reused */
        }
        double elapsed = now() - start;
        if (counted_from < 0 && elapsed >= 1) {
            counted_from = done; start = now(); user0 = cpu_us(1); sys0 = cpu_us(0);
        } else if (counted_from >= 0 && elapsed >= seconds) {
            long requests = done - counted_from;
            printf("requests=%ld rps=%.0f user_us=%.1f sys_us=%.1f\n", requests, requests / elapsed,
                   (cpu_us(1) - user0) / requests, (cpu_us(0) - sys0) / requests);
            return 0;
        }
    }
}
