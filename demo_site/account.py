"""The fictional signed-in customer and the consents that are not cookies.

SMS and e-mail marketing (Canada's anti-spam law, CASL, wants express consent: the purpose, who
asks, a mailing address and a contact, and that consent can be withdrawn — next to a box that is
not ticked in advance) and call recording are recorded with ``kit.record`` into the same
consent ledger as the cookie choices, with the exact wording the customer saw as evidence.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from consentkit import LedgerRecord

ACCOUNT_ID = "account:1001"
CUSTOMER_NAME = "Dana Whitfield"
CUSTOMER_PHONE = "+1 902-555-0147"
CUSTOMER_EMAIL = "dana.whitfield@example.net"

BUSINESS = "Northwind Telecom Inc."
MAILING_ADDRESS = "1 Harbour Street, Suite 400, Halifax, Nova Scotia B3J 1A1, Canada"
CONTACT = "privacy@northwind.example or 1-800-555-0199"

MARKETING_WORDING = (
    f"I agree to receive offers, plan upgrades and service news about landline, VoIP and call "
    f"analytics services from {BUSINESS}, {MAILING_ADDRESS}, by the channels I tick below. "
    f"Contact: {CONTACT}. You can withdraw your consent at any time: untick the box on this "
    f"page, reply STOP to any text message, or use the unsubscribe link in any e-mail."
)
CALL_RECORDING_WORDING = (
    f"I agree that {BUSINESS}, {MAILING_ADDRESS}, may record my calls with its customer care "
    f"team to check the quality of its service and to train its staff, and keep each recording "
    f"for 90 days. Contact: {CONTACT}. You can withdraw your consent at any time on this page "
    f"or by saying so at the start of a call; your calls are then no longer recorded."
)

# Purpose ids of the account's consents (the same form as the policy's, but not banner purposes).
MARKETING_CHANNELS = {
    "sms_marketing": f"Text messages (SMS) to {CUSTOMER_PHONE}",
    "email_marketing": f"E-mail to {CUSTOMER_EMAIL}",
}
CALL_RECORDING = "call_recording"
CALL_RECORDING_LABEL = "Record my calls with customer care"
ACCOUNT_PURPOSES = (*MARKETING_CHANNELS, CALL_RECORDING)
PURPOSE_TITLES = {
    "sms_marketing": "SMS marketing",
    "email_marketing": "E-mail marketing",
    CALL_RECORDING: "Call recording",
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ip_prefix(host: str | None) -> str | None:
    """The address cut to /24 (IPv4) or /48 (IPv6), as the ledger keeps banner decisions."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@dataclass(frozen=True, slots=True)
class Standing:
    """Where one of the account's consents stands, and the record that put it there."""

    granted: bool
    record: LedgerRecord | None


def standing(records: Iterable[LedgerRecord]) -> dict[str, Standing]:
    """The account's consents now, from its ledger records (oldest first): the last word wins."""
    state = {p: Standing(False, None) for p in ACCOUNT_PURPOSES}
    for rec in records:
        if rec.action not in ("record", "withdraw"):
            continue
        for pid, granted in rec.purposes.items():
            if pid in state:
                state[pid] = Standing(bool(granted), rec)
    return state
