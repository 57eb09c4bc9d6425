"""``ocs account history | statement | records | sessions | terminate``: an account's past
and its live sessions, from the same streams and scripts as the admin API.

``--from`` / ``--to`` take an ISO 8601 time (a date alone is its midnight in
the machine's zone; give the offset to be exact), unix seconds, ``now`` or
``-7d``. Money is printed in the currency's units, times in the policies'
zone; ``--json`` prints the integers.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from ocs.cli import human, values
from ocs.cli.common import display_zone, fail, run_change, run_with_store

if TYPE_CHECKING:
    from ocs.accounts import Accounts

_FROM = "from (ISO 8601, unix seconds, now, -7d; default: a week before --to)"


def _window(since: int | None, until: int | None, default_days: int) -> tuple[int, int]:
    to_s = until if until is not None else int(time.time())
    from_s = since if since is not None else to_s - default_days * 86400
    if to_s < from_s:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    return from_s * 1000, to_s * 1000 + 999


def _window_options(f: Any) -> Any:
    f = click.option(
        "--to",
        "until",
        default=None,
        callback=values.callback(values.instant),
        help="until (default: now)",
    )(f)
    f = click.option(
        "--from", "since", default=None, callback=values.callback(values.instant), help=_FROM
    )(f)
    return f


@click.command("history")
@click.argument("ref", callback=values.callback(values.account_ref))
@_window_options
@click.option("--limit", type=values.COUNT, default=1000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line (integers)")
@click.pass_obj
def history(
    obj: dict[str, Any], ref: str, since: int | None, until: int | None, limit: int, as_json: bool
) -> None:
    """The audit trail of an account: who changed what, when, why, before and after."""
    from ocs.audit import read_history

    from_ms, to_ms = _window(since, until, 3650)
    zone = display_zone(obj)

    async def go(accounts: Accounts) -> None:
        acct = await accounts.resolve(ref)
        entries = await read_history(
            accounts.redis, accounts.partitions, acct, from_ms, to_ms, limit=limit
        )
        for e in entries:
            if as_json:
                click.echo(json.dumps(e.view(), sort_keys=True))
                continue
            cur = e.currency
            what = ""
            if e.bucket:
                what = (
                    f" {e.bucket} {human.amount(e.before or 0, e.unit, cur)}"
                    f" -> {human.amount(e.after or 0, e.unit, cur)}"
                )
            for key in ("from", "to", "identity", "session"):
                if key in e.details:
                    what += f" {key} {e.details[key]}"
            change = f" {human.signed_money(e.money_change, cur)}" if e.money_change else ""
            why = f" reason {e.reason!r}" if e.reason else ""
            refd = f" ref {e.reference}" if e.reference else ""
            click.echo(
                f"{human.when_ms(e.at_ms, zone)}  {e.op:<15}{change}{what}  by {e.who} "
                f"({e.via}){why}{refd}"
            )

    run_with_store(obj, go)


@click.command("statement")
@click.argument("ref", callback=values.callback(values.account_ref))
@_window_options
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (integers)")
@click.pass_obj
def statement(
    obj: dict[str, Any], ref: str, since: int | None, until: int | None, as_json: bool
) -> None:
    """Opening balance, every charge and operator change in time order, closing balance
    (opening + changes = closing, exactly)."""
    from ocs import statement as statements
    from ocs.history import ScanLimit, Trimmed

    from_ms, to_ms = _window(since, until, 30)
    zone = display_zone(obj)

    async def go(accounts: Accounts) -> None:
        acct = await accounts.resolve(ref)
        try:
            st = await statements.build(
                accounts.redis, accounts.partitions, acct, from_ms, to_ms, scripts=accounts.scripts
            )
        except (Trimmed, ScanLimit) as exc:
            fail(f"account statement: {exc}")
        if as_json:
            click.echo(json.dumps(_statement_json(st), indent=2, sort_keys=True))
            return
        cur = st.currency
        click.echo(
            f"statement  {st.account}  {human.when_ms(st.from_ms, zone)} .. "
            f"{human.when_ms(st.to_ms, zone)}"
        )
        click.echo(f"opening    {human.money(st.opening, cur):>18}")
        running = st.opening
        for ln in st.lines:
            running += ln.change
            label = _label(ln, cur)
            click.echo(
                f"{human.when_ms(ln.at_ms, zone)}  {human.signed_money(ln.change, cur):>14}  "
                f"{human.money(running, cur):>14}  {label}"
            )
        click.echo(f"closing    {human.money(st.closing, cur):>18}")
        if st.open_sessions:
            click.echo(
                f"pending    {human.money(st.pending, cur):>18}  charged so far by "
                f"{st.open_sessions} open session(s), booked when they close"
            )

    run_with_store(obj, go)


def _label(ln: Any, cur: str) -> str:
    """What a statement line is: the session, or the bucket and its own change."""
    d = ln.detail
    if ln.source == "record":
        return f"{ln.kind} {d.get('session', '')}".strip()
    label = str(ln.kind)
    if d.get("bucket") and d.get("bucket") != "main":
        label += f" {d['bucket']}"
        if d.get("unit") not in (None, "money") and d.get("delta") is not None:
            label += f" {'+' if d['delta'] > 0 else ''}{human.amount(d['delta'], d['unit'], cur)}"
    for key in ("from", "to", "session"):
        if key in d:
            label += f" {key} {d[key]}"
    return label


def _statement_json(st: Any) -> dict[str, Any]:
    return {
        "account": st.account,
        "currency": st.currency,
        "from_ms": st.from_ms,
        "to_ms": st.to_ms,
        "opening": st.opening,
        "closing": st.closing,
        "pending": st.pending,
        "open_sessions": st.open_sessions,
        "lines": [
            {
                "at_ms": ln.at_ms,
                "entry_id": ln.entry_id,
                "source": ln.source,
                "kind": ln.kind,
                "change": ln.change,
                "detail": ln.detail,
            }
            for ln in st.lines
        ],
    }


@click.command("records")
@click.argument("ref", callback=values.callback(values.account_ref))
@_window_options
@click.option("--limit", type=values.COUNT, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per line (integers)")
@click.pass_obj
def records(
    obj: dict[str, Any], ref: str, since: int | None, until: int | None, limit: int, as_json: bool
) -> None:
    """Charged records of an account (sessions, direct debits, refunds), oldest first."""
    from ocs.history import Trimmed, records_page
    from ocs.statement import record_detail

    from_ms, to_ms = _window(since, until, 7)
    zone = display_zone(obj)

    async def go(accounts: Accounts) -> None:
        acct = await accounts.resolve(ref)
        try:
            page = await records_page(
                accounts.redis, accounts.partitions, acct, from_ms, to_ms, None, limit
            )
        except Trimmed as exc:
            fail(f"account records: {exc}")
        for entry_id, rec in page.records:
            if as_json:
                view = {
                    "entry_id": entry_id,
                    "kind": rec.kind,
                    "currency": rec.currency,
                    "net": rec.net,
                    **record_detail(rec),
                }
                click.echo(json.dumps(view, sort_keys=True))
                continue
            used = ", ".join(
                f"{s.name or s.service} "
                + " ".join(human.amount(v, k, rec.currency) for k, v in s.used.items() if v)
                for s in rec.services
            )
            click.echo(
                f"{human.when(rec.end, zone)}  {rec.kind:<8} "
                f"{human.money(rec.charged, rec.currency):>14}  {rec.session}  {used}"
            )
        if page.next_cursor is not None and not as_json:
            click.echo(
                f"(more: narrow --from/--to or raise --limit; next after {page.next_cursor})"
            )

    run_with_store(obj, go)


@click.command("sessions")
@click.argument("ref", callback=values.callback(values.account_ref))
@click.option("--json", "as_json", is_flag=True, help="machine-readable output (integers)")
@click.pass_obj
def sessions(obj: dict[str, Any], ref: str, as_json: bool) -> None:
    """Live sessions of an account: gateway, start, what each service used and was charged."""
    zone = display_zone(obj)

    async def go(accounts: Accounts) -> None:
        view = await accounts.show(await accounts.resolve(ref))
        if as_json:
            click.echo(json.dumps(view["sessions"], indent=2, sort_keys=True))
            return
        cur = str(view.get("currency", ""))
        for s in view["sessions"]:
            charged = sum(svc["charged"] for svc in s["services"].values())
            click.echo(
                f"{s['session']}  owner {s['owner']}  since {human.when(s['started'], zone)}"
                f"  charged {human.money(charged, cur)}"
            )
        if not view["sessions"]:
            click.echo("no live session")

    run_with_store(obj, go)


@click.command("terminate")
@click.argument("ref", callback=values.callback(values.account_ref))
@click.argument("session")
@click.option(
    "--reason",
    default="",
    callback=values.callback(values.reason),
    help="why (kept in the audit trail)",
)
@click.option(
    "--ref",
    "change_ref",
    default="",
    callback=values.callback(values.reference),
    help="idempotency reference: a repeat changes nothing",
)
@click.pass_obj
def terminate(obj: dict[str, Any], ref: str, session: str, reason: str, change_ref: str) -> None:
    """End one live SESSION: its gateway is told (Gy ASR, RADIUS Disconnect, Nchf abort)."""
    from ocs.audit import Actor

    if not session or len(session) > 1024 or not session.isprintable():
        raise click.BadParameter(f"{session[:40]!r}: expected a session id", param_hint="SESSION")

    run_change(
        obj,
        ref,
        change_ref,
        lambda accounts, acct: accounts.terminate_session(
            acct, session, actor=Actor.cli(reason), ref=change_ref
        ),
        lambda reply: f"asked {reply.get('owner')} to end {session}",
    )
