//! The management channel on the serial console, for images without
//! networking: one [`Session`] over the console's input, its responses
//! written to the console as lines of their own. A stream that cannot be
//! resynchronised starts a fresh session (the console cannot be closed).

use alloc::vec;
use alloc::vec::Vec;

use graft_host::Shared;
use unikernel::task;

use crate::session::{Next, Session};

/// Runs a management session on the serial console.
pub fn spawn(host: &Shared) -> Result<(), unikernel::irq::IrqError> {
    let input = unikernel::SerialInput::open()?;
    crate::probation::spawn_watcher(host);
    let host = host.clone();
    task::Builder::new().name("graft-serial").spawn(async move {
        let mut session = Session::new();
        let mut bytes = vec![0u8; 1024];
        let mut output = Vec::new();
        loop {
            let n = input.read(&mut bytes).await;
            if session.feed(&mut host.borrow_mut(), &bytes[..n], &mut output) == Next::Close {
                session = Session::new();
            }
            if !output.is_empty() {
                unikernel::console::write_bytes(&output);
                output.clear();
            }
        }
    });
    log::info!(target: "graft", "control channel on the serial console");
    Ok(())
}
