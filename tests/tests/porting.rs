//! An application written for the embedded async Rust ecosystem, run
//! unmodified: `images/picoapi` is picoserve (a third-party `no_std` web
//! framework) on Rootstock's `embedded-io-async` sockets, tested with curl:
//! routing, path parameters, a JSON POST body, errors for bad input, and
//! the server still serving afterwards.

use std::process::Command;

use tests::guest::Guest;

/// curl with `args`; returns (HTTP status, body).
fn curl(guest: &Guest, args: &[&str], path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(["--write-out", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://{}{path}", guest.addr))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text
        .rsplit_once('\n')
        .unwrap_or_else(|| panic!("curl said {text:?}\n{}", guest.console()));
    (status.parse().unwrap_or(0), body.to_string())
}

fn post(guest: &Guest, path: &str, body: &str) -> (u16, String) {
    curl(
        guest,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            body,
        ],
        path,
    )
}

#[test]
fn picoserve_serves_a_json_api_to_curl() {
    let guest = Guest::start("picoapi", "", 80, "picoapi: serving on");
    assert_eq!(
        curl(&guest, &[], "/"),
        (200, r#"{"service":"picoapi","items":0}"#.into())
    );
    assert_eq!(
        post(&guest, "/items", r#"{"name":"bolt","qty":12}"#),
        (201, r#"{"id":1,"name":"bolt","qty":12}"#.into())
    );
    assert_eq!(
        post(&guest, "/items", r#"{"qty":3,"name":"nut"}"#),
        (201, r#"{"id":2,"name":"nut","qty":3}"#.into())
    );
    assert_eq!(
        curl(&guest, &[], "/items/2"),
        (200, r#"{"id":2,"name":"nut","qty":3}"#.into())
    );
    assert_eq!(
        curl(&guest, &[], "/sum/40/-2"),
        (200, r#"{"sum":38}"#.into())
    );
    // Bad input: an error, nothing stored, and the server goes on.
    assert_eq!(
        curl(&guest, &[], "/items/7"),
        (404, r#"{"error":"no such item"}"#.into())
    );
    assert_eq!(post(&guest, "/items", "not json").0, 400);
    assert_eq!(post(&guest, "/items", r#"{"name":"x"}"#).0, 400);
    assert_eq!(curl(&guest, &[], "/items/abc").0, 404);
    assert_eq!(curl(&guest, &[], "/nowhere").0, 404);
    assert_eq!(
        curl(&guest, &[], "/"),
        (200, r#"{"service":"picoapi","items":2}"#.into())
    );
}

#[test]
fn picoserve_keeps_connections_alive_and_serves_them_side_by_side() {
    let guest = Guest::start("picoapi", "", 80, "picoapi: serving on");
    // Several URLs on one curl: one kept-alive connection.
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args((0..5).map(|i| format!("http://{}/sum/{i}/{i}", guest.addr)))
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        r#"{"sum":0}{"sum":2}{"sum":4}{"sum":6}{"sum":8}"#
    );
    // Four clients at once, each on its own connection (and worker task).
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let addr = guest.addr;
            std::thread::spawn(move || {
                let out = Command::new("curl")
                    .args(["--silent", "--max-time", "60"])
                    .arg(format!("http://{addr}/sum/{i}/100"))
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
        })
        .collect();
    for (i, client) in clients.into_iter().enumerate() {
        assert_eq!(client.join().unwrap(), format!(r#"{{"sum":{}}}"#, i + 100));
    }
}
