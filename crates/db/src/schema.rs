// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        plan_id -> Text,
        plan_status -> Text,
        period_start -> Nullable<Timestamptz>,
        period_end -> Nullable<Timestamptz>,
        contract_monthly_credits -> Nullable<Int8>,
        contract_runs_per_minute -> Nullable<Int4>,
        contract_starts_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        stripe_customer_id -> Nullable<Text>,
        business_verified_at -> Nullable<Timestamptz>,
        pending_change -> Nullable<Text>,
        plan_ends_at -> Nullable<Timestamptz>,
        past_due_since -> Nullable<Timestamptz>,
        restricted_at -> Nullable<Timestamptz>,
        stripe_customer_generation -> Int4,
        low_balance_threshold -> Nullable<Int8>,
        balance_level -> Text,
        auto_topup_enabled -> Bool,
        auto_topup_threshold -> Nullable<Int8>,
        auto_topup_pack -> Nullable<Text>,
        auto_topup_monthly_limit -> Int4,
        card_saved_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    buckets (id) {
        id -> Uuid,
        account_id -> Uuid,
        kind -> Text,
        granted -> Int8,
        remaining -> Int8,
        expires_at -> Nullable<Timestamptz>,
        reference -> Nullable<Text>,
        created_at -> Timestamptz,
        value_amount -> Nullable<Int8>,
        value_credits -> Nullable<Int8>,
        currency -> Nullable<Text>,
        expiry_noticed_at -> Nullable<Timestamptz>,
        expiry_swept -> Bool,
    }
}

