//! The row key of a request: which virtual host its bytes belong to.
//!
//! The rule (also in the README):
//! 1. Start from the host lighttpd parsed for the request (`r->uri.authority`,
//!    what mod_accesslog's `%V` prints): lighttpd has validated and
//!    lower-cased it.
//! 2. Drop a `:port` suffix (`example.org:8080` -> `example.org`); IPv6
//!    literals keep their brackets (`[::1]:80` -> `[::1]`).
//! 3. Drop trailing dots (`example.org.` -> `example.org`) and lower-case
//!    (again, defensively).
//! 4. Bytes a client can send that are not printable ASCII are written the
//!    way mod_accesslog writes them (`\xHH`, `\"`, `\\`, `\t`...), so the key
//!    is plain ASCII and matches the access log.
//! 5. Empty (HTTP/1.0 without Host, invalid requests): the scope's
//!    `server.name` if set, else [`NO_HOST`].
//! 6. Longer than the column (255): the first 238 bytes, `~`, and 16 hex
//!    digits of a 64-bit FNV-1a hash of the whole key: deterministic, so one
//!    long name always lands in one row, and distinct names stay distinct.

use crate::fnv::fnv1a64;

/// Key for requests without any host name.
pub const NO_HOST: &str = "_nohost";

/// `vhost varchar(255)`: the longest key we produce.
pub const MAX_KEY_LEN: usize = 255;
const HASH_SUFFIX_LEN: usize = 1 + 16;

/// Computes keys, reusing one scratch buffer so that the common case
/// allocates nothing.
#[derive(Debug, Default)]
pub struct KeyMaker {
    scratch: String,
}

impl KeyMaker {
    pub fn new() -> Self {
        Self::default()
    }

    /// The key for a request whose parsed host is `authority`;
    /// `server_name` is the fallback when it is empty.
    pub fn key<'a>(&'a mut self, authority: &'a [u8], server_name: &'a [u8]) -> &'a str {
        if let Some(key) = already_a_key(authority) {
            return key;
        }
        let host = strip_port_and_dots(authority);
        let host = if host.is_empty() {
            strip_port_and_dots(server_name)
        } else {
            host
        };
        if host.is_empty() {
            return NO_HOST;
        }
        self.finish(host)
    }

    /// The key of `authority` alone: `None` when it depends on the
    /// scope's `server_name` (nothing is left of `authority` once its port
    /// and trailing dots are gone). Then a key depends on its authority
    /// only, and can be remembered for it.
    pub fn authority_key<'a>(&'a mut self, authority: &'a [u8]) -> Option<&'a str> {
        if let Some(key) = already_a_key(authority) {
            return Some(key);
        }
        let host = strip_port_and_dots(authority);
        if host.is_empty() {
            return None;
        }
        Some(self.finish(host))
    }

    /// Steps 4 and 6 for a host that is not empty.
    fn finish<'a>(&'a mut self, host: &'a [u8]) -> &'a str {
        if host.len() <= MAX_KEY_LEN && classes(host) & ESCAPED == 0 {
            // SAFETY: every byte was just checked to be printable ASCII
            // (' ' to '~'), and ASCII is valid UTF-8; validating it again
            // would walk the bytes a second time on the request path.
            return unsafe { std::str::from_utf8_unchecked(host) };
        }
        self.scratch.clear();
        escape_into(host, &mut self.scratch);
        if self.scratch.len() > MAX_KEY_LEN {
            let hash = fnv1a64(self.scratch.as_bytes());
            self.scratch.truncate(MAX_KEY_LEN - HASH_SUFFIX_LEN);
            self.scratch.push_str(&format!("~{hash:016x}"));
        }
        &self.scratch
    }
}

/// A byte that steps 3 and 4 change (escape or lower-case).
const ESCAPED: u8 = 1;
/// A byte after which step 2 may drop something (`:`), or that starts an
/// IPv6 literal (`[`).
const PORT: u8 = 2;

/// What each byte asks of the rule: 0 for most (printable ASCII, not
/// upper case, not `"` or `\\`).
static CLASS: [u8; 256] = {
    let mut class = [ESCAPED; 256];
    let mut b = b' ';
    while b <= b'~' {
        class[b as usize] = match b {
            b'"' | b'\\' | b'A'..=b'Z' => ESCAPED,
            b':' | b'[' => PORT,
            _ => 0,
        };
        b += 1;
    }
    class
};

/// The classes of all of `host`'s bytes, or-ed: one table lookup a byte,
/// where the rule's own steps walk the bytes twice with several compares
/// a byte (about 150 instructions for a 14-byte name, against 50).
#[inline]
fn classes(host: &[u8]) -> u8 {
    host.iter().fold(0, |all, &b| all | CLASS[b as usize])
}

/// `authority` itself when the rule leaves it as it is: not empty, no
/// port, no trailing dot, nothing to escape or lower-case, short enough.
/// With lighttpd's host normalization (on by default) nearly every host
/// lighttpd parsed is already its key: the same answer as the rule, in
/// one pass over the bytes.
#[inline]
fn already_a_key(authority: &[u8]) -> Option<&str> {
    let last = *authority.last()?;
    if last == b'.' || authority.len() > MAX_KEY_LEN || classes(authority) != 0 {
        return None;
    }
    // SAFETY: class 0 bytes are printable ASCII (' ' to '~'), which is
    // valid UTF-8; validating it again would walk the bytes once more.
    Some(unsafe { std::str::from_utf8_unchecked(authority) })
}

