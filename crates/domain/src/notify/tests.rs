//! The notify rules, judged on facts built in code.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::alerts::{BalanceAlert, BalanceLevel, after_change, rebase};
use super::autotopup::*;
use super::webhooks::*;
use crate::Credits;
use crate::jobs::DELIVERY_RETRY;
use crate::payments::tests::catalog;

fn c(n: i64) -> Credits {
    Credits::new(n)
}

// ---- R23 balance alerts --------------------------------------------------------------------------

#[test]
fn falling_strictly_below_the_threshold_is_one_low_and_staying_low_says_nothing() {
    let t = Some(c(100));
    let (level, alerts) = after_change(t, BalanceLevel::Normal, c(100));
    assert_eq!((level, alerts), (BalanceLevel::Normal, vec![]), "at the threshold is not below");
    let (level, alerts) = after_change(t, level, c(94));
    assert_eq!(alerts, vec![BalanceAlert::Low { available: c(94), threshold: c(100) }]);
    let (level, alerts) = after_change(t, level, c(78));
    assert_eq!((level, alerts), (BalanceLevel::Low, vec![]));
}

#[test]
fn reaching_zero_is_depleted_and_a_fall_straight_there_is_low_then_depleted() {
    let t = Some(c(100));
    assert_eq!(after_change(t, BalanceLevel::Low, c(0)), (BalanceLevel::Depleted, vec![BalanceAlert::Depleted]));
    assert_eq!(
        after_change(t, BalanceLevel::Normal, c(0)).1,
        vec![BalanceAlert::Low { available: c(0), threshold: c(100) }, BalanceAlert::Depleted]
    );
    // A clawback can take the balance below 0: still depleted, and said once.
    assert_eq!(after_change(t, BalanceLevel::Depleted, c(-5)), (BalanceLevel::Depleted, vec![]));
}

#[test]
fn recovering_needs_the_threshold_and_a_new_fall_is_a_new_crossing() {
    let t = Some(c(100));
    let (level, alerts) = after_change(t, BalanceLevel::Depleted, c(40));
    assert_eq!((level, alerts), (BalanceLevel::Low, vec![]), "still below the threshold");
    let (level, alerts) = after_change(t, level, c(100));
    assert_eq!(alerts, vec![BalanceAlert::Recovered { available: c(100), threshold: t }]);
    let (_, alerts) = after_change(t, level, c(98));
    assert_eq!(alerts, vec![BalanceAlert::Low { available: c(98), threshold: c(100) }]);
}

#[test]
fn without_a_threshold_only_zero_and_back_are_told() {
    assert_eq!(after_change(None, BalanceLevel::Normal, c(1)), (BalanceLevel::Normal, vec![]));
    assert_eq!(after_change(None, BalanceLevel::Normal, c(0)).1, vec![BalanceAlert::Depleted]);
    assert_eq!(
        after_change(None, BalanceLevel::Depleted, c(10)).1,
        vec![BalanceAlert::Recovered { available: c(10), threshold: None }]
    );
}

#[test]
fn setting_the_threshold_is_not_a_fall() {
    let level = rebase(Some(c(300)), c(250));
    assert_eq!(level, BalanceLevel::Low);
    assert_eq!(after_change(Some(c(300)), level, c(200)).1, vec![], "already below when it was set");
    assert_eq!(rebase(None, c(250)), BalanceLevel::Normal);
}

// ---- R22 auto top-up -----------------------------------------------------------------------------

fn on(threshold: i64) -> AutoTopupRequest {
    AutoTopupRequest { enabled: true, threshold: Some(threshold), pack: Some("small".into()), monthly_limit: None }
}

