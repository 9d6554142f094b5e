//! The graft engine: WebAssembly compiled ahead of time to x86-64 machine
//! code by Wasmtime's Cranelift on the host, run natively in the image.
//!
//! # Why Wasmtime, ahead of time
//!
//! VINO ran its grafts as native code that its SFI tool (MiSFIT) had checked
//! and signed; eBPF is cheap because its programs are JIT-compiled. Rootstock
//! does the same split: a graft is compiled when it is signed, on the host,
//! and the image only maps and runs the result. The image carries no
//! interpreter and no compiler — only Wasmtime's runtime (`default-features
//! = false, features = ["runtime"]`), which deserializes an artifact, links
//! its imports to the accessors and calls it.
//!
//! Two options were weighed: (a) Wasmtime's `no_std` runtime with
//! precompiled modules, and (b) a code generator of our own for the integer
//! subset of WebAssembly (wasmparser + cranelift-codegen on the host, a small
//! loader in the image). (a) is a well-kept engine whose SFI — explicit
//! bounds checks on every memory access, fuel checks on loop back-edges and
//! calls, a stack-limit check in every prologue, checked division, typed
//! indirect calls — is fuzzed continuously upstream; (b) would have to
//! re-derive all of that, plus relocations, trampolines and unwinding, and
//! would be ours alone to trust. The measured cost of (a) is in the README
//! (`cargo xtask bench size grafts`). The interpreter it replaced (`wasmi`)
//! was the other engine measured; keeping it as a per-image choice would
//! have meant two engines under every test, so it is gone.
//!
//! # What the engine is configured to do (one [`config`] for both sides)
//!
//! - **Fuel**: every call runs on a budget; an endless loop stops with
//!   `fuel-exhausted`.
//! - **No signals-based traps**: the image has no signal machinery, so
//!   Cranelift emits an explicit check before every access that could fault
//!   (linear memory bounds, division by zero, `unreachable`, the stack
//!   limit) and raises the trap through Wasmtime's own unwinder. A CPU
//!   exception inside graft code therefore means broken code; the kernel
//!   still recovers from it (`unikernel::arch::graft_fault`).
//! - **No floating point**: `f32`/`f64` instructions are refused when a
//!   graft is compiled. The image is soft-float (`x86_64-unknown-none`):
//!   it saves no SSE state, and Wasmtime's float libcalls would pass values
//!   in registers the kernel's ABI does not use for them. Refusing floats
//!   keeps both problems out entirely (no SIMD either).
//! - **No virtual-memory tricks**: linear memory is a plain heap allocation
//!   of at most the point's page limit, with no reservation or guard region;
//!   code pages are published read+execute through the embedder's
//!   [`CodeMemory`] hook (the image's page tables: W^X).
//! - **Bounded stack**: at most [`MAX_WASM_STACK`] bytes of wasm frames.
//!
//! An artifact records Wasmtime's version and these settings; the image
//! refuses one built by another engine version or configuration, and says
//! which setting differs. [`ENGINE`] names this engine in signed envelopes.
//!
//! # Where a call's instructions go
//!
//! Counted in the release `graftbench` image under `-icount shift=0` (the
//! guest's TSC counts instructions; `cargo xtask bench grafts` prints the
//! table), a null graft — begin, call, validate, commit — is about 830
//! instructions. Wasmtime's share is about 225: `TypedFunc::call_raw` and
//! its TLS bookkeeping (~135), setting and reading the store's fuel (~36),
//! the entry trampoline and the graft's own body (~55). The rest is this
//! runtime's: the point lookup and dispatch (~90), the typed call and its
//! results (~100), the call's glue — swapping the context in and out,
//! stats, the latency histogram, the outcome (~220) — the transaction's
//! begin and commit (~70), the two clock reads for the latency (~60) and
//! the frame that catches a CPU fault in graft code (~45). Each accessor a
//! graft calls costs another ~185: Cranelift's wasm-to-host trampoline and
//! Wasmtime's array-call trampoline take about half, the accessor (its
//! capability check, its bounds checks, its undo record) the other half.
//! So a graft that calls four accessors to do eighteen instructions of work
//! (the read-ahead sample) spends about 1,900 instructions; one that
//! computes in its own memory (the stream cipher) runs at 3.5× its native
//! body, the price of bounds and fuel checks.

#![allow(unsafe_code)]

use alloc::string::String;
#[cfg(not(target_os = "none"))]
use alloc::string::ToString;
use alloc::sync::Arc;
#[cfg(not(target_os = "none"))]
use alloc::vec::Vec;

use wasmtime::{Config, Engine, Module};

pub use wasmtime::CustomCodeMemory as CodeMemory;
/// The engine's error type (what a [`CodeMemory`] hook returns).
pub use wasmtime::Error as EngineError;

/// The engine's name in a signed envelope: the image refuses artifacts that
/// name another (Wasmtime also checks its own version inside the artifact).
pub const ENGINE: &str = "wasmtime-48/cranelift/fuel/no-signals/no-float/v1";

/// The target images are built for, which the host compiles grafts for.
pub const IMAGE_TARGET: &str = "x86_64-unknown-none";

/// The most stack a graft's wasm frames may use.
pub const MAX_WASM_STACK: usize = 32 * 1024;

/// A CPU exception that the embedder caught in graft code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NativeFault {
    pub vector: u8,
    pub rip: u64,
    /// The faulting address of a page fault.
    pub address: u64,
}

/// How the embedder runs graft code with CPU-fault recovery armed: calls
/// the closure, and returns the fault if graft code raised a CPU exception
/// (the closure's frames are then abandoned, not returned through).
pub type Catch = fn(&mut dyn FnMut()) -> Result<(), NativeFault>;

