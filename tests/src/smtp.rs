//! A real SMTP server on localhost for the tests (mailin-embedded): it keeps every message it
//! accepts and, during an "outage", answers 451 to every recipient.

use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

use mailin_embedded::{Handler, Response, Server, response};

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent, quoted-printable soft breaks and escapes decoded.
    pub data: String,
}

impl Received {
    pub fn subject(&self) -> String {
        self.data.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_string()
    }
}

#[derive(Default)]
struct Shared {
    messages: Vec<Received>,
    outage: bool,
}

#[derive(Clone)]
struct Sink {
    shared: Arc<Mutex<Shared>>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Sink {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.shared.lock().unwrap().outage { response::INTERNAL_ERROR } else { response::OK }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let data = decode_quoted_printable(&String::from_utf8_lossy(&self.data));
        self.shared.lock().unwrap().messages.push(Received { from: self.from.clone(), to: self.to.clone(), data });
        response::OK
    }

    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }
}

/// Soft line breaks and =XX escapes (what lettre uses for the text and HTML parts).
fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
}

impl SmtpSink {
    /// Listening now, served from a thread of its own for the rest of the test process.
    pub fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let mut server =
            Server::new(Sink { shared: shared.clone(), from: String::new(), to: Vec::new(), data: Vec::new() });
        server.with_name("smtp.test").with_tcp_listener(listener).with_num_threads(4);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
        SmtpSink { port, shared }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.shared.lock().unwrap().messages.clone()
    }

    pub fn to(&self, address: &str) -> Vec<Received> {
        self.messages().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address))).collect()
    }

    pub fn outage(&self, on: bool) {
        self.shared.lock().unwrap().outage = on;
    }
}
