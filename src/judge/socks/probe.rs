//! The optional SOCKS5 handshake probe: send the greeting `05 01 00` (version 5,
//! one method, "no authentication") and read two bytes; a reply starting with `05`
//! is a SOCKS5 server. Off by default. Only ever sent to loopback addresses — the
//! check is in [`probe_socks5`] itself, so no caller can aim it elsewhere — and
//! bounded: connect, write and read each give up after `timeout`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The greeting: version 5, one method offered, method 0 (no authentication).
pub const SOCKS5_GREETING: [u8; 3] = [0x05, 0x01, 0x00];

/// Default bound on each step of the probe.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(300);

/// What the probe learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Answered `05 xx`: a SOCKS5 server.
    Socks5,
    /// Answered something else, or closed the connection.
    NotSocks,
    /// Connect refused, timed out or failed.
    NoAnswer,
    /// The address is not loopback: nothing was sent.
    RefusedNotLoopback,
}

/// Probes `address` (loopback only) with the SOCKS5 greeting.
pub fn probe_socks5(address: SocketAddr, timeout: Duration) -> ProbeOutcome {
    if !address.ip().is_loopback() {
        return ProbeOutcome::RefusedNotLoopback;
    }
    let timeout = timeout.max(Duration::from_millis(1));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, timeout) else {
        return ProbeOutcome::NoAnswer;
    };
    if stream.set_write_timeout(Some(timeout)).is_err()
        || stream.set_read_timeout(Some(timeout)).is_err()
        || stream.write_all(&SOCKS5_GREETING).is_err()
    {
        return ProbeOutcome::NoAnswer;
    }
    let mut reply = [0u8; 2];
    match stream.read_exact(&mut reply) {
        Ok(()) if reply[0] == 0x05 => ProbeOutcome::Socks5,
        Ok(()) => ProbeOutcome::NotSocks,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            ProbeOutcome::NoAnswer
        }
        Err(_) => ProbeOutcome::NotSocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn never_leaves_loopback() {
        for addr in [
            "192.0.2.1:1080",
            "10.0.0.1:1080",
            "[2001:db8::1]:1080",
            "0.0.0.0:1080",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let started = Instant::now();
            assert_eq!(
                probe_socks5(addr, Duration::from_secs(5)),
                ProbeOutcome::RefusedNotLoopback
            );
            // Nothing was attempted: no connect timeout was waited for.
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }

    #[test]
    fn answers_in_process() {
        // A tiny in-process SOCKS5 responder and a non-SOCKS responder.
        let socks = TcpListener::bind("127.0.0.1:0").unwrap();
        let socks_addr = socks.local_addr().unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let other_addr = other.local_addr().unwrap();
        let t1 = std::thread::spawn(move || {
            let (mut s, _) = socks.accept().unwrap();
            let mut greeting = [0u8; 3];
            s.read_exact(&mut greeting).unwrap();
            assert_eq!(greeting, SOCKS5_GREETING);
            s.write_all(&[5, 0]).unwrap();
        });
        let t2 = std::thread::spawn(move || {
            let (mut s, _) = other.accept().unwrap();
            s.write_all(b"HTTP/1.0 400\r\n").unwrap();
        });
        assert_eq!(
            probe_socks5(socks_addr, Duration::from_secs(2)),
            ProbeOutcome::Socks5
        );
        assert_eq!(
            probe_socks5(other_addr, Duration::from_secs(2)),
            ProbeOutcome::NotSocks
        );
        t1.join().unwrap();
        t2.join().unwrap();
        // Nothing listening: refused.
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            probe_socks5(closed, Duration::from_millis(300)),
            ProbeOutcome::NoAnswer
        );
    }
}
