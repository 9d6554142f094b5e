//! What native graft code needs from the kernel: code pages published
//! read+execute through the page tables (W^X), and recovery from a CPU
//! exception raised by graft code (`unikernel::arch::graft_code`). On the
//! host (tests) the engine uses the process's own virtual memory, and a
//! fault in graft code would be the test process's crash.

use graft_runtime::Platform;

/// The platform the image's graft runtime runs on.
#[cfg(target_os = "none")]
pub fn platform() -> Platform {
    Platform {
        code_memory: Some(alloc::sync::Arc::new(KernelCode)),
        catch: Some(catch),
    }
}

/// The platform the image's graft runtime runs on.
#[cfg(not(target_os = "none"))]
pub fn platform() -> Platform {
    Platform::default()
}

/// Code pages through the kernel's page tables.
#[cfg(target_os = "none")]
struct KernelCode;

#[cfg(target_os = "none")]
impl graft_runtime::CodeMemory for KernelCode {
    fn required_alignment(&self) -> usize {
        unikernel::memory::FRAME_SIZE as usize
    }

    fn publish_executable(
        &self,
        ptr: *const u8,
        len: usize,
    ) -> Result<(), graft_runtime::EngineError> {
        unikernel::arch::graft_code::publish(ptr as usize, len).map_err(engine_error)
    }

    fn unpublish_executable(
        &self,
        ptr: *const u8,
        len: usize,
    ) -> Result<(), graft_runtime::EngineError> {
        unikernel::arch::graft_code::unpublish(ptr as usize, len).map_err(engine_error)
    }
}

/// A kernel error as the engine reports it.
#[cfg(target_os = "none")]
fn engine_error(error: impl core::fmt::Display) -> graft_runtime::EngineError {
    graft_runtime::EngineError::msg(alloc::format!("{error}"))
}

#[cfg(target_os = "none")]
fn catch(f: &mut dyn FnMut()) -> Result<(), graft_runtime::NativeFault> {
    unikernel::arch::graft_code::catch(&mut || f()).map_err(|fault| {
        log::warn!(target: "grafts",
            "CPU exception {} in graft code at {:#x} (address {:#x}): the call is aborted",
            fault.vector, fault.rip, fault.address);
        graft_runtime::NativeFault {
            vector: fault.vector,
            rip: fault.rip,
            address: fault.address,
        }
    })
}
