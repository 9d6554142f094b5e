//! A scheduling graft in a running image without networking: `schedtest`
//! takes grafts on its serial console. Loading the priority/group sample
//! on `sched.pick` changes the order its tasks run in (highest priority
//! first, where FIFO runs them in spawn order); a graft that loops forever
//! is aborted, logged and unloaded, and FIFO serves again.

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::Qemu;
use tests::grafts::{sample, sealed, wasm};

/// (label, priority) of each task of a round, as the image spawns them.
const PRIORITY: [(char, u8); 6] = [('a', 1), ('b', 5), ('c', 3), ('d', 5), ('e', 1), ('f', 3)];
const FIFO: &str = "a,b,c,d,e,f";

struct Serial {
    child: Child,
    stdin: ChildStdin,
    console: Arc<Mutex<String>>,
}

impl Drop for Serial {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serial {
    fn boot() -> Serial {
        let qemu = Qemu::new(tests::image("schedtest"));
        let mut child = qemu
            .command()
            .expect("QEMU command")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cannot start qemu-system-x86_64");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let console = tests::collect_lines([Box::new(stdout) as Box<dyn std::io::Read + Send>]);
        let serial = Serial {
            child,
            stdin,
            console,
        };
        serial.wait_line(0, |l| l == "schedtest: ready");
        serial
    }

    fn console(&self) -> String {
        self.console.lock().unwrap().clone()
    }

    fn lines(&self) -> usize {
        self.console().lines().count()
    }

    /// The first line after line `after` that `matches`.
    fn wait_line(&self, after: usize, matches: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let console = self.console();
            if let Some(line) = console.lines().skip(after).find(|l| matches(l)) {
                return line.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "timed out; console:\n{console}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one request; returns its reply line (`ok …` or `err …`).
    fn request(&mut self, bytes: &[u8]) -> String {
        let mark = self.lines();
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
        self.wait_line(mark, |l| l.starts_with("ok ") || l.starts_with("err "))
    }

    fn load(&mut self, envelope: &[u8]) -> serde_json::Value {
        let mut request = format!("load sched.pick {}\n", envelope.len()).into_bytes();
        request.extend_from_slice(envelope);
        let reply = self.request(&request);
        let json = reply
            .strip_prefix("ok ")
            .unwrap_or_else(|| panic!("refused: {reply}\n{}", self.console()));
        serde_json::from_str(json).unwrap()
    }

    /// The order of the first round that starts after line `after`.
    fn next_order(&self, after: usize) -> String {
        let line = self.wait_line(after, |l| l.starts_with("schedtest: round "));
        line.rsplit_once(" order ").unwrap().1.to_string()
    }
}

fn priorities(order: &str) -> Vec<u8> {
    order
        .split(',')
        .map(|label| {
            let label = label.chars().next().unwrap();
            PRIORITY.iter().find(|(l, _)| *l == label).unwrap().1
        })
        .collect()
}

#[test]
fn a_scheduling_graft_reorders_tasks_and_an_aborting_one_falls_back_to_fifo() {
    let mut serial = Serial::boot();
    assert_eq!(serial.next_order(0), FIFO, "without a graft: FIFO");

    let loaded = serial.load(&sealed(
        "sched.pick",
        "context,maps",
        &sample("priority-sched"),
    ));
    let id = loaded["graft"].as_u64().unwrap();
    let mark = serial.lines();
    let order = serial.next_order(mark);
    let seen = priorities(&order);
    assert_eq!(seen.len(), 6, "{order}");
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "the graft runs higher priorities first: {order}\n{}",
        serial.console()
    );
    assert_ne!(order, FIFO);

    let reply = serial.request(format!("unload sched.pick {id}\n").as_bytes());
    assert!(reply.starts_with("ok "), "{reply}");
    let spin = wasm(
        r#"(module (func (export "graft_main") (param i32) (result i32) (loop (br 0)) (i32.const 0)))"#,
    );
    serial.load(&sealed("sched.pick", "", &spin));
    let mark = serial.lines();
    // Every pick the spinning graft makes is aborted; FIFO picks instead.
    assert_eq!(serial.next_order(mark), FIFO, "{}", serial.console());
    let mut log = String::new();
    for _ in 0..100 {
        log = serial.request(b"log\n");
        if log.contains("\"unloaded\"") {
            break;
        }
    }
    assert!(log.contains("\"cause\":\"fuel-exhausted\""), "{log}");
    assert!(log.contains("\"action\":\"unloaded\""), "{log}");
    let list = serial.request(b"list\n");
    assert!(list.contains("\"grafts\":[]"), "{list}");
}
