//! The same servers as host processes, for scale: an echo server (a thread
//! per connection, like the guests') and Debian's nginx with the same page.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

use super::nginx;

/// Starts an echo server on 127.0.0.1; serves until the process exits.
pub fn echo() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut stream = stream;
                let _ = stream.set_nodelay(true);
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0 || stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// nginx on the host, serving the page on a free port; killed on drop.
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
}

impl Nginx {
    pub fn start() -> anyhow::Result<Nginx> {
        let binary = nginx::binary()?;
        let dir = crate::root().join("target/bench/net-native");
        let www = dir.join("www");
        std::fs::create_dir_all(&www)?;
        std::fs::write(www.join("hello.txt"), nginx::HELLO)?;
        let port = super::vm::free_port()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            nginx::config(
                &format!("127.0.0.1:{port}"),
                &www.display().to_string(),
                &dir.display().to_string(),
            ),
        )?;
        let child = Command::new(&binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        super::load::connect(addr).context("native nginx never accepted")?;
        Ok(Nginx { child, addr })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
