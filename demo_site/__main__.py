"""``python -m demo_site --host H --port P --ledger URL [--audit-password P]`` (what `make demo` runs)."""

from __future__ import annotations

import argparse
import os

import uvicorn

from .app import AUDIT_PASSWORD_ENV, AUDIT_USER, create_app, display_url, resolve_audit_password


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo_site", description="Northwind Telecom, the consentkit demo site."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--ledger",
        default="sqlite:///demo-ledger.db",
        help="consent ledger URL: sqlite:///path.db or postgresql://user@host/db",
    )
    parser.add_argument(
        "--audit-password",
        default=None,
        help=f"password of the auditor's desk (user {AUDIT_USER}); default ${AUDIT_PASSWORD_ENV}, "
        "else a random one printed at startup",
    )
    args = parser.parse_args()

    password, generated = resolve_audit_password(args.audit_password)
    app = create_app(ledger=args.ledger, audit_password=password)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}"
    if generated:
        where = f"password {password} (generated for this run; set {AUDIT_PASSWORD_ENV} to choose one)"
    elif args.audit_password:
        where = "password from --audit-password"
    else:
        where = f"password from ${AUDIT_PASSWORD_ENV}"
    if os.environ.get("CONSENTKIT_SECRET"):
        secret = "$CONSENTKIT_SECRET"
    else:
        secret = "the public DEVELOPMENT key (set CONSENTKIT_SECRET for anything but a local demo)"
    print(
        f"Northwind Telecom demo: {url}/\n"
        f"  demo controls:   {url}/demo\n"
        f"  auditor's desk:  {url}/consent/audit — user {AUDIT_USER}, {where}\n"
        f"  consent ledger:  {display_url(args.ledger)}\n"
        f"  cookies signed with {secret}"
        + (f"\n  checkpoints:     every minute, verifier key {app.verifier_key}" if app.verifier_key else ""),
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
