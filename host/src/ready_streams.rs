//! WASI's blocking stream writes, finished on the spot when the stream is ready.
//!
//! wasmtime-wasi's synchronous bindings run `blocking-write-and-flush` and `blocking-flush`
//! through `Handle::block_on`, which panics on a tokio worker thread, where a call
//! predicted short runs (see `priority.rs`). A guest's only stream is its stderr, an
//! in-memory pipe that is always ready, and a Rust guest writes its panic message there
//! just before it traps. These two functions shadow the bindings' and poll the write once
//! first: a ready stream finishes without the runtime. A stream that is not ready is
//! handed to the bindings' own path, `in_tokio`, on the same future.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_io::bindings::wasi::io::streams::StreamError as WitStreamError;
use wasmtime_wasi_io::streams::{DynOutputStream, StreamError};

use crate::request::RequestState;

/// The `wasi:io/streams` instance wasmtime-wasi defines; guests importing any 0.2 version
/// resolve to it. It follows the wasmtime-wasi release: after an upgrade that changes it,
/// either instantiation fails everywhere (a second, partial instance) or the in-place
/// hostile test sees a call run again (these functions no longer shadow the bindings').
const STREAMS: &str = "wasi:io/streams@0.2.12";

/// What `blocking-write-and-flush` accepts at once, as the bindings enforce it.
const MAX_BLOCKING_WRITE: usize = 4096;

/// Replaces the two blocking output-stream functions of `linker`, which must already hold
/// wasmtime-wasi's synchronous bindings.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut streams = linker.instance(STREAMS)?;
    streams.func_wrap(
        "[method]output-stream.blocking-write-and-flush",
        |mut store, (stream, bytes): (Resource<DynOutputStream>, Vec<u8>)| {
            if bytes.len() > MAX_BLOCKING_WRITE {
                return Err(wasmtime::format_err!(
                    "Buffer too large for blocking-write-and-flush (expected at most {MAX_BLOCKING_WRITE})"
                ));
            }
            let table = store.data_mut().ctx().table;
            let written = finish(table.get_mut(&stream)?.blocking_write_and_flush(bytes.into()));
            Ok((to_wit(table, written)?,))
        },
    )?;
    streams.func_wrap(
        "[method]output-stream.blocking-flush",
        |mut store, (stream,): (Resource<DynOutputStream>,)| {
            let table = store.data_mut().ctx().table;
            let output = table.get_mut(&stream)?;
            let flushed = finish(async {
                output.flush()?;
                output.write_ready().await.map(drop)
            });
            Ok((to_wit(table, flushed)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `work` to completion: at once when it does not wait, else on the tokio runtime as
/// the bindings would (which panics on a worker thread; the runtime retries such a call
/// on the pool).
fn finish<F: Future>(work: F) -> F::Output {
    let mut work = pin!(work);
    match work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => wasmtime_wasi::runtime::in_tokio(work),
    }
}

/// The guest's view of a stream result; a trap stays a trap.
fn to_wit(
    table: &mut ResourceTable,
    result: Result<(), StreamError>,
) -> wasmtime::Result<Result<(), WitStreamError>> {
    match result {
        Ok(()) => Ok(Ok(())),
        Err(StreamError::Closed) => Ok(Err(WitStreamError::Closed)),
        Err(StreamError::LastOperationFailed(error)) => {
            Ok(Err(WitStreamError::LastOperationFailed(table.push(error)?)))
        }
        Err(StreamError::Trap(error)) => Err(error),
    }
}
