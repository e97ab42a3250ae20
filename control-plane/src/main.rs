//! The `wisp` binary.

use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wisp::cli::{Cli, Command};
use wisp::onnx_inspector::OnnxInspector;

/// Request handling allocates and frees many small buffers across threads, which glibc's
/// malloc served at a sixth of the server's CPU time (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            // Validate before opening anything or binding a socket.
            let config = args.config()?;
            let inspector = Arc::new(OnnxInspector);
            let bootstrap = args.bootstrap(cli.global.org.as_deref());
            wisp::serve::run(config, bootstrap, inspector).await
        }
        command => wisp::client::run(cli.global, command).await,
    }
}