#[test]
fn turning_auto_topup_on_needs_a_saved_card_a_threshold_and_a_real_pack() {
    let cat = catalog();
    let ok = validate(&on(200), None, &cat, true).unwrap();
    assert_eq!(ok.threshold, Some(c(200)));
    assert_eq!(ok.monthly_limit, DEFAULT_MONTHLY_LIMIT);
    assert!(validate(&on(200), None, &cat, false).unwrap_err().contains("card"));
    assert!(validate(&on(0), None, &cat, true).unwrap_err().contains("threshold"));
    let bad_pack = AutoTopupRequest { pack: Some("huge".into()), ..on(200) };
    assert!(validate(&bad_pack, None, &cat, true).unwrap_err().contains("huge"));
    let no_pack = AutoTopupRequest { pack: None, ..on(200) };
    assert!(validate(&no_pack, None, &cat, true).unwrap_err().contains("pack"));
    let too_many = AutoTopupRequest { monthly_limit: Some(1000), ..on(200) };
    assert!(validate(&too_many, None, &cat, true).unwrap_err().contains("monthly_limit"));
}

#[test]
fn turning_it_off_needs_nothing_and_keeps_what_was_set() {
    let cat = catalog();
    let before = validate(&AutoTopupRequest { monthly_limit: Some(2), ..on(200) }, None, &cat, true).unwrap();
    let off = AutoTopupRequest { enabled: false, ..AutoTopupRequest::default() };
    let after = validate(&off, Some(&before), &cat, false).unwrap();
    assert!(!after.enabled);
    assert_eq!((after.threshold, after.pack.as_deref(), after.monthly_limit), (Some(c(200)), Some("small"), 2));
    assert!(validate(&off, None, &cat, false).is_ok());
}

#[test]
fn a_capture_below_the_threshold_starts_one_and_only_one_within_the_monthly_limit() {
    let s = validate(&AutoTopupRequest { monthly_limit: Some(2), ..on(200) }, None, &catalog(), true).unwrap();
    assert_eq!(after_capture(Some(&s), c(200), false, 0), StartDecision::NotBelow);
    assert_eq!(after_capture(Some(&s), c(199), false, 0), StartDecision::Start);
    assert_eq!(after_capture(Some(&s), c(10), true, 0), StartDecision::AlreadyOpen);
    assert_eq!(after_capture(Some(&s), c(10), false, 2), StartDecision::MonthlyLimitReached { limit: 2 });
    let off = AutoTopupSettings { enabled: false, ..s };
    assert_eq!(after_capture(Some(&off), c(0), false, 0), StartDecision::Disabled);
    assert_eq!(after_capture(None, c(0), false, 0), StartDecision::Disabled);
}

#[test]
fn the_month_is_the_calendar_month_in_utc() {
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 23, 59, 59).unwrap();
    assert_eq!(month_start(now), Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap());
}

#[test]
fn a_failed_off_session_payment_turns_it_off_and_mails_and_a_paid_one_grants() {
    use crate::jobs::AutoTopupStatus::{Failed, Pending, Processing, Succeeded};
    let now = Utc.with_ymd_and_hms(2026, 12, 8, 12, 0, 0).unwrap();
    let decide = |status, outcome, reason| decide_topup_outcome(status, outcome, reason, 30, now);
    for open in [Pending, Processing] {
        assert_eq!(
            decide(open, PaymentOutcome::Succeeded, None),
            TopupOutcome::Grant { expires_at: now + chrono::Duration::days(30) }
        );
        let declined = decide(open, PaymentOutcome::Declined, None);
        assert_eq!(declined, TopupOutcome::Fail { reason: "the payment was declined".into(), disable: true });
        let asked = decide(open, PaymentOutcome::RequiresAction, None);
        assert!(matches!(&asked, TopupOutcome::Fail { reason, disable: true } if reason.contains("confirm")));
        let worded = decide(open, PaymentOutcome::Declined, Some("Your card has insufficient funds."));
        assert_eq!(worded, TopupOutcome::Fail { reason: "Your card has insufficient funds.".into(), disable: true });
    }
    // Ended: a success never changes; a failure is only overturned by a success.
    for outcome in [PaymentOutcome::Succeeded, PaymentOutcome::Declined, PaymentOutcome::RequiresAction] {
        assert_eq!(decide(Succeeded, outcome, None), TopupOutcome::Already);
    }
    assert_eq!(decide(Failed, PaymentOutcome::Declined, None), TopupOutcome::Already);
    assert_eq!(decide(Failed, PaymentOutcome::RequiresAction, None), TopupOutcome::Already);
    assert!(matches!(decide(Failed, PaymentOutcome::Succeeded, None), TopupOutcome::Grant { .. }));
}

