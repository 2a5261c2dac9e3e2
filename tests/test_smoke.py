"""The quickstart path: undecided, decide, remembered, enforced."""

from conftest import decide


async def test_undecided_visitor_gets_only_essential(client):
    r = await client.get("/")
    assert r.text == "necessary=1 analytics=0 ads=0"


async def test_decision_is_remembered(client):
    r = await decide(client, "save", ["analytics"])
    assert r.status_code == 200
    assert r.json()["purposes"] == {"necessary": True, "analytics": True, "ads": False}
    r = await client.get("/")
    assert r.text == "necessary=1 analytics=1 ads=0"
