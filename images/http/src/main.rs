//! The `http` image: Rootstock's HTTP/1.1 server (see the `http` library
//! for the protocol) on virtio-net.
//!
//! Kernel command line settings (all optional):
//! - `port=N` or `port=N,M,…` (default 80; the same site on each port);
//! - `block=N,…`: the compiled-in packet filter drops TCP to these ports;
//! - `control=PORT|off`: the graft control channel (default 7070);
//!   `control-sessions=N` (4) and `control-idle=SECONDS` (30) bound it;
//! - `idle=SECONDS`: idle keep-alive connections close after this (15);
//! - `ip=dhcp`, `ip=A.B.C.D/N`, `gw=A.B.C.D`: see `net::Config`.
//!
//! When it is ready it prints `http: serving on http://ADDRESS:PORT/`.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

unikernel::image!(main: main);

#[cfg(target_os = "none")]
async fn main() -> i32 {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use graft_host::rx::GraftRx;
    use http::{Server, ServerConfig};
    use unikernel::cmdline::setting;
    use unikernel::println;
    use unikernel::time::Duration;

    fn ports(list: &str) -> Option<Vec<u16>> {
        list.split(',')
            .map(|p| p.parse::<u16>().ok().filter(|&p| p != 0))
            .collect()
    }

    let cmdline = unikernel::cmdline();
    let mut net_config = match net::Config::from_cmdline(cmdline) {
        Ok(config) => config,
        Err(e) => {
            println!("http: {e}");
            return 2;
        }
    };
    let mut config = ServerConfig::default();
    let listen = match setting(cmdline, "port").map(ports) {
        None => alloc::vec![config.port],
        Some(Some(list)) if !list.is_empty() => list,
        Some(_) => {
            println!("http: bad port= value (a port, or ports separated by commas)");
            return 2;
        }
    };
    config.port = listen[0];
    match setting(cmdline, "idle").map(str::parse::<u64>) {
        None => {}
        Some(Ok(seconds)) if seconds > 0 => config.idle_timeout = Duration::from_secs(seconds),
        Some(_) => {
            println!("http: bad idle= value");
            return 2;
        }
    }
    let blocked = match setting(cmdline, "block").map(ports) {
        None => Vec::new(),
        Some(Some(list)) => list,
        Some(None) => {
            println!("http: bad block= value (ports separated by commas)");
            return 2;
        }
    };
    let (control, limits) = match graft_channel::tcp::settings(cmdline) {
        Ok(control) => control,
        Err(e) => {
            println!("http: {e}");
            return 2;
        }
    };
    // The control channel's frames reach the stack before `net.rx`: no
    // graft can cut the operator off (see `net::management`).
    net_config.management_port = control;

    // Grafts: the receive path (`net.rx`, in front of the compiled-in
    // `block=` filter) and the request event (`http.request`).
    let grafts = graft_host::image_host();
    let declared = GraftRx::new(&grafts, net::DropPorts::new(blocked)).and_then(|rx| {
        let event = graft_host::app::Event::declare(&grafts, graft_host::points::http_request())?;
        Ok((rx, event))
    });
    let Ok((rx, request_event)) = declared else {
        println!("http: cannot declare the graft points");
        return 3;
    };
    let stack = match net::open_with(net_config, rx) {
        Ok(stack) => stack,
        Err(e) => {
            println!("http: no network device: {e:?}");
            return 3;
        }
    };
    let address = stack.wait_for_address().await;
    if let Some(port) = control
        && let Err(e) = graft_channel::tcp::spawn(&grafts, &stack, port, limits)
    {
        println!("http: cannot listen for graft control on port {port}: {e:?}");
        return 3;
    }
    let hook = move |method: http::request::Method, target: &str| {
        let status = request_event.raise(|| {
            let method: &[u8] = match method {
                http::request::Method::Get => b"GET",
                http::request::Method::Head => b"HEAD",
            };
            [method, b" ", target.as_bytes()].concat()
        })?;
        u16::try_from(status).ok()
    };
    let server = Server::with_hook(stack, config, Some(Box::new(hook)));
    for &port in &listen[1..] {
        match server.listen_on(port) {
            Ok(serving) => {
                unikernel::task::spawn(serving);
            }
            Err(e) => {
                println!("http: cannot listen on port {port}: {e:?}");
                return 3;
            }
        }
    }
    let serving = match server.listen() {
        Ok(serving) => serving,
        Err(e) => {
            println!("http: cannot listen on port {}: {e:?}", config.port);
            return 3;
        }
    };
    for port in &listen {
        println!("http: serving on http://{address}:{port}/");
    }
    serving.await;
    0
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
