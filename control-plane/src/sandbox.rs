//! Inspection in a child process: the ONNX load (parse, type-check, constant folding,
//! optimisation) and the component compile of an upload run in a re-executed `wisp` under
//! an address-space limit (`RLIMIT_AS`), a CPU-time limit and a wall-clock kill, so that a
//! bomb nobody anticipated (a fold through an operator the pre-checks do not follow, a
//! function that makes Cranelift quadratic, a panic deep in a decoder) costs one child,
//! never the server.
//!
//! The parent writes the file to the child's stdin and reads one JSON [`Answer`] from its
//! stdout. A child that exceeded its memory dies on a failed allocation (Rust aborts with
//! "memory allocation of N bytes failed"); one past its time is killed. Both are refusals
//! with their own `reason`. A semaphore bounds how many children run at once, so the
//! budget times the concurrency bounds what uploads may take from the machine.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::InspectionConfig;
use crate::inspect::{InspectError, InspectedModel, OperatorRef, load_onnx};

/// The hidden subcommand of the `wisp` binary that runs one job (see [`worker_main`]).
pub const WORKER_COMMAND: &str = "__inspect";

/// What a child is asked to do with the bytes on its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Load the ONNX file with the serving backend and report its signature.
    Onnx,
    /// Compile the component with the serving engine's code generator.
    Component,
}

impl Job {
    fn as_str(self) -> &'static str {
        match self {
            Job::Onnx => "onnx",
            Job::Component => "component",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "onnx" => Some(Job::Onnx),
            "component" => Some(Job::Component),
            _ => None,
        }
    }

    /// `reason`s of a child that did not answer: `inspection_*` for ONNX, `compile_*`
    /// for components.
    fn reason(self, what: &str) -> String {
        match self {
            Job::Onnx => format!("inspection_{what}"),
            Job::Component => format!("compile_{what}"),
        }
    }
}

/// The one line a child writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Model(InspectedModel),
    Compiled,
    Invalid(String),
    UnsupportedOperator {
        operators: Vec<OperatorRef>,
        message: String,
    },
}

/// Runs jobs in children of `exe` under the configured budget.
#[derive(Debug)]
pub struct Sandbox {
    exe: PathBuf,
    config: InspectionConfig,
    slots: Slots,
}

/// Most bytes kept of a child's stderr (for the log and the crash classification).
const STDERR_KEPT: u64 = 64 << 10;
/// Most bytes read of a child's answer; a signature is far smaller.
const ANSWER_LIMIT: u64 = 16 << 20;
/// The child allocator's first arena (see [`Sandbox::run`]).
const CHILD_ARENA_RESERVE: &str = "64MiB";
/// How often a running child is looked at.
const POLL: Duration = Duration::from_millis(5);

impl Sandbox {
    /// Children will be `exe __inspect <job>`: the `wisp` binary (`std::env::current_exe`).
    pub fn new(exe: PathBuf, config: InspectionConfig) -> Arc<Self> {
        Arc::new(Self {
            slots: Slots::new(config.max_concurrent.max(1)),
            exe,
            config,
        })
    }

