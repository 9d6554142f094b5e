//! The HTTP server on the host: a client stack talks to the server's stack
//! over `net::testing::Wire`, on a virtual clock (time-outs take no real
//! time). The same behaviour is checked against real clients under QEMU in
//! `tests/tests/net_http.rs`.

use http::{Server, ServerConfig};
use net::testing::{Wire, run};
use net::{Ipv4Addr, PassAll, SocketAddrV4, Stack, TcpOptions, TcpStream};
use unikernel::task;
use unikernel::time::Duration;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const HELLO: &str = include_str!("../static/hello.txt");

fn stack(nic: Wire, address: Ipv4Addr) -> Stack {
    Stack::start::<_, PassAll>(nic, net::testing::config(address))
}

/// Starts a server (idle time-out 5 s) and returns the client's stack.
fn setup() -> Stack {
    let (a, b) = Wire::pair([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let server = Server::new(
        stack(a, SERVER),
        ServerConfig {
            idle_timeout: Duration::from_secs(5),
            ..ServerConfig::default()
        },
    );
    task::spawn(server.listen().expect("port 80 is free"));
    stack(b, Ipv4Addr::new(10, 0, 0, 2))
}

async fn connect(client: &Stack) -> TcpStream {
    TcpStream::connect(client, SocketAddrV4::new(SERVER, 80), TcpOptions::default())
        .await
        .expect("the server accepts")
}

/// Reads until the server closes; returns everything.
async fn read_to_end(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn exchange(client: &Stack, request: &[u8]) -> String {
    let mut stream = connect(client).await;
    stream.write_all(request).await.unwrap();
    read_to_end(&mut stream).await
}

#[test]
fn keep_alive_then_close() {
    let reply = run(async {
        let client = setup();
        exchange(
            &client,
            b"GET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await
    });
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
    assert!(reply.contains("Connection: keep-alive\r\n"));
    assert!(
        reply.ends_with(&format!("Connection: close\r\n\r\n{HELLO}")),
        "{reply}"
    );
}

#[test]
fn errors_close_the_connection_and_the_server_goes_on() {
    let replies = run(async {
        let client = setup();
        let mut replies = Vec::new();
        for request in [
            &b"NOT HTTP AT ALL\r\n\r\n"[..],
            b"PUT / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /missing HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999\r\n\r\n",
        ] {
            replies.push(exchange(&client, request).await);
        }
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "b".repeat(9000)
        );
        replies.push(exchange(&client, big.as_bytes()).await);
        replies.push(exchange(&client, b"GET /hello.txt HTTP/1.0\r\n\r\n").await);
        replies
    });
    let statuses: Vec<&str> = replies
        .iter()
        .map(|r| r.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 400 Bad Request",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 413 Content Too Large",
            "HTTP/1.1 431 Request Header Fields Too Large",
            "HTTP/1.1 200 OK",
        ]
    );
}

#[test]
fn silent_clients_are_dropped_and_half_requests_get_408() {
    let (idle, partial, waited) = run(async {
        let client = setup();
        let start = task::current_time();
        let mut quiet = connect(&client).await;
        let idle = read_to_end(&mut quiet).await;
        let waited = task::current_time().saturating_duration_since(start);
        let mut slow = connect(&client).await;
        slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let partial = read_to_end(&mut slow).await;
        (idle, partial, waited)
    });
    assert_eq!(idle, "", "an idle connection is closed without a word");
    assert!(
        (Duration::from_secs(5)..Duration::from_secs(6)).contains(&waited),
        "closed after {waited:?}"
    );
    assert!(
        partial.starts_with("HTTP/1.1 408 Request Timeout"),
        "{partial}"
    );
}

#[test]
fn stats_count_what_was_served() {
    let stats = run(async {
        let client = setup();
        for _ in 0..3 {
            exchange(&client, b"GET /hello.txt HTTP/1.0\r\n\r\n").await;
        }
        exchange(&client, b"GET /stats HTTP/1.0\r\n\r\n").await
    });
    let body = stats.split("\r\n\r\n").nth(1).unwrap_or("");
    assert!(body.contains("\"connections\":4"), "{body}");
    assert!(body.contains("\"requests\":3"), "{body}");
    assert!(body.contains("\"2xx\":3"), "{body}");
}
