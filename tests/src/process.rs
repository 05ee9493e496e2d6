//! Child processes: long-running servers with a log file, and one-shot commands with a time limit.
//!
//! A [`ServerProcess`] is killed (SIGKILL) and reaped when dropped, and on Linux it also dies with
//! the thread that spawned it (`PR_SET_PDEATHSIG`), so an interrupted `cargo test` leaves no
//! servers behind. It remembers its command line so it can be restarted with the same port, data
//! directory and id; restarts append to the same log file, after a header line.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A server process (metadata server or storage node) whose stdout and stderr go to a log file.
pub(crate) struct ServerProcess {
    pub(crate) name: String,
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    /// Extra environment variables (e.g. `FAILPOINTS`), applied at every start.
    env: Vec<(OsString, OsString)>,
    child: Option<Child>,
    starts: u32,
}

impl ServerProcess {
    /// A process description; nothing runs until [`ServerProcess::start`].
    pub(crate) fn new(name: &str, program: PathBuf, args: Vec<OsString>, log: PathBuf) -> Self {
        Self {
            name: name.to_string(),
            program,
            args,
            log,
            env: Vec::new(),
            child: None,
            starts: 0,
        }
    }

    /// Sets (`Some`) or removes (`None`) an extra environment variable for the next starts.
    pub(crate) fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.env.push((key.into(), value.into()));
        }
    }

    /// Starts the process (again, after a kill) with the same command line.
    pub(crate) fn start(&mut self) -> io::Result<()> {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.starts += 1;
        writeln!(
            log,
            "=== bigfs-tests: start #{} of {}: {}{} {} ===",
            self.starts,
            self.name,
            self.env
                .iter()
                .map(|(k, v)| format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()))
                .collect::<String>(),
            self.program.display(),
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        )?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .env("RUST_BACKTRACE", "1")
            // Plain logs: they are read by people in failure messages, not by a terminal.
            .env("NO_COLOR", "1")
            .env_remove("BIGFS_META")
            .env_remove("FAILPOINTS")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    /// The process id while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap; a no-op when it is not running.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // kill() fails only if the process was already reaped, which `take` rules out;
            // an already exited (zombie) process is fine to signal.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`) to the running process.
    pub(crate) fn signal(&self, signal: libc::c_int) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own unreaped child,
        // so it cannot have been recycled for another process.
        let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {signal}) for {}: {}",
            self.name,
            io::Error::last_os_error()
        );
    }

    /// `Some(status)` if the process has exited by itself (it stays reapable for `kill`).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Whether the harness considers it running (started and not killed by the harness).
    pub(crate) fn is_started(&self) -> bool {
        self.child.is_some()
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log (lossy UTF-8); empty if it cannot be read.
    pub(crate) fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log, under a header naming the process and its log file.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        format!(
            "----- {} ({}; last {} of {} lines) -----\n{}\n",
            self.name,
            self.log.display(),
            tail.len(),
            all.len(),
            tail.join("\n")
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes the child receive SIGKILL when the thread that spawned it exits (Linux only), so that
/// servers do not outlive an aborted test run.
fn die_with_parent(cmd: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs between fork and exec and only calls prctl(2), which is
        // async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Runs `cmd` to completion with `stdin` as its standard input (or none), capturing stdout and
/// stderr. If it has not exited after `timeout`, it is killed and `Err` describes what it printed
/// so far; the caller decides how to fail (the cluster adds its log tails).
pub fn run_with_timeout(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, String> {
    let feed = stdin.map(|data| {
        let data = data.to_vec();
        // A broken pipe (the command exited without reading everything) is the command's
        // business; its exit status tells the story.
        Box::new(move |mut pipe: ChildStdin| drop(pipe.write_all(&data))) as Feed
    });
    run_feeding(cmd, feed, timeout)
}

/// Writes a command's standard input, on a thread of its own.
pub type Feed = Box<dyn FnOnce(ChildStdin) + Send>;

/// [`run_with_timeout`] with standard input written by `feed` (or none), which may take its
/// time: input that arrives slowly, as from a pipe.
pub fn run_feeding(
    cmd: &mut Command,
    feed: Option<Feed>,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(if feed.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;

    let writer = match (feed, child.stdin.take()) {
        (Some(feed), Some(pipe)) => Some(thread::spawn(move || feed(pipe))),
        _ => None,
    };
    let out = child.stdout.take().map(reader);
    finish(cmd, child, writer, out, started, timeout)
}

/// Runs `cmd` (no stdin) with a reader on its stdout that takes the first `keep` bytes and then
/// closes the pipe, as `cmd | head -c KEEP` does: with `keep` 0 the pipe is closed before the
/// command writes anything. The output's stdout is what the reader took. Like
/// [`run_with_timeout`] otherwise.
pub fn run_closing_stdout(
    cmd: &mut Command,
    keep: usize,
    timeout: Duration,
) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    let pipe = child.stdout.take();
    let out = if keep == 0 {
        drop(pipe);
        None
    } else {
        pipe.map(|pipe| {
            thread::spawn(move || {
                let mut taken = Vec::new();
                // The pipe is closed when `take` is dropped, at the end of this thread.
                let _ = pipe.take(keep as u64).read_to_end(&mut taken);
                taken
            })
        })
    };
    finish(cmd, child, None, out, started, timeout)
}

/// Waits for a spawned `child` until `timeout` after `started` (then kills it), joins the
/// threads feeding its stdin and reading its stdout, reads its stderr.
fn finish(
    cmd: &Command,
    mut child: Child,
    writer: Option<thread::JoinHandle<()>>,
    out: Option<thread::JoinHandle<Vec<u8>>>,
    started: Instant,
    timeout: Duration,
) -> Result<Output, String> {
    let err = child.stderr.take().map(reader);
    let deadline = started + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = out
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let stderr = err
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    match status {
        Some(status) => Ok(Output { status, stdout, stderr }),
        None => Err(format!(
            "{cmd:?} did not finish within {timeout:?}; it was killed.\nstderr so far:\n{}\nstdout so far ({} bytes):\n{}",
            String::from_utf8_lossy(&stderr),
            stdout.len(),
            String::from_utf8_lossy(&stdout[..stdout.len().min(2000)])
        )),
    }
}

fn reader<R: Read + Send + 'static>(mut pipe: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// Creates `path`'s parent directories and an empty log file, so `log_tail` works before start.
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}
