//! The whole stack on the host: two stacks joined by `net::testing::Wire`,
//! run by the kernel's executor on `net::testing`'s virtual clock.

use net::testing::{Wire, config, run};
use net::{
    Config, ConnectError, Ipv4Addr, NoPing, PassAll, PingError, ReadError, RxPolicy, SocketAddrV4,
    Stack, TcpListener, TcpOptions, TcpStream, UdpOptions, UdpSocket, Verdict, WriteError,
};
use smoltcp::wire::{ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol};
use unikernel::task;
use unikernel::time::Duration;

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Handles on the two ends of the cable, to watch or disturb it.
struct Taps {
    a: Wire,
    b: Wire,
}

/// Two stacks, A (10.0.0.1, receive policy `P`) and B (10.0.0.2), on one cable.
fn pair<P: RxPolicy>() -> (Stack, Stack, Taps) {
    let (a, b) = Wire::pair(MAC_A, MAC_B);
    let taps = Taps {
        a: a.handle(),
        b: b.handle(),
    };
    let a = Stack::start::<_, P>(a, config(A));
    let b = Stack::start::<_, PassAll>(b, config(B));
    (a, b, taps)
}

fn small() -> TcpOptions {
    TcpOptions {
        rx_buffer: 2048,
        tx_buffer: 2048,
        backlog: 2,
        ..TcpOptions::default()
    }
}

/// Spawns an echo server on `stack`:7 that serves `connections` clients.
fn echo_server(stack: &Stack, connections: usize, options: TcpOptions) {
    let listener = TcpListener::bind(stack, 7, options).unwrap();
    task::spawn(async move {
        let mut served = Vec::new();
        for _ in 0..connections {
            let mut stream = listener.accept().await.unwrap();
            served.push(task::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => stream.write_all(&buf[..n]).await.unwrap(),
                    }
                }
            }));
        }
        for s in served {
            s.await;
        }
    });
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

/// Writes `data` and reads the echo concurrently; returns what came back.
async fn echo_through(mut stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let len = data.len();
    let mut back = Vec::with_capacity(len);
    let mut sent = 0;
    let mut buf = vec![0u8; 4096];
    while back.len() < len {
        if sent < len {
            let end = (sent + 1500).min(len);
            let n = stream.write(&data[sent..end]).await.unwrap();
            sent += n;
        }
        // Alternate: one write, then one read of what has come back.
        if back.len() < sent {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "echo ended early at {} of {len}", back.len());
            back.extend_from_slice(&buf[..n]);
        }
    }
    stream.shutdown();
    back
}

#[test]
fn one_mib_echoes_intact() {
    let back = run(async {
        let (a, b, _) = pair::<PassAll>();
        echo_server(&a, 1, TcpOptions::default());
        let stream = TcpStream::connect(&b, SocketAddrV4::new(A, 7), TcpOptions::default())
            .await
            .unwrap();
        echo_through(stream, pattern(1 << 20, 1)).await
    });
    assert!(back == pattern(1 << 20, 1), "echoed bytes differ");
}

#[test]
fn lossy_cable_still_delivers_every_byte() {
    let back = run(async {
        let (a, b, taps) = pair::<PassAll>();
        taps.a.lose_every(Some(13));
        echo_server(&a, 1, small());
        let stream = TcpStream::connect(&b, SocketAddrV4::new(A, 7), small())
            .await
            .unwrap();
        echo_through(stream, pattern(200_000, 2)).await
    });
    assert!(back == pattern(200_000, 2), "echoed bytes differ");
}

#[test]
fn many_concurrent_connections_all_complete_with_a_small_backlog() {
    const CLIENTS: usize = 64;
    let ok = run(async {
        let (a, b, _) = pair::<PassAll>();
        echo_server(&a, CLIENTS, small());
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let b = b.clone();
                task::spawn(async move {
                    let stream = TcpStream::connect(&b, SocketAddrV4::new(A, 7), small())
                        .await
                        .unwrap();
                    let data = pattern(3000 + i, i as u8);
                    echo_through(stream, data.clone()).await == data
                })
            })
            .collect();
        let mut ok = 0;
        for client in clients {
            ok += usize::from(client.await);
        }
        ok
    });
    assert_eq!(ok, CLIENTS);
}

#[test]
fn dropped_streams_are_reaped() {
    let (before, after) = run(async {
        let (a, b, _) = pair::<PassAll>();
        // Serves a fourth client that never comes, so the listener stays.
        echo_server(&a, 4, small());
        let before = a.stats().sockets;
        for i in 0..3 {
            let stream = TcpStream::connect(&b, SocketAddrV4::new(A, 7), small())
                .await
                .unwrap();
            assert_eq!(echo_through(stream, pattern(100, i)).await, pattern(100, i));
        }
        task::sleep(Duration::from_secs(30)).await;
        assert_eq!(b.stats().sockets, 0, "the client's sockets linger");
        (before, a.stats().sockets)
    });
    assert_eq!(before, 2, "the backlog's listening sockets");
    assert_eq!(after, before, "closed connections still hold sockets");
}

