//! The IDT, the interrupt entry stubs and the first-level dispatcher.
//!
//! `extern "x86-interrupt"` is nightly-only, so entry is written by hand with
//! stable naked functions: [`vector_stubs`] is a table of 16-byte stubs, one
//! per vector, each pushing a dummy error code where the CPU pushes none,
//! then the vector number, and jumping to [`common_entry`], which saves the
//! general registers into a [`TrapFrame`] and calls [`dispatch`].
//!
//! CPU exceptions are fatal in a unikernel: they are reported (vector, name,
//! error code, CR2, registers) and the VM exits with
//! [`crate::ExitCode::CpuException`]. Vector 32 is the local APIC timer;
//! vectors 33.. are device interrupts with handlers registered by drivers.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use x86_64::VirtAddr;
use x86_64::instructions::tables::lidt;
use x86_64::registers::control::Cr2;
use x86_64::structures::DescriptorTablePointer;

use super::{apic, gdt};

/// Number of vectors with an entry stub (exceptions, timer, device IRQs).
pub const STUB_VECTORS: usize = 64;
/// The local APIC timer's vector.
pub const TIMER_VECTOR: u8 = 32;
/// First vector handed to device drivers.
pub const FIRST_DEVICE_VECTOR: u8 = 33;
/// Spurious-interrupt vector programmed into the APIC.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const STUB_SIZE: usize = 16;

/// General registers saved by [`common_entry`], then the CPU's frame.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// One stub per vector below [`STUB_VECTORS`]. Vectors 8, 10–14, 17, 21, 29
/// and 30 get an error code from the CPU; the others push a zero in its place.
#[unsafe(naked)]
unsafe extern "C" fn vector_stubs() {
    naked_asm!(
        ".set vec, 0",
        ".rept {count}",
        ".balign {size}",
        ".if (vec != 8) && (vec < 10 || vec > 14) && (vec != 17) && (vec != 21) && (vec != 29) && (vec != 30)",
        "pushq $0",
        ".endif",
        "pushq $vec",
        "jmp {common}",
        ".set vec, vec + 1",
        ".endr",
        count = const STUB_VECTORS,
        size = const STUB_SIZE,
        common = sym common_entry,
        options(att_syntax),
    )
}

/// The spurious vector: no EOI, no frame, straight back.
#[unsafe(naked)]
unsafe extern "C" fn spurious_stub() {
    naked_asm!("iretq")
}

#[unsafe(naked)]
unsafe extern "C" fn common_entry() {
    naked_asm!(
        "push rax",
        "push rcx",
        "push rdx",
        "push rbx",
        "push rbp",
        "push rsi",
        "push rdi",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop r11",
        "pop r10",
        "pop r9",
        "pop r8",
        "pop rdi",
        "pop rsi",
        "pop rbp",
        "pop rbx",
        "pop rdx",
        "pop rcx",
        "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    )
}

#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, selector: u16, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            // Present, DPL 0, 64-bit interrupt gate (interrupts off on entry).
            attributes: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

/// Device interrupt handlers, by vector − [`FIRST_DEVICE_VECTOR`].
static DEVICE_HANDLERS: [AtomicUsize; STUB_VECTORS - FIRST_DEVICE_VECTOR as usize] =
    [const { AtomicUsize::new(0) }; STUB_VECTORS - FIRST_DEVICE_VECTOR as usize];

/// Builds and loads the IDT.
pub fn init() {
    let selector = gdt::code_selector();
    let base = vector_stubs as *const () as u64;
    // SAFETY: runs once on the boot CPU before interrupts are enabled; no
    // other reference to IDT exists while it is filled.
    #[allow(static_mut_refs)]
    let idt = unsafe { &mut IDT };
    for vector in 0..STUB_VECTORS {
        let ist = if vector == 8 {
            gdt::DOUBLE_FAULT_IST
        } else {
            0
        };
        idt.0[vector] = Gate::interrupt(base + (vector * STUB_SIZE) as u64, selector, ist);
    }
    idt.0[usize::from(SPURIOUS_VECTOR)] =
        Gate::interrupt(spurious_stub as *const () as u64, selector, 0);
    let pointer = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(&raw const IDT),
    };
    // SAFETY: the IDT is 'static and every present gate points at a stub
    // that saves state and returns with iretq (or never returns).
    unsafe { lidt(&pointer) };
}

/// Registers `handler` for device interrupt `vector` (≥ [`FIRST_DEVICE_VECTOR`]).
pub fn set_device_handler(vector: u8, handler: fn()) {
    let slot = usize::from(vector)
        .checked_sub(usize::from(FIRST_DEVICE_VECTOR))
        .and_then(|i| DEVICE_HANDLERS.get(i))
        .expect("device vector out of range");
    slot.store(handler as usize, Ordering::Release);
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    match vector {
        0..=31 => {
            let cr2 = Cr2::read_raw();
            if !super::graft_code::recover(frame, cr2) {
                super::fault::report(frame, cr2)
            }
        }
        TIMER_VECTOR => {
            apic::timer_interrupt();
            crate::time::on_timer_interrupt();
        }
        _ => {
            let index = usize::from(vector - FIRST_DEVICE_VECTOR);
            let handler = DEVICE_HANDLERS[index].load(Ordering::Acquire);
            if handler != 0 {
                // SAFETY: only `set_device_handler` stores non-zero values,
                // and it stores `fn()` pointers.
                let handler: fn() = unsafe { core::mem::transmute(handler) };
                handler();
            }
            apic::end_of_interrupt();
        }
    }
}