    /// Runs `job` on `input` in a child and answers what it found, or why it was refused.
    pub fn run(&self, job: Job, input: &[u8]) -> Result<Option<InspectedModel>, InspectError> {
        let _slot = self.slots.acquire();
        let timeout = self.config.timeout;
        // The CPU limit backs up the kill, a little later (and counts every thread).
        let cpu_seconds = timeout.as_secs().saturating_mul(2).saturating_add(1);
        let mut child = Command::new(&self.exe)
            .arg(WORKER_COMMAND)
            .arg(job.as_str())
            .arg(self.config.memory_bytes.to_string())
            .arg(cpu_seconds.to_string())
            .env_remove("RUST_LOG")
            // mimalloc reserves its first arena (1 GiB by default) at the first allocation,
            // before the child can set its limit: a small first arena keeps the budget the
            // memory the job may take, and later arenas are mapped under the limit.
            .env("MIMALLOC_ARENA_RESERVE", CHILD_ARENA_RESERVE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| internal(job, format!("cannot start the inspection process: {e}")))?;
        let (mut stdin, mut stdout, mut stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let started = Instant::now();
        let (status, timed_out, answer, errors) = std::thread::scope(|scope| {
            scope.spawn(move || {
                if let Some(stdin) = stdin.as_mut() {
                    // A child that died early closes the pipe: its status says why.
                    let _ = stdin.write_all(input);
                }
                drop(stdin);
            });
            let answer = scope.spawn(move || bounded_read(stdout.as_mut(), ANSWER_LIMIT));
            let errors = scope.spawn(move || bounded_read(stderr.as_mut(), STDERR_KEPT));
            let mut timed_out = false;
            let status = loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if started.elapsed() >= timeout => {
                        timed_out = true;
                        let _ = child.kill();
                        break child.wait();
                    }
                    Ok(None) => std::thread::sleep(POLL),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break Err(e);
                    }
                }
            };
            let answer = answer.join().unwrap_or_default();
            let errors = errors.join().unwrap_or_default();
            (status, timed_out, answer, errors)
        });
        let status = status.map_err(|e| internal(job, format!("waiting for the child: {e}")))?;
        let errors = String::from_utf8_lossy(&errors);
        if let Some(refusal) = self.refusal(job, status, timed_out, &errors) {
            return Err(refusal);
        }
        match serde_json::from_slice::<Answer>(&answer) {
            Ok(Answer::Model(model)) => Ok(Some(model)),
            Ok(Answer::Compiled) => Ok(None),
            Ok(Answer::Invalid(message)) => Err(InspectError::Invalid(message)),
            Ok(Answer::UnsupportedOperator { operators, message }) => {
                Err(InspectError::UnsupportedOperator { operators, message })
            }
            Err(e) => Err(internal(
                job,
                format!("unreadable answer: {e}; stderr: {errors}"),
            )),
        }
    }

    /// Why a child that did not exit cleanly is refused.
    fn refusal(
        &self,
        job: Job,
        status: ExitStatus,
        timed_out: bool,
        errors: &str,
    ) -> Option<InspectError> {
        if status.success() && !timed_out {
            return None;
        }
        let doing = match job {
            Job::Onnx => "loading the model",
            Job::Component => "compiling the component",
        };
        let timeout = self.config.timeout;
        let refusal = if timed_out || status.signal() == Some(libc::SIGXCPU) {
            InspectError::Refused {
                reason: job.reason("timeout"),
                limit: timeout.as_secs(),
                message: format!("{doing} took longer than {timeout:?}"),
            }
        } else if ran_out_of_memory(errors) {
            InspectError::Refused {
                reason: job.reason("memory_exceeded"),
                limit: self.config.memory_bytes,
                message: format!(
                    "{doing} needs more than {} bytes of memory",
                    self.config.memory_bytes
                ),
            }
        } else {
            tracing::warn!(job = job.as_str(), %status, stderr = %errors, "an inspection process crashed");
            InspectError::Refused {
                reason: job.reason("crashed"),
                limit: 0,
                message: format!("{doing} crashed the inspection process"),
            }
        };
        Some(refusal)
    }
}

fn bounded_read(pipe: Option<&mut impl Read>, limit: u64) -> Vec<u8> {
    let mut kept = Vec::new();
    if let Some(pipe) = pipe {
        let _ = (&mut *pipe).take(limit).read_to_end(&mut kept);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = std::io::copy(pipe, &mut std::io::sink());
    }
    kept
}

/// A failure of the sandbox itself: logged, and refused as a crash (the upload cannot be
/// shown safe), not as an internal error the caller could retry forever.
fn internal(job: Job, detail: String) -> InspectError {
    tracing::error!(error.type = "internal", job = job.as_str(), %detail, "inspection sandbox failed");
    InspectError::Refused {
        reason: job.reason("crashed"),
        limit: 0,
        message: "the inspection process failed".into(),
    }
}

