//! an1256 patch: a bounded listener in place of thrift's `TServer::listen_uds`.
//!
//! thrift 0.17's server hands every accepted connection to a pool of 10 workers
//! and reads it with no timeout and no size limit, so ten idle (or slow, or
//! garbage) connections take every worker for good while the extension still
//! answers osquery's pings, and a length prefix of 2 GiB is allocated as told.
//! Here each connection gets its own thread (at most [`MAX_CONNECTIONS`] at once),
//! read and write timeouts, a time limit per request, and a binary protocol that
//! refuses strings, containers and messages over fixed bounds.

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier,
    TMessageIdentifier, TMessageType, TSetIdentifier, TStructIdentifier, TType,
};
use thrift::server::TProcessor;
use thrift::transport::{TBufferedReadTransport, TBufferedWriteTransport};
use thrift::{ProtocolError, ProtocolErrorKind};

/// Connections served at once; more are closed on arrival (and logged).
pub const MAX_CONNECTIONS: usize = 64;
/// Longest wait for the next bytes of a request (an idle connection is closed).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a whole request may take to arrive once it started (a trickle).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a client to take a reply.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest string or binary field (osquery's query contexts are far smaller).
pub const MAX_STRING_BYTES: usize = 16 * 1024 * 1024;
/// Largest request as a whole.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Most entries in one list, set or map.
pub const MAX_CONTAINER_ENTRIES: i32 = 1 << 20;

/// A listening Unix socket at `path` that only its owner can connect to, whatever
/// umask the extension inherited (osquery's, or a shell's 000): another user could
/// otherwise call its tables or shut it down. `UnixListener::bind` listens with
/// the umask's mode at once, so the socket is bound and restricted in a private
/// directory first, then linked into place (`link` never replaces a file).
fn bind_owner_only(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    // Short, so the staged path fits in sun_path wherever the final one does.
    let staging = path.with_file_name(format!(".bind{}", std::process::id()));
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged).and_then(|listener| {
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::hard_link(&staged, path)?;
        Ok(listener)
    });
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// Serves `processor` on a Unix socket at `path` until `shutdown` is set (checked
/// after each accept; the server wakes the loop with a connection of its own).
pub fn listen_uds<P>(path: impl AsRef<Path>, processor: P, shutdown: Arc<AtomicBool>) -> io::Result<()>
where
    P: TProcessor + Send + Sync + 'static,
{
    let listener = bind_owner_only(path.as_ref())?;
    let processor = Arc::new(processor);
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if shutdown.load(Ordering::Acquire) {
            return Ok(());
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                log::warn!("failed to accept an extension connection: {e}");
                continue;
            }
        };
        if active.load(Ordering::Acquire) >= MAX_CONNECTIONS {
            log::warn!(
                "{MAX_CONNECTIONS} extension connections already open: closing a new one"
            );
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(active.clone());
        let processor = processor.clone();
        let spawned = std::thread::Builder::new()
            .name("osquery-conn".into())
            .spawn(move || {
                let _slot = slot;
                if let Err(e) = serve(stream, processor.as_ref()) {
                    log::debug!("extension connection closed: {e}");
                }
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a thread for an extension connection: {e}");
        }
    }
    Ok(())
}

/// Frees a connection slot when the connection's thread ends (or never starts).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers requests on one connection until it closes, errs or times out.
fn serve<P: TProcessor>(stream: UnixStream, processor: &P) -> thrift::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let reader = stream.try_clone()?;
    let mut input = BoundedBinaryInput::new(reader);
    let mut output = TBinaryOutputProtocol::new(TBufferedWriteTransport::new(stream), true);
    loop {
        processor.process(&mut input, &mut output)?;
    }
}

/// Thrift's strict binary protocol, reading with bounds: see the constants above.
pub struct BoundedBinaryInput<R: Read> {
    transport: TBufferedReadTransport<R>,
    /// Bytes of the current request read so far, and when it started.
    consumed: usize,
    started: Instant,
}

impl<R: Read> BoundedBinaryInput<R> {
    pub fn new(reader: R) -> Self {
        BoundedBinaryInput {
            transport: TBufferedReadTransport::new(reader),
            consumed: 0,
            started: Instant::now(),
        }
    }

    fn refuse<T>(message: String) -> thrift::Result<T> {
        Err(thrift::Error::Protocol(ProtocolError::new(
            ProtocolErrorKind::SizeLimit,
            message,
        )))
    }

    fn read_exact(&mut self, buffer: &mut [u8]) -> thrift::Result<()> {
        self.consumed = self.consumed.saturating_add(buffer.len());
        if self.consumed > MAX_MESSAGE_BYTES {
            return Self::refuse(format!("request over {MAX_MESSAGE_BYTES} bytes"));
        }
        if self.consumed > buffer.len() && self.started.elapsed() > REQUEST_TIMEOUT {
            return Self::refuse(format!(
                "request took over {} s to arrive",
                REQUEST_TIMEOUT.as_secs()
            ));
        }
        self.transport.read_exact(buffer).map_err(From::from)
    }

