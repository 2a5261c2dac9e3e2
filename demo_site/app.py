"""The demo provider site, Northwind Telecom: ``create_app(ledger=...)``.

The site is built once per consent policy (``consent.toml``, revision 1, and ``consent-v2.toml``,
revision 2), each with its own :class:`consentkit.ConsentKit` on the same ledger and with the
same secret, and :class:`PolicySwitch` — a tiny ASGI dispatcher — sends every request to the
active one. "Demo controls" (``/demo``) flips it, so that a visitor who decided under revision
1 sees the banner again, with its "our policy changed" notice, as after a real policy update.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from consentkit import ConsentKit, ConsentkitError, Policy
from consentkit.audit import hash_password

from .analytics import PageViews, analytics_path_for
from .site import build_site
from .visit_as import as_if_from

HERE = Path(__file__).parent
POLICY_FILES = (HERE / "consent.toml", HERE / "consent-v2.toml")
AUDIT_USER = "auditor"
AUDIT_PASSWORD_ENV = "DEMO_AUDIT_PASSWORD"

log = logging.getLogger("demo_site")


def resolve_audit_password(explicit: str | None = None) -> tuple[str, bool]:
    """The auditor's password: ``explicit``, else ``$DEMO_AUDIT_PASSWORD``, else a fresh random one.

    Returns ``(password, generated)``. There is never a fixed default.
    """
    password = explicit or os.environ.get(AUDIT_PASSWORD_ENV)
    if password:
        return password, False
    return secrets.token_urlsafe(18), True


def secret_keys_from_env() -> list[str]:
    """``$CONSENTKIT_SECRET``: one key, or several (newest first) separated by commas or spaces."""
    return [k for k in re.split(r"[,\s]+", os.environ.get("CONSENTKIT_SECRET", "")) if k]


def display_url(url: str) -> str:
    """A ledger URL with its password hidden, for pages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def checkpoint_setup(ledger_url: str) -> tuple[Path, Path, str] | None:
    """For an SQLite ledger: its signing key file (made on first use, mode 0600), the file its
    checkpoints are appended to, and the verifier key anyone checks them with."""
    if not ledger_url.startswith("sqlite:///"):
        return None
    from consentkit.ledger.keys import SigningKey, generate_key, read_private_key, write_private_key

    base = Path(ledger_url[len("sqlite:///") :])
    key_file = base.with_name(base.name + ".checkpoint-key")
    if not key_file.exists():
        write_private_key(key_file, generate_key("northwind-demo")[0])
    verifier = SigningKey.parse(read_private_key(key_file)).verifier.text
    return key_file, base.with_name(base.name + ".checkpoints.txt"), verifier


class PolicySwitch:
    """An ASGI app that sends each request to the site of the active policy revision.

    It also runs the lifespan for all of them: the kits' ledgers are opened at startup and
    closed at shutdown (the sites' own Starlette lifespans are not used).
    """

    def __init__(self, ledger_url: str, analytics: PageViews) -> None:
        self.sites: dict[int, Starlette] = {}
        self.kits: dict[int, ConsentKit] = {}
        self.active = 0
        self.ledger_url = ledger_url
        self.ledger_display = display_url(ledger_url)
        self.analytics = analytics
        self.verifier_key: str | None = None  # the checkpoints' verifier key, where it signs them

    def add(self, kit: ConsentKit, site: Starlette) -> None:
        revision = kit.policy.revision
        if revision in self.sites:
            raise ValueError(f"two policies with revision {revision}")
        self.sites[revision] = site
        self.kits[revision] = kit
        if not self.active:
            self.active = revision

    @property
    def revisions(self) -> list[int]:
        return sorted(self.sites)

    @property
    def kit(self) -> ConsentKit:
        """The kit of the active policy."""
        return self.kits[self.active]

    @property
    def policy(self) -> Policy:
        return self.kit.policy

    def activate(self, revision: int) -> None:
        """Serve the site of ``revision`` from the next request on."""
        if revision not in self.sites:
            raise ValueError(f"no policy with revision {revision}")
        if revision != self.active:
            log.warning("demo: consent policy revision %d is now active (was %d)", revision, self.active)
        self.active = revision

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "http":
            scope = {**scope, "headers": as_if_from(scope["headers"])}
        await self.sites[self.active](scope, receive, send)

    async def startup(self) -> None:
        for kit in self.kits.values():
            await kit.startup()

    async def aclose(self) -> None:
        for kit in self.kits.values():
            await kit.aclose()
        self.analytics.close()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ConsentkitError as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"consentkit: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    ledger: str = "sqlite:///demo-ledger.db",
    *,
    audit_password: str | None = None,
    secret_keys: Sequence[str] | None = None,
    analytics_path: Path | None = None,
    policy_files: Sequence[Path] = POLICY_FILES,
    cookie_secure: bool = False,
) -> PolicySwitch:
    """The demo site with its consent ledger at ``ledger`` (``sqlite:///…`` or ``postgresql://…``).

    ``audit_password`` is the password of the auditor's desk (user ``auditor``); without it,
    ``$DEMO_AUDIT_PASSWORD``, else a random one that is printed. ``secret_keys`` default to
    ``$CONSENTKIT_SECRET``; with none, the public development key is used (local demo only).
    ``cookie_secure=False`` because the demo runs on plain http://127.0.0.1.
    """
    password, generated = resolve_audit_password(audit_password)
    if generated:
        print(
            f"Auditor's desk: /consent/audit — user {AUDIT_USER}, password {password} "
            f"(generated for this run; set {AUDIT_PASSWORD_ENV} to choose one)",
            flush=True,
        )
    try:
        audit_users = {AUDIT_USER: hash_password(password)}
    except ValueError as exc:
        raise SystemExit(f"demo_site: {AUDIT_PASSWORD_ENV} / --audit-password: {exc}") from None
    keys = list(secret_keys) if secret_keys is not None else secret_keys_from_env()
    analytics = PageViews(analytics_path or analytics_path_for(ledger))
    switch = PolicySwitch(ledger, analytics)
    checkpoints = checkpoint_setup(ledger)
    switch.verifier_key = checkpoints[2] if checkpoints else None
    for n, policy_file in enumerate(policy_files):
        # One kit signs the checkpoints (every minute, into a file beside the ledger): the kits
        # of the policy switch share one ledger, and one log needs one signer.
        signs = checkpoints is not None and n == 0
        kit = ConsentKit(
            policy=Policy.from_toml(policy_file),
            secret_keys=keys or None,
            development=not keys,
            ledger=ledger,
            cookie_secure=cookie_secure,
            audit_users=audit_users,
            checkpoint_key=checkpoints[0] if signs and checkpoints else None,
            checkpoint_every=60,
            checkpoint_sinks=[checkpoints[1]] if signs and checkpoints else (),
        )
        switch.add(kit, build_site(kit, switch=switch, analytics=analytics))
    return switch