#[test]
fn connecting_to_a_closed_port_is_refused() {
    let result = run(async {
        let (_a, b, _) = pair::<PassAll>();
        TcpStream::connect(&b, SocketAddrV4::new(A, 9), small())
            .await
            .err()
    });
    assert_eq!(result, Some(ConnectError::Refused));
}

#[test]
fn silent_peer_times_out_and_reset_peer_is_reported() {
    let (silent, reset) = run(async {
        let (a, b, _) = pair::<PassAll>();
        let listener = TcpListener::bind(&a, 80, small()).unwrap();
        let _quiet = TcpStream::connect(&b, SocketAddrV4::new(A, 80), small())
            .await
            .unwrap();
        let mut server = listener.accept().await.unwrap();
        server.set_timeout(Some(Duration::from_millis(500)));
        let silent = server.read(&mut [0; 16]).await;

        let rude = TcpStream::connect(&b, SocketAddrV4::new(A, 80), small())
            .await
            .unwrap();
        let mut server = listener.accept().await.unwrap();
        rude.abort();
        server.set_timeout(Some(Duration::from_secs(5)));
        let reset = server.read(&mut [0; 16]).await;
        (silent, reset)
    });
    assert_eq!(silent, Err(ReadError::TimedOut));
    assert_eq!(reset, Err(ReadError::Reset));
}

#[test]
fn a_peer_that_does_not_read_blocks_writes_until_the_time_out() {
    let (result, written) = run(async {
        let (a, b, _) = pair::<PassAll>();
        let listener = TcpListener::bind(&a, 80, small()).unwrap();
        let _lazy = TcpStream::connect(&b, SocketAddrV4::new(A, 80), small())
            .await
            .unwrap();
        let mut server = listener.accept().await.unwrap();
        server.set_timeout(Some(Duration::from_secs(1)));
        let chunk = [7u8; 512];
        let mut written = 0;
        loop {
            match server.write(&chunk).await {
                Ok(n) => written += n,
                Err(e) => break (e, written),
            }
        }
    });
    assert_eq!(result, WriteError::TimedOut);
    // The peer's receive window plus our send buffer, and no more.
    assert!((2048..=4096).contains(&written), "wrote {written} bytes");
}

#[test]
fn end_of_stream_after_the_data() {
    let got = run(async {
        let (a, b, _) = pair::<PassAll>();
        let listener = TcpListener::bind(&a, 80, small()).unwrap();
        let mut client = TcpStream::connect(&b, SocketAddrV4::new(A, 80), small())
            .await
            .unwrap();
        client.write_all(b"last words").await.unwrap();
        client.shutdown();
        let mut server = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match server.read(&mut buf).await.unwrap() {
                0 => break got,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    assert_eq!(got, b"last words");
}

#[test]
fn udp_datagrams_round_trip() {
    let (reply, from) = run(async {
        let (a, b, _) = pair::<PassAll>();
        let mut server = UdpSocket::bind(&a, 5353, UdpOptions::default()).unwrap();
        task::spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            buf[..n].reverse();
            server.send_to(&buf[..n], from).await.unwrap();
        });
        let mut client = UdpSocket::bind(&b, 4000, UdpOptions::default()).unwrap();
        client
            .send_to(b"hello", SocketAddrV4::new(A, 5353))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        (buf[..n].to_vec(), from)
    });
    assert_eq!(reply, b"olleh");
    assert_eq!(from, SocketAddrV4::new(A, 5353));
}

#[test]
fn binding_a_bound_port_is_refused() {
    run(async {
        let (a, _b, _) = pair::<PassAll>();
        let _first = TcpListener::bind(&a, 80, small()).unwrap();
        assert!(TcpListener::bind(&a, 80, small()).is_err());
        assert!(TcpListener::bind(&a, 0, small()).is_err());
        let _udp = UdpSocket::bind(&a, 53, UdpOptions::default()).unwrap();
        assert!(UdpSocket::bind(&a, 53, UdpOptions::default()).is_err());
    });
}

#[test]
fn ping_is_answered_unless_the_policy_drops_it() {
    let answered = run(async {
        let (_a, b, _) = pair::<PassAll>();
        net::ping(&b, A, Duration::from_secs(1)).await
    });
    assert!(answered.is_ok(), "{answered:?}");
    let dropped = run(async {
        let (a, b, _) = pair::<NoPing>();
        let result = net::ping(&b, A, Duration::from_secs(1)).await;
        (result, a.stats().port.rx_dropped)
    });
    assert_eq!(dropped, (Err(PingError::TimedOut), 1));
}

#[test]
fn arp_resolves_the_peer_before_the_first_packet() {
    let frames = run(async {
        let (_a, b, taps) = pair::<PassAll>();
        taps.b.capture();
        net::ping(&b, A, Duration::from_secs(1)).await.unwrap();
        taps.b.take_sent()
    });
    let arp: Vec<(Ipv4Addr, Ipv4Addr)> = frames
        .iter()
        .map(|f| EthernetFrame::new_checked(&f[..]).unwrap())
        .filter(|f| f.ethertype() == EthernetProtocol::Arp)
        .map(
            |f| match ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()) {
                Ok(ArpRepr::EthernetIpv4 {
                    source_protocol_addr,
                    target_protocol_addr,
                    ..
                }) => (source_protocol_addr, target_protocol_addr),
                other => panic!("not an IPv4 ARP packet: {other:?}"),
            },
        )
        .collect();
    // B announces itself (gratuitous ARP), then asks where A is.
    assert_eq!(arp, [(B, B), (B, A)]);
    let first_ip = frames
        .iter()
        .position(|f| {
            EthernetFrame::new_checked(&f[..]).unwrap().ethertype() == EthernetProtocol::Ipv4
        })
        .expect("an echo request");
    assert_eq!(first_ip, 2, "the echo request waits for the ARP reply");
}

