//! Bad input on every route: malformed JSON, wrong types, huge and negative numbers, unknown
//! fields, a 1 MB body, unicode in ids, missing and garbage credentials. Always a 4xx in the
//! contract's format, never a 5xx, never a state change.

use credits_domain::operator::Role;
use credits_tests::{As, TestApp, account_id};
use serde_json::{Value, json};

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/accounts"),
    ("GET", "/v1/account"),
    ("GET", "/v1/balance"),
    ("GET", "/v1/ledger?limit=99999999999999999999"),
    ("GET", "/v1/ledger?cursor=%F0%9F%98%80"),
    ("GET", "/v1/trials"),
    ("POST", "/v1/quote"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs/ü😀"),
    ("POST", "/v1/runs/ü😀/complete"),
    ("POST", "/v1/runs/00000000-0000-0000-0000-000000000000/cancel"),
    ("POST", "/v1/api-keys"),
    ("GET", "/v1/api-keys"),
    ("DELETE", "/v1/api-keys/ü😀"),
    ("POST", "/v1/checkout/subscription"),
    ("POST", "/v1/checkout/topup"),
    ("POST", "/v1/business-verification"),
    ("GET", "/v1/business-verification"),
    ("POST", "/webhooks/stripe"),
    ("GET", "/admin/v1/business-verifications?status=ü"),
    ("POST", "/admin/v1/business-verifications/ü😀/approve"),
    ("POST", "/admin/v1/business-verifications/ü😀/reject"),
    ("GET", "/admin/v1/accounts/ü😀"),
    ("POST", "/admin/v1/accounts/ACCOUNT/adjustments"),
    ("PUT", "/admin/v1/accounts/ACCOUNT/enterprise"),
    ("POST", "/admin/v1/test-clock"),
];

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    let json = |v: Value| serde_json::to_vec(&v).unwrap();
    vec![
        ("malformed", b"{not json".to_vec()),
        ("an array", b"[1, 2]".to_vec()),
        ("null", b"null".to_vec()),
        (
            "wrong types",
            json(json!({"model": 5, "images": "3", "credits": "ten", "reason": 7, "monthly_credits": [1],
            "advance_seconds": "x", "email": 1, "name": true, "plan": {}, "pack": null, "success_url": 3})),
        ),
        (
            "i64 overflow",
            json(json!({"model": "flux-schnell", "images": 9223372036854775808u64, "credits": 9223372036854775808u64,
            "reason": "r", "monthly_credits": 9223372036854775808u64, "advance_seconds": 9223372036854775808u64,
            "duration_seconds": 1e300})),
        ),
        (
            "negative",
            json(
                json!({"model": "kling-2.1", "duration_seconds": -5, "images": -1, "credits": -9223372036854775807i64,
            "reason": "r", "monthly_credits": -1, "runs_per_minute": -1, "advance_seconds": -1}),
            ),
        ),
        ("unknown fields", json(json!({"email": "a@b.co", "name": "n", "model": "flux-schnell", "surprise": true}))),
        ("1 MB", [b"{\"name\": \"".as_slice(), &vec![b'a'; 1024 * 1024], b"\"}"].concat()),
        ("unicode", json(json!({"model": "flüx-😀", "email": "ü@😀", "name": "\u{0}", "country": "ÜÜ"}))),
    ]
}

#[actix_web::test]
async fn every_route_answers_bad_input_with_a_4xx_in_the_contracts_format_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    let who: Vec<(&str, As)> = vec![
        ("the canvas", acct.clone()),
        ("an admin", app.admin()),
        ("a sales operator", app.operator(Role::Sales)),
        ("nobody", As::Nobody),
        ("a garbage token", As::Bearer("x".repeat(5000))),
        ("an unknown key", As::Bearer("ck_ü😀".into())),
    ];
    let before = app.trace();
    let balance = app.balance(&acct).await;
    let mut checked = 0;
    for (method, path) in ROUTES {
        let path = path.replace("ACCOUNT", &id);
        for (who_name, caller) in &who {
            for (body_name, body) in bodies() {
                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let mut req = app.http.request(method.clone(), format!("{}{path}", app.instance.base_url));
                req = match caller {
                    As::Nobody => req,
                    As::Canvas(a) => req.bearer_auth(credits_tests::INTERNAL_TOKEN).header("X-Account-Id", a.as_str()),
                    As::Bearer(t) => req.header("Authorization", format!("Bearer {t}")),
                    As::Internal => req.bearer_auth(credits_tests::INTERNAL_TOKEN),
                    As::Member(a, m) => req
                        .bearer_auth(credits_tests::INTERNAL_TOKEN)
                        .header("X-Account-Id", a.as_str())
                        .header("X-Member-Id", m.as_str()),
                };
                let r = req
                    .header("Content-Type", "application/json")
                    .header("Stripe-Signature", "t=1,v1=00")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap();
                let what = format!(
                    "{method} {path} by {who_name} with {body_name}: {status} {}",
                    &text[..text.len().min(300)]
                );
                // A GET reads no body: with good credentials and a good path it may answer 200.
                if method == reqwest::Method::GET && (200..300).contains(&status) {
                    checked += 1;
                    continue;
                }
                assert!((400..500).contains(&status), "{what}");
                let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {what}"));
                assert!(err["error"]["code"].is_string() && err["error"]["message"].is_string(), "{what}");
                checked += 1;
            }
        }
    }
    assert_eq!(app.trace(), before, "no refused request wrote anything");
    assert_eq!(app.balance(&acct).await, balance);
    assert!(checked > 1000);
    // Garbage in the headers themselves.
    for auth in [b"Bearer".as_slice(), b"Basic abc", b"bearer", b"Bearer \xff\xfe", b"Bearer ck_\xff"] {
        let value = reqwest::header::HeaderValue::from_bytes(auth).unwrap();
        let r = app
            .http
            .get(format!("{}/v1/balance", app.instance.base_url))
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{}", String::from_utf8_lossy(auth));
    }
    let r = app
        .http
        .get(format!("{}/v1/balance", app.instance.base_url))
        .bearer_auth(credits_tests::INTERNAL_TOKEN)
        .header("X-Account-Id", reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}
