//! A guest kept running while a benchmark talks to it: booted with host
//! ports forwarded, ready when its console shows a given line, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A free TCP port on 127.0.0.1 (free when asked; QEMU binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running guest.
pub struct Vm {
    child: Child,
    console: Arc<Mutex<String>>,
}

impl Vm {
    /// Starts `command` and waits up to `limit` for `ready` on its console.
    pub fn start(mut command: Command, ready: &str, limit: Duration) -> anyhow::Result<Vm> {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start qemu-system-x86_64")?;
        let console = Arc::new(Mutex::new(String::new()));
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().context("stdout")?),
            Box::new(child.stderr.take().context("stderr")?),
        ];
        for output in outputs {
            let console = console.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines().map_while(Result::ok) {
                    let mut console = console.lock().unwrap();
                    console.push_str(&line);
                    console.push('\n');
                }
            });
        }
        let mut vm = Vm { child, console };
        let start = Instant::now();
        while !vm.console().contains(ready) {
            if let Some(status) = vm.child.try_wait()? {
                bail!(
                    "the guest exited ({status}) before {ready:?}:\n{}",
                    vm.console()
                );
            }
            if start.elapsed() > limit {
                bail!("no {ready:?} within {limit:?}:\n{}", vm.console());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(vm)
    }

    pub fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
