//! The `wisp` binary.

use std::sync::Arc;

use clap::Parser;

use wisp::cli::{Cli, Command};
use wisp::config::LogFormat;
use wisp::onnx_inspector::OnnxInspector;
use wisp::sandbox::{Sandbox, WORKER_COMMAND, worker_main};
use wisp::telemetry::logging;

/// Request handling allocates and frees many small buffers across threads, which glibc's
/// malloc served at a sixth of the server's CPU time (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // The inspection child runs its one job before any runtime or logger exists, so its
    // resource limits apply to nothing else (see `wisp::sandbox`).
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(WORKER_COMMAND) {
        std::process::exit(worker_main(&args[1..]));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(run());
    // Exit without shutting the runtime down: background work still running (the usage
    // drainer writing a batch, or retrying an unreachable database, on a blocking thread)
    // must not hold up the exit — `wisp serve` bounded its stop already, and what is not
    // stored stays in the outbox for the next start — and cancelling it mid-statement made
    // its timers panic ("the runtime is being shut down"). Nothing is lost by not
    // dropping: a database transaction is committed or not, the outbox is synced as it
    // is written, and stdout and stderr are flushed here.
    let code = match &outcome {
        Ok(()) => 0,
        Err(error) => {
            // The message and its causes on one line; never a backtrace (RUST_BACKTRACE set
            // for a panic elsewhere must not turn a refused password into a page of frames).
            eprintln!("Error: {error:#}");
            1
        }
    };
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(code)
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            // Validate before opening anything or binding a socket.
            let config = args.config()?;
            logging::init(config.log.format);
            let exe = std::env::current_exe()?;
            let sandbox = Sandbox::new(exe, config.inspection.clone());
            let inspector = Arc::new(OnnxInspector::new(&config.runtime, Some(sandbox)));
            let bootstrap = args.bootstrap(cli.global.org.as_deref());
            wisp::serve::run(config, bootstrap, inspector).await
        }
        command => {
            logging::init(LogFormat::Text);
            wisp::client::run(cli.global, command).await
        }
    }
}
