//! One delivery attempt: check where the URL leads, connect only to an address that was checked,
//! and POST the signed event. The caller (the delivery worker) decides what the outcome means for
//! the next attempt (`credits_domain::notify::webhooks::next_attempt`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use credits_domain::notify::webhooks::{TargetRefused, check_scheme, check_target};
use reqwest::Url;
use reqwest::redirect;

use crate::Secret;

/// `webhooks.allow_insecure` and `webhooks.allow_private` (false outside tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_insecure: bool,
    pub allow_private: bool,
}

/// One event to one endpoint. `body` is the exact bytes signed and sent; `id` is the event's id,
/// the same on every attempt and for every endpoint (`webhook-id`).
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub url: &'a str,
    pub id: &'a str,
    pub body: &'a [u8],
    pub secret: &'a Secret,
    /// Unix seconds on the real wall clock (`webhook-timestamp`), never the test clock.
    pub timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx in time: delivered.
    Delivered { status: u16 },
    /// The endpoint answered, but not 2xx (a redirect included: redirects are not followed).
    Answered { status: u16 },
    /// No answer in time, or no connection.
    Unreachable { error: String },
    /// The URL may not be a target (scheme, or where its host resolves); nothing was sent.
    Refused { reason: String },
}

impl Outcome {
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Delivered { status } | Outcome::Answered { status } => Some(*status),
            Outcome::Unreachable { .. } | Outcome::Refused { .. } => None,
        }
    }
}

/// Where a URL may be delivered: its host resolved and every address judged; the first allowed
/// address is the one connected to. A name with no allowed address is refused.
pub async fn checked_target(url: &Url, policy: Policy) -> Result<SocketAddr, String> {
    check_scheme(url.scheme(), policy.allow_insecure)?;
    let host = url.host_str().ok_or("a webhook URL names a host")?;
    let port = url.port_or_known_default().ok_or("a webhook URL needs a port")?;
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("{host} does not resolve: {e}"))?.collect()
        }
    };
    let mut refused: Option<TargetRefused> = None;
    for addr in candidates {
        match check_target(addr.ip(), policy.allow_private) {
            Ok(()) => return Ok(addr),
            Err(why) => refused = Some(why),
        }
    }
    Err(refused.map_or_else(|| format!("{host} has no address"), |why| why.to_string()))
}

/// Makes one attempt, waiting at most `timeout` for the whole answer.
pub async fn deliver(attempt: Attempt<'_>, policy: Policy, timeout: Duration) -> Outcome {
    let url = match Url::parse(attempt.url) {
        Ok(url) => url,
        Err(e) => return Outcome::Refused { reason: format!("not a URL: {e}") },
    };
    let addr = match checked_target(&url, policy).await {
        Ok(addr) => addr,
        Err(reason) => return Outcome::Refused { reason },
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    // Pinned: the connection goes to the address just checked, whatever DNS says next.
    let client = match reqwest::Client::builder()
        .resolve(&host, addr)
        .redirect(redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("credits-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => return Outcome::Unreachable { error: e.to_string() },
    };
    let signature = attempt.secret.sign(attempt.id, attempt.timestamp, attempt.body);
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", attempt.id)
        .header("webhook-timestamp", attempt.timestamp.to_string())
        .header("webhook-signature", signature)
        .body(attempt.body.to_vec())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            drain(response).await;
            if (200..300).contains(&status) { Outcome::Delivered { status } } else { Outcome::Answered { status } }
        }
        Err(e) => Outcome::Unreachable { error: e.to_string() },
    }
}