/// Steps 2 and 3 without the lower-casing (done while escaping).
fn strip_port_and_dots(host: &[u8]) -> &[u8] {
    let mut h = host;
    if h.first() == Some(&b'[') {
        if let Some(end) = h.iter().position(|&b| b == b']') {
            h = &h[..=end];
        }
    } else if let Some(colon) = h.iter().rposition(|&b| b == b':') {
        if h[colon + 1..].iter().all(u8::is_ascii_digit) {
            h = &h[..colon];
        }
    }
    while let [rest @ .., b'.'] = h {
        h = rest;
    }
    h
}

/// mod_accesslog's `buffer_append_bs_escaped`, plus ASCII lower-casing.
fn escape_into(host: &[u8], out: &mut String) {
    for &b in host {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            0x0b => out.push_str("\\v"),
            0x0c => out.push_str("\\f"),
            b'\r' => out.push_str("\\r"),
            b' '..=b'~' => out.push(b.to_ascii_lowercase() as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str, s: &str) -> String {
        KeyMaker::new().key(a.as_bytes(), s.as_bytes()).to_string()
    }

    #[test]
    fn ports_dots_and_case() {
        assert_eq!(key("www.example.org", ""), "www.example.org");
        assert_eq!(key("www.example.org:8080", ""), "www.example.org");
        assert_eq!(key("www.example.org.", ""), "www.example.org");
        assert_eq!(key("www.example.org.:80", ""), "www.example.org");
        assert_eq!(key("WWW.Example.ORG", ""), "www.example.org");
        assert_eq!(key("127.0.0.1:8080", ""), "127.0.0.1");
        assert_eq!(key("[::1]:8080", ""), "[::1]");
        assert_eq!(key("[2001:db8::1]", ""), "[2001:db8::1]");
        // Not a port: kept as lighttpd gave it.
        assert_eq!(key("host:abc", ""), "host:abc");
    }

    #[test]
    fn missing_host_falls_back_to_server_name_then_fixed_key() {
        assert_eq!(key("", "srv.example"), "srv.example");
        assert_eq!(key("", "srv.example:81"), "srv.example");
        assert_eq!(key("", ""), NO_HOST);
        assert_eq!(key(":80", ""), NO_HOST);
        assert_eq!(key(".", ""), NO_HOST);
    }

    #[test]
    fn odd_bytes_are_escaped_like_mod_accesslog() {
        assert_eq!(key("a\"b", ""), "a\\\"b");
        assert_eq!(key("a\\b", ""), "a\\\\b");
        assert_eq!(key("a\tb", ""), "a\\tb");
        assert_eq!(KeyMaker::new().key(b"a\xffb\x01", b""), "a\\xFFb\\x01");
        assert_eq!(key("x'; DROP TABLE t; --", ""), "x'; drop table t; --");
    }

    #[test]
    fn long_names_are_shortened_deterministically() {
        let long = "a".repeat(300);
        let k = key(&long, "");
        assert_eq!(k.len(), MAX_KEY_LEN);
        assert!(k.starts_with(&"a".repeat(238)));
        assert_eq!(k, key(&long, ""), "same input, same key");
        let other = format!("{}b", "a".repeat(299));
        assert_ne!(key(&other, ""), k, "distinct names stay distinct");
        assert_eq!(key(&"b".repeat(255), "").len(), 255, "255 fits as is");
        assert!(!key(&"b".repeat(255), "").contains('~'));
        // Escaping can push a short name over the limit.
        let escapes = "\u{1}".repeat(100);
        assert_eq!(key(&escapes, "").len(), MAX_KEY_LEN);
    }

    #[test]
    fn the_authority_key_is_the_key_unless_it_needs_server_name() {
        let mut km = KeyMaker::new();
        for a in [
            "www.example.org:80",
            "WWW.example.",
            "a\tb",
            "[::1]:8080",
            "x",
        ] {
            let k = KeyMaker::new().key(a.as_bytes(), b"srv").to_string();
            assert_eq!(km.authority_key(a.as_bytes()), Some(k.as_str()), "{a}");
        }
        for a in ["", ":80", ".", "..:8080"] {
            assert_eq!(km.authority_key(a.as_bytes()), None, "{a}");
        }
    }

    #[test]
    fn the_one_pass_answer_is_the_rules() {
        // Every host of up to 3 bytes over an alphabet with every class,
        // and some longer ones: already_a_key agrees with the full rule.
        let alphabet = b"a.:[]Z\"\\ \x7f\x01\xff0";
        let mut hosts: Vec<Vec<u8>> = vec![vec![]];
        for _ in 0..3 {
            let longer: Vec<Vec<u8>> = hosts
                .iter()
                .flat_map(|h| {
                    alphabet.iter().map(move |&b| {
                        let mut h = h.clone();
                        h.push(b);
                        h
                    })
                })
                .collect();
            hosts.extend(longer);
        }
        hosts.push(b"www.example.org".to_vec());
        hosts.push(vec![b'a'; 255]);
        hosts.push(vec![b'a'; 256]);
        for h in hosts {
            let full = {
                let host = strip_port_and_dots(&h);
                (!host.is_empty()).then(|| KeyMaker::new().finish(host).to_string())
            };
            if let Some(fast) = already_a_key(&h) {
                assert_eq!(Some(fast.to_string()), full, "{h:?}");
                assert_eq!(fast.as_bytes(), &h[..], "{h:?}");
            }
            let mut km = KeyMaker::new();
            assert_eq!(km.authority_key(&h).map(str::to_string), full, "{h:?}");
        }
        assert!(already_a_key(b"shop.example.com").is_some());
        assert!(already_a_key(b"shop.example.com:443").is_none());
    }

    #[test]
    fn plain_keys_borrow_the_input() {
        let mut km = KeyMaker::new();
        let input = b"shop.example.com:443";
        let k = km.key(input, b"");
        assert_eq!(k.as_ptr(), input.as_ptr(), "no copy for the common case");
    }
}