#[test]
fn a_failure_that_asks_for_the_cardholder_is_requires_action_and_any_other_a_decline() {
    assert_eq!(PaymentOutcome::of_failure(Some("authentication_required")), PaymentOutcome::RequiresAction);
    assert_eq!(PaymentOutcome::of_failure(Some("card_declined")), PaymentOutcome::Declined);
    assert_eq!(PaymentOutcome::of_failure(None), PaymentOutcome::Declined);
}

// ---- section 9 outbound webhooks -----------------------------------------------------------------

fn endpoint<'a>(url: &'a str, scheme: &'a str, events: &'a [String]) -> EndpointRequest<'a> {
    EndpointRequest { url, scheme, host: Some("hooks.example.com"), events, description: None }
}

#[test]
fn every_event_type_of_section_9_round_trips_by_its_name() {
    assert_eq!(EventType::ALL.len(), 15, "section 9 and section 11's member events");
    for &e in EventType::ALL {
        assert_eq!(EventType::parse(e.as_str()), Some(e));
        assert_eq!(serde_json::to_value(e).unwrap(), serde_json::json!(e.as_str()));
    }
    assert_eq!(EventType::parse("balance.lo"), None);
}

#[test]
fn an_endpoint_is_https_with_known_events_and_an_account_has_at_most_ten() {
    let events = vec!["balance.low".to_string(), "credits.granted".into(), "balance.low".into()];
    let url = "https://hooks.example.com/credits";
    assert_eq!(
        validate_endpoint(&endpoint(url, "https", &events), false),
        Ok(vec![EventType::BalanceLow, EventType::CreditsGranted])
    );
    assert_eq!(check_endpoint_count(9), Ok(()));
    assert!(check_endpoint_count(10).unwrap_err().contains("10"));
    let http = "http://hooks.example.com/credits";
    assert!(validate_endpoint(&endpoint(http, "http", &events), false).unwrap_err().contains("https"));
    assert!(validate_endpoint(&endpoint(http, "http", &events), true).is_ok());
    assert!(validate_endpoint(&endpoint(url, "ftp", &events), true).is_err());
    assert!(validate_endpoint(&endpoint(url, "https", &[]), false).unwrap_err().contains("events"));
    let unknown = vec!["balance.lowish".to_string()];
    assert!(validate_endpoint(&endpoint(url, "https", &unknown), false).unwrap_err().contains("lowish"));
    let hostless = EndpointRequest { host: None, ..endpoint(url, "https", &events) };
    assert!(validate_endpoint(&hostless, false).is_err());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn private_loopback_and_link_local_targets_are_refused_unless_allowed() {
    for inside in [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "::1",
        "fd00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
    ] {
        assert!(matches!(check_target(ip(inside), false), Err(TargetRefused::Private(_))), "{inside}");
        assert_eq!(check_target(ip(inside), true), Ok(()), "{inside} with allow_private");
    }
    for nowhere in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1", "240.0.0.1"] {
        assert!(matches!(check_target(ip(nowhere), true), Err(TargetRefused::Unroutable(_))), "{nowhere}");
    }
    for public in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "100.128.0.1", "172.32.0.1"] {
        assert_eq!(check_target(ip(public), false), Ok(()), "{public}");
    }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()
}