    fn read_array<const N: usize>(&mut self) -> thrift::Result<[u8; N]> {
        let mut bytes = [0u8; N];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }

    fn container_size(size: i32) -> thrift::Result<i32> {
        if !(0..=MAX_CONTAINER_ENTRIES).contains(&size) {
            return Self::refuse(format!("container of {size} entries"));
        }
        Ok(size)
    }
}

fn field_type(byte: u8) -> thrift::Result<TType> {
    Ok(match byte {
        0x00 => TType::Stop,
        0x01 => TType::Void,
        0x02 => TType::Bool,
        0x03 => TType::I08,
        0x04 => TType::Double,
        0x06 => TType::I16,
        0x08 => TType::I32,
        0x0A => TType::I64,
        0x0B => TType::String,
        0x0C => TType::Struct,
        0x0D => TType::Map,
        0x0E => TType::Set,
        0x0F => TType::List,
        0x10 => TType::Utf8,
        0x11 => TType::Utf16,
        other => {
            return Err(thrift::Error::Protocol(ProtocolError::new(
                ProtocolErrorKind::InvalidData,
                format!("unknown field type {other:#x}"),
            )))
        }
    })
}

impl<R: Read> TInputProtocol for BoundedBinaryInput<R> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        // The first byte of a request may be waited for as long as the read timeout
        // allows; from then on the request has REQUEST_TIMEOUT to arrive.
        self.consumed = 0;
        let mut first = [0u8; 1];
        self.read_exact(&mut first)?;
        self.started = Instant::now();
        let mut rest = [0u8; 3];
        self.read_exact(&mut rest)?;
        if first[0] != 0x80 || rest[0] != 0x01 {
            return Err(thrift::Error::Protocol(ProtocolError::new(
                ProtocolErrorKind::BadVersion,
                format!("received bad version: {:?}", [first[0], rest[0]]),
            )));
        }
        let message_type = TMessageType::try_from(rest[2])?;
        let name = self.read_string()?;
        let sequence_number = self.read_i32()?;
        Ok(TMessageIdentifier::new(name, message_type, sequence_number))
    }

    fn read_message_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_struct_begin(&mut self) -> thrift::Result<Option<TStructIdentifier>> {
        Ok(None)
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        let field_type = field_type(self.read_byte()?)?;
        let id = match field_type {
            TType::Stop => 0,
            _ => self.read_i16()?,
        };
        Ok(TFieldIdentifier::new::<Option<String>, String, i16>(
            None, field_type, id,
        ))
    }

    fn read_field_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_bytes(&mut self) -> thrift::Result<Vec<u8>> {
        let length = self.read_i32()?;
        let Ok(length) = usize::try_from(length) else {
            return Self::refuse(format!("negative length {length}"));
        };
        if length > MAX_STRING_BYTES {
            return Self::refuse(format!("string of {length} bytes"));
        }
        let mut buffer = vec![0u8; length];
        self.read_exact(&mut buffer)?;
        Ok(buffer)
    }

    fn read_bool(&mut self) -> thrift::Result<bool> {
        Ok(self.read_i8()? != 0)
    }

    fn read_i8(&mut self) -> thrift::Result<i8> {
        Ok(i8::from_be_bytes(self.read_array()?))
    }

    fn read_i16(&mut self) -> thrift::Result<i16> {
        Ok(i16::from_be_bytes(self.read_array()?))
    }

    fn read_i32(&mut self) -> thrift::Result<i32> {
        Ok(i32::from_be_bytes(self.read_array()?))
    }

    fn read_i64(&mut self) -> thrift::Result<i64> {
        Ok(i64::from_be_bytes(self.read_array()?))
    }

    fn read_double(&mut self) -> thrift::Result<f64> {
        Ok(f64::from_be_bytes(self.read_array()?))
    }

    fn read_string(&mut self) -> thrift::Result<String> {
        String::from_utf8(self.read_bytes()?).map_err(From::from)
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        let element_type = field_type(self.read_byte()?)?;
        let size = Self::container_size(self.read_i32()?)?;
        Ok(TListIdentifier::new(element_type, size))
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        let element_type = field_type(self.read_byte()?)?;
        let size = Self::container_size(self.read_i32()?)?;
        Ok(TSetIdentifier::new(element_type, size))
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        let key_type = field_type(self.read_byte()?)?;
        let value_type = field_type(self.read_byte()?)?;
        let size = Self::container_size(self.read_i32()?)?;
        Ok(TMapIdentifier::new(key_type, value_type, size))
    }

    fn read_map_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_byte(&mut self) -> thrift::Result<u8> {
        Ok(self.read_array::<1>()?[0])
    }
}
