//! The options that may differ per lighttpd condition: `bw_counter.account`,
//! `bw_counter.exclude` and `bw_counter.status_url`. Parsed once in
//! `set_defaults`; resolved per request the way lighttpd's own modules
//! patch their configuration (mod_accesslog's `patch_config`): start from
//! the global scope's values, then every condition that sets one of them
//! and matches the request, in lighttpd's order, so a later matching
//! condition overrides an earlier one.
//!
//! Which conditions match is lighttpd's business (`config_check_cond`):
//! [`Scopes::request_scope`] and [`Scopes::status_url`] take it as a
//! function, so this file needs no FFI and is unit-tested with fakes.

use super::errors::ConfigError;
use super::keys::{KeyId, RawValue};
use crate::admission::OVERFLOW;

/// A lighttpd condition's number (`data_config.context_ndx`, the argument
/// of `config_check_cond`); 0 is the global scope.
pub type Condition = i32;

/// An account's number: its index in [`Scopes::accounts`].
pub type AccountId = u32;

/// The longest account name: the table's `vhost varchar(255)`.
pub const MAX_ACCOUNT_LEN: usize = 255;
/// The longest status URL accepted (a path, not a document).
pub const MAX_STATUS_URL_LEN: usize = 1024;

/// The values lighttpd read in one condition's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionValues {
    pub condition: Condition,
    /// The condition as lighttpd names it, for messages.
    pub text: String,
    /// Whether it, and every condition it is nested in or chained after,
    /// compares only the host (`$HTTP["host"]`): then whether it matches
    /// depends on the request's authority alone.
    pub host_only: bool,
    pub values: Vec<(KeyId, RawValue)>,
}

/// How a request is counted, once its conditions are resolved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestScope {
    /// Counted under this account instead of its host key.
    pub account: Option<AccountId>,
    /// Not counted at all.
    pub exclude: bool,
}

/// What one condition sets for counting (`None`: leaves it as it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CountingRule {
    condition: Condition,
    account: Option<AccountId>,
    exclude: Option<bool>,
}

/// What one condition sets for the status URL: an index into
/// `status_urls`, or `None` for `""` (off inside that condition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatusRule {
    condition: Condition,
    url: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes {
    counting_default: RequestScope,
    counting: Vec<CountingRule>,
    /// Every counting rule's condition is `host_only`.
    counting_by_host: bool,
    accounts: Vec<String>,
    status_default: Option<u32>,
    status: Vec<StatusRule>,
    status_urls: Vec<Vec<u8>>,
}

impl Scopes {
    /// Whether any scope sets `account` or `exclude`: if not, requests skip
    /// the resolution entirely (the request path of before).
    pub fn counting_is_scoped(&self) -> bool {
        self.counting_default != RequestScope::default() || !self.counting.is_empty()
    }

    /// Whether a request's [`RequestScope`] depends on its authority
    /// alone (every condition that sets `account` or `exclude` compares
    /// only the host), so that it can be remembered per authority.
    pub fn counting_depends_on_host_only(&self) -> bool {
        self.counting_by_host
    }

    /// Whether a status URL is set anywhere.
    pub fn has_status_url(&self) -> bool {
        self.status_default.is_some() || self.status.iter().any(|r| r.url.is_some())
    }

    /// How a request is counted; `matches` says whether a condition
    /// matches it. Only conditions that set `account` or `exclude` are
    /// asked about.
    pub fn request_scope(&self, mut matches: impl FnMut(Condition) -> bool) -> RequestScope {
        let mut scope = self.counting_default;
        for rule in &self.counting {
            if matches(rule.condition) {
                if let Some(account) = rule.account {
                    scope.account = Some(account);
                }
                if let Some(exclude) = rule.exclude {
                    scope.exclude = exclude;
                }
            }
        }
        scope
    }

    /// The status URL in force for a request, if any.
    pub fn status_url(&self, mut matches: impl FnMut(Condition) -> bool) -> Option<&[u8]> {
        let mut url = self.status_default;
        for rule in &self.status {
            if matches(rule.condition) {
                url = rule.url;
            }
        }
        url.and_then(|i| self.status_urls.get(i as usize))
            .map(Vec::as_slice)
    }

