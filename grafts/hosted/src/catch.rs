//! Recovering from a CPU fault in graft code: a recovery point per thread,
//! armed by an assembly trampoline, and a signal handler that resumes
//! there when the faulting instruction is published graft code.

#![allow(unsafe_code)]

use core::arch::naked_asm;
use core::cell::Cell;
use std::sync::Once;

/// A CPU fault raised by graft code inside [`catch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The signal: `SIGILL` (a trap site), `SIGSEGV`, `SIGBUS` or `SIGFPE`.
    pub signal: i32,
    /// The faulting instruction.
    pub rip: u64,
    /// The faulting address (`si_addr`: for `SIGSEGV`, the address touched).
    pub address: u64,
}

thread_local! {
    /// The armed recovery point's stack pointer (0: none armed).
    static RECOVER: Cell<usize> = const { Cell::new(0) };
    /// The last fault recovered on this thread.
    static FAULT: Cell<Fault> = const { Cell::new(Fault { signal: 0, rip: 0, address: 0 }) };
}

const SIGNALS: [libc::c_int; 4] = [libc::SIGILL, libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE];

/// The actions that were in place before ours, put back for a signal that
/// is not graft code's.
static mut PREVIOUS: [core::mem::MaybeUninit<libc::sigaction>; 4] =
    [const { core::mem::MaybeUninit::zeroed() }; 4];
static INSTALL: Once = Once::new();

/// Installs the signal handler once per process (publishing code does it).
pub(crate) fn install() {
    INSTALL.call_once(|| {
        for (i, &signal) in SIGNALS.iter().enumerate() {
            // SAFETY: a zeroed `sigaction` is a valid starting point; the
            // handler has the SA_SIGINFO signature; PREVIOUS is written only
            // here, once, before any handler can read it.
            unsafe {
                let mut action: libc::sigaction = core::mem::zeroed();
                action.sa_sigaction = handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO;
                libc::sigemptyset(&mut action.sa_mask);
                let previous = (&raw mut PREVIOUS[i]).cast::<libc::sigaction>();
                libc::sigaction(signal, &action, previous);
            }
        }
    });
}

/// Runs `f`; a CPU fault raised by published graft code while it runs
/// abandons the frames it interrupted and returns here as [`Fault`].
/// Nests: the innermost `catch` takes the fault.
pub fn catch(f: &mut dyn FnMut()) -> Result<(), Fault> {
    extern "C" fn call(data: *mut u8) {
        // SAFETY: `data` is the `&mut &mut dyn FnMut()` passed to the
        // trampoline below, alive for the whole call.
        let f = unsafe { &mut *data.cast::<&mut dyn FnMut()>() };
        f();
    }
    install();
    let mut f = f;
    let slot = RECOVER.with(Cell::as_ptr);
    // SAFETY: the trampoline calls `call(data)` once with the callee-saved
    // registers preserved and `slot` (this thread's recovery point) armed,
    // and returns 0 when it returns, or 1 when the handler resumed at the
    // recovery point; either way it puts the previous recovery point back.
    let faulted = unsafe { trampoline(slot, (&raw mut f).cast(), call) };
    if faulted == 0 {
        Ok(())
    } else {
        Err(FAULT.with(Cell::get))
    }
}

/// Saves the callee-saved registers, `slot` and the recovery point it held
/// on the stack, arms a new one there, and calls `call(data)`.
///
/// # Safety
/// `slot` must be this thread's recovery point; `call` must be safe to call
/// with `data`.
#[unsafe(naked)]
unsafe extern "C" fn trampoline(
    slot: *mut usize,
    data: *mut u8,
    call: extern "C" fn(*mut u8),
) -> u64 {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "push rdi",
        "push qword ptr [rdi]",
        "mov [rdi], rsp",
        // Nine words and the return address: realign for the call.
        "sub rsp, 8",
        "mov rdi, rsi",
        "call rdx",
        "add rsp, 8",
        "pop rcx",
        "pop rdi",
        "mov [rdi], rcx",
        "xor eax, eax",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// Where a recovered fault resumes, with `rsp` the armed recovery point:
/// puts the previous recovery point back, restores what the trampoline
/// saved and returns 1 from it.
#[unsafe(naked)]
unsafe extern "C" fn landing() {
    naked_asm!(
        "pop rcx",
        "pop rdi",
        "mov [rdi], rcx",
        "mov eax, 1",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext_t for an SA_SIGINFO handler.
    let context = unsafe { &mut *context.cast::<libc::ucontext_t>() };
    let registers = &mut context.uc_mcontext.gregs;
    let rip = registers[libc::REG_RIP as usize] as u64;
    let recover = RECOVER.with(Cell::get);
    if recover != 0 && crate::code::is_graft_code(rip as usize) {
        // SAFETY: `info` is valid for an SA_SIGINFO handler.
        let address = unsafe { (*info).si_addr() } as u64;
        FAULT.with(|f| {
            f.set(Fault {
                signal,
                rip,
                address,
            })
        });
        registers[libc::REG_RSP as usize] = recover as i64;
        registers[libc::REG_RIP as usize] = landing as *const () as i64;
        return;
    }
    // Not graft code's: put back what was there and let the instruction
    // fault again under it (for the default action, the process dies).
    if let Some(i) = SIGNALS.iter().position(|&s| s == signal) {
        // SAFETY: PREVIOUS[i] was filled by `install` before this handler
        // was installed.
        unsafe {
            let previous = (&raw const PREVIOUS[i]).cast::<libc::sigaction>();
            libc::sigaction(signal, previous, core::ptr::null_mut());
        }
    }
}
