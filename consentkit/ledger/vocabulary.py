"""The words a ledger record is made of: what happened (``Action``) and how it was collected
(``Method``). Both are ``StrEnum`` members, so they compare equal to, and serialise as, the plain
strings stored in the ledger (see the record fields in the README's ledger section)."""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    """What a record says happened."""

    ACCEPT_ALL = "accept_all"
    REJECT_ALL = "reject_all"
    SAVE = "save"
    WITHDRAW = "withdraw"
    GPC = "gpc"
    EXPIRE = "expire"
    RECORD = "record"  # recorded through ``kit.record`` (not a cookie choice)
    ERASE = "erase"  # an operator de-identified a subject's records


class Method(StrEnum):
    """How a record's consent was collected."""

    BANNER = "banner"
    PREFERENCES = "preferences"
    NO_JS_FORM = "no_js_form"
    API = "api"
    SIGNAL = "signal"
    OPERATOR = "operator"


#: The actions a visitor can post to ``POST /consent``.
VISITOR_ACTIONS: tuple[Action, ...] = (Action.ACCEPT_ALL, Action.REJECT_ALL, Action.SAVE, Action.WITHDRAW)
#: The methods a JSON decision may name (a form post is always ``no_js_form``).
JSON_METHODS: tuple[Method, ...] = (Method.BANNER, Method.PREFERENCES)
#: What ``kit.record`` accepts.
RECORD_ACTIONS: tuple[Action, ...] = (Action.RECORD, Action.WITHDRAW)
RECORD_METHODS: tuple[Method, ...] = (Method.API, Method.SIGNAL, Method.OPERATOR)
#: Every value, as stored.
ACTIONS: frozenset[str] = frozenset(a.value for a in Action)
METHODS: frozenset[str] = frozenset(m.value for m in Method)
