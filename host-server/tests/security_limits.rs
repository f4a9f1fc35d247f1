//! Per-connection limits under a flood from test clients: the session cap, the handshake
//! deadline for connections that never log in, the idle timeout, and failed logins; each
//! while a well-behaved device keeps being served.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use proto_core::{ClientMessage, ErrorCode, ServerMessage, UploadState};

fn ping(client: &mut Client) {
    let id = client.request(ClientMessage::Ping);
    client
        .reply(id, |m| matches!(m, ServerMessage::Pong).then_some(()))
        .expect("the session answers");
}

#[test]
fn the_session_cap_holds_under_a_flood_and_frees_up_afterwards() {
    let server = Server::start(&["--max-sessions", "8"]);
    let key = server.add_device("good");
    let mut good = server.connect("good", &key);

    // 7 more connections fill the cap (they never log in: slots are per connection).
    let hogs: Vec<TcpStream> = (0..7)
        .map(|_| TcpStream::connect(&server.addr).unwrap())
        .collect();
    // Everything beyond gets Busy with the limit named, and is closed.
    let refused: Vec<_> = (0..50)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut extra = Client::tcp_raw(&addr);
                let payload = extra.next_payload().expect("a refusal before the close");
                let frame = proto_core::ServerFrame::decode(&payload).unwrap();
                let answer = match frame.message {
                    ServerMessage::Error { code, message } => (code, message.to_string()),
                    other => panic!("an over-limit connection got {other:?}"),
                };
                extra.expect_closed();
                answer
            })
        })
        .collect();
    for extra in refused {
        let (code, message) = extra.join().unwrap();
        assert_eq!(code, ErrorCode::Busy);
        assert!(message.contains("--max-sessions"), "{message}");
    }
    ping(&mut good);

    drop(hogs);
    let mut second = eventually("a slot to free up", || {
        // While the slots are still taken, the refusal (id 0) comes before the close.
        std::panic::catch_unwind(|| {
            let mut client = Client::tcp_raw(&server.addr);
            client.handshake("good", &key).ok().map(|()| client)
        })
        .ok()
        .flatten()
    });
    ping(&mut second);
    assert_eq!(
        second.upload("after-flood.bin", b"ok").state,
        UploadState::Uploaded
    );
}

#[test]
fn connections_that_never_log_in_are_closed_at_the_handshake_deadline() {
    let server = Server::start(&["--handshake-timeout", "1", "--max-sessions", "64"]);
    let key = server.add_device("good");
    let started = Instant::now();
    // Silent connections, and ones that stop after Hello.
    let mut silent: Vec<Client> = (0..20).map(|_| Client::tcp_raw(&server.addr)).collect();
    let mut stalled: Vec<Client> = (0..20)
        .map(|_| {
            let mut client = Client::tcp_raw(&server.addr);
            client.request(ClientMessage::Hello {
                version: proto_core::PROTOCOL_VERSION,
                max_frame: 4096,
                device: "good",
                nonce: [5; 16],
            });
            client
        })
        .collect();
    for client in silent.iter_mut().chain(stalled.iter_mut()) {
        client.expect_closed();
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "40 unauthenticated connections held for {took:?}"
    );
    let mut good = server.connect("good", &key);
    ping(&mut good);
}

#[test]
fn an_idle_session_gets_goodbye_and_is_closed() {
    let server = Server::start(&["--idle-timeout", "1"]);
    let key = server.add_device("sleepy");
    let mut sleepy = server.connect("sleepy", &key);
    let started = Instant::now();
    let reason = sleepy.wait(|frame| match frame.message {
        ServerMessage::Goodbye { reason } => Some(reason.to_string()),
        _ => None,
    });
    assert!(reason.contains("idle timeout"), "{reason}");
    sleepy.expect_closed();
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A device that keeps talking is not idle.
    let mut chatty = server.connect("sleepy", &key);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(300));
        ping(&mut chatty);
    }
}

#[test]
fn a_flood_of_wrong_keys_is_throttled_and_the_right_device_still_gets_in() {
    let server = Server::start(&["--max-failed-logins", "5"]);
    let key = server.add_device("victim");
    let started = Instant::now();
    let attempts: Vec<_> = (0..40)
        .map(|i| {
            let addr = server.addr.clone();
            std::thread::spawn(move || {
                let mut guess = Client::tcp_raw(&addr);
                let code = guess
                    .handshake("victim", format!("guess {i}").as_bytes())
                    .unwrap_err()
                    .code;
                guess.expect_closed();
                code
            })
        })
        .collect();
    // Guesses already in flight when the allowance ran out are still checked (a fleet behind
    // one address logs in in parallel, so only failures count); every one is answered.
    let codes: Vec<ErrorCode> = attempts.into_iter().map(|a| a.join().unwrap()).collect();
    assert!(
        codes
            .iter()
            .all(|c| matches!(c, ErrorCode::AuthFailed | ErrorCode::Busy)),
        "{codes:?}"
    );
    // From now on the address is refused at once, even with the right key.
    for _ in 0..10 {
        let mut late = Client::tcp_raw(&server.addr);
        let refused = late.handshake("victim", &key).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Busy, "{}", refused.message);
        late.expect_closed();
    }
    assert!(started.elapsed() < WAIT);
    // The victim logs in from another address.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.9:0".parse().unwrap()).unwrap();
        socket.connect(server.addr.parse().unwrap()).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    let mut victim = Client::raw(Box::new(stream), proto_core::framing::Framing::Length);
    victim.handshake("victim", &key).unwrap();
    ping(&mut victim);
}
