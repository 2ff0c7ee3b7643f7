//! What lighttpd's process and its flusher process say to each other over
//! their socket pair (`SOCK_SEQPACKET`: every message arrives whole or not
//! at all, in order). Plain Rust, no I/O.
//!
//! - lighttpd → flusher: [`Message::Rows`], counts handed over;
//! - flusher → lighttpd: [`Message::Line`], one line for lighttpd's error
//!   log.
//!
//! A rows message is `b'R'` followed by records
//! `host length (u16) | host | day (i32) | bytes in (u64) | bytes out (u64)`,
//! little-endian; a line message is `b'L'` followed by the UTF-8 text.
//! Both ends are the same build of the module (the flusher process is a
//! fork of lighttpd's), so there is no versioning.

use crate::counters::{Counters, Row, Traffic};
use crate::day::Day;

/// The largest message either side sends. Well under the socket's send
/// buffer (a `SOCK_SEQPACKET` message must fit in it whole).
pub const MAX_MESSAGE: usize = 32 * 1024;

const ROWS: u8 = b'R';
const LINE: u8 = b'L';
/// A record without its host.
const FIXED: usize = 2 + 4 + 8 + 8;

/// A decoded message.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Rows(Counters),
    Line(String),
}

/// A message that is not one of ours: a bug, never expected.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// Rows as messages of at most [`MAX_MESSAGE`] bytes, each a whole number
/// of records. Every row is in exactly one message, in the order given.
pub fn encode_rows<'a>(rows: impl IntoIterator<Item = &'a Row>) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut current = vec![ROWS];
    for row in rows {
        let host = row.host.as_bytes();
        // Host keys are at most 255 bytes (hostkey.rs); a longer one would
        // still fit a u16 and a message.
        let host = &host[..host.len().min(usize::from(u16::MAX))];
        if current.len() + FIXED + host.len() > MAX_MESSAGE {
            messages.push(std::mem::replace(&mut current, vec![ROWS]));
        }
        current.extend_from_slice(&(host.len() as u16).to_le_bytes());
        current.extend_from_slice(host);
        current.extend_from_slice(&row.day.0.to_le_bytes());
        current.extend_from_slice(&row.traffic.bytes_in.to_le_bytes());
        current.extend_from_slice(&row.traffic.bytes_out.to_le_bytes());
    }
    if current.len() > 1 {
        messages.push(current);
    }
    messages
}

/// A log line as a message, cut (at a character boundary) to fit.
pub fn encode_line(line: &str) -> Vec<u8> {
    let mut end = line.len().min(MAX_MESSAGE - 1);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut message = Vec::with_capacity(end + 1);
    message.push(LINE);
    message.extend_from_slice(&line.as_bytes()[..end]);
    message
}

pub fn decode(message: &[u8]) -> Result<Message, Malformed> {
    match message.split_first() {
        Some((&ROWS, mut rest)) => {
            let mut counts = Counters::new();
            while !rest.is_empty() {
                let (host, day, traffic, after) = record(rest)?;
                counts.add(host, day, traffic);
                rest = after;
            }
            Ok(Message::Rows(counts))
        }
        Some((&LINE, text)) => Ok(Message::Line(String::from_utf8_lossy(text).into_owned())),
        _ => Err(Malformed("unknown message type")),
    }
}

fn record(bytes: &[u8]) -> Result<(&str, Day, Traffic, &[u8]), Malformed> {
    let (len, rest) = take::<2>(bytes)?;
    let len = usize::from(u16::from_le_bytes(len));
    if rest.len() < len {
        return Err(Malformed("record cut short"));
    }
    let (host, rest) = rest.split_at(len);
    let host = std::str::from_utf8(host).map_err(|_| Malformed("host not UTF-8"))?;
    let (day, rest) = take::<4>(rest)?;
    let (bytes_in, rest) = take::<8>(rest)?;
    let (bytes_out, rest) = take::<8>(rest)?;
    let traffic = Traffic {
        bytes_in: u64::from_le_bytes(bytes_in),
        bytes_out: u64::from_le_bytes(bytes_out),
    };
    Ok((host, Day(i32::from_le_bytes(day)), traffic, rest))
}

fn take<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8]), Malformed> {
    if bytes.len() < N {
        return Err(Malformed("record cut short"));
    }
    let (head, rest) = bytes.split_at(N);
    let mut array = [0u8; N];
    array.copy_from_slice(head);
    Ok((array, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: usize, host_len: usize) -> Counters {
        let mut c = Counters::new();
        for i in 0..n {
            let host = format!("{i:0>width$}", width = host_len);
            let traffic = Traffic {
                bytes_in: i as u64 * 1_000_000_007,
                bytes_out: u64::MAX - i as u64,
            };
            c.add(&host, Day(20_000 + (i % 3) as i32), traffic);
        }
        c
    }

    fn round_trip(c: &Counters) -> Counters {
        let mut back = Counters::new();
        for message in encode_rows(&c.rows()) {
            assert!(message.len() <= MAX_MESSAGE, "{}", message.len());
            match decode(&message).unwrap() {
                Message::Rows(part) => back.merge(part),
                other => panic!("{other:?}"),
            }
        }
        back
    }

    #[test]
    fn rows_come_back_exactly_in_one_message_or_many() {
        let few = counts(3, 12);
        assert_eq!(encode_rows(&few.rows()).len(), 1);
        assert_eq!(round_trip(&few), few);
        let many = counts(5_000, 200);
        assert!(encode_rows(&many.rows()).len() > 20);
        assert_eq!(round_trip(&many), many);
        assert!(encode_rows(&[]).is_empty(), "nothing to send, no message");
    }

    #[test]
    fn lines_come_back_and_long_ones_are_cut_at_a_character() {
        let line = "database unavailable: 12 bytes in";
        assert_eq!(
            decode(&encode_line(line)).unwrap(),
            Message::Line(line.into())
        );
        let long = "é".repeat(MAX_MESSAGE);
        let message = encode_line(&long);
        assert!(message.len() <= MAX_MESSAGE);
        let Message::Line(back) = decode(&message).unwrap() else {
            panic!()
        };
        assert!(long.starts_with(&back) && back.len() >= MAX_MESSAGE - 3);
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let mut good = encode_rows(&counts(2, 5).rows()).remove(0);
        for cut in 1..good.len() {
            let r = decode(&good[..cut]);
            assert!(
                matches!(r, Err(_) | Ok(Message::Rows(_))),
                "cut at {cut}: {r:?}"
            );
        }
        assert!(decode(&good[..good.len() - 1]).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(b"X").is_err());
        good[3] = 0xff; // inside the first host
        assert_eq!(decode(&good), Err(Malformed("host not UTF-8")));
    }
}
