//! The ecosystem's traits on the whole stack, on the host: code written
//! only against `edge-nal` (connect, bind, accept, split, shutdown) and
//! `embedded-io-async` (read, write), with no Rootstock type in its
//! signature, runs on two Rootstock stacks joined by `net::testing::Wire`.

use core::net::SocketAddr;

use edge_nal::{Close, TcpAccept, TcpBind, TcpConnect, TcpShutdown, TcpSplit};
use embedded_io_async::{Error as _, ErrorKind, Read, Write};
use net::testing::{Wire, config, run};
use net::{IoError, Ipv4Addr, PassAll, Stack};
use unikernel::task;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn pair() -> (Stack, Stack) {
    let (a, b) = Wire::pair([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
    (
        Stack::start::<_, PassAll>(a, config(A)),
        Stack::start::<_, PassAll>(b, config(B)),
    )
}

/// A server written for any `edge-nal` stack: answers each line-less
/// request with its bytes upper-cased, through split halves, then closes.
async fn shouting_server<N: TcpBind>(stack: &N, port: u16, clients: usize) {
    let acceptor = stack
        .bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .unwrap_or_else(|e| panic!("bind: {:?}", e.kind()));
    for _ in 0..clients {
        let (_peer, mut socket) = acceptor.accept().await.map_err(|e| e.kind()).unwrap();
        {
            let (mut read, mut write) = socket.split();
            let mut buf = [0u8; 64];
            let n = read.read(&mut buf).await.map_err(|e| e.kind()).unwrap();
            buf[..n].make_ascii_uppercase();
            write
                .write_all(&buf[..n])
                .await
                .map_err(|e| e.kind())
                .unwrap();
        }
        socket
            .close(Close::Write)
            .await
            .map_err(|e| e.kind())
            .unwrap();
    }
}

/// A client written for any `edge-nal` stack.
async fn ask<N: TcpConnect>(stack: &N, server: SocketAddr, text: &[u8]) -> Vec<u8> {
    let mut socket = stack.connect(server).await.map_err(|e| e.kind()).unwrap();
    socket.write_all(text).await.map_err(|e| e.kind()).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match socket.read(&mut buf).await.map_err(|e| e.kind()).unwrap() {
            0 => break,
            n => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply
}

#[test]
fn generic_edge_nal_client_and_server_talk_over_rootstock_stacks() {
    let replies = run(async {
        let (a, b) = pair();
        let server = task::spawn(async move { shouting_server(&a, 9000, 2).await });
        let to = SocketAddr::from((A, 9000));
        let first = ask(&b, to, b"hello").await;
        let second = ask(&b, to, b"rootstock").await;
        server.await;
        (first, second)
    });
    assert_eq!(replies, (b"HELLO".to_vec(), b"ROOTSTOCK".to_vec()));
}

#[test]
fn edge_nal_errors_map_to_embedded_io_kinds() {
    let (refused, ipv6, port0) = run(async {
        let (_a, b) = pair();
        let refused = b.connect(SocketAddr::from((A, 9))).await.err();
        let ipv6 = b.connect("[::1]:80".parse().unwrap()).await.err();
        let port0 = b.bind(SocketAddr::from((B, 0))).await.err();
        (refused, ipv6, port0)
    });
    assert_eq!(refused, Some(IoError::Refused));
    assert_eq!(refused.unwrap().kind(), ErrorKind::ConnectionRefused);
    assert_eq!(ipv6.map(|e| e.kind()), Some(ErrorKind::AddrNotAvailable));
    assert_eq!(port0.map(|e| e.kind()), Some(ErrorKind::InvalidInput));
}
