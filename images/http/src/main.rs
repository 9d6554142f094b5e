//! The `http` image: Rootstock's HTTP/1.1 server (see the `http` library
//! for the protocol) on virtio-net.
//!
//! Kernel command line settings (all optional):
//! - `port=N` (default 80);
//! - `idle=SECONDS`: idle keep-alive connections close after this (15);
//! - `ip=dhcp`, `ip=A.B.C.D/N`, `gw=A.B.C.D`: see `net::Config`.
//!
//! When it is ready it prints `http: serving on http://ADDRESS:PORT/`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]
#![forbid(unsafe_code)]

extern crate alloc;

unikernel::image!(main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    use http::{Server, ServerConfig};
    use unikernel::println;
    use unikernel::time::Duration;

    fn setting<T: core::str::FromStr>(cmdline: &str, key: &str) -> Option<Result<T, T::Err>> {
        cmdline
            .split_ascii_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .map(str::parse)
    }

    let cmdline = unikernel::cmdline();
    let net_config = match net::Config::from_cmdline(cmdline) {
        Ok(config) => config,
        Err(e) => {
            println!("http: {e}");
            return 2;
        }
    };
    let mut config = ServerConfig::default();
    match setting::<u16>(cmdline, "port") {
        None => {}
        Some(Ok(port)) if port != 0 => config.port = port,
        Some(_) => {
            println!("http: bad port= value");
            return 2;
        }
    }
    match setting::<u64>(cmdline, "idle") {
        None => {}
        Some(Ok(seconds)) if seconds > 0 => config.idle_timeout = Duration::from_secs(seconds),
        Some(_) => {
            println!("http: bad idle= value");
            return 2;
        }
    }
    let stack = match net::open::<net::PassAll>(net_config) {
        Ok(stack) => stack,
        Err(e) => {
            println!("http: no network device: {e:?}");
            return 3;
        }
    };
    let address = stack.wait_for_address().await;
    let server = Server::new(stack, config);
    let serving = match server.listen() {
        Ok(serving) => serving,
        Err(e) => {
            println!("http: cannot listen on port {}: {e:?}", config.port);
            return 3;
        }
    };
    println!("http: serving on http://{address}:{}/", config.port);
    serving.await;
    0
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