/// A counting semaphore for blocking threads.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn new(count: usize) -> Self {
        Self {
            free: Mutex::new(count),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

/// The child: `wisp __inspect <job> <memory-bytes> <cpu-seconds>`, the file on stdin, one
/// JSON [`Answer`] on stdout; answers the process exit code. Runs before any runtime or logger is started, so the limits
/// apply to nothing but the job.
pub fn worker_main(args: &[String]) -> i32 {
    let parsed = match args {
        [job, memory, cpu] => Job::parse(job)
            .zip(memory.parse::<u64>().ok())
            .zip(cpu.parse::<u64>().ok()),
        _ => None,
    };
    let Some(((job, memory_bytes), cpu_seconds)) = parsed else {
        eprintln!("usage: wisp {WORKER_COMMAND} <onnx|component> <memory-bytes> <cpu-seconds>");
        return 2;
    };
    if let Err(error) = limit_resources(memory_bytes, cpu_seconds) {
        eprintln!("cannot limit the inspection process: {error}");
        return 3;
    }
    let mut input = Vec::new();
    if let Err(error) = std::io::stdin().lock().read_to_end(&mut input) {
        eprintln!("cannot read the upload: {error}");
        return 3;
    }
    let answer = match job {
        Job::Onnx => match load_onnx(&input) {
            Ok(model) => Answer::Model(model),
            Err(InspectError::UnsupportedOperator { operators, message }) => {
                Answer::UnsupportedOperator { operators, message }
            }
            Err(InspectError::Invalid(message)) => Answer::Invalid(message),
            Err(error) => Answer::Invalid(error.to_string()),
        },
        Job::Component => match wisp_host::compile_component(&input) {
            Ok(()) => Answer::Compiled,
            Err(error) => Answer::Invalid(error.to_string()),
        },
    };
    let mut stdout = std::io::stdout().lock();
    if serde_json::to_writer(&mut stdout, &answer).is_err() || stdout.flush().is_err() {
        return 3;
    }
    0
}

/// Limits the child: `memory_bytes` of address space beyond what it has mapped already
/// (the program, its libraries, the allocator's first arena). An absolute limit counted the
/// binary's size against the budget, and one near what was mapped at start left the
/// allocator's bookkeeping (mimalloc's page map, extended 64 KiB at a time) failing at
/// random, depending on where the arena landed: a plain model refused one time in 300.
fn limit_resources(memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<()> {
    let address_space = mapped_bytes()?.saturating_add(memory_bytes);
    for (resource, value) in [
        (libc::RLIMIT_AS, address_space),
        (libc::RLIMIT_CPU, cpu_seconds),
        // A crash must not write a core file the size of the budget.
        (libc::RLIMIT_CORE, 0),
    ] {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: `setrlimit` reads the struct we pass by pointer and touches nothing else.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The process's address space now (`VmSize` in `/proc/self/status`).
fn mapped_bytes() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib << 10)
        .ok_or_else(|| std::io::Error::other("no VmSize in /proc/self/status"))
}

/// Whether a dead child's stderr says an allocation failed under its address-space limit:
/// Rust's own abort, tract's panic, the allocator's (mimalloc reports the failed `mmap`,
/// `ENOMEM`), or a panic on a failed reservation. An arithmetic "capacity overflow" is not
/// one of them: it is a crash, whatever the budget.
fn ran_out_of_memory(stderr: &str) -> bool {
    const SIGNS: &[&str] = &[
        "memory allocation of",
        // tract's tensor storage panics on a failed allocation.
        "failed to allocate",
        "out of memory",
        "Cannot allocate memory",
        "unable to allocate",
        "os error 12",
        "TryReserveError",
    ];
    SIGNS.iter().any(|sign| stderr.contains(sign))
}
