//! Symbolizing the kernel's backtraces against the image's ELF.
//!
//! A fatal report prints the call chain as bare return addresses
//! (`backtrace: #3 0x0000000000104f2e`, see `unikernel::arch::backtrace`).
//! [`Symbolizer`] reads the ELF's DWARF with the `addr2line` crate and turns
//! each such line into `function (file:line)` lines, one per inlined frame,
//! innermost first. `cargo xtask run` echoes the console as it comes and
//! adds the symbolized lines after each address line ([`Echo`]); the test
//! harness symbolizes a finished run's output.
//!
//! A return address points after the call, so the lookup uses `address - 1`
//! for every frame but the first of an exception (the faulting instruction
//! itself). Release images carry no debug info: their frames symbolize to
//! the function from the symbol table only, or `??`.

use std::io::Write;
use std::path::Path;

/// The marker the kernel prints before each frame's number.
pub const MARKER: &str = "backtrace: #";

/// One frame of a backtrace line: its number and address.
pub fn parse_frame(line: &str) -> Option<(usize, u64)> {
    let rest = &line[line.find(MARKER)? + MARKER.len()..];
    let (number, rest) = rest.split_once(' ')?;
    let address = rest.trim().strip_prefix("0x")?;
    Some((number.parse().ok()?, u64::from_str_radix(address, 16).ok()?))
}

/// The DWARF of one image.
pub struct Symbolizer {
    loader: addr2line::Loader,
}

impl Symbolizer {
    pub fn new(elf: &Path) -> anyhow::Result<Symbolizer> {
        let loader = addr2line::Loader::new(elf)
            .map_err(|e| anyhow::anyhow!("cannot read debug info of {}: {e}", elf.display()))?;
        Ok(Symbolizer { loader })
    }

    /// `function (file:line)` for each (inlined) frame at `address`,
    /// innermost first; `exact` for a faulting instruction, otherwise the
    /// address is a return address.
    pub fn frames(&self, address: u64, exact: bool) -> Vec<String> {
        let probe = if exact {
            address
        } else {
            address.saturating_sub(1)
        };
        let mut out = Vec::new();
        if let Ok(mut frames) = self.loader.find_frames(probe) {
            while let Ok(Some(frame)) = frames.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|f| f.demangle().ok())
                    .map(|f| strip_hash(&f).to_string())
                    .unwrap_or_else(|| "??".into());
                let place = frame
                    .location
                    .map(|l| {
                        format!(
                            "{}:{}",
                            short_path(l.file.unwrap_or("??")),
                            l.line.unwrap_or(0)
                        )
                    })
                    .unwrap_or_else(|| "??".into());
                out.push(format!("{function} ({place})"));
            }
        }
        if out.is_empty() {
            let name = self
                .loader
                .find_symbol(probe)
                .map(|s| strip_hash(&addr2line::demangle_auto(s.into(), None)).to_string())
                .unwrap_or_else(|| "??".into());
            out.push(format!("{name} (??)"));
        }
        out
    }

    /// The symbolized lines for one console line, if it is a frame line.
    /// An exception's frame #0 is its faulting instruction (`exact`).
    pub fn line(&self, line: &str) -> Option<Vec<String>> {
        let (number, address) = parse_frame(line)?;
        let exact = number == 0 && line.contains("cpu:");
        Some(
            self.frames(address, exact)
                .into_iter()
                .map(|f| format!("    at {f}"))
                .collect(),
        )
    }

    /// `text` with the symbolized lines after each frame line.
    pub fn annotate(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            out.push_str(line);
            out.push('\n');
            for frame in self.line(line).unwrap_or_default() {
                out.push_str(&frame);
                out.push('\n');
            }
        }
        out
    }
}

/// Drops the `::h0123456789abcdef` hash rustc appends to legacy symbols.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// A source path relative to the workspace, or to the crate registry.
fn short_path(file: &str) -> String {
    let root = crate::root();
    let root = root.to_string_lossy();
    if let Some(rest) = file.strip_prefix(&*root) {
        return rest.trim_start_matches('/').to_string();
    }
    match file.find("/library/") {
        Some(i) if file.contains("/rustlib/") || file.contains("/rustc/") => file[i + 1..].into(),
        _ => file.into(),
    }
}

/// Copies console bytes to `out` as they come and, after each complete
/// frame line, writes its symbolized lines.
pub struct Echo<W: Write> {
    out: W,
    symbolizer: Option<Symbolizer>,
    line: Vec<u8>,
}

impl<W: Write> Echo<W> {
    pub fn new(out: W, symbolizer: Option<Symbolizer>) -> Echo<W> {
        Echo {
            out,
            symbolizer,
            line: Vec::new(),
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(end + 1);
            self.out.write_all(line)?;
            self.line.extend_from_slice(line);
            if let Some(symbolizer) = &self.symbolizer {
                let text = String::from_utf8_lossy(&self.line);
                for frame in symbolizer.line(text.trim_end()).unwrap_or_default() {
                    writeln!(self.out, "{frame}")?;
                }
            }
            self.line.clear();
            bytes = rest;
        }
        self.out.write_all(bytes)?;
        self.line.extend_from_slice(bytes);
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_parse_and_others_do_not() {
        assert_eq!(
            parse_frame("[rootstock ERROR] backtrace: #3 0x0000000000104f2e"),
            Some((3, 0x104f2e))
        );
        assert_eq!(
            parse_frame("[rootstock ERROR] cpu: backtrace: #0 0x10"),
            Some((0, 0x10))
        );
        assert_eq!(parse_frame("backtrace: #x 0x10"), None);
        assert_eq!(parse_frame("backtrace: #1 104f2e"), None);
        assert_eq!(parse_frame("hello"), None);
    }

    #[test]
    fn rustc_hashes_are_dropped() {
        assert_eq!(
            strip_hash("selftest::main::h0123456789abcdef"),
            "selftest::main"
        );
        assert_eq!(strip_hash("a::hello"), "a::hello");
    }
}
