//! One module per target: `check(&[u8])` panics when a property breaks.

pub mod artifact;
pub mod control;
pub mod envelope;
pub mod http;
pub mod resp;

use arbitrary::Unstructured;

/// The first byte picks a mode (modulo `modes`); the rest is the input.
pub(crate) fn mode(data: &[u8], modes: u8) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (first % modes, rest),
        None => (0, data),
    }
}

/// A graft point name: 1 to `MAX_POINT_NAME` of the allowed characters.
pub(crate) fn point_name(u: &mut Unstructured) -> arbitrary::Result<String> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    let len = u.int_in_range(1..=graft_control::MAX_POINT_NAME)?;
    (0..len)
        .map(|_| u.choose(CHARS).map(|&c| char::from(c)))
        .collect()
}

/// Every file in `dir`, by name, sorted.
pub fn read_dir(dir: &std::path::Path) -> Result<crate::Seeds, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            files.push((name.unwrap_or_default(), bytes));
        }
    }
    files.sort();
    Ok(files)
}
