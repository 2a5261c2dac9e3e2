"""The widget's files, served from ``{prefix}/static/`` under content-hashed names.

A name like ``consentkit.3f2a9c1b0d.js`` changes whenever the file does, so browsers may keep it
for a year (``immutable``) and still never run a stale widget. Files are read once, at startup,
and kept gzipped too.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigurationError

WIDGET_FILES = ("consentkit.js", "consentkit.css", "consent-mode.js")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def widget_dir() -> Path:
    """Where the widget's files are: inside the installed package, or the checkout's ``widget/``."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "widget"
    if installed.is_dir():
        return installed
    return package.parent / "widget"


@dataclass(frozen=True, slots=True)
class Asset:
    """One widget file, ready to serve."""

    name: str  # the hashed name, e.g. consentkit.3f2a9c1b0d.js
    body: bytes
    gzipped: bytes
    content_type: str
    etag: str


class WidgetAssets:
    """The widget's files by logical name (``consentkit.js``) and by hashed name."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or widget_dir()
        self.by_logical: dict[str, Asset] = {}
        self.by_hashed: dict[str, Asset] = {}
        for logical in WIDGET_FILES:
            path = directory / logical
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise ConfigurationError(
                    f"the consentkit widget file {path} is missing ({exc.strerror}); reinstall consentkit"
                ) from None
            digest = hashlib.sha256(body).hexdigest()[:12]
            stem, _, ext = logical.rpartition(".")
            asset = Asset(
                name=f"{stem}.{digest}.{ext}",
                body=body,
                gzipped=gzip.compress(body, compresslevel=9, mtime=0),
                content_type=_TYPES[f".{ext}"],
                etag=f'"{digest}"',
            )
            self.by_logical[logical] = asset
            self.by_hashed[asset.name] = asset

    def url(self, prefix: str, logical: str) -> str:
        """The URL of a widget file under the mount."""
        return f"{prefix}/static/{self.by_logical[logical].name}"
