//! A blocking HTTP/1.1 client over one connection, for raw requests and strictly read
//! responses ([`crate::response`]). Every operation is bounded by the connection's step
//! limit. Bytes read past one response stay for the next, so pipelined responses read in
//! order; the raw-byte methods read from the same place.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use crate::response::{Expect, ResponseError, ResponseReader};

/// Bytes taken from the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the server ends the connection after this response.
    pub close: bool,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times a header appears.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a response could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The socket failed, or a read timed out (`WouldBlock` or `TimedOut`).
    Io(io::Error),
    /// The server closed the connection before the response was complete.
    Closed,
    /// The bytes are not a correct response.
    Response(ResponseError),
}

impl ReadError {
    /// Whether a read timed out, rather than failed.
    pub fn timed_out(&self) -> bool {
        matches!(self, ReadError::Io(err) if timed_out(err))
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(err) => write!(f, "{err}"),
            ReadError::Closed => f.write_str("closed mid-response"),
            ReadError::Response(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<io::Error> for ReadError {
    fn from(err: io::Error) -> ReadError {
        ReadError::Io(err)
    }
}

impl From<ResponseError> for ReadError {
    fn from(err: ResponseError) -> ReadError {
        ReadError::Response(err)
    }
}

fn timed_out(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A connection, given up after `step` (a full accept queue drops handshakes, and the
/// kernel alone would retry them for minutes).
pub fn connect(addr: SocketAddr, step: Duration) -> io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, step)
}

/// A client connection. Reads and writes each wait at most `step`.
pub struct Client {
    stream: TcpStream,
    /// Bytes read from the socket and not yet taken by a response or a raw read.
    pending: Vec<u8>,
    step: Duration,
}

impl Client {
    /// Connects to `addr`, waiting at most `step` for the connection and for each later
    /// read or write.
    pub fn connect(addr: SocketAddr, step: Duration) -> io::Result<Client> {
        let stream = connect(addr, step)?;
        stream.set_read_timeout(Some(step))?;
        stream.set_write_timeout(Some(step))?;
        Ok(Client {
            stream,
            pending: Vec::new(),
            step,
        })
    }

    /// The socket, for socket options and `ioctl`s.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response whose body `Content-Length` frames.
    pub fn response(&mut self) -> Result<Response, ReadError> {
        self.read_response(Expect::Body)
    }

    /// Reads one response's head only: the answer to `HEAD`, an interim `100 Continue`, or
    /// a head whose body the caller reads with [`Client::read_body`].
    pub fn head_response(&mut self) -> Result<Response, ReadError> {
        self.read_response(Expect::HeadOnly)
    }

    /// Reads a response if its first byte arrives within `wait`; `Ok(None)` if none does.
    pub fn response_within(&mut self, wait: Duration) -> Result<Option<Response>, ReadError> {
        if self.pending.is_empty() {
            self.stream.set_read_timeout(Some(wait))?;
            let filled = self.fill();
            self.stream.set_read_timeout(Some(self.step))?;
            match filled {
                Ok(()) => {}
                Err(ReadError::Io(err)) if timed_out(&err) => return Ok(None),
                Err(err) => return Err(err),
            }
        }
        self.response().map(Some)
    }

    fn read_response(&mut self, expect: Expect) -> Result<Response, ReadError> {
        let mut reader = ResponseReader::new(expect);
        let mut body = Vec::new();
        while !reader.is_complete() {
            if self.pending.is_empty() {
                self.fill()?;
            }
            let fed = reader.feed(&self.pending)?;
            body.extend_from_slice(&self.pending[fed.body]);
            self.pending.drain(..fed.used);
        }
        let head = reader.head().expect("a complete response has a head");
        Ok(Response {
            status: head.status,
            reason: head.reason(),
            version: head.version(),
            headers: head.fields(),
            body,
            close: head.close,
        })
    }

    /// Reads once from the socket into `pending`; the end of the stream is an error.
    fn fill(&mut self) -> Result<(), ReadError> {
        let start = self.pending.len();
        self.pending.resize(start + READ_CHUNK, 0);
        let read = loop {
            match self.stream.read(&mut self.pending[start..]) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        self.pending.truncate(start + *read.as_ref().unwrap_or(&0));
        match read? {
            0 => Err(ReadError::Closed),
            _ => Ok(()),
        }
    }

    /// Reads exactly `len` raw bytes: a body whose head [`Client::head_response`] read.
    pub fn read_body(&mut self, len: usize) -> io::Result<Vec<u8>> {
        let from_pending = len.min(self.pending.len());
        let mut body: Vec<u8> = self.pending.drain(..from_pending).collect();
        body.resize(len, 0);
        self.stream.read_exact(&mut body[from_pending..])?;
        Ok(body)
    }

    /// Reads raw bytes until the server closes the connection (or a read fails).
    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = std::mem::take(&mut self.pending);
        self.stream.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Waits up to `limit` for the end of the stream. `Ok(Some(byte))` if a byte arrives
    /// instead; an error if the connection stays open (a timeout) or is reset.
    pub fn end_of_stream(&mut self, limit: Duration) -> io::Result<Option<u8>> {
        if let Some(&byte) = self.pending.first() {
            return Ok(Some(byte));
        }
        self.stream.set_read_timeout(Some(limit))?;
        let mut byte = [0u8; 1];
        let read = self.stream.read(&mut byte);
        self.stream.set_read_timeout(Some(self.step))?;
        Ok((read? == 1).then_some(byte[0]))
    }

    /// The local port of this connection, as the server's log shows it.
    pub fn local_port(&self) -> io::Result<u16> {
        Ok(self.stream.local_addr()?.port())
    }

    /// Closes our sending side.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }
}
