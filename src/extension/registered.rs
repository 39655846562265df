//! Which extensions osquery's manager has registered: one `ExtensionManager.extensions()`
//! call over the manager socket (Thrift binary protocol, as osquery speaks it).
//!
//! osquery-rust-ng registers the extension but ignores the status osquery answers,
//! so a refused registration (a second an1256, or a table name another extension
//! already owns) would leave a process that pings osquery and serves nothing. The
//! extension asks the manager before registering (to refuse a duplicate with a
//! clear message) and after (to notice a refusal and exit), and then keeps asking
//! to notice a manager that accepts calls but no longer answers (osquery-rust-ng's
//! ping has no timeout and would wait forever). Its own Thrift client is not
//! public, hence this small one.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use thrift::protocol::{
    TBinaryInputProtocol, TBinaryOutputProtocol, TInputProtocol, TMessageIdentifier, TMessageType,
    TOutputProtocol, TStructIdentifier, TType,
};

/// Each read or write on the manager socket gives up after this long.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// More registered extensions than this is not a real osquery: stop reading.
const MAX_EXTENSIONS: i32 = 10_000;

/// One registered extension: osquery's route uuid and the name it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registered {
    pub uuid: i64,
    pub name: String,
}

/// Why the manager did not list its extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagerError {
    /// It accepted the call but did not answer within the I/O timeout: hung.
    Unanswered(String),
    /// Anything else: not listening, closed, or a malformed answer.
    Failed(String),
}

impl std::fmt::Display for ManagerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManagerError::Unanswered(m) | ManagerError::Failed(m) => f.write_str(m),
        }
    }
}

/// The manager socket, remembering whether a read or write timed out (the Thrift
/// error that comes back does not say). The protocol's input and output halves
/// each hold one over the same stream.
struct Watched<'a> {
    stream: &'a UnixStream,
    timed_out: &'a Cell<bool>,
}

impl Watched<'_> {
    fn note<T>(&self, result: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &result {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                self.timed_out.set(true);
            }
        }
        result
    }
}

impl Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let result = self.stream.read(buf);
        self.note(result)
    }
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let result = self.stream.write(buf);
        self.note(result)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let result = self.stream.flush();
        self.note(result)
    }
}

/// Asks the manager at `socket` for its registered extensions.
pub fn registered_extensions(socket: &str) -> Result<Vec<Registered>, ManagerError> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        ManagerError::Failed(format!(
            "cannot connect to osquery's manager socket {socket}: {e}"
        ))
    })?;
    for set in [UnixStream::set_read_timeout, UnixStream::set_write_timeout] {
        set(&stream, Some(IO_TIMEOUT))
            .map_err(|e| ManagerError::Failed(format!("manager socket {socket}: {e}")))?;
    }
    let timed_out = Cell::new(false);
    let half = || Watched {
        stream: &stream,
        timed_out: &timed_out,
    };
    let mut output = TBinaryOutputProtocol::new(half(), true);
    let mut input = TBinaryInputProtocol::new(half(), true);
    call_extensions(&mut output, &mut input).map_err(|e| {
        let message = format!("osquery's manager at {socket} did not list its extensions: {e}");
        if timed_out.get() {
            ManagerError::Unanswered(message)
        } else {
            ManagerError::Failed(message)
        }
    })
}

/// Writes the `extensions` call and reads its reply.
fn call_extensions(
    output: &mut dyn TOutputProtocol,
    input: &mut dyn TInputProtocol,
) -> thrift::Result<Vec<Registered>> {
    output.write_message_begin(&TMessageIdentifier::new(
        "extensions",
        TMessageType::Call,
        1,
    ))?;
    output.write_struct_begin(&TStructIdentifier::new("extensions_args"))?;
    output.write_field_stop()?;
    output.write_struct_end()?;
    output.write_message_end()?;
    output.flush()?;
    read_extensions_reply(input)
}

/// Reads `extensions`' reply: a result struct whose field 0 is
/// `map<ExtensionRouteUUID (i64), InternalExtensionInfo>`.
pub fn read_extensions_reply(input: &mut dyn TInputProtocol) -> thrift::Result<Vec<Registered>> {
    let message = input.read_message_begin()?;
    if message.message_type == TMessageType::Exception {
        let error = thrift::Error::read_application_error_from_in_protocol(input)?;
        input.read_message_end()?;
        return Err(thrift::Error::Application(error));
    }
    if message.message_type != TMessageType::Reply || message.name != "extensions" {
        return Err(protocol_error(format!(
            "unexpected {:?} message {:?}",
            message.message_type, message.name
        )));
    }
    let mut found = Vec::new();
    read_struct(input, |input, field_type, id| {
        if (field_type, id) != (TType::Map, Some(0)) {
            return Ok(false);
        }
        let map = input.read_map_begin()?;
        if map.size > MAX_EXTENSIONS {
            return Err(protocol_error(format!("{} extensions listed", map.size)));
        }
        for _ in 0..map.size {
            let uuid = input.read_i64()?;
            let name = read_info_name(input)?;
            found.push(Registered { uuid, name });
        }
        input.read_map_end()?;
        Ok(true)
    })?;
    input.read_message_end()?;
    Ok(found)
}