/// Answers every UDP datagram to port 9 with a fixed frame, without the
/// stack.
#[derive(Default)]
struct AnswerDiscard;

const CANNED: &[u8] = b"\x02\0\0\0\0\x0b\x02\0\0\0\0\x0a\x88\xb5canned reply";

impl RxPolicy for AnswerDiscard {
    const NAME: &'static str = "answer-discard";
    fn on_receive(&mut self, frame: &[u8]) -> Verdict {
        match net::policy::Summary::parse(frame) {
            Some(s) if s.ports.is_some_and(|(_, dst)| dst == 9) => Verdict::Answer,
            _ => Verdict::Pass,
        }
    }
    fn answer(&mut self, _request: &[u8], reply: &mut [u8]) -> usize {
        reply[..CANNED.len()].copy_from_slice(CANNED);
        CANNED.len()
    }
}

#[test]
fn the_policy_can_answer_directly() {
    let (sent_by_a, stats) = run(async {
        let (a, b, taps) = pair::<AnswerDiscard>();
        taps.a.capture();
        let mut client = UdpSocket::bind(&b, 4000, UdpOptions::default()).unwrap();
        client
            .send_to(b"anyone?", SocketAddrV4::new(A, 9))
            .await
            .unwrap();
        task::sleep(Duration::from_millis(10)).await;
        (taps.a.take_sent(), a.stats().port)
    });
    assert_eq!(stats.rx_answered, 1);
    assert!(
        sent_by_a.iter().any(|f| f == CANNED),
        "A sent no canned reply: {sent_by_a:?}"
    );
}

/// Drops every frame: what a hostile `net.rx` graft may do.
#[derive(Default)]
struct DropAll;

impl RxPolicy for DropAll {
    const NAME: &'static str = "drop-all";
    fn on_receive(&mut self, _frame: &[u8]) -> Verdict {
        Verdict::Drop
    }
}

#[test]
fn the_management_port_is_reachable_whatever_the_policy_drops() {
    let (managed, other, stats) = run(async {
        let (a, b) = Wire::pair(MAC_A, MAC_B);
        let a = Stack::start::<_, DropAll>(
            a,
            Config {
                management_port: Some(7),
                ..config(A)
            },
        );
        let b = Stack::start::<_, PassAll>(b, config(B));
        echo_server(&a, 1, small());
        let _other = TcpListener::bind(&a, 8, small()).unwrap();
        let stream = TcpStream::connect(&b, SocketAddrV4::new(A, 7), small())
            .await
            .expect("the management port answers");
        let back = echo_through(stream, pattern(10_000, 3)).await;
        let other = net::timeout(
            Duration::from_secs(5),
            TcpStream::connect(&b, SocketAddrV4::new(A, 8), small()),
        )
        .await;
        (back, other.map(|r| r.is_ok()), a.stats().port)
    });
    assert!(managed == pattern(10_000, 3), "echoed bytes differ");
    assert_ne!(other, Ok(true), "the policy's drop was bypassed for port 8");
    assert!(stats.rx_management > 0 && stats.rx_dropped > 0, "{stats:?}");
}
