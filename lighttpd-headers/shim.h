/*
 * Tiny C helpers for what bindgen cannot translate: lighttpd's function-like
 * macros and its variadic printf-style logger. Compiled by build.rs against
 * exactly the headers and config.h that the bindings were generated from, so
 * they are always right for the targeted lighttpd version.
 */
#ifndef MOD_BW_COUNTER_SHIM_H
#define MOD_BW_COUNTER_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct request_st;
struct fdlog_st;
struct server;

/* http_request_stats_bytes_in(r) and _out(r), as mod_accesslog's %I and %O:
 * request bytes read so far (headers and body) and response bytes written,
 * each net of the per-request checkpoint. One call for both: this runs for
 * every request. */
void bwc_request_bytes(const struct request_st *r, int64_t *in, int64_t *out);

/* log_error(errh, file, line, "%.*s", len, msg): the message is data, never a
 * printf format. */
void bwc_log(struct fdlog_st *errh, const char *file, unsigned int line,
             const char *msg, size_t len);

/* Answers request r itself (the status URL): status, Content-Type, a
 * Cache-Control: no-store, Allow for 405, and the body (copied); the hook
 * then returns HANDLER_FINISHED, as mod_status does. */
void bwc_respond(struct request_st *r, int status,
                 const char *content_type, size_t content_type_len,
                 const char *body, size_t len);

/* The requests lighttpd is serving now, whose header has been read: each
 * HTTP/1.x connection's request, and each HTTP/2 stream (not the HTTP/2
 * connection's own record). Writes at most cap of them to out and returns
 * how many there are (more than cap: call again with room for them). */
size_t bwc_requests_in_progress(struct server *srv, struct request_st **out,
                                size_t cap);

#endif