diesel::table! {
    idempotency_records (scope, key) {
        scope -> Text,
        key -> Text,
        fingerprint -> Text,
        response_status -> Int2,
        response_body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_entries (seq) {
        seq -> Int8,
        id -> Uuid,
        account_id -> Uuid,
        bucket_id -> Uuid,
        entry_type -> Text,
        credits -> Int8,
        run_id -> Nullable<Uuid>,
        reference -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    operator_actions (id) {
        id -> Int8,
        operator_id -> Nullable<Uuid>,
        operator_name -> Text,
        operator_role -> Text,
        action -> Text,
        account_id -> Nullable<Uuid>,
        details -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    operators (id) {
        id -> Uuid,
        name -> Text,
        role -> Text,
        token_hash -> Text,
        created_at -> Timestamptz,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    run_reservations (run_id, bucket_id) {
        run_id -> Uuid,
        bucket_id -> Uuid,
        account_id -> Uuid,
        credits -> Int8,
        open -> Bool,
    }
}

diesel::table! {
    runs (id) {
        id -> Uuid,
        account_id -> Uuid,
        model_id -> Text,
        channel -> Text,
        workflow_id -> Nullable<Text>,
        images -> Nullable<Int8>,
        duration_seconds -> Nullable<Int8>,
        cost -> Int8,
        status -> Text,
        captured_credits -> Nullable<Int8>,
        captured_images -> Nullable<Int8>,
        captured_duration_seconds -> Nullable<Int8>,
        trial_kind -> Nullable<Text>,
        trial_generations -> Int8,
        trial_window_opens_at -> Nullable<Timestamptz>,
        trial_window_closes_at -> Nullable<Timestamptz>,
        hold_expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
        release_reason -> Nullable<Text>,
        api_key_id -> Nullable<Uuid>,
        member_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    test_clock (id) {
        id -> Int2,
        offset_micros -> Int8,
    }
}

diesel::table! {
    trial_usage (account_id, model_id) {
        account_id -> Uuid,
        model_id -> Text,
        used -> Int8,
        window_opens_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(buckets -> accounts (account_id));
diesel::joinable!(ledger_entries -> accounts (account_id));
diesel::joinable!(ledger_entries -> buckets (bucket_id));
diesel::joinable!(ledger_entries -> runs (run_id));
diesel::joinable!(operator_actions -> accounts (account_id));
diesel::joinable!(operator_actions -> operators (operator_id));
diesel::joinable!(run_reservations -> accounts (account_id));
diesel::joinable!(run_reservations -> buckets (bucket_id));
diesel::joinable!(run_reservations -> runs (run_id));
diesel::joinable!(runs -> accounts (account_id));
diesel::joinable!(trial_usage -> accounts (account_id));

diesel::table! {
    api_keys (id) {
        id -> Uuid,
        account_id -> Uuid,
        name -> Text,
        prefix -> Text,
        secret_hash -> Text,
        scopes -> Array<Text>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        monthly_credit_limit -> Nullable<Int8>,
        member_id -> Nullable<Uuid>,
    }
}

diesel::joinable!(api_keys -> accounts (account_id));
diesel::joinable!(runs -> api_keys (api_key_id));

diesel::table! {
    checkout_sessions (id) {
        id -> Text,
        account_id -> Uuid,
        mode -> Text,
        item_id -> Text,
        stripe_price_id -> Text,
        url -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamptz,
        credits -> Nullable<Int8>,
        expiry_days -> Nullable<Int4>,
        amount -> Nullable<Int8>,
        currency -> Nullable<Text>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        account_id -> Uuid,
        customer_id -> Text,
        stripe_status -> Text,
        price_id -> Nullable<Text>,
        item_id -> Nullable<Text>,
        cancel_at_period_end -> Bool,
        current_period_start -> Nullable<Timestamptz>,
        current_period_end -> Nullable<Timestamptz>,
        last_event_at -> Nullable<Timestamptz>,
        ended_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        duplicate_of -> Nullable<Text>,
    }
}

diesel::table! {
    stripe_events (id) {
        id -> Text,
        event_type -> Text,
        created -> Timestamptz,
        outcome -> Text,
        received_at -> Timestamptz,
        status -> Text,
        payload -> Nullable<Text>,
        error -> Nullable<Text>,
        attempts -> Int4,
    }
}

diesel::table! {
    invoice_grants (invoice_id) {
        invoice_id -> Text,
        account_id -> Uuid,
        subscription_id -> Text,
        billing_reason -> Text,
        bucket_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        credits -> Int8,
        amount_paid -> Int8,
        refunded_amount -> Int8,
        clawed_back -> Int8,
    }
}

diesel::table! {
    topup_purchases (account_id, id) {
        id -> Uuid,
        session_id -> Nullable<Text>,
        auto_topup_id -> Nullable<Uuid>,
        account_id -> Uuid,
        pack_id -> Text,
        bucket_id -> Uuid,
        credits -> Int8,
        payment_intent_id -> Nullable<Text>,
        amount -> Int8,
        currency -> Text,
        refunded_amount -> Int8,
        clawed_back -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        dedupe_key -> Text,
        kind -> Text,
        account_id -> Nullable<Uuid>,
        recipient -> Text,
        payload -> Jsonb,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(checkout_sessions -> accounts (account_id));
diesel::joinable!(subscriptions -> accounts (account_id));
diesel::joinable!(topup_purchases -> buckets (bucket_id));

diesel::table! {
    business_verifications (id) {
        id -> Uuid,
        account_id -> Uuid,
        company_name -> Text,
        website -> Text,
        country -> Text,
        tax_id -> Nullable<Text>,
        contact_name -> Text,
        contact_email -> Text,
        intended_use -> Text,
        expected_monthly_credits -> Nullable<Int8>,
        status -> Text,
        reason -> Nullable<Text>,
        note -> Nullable<Text>,
        decided_by_id -> Nullable<Uuid>,
        decided_by -> Nullable<Text>,
        decided_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(business_verifications -> accounts (account_id));

diesel::table! {
    account_restrictions (id) {
        id -> Uuid,
        account_id -> Uuid,
        source -> Text,
        dispute_id -> Nullable<Text>,
        reason -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
        lifted_at -> Nullable<Timestamptz>,
        lifted_by -> Nullable<Text>,
        lift_reason -> Nullable<Text>,
    }
}

diesel::table! {
    disputes (id) {
        id -> Text,
        account_id -> Uuid,
        payment_intent_id -> Nullable<Text>,
        bucket_id -> Nullable<Uuid>,
        bucket_kind -> Nullable<Text>,
        bucket_expires_at -> Nullable<Timestamptz>,
        clawed_back -> Int8,
        status -> Text,
        created_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    payment_jobs (id) {
        id -> Uuid,
        account_id -> Uuid,
        kind -> Text,
        subject -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    auto_topups (id) {
        id -> Uuid,
        account_id -> Uuid,
        pack_id -> Text,
        credits -> Int8,
        expiry_days -> Int4,
        amount -> Int8,
        currency -> Text,
        status -> Text,
        payment_intent_id -> Nullable<Text>,
        bucket_id -> Nullable<Uuid>,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Uuid,
        account_id -> Uuid,
        url -> Text,
        events -> Array<Text>,
        description -> Nullable<Text>,
        secret_sealed -> Bytea,
        created_at -> Timestamptz,
        failing_since -> Nullable<Timestamptz>,
        disabled_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_events (id) {
        id -> Text,
        account_id -> Uuid,
        event_type -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> Uuid,
        event_id -> Text,
        endpoint_id -> Uuid,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        first_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> Int8,
        delivery_id -> Uuid,
        attempted_at -> Timestamptz,
        response_code -> Nullable<Int4>,
        error -> Nullable<Text>,
        delivered -> Bool,
        next_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    page_links (token_hash) {
        token_hash -> Text,
        account_id -> Uuid,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        member_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    page_sessions (id_hash) {
        id_hash -> Text,
        account_id -> Uuid,
        csrf -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        member_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    members (account_id, id) {
        account_id -> Uuid,
        id -> Uuid,
        email -> Text,
        name -> Text,
        role -> Text,
        monthly_credit_limit -> Nullable<Int8>,
        created_at -> Timestamptz,
        removed_at -> Nullable<Timestamptz>,
        noticed_month -> Nullable<Timestamptz>,
        noticed_percent -> Int4,
    }
}

diesel::joinable!(members -> accounts (account_id));

diesel::table! {
    console_sessions (id_hash) {
        id_hash -> Text,
        operator_id -> Nullable<Uuid>,
        operator_name -> Text,
        operator_role -> Text,
        csrf -> Text,
        created_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        bootstrap_token_hash -> Nullable<Text>,
    }
}

diesel::joinable!(console_sessions -> operators (operator_id));
diesel::joinable!(page_links -> accounts (account_id));
diesel::joinable!(page_sessions -> accounts (account_id));
diesel::joinable!(auto_topups -> accounts (account_id));
diesel::joinable!(webhook_endpoints -> accounts (account_id));
diesel::joinable!(webhook_events -> accounts (account_id));
diesel::joinable!(webhook_deliveries -> webhook_endpoints (endpoint_id));
diesel::joinable!(webhook_deliveries -> webhook_events (event_id));
diesel::joinable!(webhook_attempts -> webhook_deliveries (delivery_id));
diesel::joinable!(account_restrictions -> accounts (account_id));
diesel::joinable!(disputes -> accounts (account_id));
diesel::joinable!(payment_jobs -> accounts (account_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_restrictions,
    disputes,
    payment_jobs,
    accounts,
    api_keys,
    buckets,
    business_verifications,
    checkout_sessions,
    idempotency_records,
    invoice_grants,
    ledger_entries,
    operator_actions,
    operators,
    outbox,
    run_reservations,
    runs,
    stripe_events,
    subscriptions,
    test_clock,
    topup_purchases,
    trial_usage,
    auto_topups,
    webhook_endpoints,
    webhook_events,
    webhook_deliveries,
    webhook_attempts,
    page_links,
    page_sessions,
    console_sessions,
    members,
);
