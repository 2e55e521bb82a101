"""Hand-written SQL for the queue's hot path (``labeling.services.queue``: next and submit).

Why not the ORM here: next + submit run once per judgment, and building their queries through the ORM cost
more than running them (about 18 ms of Python per judgment beside 12 ms in the database, measured with
``bench/queue_throughput.py``). These statements are fixed strings that run on PostgreSQL and on SQLite (the
embedded default: there the row-lock clauses from ``labeling.locks`` are empty, IMMEDIATE transactions
serialise writers). Values go in through each model field's ``get_db_prep_value`` and come back through its
converters, so they read and write exactly what the ORM would. Rows become model instances with
``Model.from_db``: a column not selected is deferred and loads on first access, as with ``.only()``.
"""
from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from weakref import WeakKeyDictionary

from django.db import connection
from django.db.models import Model

from ..locks import slot_and_item_lock_sql, slot_pick_lock_sql
from ..models import Assignment, Campaign, ComparisonItem, Judgment

SLOT_FIELDS = tuple(f.attname for f in Assignment._meta.concrete_fields)
ITEM_FIELDS = ("id", "campaign_id", "round_id", "kind", "status", "is_gold", "gold_answer")
CAMPAIGN_FIELDS = tuple(f.attname for f in Campaign._meta.concrete_fields)
JUDGMENT_INSERT = (
    "campaign_id", "round_id", "item_id", "assignment_id", "annotator_id", "source", "source_name", "kind",
    "winner_id", "tie", "both_bad", "strength", "ranking", "rationale", "time_spent_ms", "shown_order", "client_id",
    "created_at",
)


# Names of the statements prepared on each PostgreSQL connection (keyed by the driver's connection object, so a
# new connection starts empty). Prepared statements survive a rollback; they live as long as the session.
_prepared: WeakKeyDictionary = WeakKeyDictionary()
_PARAM = re.compile(r"%\((\w+)\)s")


def execute(cursor, name: str, sql: str, params: dict) -> None:
    """Run ``sql`` (with ``%(name)s`` parameters). On PostgreSQL it is prepared once per connection and then
    EXECUTEd: planning these statements (joins, subqueries) cost more than running them, on every call. The
    EXECUTE still goes through Django's cursor, so it is logged and counted like any query."""
    if connection.vendor != "postgresql":
        cursor.execute(sql, params)
        return
    order = list(dict.fromkeys(_PARAM.findall(sql)))
    done = _prepared.setdefault(connection.connection, set())
    if name not in done:
        positional = _PARAM.sub(lambda m: f"${order.index(m.group(1)) + 1}", sql)
        cursor.execute(f"PREPARE {name} AS {positional}")
        done.add(name)
    cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(order))})" if order else f"EXECUTE {name}",
                   [params[n] for n in order])


def next_begin(*, campaign_id: int, user_id: int) -> tuple[bool, bool, str]:
    """The first statement of ``next``'s transaction: whether the user is an annotator of the campaign, whether
    they are paused and why, read now and never cached (a pause set a moment ago must stop the very next
    request). On PostgreSQL the same statement lets this transaction's COMMIT return before its WAL reaches the
    disk (``synchronous_commit`` off for this transaction only): a crash can then lose the last fraction of a
    second of leases, which leaves those slots free exactly as if their leases had expired (a late submit is
    still accepted while nobody else took the slot). Judgments are always committed durably. Waiting for that
    flush cost more than the rest of ``next`` on a loaded disk."""
    async_commit = ", set_config('synchronous_commit', 'off', true)" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        execute(
            cursor, "lw_next_begin",
            "SELECT max(CASE WHEN m.role = 'annotator' THEN 1 ELSE 0 END),"
            " max(CASE WHEN m.role = 'annotator' AND m.paused THEN 1 ELSE 0 END),"
            f" max(CASE WHEN m.role = 'annotator' THEN m.pause_reason END){async_commit}"
            " FROM labeling_membership m WHERE m.campaign_id = %(campaign)s AND m.user_id = %(user)s",
            {"campaign": campaign_id, "user": user_id},
        )
        annotator, paused, reason = cursor.fetchone()[:3]
    return bool(annotator), bool(paused), reason or ""


