//! The real `velro` binary, for the tests that run it as an operator would: a command with a clean
//! environment, a bounded run to completion, and a served instance whose output is collected,
//! whose address is read from its log, and which is stopped with SIGTERM or killed with its test.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long start-up and a graceful stop may take before the test fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(30);

/// `velro` with none of the test process's own settings.
pub fn velro() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velro"));
    for (key, _) in std::env::vars() {
        if key.starts_with("VELRO_")
            || key == "DATABASE_URL"
            || key == "REDIS_URL"
            || key == "RUST_LOG"
        {
            command.env_remove(key);
        }
    }
    command
}

/// `velro serve` on a random port with JSON logs (which carry the address) and cheap hashing.
pub fn serve(data_dir: &Path) -> Command {
    let mut command = velro();
    command
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("VELRO_DATA_DIR", data_dir)
        .env("VELRO_LOG_FORMAT", "json")
        .env("VELRO_ARGON2_MEMORY_KIB", "64")
        .env("VELRO_ARGON2_ITERATIONS", "1");
    command
}

/// Runs to completion, or kills the child and fails when it outlives `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = spawn_and_wait(&mut command, limit);
    child.wait_with_output().expect("collects output")
}

/// As [`output_within`], with the output going wherever `command` already sends it.
pub fn status_within(mut command: Command, limit: Duration) -> ExitStatus {
    spawn_and_wait(&mut command, limit).wait().expect("waits")
}

/// The child once it has exited; killed, and the test failed, when it outlives `limit`.
fn spawn_and_wait(command: &mut Command, limit: Duration) -> Child {
    let mut child = command.spawn().expect("starts");
    let started = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// A served instance. Dropping it kills the process, so that a failed assertion leaves nothing
/// running.
pub struct Running {
    child: Child,
    logs: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    /// `http://127.0.0.1:port`
    pub base: String,
}

impl Running {
    /// Starts `command` (see [`serve`]) and waits until it logs the address it listens on.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let logs = Arc::default();
        let readers = vec![
            collect(&logs, child.stdout.take().expect("piped")),
            collect(&logs, child.stderr.take().expect("piped")),
        ];
        let mut running = Self {
            child,
            logs,
            readers,
            base: String::new(),
        };
        running.base = format!("http://{}", running.wait_for_address());
        running
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything written so far, both streams.
    pub fn logs(&self) -> String {
        self.logs.lock().expect("not poisoned").clone()
    }

    fn wait_for_address(&mut self) -> String {
        let started = Instant::now();
        while started.elapsed() < PATIENCE {
            if let Some(rest) = self.logs().split("\"address\":\"").nth(1) {
                return rest.split('"').next().unwrap_or_default().to_string();
            }
            if let Some(exit) = self.child.try_wait().expect("waits") {
                panic!(
                    "the server exited ({exit}) before listening:\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the server never said it was listening:\n{}", self.logs());
    }

    /// Sends SIGTERM and returns at once: the server drains meanwhile.
    pub fn terminate(&self) {
        let signalled = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(signalled.success());
    }

    /// SIGTERM, then the exit status and the whole output once the process has ended.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.terminate();
        let started = Instant::now();
        let exit = loop {
            if let Some(exit) = self.child.try_wait().expect("waits") {
                break exit;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("reader ends with the child");
        }
        (exit, self.logs())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(logs: &Arc<Mutex<String>>, stream: impl Read + Send + 'static) -> JoinHandle<()> {
    let logs = Arc::clone(logs);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            let mut text = logs.lock().expect("not poisoned");
            text.push_str(&line);
            text.push('\n');
        }
    })
}
