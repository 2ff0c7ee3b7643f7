//! The `bw_counter.*` options of a lighttpd configuration, as lighttpd
//! itself resolves them: `lighttpd -p -f FILE` prints the parsed
//! configuration with includes, `include_shell` and variables applied, so
//! nothing here re-implements lighttpd's configuration language.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Settings;
use crate::error::Error;

/// Where lighttpd usually is when PATH (say, a user's, or cron's) lacks sbin.
const SBIN_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// The options of `config`'s global scope (the module reads its database
/// options only there).
pub fn settings(config: &Path) -> Result<Settings, Error> {
    let fail = |why: String| Error::Usage(format!("--config {}: {why}", config.display()));
    let lighttpd = find_lighttpd().ok_or_else(|| {
        fail(
            "lighttpd is not in PATH nor in /usr/sbin: it is needed to read the configuration"
                .into(),
        )
    })?;
    let out = Command::new(&lighttpd)
        .arg("-p")
        .arg("-f")
        .arg(config)
        .output()
        .map_err(|e| fail(format!("cannot run {}: {e}", lighttpd.display())))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!(
            "lighttpd -p refused it: {}",
            said.trim().replace('\n', "; ")
        )));
    }
    global_options(&String::from_utf8_lossy(&out.stdout)).map_err(fail)
}

fn find_lighttpd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join("lighttpd"))
        .find(|p| p.is_file())
}

/// Reads the options from `lighttpd -p`'s output: inside `config {`, one
/// `key = value` per line, conditions as nested `... {` / `}` blocks.
/// Only lines at the top level of `config` are the global scope. A list
/// is printed on its line, `("a", "b")`, or when long as `(` then one
/// `"item",` per line and `)`.
pub fn global_options(printed: &str) -> Result<Settings, String> {
    let mut settings = Settings::default();
    let mut depth = 0usize;
    let mut lines = printed.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with('}') {
            depth = depth.saturating_sub(1);
        }
        if depth == 1 {
            if let Some((key, value)) = option(line) {
                if value == "(" {
                    let items: Vec<&str> = lines
                        .by_ref()
                        .map(str::trim)
                        .take_while(|l| *l != ")")
                        .collect();
                    set_list(&mut settings, key, &items)?;
                } else {
                    set(&mut settings, key, value)?;
                }
                continue;
            }
        }
        if line.ends_with('{') {
            depth += 1;
        }
    }
    Ok(settings)
}

/// `bw_counter.<key> = <value>` as lighttpd prints it; None for other lines.
fn option(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.strip_prefix("bw_counter.")?.split_once('=')?;
    Some((key.trim(), value.trim()))
}

/// Stores the options that say where the table is; the module's others
/// (report_interval, account, ...) are not bw-report's business.
fn set(s: &mut Settings, key: &str, printed: &str) -> Result<(), String> {
    let value = || {
        // Not the value in the message: it may be a password.
        unquote(printed).ok_or_else(|| {
            format!("cannot read bw_counter.{key} from lighttpd -p's output: expected a string on one line")
        })
    };
    if let Some(inline) = printed.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
        let items: Vec<&str> = inline.split(", ").collect();
        return set_list(s, key, &items);
    }
    match key {
        "mysql_server" => s.server = Some(vec![value()?]),
        "mysql_db" => s.db = Some(value()?),
        "mysql_table" => s.table = Some(value()?),
        "mysql_user" => s.user = Some(value()?),
        "mysql_password" => s.password = Some(value()?),
        "mysql_password_file" => s.password_file = Some(value()?.into()),
        "mysql_ssl" => s.ssl = Some(value()?),
        "mysql_ssl_ca" => s.ssl_ca = Some(value()?.into()),
        _ => {}
    }
    Ok(())
}

