//! The one wasmtime `Engine` of the process: pooling allocator, fuel, epochs; and the
//! thread that advances epochs so deadlines fire.

use crate::config::RuntimeConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Core instances, memories and tables one component may hold. Rust guests use a handful
/// (the program, wasi-libc shims); these leave room and still bound a hostile component.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
const MEMORIES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 8;
/// Dirty linear memory reset with `memset` after each instance, per slot; beyond it the
/// pages are returned to the kernel.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Slots whose memory is returned to the kernel in one batch.
const DECOMMIT_BATCH: usize = 8;

pub(crate) fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    // Calls given up on at their deadline keep their instance until their thread ends.
    let slots = config
        .max_concurrent_instances
        .max(1)
        .saturating_add(config.max_stuck_calls);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 4)
        .total_stacks(slots)
        .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MEMORIES_PER_COMPONENT)
        .max_tables_per_component(TABLES_PER_COMPONENT)
        .max_memory_size(usize::try_from(config.max_memory_bytes_per_instance)?)
        // Reset the pages an instance dirtied with `memset` and keep them resident, instead
        // of `madvise` (a TLB shootdown across cores) and page faults on every request:
        // PAGEMAP_SCAN (Linux 6.7+) finds the dirty pages wherever they are, so a guest's
        // stack and heap stay warm; without it only the lowest bytes are kept.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(16 << 10)
        // What still needs `madvise` goes in batches: one shootdown for several slots.
        .decommit_batch_size(DECOMMIT_BATCH);
    let mut wasm = code_generation();
    wasm.max_wasm_stack(config.max_wasm_stack_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm)
}

/// What decides the machine code: shared by the serving engine and the compile check.
fn code_generation() -> Config {
    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    wasm
}

/// An engine that compiles what the serving engine compiles, with the default on-demand
/// allocator: the pool reserves address space for every slot up front, which a process
/// under an address-space limit cannot map.
pub(crate) fn build_compile_engine() -> wasmtime::Result<Engine> {
    Engine::new(&code_generation())
}

/// Advances the engine's epoch every tick until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, tick: std::time::Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("wisp-epoch".into())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("the OS can start a thread");
        Self { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
