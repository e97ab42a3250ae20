//! Every wait WASI does for a guest ends at the call's deadline.
//!
//! A guest waits through `wasi:io/poll`: a sleep is a monotonic-clock pollable it blocks
//! on (Rust's `std::thread::sleep` on wasip2), a blocking stream operation polls its
//! stream. Epochs only interrupt Wasm code, so a guest blocked in the host would keep its
//! thread and its execution slot for as long as it asked to sleep. These three functions
//! shadow wasmtime-wasi's: they poll the wait once (a ready pollable finishes without the
//! tokio runtime, as `ready_streams.rs` does for stderr), and otherwise wait on the runtime
//! no later than the deadline, where the call traps as interrupted (`deadline_exceeded`).
//! A call in place, on an executor thread, must not wait: it stops with `YieldToPool`
//! and the runtime runs it again on the pool.
//! The other blocking functions (`blocking-read`, `blocking-splice`, …) can only wait on a
//! stream, and a model component has none but its stdio, which never waits.

use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use wasmtime::Trap;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_io::bindings::wasi::io::poll::{Host, HostPollable};
use wasmtime_wasi_io::poll::DynPollable;

use crate::request::{RequestState, YieldToPool};

/// The `wasi:io/poll` instance wasmtime-wasi defines; it follows the wasmtime-wasi release
/// like `ready_streams::STREAMS` (a mismatch fails instantiation or lets the hostile sleep
/// tests run past their deadline).
const POLL: &str = "wasi:io/poll@0.2.12";

/// Replaces the waiting functions of `wasi:io/poll` in `linker`, which must already hold
/// wasmtime-wasi's synchronous bindings.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let deadline = (state.deadline, state.yield_at.is_some());
            let ready = until_deadline(deadline, Host::poll(state.ctx().table, pollables))??;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            let deadline = (state.deadline, state.yield_at.is_some());
            until_deadline(deadline, HostPollable::block(state.ctx().table, pollable))??;
            Ok(())
        },
    )?;
    poll.func_wrap(
        "[method]pollable.ready",
        |mut store, (pollable,): (Resource<DynPollable>,)| {
            // Never waits (it polls once), but the bindings' version needs the runtime.
            let state = store.data_mut();
            let deadline = (state.deadline, state.yield_at.is_some());
            let ready =
                until_deadline(deadline, HostPollable::ready(state.ctx().table, pollable))??;
            Ok((ready,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Runs `wait` to completion, or until the deadline, where the call is interrupted. A wait
/// that is ready at once finishes without the tokio runtime; one that is not waits on it,
/// unless the call runs in place.
fn until_deadline<F: Future>(
    (deadline, in_place): (Instant, bool),
    wait: F,
) -> wasmtime::Result<F::Output> {
    let mut wait = pin!(wait);
    if let Poll::Ready(output) = wait.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return Ok(output);
    }
    if Instant::now() >= deadline {
        return Err(Trap::Interrupt.into());
    }
    if in_place {
        return Err(YieldToPool.into());
    }
    let deadline = tokio::time::Instant::from_std(deadline);
    wasmtime_wasi::runtime::in_tokio(tokio::time::timeout_at(deadline, wait))
        .map_err(|_elapsed| Trap::Interrupt.into())
}
