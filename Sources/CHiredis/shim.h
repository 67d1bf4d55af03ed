#ifndef PRISM_CHIREDIS_SHIM_H
#define PRISM_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/async.h>

/* The event hooks hiredis calls to (un)register interest in its socket; Swift sets them through
 * these helpers because the fields sit in an anonymous struct. */
static inline void prism_redis_set_event_hooks(redisAsyncContext *context, void *data,
                                               void (*add_read)(void *), void (*del_read)(void *),
                                               void (*add_write)(void *), void (*del_write)(void *),
                                               void (*cleanup)(void *)) {
    context->ev.data = data;
    context->ev.addRead = add_read;
    context->ev.delRead = del_read;
    context->ev.addWrite = add_write;
    context->ev.delWrite = del_write;
    context->ev.cleanup = cleanup;
}

static inline void prism_redis_set_data(redisAsyncContext *context, void *data) { context->data = data; }
static inline void *prism_redis_get_data(const redisAsyncContext *context) { return context->data; }
static inline int prism_redis_fd(const redisAsyncContext *context) { return context->c.fd; }
static inline int prism_redis_error(const redisAsyncContext *context) { return context->err; }
static inline const char *prism_redis_error_text(const redisAsyncContext *context) { return context->errstr; }
#endif
