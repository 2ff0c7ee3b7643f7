//! What can be wrong with the configuration: one [`ConfigError`] per
//! problem, whose `Display` is the log line, naming the option and the bad
//! value (never the password).

use std::fmt;
use std::path::PathBuf;

use super::keys::{shown, KeyId, KeyType, RawValue, KEYS};

/// One problem with the configuration; `Display` gives the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    Unknown {
        name: String,
    },
    NotGlobal {
        name: String,
        condition: String,
    },
    Missing {
        key: KeyId,
        what: &'static str,
    },
    /// Present, but lighttpd could not read it as the declared type (it
    /// logs its own line about it too).
    Unreadable {
        key: KeyId,
    },
    Invalid {
        key: KeyId,
        value: String,
        why: String,
    },
    Conflict {
        a: KeyId,
        b: KeyId,
    },
    /// A file the option names cannot be used (found after parsing, when
    /// the files are opened).
    File {
        key: KeyId,
        path: PathBuf,
        why: String,
    },
}

impl ConfigError {
    pub fn invalid(key: KeyId, value: &RawValue, why: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key,
            value: shown(key, value),
            why: why.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unknown { name } => {
                let known: Vec<&str> = KEYS.iter().map(|k| k.id.name()).collect();
                write!(f, "unknown option {name} (known: {})", known.join(", "))
            }
            ConfigError::NotGlobal { name, condition } => write!(
                f,
                "{name} is a server-wide option: set it in the global scope, not inside {condition}"
            ),
            ConfigError::Missing { key, what } => {
                write!(f, "{} is required ({what}) but not set", key.name())
            }
            ConfigError::Unreadable { key } => write!(
                f,
                "{} has a value of the wrong type: expected {}",
                key.name(),
                match key.key().ty {
                    KeyType::String => "a string in double quotes",
                    KeyType::Int => "a whole number",
                    KeyType::StringOrList => "a string, or a list of strings",
                }
            ),
            ConfigError::Invalid { key, value, why } => {
                write!(f, "{} = {value}: {why}", key.name())
            }
            ConfigError::Conflict { a, b } => write!(
                f,
                "{} and {} are both set: use only one of them",
                a.name(),
                b.name()
            ),
            ConfigError::File { key, path, why } => {
                write!(f, "{} = \"{}\": {why}", key.name(), path.display())
            }
        }
    }
}
