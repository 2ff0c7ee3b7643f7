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