    /// Every account named anywhere, by number.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }
}

/// Reads the per-request options of the global scope (`global`) and of
/// every condition that sets one.
pub fn parse_scopes(
    global: &[(KeyId, RawValue)],
    conditions: &[ConditionValues],
) -> Result<Scopes, Vec<ConfigError>> {
    let mut reader = Reader {
        scopes: Scopes {
            counting_by_host: true,
            ..Scopes::default()
        },
        errors: Vec::new(),
    };
    let (account, exclude, status) = reader.block(global, None);
    reader.scopes.counting_default = RequestScope {
        account,
        exclude: exclude.unwrap_or(false),
    };
    reader.scopes.status_default = status.flatten();
    for c in conditions {
        let (account, exclude, url) = reader.block(&c.values, Some(&c.text));
        if account.is_some() || exclude.is_some() {
            let condition = c.condition;
            let rule = CountingRule {
                condition,
                account,
                exclude,
            };
            reader.scopes.counting.push(rule);
            reader.scopes.counting_by_host &= c.host_only;
        }
        if let Some(url) = url {
            let condition = c.condition;
            reader.scopes.status.push(StatusRule { condition, url });
        }
    }
    if reader.errors.is_empty() {
        Ok(reader.scopes)
    } else {
        Err(reader.errors)
    }
}

struct Reader {
    scopes: Scopes,
    errors: Vec<ConfigError>,
}

impl Reader {
    /// One block's values: (account, exclude, status URL), each `None`
    /// when not set there (or refused, with the error recorded).
    #[allow(clippy::type_complexity)]
    fn block(
        &mut self,
        values: &[(KeyId, RawValue)],
        inside: Option<&str>,
    ) -> (Option<AccountId>, Option<bool>, Option<Option<u32>>) {
        let last = |id: KeyId| values.iter().rev().find(|(k, _)| *k == id).map(|(_, v)| v);
        let mut checked = |id: KeyId, check: fn(&str) -> Result<(), String>| {
            let value = last(id)?;
            let text = match value {
                RawValue::Str(bytes) => std::str::from_utf8(bytes)
                    .map_err(|_| "must be valid UTF-8".to_string())
                    .and_then(|t| check(t).map(|()| t.to_string())),
                _ => Err("must be a string".to_string()),
            };
            text.map_err(|why| {
                let why = match inside {
                    Some(c) => format!("{why} (inside {c})"),
                    None => why,
                };
                self.errors.push(ConfigError::invalid(id, value, why));
            })
            .ok()
        };
        let account = checked(KeyId::Account, check_account);
        let exclude = checked(KeyId::Exclude, check_switch);
        let url = checked(KeyId::StatusUrl, check_status_url);
        let account = account.map(|name| self.account_id(name));
        let exclude = exclude.map(|s| switch_value(&s));
        let url = url.map(|u| (!u.is_empty()).then(|| self.status_url_id(u)));
        (account, exclude, url)
    }

    fn account_id(&mut self, name: String) -> AccountId {
        let accounts = &mut self.scopes.accounts;
        let id = accounts.iter().position(|a| *a == name).unwrap_or_else(|| {
            accounts.push(name);
            accounts.len() - 1
        });
        id as AccountId
    }

    fn status_url_id(&mut self, url: String) -> u32 {
        let urls = &mut self.scopes.status_urls;
        let id = urls
            .iter()
            .position(|u| *u == url.as_bytes())
            .unwrap_or_else(|| {
                urls.push(url.into_bytes());
                urls.len() - 1
            });
        id as u32
    }
}

