//! How requests are counted (`bw_counter.account` / `exclude`), remembered
//! per host when that is all it can depend on.
//!
//! lighttpd evaluates a request's conditions one by one (about 135
//! instructions each for `$HTTP["host"] == "..."`, measured): 100 host
//! conditions that set accounts cost some 13,000 instructions a request.
//! When every condition that sets `account` or `exclude`, and every
//! condition it is nested in or chained after (`else`), compares only the
//! host (`$HTTP["host"]`, which lighttpd matches against the request's
//! authority), the result is a function of the authority bytes: it is
//! resolved once per authority and remembered. Otherwise (a condition on
//! the URL, the client address, ...) every request is resolved.

use crate::config::RequestScope;
use crate::hosts::{same_bytes, HostTable};

pub struct ScopeMemo {
    by_host: HostTable<RequestScope>,
    /// Host names come from clients: past this many, start over.
    limit: usize,
    /// The previous request's authority and scope: keep-alive connections
    /// send many requests for one host in a row.
    last: Option<(Vec<u8>, RequestScope)>,
}

impl ScopeMemo {
    pub fn new(limit: usize) -> ScopeMemo {
        ScopeMemo {
            by_host: HostTable::new(),
            limit: limit.max(1),
            last: None,
        }
    }

    /// The scope of a request for `authority`, from memory or from
    /// `resolve` (which asks lighttpd's conditions).
    pub fn scope(
        &mut self,
        authority: &[u8],
        resolve: impl FnOnce() -> RequestScope,
    ) -> RequestScope {
        if let Some((host, scope)) = &self.last {
            if same_bytes(host, authority) {
                return *scope;
            }
        }
        let scope = match self.by_host.find(authority) {
            Ok(index) => self.by_host.value(index),
            Err(vacant) => {
                let scope = resolve();
                if self.by_host.len() >= self.limit {
                    self.by_host.clear();
                    // Found vacant before the clear: look again.
                    if let Err(vacant) = self.by_host.find(authority) {
                        self.by_host.insert(vacant, authority, scope);
                    }
                } else {
                    self.by_host.insert(vacant, authority, scope);
                }
                scope
            }
        };
        let last = self.last.get_or_insert_with(|| (Vec::new(), scope));
        last.0.clear();
        last.0.extend_from_slice(authority);
        last.1 = scope;
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: u32) -> RequestScope {
        RequestScope {
            account: Some(id),
            exclude: false,
        }
    }

    #[test]
    fn each_host_is_resolved_once_and_the_limit_starts_over() {
        let mut memo = ScopeMemo::new(2);
        let mut asked = Vec::new();
        let mut scope = |memo: &mut ScopeMemo, host: &'static str, id: u32| {
            memo.scope(host.as_bytes(), || {
                asked.push(host);
                account(id)
            })
        };
        assert_eq!(scope(&mut memo, "a", 1), account(1));
        assert_eq!(scope(&mut memo, "a", 9), account(1), "the previous host");
        assert_eq!(scope(&mut memo, "b", 2), account(2));
        assert_eq!(scope(&mut memo, "a", 9), account(1), "remembered");
        assert_eq!(scope(&mut memo, "c", 3), account(3), "over the limit");
        assert_eq!(
            scope(&mut memo, "a", 4),
            account(4),
            "forgotten, asked again"
        );
        assert_eq!(asked, ["a", "b", "c", "a"]);
    }
}
