//! The `echo` image under QEMU (TCG, user networking), driven by real
//! sockets from the host through a forwarded port.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use tests::guest::Guest;

const READY: &str = "echo: listening on";

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed).to_le_bytes()[2])
        .collect()
}

/// Sends `data` from a second thread while reading the echo here.
fn echo(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let len = data.len();
    let sender = std::thread::spawn(move || {
        for chunk in data.chunks(16 * 1024) {
            writer.write_all(chunk).unwrap();
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(len);
    let mut reader = stream;
    reader.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    back
}

#[test]
fn one_mib_through_one_connection_comes_back_intact() {
    let guest = Guest::start("echo", "", 7, READY);
    let data = pattern(1 << 20, 7);
    let back = echo(guest.connect(), data.clone());
    assert_eq!(back.len(), data.len(), "{}", guest.console());
    assert!(back == data, "the echoed mebibyte differs");
}

#[test]
fn sixty_four_concurrent_connections_each_get_their_own_bytes() {
    let guest = Guest::start("echo", "", 7, READY);
    // All 64 are open at once before any sends.
    let streams: Vec<TcpStream> = (0..64).map(|_| guest.connect()).collect();
    let clients: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            std::thread::spawn(move || {
                let data = pattern(8 * 1024 + i, i as u32);
                echo(stream, data.clone()) == data
            })
        })
        .collect();
    let ok = clients
        .into_iter()
        .filter_map(|c| c.join().ok())
        .filter(|&same| same)
        .count();
    assert_eq!(ok, 64, "{}", guest.console());
}

#[test]
fn dhcp_configures_the_address_and_the_gateway_answers_ping() {
    // ICMP echo and ARP through QEMU's user network: the gateway (10.0.2.2)
    // must be resolved by ARP before it can be pinged.
    let guest = Guest::start("echo", "ip=dhcp ping=10.0.2.2", 7, READY);
    let console = guest.console();
    assert!(
        console.contains("DHCP: address 10.0.2.15/24"),
        "no DHCP lease:\n{console}"
    );
    assert!(
        console.contains("echo: ping 10.0.2.2 ok"),
        "no ping reply:\n{console}"
    );
    assert_eq!(echo(guest.connect(), b"after dhcp".to_vec()), b"after dhcp");
}

#[test]
fn an_idle_network_image_halts_instead_of_spinning() {
    let guest = Guest::start("echo", "", 7, READY);
    // Let boot-time work settle, then watch three idle seconds.
    std::thread::sleep(Duration::from_millis(500));
    let before = guest.cpu_time();
    std::thread::sleep(Duration::from_secs(3));
    let used = guest.cpu_time() - before;
    assert!(
        used < Duration::from_millis(600),
        "QEMU used {used:?} of CPU in 3 s while the image was idle"
    );
    // And it still answers.
    assert_eq!(echo(guest.connect(), b"awake".to_vec()), b"awake");
}
