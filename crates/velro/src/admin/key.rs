//! Where `velro admin` gets the service key: VELRO_SERVICE_KEY, or a prompt on the terminal
//! with echo off. The key is never printed, and no message here quotes it.

use std::io::IsTerminal;

use url::Url;
use velro_core::Secret;

use super::Failure;

const VARIABLE: &str = "VELRO_SERVICE_KEY";

pub(super) fn service_key(base: &Url) -> Result<Secret<String>, Failure> {
    match std::env::var(VARIABLE) {
        Ok(key) if !key.is_empty() => return Ok(Secret::new(key)),
        Ok(_) | Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Local(format!("{VARIABLE} is not valid UTF-8")));
        }
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Local(format!(
            "no service key: set {VARIABLE} (there is no terminal to ask on)"
        )));
    }
    let key = prompt(&format!(
        "Service key for {}: ",
        base.as_str().trim_end_matches('/')
    ))
    .map_err(|why| Failure::Local(format!("could not read the service key: {why}")))?;
    if key.is_empty() {
        return Err(Failure::Local("no service key given".into()));
    }
    Ok(Secret::new(key))
}

/// Asks on the controlling terminal itself, so that the prompt shows and the answer stays off
/// the screen even when stdout is piped into another program.
#[cfg(unix)]
fn prompt(question: &str) -> std::io::Result<String> {
    use std::io::{BufRead, BufReader, Write};

    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};

    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let before = tcgetattr(&tty)?;
    let mut silent = before.clone();
    silent.local_modes.remove(LocalModes::ECHO);
    silent.local_modes.insert(LocalModes::ECHONL);
    // Echo goes off before the question shows, so that nothing typed after it is displayed;
    // `Flush` drops anything typed ahead, as getpass does.
    tcsetattr(&tty, OptionalActions::Flush, &silent)?;
    let asked = tty
        .write_all(question.as_bytes())
        .and_then(|()| tty.flush());
    let mut line = String::new();
    let read = asked.and_then(|()| BufReader::new(&tty).read_line(&mut line));
    // Echo comes back whether or not the read worked.
    let restored = tcsetattr(&tty, OptionalActions::Now, &before);
    read?;
    restored?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(not(unix))]
fn prompt(_question: &str) -> std::io::Result<String> {
    Err(std::io::Error::other(format!(
        "this platform has no prompt without echo: set {VARIABLE}"
    )))
}
