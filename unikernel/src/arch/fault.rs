//! Reporting CPU exceptions: in a unikernel every exception is a kernel bug,
//! so the report (vector, error code, faulting address, registers and the
//! call chain from the faulting instruction) is the last thing the image
//! does before it exits with [`crate::ExitCode::CpuException`].

use super::interrupts::TrapFrame;

const NAMES: [(&str, &str); 32] = [
    ("#DE", "divide error"),
    ("#DB", "debug"),
    ("NMI", "non-maskable interrupt"),
    ("#BP", "breakpoint"),
    ("#OF", "overflow"),
    ("#BR", "bound range exceeded"),
    ("#UD", "invalid opcode"),
    ("#NM", "device not available"),
    ("#DF", "double fault"),
    ("#MF", "coprocessor segment overrun"),
    ("#TS", "invalid TSS"),
    ("#NP", "segment not present"),
    ("#SS", "stack-segment fault"),
    ("#GP", "general protection fault"),
    ("#PF", "page fault"),
    ("#15", "reserved"),
    ("#MF", "x87 floating-point error"),
    ("#AC", "alignment check"),
    ("#MC", "machine check"),
    ("#XM", "SIMD floating-point error"),
    ("#VE", "virtualization exception"),
    ("#CP", "control protection"),
    ("#22", "reserved"),
    ("#23", "reserved"),
    ("#24", "reserved"),
    ("#25", "reserved"),
    ("#26", "reserved"),
    ("#27", "reserved"),
    ("#HV", "hypervisor injection"),
    ("#VC", "VMM communication"),
    ("#SX", "security exception"),
    ("#31", "reserved"),
];

/// Describes a page-fault error code: which access, why, from where.
fn page_fault_cause(code: u64) -> (&'static str, &'static str, &'static str) {
    let access = if code & 0x10 != 0 {
        "instruction fetch"
    } else if code & 0x2 != 0 {
        "write"
    } else {
        "read"
    };
    let why = if code & 0x1 != 0 {
        "protection violation"
    } else {
        "page not present"
    };
    let mode = if code & 0x4 != 0 { "user" } else { "kernel" };
    (access, why, mode)
}

/// Prints the exception report and exits the VM; never returns.
pub fn report(frame: &TrapFrame, cr2: u64) -> ! {
    crate::panic::enter_fatal();
    let vector = frame.vector as usize;
    let (short, name) = NAMES[vector % 32];
    log::error!(target: "cpu",
        "CPU exception {short} {name} (vector {vector}), error code {:#x}", frame.error_code);
    let layout = super::boot::layout();
    let in_guard = (layout.stack_guard..layout.stack.0).contains(&cr2);
    if vector == 14 {
        let (access, why, mode) = page_fault_cause(frame.error_code);
        log::error!(target: "cpu", "faulting address (CR2): {cr2:#018x} ({access}, {why}, {mode})");
    } else if vector == 8 {
        log::error!(target: "cpu", "a fault occurred while delivering a fault; CR2 {cr2:#018x}");
    }
    if (vector == 14 || vector == 8) && in_guard {
        log::error!(target: "cpu", "CR2 is in the boot stack's guard page: kernel stack overflow");
    }
    log::error!(target: "cpu", "rip {:#018x}  cs {:#06x}  rflags {:#010x}  rsp {:#018x}  ss {:#06x}",
        frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss);
    log::error!(target: "cpu", "rax {:#018x}  rbx {:#018x}  rcx {:#018x}  rdx {:#018x}",
        frame.rax, frame.rbx, frame.rcx, frame.rdx);
    log::error!(target: "cpu", "rsi {:#018x}  rdi {:#018x}  rbp {:#018x}  r8  {:#018x}",
        frame.rsi, frame.rdi, frame.rbp, frame.r8);
    log::error!(target: "cpu", "r9  {:#018x}  r10 {:#018x}  r11 {:#018x}  r12 {:#018x}",
        frame.r9, frame.r10, frame.r11, frame.r12);
    log::error!(target: "cpu", "r13 {:#018x}  r14 {:#018x}  r15 {:#018x}",
        frame.r13, frame.r14, frame.r15);
    super::backtrace::walk(Some(frame.rip), frame.rbp, |n, address| {
        log::error!(target: "cpu", "{}{n} {address:#018x}", super::backtrace::MARKER);
    });
    super::crash(crate::ExitCode::CpuException)
}
