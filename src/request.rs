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

/// What decides whether a hook call counts a request: a few fields of
/// lighttpd's `request_st`, cheap to read on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    pub hook: Hook,
    pub protocol: Protocol,
    /// `r->http_status`: 0 while no response status was set.
    pub http_status: i32,
    /// `r->rqst_header_len`: length of the parsed request header, 0 before
    /// a header was parsed and after a reset.
    pub header_len: u32,
}

/// Which of the request's counters hold its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// `%I` and `%O`, as mod_accesslog logs them.
    AccessLog,
    /// An HTTP/2 stream reset without a status: its read counters were
    /// zeroed, so bytes in are the header length plus the body read.
    CancelledStream,
}

/// The request's byte counters, read only once [`measure`] said which
/// are needed (a reset of a finished request, the common case, reads none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestBytes {
    /// `http_request_stats_bytes_in(r)`: mod_accesslog's `%I`.
    pub stats_in: i64,
    /// `http_request_stats_bytes_out(r)`: mod_accesslog's `%O`.
    pub stats_out: i64,
    /// `r->rqst_header_len`.
    pub header_len: u32,
    /// `r->reqbody_queue.bytes_in`: request body bytes read.
    pub body_read: i64,
}

/// A request the module counts: whose bytes, how many, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted<'a> {
    /// `r->uri.authority`: the host lighttpd parsed (may be empty).
    pub authority: &'a [u8],
    /// `r->server_name`: `server.name` of the scope, the key of requests
    /// without a host.
    pub server_name: &'a [u8],
    pub traffic: Traffic,
    /// lighttpd's wall clock (`log_epoch_secs`): decides the day.
    pub now: i64,
}

/// The counting decision: whether this hook call counts the request, and
/// from which counters (see the module docs); `None`: it does not.
#[inline]
pub fn measure(facts: &RequestFacts) -> Option<Measure> {
    // Most resets are of requests that got a status: decided first.
    match (facts.hook, facts.protocol) {
        (Hook::Reset, _) if facts.http_status != 0 || facts.header_len == 0 => None,
        (_, Protocol::H2Connection) => None,
        (Hook::Done, _) => Some(Measure::AccessLog),
        (Hook::Reset, Protocol::H2Stream) => Some(Measure::CancelledStream),
        (Hook::Reset, Protocol::Http1) => Some(Measure::AccessLog),
    }
}

/// The bytes `measure` says to count; `None` when there are none.
#[inline]
pub fn traffic(measure: Measure, c: &RequestBytes) -> Option<Traffic> {
    let bytes_in = match measure {
        Measure::AccessLog => c.stats_in,
        Measure::CancelledStream => i64::from(c.header_len).saturating_add(c.body_read),
    };
    // lighttpd's counters are off_t; a negative one would be a bug there,
    // never a reason to subtract from a row.
    let traffic = Traffic {
        bytes_in: u64::try_from(bytes_in).unwrap_or(0),
        bytes_out: u64::try_from(c.stats_out).unwrap_or(0),
    };
    (traffic != Traffic::default()).then_some(traffic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Hook::{Done, Reset};
    use Protocol::{H2Connection, H2Stream, Http1};

    fn facts(hook: Hook, protocol: Protocol, http_status: i32, header_len: u32) -> RequestFacts {
        RequestFacts {
            hook,
            protocol,
            http_status,
            header_len,
        }
    }

    #[test]
    fn a_finished_request_counts_what_the_access_log_shows() {
        for protocol in [Http1, H2Stream] {
            let m = measure(&facts(Done, protocol, 200, 80));
            assert_eq!(m, Some(Measure::AccessLog), "{protocol:?}");
        }
    }

    #[test]
    fn the_http2_connection_record_never_counts() {
        // Its bytes are the streams' again, as wire bytes.
        assert_eq!(measure(&facts(Done, H2Connection, 100, 24)), None);
        assert_eq!(measure(&facts(Reset, H2Connection, 0, 24)), None);
    }

    #[test]
    fn a_reset_after_a_status_leaves_the_request_to_request_done() {
        for protocol in [Http1, H2Stream] {
            assert_eq!(measure(&facts(Reset, protocol, 200, 80)), None);
        }
    }

    #[test]
    fn a_reset_of_a_request_without_header_counts_nothing() {
        // The second reset of a request (connection close) and a
        // connection that never completed a header.
        for protocol in [Http1, H2Stream] {
            assert_eq!(measure(&facts(Reset, protocol, 0, 0)), None);
        }
    }

    #[test]
    fn an_http1_request_without_status_counts_at_reset() {
        let m = measure(&facts(Reset, Http1, 0, 80)).expect("counted");
        let aborted_upload = RequestBytes {
            stats_in: 65_536,
            header_len: 80,
            body_read: 65_456,
            ..RequestBytes::default()
        };
        assert_eq!(traffic(m, &aborted_upload), Some(t(65_536, 0)));
    }

    #[test]
    fn a_cancelled_http2_stream_rebuilds_its_bytes_in() {
        let m = measure(&facts(Reset, H2Stream, 0, 120)).expect("counted");
        assert_eq!(m, Measure::CancelledStream);
        // lighttpd zeroed the stream's read counters before the hook;
        // header and body counts still hold what was read.
        let cancelled = RequestBytes {
            stats_in: 0,
            stats_out: 0,
            header_len: 120,
            body_read: 40_000,
        };
        assert_eq!(traffic(m, &cancelled), Some(t(40_120, 0)));
    }

    fn t(bytes_in: u64, bytes_out: u64) -> Traffic {
        Traffic {
            bytes_in,
            bytes_out,
        }
    }

    fn stats(stats_in: i64, stats_out: i64) -> RequestBytes {
        RequestBytes {
            stats_in,
            stats_out,
            ..RequestBytes::default()
        }
    }

    #[test]
    fn empty_or_negative_counters_are_not_counted() {
        let m = Measure::AccessLog;
        assert_eq!(traffic(m, &stats(100, 1000)), Some(t(100, 1000)));
        assert_eq!(traffic(m, &stats(0, 0)), None);
        assert_eq!(traffic(m, &stats(-5, -1)), None);
        assert_eq!(traffic(m, &stats(-5, 7)), Some(t(0, 7)));
    }
}
