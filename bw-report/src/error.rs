//! What can go wrong, and the exit status each kind gets: scripts tell a
//! typo (64, BSD's EX_USAGE) from a database problem (2) without parsing
//! the message.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// sysexits.h: the command was used incorrectly.
pub const EXIT_USAGE: u8 = 64;
/// The database could not be read.
pub const EXIT_DATABASE: u8 = 2;
/// sysexits.h: writing the report failed.
pub const EXIT_OUTPUT: u8 = 74;
/// sysexits.h: a support file is missing (the PNG chart's font).
pub const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Debug)]
pub enum Error {
    /// Arguments, dates, or the settings they point to (--config, files).
    Usage(String),
    /// The database: unreachable, refused, or not the expected table. The
    /// message already names server, database and table.
    Database(String),
    /// Writing to stdout, or to the file of --out.
    Output(io::Error),
    /// Something the machine lacks: the font file a PNG chart needs. The
    /// message names it and its Debian package.
    Unavailable(String),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) | Error::Database(m) | Error::Unavailable(m) => f.write_str(m),
            Error::Output(e) => write!(f, "cannot write the report: {e}"),
        }
    }
}

impl Error {
    /// The message on one line, whatever the server or a file put into it.
    pub fn one_line(&self) -> String {
        self.to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }

    /// Prints the error as one line on stderr and returns the exit status.
    /// A reader that went away (`bw-report daily | head`) is not an error.
    pub fn report(&self) -> ExitCode {
        if let Error::Output(e) = self {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
        }
        eprintln!("bw-report: {}", self.one_line());
        ExitCode::from(match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Database(_) => EXIT_DATABASE,
            Error::Output(_) => EXIT_OUTPUT,
            Error::Unavailable(_) => EXIT_UNAVAILABLE,
        })
    }
}