/// Section 7: what an endpoint answers is read up to this much; the rest is discarded (the
/// connection dropped), so no endpoint can grow the service's memory.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads an answer's body chunk by chunk (bounded by the attempt's timeout), keeping none of it,
/// and stops after `BODY_LIMIT` bytes: dropping the response then closes the connection. Returns
/// how many bytes were read.
async fn drain(mut response: reqwest::Response) -> usize {
    let mut read = 0;
    while read < BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            Ok(None) | Err(_) => break,
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>, Vec<u8>)>>>;

    /// A real HTTP receiver on 127.0.0.1 that records what reaches it.
    async fn receiver() -> (u16, Seen) {
        let seen: Seen = Arc::default();
        let data = web::Data::new(seen.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).default_service(web::to(
                |req: HttpRequest, body: web::Bytes, seen: web::Data<Seen>| async move {
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    seen.lock().unwrap().push((req.path().to_owned(), headers, body.to_vec()));
                    match req.path() {
                        "/fail" => HttpResponse::InternalServerError().finish(),
                        "/redirect" => HttpResponse::TemporaryRedirect().insert_header(("location", "/ok")).finish(),
                        "/slow" => {
                            actix_web::rt::time::sleep(Duration::from_secs(5)).await;
                            HttpResponse::NoContent().finish()
                        }
                        _ => HttpResponse::NoContent().finish(),
                    }
                },
            ))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        actix_web::rt::spawn(server.run());
        (port, seen)
    }

    const TESTS: Policy = Policy { allow_insecure: true, allow_private: true };
    const SECOND: Duration = Duration::from_secs(1);

    fn attempt<'a>(url: &'a str, secret: &'a Secret) -> Attempt<'a> {
        Attempt { url, id: "evt_01", body: br#"{"type":"credits.granted"}"#, secret, timestamp: 1_800_000_000 }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[actix_web::test]
    async fn a_delivery_posts_the_body_with_the_standard_webhooks_headers() {
        let (port, seen) = receiver().await;
        let secret = Secret::generate();
        let url = format!("http://localhost:{port}/ok");
        let outcome = deliver(attempt(&url, &secret), TESTS, SECOND * 5).await;
        assert_eq!(outcome, Outcome::Delivered { status: 204 });
        let seen = seen.lock().unwrap();
        let (path, headers, body) = &seen[0];
        assert_eq!((path.as_str(), body.as_slice()), ("/ok", br#"{"type":"credits.granted"}"#.as_slice()));
        assert_eq!(header(headers, "webhook-id"), Some("evt_01"));
        assert_eq!(header(headers, "webhook-timestamp"), Some("1800000000"));
        let expected = secret.sign("evt_01", 1_800_000_000, body);
        assert_eq!(header(headers, "webhook-signature"), Some(expected.as_str()));
        assert_eq!(header(headers, "content-type"), Some("application/json"));
    }

    #[actix_web::test]
    async fn a_500_a_redirect_and_a_slow_answer_are_not_deliveries() {
        let (port, seen) = receiver().await;
        let secret = Secret::generate();
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        assert_eq!(deliver(attempt(&url("/fail"), &secret), TESTS, SECOND).await, Outcome::Answered { status: 500 });
        let redirected = deliver(attempt(&url("/redirect"), &secret), TESTS, SECOND).await;
        assert_eq!(redirected, Outcome::Answered { status: 307 });
        let slow = deliver(attempt(&url("/slow"), &secret), TESTS, Duration::from_millis(300)).await;
        assert!(matches!(slow, Outcome::Unreachable { .. }), "{slow:?}");
        let paths: Vec<String> = seen.lock().unwrap().iter().map(|(p, ..)| p.clone()).collect();
        assert!(!paths.contains(&"/ok".to_owned()), "the redirect was not followed: {paths:?}");
    }

    #[actix_web::test]
    async fn private_targets_and_http_are_refused_before_anything_is_sent() {
        let (port, seen) = receiver().await;
        let secret = Secret::generate();
        let strict = Policy::default();
        for url in [
            format!("https://127.0.0.1:{port}/ok"),
            format!("https://localhost:{port}/ok"),
            format!("https://[::ffff:127.0.0.1]:{port}/ok"),
            "https://169.254.169.254/latest/meta-data".to_owned(),
            "https://10.1.2.3/hooks".to_owned(),
        ] {
            let outcome = deliver(attempt(&url, &secret), strict, SECOND).await;
            assert!(matches!(outcome, Outcome::Refused { .. }), "{url}: {outcome:?}");
        }
        let http = deliver(attempt("http://203.0.113.10/hooks", &secret), strict, SECOND).await;
        assert!(matches!(&http, Outcome::Refused { reason } if reason.contains("https")), "{http:?}");
        let private_only = Policy { allow_insecure: true, allow_private: false };
        let url = format!("http://localhost:{port}/ok");
        assert!(matches!(deliver(attempt(&url, &secret), private_only, SECOND).await, Outcome::Refused { .. }));
        assert!(seen.lock().unwrap().is_empty(), "nothing reached the receiver");
    }

    #[actix_web::test]
    async fn the_connection_goes_to_the_address_that_was_checked() {
        let url = Url::parse("http://localhost:8080/x").unwrap();
        let addr = checked_target(&url, TESTS).await.unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 8080, "{addr}");
        let refused = checked_target(&url, Policy { allow_insecure: true, allow_private: false }).await;
        assert!(refused.unwrap_err().contains("loopback"));
    }
}