/// `InternalExtensionInfo.name` (field 1); the other fields are skipped.
fn read_info_name(input: &mut dyn TInputProtocol) -> thrift::Result<String> {
    let mut name = String::new();
    read_struct(input, |input, field_type, id| {
        if (field_type, id) != (TType::String, Some(1)) {
            return Ok(false);
        }
        name = input.read_string()?;
        Ok(true)
    })?;
    Ok(name)
}

/// Reads one struct, handing each field (type, id) to `field`, which reads it and
/// answers true, or answers false to have it skipped.
fn read_struct(
    input: &mut dyn TInputProtocol,
    mut field: impl FnMut(&mut dyn TInputProtocol, TType, Option<i16>) -> thrift::Result<bool>,
) -> thrift::Result<()> {
    input.read_struct_begin()?;
    loop {
        let header = input.read_field_begin()?;
        if header.field_type == TType::Stop {
            break;
        }
        if !field(input, header.field_type, header.id)? {
            input.skip(header.field_type)?;
        }
        input.read_field_end()?;
    }
    input.read_struct_end()
}

/// A malformed reply. (`thrift::ProtocolError`'s Display drops the message.)
fn protocol_error(message: String) -> thrift::Error {
    thrift::Error::User(Box::new(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        message,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use thrift::protocol::{TFieldIdentifier, TMapIdentifier};

    /// A reply as osquery's manager writes it, into bytes.
    fn reply(entries: &[(i64, &str)], message_type: TMessageType) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = TBinaryOutputProtocol::new(&mut bytes, true);
        out.write_message_begin(&TMessageIdentifier::new("extensions", message_type, 1))
            .unwrap();
        out.write_struct_begin(&TStructIdentifier::new("extensions_result"))
            .unwrap();
        out.write_field_begin(&TFieldIdentifier::new("success", TType::Map, 0))
            .unwrap();
        out.write_map_begin(&TMapIdentifier::new(
            TType::I64,
            TType::Struct,
            entries.len() as i32,
        ))
        .unwrap();
        for (uuid, name) in entries {
            out.write_i64(*uuid).unwrap();
            out.write_struct_begin(&TStructIdentifier::new("InternalExtensionInfo"))
                .unwrap();
            for (id, value) in [(1, *name), (2, "1.0"), (3, "5.12.1"), (4, "0.0.0")] {
                out.write_field_begin(&TFieldIdentifier::new("f", TType::String, id))
                    .unwrap();
                out.write_string(value).unwrap();
                out.write_field_end().unwrap();
            }
            out.write_field_stop().unwrap();
            out.write_struct_end().unwrap();
        }
        out.write_map_end().unwrap();
        out.write_field_end().unwrap();
        out.write_field_stop().unwrap();
        out.write_struct_end().unwrap();
        out.write_message_end().unwrap();
        bytes
    }

    fn parse(bytes: &[u8]) -> thrift::Result<Vec<Registered>> {
        let mut input = TBinaryInputProtocol::new(bytes, true);
        read_extensions_reply(&mut input)
    }

    #[test]
    fn reads_every_registered_name_and_uuid() {
        let bytes = reply(&[(0, "core"), (4242, "an1256")], TMessageType::Reply);
        assert_eq!(
            parse(&bytes).unwrap(),
            vec![
                Registered {
                    uuid: 0,
                    name: "core".into()
                },
                Registered {
                    uuid: 4242,
                    name: "an1256".into()
                },
            ]
        );
    }

    #[test]
    fn truncated_or_unexpected_replies_are_errors() {
        let bytes = reply(&[(7, "an1256")], TMessageType::Reply);
        for cut in [0, 5, bytes.len() / 2, bytes.len() - 1] {
            assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse(&reply(&[], TMessageType::Call)).is_err());
        assert_eq!(parse(&reply(&[], TMessageType::Reply)).unwrap(), vec![]);
    }

    #[test]
    fn an_absurd_map_size_is_refused_before_reading() {
        let mut bytes = reply(&[], TMessageType::Reply);
        // The map header's i32 size follows the two element-type bytes.
        let header = bytes
            .windows(2)
            .position(|w| w == [10, 12]) // TType i64, struct
            .unwrap();
        bytes[header + 2..header + 6].copy_from_slice(&i32::MAX.to_be_bytes());
        let err = parse(&bytes).unwrap_err();
        assert!(err.to_string().contains("extensions listed"), "{err}");
    }
}
