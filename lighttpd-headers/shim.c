#include "first.h"

#include <limits.h>

#include "base.h"
#include "chunk.h"
#include "http_header.h"
#include "log.h"
#include "request.h"

#include "shim.h"

void bwc_request_bytes(const struct request_st *r, int64_t *in, int64_t *out)
{
    *in = (int64_t)http_request_stats_bytes_in(r);
    *out = (int64_t)http_request_stats_bytes_out(r);
}

void bwc_log(struct fdlog_st *errh, const char *file, unsigned int line,
             const char *msg, size_t len)
{
    if (len > INT_MAX) len = INT_MAX;
    log_error(errh, file, line, "%.*s", (int)len, msg);
}

void bwc_respond(struct request_st *r, int status,
                 const char *content_type, size_t content_type_len,
                 const char *body, size_t len)
{
    http_header_response_set(r, HTTP_HEADER_CONTENT_TYPE,
                             CONST_STR_LEN("Content-Type"),
                             content_type, (uint32_t)content_type_len);
    /* Live figures: no cache may keep them. */
    http_header_response_set(r, HTTP_HEADER_CACHE_CONTROL,
                             CONST_STR_LEN("Cache-Control"),
                             CONST_STR_LEN("no-store"));
    if (status == 405)
        http_header_response_set(r, HTTP_HEADER_ALLOW, CONST_STR_LEN("Allow"),
                                 CONST_STR_LEN("GET, HEAD"));
    chunkqueue_append_mem(&r->write_queue, body, len);
    r->http_status = status;
    r->resp_body_finished = 1;
}

/* The first members of a connection's HTTP/2 state, in every release:
 * 1.4.7x+ declares them as `hxcon` in request.h ("must match" h2.h's
 * struct h2con); 1.4.69's h2con (h2.h) begins with the same two. */
#ifdef BWC_HAVE_HXCON
typedef hxcon bwc_streams;
#define BWC_STREAMS(con) ((const bwc_streams *)(con)->hx)
#else
typedef struct { request_st *r[8]; uint32_t rused; } bwc_streams;
#define BWC_STREAMS(con) ((const bwc_streams *)(const void *)(con)->h2)
#endif

size_t bwc_requests_in_progress(struct server *srv, struct request_st **out,
                                size_t cap)
{
    size_t n = 0;
    for (connection *con = srv->conns; con; con = con->next) {
        const bwc_streams * const hx = BWC_STREAMS(con);
        if (hx == NULL) {
            request_st * const r = &con->request;
            if (r->rqst_header_len > 0) {
                if (n < cap) out[n] = r;
                ++n;
            }
            continue;
        }
        /* HTTP/2: each stream; the connection's own request record is its
         * wire bytes, never counted. */
        for (uint32_t i = 0, used = hx->rused; i < used && i < 8; ++i) {
            request_st * const r = hx->r[i];
            if (r != NULL && r->rqst_header_len > 0) {
                if (n < cap) out[n] = r;
                ++n;
            }
        }
    }
    return n;
}
