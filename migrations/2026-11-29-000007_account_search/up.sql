-- SPEC section 8: support finds an account by its email (case-insensitive), besides its id and
-- its Stripe customer id (already unique, hence indexed).
CREATE INDEX accounts_email_lower ON accounts (lower(email));