def _columns(model: type[Model], names: tuple[str, ...], alias: str) -> str:
    return ", ".join(f"{alias}.{model._meta.get_field(n).column}" for n in names)


@cache
def _converters(model: type[Model], names: tuple[str, ...], vendor: str) -> tuple:
    """Per column, the functions the ORM would apply to a value read from this database (vendor: the key)."""
    out = []
    for name in names:
        field = model._meta.get_field(name)
        col = field.get_col(model._meta.db_table)
        out.append((col, tuple(connection.ops.get_db_converters(col) + field.get_db_converters(connection))))
    return tuple(out)


def instance(model: type[Model], names: tuple[str, ...], values) -> Model:
    """A model instance from ``values`` of ``names`` (in the model's concrete-field order)."""
    converted = []
    for value, (col, funcs) in zip(values, _converters(model, names, connection.vendor), strict=True):
        for func in funcs:
            value = func(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def prep(model: type[Model], name: str, value: Any) -> Any:
    """``value`` as the database takes it for ``model.name`` (JSON, UUID and datetime differ by vendor)."""
    return model._meta.get_field(name).get_db_prep_value(value, connection)


def _shuffled_responses(target: str) -> str:
    """The item's response ids in a random order, as JSON: the order this slot shows them in."""
    if connection.vendor == "postgresql":
        return (
            "(SELECT jsonb_agg(r.response_id ORDER BY random()) FROM labeling_itemresponse r "
            f"WHERE r.item_id = {target}.item_id)"
        )
    return (
        "(SELECT json_group_array(response_id) FROM (SELECT r.response_id FROM labeling_itemresponse r "
        f"WHERE r.item_id = {target}.item_id ORDER BY random()))"
    )


def held_renew_sql(n_exclude: int) -> str:
    """Renew the oldest slot the annotator holds in an open round (and does not show already)."""
    excl = f" AND a.id NOT IN ({', '.join(f'%(x{i})s' for i in range(n_exclude))})" if n_exclude else ""
    return (
        "UPDATE labeling_assignment SET lease_expires_at = %(expires)s WHERE id = ("
        " SELECT a.id FROM labeling_assignment a JOIN labeling_round r ON r.id = a.round_id"
        " WHERE a.campaign_id = %(campaign)s AND a.annotator_id = %(user)s AND a.state = 'leased'"
        f" AND r.status = 'open'{excl} ORDER BY a.id LIMIT 1)"
        # Re-checked on the row as it is once any concurrent submit of it committed: never renew a done slot.
        " AND annotator_id = %(user)s AND state = 'leased'"
        f" RETURNING {_columns(Assignment, SLOT_FIELDS, 'labeling_assignment')}"
    )


def _lease_sql(pick: str, also: str = "") -> str:
    return (
        "UPDATE labeling_assignment SET annotator_id = %(user)s, state = 'leased', leased_at = %(now)s,"
        f" lease_expires_at = %(expires)s, shown_order = {_shuffled_responses('labeling_assignment')}"
        f" WHERE id = ({pick}){also}"
        f" RETURNING {_columns(Assignment, SLOT_FIELDS, 'labeling_assignment')}"
    )


# The first free (or expired) slot, in item order, of an ordinary item in an open round that the annotator has
# neither held nor skipped; gold items are left out (served by the gold path only). Locked, skipping locked rows.
_FREE_PICK = (
    "SELECT a.id FROM labeling_assignment a"
    " WHERE a.campaign_id = %(campaign)s"
    " AND (a.state = 'available' OR (a.state = 'leased' AND a.lease_expires_at < %(now)s))"
    " AND a.round_id IN (SELECT r.id FROM labeling_round r WHERE r.campaign_id = %(campaign)s AND r.status = 'open')"
    " AND a.item_id NOT IN (SELECT g.id FROM labeling_comparisonitem g WHERE g.campaign_id = %(campaign)s AND g.is_gold)"
    " AND NOT EXISTS (SELECT 1 FROM labeling_assignment o WHERE o.item_id = a.item_id AND o.annotator_id = %(user)s)"
    " AND NOT EXISTS (SELECT 1 FROM labeling_itemskip s WHERE s.item_id = a.item_id AND s.annotator_id = %(user)s)"
    " ORDER BY a.item_id, a.id LIMIT 1"
)
# How many slots the annotator holds in open rounds (the lease cap with ``exclude``).
HELD_COUNT = (
    "SELECT count(*) FROM labeling_assignment h JOIN labeling_round hr ON hr.id = h.round_id"
    " WHERE h.campaign_id = %(campaign)s AND h.annotator_id = %(user)s AND h.state = 'leased' AND hr.status = 'open'"
)


def lease_free_sql() -> str:
    """Lease the free slot ``_FREE_PICK`` finds."""
    return _lease_sql(_FREE_PICK + slot_pick_lock_sql("a"))


def next_in_one_statement() -> bool:
    """Whether ``next_sql`` runs here: it needs data-modifying CTEs (PostgreSQL)."""
    return connection.vendor == "postgresql"


def next_sql(n_exclude: int) -> str:
    """``next`` without gold in one statement: renew the held slot (``held_renew_sql``) or, when there is none
    (and, with ``exclude``, fewer than ``%(cap)s`` are held), lease a free one (``lease_free_sql``). The two
    never touch the same row: one takes the annotator's slots, the other slots of items they hold none of."""
    cap = f" AND ({HELD_COUNT}) < %(cap)s" if n_exclude else ""
    fresh = _lease_sql(_FREE_PICK + slot_pick_lock_sql("a"), also=f" AND NOT EXISTS (SELECT 1 FROM held){cap}")
    cols = ", ".join(Assignment._meta.get_field(n).column for n in SLOT_FIELDS)
    return (
        f"WITH held AS ({held_renew_sql(n_exclude)}), fresh AS ({fresh})"
        f" SELECT {cols} FROM held UNION ALL SELECT {cols} FROM fresh"
    )


def lease_slot_sql() -> str:
    """Lease one given slot (the caller picked and locked it)."""
    return _lease_sql("%(slot)s")


def submit_lock_sql() -> str:
    """The slot with its item, campaign and round target, and whether the user is an annotator of the campaign
    (read now, never cached). Locks the slot and then its item."""
    return (
        f"SELECT {_columns(Assignment, SLOT_FIELDS, 'a')}, {_columns(ComparisonItem, ITEM_FIELDS, 'i')},"
        f" {_columns(Campaign, CAMPAIGN_FIELDS, 'c')}, r.target_judgments,"
        " EXISTS (SELECT 1 FROM labeling_membership m WHERE m.campaign_id = a.campaign_id"
        " AND m.user_id = %(user)s AND m.role = 'annotator')"
        " FROM labeling_assignment a JOIN labeling_comparisonitem i ON i.id = a.item_id"
        " JOIN labeling_campaign c ON c.id = a.campaign_id JOIN labeling_round r ON r.id = a.round_id"
        f" WHERE a.id = %(slot)s{slot_and_item_lock_sql('a', 'i')}"
    )


def submit_lock(*, slot_id: int, user_id: int) -> tuple[Assignment, ComparisonItem, Campaign, int | None, bool] | None:
    with connection.cursor() as cursor:
        execute(cursor, "lw_submit_lock", submit_lock_sql(), {"slot": slot_id, "user": user_id})
        row = cursor.fetchone()
    if row is None:
        return None
    a, i = len(SLOT_FIELDS), len(SLOT_FIELDS) + len(ITEM_FIELDS)
    c = i + len(CAMPAIGN_FIELDS)
    slot = instance(Assignment, SLOT_FIELDS, row[:a])
    item = instance(ComparisonItem, ITEM_FIELDS, row[a:i])
    campaign = instance(Campaign, CAMPAIGN_FIELDS, row[i:c])
    slot.campaign, slot.item = campaign, item
    return slot, item, campaign, row[c], bool(row[c + 1])


_OPEN_SLOTS = (  # the item's status from its other slots (the submitted one is done)
    "CASE WHEN EXISTS (SELECT 1 FROM labeling_assignment o WHERE o.item_id = %(item_id)s AND o.state <> 'done'"
    " AND o.id <> %(assignment_id)s) THEN 'open' ELSE 'complete' END"
)
_COMPLETE = (
    "UPDATE labeling_assignment SET annotator_id = %(annotator_id)s, state = 'done', completed_at = %(created_at)s,"
    " shown_order = %(shown_order)s WHERE id = %(assignment_id)s"
)
_INSERT = (
    f"INSERT INTO labeling_judgment ({', '.join(Judgment._meta.get_field(n).column for n in JUDGMENT_INSERT)})"
    f" VALUES ({', '.join(f'%({n})s' for n in JUDGMENT_INSERT)}) RETURNING id"
)
_ITEM_STATUS = (
    f"UPDATE labeling_comparisonitem SET status = {_OPEN_SLOTS}"
    f" WHERE id = %(item_id)s AND status <> 'retired' AND status <> {_OPEN_SLOTS}"
)
_EARLIER = (
    "SELECT id, winner_id, shown_order, ranking, tie, kind FROM labeling_judgment"
    " WHERE campaign_id = %(campaign_id)s AND annotator_id = %(annotator_id)s ORDER BY id DESC LIMIT %(n)s"
)
# PostgreSQL does the four in one statement (data-modifying CTEs). Every part reads the snapshot taken as the
# statement starts, after the caller locked the slot and the item: so the status looks at the other slots, and
# the earlier judgments do not include the one inserted here.
_SUBMIT_PG = (
    f"WITH done AS ({_COMPLETE}), j AS ({_INSERT}), i AS ({_ITEM_STATUS})"
    " SELECT (SELECT id FROM j), (SELECT jsonb_agg(jsonb_build_array(e.winner_id, e.shown_order, e.ranking, e.tie,"
    f" e.kind) ORDER BY e.id DESC) FROM ({_EARLIER}) e)"
)


def _earlier_rows(rows) -> list[dict]:
    keys = ("winner_id", "shown_order", "ranking", "tie", "kind")
    out = [dict(zip(keys, row, strict=True)) for row in rows]
    for row in out:
        for key in ("shown_order", "ranking"):
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
        row["tie"] = bool(row["tie"])
    return out


def submit_write(*, judgment: Judgment, n_earlier: int) -> list[dict]:
    """Complete the judgment's slot, INSERT the judgment (giving it its id), set the item's status from its
    other slots, and return the annotator's ``n_earlier`` judgments in the campaign before this one, newest
    first (for the streak checks). The caller holds the slot's and the item's locks."""
    params = {n: prep(Judgment, n, getattr(judgment, n)) for n in JUDGMENT_INSERT}
    params["n"] = n_earlier
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            execute(cursor, "lw_submit_write", _SUBMIT_PG, params)
            judgment.pk, earlier = cursor.fetchone()
            earlier = json.loads(earlier) if isinstance(earlier, str) else earlier or []
        else:
            cursor.execute(_EARLIER, params)
            earlier = [row[1:] for row in cursor.fetchall()]
            cursor.execute(_COMPLETE, params)
            cursor.execute(_INSERT, params)
            judgment.pk = cursor.fetchone()[0]
            cursor.execute(_ITEM_STATUS, params)
    judgment._state.adding = False
    judgment._state.db = connection.alias
    return _earlier_rows(earlier)


def item_status_refresh(*, item_id: int) -> None:
    """Complete the item once none of its slots is open, reopen it when one is; a retired item stays retired.
    One statement, which writes only on a change. The caller holds the item's lock."""
    open_slots = (
        "CASE WHEN EXISTS (SELECT 1 FROM labeling_assignment o WHERE o.item_id = %(item)s AND o.state <> 'done')"
        " THEN 'open' ELSE 'complete' END"
    )
    with connection.cursor() as cursor:
        execute(
            cursor, "lw_item_status",
            f"UPDATE labeling_comparisonitem SET status = {open_slots}"
            f" WHERE id = %(item)s AND status <> 'retired' AND status <> {open_slots}",
            {"item": item_id},
        )


def lease(name: str, sql: str, params: dict) -> Assignment | None:
    with connection.cursor() as cursor:
        execute(cursor, name, sql, params)
        row = cursor.fetchone()
    return None if row is None else instance(Assignment, SLOT_FIELDS, row)
