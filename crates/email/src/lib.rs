//! Mail: templates kept in `templates/` (subject, plain text, HTML per kind), rendered from an
//! outbox row's payload with every value HTML-escaped in the HTML part, and sent with lettre
//! over SMTP (`smtp.tls = none | starttls | tls`).

mod templates;

use std::time::Duration;

use credits_domain::mail::{Mailer, OutboxMessage};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

pub use templates::{Rendered, render};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    None,
    StartTls,
    Tls,
}

impl Tls {
    pub fn parse(s: &str) -> Option<Tls> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Some(Tls::None),
            "starttls" => Some(Tls::StartTls),
            "tls" => Some(Tls::Tls),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: Tls,
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("mail.from {0:?} is not an address")]
    From(String),
    #[error("smtp: {0}")]
    Smtp(String),
}

pub struct SmtpMailer {
    transport: SmtpTransport,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> Result<SmtpMailer, MailConfigError> {
        let from: Mailbox = config.from.parse().map_err(|_| MailConfigError::From(config.from.clone()))?;
        let builder = match config.tls {
            Tls::None => SmtpTransport::builder_dangerous(&config.host),
            Tls::StartTls => {
                SmtpTransport::starttls_relay(&config.host).map_err(|e| MailConfigError::Smtp(e.to_string()))?
            }
            Tls::Tls => SmtpTransport::relay(&config.host).map_err(|e| MailConfigError::Smtp(e.to_string()))?,
        };
        let mut builder = builder.port(config.port).timeout(Some(Duration::from_secs(15)));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(SmtpMailer { transport: builder.build(), from })
    }
}

impl Mailer for SmtpMailer {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        let rendered = render(message.kind, &message.payload)?;
        let to: Mailbox = message.recipient.parse().map_err(|e| format!("recipient {:?}: {e}", message.recipient))?;
        let mail = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|e| e.to_string())?;
        self.transport.send(&mail).map(|_| ()).map_err(|e| e.to_string())
    }
}
