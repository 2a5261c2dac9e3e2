"""``python -m demo_site --host H --port P --ledger URL``."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m demo_site", description="The consentkit demo site.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--ledger",
        default="sqlite:///demo-ledger.db",
        help="ledger URL (sqlite:/// or postgresql://)",
    )
    args = parser.parse_args()
    uvicorn.run(create_app(ledger=args.ledger), host=args.host, port=args.port, log_level="info")


main()
