//! Issue 5: business verification with its mail, through real HTTP, a real SMTP server and the
//! outbox; R13 (Business checkout needs approval).

use credits_domain::operator::Role;
use credits_tests::smtp::SmtpSink;
use credits_tests::{As, Instance, TestApp};
use serde_json::{Value, json};

const URLS: (&str, &str) = ("https://app.example.test/ok", "https://app.example.test/cancel");

fn request(company: &str) -> Value {
    json!({
        "company_name": company, "website": "https://acme.example", "country": "DE", "tax_id": "DE123456789",
        "contact_name": "Ada Tester", "contact_email": "ada@acme.example",
        "intended_use": "Product imagery for our catalogue.", "expected_monthly_credits": 20000
    })
}

async fn email_of(app: &TestApp, acct: &As) -> String {
    app.get(acct, "/v1/account").await.expect(200)["email"].as_str().unwrap().to_string()
}

async fn wait_mail(app: &TestApp, sink: &SmtpSink, to: &str, count: usize) -> Vec<credits_tests::smtp::Received> {
    app.eventually(&format!("{count} mail(s) to {to}"), || async { sink.to(to).len() >= count }).await;
    sink.to(to)
}

async fn business_checkout(app: &TestApp, acct: &As) -> credits_tests::Response {
    app.post(
        acct,
        "/v1/checkout/subscription",
        json!({"plan": "business", "success_url": URLS.0, "cancel_url": URLS.1}),
    )
    .await
}

#[actix_web::test]
async fn submit_mail_sales_approve_mail_the_account_and_business_checkout_opens() {
    let (app, sink, _stripe) = TestApp::spawn_with_mail(true).await;
    let acct = app.account().await;
    let email = email_of(&app, &acct).await;
    business_checkout(&app, &acct).await.expect_error(403, "BUSINESS_VERIFICATION_REQUIRED");
    let submitted = app.post(&acct, "/v1/business-verification", request("Acme GmbH")).await.expect(201);
    assert_eq!(submitted["status"], "pending");
    let id = submitted["id"].as_str().unwrap().to_string();
    // The sales team gets every submitted fact and the admin link; the account a receipt.
    let sales = wait_mail(&app, &sink, TestApp::SALES_TEAM, 1).await;
    assert_eq!(sales[0].from, TestApp::MAIL_FROM);
    assert_eq!(sales[0].subject(), "Business verification request: Acme GmbH");
    for fact in [
        "Acme GmbH",
        "https://acme.example",
        "DE",
        "DE123456789",
        "Ada Tester",
        "ada@acme.example",
        "Product imagery",
        "20000",
    ] {
        assert!(sales[0].data.contains(fact), "the sales mail names {fact}");
    }
    assert!(sales[0].data.contains(&format!("/admin/v1/business-verifications/{id}")), "with the admin link");
    let receipt = wait_mail(&app, &sink, &email, 1).await;
    assert!(receipt[0].subject().contains("We received your business verification"));
    business_checkout(&app, &acct).await.expect_error(403, "BUSINESS_VERIFICATION_REQUIRED");
    // Sales approves: final, recorded, mailed, and Business checkout opens.
    let sales_op = app.operator(Role::Sales);
    let decided = app
        .post(&sales_op, &format!("/admin/v1/business-verifications/{id}/approve"), json!({"note": "checked"}))
        .await
        .expect(200);
    assert_eq!(
        (decided["status"].as_str(), decided["decided_by"].as_str()),
        (Some("approved"), Some("sales operator"))
    );
    assert!(decided["decided_at"].is_string());
    let approval = wait_mail(&app, &sink, &email, 2).await;
    assert!(approval.iter().any(|m| m.subject().contains("is verified")));
    assert_eq!(app.get(&acct, "/v1/account").await.expect(200)["business_verification"]["status"], "approved");
    business_checkout(&app, &acct).await.expect(201);
    app.post(&sales_op, &format!("/admin/v1/business-verifications/{id}/reject"), json!({"reason": "late"}))
        .await
        .expect_error(409, "CONFLICT");
    app.post(&acct, "/v1/business-verification", request("Acme again")).await.expect_error(409, "CONFLICT");
}

