//! `kv` as Redis clients see it: Debian's `redis-cli` round-trips every
//! command the image supports, `redis-benchmark` runs against it
//! unmodified, pipelining works, malformed and oversized requests get
//! errors without hurting the server, a clean restart from the disk alone
//! keeps every key, and in `durability=write-through` mode an
//! acknowledged write survives even the loss of the whole VM.

mod kv;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use kv::{Kv, fresh_disk, image};

fn boot(name: &str) -> Kv {
    Kv::boot(&image(), &fresh_disk(name), "")
}

/// Asserts that `redis-cli --no-raw args` prints `expected`.
fn check(kv: &Kv, args: &str, expected: &str) {
    let words: Vec<&str> = args.split(' ').collect();
    let got = kv.cli_typed(&words);
    assert_eq!(
        got.trim_end(),
        expected,
        "redis-cli {args}\n{}",
        kv.console()
    );
}

#[test]
fn every_command_round_trips_through_redis_cli() {
    let kv = boot("commands");
    check(&kv, "PING", "PONG");
    check(&kv, "PING hello", "\"hello\"");
    check(&kv, "ECHO hi", "\"hi\"");
    check(&kv, "GET missing", "(nil)");
    check(&kv, "SET k v", "OK");
    check(&kv, "GET k", "\"v\"");
    check(&kv, "SET k other NX", "(nil)");
    check(&kv, "SET k other XX", "OK");
    check(&kv, "SET fresh x XX", "(nil)");
    check(&kv, "SET fresh x NX", "OK");
    check(&kv, "SET k third XX GET", "\"other\"");
    check(&kv, "SET t v EX 100", "OK");
    check(&kv, "TTL t", "(integer) 100");
    check(&kv, "SET p v PX 50000", "OK");
    let pttl: i64 = kv.cli(&["PTTL", "p"]).trim().parse().unwrap();
    assert!((40_000..=50_000).contains(&pttl), "PTTL {pttl}");
    check(&kv, "SET t v2 KEEPTTL", "OK");
    check(&kv, "TTL t", "(integer) 100");
    check(&kv, "SET t v3", "OK");
    check(&kv, "TTL t", "(integer) -1");
    check(&kv, "EXPIRE t 30", "(integer) 1");
    check(&kv, "TTL t", "(integer) 30");
    check(&kv, "EXPIRE missing 30", "(integer) 0");
    check(&kv, "TTL missing", "(integer) -2");
    check(&kv, "PERSIST t", "(integer) 1");
    check(&kv, "TTL t", "(integer) -1");
    check(&kv, "SET gone v PX 1", "OK");
    std::thread::sleep(Duration::from_millis(50));
    check(&kv, "GET gone", "(nil)");
    check(&kv, "INCR n", "(integer) 1");
    check(&kv, "INCRBY n 41", "(integer) 42");
    check(&kv, "DECR n", "(integer) 41");
    check(&kv, "DECRBY n 40", "(integer) 1");
    check(
        &kv,
        "INCR k",
        "(error) ERR value is not an integer or out of range",
    );
    check(&kv, "MSET a 1 b 2 c 3", "OK");
    check(
        &kv,
        "MGET a b missing c",
        "1) \"1\"\n2) \"2\"\n3) (nil)\n4) \"3\"",
    );
    check(&kv, "EXISTS a b missing", "(integer) 2");
    check(&kv, "DEL a b missing", "(integer) 2");
    check(&kv, "EXISTS a b", "(integer) 0");
    check(&kv, "DBSIZE", "(integer) 6");
    check(&kv, "CONFIG GET save", "1) \"save\"\n2) \"\"");
    check(
        &kv,
        "CONFIG GET appendonly",
        "1) \"appendonly\"\n2) \"yes\"",
    );
    let info = kv.cli(&["INFO"]);
    for field in [
        "redis_version:",
        "db0:keys=6",
        "rootstock_durability:rio",
        "rootstock_cache_slots:",
    ] {
        assert!(info.contains(field), "INFO lacks {field}:\n{info}");
    }
    check(&kv, "FLUSHALL", "OK");
    check(&kv, "DBSIZE", "(integer) 0");
    check(
        &kv,
        "NOSUCH arg",
        "(error) ERR unknown command 'NOSUCH', with args beginning with: 'arg'",
    );
    check(
        &kv,
        "GET",
        "(error) ERR wrong number of arguments for 'get' command",
    );
    check(
        &kv,
        "SET k v EX zero",
        "(error) ERR value is not an integer or out of range",
    );
    check(&kv, "SET k v NX XX", "(error) ERR syntax error");
    // Fault injection is not in this (normal) image.
    let debug = kv.cli(&["DEBUG", "PANIC"]);
    assert!(debug.contains("ERR DEBUG is not available"), "{debug}");
    check(&kv, "PING", "PONG");
}

