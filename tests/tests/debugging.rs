//! Debugging an image from outside: symbolized backtraces on a panic and a
//! CPU exception, a packet capture of an HTTP exchange (`--pcap`, QEMU's
//! filter-dump), and gdb attached in batch mode to QEMU's gdb stub.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::guest::{Guest, free_port};
use tests::{Outcome, Qemu, boot, image};

/// The 1-based line of the first source line of `file` containing `text`.
fn line_of(file: &str, text: &str) -> usize {
    let source = std::fs::read_to_string(xtask::root().join(file)).unwrap();
    source
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("{text:?} not in {file}"))
        + 1
}

/// The symbolized frames (`at function (file:line)`) in order.
fn frames(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("at "))
        .collect()
}

#[test]
fn a_panic_prints_a_symbolized_backtrace_with_the_function_and_its_caller() {
    let run = boot("selftest", "panic");
    assert_eq!(run.outcome, Outcome::Panic, "{}", run.output);
    let file = "tests/images/selftest/src/main.rs";
    let leaf = format!(
        "selftest::panicking_leaf ({file}:{})",
        line_of(file, "panic!(\"selftest: deliberate panic\")")
    );
    let caller = format!(
        "selftest::panicking_caller ({file}:{})",
        line_of(file, "let status = panicking_leaf(seed);")
    );
    let frames = frames(&run.output);
    let at = |want: &str| {
        frames
            .iter()
            .position(|f| *f == want)
            .unwrap_or_else(|| panic!("no frame {want:?} in:\n{}", run.output))
    };
    assert!(at(&leaf) < at(&caller), "{}", run.output);
    // The chain goes on down to the executor and the boot path.
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("unikernel::arch::kernel_entry")),
        "{}",
        run.output
    );
}

#[test]
fn a_cpu_exception_prints_a_symbolized_backtrace_from_the_faulting_instruction() {
    let run = boot("selftest", "pagefault");
    assert_eq!(run.outcome, Outcome::Exception, "{}", run.output);
    // Frame #0 is the faulting instruction: its (inlined) functions are
    // the symbolized lines between `#0` and `#1`.
    let first: Vec<&str> = run
        .output
        .lines()
        .skip_while(|l| !l.contains("backtrace: #0 "))
        .skip(1)
        .take_while(|l| !l.contains("backtrace: #1 "))
        .collect();
    let frames = frames(&run.output);
    assert!(
        first
            .iter()
            .any(|f| f.contains("fault_injection::write_to")),
        "frame #0 is not the faulting write:\n{}",
        run.output
    );
    assert!(
        frames.iter().any(|f| f.starts_with("selftest::main")),
        "{}",
        run.output
    );
}

#[test]
fn pcap_holds_the_http_exchange() {
    let pcap = std::env::temp_dir().join(format!("rootstock-pcap-{}.pcap", std::process::id()));
    let _ = std::fs::remove_file(&pcap);
    let mut qemu = Qemu::new(image("http"));
    qemu.pcap = Some(pcap.clone());
    let guest = Guest::start_qemu(qemu, 80, "http: serving on");
    let mut stream = TcpStream::connect_timeout(&guest.addr, Duration::from_secs(30)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: pcap\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 200"), "{}", guest.console());
    drop(guest);

    let file = std::fs::File::open(&pcap).expect("the pcap file");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap header");
    assert_eq!(
        reader.header().datalink,
        pcap_file::DataLink::ETHERNET,
        "not an Ethernet capture"
    );
    let mut packets = Vec::new();
    while let Some(packet) = reader.next_packet() {
        packets.push(packet.expect("a well-formed record").data.into_owned());
    }
    let _ = std::fs::remove_file(&pcap);
    let holds = |text: &[u8]| {
        packets
            .iter()
            .any(|p| p.windows(text.len()).any(|w| w == text))
    };
    assert!(
        holds(b"GET /hello.txt HTTP/1.1"),
        "no request in {} packets",
        packets.len()
    );
    assert!(
        holds(b"HTTP/1.1 200"),
        "no response in {} packets",
        packets.len()
    );
}

#[test]
fn gdb_breaks_at_main_and_sees_the_image_exit() {
    let elf = image("hello");
    let line = line_of("images/hello/src/main.rs", "println!");
    let mut qemu = Qemu::new(&elf);
    qemu.gdb = true;
    qemu.gdb_port = free_port();
    let mut vm = qemu
        .command()
        .unwrap()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu");
    let mut console = vm.stdout.take().unwrap();
    let gdb = Command::new("gdb")
        .arg("-batch")
        .arg("-nx")
        .args(["-ex", &format!("target remote 127.0.0.1:{}", qemu.gdb_port)])
        .args(["-ex", &format!("break main.rs:{line}")])
        .args(["-ex", "continue"])
        .args(["-ex", "continue"])
        .arg(&elf)
        .output()
        .expect("gdb (apt-get install gdb)");
    let status = vm.wait().unwrap();
    let mut printed = String::new();
    let _ = console.read_to_string(&mut printed);
    let said =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    assert!(
        said.contains("Breakpoint 1, hello::main")
            && said.contains(&format!("images/hello/src/main.rs:{line}")),
        "gdb did not stop at main:\n{said}"
    );
    // When the image exits, QEMU ends and its gdb stub with it.
    assert!(
        said.contains("Remote connection closed") || said.contains("exited"),
        "gdb did not see the image end:\n{said}"
    );
    assert_eq!(
        Outcome::from_qemu(status.code()),
        Outcome::Exited(0),
        "{printed}"
    );
    assert!(printed.contains("Hello from Rootstock!"), "{printed}");
}
