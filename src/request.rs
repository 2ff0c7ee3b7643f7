//! Which requests count, and with which bytes: the counting decision, as a
//! pure function of plain facts the hooks read out of lighttpd.
//!
//! The rule (lighttpd calls the two request hooks for HTTP/1 requests and
//! HTTP/2 streams alike):
//!
//! - `request_done`: every request that got a status, with exactly the
//!   numbers mod_accesslog prints as `%I` and `%O`
//!   (`http_request_stats_bytes_in/out`). lighttpd calls it once per
//!   request, after the last byte was queued, with keep-alive and
//!   pipelining checkpoints already applied. The one exception is skipped:
//!   when an HTTP/2 connection ends, lighttpd calls it again for the
//!   connection itself (status 100, `PRI *`), carrying the wire bytes of
//!   all its streams, which were counted already.
//! - `request_reset`: a request whose headers were parsed
//!   (`rqst_header_len > 0`) but that never got a status (the client gave
//!   up during an upload, or a timeout) never reaches `request_done` and is
//!   missing from the access log; its bytes are counted here. For an HTTP/2
//!   stream lighttpd has zeroed the read counters just before this hook
//!   (h2.c, request_release), so the bytes in are rebuilt from what they
//!   held: the HTTP/1-style header length plus the DATA payload read.
//!   Requests with a status are left alone here: either `request_done`
//!   counted them, or the reset comes from an error-handler restart of a
//!   request that `request_done` will still see. Resets after the request
//!   was reset once (connection close) find `rqst_header_len` back at 0.
//!
//! Bytes of connections that never complete a request header, TLS records
//! and HTTP/2 framing belong to no request and are not counted.

use crate::counters::Traffic;

/// The hook that saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `handle_request_done`: the request got its response.
    Done,
    /// `handle_request_reset`: the request's state is being cleared.
    Reset,
}

/// Where the request sits in its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x (and anything not HTTP/2).
    Http1,
    /// The request record of an HTTP/2 connection itself
    /// (`r == &r->con->request`), not one of its streams.
    H2Connection,
    /// One HTTP/2 stream.
    H2Stream,
}

/// What the hooks read out of a lighttpd `request_st`, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub hook: Hook,
    pub protocol: Protocol,
    /// `r->http_status`: 0 while no response status was set.
    pub http_status: i32,
    /// `r->rqst_header_len`: length of the parsed request header, 0 before
    /// a header was parsed and after a reset.
    pub header_len: u32,
    /// `r->reqbody_queue.bytes_in`: request body bytes read.
    pub body_read: i64,
    /// `http_request_stats_bytes_in(r)`: mod_accesslog's `%I`.
    pub stats_in: i64,
    /// `http_request_stats_bytes_out(r)`: mod_accesslog's `%O`.
    pub stats_out: i64,
    /// `r->uri.authority`: the host lighttpd parsed (may be empty).
    pub authority: &'a [u8],
    /// `r->server_name`: `server.name` of the scope, the key of requests
    /// without a host.
    pub server_name: &'a [u8],
    /// lighttpd's wall clock (`log_epoch_secs`) at the hook.
    pub now: i64,
}

/// A request the module counts: whose bytes, how many, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted<'a> {
    pub authority: &'a [u8],
    pub server_name: &'a [u8],
    pub traffic: Traffic,
    /// Decides the day the bytes belong to.
    pub now: i64,
}

