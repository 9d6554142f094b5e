//! The server: an accept loop and one task per connection.
//!
//! A connection reads into its own buffer (grown up to the head limit,
//! never beyond), answers each complete request in order (pipelined
//! requests included), and closes after `Connection: close`, after an
//! error response, when the client closes, or when the client stays silent
//! past the idle time-out (or, mid-request, past the request time-out,
//! with a 408).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use net::{BindError, ReadError, Stack, TcpListener, TcpOptions, TcpStream};
use unikernel::task;
use unikernel::time::{Duration, Instant};

use crate::request::{self, Limits, Method, Parsed};
use crate::response::{Response, Status, route, sends_body};
use crate::stats::Stats;

/// How the server behaves.
#[derive(Clone, Copy, Debug)]
pub struct ServerConfig {
    pub port: u16,
    pub limits: Limits,
    /// A keep-alive connection with no request in progress closes after this.
    pub idle_timeout: Duration,
    /// A request head must arrive whole within this, from its first byte.
    pub request_timeout: Duration,
    /// Connections served at once; more get 503 and are closed.
    pub max_connections: u64,
    pub tcp: TcpOptions,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            port: 80,
            limits: Limits::default(),
            idle_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(10),
            max_connections: 1024,
            tcp: TcpOptions {
                rx_buffer: 4 * 1024,
                tx_buffer: 8 * 1024,
                backlog: 32,
                ..TcpOptions::default()
            },
        }
    }
}

/// Called before a request is routed, with its method and target: `Some`
/// status answers the request with that status instead (the image's
/// `http.request` event, where grafts attach).
pub type RequestHook = Box<dyn Fn(Method, &str) -> Option<u16>>;

/// An HTTP server on a network stack.
pub struct Server {
    config: ServerConfig,
    stack: Stack,
    stats: Stats,
    hook: Option<RequestHook>,
}

impl Server {
    pub fn new(stack: Stack, config: ServerConfig) -> Rc<Server> {
        Server::with_hook(stack, config, None)
    }

    /// A server whose requests first go through `hook`.
    pub fn with_hook(stack: Stack, config: ServerConfig, hook: Option<RequestHook>) -> Rc<Server> {
        Rc::new(Server {
            config,
            stack,
            stats: Stats::default(),
            hook,
        })
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Starts listening (so that a caller can announce the server only
    /// once it is reachable) and returns the accept loop to run.
    pub fn listen(
        self: &Rc<Self>,
    ) -> Result<impl core::future::Future<Output = ()> + 'static, BindError> {
        self.listen_on(self.config.port)
    }

    /// [`Server::listen`] on another port (the same site on each).
    pub fn listen_on(
        self: &Rc<Self>,
        port: u16,
    ) -> Result<impl core::future::Future<Output = ()> + 'static, BindError> {
        let listener = TcpListener::bind(&self.stack, port, self.config.tcp)?;
        let server = self.clone();
        Ok(async move { server.accept_loop(listener).await })
    }

    async fn accept_loop(self: Rc<Self>, listener: TcpListener) {
        loop {
            let Ok(stream) = listener.accept().await else {
                continue;
            };
            let server = self.clone();
            task::spawn(async move { server.connection(stream).await });
        }
    }

    async fn connection(&self, mut stream: TcpStream) {
        self.stats.connection_opened();
        if self.stats.active.get() > self.config.max_connections {
            self.send(
                &mut stream,
                &Response::error(Status::ServiceUnavailable),
                false,
                true,
            )
            .await;
        } else {
            self.serve(&mut stream).await;
        }
        self.stats.connection_closed();
        stream.shutdown();
    }

    fn stats_json(&self) -> String {
        let uptime = Duration::from_nanos(task::current_time().as_nanos());
        self.stats
            .to_json(uptime, &self.stack.stats(), heap_usage())
    }

