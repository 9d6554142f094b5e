//! A TCP echo server (RFC 862): every byte a client sends comes back.
//!
//! It is the smallest networked image and the peer of the latency
//! benchmark. The kernel command line can change it:
//! - `port=N`: listen on port N instead of 7;
//! - `ip=dhcp`, `ip=A.B.C.D/N`, `gw=A.B.C.D`: see `net::Config`;
//! - `ping=A.B.C.D`: ping that address once at start and print the result
//!   (`echo: ping ... ok`/`failed`), to check ICMP under QEMU.
//!
//! When it is ready it prints `echo: listening on ADDRESS:PORT`. It serves
//! until the VM is stopped; a client that goes quiet for five minutes is
//! disconnected.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

unikernel::image!(main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    serve::run().await
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}

#[cfg(target_os = "none")]
mod serve {
    use net::{Config, Ipv4Addr, PassAll, TcpListener, TcpOptions, TcpStream};
    use unikernel::cmdline::setting;
    use unikernel::println;
    use unikernel::task;
    use unikernel::time::Duration;

    const IDLE: Duration = Duration::from_secs(300);

    pub async fn run() -> i32 {
        let cmdline = unikernel::cmdline();
        let config = match Config::from_cmdline(cmdline) {
            Ok(config) => config,
            Err(e) => {
                println!("echo: {e}");
                return 2;
            }
        };
        let port = match setting(cmdline, "port").map(str::parse::<u16>) {
            None => 7,
            Some(Ok(port)) if port != 0 => port,
            Some(_) => {
                println!("echo: bad port= value");
                return 2;
            }
        };
        let stack = match net::open::<PassAll>(config) {
            Ok(stack) => stack,
            Err(e) => {
                println!("echo: no network device: {e:?}");
                return 3;
            }
        };
        let address = stack.wait_for_address().await;
        if let Some(target) = setting(cmdline, "ping").and_then(|a| a.parse::<Ipv4Addr>().ok()) {
            match net::ping(&stack, target, Duration::from_secs(5)).await {
                Ok(rtt) => println!("echo: ping {target} ok in {} us", rtt.as_micros()),
                Err(e) => println!("echo: ping {target} failed: {e:?}"),
            }
        }
        let options = TcpOptions {
            rx_buffer: 16 * 1024,
            tx_buffer: 16 * 1024,
            backlog: 16,
            ..TcpOptions::default()
        };
        let listener = match TcpListener::bind(&stack, port, options) {
            Ok(listener) => listener,
            Err(e) => {
                println!("echo: cannot listen on port {port}: {e:?}");
                return 3;
            }
        };
        println!("echo: listening on {address}:{port}");
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    task::spawn(echo(stream));
                }
                Err(e) => log::warn!(target: "echo", "accept: {e:?}"),
            }
        }
    }

    async fn echo(mut stream: TcpStream) {
        stream.set_timeout(Some(IDLE));
        let mut buf = [0u8; 2048];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        stream.shutdown();
    }
}