#[actix_web::test]
async fn a_rejection_is_mailed_with_its_reason_keeps_business_closed_and_allows_a_new_request() {
    let (app, sink, _stripe) = TestApp::spawn_with_mail(true).await;
    let acct = app.account().await;
    let email = email_of(&app, &acct).await;
    let id = app.post(&acct, "/v1/business-verification", request("Shady Ltd")).await.expect(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sales = app.operator(Role::Sales);
    let path = format!("/admin/v1/business-verifications/{id}/reject");
    app.post(&sales, &path, json!({})).await.expect_error(422, "INVALID_PARAMETERS");
    app.post(&sales, &path, json!({"reason": "the website does not match the company"})).await.expect(200);
    let mails = wait_mail(&app, &sink, &email, 2).await;
    let rejection = mails.iter().find(|m| m.subject().contains("was not approved")).expect("a rejection mail");
    assert!(rejection.data.contains("the website does not match the company"));
    let status = app.get(&acct, "/v1/business-verification").await.expect(200);
    assert_eq!(
        (status["status"].as_str(), status["reason"].as_str()),
        (Some("rejected"), Some("the website does not match the company"))
    );
    business_checkout(&app, &acct).await.expect_error(403, "BUSINESS_VERIFICATION_REQUIRED");
    app.post(&acct, "/v1/business-verification", request("Shady Ltd, corrected")).await.expect(201);
}

#[actix_web::test]
async fn requests_are_checked_one_may_be_open_and_only_sales_decides() {
    let (app, _sink, _) = TestApp::spawn_with_mail(false).await;
    let acct = app.account().await;
    app.get(&acct, "/v1/business-verification").await.expect_error(404, "NOT_FOUND");
    let before = app.trace();
    for (field, bad) in [
        ("country", json!("Germany")),
        ("website", json!("acme.example")),
        ("contact_email", json!("ada")),
        ("company_name", Value::Null),
    ] {
        let mut body = request("Acme");
        body[field] = bad;
        app.post(&acct, "/v1/business-verification", body).await.expect_error(422, "INVALID_PARAMETERS");
    }
    assert_eq!(app.trace(), before, "refused requests leave nothing, not even mail");
    let mut no_tax = request("Acme");
    no_tax.as_object_mut().unwrap().remove("tax_id");
    let id = app.post(&acct, "/v1/business-verification", no_tax).await.expect(201)["id"].as_str().unwrap().to_string();
    app.post(&acct, "/v1/business-verification", request("Acme")).await.expect_error(409, "CONFLICT");
    let support = app.operator(Role::Support);
    app.post(&support, &format!("/admin/v1/business-verifications/{id}/approve"), json!({}))
        .await
        .expect_error(403, "FORBIDDEN");
    app.get(&support, "/admin/v1/business-verifications").await.expect_error(403, "FORBIDDEN");
    app.get(&acct, "/admin/v1/business-verifications").await.expect_error(401, "UNAUTHENTICATED");
    // An Enterprise account has nothing to ask for.
    let ent = app.account().await;
    app.enterprise(&ent, 10).await;
    app.post(&ent, "/v1/business-verification", request("Big Corp")).await.expect_error(409, "CONFLICT");
}

#[actix_web::test]
async fn the_sales_queue_lists_pending_requests_oldest_first_in_pages() {
    let (app, _sink, _) = TestApp::spawn_with_mail(false).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let acct = app.account().await;
        ids.push(
            app.post(&acct, "/v1/business-verification", request(&format!("Company {i}"))).await.expect(201)["id"]
                .clone(),
        );
    }
    let sales = app.operator(Role::Sales);
    app.post(&sales, &format!("/admin/v1/business-verifications/{}/approve", ids[1].as_str().unwrap()), json!({}))
        .await
        .expect(200);
    let mut seen = Vec::new();
    let mut page = app.get(&sales, "/admin/v1/business-verifications?status=pending&limit=2").await.expect(200);
    loop {
        seen.extend(page["requests"].as_array().unwrap().iter().map(|r| r["id"].clone()));
        let Some(cursor) = page["next_cursor"].as_str().map(str::to_string) else { break };
        page = app
            .get(&sales, &format!("/admin/v1/business-verifications?status=pending&limit=2&cursor={cursor}"))
            .await
            .expect(200);
    }
    assert_eq!(seen, [ids[0].clone(), ids[2].clone(), ids[3].clone(), ids[4].clone()]);
    app.get(&sales, "/admin/v1/business-verifications?status=maybe").await.expect_error(422, "INVALID_PARAMETERS");
}

#[actix_web::test]
async fn an_html_injection_in_the_company_name_arrives_escaped() {
    let (app, sink, _) = TestApp::spawn_with_mail(false).await;
    let acct = app.account().await;
    let company = "<script>alert('x')</script> & <b>Co</b>";
    app.post(&acct, "/v1/business-verification", request(company)).await.expect(201);
    let mail = &wait_mail(&app, &sink, TestApp::SALES_TEAM, 1).await[0];
    let html = &mail.data[mail.data.find("text/html").expect("an HTML part")..];
    assert!(html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;"), "{html}");
    assert!(!html.contains("<script>"));
}

#[actix_web::test]
async fn an_smtp_outage_delays_mail_and_loses_none() {
    let (app, sink, _) = TestApp::spawn_with_mail(false).await;
    let acct = app.account().await;
    let email = email_of(&app, &acct).await;
    sink.outage(true);
    app.post(&acct, "/v1/business-verification", request("Patient GmbH")).await.expect(201);
    // Tried and refused meanwhile: nothing delivered, nothing lost.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(sink.messages().is_empty());
    use diesel::prelude::*;
    let attempts: Vec<i32> = credits_db::schema::outbox::table
        .select(credits_db::schema::outbox::attempts)
        .load(&mut app.db.conn())
        .unwrap();
    assert!(attempts.iter().all(|a| *a >= 1), "every mail was tried: {attempts:?}");
    sink.outage(false);
    wait_mail(&app, &sink, TestApp::SALES_TEAM, 1).await;
    wait_mail(&app, &sink, &email, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 2, "each mail once");
}

#[actix_web::test]
async fn two_workers_over_one_outbox_deliver_each_mail_once() {
    let (app, sink, _) = TestApp::spawn_with_mail(false).await;
    let overrides = TestApp::mail_overrides(&sink);
    let overrides: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let second = Instance::start(&app.db.url, &overrides);
    let mut emails = Vec::new();
    for i in 0..8 {
        let acct = app.account().await;
        emails.push(email_of(&app, &acct).await);
        app.post(&acct, "/v1/business-verification", request(&format!("Busy {i}"))).await.expect(201);
    }
    app.eventually("16 mails delivered", || async { sink.messages().len() >= 16 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let messages = sink.messages();
    assert_eq!(messages.len(), 16, "no mail twice");
    for email in &emails {
        assert_eq!(sink.to(email).len(), 1);
    }
    assert_eq!(sink.to(TestApp::SALES_TEAM).len(), 8);
    second.stop().await;
}
