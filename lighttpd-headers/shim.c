#include "first.h"

#include <limits.h>

#include "base.h"
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
