//! What can be wrong with a trace: typed, so a command can say it in one
//! line and exit 2 (and `--partial` can go on with what was read).

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// No alloc8 trace magic at the start.
    NotATrace,
    /// Written by a newer alloc8 (format version above ours).
    Newer {
        version: u32,
    },
    /// The file stops in the middle (the recording was cut short).
    Truncated(String),
    /// Bytes that do not decode as the format says.
    Corrupt(String),
    Io(std::io::Error),
}

impl Error {
    /// Whether the events read before this error can be trusted (`--partial`).
    pub fn partial_ok(&self) -> bool {
        matches!(self, Error::Truncated(_) | Error::Corrupt(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotATrace => write!(f, "not an alloc8 trace (no A8TRACE header): give a file `alloc8 record` wrote"),
            Error::Newer { version } => write!(
                f,
                "trace format version {} is newer than this alloc8 reads (version {}): use a newer alloc8",
                version,
                alloc8::record::format::VERSION
            ),
            Error::Truncated(what) => write!(f, "the trace is cut short ({}); --partial reads what is there", what),
            Error::Corrupt(what) => write!(f, "the trace is corrupt ({}); --partial reads what comes before", what),
            Error::Io(e) => write!(f, "{}", e),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
