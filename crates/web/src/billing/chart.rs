//! The usage chart: credits used per day, drawn on the server as an SVG (no script).

use maud::{Markup, html};

/// Credits used per day over the last 30 days, drawn as an SVG bar chart (no script).
pub(super) fn usage_chart(days: &[(String, i64)]) -> Markup {
    let (width, height, gap) = (600.0_f64, 140.0_f64, 2.0_f64);
    let most = days.iter().map(|(_, c)| *c).max().unwrap_or(0).max(1) as f64;
    let bar = width / days.len().max(1) as f64;
    let total: i64 = days.iter().map(|(_, c)| c).sum();
    html! {
        svg class="chart" viewBox=(format!("0 0 {width} {}", height + 20.0)) role="img"
            aria-label=(format!("Credits used per day over the last 30 days: {total} in all")) {
            @for (i, (day, credits)) in days.iter().enumerate() {
                @let h = (*credits as f64 / most * height).max(if *credits > 0 { 1.0 } else { 0.0 });
                rect x=(format!("{:.1}", i as f64 * bar)) y=(format!("{:.1}", height - h))
                    width=(format!("{:.1}", (bar - gap).max(1.0))) height=(format!("{h:.1}")) {
                    title { (day) ": " (credits) " credits" }
                }
            }
            text x="0" y=(height + 16.0) { (days.first().map(|d| d.0.as_str()).unwrap_or("")) }
            text x=(width) y=(height + 16.0) text-anchor="end" { (days.last().map(|d| d.0.as_str()).unwrap_or("")) }
        }
    }
}
