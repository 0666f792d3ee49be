"""Drive the running service through a client generated from its OpenAPI document by
openapi-python-client, asserting on typed fields (attrs models and enums), as an API client would.
Usage: python tools/sdk_check.py BASE_URL INTERNAL_TOKEN"""

import sys

from credits_client import AuthenticatedClient
from credits_client.api.accounts import create_account, get_account, get_balance, list_ledger_entries, list_trials
from credits_client.api.catalog import list_models, list_plans
from credits_client.api.runs import complete_run, quote_run, start_run
from credits_client.models import (AccountView, BalanceView, CompleteBody, CreateAccount, EntryType, LedgerPage,
                                   PlanStatus, QuoteView, RunBody, RunStatus, RunView, TrialList)

base, token = sys.argv[1], sys.argv[2]
client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

plans = list_plans.sync(client=client)
assert [p.id for p in plans.plans][:2] == ["free", "creator"], plans
models = list_models.sync(client=client)
assert any(m.id == "flux-schnell" and m.credits_ == 2 for m in models.models), models

account = create_account.sync(client=client, body=CreateAccount(email="sdk@example.test", name="SDK"))
assert isinstance(account, AccountView) and account.plan == "free" and account.status == PlanStatus.ACTIVE, account
canvas = client.with_headers({"X-Account-Id": str(account.id)})

shown = get_account.sync(client=canvas)
assert isinstance(shown, AccountView) and shown.id == account.id and shown.api_access is False, shown

quote = quote_run.sync(client=canvas, body=RunBody(model="flux-schnell", images=4))
assert isinstance(quote, QuoteView) and quote.cost == 8 and quote.allowed is True and quote.denial is None, quote

run = start_run.sync(client=canvas, body=RunBody(model="flux-schnell", images=4), idempotency_key="sdk-run-1")
assert isinstance(run, RunView) and run.status == RunStatus.HELD and run.cost == 8, run

done = complete_run.sync(id=str(run.id), client=canvas, body=CompleteBody(images=3))
assert isinstance(done, RunView) and done.status == RunStatus.CAPTURED and done.captured_credits == 6, done

balance = get_balance.sync(client=canvas)
assert isinstance(balance, BalanceView), balance
assert (balance.available, balance.held, balance.total) == (244, 0, 244), balance
assert [b.kind.value for b in balance.buckets] == ["lifetime"], balance.buckets

ledger = list_ledger_entries.sync(client=canvas)
assert isinstance(ledger, LedgerPage), ledger
assert [(e.type_, e.credits_) for e in ledger.entries] == [(EntryType.DEBIT, -6), (EntryType.GRANT, 250)], ledger.entries
assert ledger.entries[0].run_id == run.id

trials = list_trials.sync(client=canvas)
assert isinstance(trials, TrialList) and {t.model for t in trials.trials} >= {"flux-pro", "kling-2.1"}, trials

print("sdk-check: the generated Python client drove the service: 1 passed, 0 failed")
