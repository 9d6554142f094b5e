//! COM1, the console of every image, through `uart_16550`.
//!
//! Writers take the lock with interrupts disabled, so an interrupt handler
//! that logs cannot deadlock against the code it interrupted. A panic that
//! finds the lock held (the panicking code was mid-print) writes through a
//! fresh handle instead: losing interleaving beats losing the message.

use spin::Mutex;
use uart_16550::Uart16550;
use uart_16550::backend::PioBackend;

const COM1: u16 = 0x3f8;

static PORT: Mutex<Option<Uart16550<PioBackend>>> = Mutex::new(None);

fn open() -> Uart16550<PioBackend> {
    // SAFETY: 0x3f8..0x400 is COM1 on every PC-compatible machine QEMU
    // emulates, including microvm's isa-serial; nothing else drives it.
    let mut uart = unsafe { Uart16550::new_port(COM1) }.expect("COM1 base port is valid");
    // A missing UART only means a silent image; keep booting.
    let _ = uart.init(uart_16550::Config::default());
    uart
}

/// Nothing yet: COM1 is set up on first use ([`write`], [`receive`],
/// [`SerialInput::open`]), so an image that prints nothing before `main`
/// spends no port writes (each a VM exit) on a console it has not used.
pub(crate) fn init() {}

/// COM1, set up on first use; call with interrupts disabled.
fn port() -> spin::MutexGuard<'static, Option<Uart16550<PioBackend>>> {
    let mut port = PORT.lock();
    if port.is_none() {
        *port = Some(open());
    }
    port
}

/// Writes bytes to COM1.
pub fn write(bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(uart) = port().as_mut() {
            uart.send_bytes_exact(bytes);
        }
    });
}

/// Writes bytes even if the console lock is held (panic and exception paths).
pub fn write_emergency(bytes: &[u8]) {
    match PORT.try_lock() {
        Some(mut guard) => match guard.as_mut() {
            Some(uart) => uart.send_bytes_exact(bytes),
            None => open().send_bytes_exact(bytes),
        },
        None => open().send_bytes_exact(bytes),
    }
}

/// Reads what COM1 has received, without waiting; 0 when nothing is there.
pub fn receive(buffer: &mut [u8]) -> usize {
    x86_64::instructions::interrupts::without_interrupts(|| {
        port().as_mut().map_or(0, |uart| uart.receive_bytes(buffer))
    })
}

/// COM1's input as something a task can await (the serial console's
/// receive side: ISA IRQ 4, routed through the I/O APIC).
pub struct SerialInput {
    line: super::irq::IrqLine,
}

impl SerialInput {
    /// Claims COM1's interrupt and enables the data-ready interrupt.
    pub fn open() -> Result<SerialInput, super::irq::IrqError> {
        let line = super::irq::IrqLine::claim(COM1_GSI)?;
        x86_64::instructions::interrupts::without_interrupts(|| {
            if let Some(uart) = port().as_mut() {
                uart.enable_interrupts(uart_16550::spec::registers::IER::DATA_READY);
            }
        });
        Ok(SerialInput { line })
    }

    /// Waits until at least one byte has arrived and reads what there is
    /// (at most `buffer.len()` bytes).
    pub async fn read(&self, buffer: &mut [u8]) -> usize {
        loop {
            let n = receive(buffer);
            if n > 0 || buffer.is_empty() {
                return n;
            }
            self.line.wait().await;
        }
    }
}

/// COM1's interrupt line (ISA IRQ 4, identity-mapped to a GSI on microvm).
const COM1_GSI: u32 = 4;