    /// Sends one response; false if the connection failed.
    async fn send(
        &self,
        stream: &mut TcpStream,
        response: &Response,
        keep_alive: bool,
        body: bool,
    ) -> bool {
        let mut head = Vec::with_capacity(192);
        response.write_head(&mut head, keep_alive);
        let body = if body { response.body.bytes() } else { &[] };
        stream.set_timeout(Some(self.config.idle_timeout));
        let ok = stream.write_all(&head).await.is_ok() && stream.write_all(body).await.is_ok();
        self.stats
            .responded(response.status, head.len() + body.len());
        ok
    }

    /// Reads more of the request into `buf[*filled..]`; `Err(Some(status))`
    /// means answer `status` and close, `Err(None)` close silently.
    async fn read_more(
        &self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        filled: &mut usize,
        started: &mut Option<Instant>,
    ) -> Result<(), Option<Status>> {
        let now = task::current_time();
        let timeout = match *started {
            None => self.config.idle_timeout,
            Some(start) => self
                .config
                .request_timeout
                .saturating_sub(now.saturating_duration_since(start)),
        };
        if timeout.is_zero() {
            return Err(Some(Status::RequestTimeout));
        }
        if buf.len() == *filled {
            let grown = (buf.len() * 2).clamp(1024, self.config.limits.max_head);
            buf.resize(grown, 0);
        }
        stream.set_timeout(Some(timeout));
        match stream.read(&mut buf[*filled..]).await {
            Ok(0) => Err(None),
            Ok(n) => {
                *filled += n;
                started.get_or_insert(now);
                self.stats.received(n);
                Ok(())
            }
            Err(ReadError::TimedOut) if started.is_some() => Err(Some(Status::RequestTimeout)),
            Err(_) => Err(None),
        }
    }

    async fn serve(&self, stream: &mut TcpStream) {
        let limits = self.config.limits;
        let mut buf: Vec<u8> = vec![0; 1024];
        let mut filled = 0;
        let mut started = None;
        loop {
            let parsed = request::parse(&buf[..filled], &limits);
            let (response, keep_alive, body, consumed, mut skip) = match parsed {
                Parsed::Incomplete => {
                    match self
                        .read_more(stream, &mut buf, &mut filled, &mut started)
                        .await
                    {
                        Ok(()) => continue,
                        Err(Some(status)) => {
                            self.send(stream, &Response::error(status), false, true)
                                .await;
                            return;
                        }
                        Err(None) => return,
                    }
                }
                Parsed::Rejected(rejection) => {
                    self.send(stream, &Response::error(rejection.status), false, true)
                        .await;
                    return;
                }
                Parsed::Request(request) => {
                    let hooked = self
                        .hook
                        .as_ref()
                        .and_then(|hook| hook(request.method, request.target));
                    let response = match hooked {
                        Some(code) => Response::error(Status::Other(code)),
                        None => route(&request, || self.stats_json()),
                    };
                    let body_here = (filled - request.head_len).min(request.body_len);
                    (
                        response,
                        request.keep_alive,
                        sends_body(request.method),
                        request.head_len + body_here,
                        request.body_len - body_here,
                    )
                }
            };
            buf.copy_within(consumed..filled, 0);
            filled -= consumed;
            started = None;
            // A body we do not use still has to be read past.
            while skip > 0 {
                stream.set_timeout(Some(self.config.request_timeout));
                match stream.read(&mut buf[..skip.min(1024)]).await {
                    Ok(n) if n > 0 => skip -= n,
                    _ => return,
                }
            }
            if !self.send(stream, &response, keep_alive, body).await || !keep_alive {
                return;
            }
            if filled > 0 {
                started = Some(task::current_time());
            }
        }
    }
}

/// The kernel heap's (bytes in use, bytes in the heap); none on the host,
/// where the server's logic is tested without a kernel.
fn heap_usage() -> (usize, usize) {
    #[cfg(target_os = "none")]
    return unikernel::memory::heap::usage();
    #[cfg(not(target_os = "none"))]
    (0, 0)
}