/// The counting decision: `Some` with the bytes to count, or `None` when
/// this hook call must not count the request (see the module docs).
pub fn counted<'a>(facts: &RequestFacts<'a>) -> Option<Counted<'a>> {
    if facts.protocol == Protocol::H2Connection {
        return None;
    }
    let (bytes_in, bytes_out) = match facts.hook {
        Hook::Done => (facts.stats_in, facts.stats_out),
        Hook::Reset if facts.http_status != 0 || facts.header_len == 0 => return None,
        Hook::Reset if facts.protocol == Protocol::H2Stream => (
            i64::from(facts.header_len).saturating_add(facts.body_read),
            facts.stats_out,
        ),
        Hook::Reset => (facts.stats_in, facts.stats_out),
    };
    // lighttpd's counters are off_t; a negative one would be a bug there,
    // never a reason to subtract from a row.
    let traffic = Traffic {
        bytes_in: u64::try_from(bytes_in).unwrap_or(0),
        bytes_out: u64::try_from(bytes_out).unwrap_or(0),
    };
    (traffic != Traffic::default()).then_some(Counted {
        authority: facts.authority,
        server_name: facts.server_name,
        traffic,
        now: facts.now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished HTTP/1 request: 80 header bytes and 20 body bytes in
    /// (100 in all, as `%I` shows), 1000 out.
    fn done() -> RequestFacts<'static> {
        RequestFacts {
            hook: Hook::Done,
            protocol: Protocol::Http1,
            http_status: 200,
            header_len: 80,
            body_read: 20,
            stats_in: 100,
            stats_out: 1000,
            authority: b"a.example",
            server_name: b"",
            now: 1_795_910_399,
        }
    }

    /// The same request in another place of its connection.
    fn as_(protocol: Protocol, f: RequestFacts<'static>) -> RequestFacts<'static> {
        RequestFacts { protocol, ..f }
    }

    /// The same request seen by the reset hook, with `status` set.
    fn reset(http_status: i32, f: RequestFacts<'static>) -> RequestFacts<'static> {
        RequestFacts {
            hook: Hook::Reset,
            http_status,
            ..f
        }
    }

    /// The same request with other `%I` / `%O` counters.
    fn stats(stats_in: i64, stats_out: i64, f: RequestFacts<'static>) -> RequestFacts<'static> {
        RequestFacts {
            stats_in,
            stats_out,
            ..f
        }
    }

    fn traffic(f: RequestFacts<'_>) -> Option<(u64, u64)> {
        counted(&f).map(|c| (c.traffic.bytes_in, c.traffic.bytes_out))
    }

    #[test]
    fn a_finished_request_counts_what_the_access_log_shows() {
        let c = counted(&done()).expect("counted");
        assert_eq!(c.traffic.bytes_in, 100);
        assert_eq!(c.traffic.bytes_out, 1000);
        assert_eq!(c.authority, b"a.example");
        assert_eq!(c.now, 1_795_910_399);
        let stream = as_(Protocol::H2Stream, done());
        assert_eq!(traffic(stream), Some((100, 1000)), "HTTP/2 streams alike");
    }

    #[test]
    fn the_http2_connection_record_never_counts() {
        let record = as_(Protocol::H2Connection, done());
        assert_eq!(traffic(record), None, "its bytes are the streams' again");
        assert_eq!(traffic(reset(0, record)), None);
    }

    #[test]
    fn a_reset_after_a_status_leaves_the_request_to_request_done() {
        assert_eq!(traffic(reset(200, done())), None);
        assert_eq!(traffic(reset(200, as_(Protocol::H2Stream, done()))), None);
    }

    #[test]
    fn a_reset_of_a_request_without_header_counts_nothing() {
        // The second reset of a request (connection close) and a
        // connection that never completed a header.
        let no_header = RequestFacts {
            header_len: 0,
            ..done()
        };
        assert_eq!(traffic(reset(0, no_header)), None);
    }

    #[test]
    fn an_http1_request_without_status_counts_at_reset() {
        let aborted_upload = stats(65_536, 0, done());
        assert_eq!(traffic(reset(0, aborted_upload)), Some((65_536, 0)));
    }

    #[test]
    fn a_cancelled_http2_stream_rebuilds_its_bytes_in() {
        // lighttpd zeroed the stream's read counters before the hook;
        // header and body counts still hold what was read.
        let cancelled = RequestFacts {
            header_len: 120,
            body_read: 40_000,
            ..stats(0, 0, as_(Protocol::H2Stream, done()))
        };
        assert_eq!(traffic(reset(0, cancelled)), Some((40_120, 0)));
    }

    #[test]
    fn empty_or_negative_counters_are_not_counted() {
        assert_eq!(traffic(stats(0, 0, done())), None);
        assert_eq!(traffic(stats(-5, -1, done())), None);
        assert_eq!(traffic(stats(-5, 7, done())), Some((0, 7)));
    }
}
