//! SPEC section 7, "Text input": arbitrary Unicode, control characters included, in every string
//! field of every route (read from the OpenAPI document: JSON bodies and query parameters) and of
//! every form (the pages' POST routes and their field names, read from the web crate's source so a
//! new route or form is covered by itself). Never a 5xx; a string holding a NUL or another
//! forbidden control character is refused with a 4xx before anything is written.

use std::collections::BTreeSet;

use credits_tests::{As, INTERNAL_TOKEN, TestApp, account_id};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

/// A string of any characters, often with a control character somewhere in it.
fn text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(any::<char>(), 0..24),
        prop::option::of((0u32..0x20).prop_union(0x7f..0xa0)),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(chars, control, at)| {
            let mut chars = chars;
            if let Some(c) = control.and_then(char::from_u32) {
                let i = if chars.is_empty() { 0 } else { at.index(chars.len() + 1) };
                chars.insert(i, c);
            }
            chars.into_iter().collect()
        })
}

fn forbidden(s: &str) -> bool {
    credits_domain::text::check("f", s).is_err()
}

/// The OpenAPI document's schema `s`, its `$ref` followed.
fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, &doc["components"]["schemas"][r.rsplit('/').next().unwrap()]),
        None => s,
    }
}

fn is_string(doc: &Value, s: &Value) -> bool {
    let s = resolve(doc, s);
    s["type"] == "string" || s["type"].as_array().is_some_and(|t| t.contains(&json!("string")))
}

/// An operation: method, path, the string properties of its JSON body (and whether each is an
/// array of strings), its string query parameters.
type Operation = (String, String, Vec<(String, bool)>, Vec<String>);

/// Every operation of the document.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut fields = Vec::new();
            if let Some(schema) = op.pointer("/requestBody/content/application~1json/schema") {
                let schema = resolve(doc, schema);
                for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                    let prop = resolve(doc, prop);
                    if is_string(doc, prop) {
                        fields.push((name.clone(), false));
                    } else if prop["type"] == "array" && is_string(doc, &prop["items"]) {
                        fields.push((name.clone(), true));
                    }
                }
            }
            let query = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query" && is_string(doc, &p["schema"]))
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect();
            out.push((method.to_uppercase(), path.clone(), fields, query));
        }
    }
    out
}

/// The pages' POST routes (`.route("/…", web::post()…)` under /billing, /console, /simulated) and the names of
/// every field their forms have, from the api crate's source.
fn forms() -> (Vec<String>, Vec<String>) {
    let lib = include_str!("../../../crates/web/src/lib.rs");
    let routes = lib
        .lines()
        .filter(|l| l.contains(".route(\"/") && l.contains("web::post()"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .filter(|p| ["/billing/", "/console", "/simulated/"].iter().any(|pages| p.starts_with(pages)))
        .collect();
    let sources = [
        include_str!("../../../crates/web/src/billing/mod.rs"),
        include_str!("../../../crates/web/src/billing/template.rs"),
        include_str!("../../../crates/web/src/billing/actions.rs"),
        include_str!("../../../crates/web/src/console/mod.rs"),
        include_str!("../../../crates/web/src/console/admin.rs"),
        include_str!("../../../crates/web/src/simulated.rs"),
    ];
    let mut names = BTreeSet::new();
    for source in sources {
        for part in source.split("name=\"").skip(1) {
            if let Some(name) = part.split('"').next().filter(|n| !n.is_empty() && n.len() < 40) {
                names.insert(name.to_string());
            }
        }
    }
    (routes, names.into_iter().collect())
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[actix_web::test]
async fn arbitrary_unicode_in_every_string_field_of_every_route_and_form_is_never_a_5xx() {
    let app = TestApp::spawn().await;
    let acct = app.account().await;
    let id = account_id(&acct).to_string();
    let admin = app.admin();
    let doc = serde_json::to_value(<credits_api::openapi::ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
    let ops = operations(&doc);
    let (pages, names) = forms();
    assert!(ops.iter().filter(|o| !o.2.is_empty()).count() >= 15, "the document's JSON bodies were found");
    assert!(pages.len() >= 20 && names.contains(&"reason".to_string()), "the pages' forms were found: {pages:?}");
    let mut runner = TestRunner::deterministic();
    let (mut sent, mut refused) = (0, 0);
    for _ in 0..12 {
        let s = text().new_tree(&mut runner).unwrap().current();
        let bad = forbidden(&s);
        let (before, balance) = (app.trace(), app.balance(&acct).await);
        for (method, path, fields, query) in &ops {
            if path == "/webhooks/stripe" || (fields.is_empty() && query.is_empty()) {
                continue;
            }
            let path = path.replace("{id}", &id).replace("{account_id}", &id);
            let who = if path.starts_with("/admin") { &admin } else { &acct };
            let mut url = format!("{}{path}", app.instance.base_url);
            if !query.is_empty() {
                let q: Vec<String> = query.iter().map(|n| format!("{n}={}", encode(&s))).collect();
                url = format!("{url}?{}", q.join("&"));
            }
            let mut body = Map::new();
            for (name, array) in fields {
                body.insert(name.clone(), if *array { json!([s.clone()]) } else { json!(s.clone()) });
            }
            let mut req = app.http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            req = match who {
                As::Canvas(a) => req.bearer_auth(INTERNAL_TOKEN).header("X-Account-Id", a.as_str()),
                As::Bearer(t) => req.bearer_auth(t),
                _ => req,
            };
            if !fields.is_empty() {
                req = req.json(&Value::Object(body));
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(status < 500, "{method} {path} with {s:?}: {status} {text}");
            if bad {
                assert!((400..500).contains(&status), "{method} {path} took {s:?}: {status} {text}");
                refused += 1;
            }
            sent += 1;
        }
        for path in &pages {
            let path = path.replace("{id}", &id).replace("{customer}", "cus_sim_x_0").replace("{action}", "refund");
            let form: Vec<String> = names.iter().map(|n| format!("{n}={}", encode(&s))).collect();
            let r = app
                .http
                .post(format!("{}{path}", app.instance.base_url))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(form.join("&"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            assert!(status < 500, "POST {path} with {s:?}: {status}");
            if bad {
                assert_eq!(status, 422, "POST {path} took {s:?}");
                refused += 1;
            }
            sent += 1;
        }
        if bad {
            assert_eq!(app.trace(), before, "nothing was written by requests holding {s:?}");
            assert_eq!(app.balance(&acct).await, balance);
        }
    }
    assert!(sent > 300 && refused > 50, "{sent} requests, {refused} with a forbidden character");
    app.assert_invariants().await;
}
