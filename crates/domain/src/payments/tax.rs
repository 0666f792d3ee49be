//! R28: Stripe Tax, as the service decides it: what a Checkout Session asks of Stripe when
//! `billing.automatic_tax` is on, and what a payment is worth before tax (credits never depend on
//! tax; their money value is the amount before it). What Stripe computes — rates, registrations,
//! the customer's location — stays Stripe's (docs/decisions.md, "Tax").

/// What a Checkout Session asks of Stripe Tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTax {
    /// `automatic_tax[enabled]=true`.
    pub automatic: bool,
    /// `billing_address_collection=required`: Stripe needs the address to tax.
    pub address_required: bool,
    /// `tax_id_collection[enabled]=true`: a company's VAT id on its invoice.
    pub tax_ids: bool,
    /// `customer_update[address]=auto` and `[name]=auto`: the session names the account's
    /// customer, which keeps what checkout collected (the next off-session payment is taxed by it).
    pub update_customer: bool,
}

/// R28: a session's tax parameters, or none at all when automatic tax is off (nothing of it is
/// sent then). Every session this service makes names the account's Stripe customer.
pub fn session_tax(automatic_tax: bool) -> Option<SessionTax> {
    automatic_tax.then_some(SessionTax {
        automatic: true,
        address_required: true,
        tax_ids: true,
        update_customer: true,
    })
}

/// R28: what a paid Checkout Session is worth before tax: its `amount_subtotal`, else (a session
/// of before tax, or a provider that does not say) its total, else what the session sold.
pub fn session_value(amount_subtotal: Option<i64>, amount_total: Option<i64>, sold: i64) -> i64 {
    amount_subtotal.or(amount_total).unwrap_or(sold)
}

/// R28: an invoice's amount before tax and its tax, from Stripe's `total_excluding_tax` and
/// `total` (falling back to `subtotal`, then to what was paid, and a tax of 0).
pub fn invoice_split(
    amount_paid: i64,
    subtotal: Option<i64>,
    total: Option<i64>,
    total_excluding_tax: Option<i64>,
) -> (i64, i64) {
    let before = total_excluding_tax.or(subtotal).unwrap_or(amount_paid);
    let tax = match (total, total_excluding_tax) {
        (Some(total), Some(excluding)) => (total - excluding).max(0),
        _ => 0,
    };
    (before, tax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_tax_off_a_session_asks_nothing_of_stripe_tax_and_with_it_on_all_four() {
        assert_eq!(session_tax(false), None);
        let on = session_tax(true).unwrap();
        assert!(on.automatic && on.address_required && on.tax_ids && on.update_customer);
    }

    #[test]
    fn a_sessions_value_is_before_tax() {
        assert_eq!(session_value(Some(500), Some(600), 450), 500);
        assert_eq!(session_value(None, Some(500), 450), 500);
        assert_eq!(session_value(None, None, 450), 450);
    }

    #[test]
    fn an_invoice_splits_into_its_amount_before_tax_and_its_tax() {
        assert_eq!(invoice_split(600, Some(500), Some(600), Some(500)), (500, 100));
        assert_eq!(invoice_split(500, Some(500), None, None), (500, 0));
        assert_eq!(invoice_split(500, None, None, None), (500, 0));
    }
}
