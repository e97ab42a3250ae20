//! wasi-nn tensors a guest creates, charged to its call's memory.
//!
//! `tensor.new` copies the guest's bytes into a host resource. The resource-table cap
//! bounds how many a call may hold (1,000 by default), not how large they are: 1,000
//! tensors made from one 200 MiB buffer would be 200 GB of host memory. This constructor
//! shadows wasi-nn's: it charges each tensor's bytes to the call's [`CallMemory`] before
//! copying them (the list is lifted lazily, so a refused tensor is never copied), and gives
//! back the bytes of tensors the guest dropped or handed to `compute` the next time it
//! makes one.

use crate::limits::CallMemory;
use crate::request::RequestState;
use wasmtime::AsContext;
use wasmtime::component::{Linker, Resource, ResourceTable, WasmList};
use wasmtime_wasi_nn::Tensor;
use wasmtime_wasi_nn::wit::TensorType;

/// The `wasi:nn/tensor` instance wasmtime-wasi-nn defines (the version vendored in `wit/`).
const TENSOR: &str = "wasi:nn/tensor@0.2.0-rc-2024-10-28";

/// The message of the trap a refused tensor causes (reported as `memory_limit_exceeded`).
const REFUSED: &str = "a wasi-nn tensor would take the call past its memory limit";

/// Tensors this call created through `tensor.new` and the bytes charged for each.
#[derive(Debug, Default)]
pub(crate) struct TensorLedger {
    charged: Vec<(u32, usize)>,
}

impl TensorLedger {
    /// Gives back the bytes of tensors that are no longer in the table (dropped by the
    /// guest, or consumed by `compute`).
    fn settle(&mut self, table: &ResourceTable, memory: &CallMemory) {
        self.charged.retain(|&(rep, bytes)| {
            let alive = table
                .get(&Resource::<Tensor>::new_borrow(rep))
                .is_ok_and(|tensor| tensor.data.len() == bytes);
            if !alive {
                memory.remove_host(bytes);
            }
            alive
        });
    }
}

/// Replaces wasi-nn's tensor constructor in `linker`, which must already hold wasi-nn.
pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut tensor = linker.instance(TENSOR)?;
    tensor.func_wrap(
        "[constructor]tensor",
        |mut store, (dimensions, ty, data): (Vec<u32>, TensorType, WasmList<u8>)| {
            let bytes = data.len();
            {
                let state = store.data_mut();
                let (table, ledger, limiter) = state.tensor_parts();
                let memory = limiter.memory().clone();
                ledger.settle(table, &memory);
                if !memory.try_add_host(bytes) {
                    limiter.memory_limit_hit = true;
                    return Err(wasmtime::format_err!("{REFUSED}"));
                }
            }
            let data = data.as_le_slice(store.as_context()).to_vec();
            let state = store.data_mut();
            let (table, ledger, _) = state.tensor_parts();
            let resource = table.push(Tensor {
                dimensions,
                ty,
                data,
            })?;
            ledger.charged.push((resource.rep(), bytes));
            Ok((resource,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