/// An account is a row key chosen by the admin: what fits the `vhost`
/// column, printable.
fn check_account(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_ACCOUNT_LEN {
        return Err(format!(
            "an account name must be 1 to {MAX_ACCOUNT_LEN} bytes"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("an account name must not contain control characters".into());
    }
    if name == OVERFLOW {
        return Err(format!(
            "{OVERFLOW} is the row of hosts over bw_counter.max_hosts; choose another name"
        ));
    }
    Ok(())
}

/// lighttpd's words for a boolean option (as `T_CONFIG_BOOL` reads them).
const SWITCH_ON: [&str; 3] = ["enable", "true", "1"];
const SWITCH_OFF: [&str; 3] = ["disable", "false", "0"];

fn check_switch(s: &str) -> Result<(), String> {
    if SWITCH_ON.contains(&s) || SWITCH_OFF.contains(&s) {
        Ok(())
    } else {
        Err("expected \"enable\" or \"disable\"".into())
    }
}

/// A server-wide switch: `enable` (`true`, `1`) or `disable` (`false`, `0`).
pub(super) fn parse_switch(s: &str) -> Result<bool, String> {
    check_switch(s).map(|()| switch_value(s))
}

fn switch_value(s: &str) -> bool {
    SWITCH_ON.contains(&s)
}

/// A path as lighttpd compares it with `r->uri.path` (decoded, without the
/// query string), or `""` to turn the URL off inside a condition.
fn check_status_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    if !url.starts_with('/') || url.len() > MAX_STATUS_URL_LEN {
        return Err(format!(
            "must be a path starting with / (at most {MAX_STATUS_URL_LEN} bytes), or \"\" for none"
        ));
    }
    if url.contains('?') || url.contains('#') || url.chars().any(char::is_control) {
        return Err(
            "must be a plain path: no query (?), fragment (#) or control characters".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> RawValue {
        RawValue::Str(v.as_bytes().to_vec())
    }

    fn cond(condition: Condition, values: &[(KeyId, &str)]) -> ConditionValues {
        ConditionValues {
            condition,
            text: format!("$HTTP[\"host\"] == \"c{condition}\""),
            host_only: condition != 3,
            values: values.iter().map(|(k, v)| (*k, s(v))).collect(),
        }
    }

    fn scopes(global: &[(KeyId, &str)], conditions: &[ConditionValues]) -> Scopes {
        let global: Vec<_> = global.iter().map(|(k, v)| (*k, s(v))).collect();
        parse_scopes(&global, conditions).unwrap()
    }

    fn errors(global: &[(KeyId, &str)], conditions: &[ConditionValues]) -> Vec<String> {
        let global: Vec<_> = global.iter().map(|(k, v)| (*k, s(v))).collect();
        let errors = parse_scopes(&global, conditions).unwrap_err();
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn nothing_set_means_nothing_to_resolve() {
        let sc = scopes(&[], &[]);
        assert!(!sc.counting_is_scoped());
        assert!(!sc.has_status_url());
        assert_eq!(
            sc.request_scope(|_| panic!("not asked")),
            RequestScope::default()
        );
        // A status URL alone does not make counting scoped.
        let sc = scopes(&[], &[cond(3, &[(KeyId::StatusUrl, "/s")])]);
        assert!(!sc.counting_is_scoped());
        assert!(sc.has_status_url());
    }

    #[test]
    fn a_later_matching_condition_overrides_an_earlier_one() {
        let sc = scopes(
            &[],
            &[
                cond(1, &[(KeyId::Account, "example.com")]),
                cond(2, &[(KeyId::Account, "cdn")]),
                cond(3, &[(KeyId::Exclude, "enable")]),
                cond(4, &[(KeyId::Account, "example.com")]),
            ],
        );
        assert_eq!(sc.accounts(), ["example.com", "cdn"]);
        assert!(
            !sc.counting_depends_on_host_only(),
            "condition 3 is not on the host"
        );
        let scope_of = |matching: &[Condition]| sc.request_scope(|c| matching.contains(&c));
        assert_eq!(scope_of(&[]), RequestScope::default());
        assert_eq!(scope_of(&[1]).account, Some(0));
        assert_eq!(scope_of(&[1, 2]).account, Some(1));
        assert_eq!(scope_of(&[2, 4]).account, Some(0), "same name, same number");
        // exclude leaves the account as it was, and the other way round.
        let both = scope_of(&[2, 3]);
        assert_eq!((both.account, both.exclude), (Some(1), true));
    }

    #[test]
    fn the_global_scope_is_the_default_and_conditions_can_undo_exclude() {
        let sc = scopes(
            &[(KeyId::Account, "all"), (KeyId::Exclude, "enable")],
            &[cond(5, &[(KeyId::Exclude, "disable")])],
        );
        assert!(sc.counting_is_scoped());
        assert!(sc.counting_depends_on_host_only());
        let none = sc.request_scope(|_| false);
        assert_eq!((none.account, none.exclude), (Some(0), true));
        let five = sc.request_scope(|c| c == 5);
        assert_eq!((five.account, five.exclude), (Some(0), false));
    }

    #[test]
    fn status_url_resolves_like_any_option_and_empty_turns_it_off() {
        let sc = scopes(
            &[],
            &[
                cond(1, &[(KeyId::StatusUrl, "/bw-status")]),
                cond(2, &[(KeyId::StatusUrl, "")]),
            ],
        );
        assert_eq!(sc.status_url(|_| false), None);
        assert_eq!(sc.status_url(|c| c == 1), Some(&b"/bw-status"[..]));
        assert_eq!(sc.status_url(|_| true), None);
        let global = scopes(&[(KeyId::StatusUrl, "/s")], &[]);
        assert_eq!(global.status_url(|_| false), Some(&b"/s"[..]));
    }

    #[test]
    fn bad_values_name_the_option_the_value_and_the_condition() {
        let long = "a".repeat(256);
        let errs = errors(
            &[(KeyId::Exclude, "yes")],
            &[
                cond(1, &[(KeyId::Account, "")]),
                cond(2, &[(KeyId::Account, &long)]),
                cond(3, &[(KeyId::Account, "a\nb")]),
                cond(4, &[(KeyId::Account, "_other")]),
                cond(5, &[(KeyId::StatusUrl, "status")]),
                cond(6, &[(KeyId::StatusUrl, "/s?x=1")]),
            ],
        );
        assert_eq!(
            errs,
            [
                "bw_counter.exclude = \"yes\": expected \"enable\" or \"disable\"".to_string(),
                "bw_counter.account = \"\": an account name must be 1 to 255 bytes (inside \
                 $HTTP[\"host\"] == \"c1\")"
                    .to_string(),
                format!(
                    "bw_counter.account = \"{long}\": an account name must be 1 to 255 bytes \
                     (inside $HTTP[\"host\"] == \"c2\")"
                ),
                "bw_counter.account = \"a\\nb\": an account name must not contain control \
                 characters (inside $HTTP[\"host\"] == \"c3\")"
                    .to_string(),
                "bw_counter.account = \"_other\": _other is the row of hosts over \
                 bw_counter.max_hosts; choose another name (inside $HTTP[\"host\"] == \"c4\")"
                    .to_string(),
                "bw_counter.status_url = \"status\": must be a path starting with / (at most \
                 1024 bytes), or \"\" for none (inside $HTTP[\"host\"] == \"c5\")"
                    .to_string(),
                "bw_counter.status_url = \"/s?x=1\": must be a plain path: no query (?), \
                 fragment (#) or control characters (inside $HTTP[\"host\"] == \"c6\")"
                    .to_string(),
            ]
        );
    }

    #[test]
    fn lighttpds_boolean_words_are_accepted() {
        for (word, on) in [
            ("enable", true),
            ("true", true),
            ("1", true),
            ("disable", false),
        ] {
            let sc = scopes(&[(KeyId::Exclude, word)], &[]);
            assert_eq!(sc.request_scope(|_| false).exclude, on, "{word}");
        }
        let a255 = "é".repeat(127) + "a";
        assert_eq!(a255.len(), 255);
        let sc = scopes(&[(KeyId::Account, &a255)], &[]);
        assert_eq!(sc.accounts(), [a255]);
    }
}
