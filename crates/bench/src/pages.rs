//! The pages' budget (section 8): the billing page and support's account page of an account
//! with 10,000 ledger entries, timed by the service itself (`Server-Timing`).

use super::*;

/// SPEC section 8's budget for a page: rendered within this, at this size at most, for an
/// account with 10,000 ledger entries.
pub(crate) const PAGE_BUDGET_MS: f64 = 50.0;
pub(crate) const PAGE_BUDGET_KB: f64 = 100.0;
/// Requests per page measured (one after the other, on one connection).
pub(crate) const PAGE_REQUESTS: usize = 200;

/// What one page measured.
pub(crate) struct PageOutcome {
    pub(crate) name: String,
    /// The service's own time for each answer (its `Server-Timing: app;dur=`), the budget's measure.
    pub(crate) server: Histogram<u64>,
    /// Each answer's time as the client saw it (the network's share included).
    pub(crate) latency: Histogram<u64>,
    pub(crate) bytes: usize,
}

/// The `app;dur=` of a `Server-Timing` header, in microseconds.
pub(crate) fn server_timing(answer: &reqwest::Response) -> Option<u64> {
    let value = answer.headers().get("server-timing")?.to_str().ok()?;
    let ms: f64 = value.split(';').find_map(|p| p.trim().strip_prefix("dur="))?.parse().ok()?;
    Some((ms * 1000.0) as u64)
}

/// The `name=value` of a response's `Set-Cookie` named `name`.
pub(crate) fn set_cookie(answer: &reqwest::Response, name: &str) -> String {
    answer
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie from {}", answer.url()))
        .to_string()
}

/// GET `path` with `cookie` again and again: each answer's time and the page's size.
pub(crate) async fn measure_page(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    path: &str,
    cookie: &str,
) -> PageOutcome {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut server = latency.clone();
    let mut bytes = 0;
    for _ in 0..PAGE_REQUESTS {
        let t = Instant::now();
        let answer = http.get(format!("{base}{path}")).header(reqwest::header::COOKIE, cookie).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{name}: GET {path}");
        let took = server_timing(&answer).expect("the answer's Server-Timing");
        let body = answer.bytes().await.unwrap();
        latency.record(t.elapsed().as_micros().max(1) as u64).ok();
        server.record(took.max(1)).ok();
        bytes = body.len();
    }
    PageOutcome { name: name.into(), server, latency, bytes }
}

/// The billing page and the console's account page of the account with 10,000 ledger entries.
pub(crate) async fn measure_pages(a: &Args, env: &dyn Fn(&mut Command), base: &str, account: &str) -> Vec<PageOutcome> {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // The billing page, through its one-time link.
    let link: serde_json::Value = http
        .post(format!("{base}/v1/billing-page-sessions"))
        .bearer_auth(TOKEN)
        .header("X-Account-Id", account)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = link["url"].as_str().expect("a billing-page link");
    let path = &url[url.find("/billing/open").expect("a billing link")..];
    let opened = http.get(format!("{base}{path}")).send().await.unwrap();
    let billing = set_cookie(&opened, "credits_billing");
    let mut pages = vec![measure_page(&http, base, "billing page (/billing)", "/billing", &billing).await];
    // The console's account page, signed in with a support operator's token.
    let mut create = Command::new(&a.binary);
    create.args(["operator", "create", "--name", "bench", "--role", "support"]);
    env(&mut create);
    let out = create.output().expect("credits operator create runs");
    assert!(out.status.success(), "credits operator create: {}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    let home = http.get(format!("{base}/console")).send().await.unwrap();
    let pre = set_cookie(&home, "credits_console_signin");
    let html = home.text().await.unwrap();
    let at =
        html.find("name=\"csrf\" value=\"").expect("the sign-in form's CSRF token") + "name=\"csrf\" value=\"".len();
    let csrf = &html[at..at + html[at..].find('"').unwrap()];
    let signed = http
        .post(format!("{base}/console/sign-in"))
        .header(reqwest::header::COOKIE, &pre)
        .form(&[("csrf", csrf), ("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let console = set_cookie(&signed, "credits_console");
    pages.push(
        measure_page(
            &http,
            base,
            "console account page (/console/accounts/{id})",
            &format!("/console/accounts/{account}"),
            &console,
        )
        .await,
    );
    pages
}
