//! The `http` image under QEMU (TCG, user networking), against `curl` and
//! hand-made clients: correct responses to good requests, the right error
//! or a clean close for bad ones, and after each misbehaving client the
//! server keeps serving (a final GET).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use tests::guest::Guest;

const READY: &str = "http: serving on";
const INDEX: &str = include_str!("../../images/http/static/index.html");
const HELLO: &str = include_str!("../../images/http/static/hello.txt");

/// Boots the server with a short idle time-out (so the idle test is quick).
fn server() -> Guest {
    Guest::start("http", "idle=3", 80, READY)
}

fn url(guest: &Guest, path: &str) -> String {
    format!("http://{}{path}", guest.addr)
}

/// Runs curl; returns (stdout, stderr).
fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl (apt-get install curl)");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Everything the server sends until it closes the connection.
fn read_all(mut stream: TcpStream) -> String {
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// Sends `raw` and returns the whole reply (the server must close).
fn exchange(guest: &Guest, raw: &[u8]) -> String {
    let mut stream = guest.connect();
    stream.write_all(raw).unwrap();
    read_all(stream)
}

fn status_line(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    let head = reply.split("\r\n\r\n").next()?;
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The server still serves the index page.
fn still_serving(guest: &Guest, after: &str) {
    let (body, err) = curl(&[&url(guest, "/")]);
    assert_eq!(
        body,
        INDEX,
        "no index page after {after}: {err}\n{}",
        guest.console()
    );
}

#[test]
fn get_head_and_keep_alive_with_curl() {
    let guest = server();
    let (body, err) = curl(&[&url(&guest, "/")]);
    assert_eq!(body, INDEX, "{err}");

    let (head, _) = curl(&["--head", &url(&guest, "/hello.txt")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(
        header(&head, "content-length"),
        Some(HELLO.len().to_string().as_str())
    );
    assert!(!head.contains("Hello from Rootstock"), "HEAD sent a body");

    // Two requests in one curl run: the second reuses the connection.
    let (bodies, log) = curl(&[
        "--verbose",
        &url(&guest, "/hello.txt"),
        &url(&guest, "/hello.txt"),
    ]);
    assert_eq!(bodies, format!("{HELLO}{HELLO}"));
    assert!(
        log.contains("Re-using existing connection"),
        "curl opened a second connection:\n{log}"
    );

    let (missing, _) = curl(&["--include", &url(&guest, "/no/such/page")]);
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let (delete, _) = curl(&["--include", "-X", "DELETE", &url(&guest, "/")]);
    assert!(delete.starts_with("HTTP/1.1 405"), "{delete}");
    assert_eq!(header(&delete, "allow"), Some("GET, HEAD"));

    let stats = stats_of(&guest);
    for field in ["uptime_ms", "connections", "requests", "bytes_sent"] {
        assert!(
            stats[field].is_u64(),
            "{field} missing from /stats: {stats}"
        );
    }
    let requests = stats["requests"].as_u64().unwrap();
    assert!(requests >= 6, "/stats counts {requests} requests");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let guest = server();
    let reply = exchange(
        &guest,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 3, "{reply}");
    assert_eq!(reply.matches(HELLO).count(), 1, "HEAD sent a body: {reply}");
    assert!(reply.ends_with(include_str!("../../images/http/static/style.css")));
}

#[test]
fn bad_requests_get_an_error_and_the_server_keeps_serving() {
    let guest = server();

    let garbage = exchange(&guest, b"\x16\x03\x01 hello?\r\n\r\n");
    assert!(
        status_line(&garbage).starts_with("HTTP/1.1 400"),
        "{garbage:?}"
    );
    still_serving(&guest, "garbage");

    let no_host = exchange(&guest, b"GET / HTTP/1.1\r\n\r\n");
    assert!(
        status_line(&no_host).starts_with("HTTP/1.1 400"),
        "{no_host}"
    );

    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(10_000)
    );
    let reply = exchange(&guest, big_header.as_bytes());
    assert!(status_line(&reply).starts_with("HTTP/1.1 431"), "{reply}");
    still_serving(&guest, "an oversized header");

    let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
    let reply = exchange(
        &guest,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(status_line(&reply).starts_with("HTTP/1.1 431"), "{reply}");

    let reply = exchange(
        &guest,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n",
    );
    assert!(status_line(&reply).starts_with("HTTP/1.1 413"), "{reply}");
    still_serving(&guest, "an oversized body");

    // A small body on a GET is read past; the connection stays usable.
    let reply = exchange(
        &guest,
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(reply.matches(HELLO).count(), 2, "{reply}");
}

#[test]
fn vanishing_slow_and_idle_clients() {
    let guest = server();

    // Disconnects mid-request (and one mid-way through the request line).
    for partial in [&b"GET /hello.txt HTTP/1.1\r\nHos"[..], b"GE"] {
        let mut stream = guest.connect();
        stream.write_all(partial).unwrap();
        drop(stream);
    }
    still_serving(&guest, "clients that vanished mid-request");

    // A slow client: one byte every 20 ms.
    let mut stream = guest.connect();
    for byte in b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        stream.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let reply = read_all(stream);
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.ends_with(HELLO), "{reply}");

    // An idle keep-alive connection is closed after the time-out (3 s).
    let stream = guest.connect();
    let start = Instant::now();
    let reply = read_all(stream);
    let waited = start.elapsed();
    assert_eq!(reply, "", "an idle connection got {reply:?}");
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(30)).contains(&waited),
        "closed after {waited:?}"
    );
    still_serving(&guest, "an idle time-out");
}

/// Reads one response whose body is [`HELLO`] from a keep-alive connection.
fn read_hello(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    while !reply.ends_with(HELLO.as_bytes()) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

#[test]
fn two_hundred_fifty_six_concurrent_connections_all_complete() {
    const CLIENTS: usize = 256;
    // A long idle time-out: QEMU's user network accepts forwarded
    // connections one at a time (its listen backlog is 1), so opening 256
    // takes a while, and the first ones must not time out meanwhile.
    let guest = Guest::start("http", "idle=300", 80, READY);
    let keep = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut streams = Vec::new();
    for i in 0..CLIENTS {
        let mut stream = guest.connect();
        stream.write_all(keep).unwrap();
        let reply = read_hello(&mut stream);
        assert!(
            reply.starts_with("HTTP/1.1 200 OK"),
            "connection {i}: {reply:?}\n{}",
            guest.console()
        );
        streams.push(stream);
    }
    // All of them are open on the server at once.
    let stats = stats_of(&guest);
    let active = stats["active_connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no active connection count in /stats: {stats}"));
    assert!(
        active > CLIENTS as u64,
        "only {active} connections open: {stats}"
    );
    // Then each sends a second request at the same time and closes.
    let clients: Vec<_> = streams
        .into_iter()
        .map(|mut stream| {
            std::thread::spawn(move || {
                let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                if stream.write_all(request).is_err() {
                    return false;
                }
                let reply = read_all(stream);
                reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with(HELLO)
            })
        })
        .collect();
    let ok = clients
        .into_iter()
        .filter_map(|c| c.join().ok())
        .filter(|&done| done)
        .count();
    assert_eq!(ok, CLIENTS, "{}", guest.console());
    still_serving(&guest, "256 concurrent connections");
}

/// `/stats`, parsed (a document that is not JSON fails the test).
fn stats_of(guest: &Guest) -> serde_json::Value {
    let (stats, _) = curl(&[&url(guest, "/stats")]);
    serde_json::from_str(&stats).unwrap_or_else(|e| panic!("/stats is not JSON ({e}): {stats}"))
}