fn connect(kv: &Kv) -> TcpStream {
    let stream = TcpStream::connect(kv.guest.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all);
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn pipelining_malformed_and_oversized_requests() {
    let kv = boot("protocol");
    // Three commands in one write, three replies in order.
    let mut stream = connect(&kv);
    stream
        .write_all(
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2\r\n42\r\nINCR x\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n",
        )
        .unwrap();
    let mut reply = vec![0u8; 64];
    let mut got = Vec::new();
    while got.len() < b"+OK\r\n:43\r\n$2\r\n43\r\n".len() {
        let n = stream.read(&mut reply).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&reply[..n]);
    }
    assert_eq!(got, b"+OK\r\n:43\r\n$2\r\n43\r\n");

    // Malformed frames: an error, then the connection is closed.
    for (bad, error) in [
        (
            &b"*1\r\n$-5\r\n"[..],
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*2\r\n+GET\r\n",
            "-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*x\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        // The bulk is not followed by CRLF: its length lies.
        (
            b"*1\r\n$4\r\nPINGxx",
            "-ERR Protocol error: expected CRLF after the bulk string\r\n",
        ),
        (
            b"SET 'unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // A value over the 1 MiB limit is refused from its length line.
        (
            b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$2000000\r\nxxxx",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
    ] {
        let mut stream = connect(&kv);
        stream.write_all(bad).unwrap();
        assert_eq!(
            read_to_close(&mut stream),
            error,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // The server keeps serving, and the largest allowed value fits.
    check(&kv, "PING", "PONG");
    let value = vec![b'v'; 1 << 20];
    let set = kv.cli_with(&["-x"], &["SET", "big"], Some(&value));
    assert_eq!(set.trim(), "OK", "{}", kv.console());
    assert_eq!(kv.cli(&["GET", "big"]).trim_end().len(), 1 << 20);
    let too_big = vec![b'v'; (1 << 20) + 1];
    let refused = kv.cli_with(&["-x"], &["SET", "bigger"], Some(&too_big));
    assert!(refused.contains("invalid bulk length"), "{refused}");
    check(&kv, "EXISTS bigger", "(integer) 0");
    check(&kv, "GET x", "\"43\"");
}

#[test]
fn a_clean_restart_from_the_disk_keeps_every_key() {
    let disk = fresh_disk("restart");
    let mut kv = Kv::boot(&image(), &disk, "");
    assert_eq!(kv.set_keys(1000, |i| format!("value-{i}")), (1000, 0));
    assert_eq!(kv.cli(&["SET", "t", "v", "EX", "1000"]).trim(), "OK");
    // SHUTDOWN writes every dirty block to the disk and stops the image.
    let _ = kv.cli(&["SHUTDOWN"]);
    kv.wait_exit();
    let console = kv.console();
    assert!(
        console.contains("kv: shutdown: everything is on the disk"),
        "{console}"
    );
    drop(kv);
    // A new VM: nothing in memory survives, only the disk.
    let kv = Kv::boot(&image(), &disk, "");
    assert!(kv.console().contains("cache formatted"), "{}", kv.console());
    let values = kv.get_keys(1000);
    let expected: Vec<String> = (0..1000).map(|i| format!("value-{i}")).collect();
    assert_eq!(values, expected, "{}", kv.console());
    let ttl: i64 = kv.cli(&["TTL", "t"]).trim().parse().unwrap();
    assert!((990..=1000).contains(&ttl), "TTL {ttl}");
    check(&kv, "DBSIZE", "(integer) 1001");
}

#[test]
fn write_through_acknowledges_only_what_is_on_the_disk() {
    let disk = fresh_disk("write-through");
    let kv = Kv::boot(&image(), &disk, "durability=write-through");
    assert!(
        kv.cli(&["INFO"])
            .contains("rootstock_durability:write-through"),
        "{}",
        kv.console()
    );
    assert_eq!(kv.set_keys(200, |i| format!("value-{i}")), (200, 0));
    // The VM is killed: no SHUTDOWN, no warm reboot, the cache is gone.
    drop(kv);
    let kv = Kv::boot(&image(), &disk, "durability=write-through");
    assert!(kv.console().contains("cache formatted"), "{}", kv.console());
    check(&kv, "DBSIZE", "(integer) 200");
    check(&kv, "GET key:199", "\"value-199\"");
    // Anything else is refused at boot, naming the modes.
    let mut qemu = tests::Qemu::new(image());
    qemu.append = "durability=maybe".into();
    let run = tests::run(&qemu);
    run.expect("kv: unknown durability=maybe (rio or write-through)");
    assert_eq!(run.outcome, tests::Outcome::Exited(2), "{}", run.output);
}

#[test]
fn redis_benchmark_runs_unmodified() {
    let kv = boot("benchmark");
    for pipeline in ["1", "16"] {
        let out = std::process::Command::new("redis-benchmark")
            .args(["-p", &kv.port().to_string(), "-c", "4", "-n", "2000"])
            .args(["-P", pipeline, "-t", "ping,set,get,incr,mset", "--csv"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cannot run redis-benchmark (apt-get install redis-tools)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}\n{}", kv.console());
        for test in [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "MSET (10 keys)",
        ] {
            let rps: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("\"{test}\",\"")))
                .and_then(|rest| rest.split('"').next()?.parse().ok())
                .unwrap_or_else(|| panic!("-P {pipeline}: no {test} figure in:\n{text}"));
            assert!(rps > 0.0, "-P {pipeline}: {test} {rps}");
        }
    }
    // What it wrote is there: its 3-byte values, its counter (2,000 INCRs
    // per run).
    assert_eq!(kv.cli(&["GET", "key:__rand_int__"]).trim_end().len(), 3);
    check(&kv, "GET counter:__rand_int__", "\"4000\"");
}