/// A list (`mysql_server` only: lists of the other options are refused
/// by the module, so here too). Items are as lighttpd prints them, each
/// quoted, with or without a trailing comma.
fn set_list(s: &mut Settings, key: &str, items: &[&str]) -> Result<(), String> {
    if key != "mysql_server" {
        return Err(format!(
            "bw_counter.{key} is a list in lighttpd -p's output: it must be a string"
        ));
    }
    let servers = items
        .iter()
        .map(|item| {
            unquote(item.strip_suffix(',').unwrap_or(item)).ok_or_else(|| {
                format!("cannot read bw_counter.{key} from lighttpd -p's output: {item:?}")
            })
        })
        .collect::<Result<Vec<String>, String>>()?;
    s.server = Some(servers);
    Ok(())
}

/// lighttpd prints a string between quotes with only `"` escaped (as `\"`);
/// every other byte, backslashes included, is the value itself.
fn unquote(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    Some(inner.replace("\\\"", "\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What lighttpd 1.4.69 printed for a configuration with an include,
    /// a variable, conditions and an array.
    const PRINTED: &str = r#"config {
    var.CWD                        = "/tmp/bwr-try"
    var.PID                        = 31061
    server.document-root           = "/tmp/bwr-try"
    server.modules                 = (
        "mod_access",
        "mod_accesslog",
    )
    bw_counter.mysql_server        = "127.0.0.1:3307"
    bw_counter.mysql_db            = "bw_counter"
    var.t                          = "bandwidth"
    bw_counter.mysql_table         = "bandwidth"
    bw_counter.mysql_user          = "bw \"quoted\" \\ user"
    bw_counter.mysql_password_file = "/tmp/pw"
    bw_counter.mysql_ssl           = "require"
    bw_counter.report_interval     = 60


    $HTTP["host"] == "x" {
        # block 1
        bw_counter.mysql_db = "other"

    } # end of $HTTP["host"] == "x"
    else $HTTP["host"] == "y" {
        # block 2
        bw_counter.mysql_table = "y{"

        $HTTP["url"] =^ "/a" {
            # block 3
            bw_counter.mysql_user = "z"

        } # end of $HTTP["url"] =^ "/a"
    } # end of $HTTP["host"] == "y"
    bw_counter.mysql_ssl_ca        = "/etc/ssl/ca.pem"
}
"#;

    #[test]
    fn reads_the_global_scope_only() {
        let s = global_options(PRINTED).unwrap();
        assert_eq!(
            s,
            Settings {
                server: Some(vec!["127.0.0.1:3307".into()]),
                db: Some("bw_counter".into()),
                table: Some("bandwidth".into()),
                user: Some(r#"bw "quoted" \\ user"#.into()),
                password: None,
                password_file: Some("/tmp/pw".into()),
                ssl: Some("require".into()),
                ssl_ca: Some("/etc/ssl/ca.pem".into()),
            }
        );
    }

    #[test]
    fn a_list_of_servers_on_one_line_or_many() {
        let one_line =
            "config {\n    bw_counter.mysql_server = (\"127.0.0.1:3306\", \"/s.sock\")\n}\n";
        assert_eq!(
            global_options(one_line).unwrap().server,
            Some(vec!["127.0.0.1:3306".to_string(), "/s.sock".to_string()])
        );
        let many = "config {\n    bw_counter.mysql_server = (\n        \"db1.example.internal:3306\",\n        \"db2\",\n    )\n    bw_counter.mysql_db     = \"bw\"\n}\n";
        let s = global_options(many).unwrap();
        assert_eq!(
            s.server,
            Some(vec![
                "db1.example.internal:3306".to_string(),
                "db2".to_string()
            ])
        );
        assert_eq!(
            s.db,
            Some("bw".to_string()),
            "reading goes on after the list"
        );
        let not_server = "config {\n    bw_counter.mysql_db = (\"a\", \"b\")\n}\n";
        assert!(global_options(not_server)
            .unwrap_err()
            .contains("must be a string"));
    }

    #[test]
    fn a_value_that_is_not_one_quoted_line_is_an_error() {
        let printed = "config {\n    bw_counter.mysql_password = \"two\nlines\"\n}\n";
        let e = global_options(printed).unwrap_err();
        assert!(e.contains("bw_counter.mysql_password"), "{e}");
    }
}
