//! Logging: one subscriber for the process, human or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// `RUST_LOG`, when set, overrides the configured level.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only where a person reads them: `velro > server.log` gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Human => builder.try_init(),
    };
    // A second init (tests build many apps in one process) keeps the first subscriber.
    let _ = result;
}

/// Whether an error just logged at ERROR level is already where `eprintln!` would put it: the log
/// goes to stdout, and when stdout and stderr are one file (a terminal, `> velro.log 2>&1`, the
/// systemd journal) a second copy on stderr only repeats it. When they differ (`> velro.log` at a
/// terminal, separate pipes) the log stream and the person who started the process each need it.
pub fn error_log_reaches_stderr() -> bool {
    tracing::enabled!(tracing::Level::ERROR) && stdout_is_stderr()
}

#[cfg(unix)]
fn stdout_is_stderr() -> bool {
    use std::os::fd::{AsFd, BorrowedFd};
    use std::os::unix::fs::MetadataExt;
    // Device and inode through a duplicate of the descriptor, which is closed again at once.
    fn identity(fd: BorrowedFd<'_>) -> Option<(u64, u64)> {
        let metadata = std::fs::File::from(fd.try_clone_to_owned().ok()?)
            .metadata()
            .ok()?;
        Some((metadata.dev(), metadata.ino()))
    }
    let stdout = identity(std::io::stdout().as_fd());
    stdout.is_some() && stdout == identity(std::io::stderr().as_fd())
}

#[cfg(not(unix))]
fn stdout_is_stderr() -> bool {
    false
}
