"""The README's quickstart runs as written."""

from __future__ import annotations

import re
import shutil

import httpx
from conftest import EXAMPLE_POLICY, ROOT


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block after {heading!r}"
    return match.group(1)


async def run_quickstart(code: str, tmp_path, monkeypatch) -> dict:
    shutil.copy(EXAMPLE_POLICY, tmp_path / "consent.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONSENTKIT_SECRET", "readme-secret-0123456789abcdef")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace


async def test_starlette_quickstart(tmp_path, monkeypatch):
    ns = await run_quickstart(readme_block("### Starlette"), tmp_path, monkeypatch)
    app, kit = ns["app"], ns["kit"]
    # The quickstart is for production (Secure cookie); talk https to it.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as c:
        assert (await c.get("/")).text == "analytics allowed: False"
        assert (await c.get("/ad")).status_code == 403
        r = await c.post("/consent", json={"action": "accept_all"}, headers={"origin": "https://testserver"})
        assert r.status_code == 200 and "Secure" in r.headers["set-cookie"]
        assert (await c.get("/")).text == "analytics allowed: True"
        assert (await c.get("/ad")).text == "<ad>"
    await kit.aclose()
    assert (tmp_path / "consent-ledger.db").exists()


async def test_fastapi_quickstart(tmp_path, monkeypatch):
    starlette_ns = await run_quickstart(readme_block("### Starlette"), tmp_path, monkeypatch)
    code = readme_block("### FastAPI")
    ns = {"kit": starlette_ns["kit"], "get_consent": starlette_ns["get_consent"]}
    exec(compile(code, "README.md", "exec"), ns)
    app = ns["app"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as c:
        assert (await c.get("/")).json() == {"analytics": False}
        assert (await c.get("/ad")).status_code == 403
        await c.post(
            "/consent", json={"action": "save", "granted": ["ads"]}, headers={"origin": "https://testserver"}
        )
        assert (await c.get("/ad")).json() == {"ad": "…"}
        assert (await c.get("/")).json() == {"analytics": False}
    await starlette_ns["kit"].aclose()


async def test_kit_record_example(tmp_path, monkeypatch, capsys):
    ns = await run_quickstart(readme_block("### Starlette"), tmp_path, monkeypatch)
    kit = ns["kit"]
    code = readme_block("### Consents that are not cookies")
    body = "async def example():\n" + "".join(f"    {line}\n" for line in code.splitlines())
    scope = {"kit": kit}
    exec(compile(body, "README.md", "exec"), scope)
    await scope["example"]()
    receipt = capsys.readouterr().out.strip()
    history = await kit.ledger.history("account:48213")
    assert [r.receipt for r in history] == [receipt]
    assert history[0].evidence["checkbox_prechecked"] is False
    assert history[0].purposes == {"sms_marketing": True} and history[0].method == "api"
    assert (await kit.ledger.verify()).ok
    await kit.aclose()