#[test]
fn retries_back_off_exponentially_to_twelve_hours_and_stop_after_three_days() {
    let retry_delay = |n| DELIVERY_RETRY.delay(n);
    assert_eq!(retry_delay(1), TimeDelta::seconds(30));
    assert_eq!(retry_delay(2), TimeDelta::seconds(60));
    assert_eq!(retry_delay(8), TimeDelta::seconds(30 * 128));
    assert_eq!(retry_delay(40), TimeDelta::hours(12));
    // Follow one delivery that never succeeds: every retry is inside the 3 days, the tries are
    // few enough not to hammer the endpoint, and the last one is close to the window's end.
    let (mut now, mut attempts) = (t0(), 1);
    while let Some(next) = DELIVERY_RETRY.next(attempts, t0(), now) {
        assert!(next > now && next <= t0() + RETRY_WINDOW);
        now = next;
        attempts += 1;
    }
    assert!((12..=25).contains(&attempts), "{attempts} tries");
    assert!(t0() + RETRY_WINDOW - now <= TimeDelta::hours(12));
}

#[test]
fn an_endpoint_failing_for_five_days_is_disabled() {
    assert!(!should_disable(None, t0()));
    assert!(!should_disable(Some(t0()), t0() + TimeDelta::days(5) - TimeDelta::seconds(1)));
    assert!(should_disable(Some(t0()), t0() + TimeDelta::days(5)));
}

#[test]
fn an_attempts_end_moves_the_delivery_and_its_endpoints_health_as_section_9_says() {
    use super::store::AttemptResult;
    use crate::jobs::DeliveryStatus;
    let now = Utc.with_ymd_and_hms(2026, 12, 8, 12, 0, 0).unwrap();
    let fresh = DeliveryFacts {
        status: DeliveryStatus::Pending,
        attempts: 0,
        first_attempt_at: None,
        failing_since: None,
        disabled_at: None,
    };
    let failed = AttemptResult::Failed { status: Some(500), error: "answered 500".into() };

    // Delivered: done, and the endpoint is healthy again.
    let ok = decide_attempt(
        &DeliveryFacts { failing_since: Some(now), ..fresh.clone() },
        &AttemptResult::Delivered { status: 204 },
        now,
    )
    .unwrap();
    assert_eq!(
        (ok.status, ok.delivered, ok.response_code, ok.failing_since, ok.disable),
        (DeliveryStatus::Delivered, true, Some(204), None, false)
    );
    assert_eq!((ok.attempts, ok.first_attempt_at, ok.next_attempt_at), (1, now, None));

    // A first failure: pending again in 30 s; the endpoint failing from now.
    let first = decide_attempt(&fresh, &failed, now).unwrap();
    assert_eq!(first.status, DeliveryStatus::Pending);
    assert_eq!(first.next_attempt_at, Some(now + TimeDelta::seconds(30)));
    assert_eq!((first.failing_since, first.disable, first.error.as_deref()), (Some(now), false, Some("answered 500")));

    // Past its 3 days: failed for good.
    let old = DeliveryFacts { attempts: 9, first_attempt_at: Some(now - RETRY_WINDOW), ..fresh.clone() };
    let given_up = decide_attempt(&old, &failed, now).unwrap();
    assert_eq!((given_up.status, given_up.next_attempt_at), (DeliveryStatus::Failed, None));

    // Failing for 5 days: the endpoint is disabled, once.
    let failing = DeliveryFacts { failing_since: Some(now - DISABLE_AFTER), ..fresh.clone() };
    assert!(decide_attempt(&failing, &failed, now).unwrap().disable);
    let disabled = DeliveryFacts { disabled_at: Some(now - TimeDelta::hours(1)), ..failing };
    assert!(!decide_attempt(&disabled, &failed, now).unwrap().disable);

    // Recorded already (a lease ran out, another instance recorded it): nothing.
    for done in [DeliveryStatus::Delivered, DeliveryStatus::Failed] {
        assert_eq!(decide_attempt(&DeliveryFacts { status: done, ..fresh.clone() }, &failed, now), None);
    }
}
