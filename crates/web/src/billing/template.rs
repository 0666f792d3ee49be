//! The billing page's HTML, section by section: what the account has (plan, balance, trials,
//! the usage chart), what it can buy, its settings (alerts, auto top-up, API keys, webhook
//! endpoints), its invoices, verification and ledger. Every form carries the session's CSRF token.

use credits_domain::credits::Credits;
use credits_domain::members::{PageAccess, Role};
use credits_domain::pages::PageSession;
use maud::{Markup, html};

use super::chart::usage_chart;
use super::{Billing, Shown};
use crate::layout::{layout, money, when};

fn csrf_field(session: &PageSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

pub(super) fn render(session: &PageSession, b: &Billing, notice: Option<&str>, error: Option<&str>) -> Markup {
    render_with(session, b, notice, error, None)
}

/// The page; `secret` is a new API key's, shown this once.
pub(super) fn render_with(
    session: &PageSession,
    b: &Billing,
    notice: Option<&str>,
    error: Option<&str>,
    shown: Option<Shown<'_>>,
) -> Markup {
    let (secret, hook_secret) = match shown {
        Some(Shown::ApiKey(s)) => (Some(s), None),
        Some(Shown::WebhookSecret(s)) => (None, Some(s)),
        None => (None, None),
    };
    let a = &b.account;
    layout(
        "Billing",
        html! {
            header class="top" {
                span class="brand" { "credits" }
                span { (a.name) " · " (a.email) }
                form method="post" action="/billing/sign-out" {
                    (csrf_field(session))
                    button type="submit" class="link" { "Sign out" }
                }
            }
            main {
                h1 { "Billing" }
                @if let Some(n) = notice { p class="notice" role="status" { (n) } }
                @if let Some(e) = error { p class="error" role="alert" { (e) } }

                @if b.role.may(PageAccess::Payments) {
                    section aria-labelledby="plan-h" {
                        h2 id="plan-h" { "Plan" }
                        dl class="facts" {
                            dt { "Plan" } dd id="plan" { (a.plan) }
                            dt { "Status" } dd { (a.status.as_str()) }
                            @if let Some(end) = a.period_end { dt { "Current period ends" } dd { (when(end)) } }
                            @if let Some(change) = &a.pending_change { dt { "Pending change" } dd { (match change {
                                credits_domain::payments::PendingChange::Plan(p) => format!("a change to {p} at the period's end"),
                                credits_domain::payments::PendingChange::Cancel => "ends at the period's end".to_string(),
                            }) } }
                            @if a.restricted { dt { "Restricted" } dd { "Runs, checkouts and new keys are refused; contact support." } }
                        }
                    }
                }

                @if b.role.may(PageAccess::Payments) {
                    section aria-labelledby="plans-h" {
                        h2 id="plans-h" { "Change plan" }
                        @let canceling = matches!(a.pending_change, Some(credits_domain::payments::PendingChange::Cancel));
                        div class="choices" {
                            @for (id, name, price) in &b.plans {
                                @if *id != a.plan || canceling {
                                    form method="post" action="/billing/plan" {
                                        (csrf_field(session))
                                        input type="hidden" name="plan" value=(id);
                                        button type="submit" {
                                            @if *id == a.plan { "Resume " (name) } @else { "Switch to " (name) }
                                            @if !price.is_empty() { " — " (price) }
                                        }
                                    }
                                }
                            }
                        }
                        p { "Upgrades apply once Stripe has the payment; downgrades at the end of the period. "
                            "To cancel, or to change your card, use Stripe's portal:" }
                        form method="post" action="/billing/portal" {
                            (csrf_field(session))
                            button type="submit" class="secondary" { "Open Stripe's billing portal" }
                        }
                    }
                }

                @if b.role.may(PageAccess::Payments) {
                    section aria-labelledby="packs-h" {
                        h2 id="packs-h" { "Buy credits" }
                        div class="choices" {
                            @for (id, name, price) in &b.packs {
                                form method="post" action="/billing/pack" {
                                    (csrf_field(session))
                                    input type="hidden" name="pack" value=(id);
                                    button type="submit" { "Buy " (name) " — " (price) }
                                }
                            }
                        }
                    }
                }

                section aria-labelledby="balance-h" {
                    h2 id="balance-h" { "Credits" }
                    div class="figures" {
                        div { span class="figure" id="available" { (b.balance.available.get()) } span { "available" } }
                        div { span class="figure" { (b.balance.held.get()) } span { "held by runs in progress" } }
                        div { span class="figure" { (b.balance.total.get()) } span { "in all" } }
                    }
                    table {
                        caption { "Your credits, in the order runs use them" }
                        thead { tr { th scope="col" { "Kind" } th scope="col" { "Granted" } th scope="col" { "Left" } th scope="col" { "Held" } th scope="col" { "Expires" } } }
                        tbody {
                            @for bucket in &b.balance.buckets {
                                tr class="bucket" {
                                    td { (bucket.kind.as_str()) }
                                    td class="num" { (bucket.granted.get()) }
                                    td class="num" { (bucket.remaining.get()) }
                                    td class="num" { (bucket.held.get()) }
                                    td { (bucket.expires_at.map(when).unwrap_or_else(|| "never".into())) }
                                }
                            }
                        }
                    }
                }

                @if let Some(me) = b.me.as_ref().filter(|_| b.role == Role::Member) {
                    section aria-labelledby="mine-h" {
                        h2 id="mine-h" { "Your use this month" }
                        dl class="facts" {
                            dt { "Used" } dd id="my-used" { (me.used_this_month.get()) " credits" }
                            dt { "Your monthly cap" } dd id="my-cap" { (me.monthly_credit_limit.map(|l| format!("{} credits", l.get())).unwrap_or_else(|| "none".into())) }
                        }
                    }
                }

                @if b.role.may(PageAccess::Usage) {
                    section aria-labelledby="usage-h" {
                        h2 id="usage-h" { "Usage, last 30 days" }
                        @if b.days.iter().all(|(_, c)| *c == 0) { p { "No credits used in the last 30 days." } }
                        @else { (usage_chart(&b.days)) }
                        @if !b.models.is_empty() {
                            table {
                                caption { "By model" }
                                thead { tr { th scope="col" { "Model" } th scope="col" { "Credits" } th scope="col" { "Runs" } } }
                                tbody {
                                    @for g in &b.models {
                                        tr { td { (g.key.as_deref().unwrap_or("—")) } td class="num" { (g.credits.get()) } td class="num" { (g.runs) } }
                                    }
                                }
                            }
                        }
                    }
                }

                @if b.role.may(PageAccess::Usage) {
                    section aria-labelledby="trials-h" {
                        h2 id="trials-h" { "Free trials" }
                        @if b.trials.iter().all(|t| t.status == "not_applicable") {
                            p { "Your plan has no trials: its models run from your credits." }
                        } @else {
                            table id="trials" {
                                caption { "Models you may try without spending credits" }
                                thead { tr { th scope="col" { "Model" } th scope="col" { "Trial" } th scope="col" { "Status" } } }
                                tbody {
                                    @for t in b.trials.iter().filter(|t| t.status != "not_applicable") {
                                        tr {
                                            td { (t.model) }
                                            td { (match (t.kind, t.window_closes_at) {
                                                (credits_domain::trial::TrialKind::Count, _) => format!("{} of {} generations left", t.remaining.unwrap_or(0), t.total),
                                                (_, Some(closes)) => format!("unlimited until {}", when(closes)),
                                                (_, None) => format!("unlimited for {} days from the first run", t.days.unwrap_or(0)),
                                            }) }
                                            td { (t.status) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }

                @if b.role.may(PageAccess::Usage) {
                    section aria-labelledby="ledger-h" {
                        h2 id="ledger-h" { "Ledger" }
                        p { a href="/billing/ledger.csv" { "Download the last 30 days as CSV" } }
                        table {
                            caption { "The latest entries (every change of your credits)" }
                            thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Credits" } th scope="col" { "Reason" } } }
                            tbody {
                                @for e in &b.ledger.entries {
                                    tr { td { (when(e.created_at)) } td { (e.entry_type.as_str()) } td class="num" { (e.credits.get()) } td { (e.reason.as_deref().unwrap_or("")) } }
                                }
                            }
                        }
                        @if let Some(next) = &b.ledger.next_cursor {
                            p { a href=(format!("/billing?ledger={next}#ledger-h")) id="older" { "Older entries" } }
                        }
                    }
                }

                @if b.role.may(PageAccess::Alerts) {
                    section aria-labelledby="alerts-h" {
                        h2 id="alerts-h" { "Low-balance alert" }
                        form method="post" action="/billing/alerts" {
                            (csrf_field(session))
                            label for="low_balance_threshold" { "Email me when available credits fall below" }
                            input type="number" min="1" id="low_balance_threshold" name="low_balance_threshold"
                                value=[b.alerts.low_balance_threshold.map(Credits::get)];
                            button type="submit" { "Save alert" }
                        }
                    }
                }

                @if b.role.may(PageAccess::AutoTopup) {
                    section aria-labelledby="topup-h" {
                        h2 id="topup-h" { "Auto top-up" }
                        @if !b.auto_topup.card_saved {
                            p { "Buy a top-up pack once: its checkout saves your card, and auto top-up can use it." }
                        }
                        form method="post" action="/billing/auto-topup" {
                            (csrf_field(session))
                            div class="check" {
                                input type="checkbox" id="enabled" name="enabled" value="on" checked[b.auto_topup.enabled];
                                label for="enabled" { "Buy a pack when available credits fall below the threshold" }
                            }
                            label for="threshold" { "Threshold (credits)" }
                            input type="number" min="1" id="threshold" name="threshold" value=[b.auto_topup.threshold.map(Credits::get)];
                            label for="pack" { "Pack" }
                            select id="pack" name="pack" {
                                @for (id, label, _) in &b.packs {
                                    option value=(id) selected[b.auto_topup.pack.as_deref() == Some(id.as_str())] { (label) }
                                }
                            }
                            label for="monthly_limit" { "At most this many a month" }
                            input type="number" min="1" max="31" id="monthly_limit" name="monthly_limit" value=(b.auto_topup.monthly_limit);
                            button type="submit" { "Save auto top-up" }
                        }
                        p { "This month: " (b.auto_topup.used_this_month) " of " (b.auto_topup.monthly_limit) "."
                            @if let Some(last) = &b.auto_topup.last_attempt { " Last: " (last.pack) ", " (last.status) " (" (when(last.created_at)) ")." } }
                    }
                }

                @if b.role.may(PageAccess::WebhookEndpoints) {
                    section aria-labelledby="hooks-h" {
                        h2 id="hooks-h" { "Webhook endpoints" }
                        @if let Some(secret) = hook_secret {
                            div class="secret" role="status" {
                                p { strong { "The endpoint's signing secret — copy it now: it is shown this once." } }
                                code id="new-hook-secret" { (secret) }
                            }
                        }
                        @if b.endpoints.is_empty() { p { "None yet." } }
                        ul {
                            @for e in &b.endpoints {
                                li class="endpoint" { code { (e.url) } " — " (e.events.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
                                    @if e.disabled_at.is_some() { " (disabled: it failed for 5 days)" }
                                    form method="post" action=(format!("/billing/webhook-endpoints/{}/delete", e.id)) {
                                        (csrf_field(session))
                                        button type="submit" class="secondary" aria-label=(format!("Delete the endpoint {}", e.url)) { "Delete" }
                                    }
                                }
                            }
                        }
                        form method="post" action="/billing/webhook-endpoints" class="wide" {
                            (csrf_field(session))
                            label for="hook-url" { "Endpoint URL (https)" }
                            input type="url" id="hook-url" name="url" required;
                            fieldset {
                                legend { "Events to send" }
                                @for t in credits_domain::notify::webhooks::EventType::ALL {
                                    div class="check" {
                                        input type="checkbox" id=(format!("ev-{}", t.as_str())) name="events" value=(t.as_str());
                                        label for=(format!("ev-{}", t.as_str())) { (t.as_str()) }
                                    }
                                }
                            }
                            button type="submit" { "Add endpoint" }
                        }
                    }
                }

                @if b.role.may(PageAccess::Keys) || b.role.may(PageAccess::OwnKeys) {
                    section aria-labelledby="keys-h" {
                        h2 id="keys-h" { "API keys" }
                        @if let Some(secret) = secret {
                            div class="secret" role="status" {
                                p { strong { "Your new key — copy it now: it is shown this once." } }
                                code id="new-key" { (secret) }
                            }
                        }
                        @if !a.api_access { p { "API keys come with plans that include API access." } }
                        @else {
                            @if b.keys.is_empty() { p { "No keys yet." } }
                            table {
                                caption { "Live keys" }
                                thead { tr { th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Used this month" } th scope="col" { "Monthly cap" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
                                tbody {
                                    @for k in &b.keys {
                                        tr class="key" {
                                            td { (k.name) } td { code { (k.prefix) "…" } } td class="num" { (k.used_this_month.get()) }
                                            td class="num" { (k.monthly_credit_limit.map(|l| l.get().to_string()).unwrap_or_else(|| "none".into())) }
                                            td {
                                                form method="post" action=(format!("/billing/api-keys/{}/revoke", k.id)) {
                                                    (csrf_field(session))
                                                    button type="submit" class="secondary" aria-label=(format!("Revoke {}", k.name)) { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            form method="post" action="/billing/api-keys" {
                                (csrf_field(session))
                                label for="key-name" { "Name" }
                                input type="text" id="key-name" name="name" required maxlength="100";
                                label for="key-limit" { "Monthly credit cap (optional)" }
                                input type="number" min="1" id="key-limit" name="monthly_credit_limit";
                                button type="submit" { "Create key" }
                            }
                        }
                    }
                }

                @if b.role.may(PageAccess::Members) {
                    section aria-labelledby="members-h" {
                        h2 id="members-h" { "Members" }
                        table {
                            caption { "The people who spend this account's credits" }
                            thead { tr { th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Role and monthly cap" } th scope="col" { "Used this month" } th scope="col" { span class="visually-hidden" { "Remove" } } } }
                            tbody {
                                @for m in &b.members {
                                    tr class="member" {
                                        td { (m.name) } td { (m.email) }
                                        td {
                                            form method="post" action=(format!("/billing/members/{}", m.id)) class="inline" {
                                                (csrf_field(session))
                                                label for=(format!("role-{}", m.id)) class="visually-hidden" { "Role of " (m.name) }
                                                select id=(format!("role-{}", m.id)) name="role" {
                                                    @for r in Role::ALL { option value=(r.as_str()) selected[r == m.role] { (r.as_str()) } }
                                                }
                                                label for=(format!("cap-{}", m.id)) class="visually-hidden" { "Monthly cap of " (m.name) }
                                                input type="number" min="1" id=(format!("cap-{}", m.id)) name="monthly_credit_limit" placeholder="no cap"
                                                    value=[m.monthly_credit_limit.map(Credits::get)];
                                                button type="submit" class="secondary" aria-label=(format!("Save {}", m.name)) { "Save" }
                                            }
                                        }
                                        td class="num" { (m.used_this_month.get()) }
                                        td {
                                            form method="post" action=(format!("/billing/members/{}/remove", m.id)) {
                                                (csrf_field(session))
                                                button type="submit" class="secondary" aria-label=(format!("Remove {}", m.name)) { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        form method="post" action="/billing/members" {
                            (csrf_field(session))
                            label for="member-email" { "Email" }
                            input type="email" id="member-email" name="email" required;
                            label for="member-name" { "Name" }
                            input type="text" id="member-name" name="name" required maxlength="200";
                            label for="member-role" { "Role" }
                            select id="member-role" name="role" {
                                @for r in Role::ALL { option value=(r.as_str()) selected[r == Role::Member] { (r.as_str()) } }
                            }
                            label for="member-cap" { "Monthly credit cap (optional)" }
                            input type="number" min="1" id="member-cap" name="monthly_credit_limit";
                            button type="submit" { "Add member" }
                        }
                    }
                }

                @if b.role.may(PageAccess::Payments) {
                    section aria-labelledby="invoices-h" {
                        h2 id="invoices-h" { "Invoices" }
                        @match &b.invoices {
                            Err(why) => p { "Invoices cannot be shown right now (" (why) ")." },
                            Ok(list) if list.is_empty() => p { "No invoices yet." },
                            Ok(list) => table {
                                thead { tr { th scope="col" { "Number" } th scope="col" { "Date" } th scope="col" { "Before tax" } th scope="col" { "Tax" } th scope="col" { "Paid" } th scope="col" { "Status" } } }
                                tbody {
                                    @for inv in list {
                                        tr {
                                            td { @if let Some(url) = &inv.hosted_invoice_url { a href=(url) { (inv.number.as_deref().unwrap_or(&inv.id)) } } @else { (inv.number.as_deref().unwrap_or(&inv.id)) } }
                                            td { (when(inv.created)) }
                                        td class="num" { (money(inv.subtotal, &inv.currency)) }
                                        td class="num" { (money(inv.tax, &inv.currency)) }
                                        td class="num" { (money(inv.amount_paid, &inv.currency)) }
                                        td { (inv.status.as_deref().unwrap_or("")) }
                                        }
                                    }
                                }
                            },
                        }
                    }
                }

                @if b.role.may(PageAccess::Payments) {
                    section aria-labelledby="verify-h" {
                        h2 id="verify-h" { "Business verification" }
                        @if let Some(v) = &b.verification {
                            p id="verification-status" { "Your request is " strong { (v.status.as_str()) } "."
                                @if let Some(reason) = &v.reason { " Reason: " (reason) } }
                        }
                        @let open = b.verification.as_ref().is_none_or(|v| v.status.as_str() == "rejected");
                        @if open && a.business_verification.as_ref().is_none_or(|v| v.status != "approved") {
                            p { "The Business plan needs a verified business. Tell the sales team about yours:" }
                            form method="post" action="/billing/verification" class="wide" {
                                (csrf_field(session))
                                label for="company_name" { "Company name" } input type="text" id="company_name" name="company_name" required;
                                label for="website" { "Website" } input type="url" id="website" name="website" required;
                                label for="country" { "Country (two letters, e.g. DE)" } input type="text" id="country" name="country" required maxlength="2";
                                label for="tax_id" { "Tax id (optional)" } input type="text" id="tax_id" name="tax_id";
                                label for="contact_name" { "Contact name" } input type="text" id="contact_name" name="contact_name" required;
                                label for="contact_email" { "Contact email" } input type="email" id="contact_email" name="contact_email" required;
                                label for="intended_use" { "What you will use credits for" } textarea id="intended_use" name="intended_use" required {}
                                button type="submit" { "Send for verification" }
                            }
                        }
                    }
                }
            }
        },
    )
}
