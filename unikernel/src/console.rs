//! The console: the application's output (`print!`/`println!`, unprefixed)
//! and the kernel's log (the `log` crate's macros, each line prefixed with
//! `[rootstock <uptime> <LEVEL>] <subsystem>:`), both on COM1.
//!
//! The log level defaults to `info` and is set by `loglevel=` on the kernel
//! command line (`cargo xtask run <image> --append loglevel=debug`).

use core::fmt::{self, Write};

struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Writes raw bytes to the console (a protocol's replies on serial).
pub fn write_bytes(bytes: &[u8]) {
    #[cfg(target_os = "none")]
    crate::arch::serial::write(bytes);
    #[cfg(not(target_os = "none"))]
    {
        use std::io::Write as _;
        let _ = std::io::stdout().write_all(bytes);
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = Console.write_fmt(args);
}

/// Prints to the console (the application's output).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the console (the application's output).
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The subsystem named by a log target: `unikernel::memory::heap` → `memory`.
pub fn subsystem(target: &str) -> &str {
    let target = target.strip_prefix("unikernel::").unwrap_or(target);
    target.split("::").next().unwrap_or(target)
}

/// Writes one kernel log line through `out`.
pub fn format_line(
    out: &mut impl Write,
    uptime_ns: Option<u64>,
    record: &log::Record,
) -> fmt::Result {
    match uptime_ns {
        Some(ns) => write!(
            out,
            "[rootstock {:5}.{:06} {:<5}] ",
            ns / 1_000_000_000,
            ns % 1_000_000_000 / 1000,
            record.level()
        )?,
        None => write!(out, "[rootstock {:<5}] ", record.level())?,
    }
    writeln!(out, "{}: {}", subsystem(record.target()), record.args())
}

struct KernelLogger;

impl log::Log for KernelLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            #[cfg(target_os = "none")]
            let uptime = crate::arch::uptime_if_calibrated();
            #[cfg(not(target_os = "none"))]
            let uptime = None;
            let _ = format_line(&mut Console, uptime, record);
        }
    }

    fn flush(&self) {}
}

static LOGGER: KernelLogger = KernelLogger;

/// Installs the kernel logger at `level`.
pub fn init(level: log::LevelFilter) {
    // A second call (there is none) would keep the first logger.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn line(uptime: Option<u64>) -> String {
        let mut out = String::new();
        format_line(
            &mut out,
            uptime,
            &log::Record::builder()
                .args(format_args!("hello {}", 7))
                .level(log::Level::Info)
                .target("unikernel::memory::heap")
                .build(),
        )
        .unwrap();
        out
    }

    #[test]
    fn log_lines_are_prefixed_and_name_the_subsystem() {
        assert_eq!(
            line(Some(1_234_567_890)),
            "[rootstock     1.234567 INFO ] memory: hello 7\n"
        );
        assert_eq!(line(None), "[rootstock INFO ] memory: hello 7\n");
    }
}
