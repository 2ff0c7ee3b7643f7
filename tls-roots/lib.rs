//! The public web PKI root set, replaced (see Cargo.toml): the only trust
//! anchors of the module's TLS connections are those in
//! `bw_counter.mysql_ssl_ca`, plus the one below, which trusts nothing.
#![no_std]
#![forbid(unsafe_code)]

use pki_types::{Der, TrustAnchor};

/// One anchor nobody can sign with: a P-256 public key whose private key
/// was discarded when it was made (openssl ecparam, 2026-11-29), under the
/// name `CN=mod_bw_counter: no public roots (private key discarded)`. It is
/// here because rustls refuses a verifier with no anchors at all, which the
/// mysql crate builds for every TLS mode (even `prefer` and `require`,
/// which then ignore it).
pub const TLS_SERVER_ROOTS: &[TrustAnchor<'static>] = &[TrustAnchor {
    subject: Der::from_slice(
        b"\x31\x40\x30\x3e\x06\x03\x55\x04\x03\x0c\x37mod_bw_counter: no public roots \
          (private key discarded)",
    ),
    subject_public_key_info: Der::from_slice(
        b"\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01\x07\
          \x03\x42\x00\x04\x6b\xdb\x55\xdd\x5c\x64\x07\xc1\xa1\x8e\xce\xc5\x99\xfe\xbc\x32\x51\
          \x8d\xe7\x78\x2b\x4f\x60\x4a\x5c\x3d\xb2\x7f\x58\x47\xe0\x2f\xbc\x8b\x23\x91\xab\x3b\
          \x07\x38\xbf\x1e\xde\xbf\x8b\x91\xbe\x20\x64\x90\x94\x77\x7e\x6f\x2b\x0f\x51\xf3\x3e\
          \x78\xc2\xf4\x41\x71",
    ),
    name_constraints: None,
}];