/// What the embedder supplies to run native graft code.
#[derive(Clone, Default)]
pub struct Platform {
    /// Publishes code pages read+execute (`None`: the host's own virtual
    /// memory, which only a hosted build has).
    pub code_memory: Option<Arc<dyn CodeMemory>>,
    /// Recovers from CPU exceptions in graft code (`None`: a fault there is
    /// the process's crash, as on the host).
    pub catch: Option<Catch>,
}

/// Wasmtime's one thread-local pointer, which the embedder keeps (one CPU:
/// one pointer). Saved before a guarded call and put back if graft code
/// faulted, since the frames that would have restored it are abandoned.
#[cfg(target_os = "none")]
mod tls {
    use core::sync::atomic::{AtomicPtr, Ordering};

    /// Wasmtime's slots (slot 0 is its activation list; the component
    /// model's async support, not built here, would use slot 1).
    static SLOTS: [AtomicPtr<u8>; 2] = [
        AtomicPtr::new(core::ptr::null_mut()),
        AtomicPtr::new(core::ptr::null_mut()),
    ];

    #[unsafe(no_mangle)]
    extern "C" fn wasmtime_tls_get(slot: usize) -> *mut u8 {
        SLOTS
            .get(slot)
            .map_or(core::ptr::null_mut(), |s| s.load(Ordering::Relaxed))
    }

    #[unsafe(no_mangle)]
    extern "C" fn wasmtime_tls_set(slot: usize, pointer: *mut u8) {
        if let Some(s) = SLOTS.get(slot) {
            s.store(pointer, Ordering::Relaxed);
        }
    }

    pub(crate) fn save() -> *mut u8 {
        SLOTS[0].load(Ordering::Relaxed)
    }

    pub(crate) fn restore(pointer: *mut u8) {
        SLOTS[0].store(pointer, Ordering::Relaxed);
    }
}

/// Runs `f` under the platform's fault recovery, if it has one.
pub(crate) fn guarded(catch: Option<Catch>, f: &mut dyn FnMut()) -> Result<(), NativeFault> {
    let Some(catch) = catch else {
        f();
        return Ok(());
    };
    #[cfg(target_os = "none")]
    let saved = tls::save();
    let result = catch(f);
    #[cfg(target_os = "none")]
    if result.is_err() {
        tls::restore(saved);
    }
    result
}

/// Where an artifact will run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This process's own target (host tests and host benchmarks).
    Native,
    /// A Rootstock image (`x86_64-unknown-none`).
    Image,
}

/// The one engine configuration, for compiling (host) and loading (both).
fn config(target: Target, code_memory: Option<Arc<dyn CodeMemory>>) -> Result<Config, String> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .signals_based_traps(false)
        .memory_reservation(0)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .guard_before_linear_memory(false)
        .max_wasm_stack(MAX_WASM_STACK)
        .wasm_backtrace_max_frames(None)
        .wasm_simd(false)
        .wasm_relaxed_simd(false)
        .wasm_features(wasmtime::WasmFeatures::FLOATS, false)
        .with_custom_code_memory(code_memory);
    #[cfg(not(target_os = "none"))]
    {
        config.memory_init_cow(false);
        if target == Target::Image {
            config.target(IMAGE_TARGET).map_err(|e| e.to_string())?;
        }
    }
    #[cfg(target_os = "none")]
    {
        let _ = target;
        // SAFETY: the image is soft-float, which is what this check is
        // about: Wasmtime passes floats in SSE registers only to float
        // libcalls and at float-typed borders. Floats are refused when a
        // graft is compiled (`WasmFeatures::FLOATS` off above, checked again
        // when an artifact's settings are compared at load), and every
        // accessor and graft point is integer-only (`crate::Val`), so no
        // float ever crosses between graft code and the kernel.
        unsafe {
            config.x86_float_abi_ok(true);
        }
    }
    Ok(config)
}

/// The engine that loads and runs grafts here (`code_memory`: how the
/// embedder makes code pages executable; `None` uses the host's own
/// virtual memory, which only the host has).
pub fn engine(code_memory: Option<Arc<dyn CodeMemory>>) -> Engine {
    let config = config(Target::Native, code_memory).expect("the graft engine's configuration");
    Engine::new(&config).expect("the graft engine's configuration is valid")
}

/// Why a module could not be compiled: the author's fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError(pub String);

impl core::fmt::Display for CompileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cannot compile the graft: {}", self.0)
    }
}

/// Compiles a WebAssembly module (binary or text) to an artifact for
/// `target`: what `cargo xtask graft load` signs.
#[cfg(not(target_os = "none"))]
pub fn compile(wasm: &[u8], target: Target) -> Result<Vec<u8>, CompileError> {
    let config = config(target, None).map_err(CompileError)?;
    let engine = Engine::new(&config).map_err(|e| CompileError(e.to_string()))?;
    engine
        .precompile_module(wasm)
        .map_err(|e| CompileError(alloc::format!("{e:#}")))
}

/// Loads an artifact into `engine`: Wasmtime checks that it is an artifact
/// of this engine version and configuration, for this target, and maps its
/// code (read+execute, through the engine's code-memory hook).
pub(crate) fn deserialize(engine: &Engine, artifact: &[u8]) -> Result<Module, String> {
    // SAFETY: `Module::deserialize` trusts that the bytes are machine code
    // Wasmtime produced: anything else could run arbitrary code. Artifacts
    // reach here only (1) inside an envelope whose Ed25519 signature by a
    // key this image trusts was verified first (graft-control; the
    // signature vouches for the code, as MiSFIT's did in VINO), or (2) from
    // [`compile`] in the same process (host tests). Wasmtime checks the
    // version, settings and target recorded in the artifact itself.
    unsafe { Module::deserialize(engine, artifact) }.map_err(|e| alloc::format!("{e:#}"))
}
