"""The browser chat widget end to end: the real server, headless Chromium, Playwright.

Every wait is event-driven (Playwright's auto-waiting ``expect``); the widget is
driven only through the page (keyboard, clicks) and its socket through the
wire protocol.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.helpers import Api, RunningServer, settings_for
from tests.standin_anthropic import AnthropicStandIn, Text
from tests.web.browser import Page, Pages, chromium, expect

DOCS = Path(__file__).resolve().parents[2] / "docs"
WIDGET = "window.realtimeAgentWidgets[0]"
expect.set_options(timeout=10_000)


@pytest.fixture
async def pages() -> AsyncIterator[Pages]:
    """A headless Chromium; fails the test if any page throws an uncaught error."""
    async with chromium() as browser:
        opened = Pages(browser)
        yield opened
        assert not opened.errors, opened.errors


def hash_params(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).fragment).items()}


def viewer_link(base_url: str, created: dict[str, Any]) -> str:
    return f"{base_url}/#session={created['session_id']}&token={created['viewer_token']}&view=1"


async def open_owner(pages: Pages, base_url: str, **size: int) -> Page:
    """The full page with no session: it creates one; wait until it is connected."""
    page = await pages.open(f"{base_url}/", **size)
    await expect(page.locator(".ra-status")).to_have_text("Idle")
    return page


async def send(page: Page, text: str) -> None:
    """Type into the message field and press Enter."""
    await page.locator(".ra-input").focus()
    await page.keyboard.insert_text(text)
    await page.keyboard.press("Enter")


async def transcript(api: Api, session_id: str, token: str) -> list[dict[str, Any]]:
    response = await api.http.get(
        f"/agent/session/{session_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def session_json(api: Api, session_id: str, token: str) -> dict[str, Any]:
    response = await api.http.get(
        f"/agent/session/{session_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ask_to_remember(owner: Page) -> None:
    """The demo model answers "remember that ..." with a session_note call, which waits
    for approval at the default autonomy level (1); focus goes to Approve."""
    await send(owner, "remember that the sky is green")
    prompt = owner.locator(".ra-approval")
    await expect(prompt).to_be_visible()
    await expect(prompt.locator(".ra-approval-tool")).to_have_text(["session_note"])
    await expect(prompt.locator(".ra-approval-input")).to_have_text(
        '{\n  "note": "the sky is green"\n}'
    )
    await expect(owner.locator(".ra-status")).to_have_text("Waiting for your approval")
    await expect(prompt.locator(".ra-approve")).to_be_focused()


async def test_owner_streams_and_viewer_follows(
    claude: Api, standin: AnthropicStandIn, pages: Pages
) -> None:
    """Owner creates a session and chats by keyboard; the shared viewer link follows read-only."""
    standin.push(
        Text(["Streaming ", "first ", "words, ", "then **the rest**."], hold_after=2),
        Text(["Queued ", "answer."]),
        Text(["Second ", "reply."]),
    )
    owner = await open_owner(pages, claude.base_url)
    params = hash_params(owner.url)
    assert params["session"].startswith("sess-") and params["token"] and params["viewer"]

    for _ in range(12):  # every control is reachable with Tab
        await owner.keyboard.press("Tab")
        if await owner.evaluate("document.activeElement.classList.contains('ra-input')"):
            break
    else:
        pytest.fail("the message field is not reachable with Tab")
    await owner.keyboard.type("Hello")
    await owner.keyboard.press("Shift+Enter")
    await owner.keyboard.type("agent")
    assert await owner.locator(".ra-input").input_value() == "Hello\nagent"
    await owner.keyboard.press("Enter")

    await expect(owner.locator(".ra-user .ra-body")).to_have_text("Hello\nagent")
    await expect(owner.locator(".ra-assistant.ra-streaming .ra-body")).to_have_text(
        "Streaming first"
    )
    await expect(owner.locator(".ra-status")).to_have_text("Thinking…")
    await expect(owner.locator(".ra-interrupt")).to_be_enabled()
    await send(owner, "And then?")
    await expect(owner.locator(".ra-user .ra-marker").nth(1)).to_have_text("queued (position 1)")

    standin.release()
    replies = owner.locator(".ra-assistant .ra-body")
    await expect(replies).to_have_text(["Streaming first words, then the rest.", "Queued answer."])
    await expect(replies.first.locator("strong")).to_have_text("the rest")
    await expect(owner.locator(".ra-streaming")).to_have_count(0)
    await expect(owner.locator(".ra-status")).to_have_text("Done")
    await expect(owner.locator(".ra-interrupt")).to_be_hidden()
    await expect(owner.locator(".ra-user .ra-marker")).to_have_count(2)
    await expect(owner.locator(".ra-user .ra-marker:visible")).to_have_count(0)

    await owner.locator(".ra-share-button").click()
    link = await owner.locator(".ra-share-link").input_value()
    viewer_token = params["viewer"]
    assert link == f"{claude.base_url}/#session={params['session']}&token={viewer_token}&view=1"
    viewer = await pages.open(link)
    await expect(viewer.locator(".ra-view-only")).to_be_visible()
    await expect(viewer.locator(".ra-assistant .ra-body")).to_have_text(
        ["Streaming first words, then the rest.", "Queued answer."]
    )
    await expect(viewer.locator(".ra-input")).to_be_disabled()
    await expect(viewer.locator(".ra-send")).to_be_disabled()
    await expect(viewer.locator(".ra-interrupt")).to_be_hidden()
    await viewer.locator(".ra-input").focus()
    await viewer.keyboard.type("typing goes nowhere")
    assert await viewer.locator(".ra-input").input_value() == ""
    await expect(owner.locator(".ra-watchers")).to_have_text("2 watching")
    await expect(viewer.locator(".ra-watchers")).to_have_text("2 watching")

    await send(owner, "One more")
    await expect(viewer.locator(".ra-user .ra-body").last).to_have_text("One more")
    await expect(viewer.locator(".ra-assistant .ra-body").last).to_have_text("Second reply.")
    await expect(viewer.locator(".ra-status")).to_have_text("Done")


async def test_viewer_reload_mid_stream_shows_text_once(
    claude: Api, standin: AnthropicStandIn, pages: Pages
) -> None:
    """A viewer reloaded while the reply is held rebuilds from the snapshot, no text twice."""
    chunks = [f"chunk {i:02d} " for i in range(30)]
    standin.push(Text(chunks, hold_after=10))
    created = await claude.create(1)
    owner = await claude.join(created)
    viewer = await pages.open(viewer_link(claude.base_url, created))
    await expect(viewer.locator(".ra-status")).to_have_text("Idle")
    await owner.message("tell me a story", "c-1")
    await expect(viewer.locator(".ra-assistant .ra-body")).to_have_text(
        "".join(chunks[:10]).strip()
    )

    await viewer.reload()
    await expect(viewer.locator(".ra-user .ra-body")).to_have_text("tell me a story")
    await expect(viewer.locator(".ra-status")).to_have_text("Thinking…")
    standin.release()
    await expect(viewer.locator(".ra-status")).to_have_text("Done")
    await expect(viewer.locator(".ra-assistant .ra-body")).to_have_text("".join(chunks).strip())
    text = await viewer.locator(".ra-messages").inner_text()
    assert all(text.count(chunk.strip()) == 1 for chunk in chunks), text
    await owner.until_idle()
    assert await viewer.evaluate(f"{WIDGET}.lastSeq") == owner.events()[-1]["seq"]


async def test_socket_cut_reconnects_with_after_and_no_duplicate(
    claude: Api, standin: AnthropicStandIn, pages: Pages
) -> None:
    """A cut socket shows Reconnecting…, resumes with after=last seq, and misses nothing."""
    chunks = [f"piece {i:02d} " for i in range(30)]
    standin.push(Text(chunks, hold_after=10))
    page = await open_owner(pages, claude.base_url)
    params = hash_params(page.url)
    created = {"session_id": params["session"], "viewer_token": params["viewer"]}
    watcher = await claude.join(created, "viewer")
    await send(page, "stream please")
    reply = page.locator(".ra-assistant .ra-body")
    await expect(reply).to_have_text("".join(chunks[:10]).strip())
    # A mark on the streamed bubble: a resume keeps the element, a rebuild would not.
    await page.locator(".ra-assistant").evaluate("el => { el.dataset.probe = 'kept' }")
    last_seen = await page.evaluate(f"{WIDGET}.lastSeq")

    await page.context.set_offline(True)  # the reconnect waits until the test restores it
    await page.evaluate(f"{WIDGET}.socket.close()")
    await expect(page.locator(".ra-conn")).to_have_text("Reconnecting…")
    standin.release()
    await watcher.until_idle()  # the rest of the reply was streamed while the page was cut off
    await page.context.set_offline(False)

    await expect(page.locator(".ra-conn")).to_be_hidden()
    await expect(page.locator(".ra-status")).to_have_text("Done")
    await expect(reply).to_have_text("".join(chunks).strip())
    await expect(page.locator(".ra-assistant[data-probe='kept']")).to_have_count(1)
    text = await page.locator(".ra-messages").inner_text()
    assert all(text.count(chunk.strip()) == 1 for chunk in chunks), text
    assert f"&after={last_seen}" in await page.evaluate(f"{WIDGET}.socket.url")
    assert await page.evaluate(f"{WIDGET}.lastSeq") == watcher.events()[-1]["seq"]


async def test_model_and_user_html_render_as_text(
    claude: Api, standin: AnthropicStandIn, pages: Pages
) -> None:
    """HTML from the model or a user is shown literally; Markdown is rendered safely."""
    evil_img = '<img src=x onerror="window.__pwned=1">'
    evil_script = "<script>window.__pwned=1</script>"
    standin.push(
        Text(
            [
                f"Look: {evil_img} and ",
                f"{evil_script}\n\n",
                "[bad](javascript:window.__pwned=1) [good](https://example.com/docs) ",
                "`<b>code</b>`\n\n```html\n<img src=y onerror=alert(1)>\n```\n\n",
                "- **one**\n- *two*\n\n1. first\n2. second",
            ]
        )
    )
    page = await open_owner(pages, claude.base_url)
    user_text = '<b onmouseover="window.__pwned=1">hi</b><img src=z onerror="window.__pwned=1">'
    await send(page, user_text)
    await expect(page.locator(".ra-status")).to_have_text("Done")

    body = page.locator(".ra-assistant .ra-body")
    await expect(body.locator("p").first).to_have_text(f"Look: {evil_img} and {evil_script}")
    await expect(page.locator(".ra-user .ra-body")).to_have_text(user_text)
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    messages = page.locator(".ra-messages")
    for tag in ("img", "script", "b"):
        assert await messages.locator(tag).count() == 0, tag
    links = body.locator("a")
    await expect(links).to_have_count(1)
    await expect(links).to_have_text("good")
    assert await links.get_attribute("href") == "https://example.com/docs"
    assert await links.get_attribute("rel") == "noopener noreferrer"
    await expect(body).to_contain_text("bad")
    await expect(body.locator("p > code")).to_have_text("<b>code</b>")
    await expect(body.locator("pre code")).to_have_text("<img src=y onerror=alert(1)>")
    await expect(body.locator("ul > li")).to_have_text(["one", "two"])
    await expect(body.locator("ul strong")).to_have_text("one")
    await expect(body.locator("ul em")).to_have_text("two")
    await expect(body.locator("ol > li")).to_have_text(["first", "second"])


async def test_message_typed_while_disconnected_is_sent_once(
    server: RunningServer, api: Api, pages: Pages
) -> None:
    """A message typed while the server restarts waits in the outbox and is stored once."""
    page = await open_owner(pages, server.base_url)
    params = hash_params(page.url)
    await server.stop()  # the first half of server.restart(): type while it is down
    await expect(page.locator(".ra-conn")).to_have_text("Reconnecting…")
    await send(page, "written while offline")
    await expect(page.locator(".ra-user .ra-marker")).to_have_text("sending…")

    await server.start()
    await expect(page.locator(".ra-conn")).to_be_hidden()
    await expect(page.locator(".ra-user .ra-marker")).to_be_hidden()
    await expect(page.locator(".ra-status")).to_have_text("Done")
    await expect(page.locator(".ra-user")).to_have_count(1)
    messages = await transcript(api, params["session"], params["token"])
    sent = [m for m in messages if m["role"] == "user"]
    assert [m["content"] for m in sent] == ["written while offline"]


async def test_interrupt_then_deleted_session(
    claude: Api, standin: AnthropicStandIn, pages: Pages
) -> None:
    """Interrupt keeps the partial reply; a deleted session says so and stops reconnecting."""
    standin.push(Text(["Partial ", "answer ", "never finished"], hold_after=2))
    page = await open_owner(pages, claude.base_url)
    params = hash_params(page.url)
    await send(page, "start something long")
    await expect(page.locator(".ra-assistant .ra-body")).to_have_text("Partial answer")
    await page.locator(".ra-interrupt").click()
    await expect(page.locator(".ra-status")).to_have_text("Interrupted")
    await expect(page.locator(".ra-interrupt")).to_be_hidden()
    await expect(page.locator(".ra-assistant .ra-body")).to_have_text("Partial answer")

    response = await claude.http.delete(
        f"/agent/session/{params['session']}",
        headers={"Authorization": f"Bearer {params['token']}"},
    )
    assert response.status_code == 200, response.text
    await expect(page.locator(".ra-conn")).to_have_text("This session was deleted.")
    await expect(page.locator(".ra-input")).to_be_disabled()
    assert await page.evaluate(f"{WIDGET}.socket.readyState") == 3  # CLOSED, no new socket


async def test_embedded_widgets_on_another_origin(tmp_path: Path, pages: Pages) -> None:
    """Two widgets embedded in a foreign page (about:blank) with data attributes work."""
    # The page is not on the server's origin, so the websocket needs the allow-list.
    async with (
        RunningServer(settings_for(tmp_path, allowed_origins=["*"])) as server,
        Api(server.base_url) as api,
    ):
        created = await api.create(1)
        base, sid = server.base_url, created["session_id"]
        owner_token, viewer_token = created["owner_token"], created["viewer_token"]
        page = await pages.open()
        await page.set_content(
            f"""<!doctype html><html lang="en"><head><title>Someone else's page</title>
            <script src="{base}/static/widget.js" defer></script></head><body>
            <h1>Host page</h1>
            <div id="owner" data-realtime-agent data-server="{base}" data-session="{sid}"
                 data-token="{owner_token}" data-viewer-token="{viewer_token}"
                 data-title="Embedded owner"></div>
            <div id="viewer" data-realtime-agent data-server="{base}" data-session="{sid}"
                 data-token="{viewer_token}" data-title="Embedded viewer"></div>
            </body></html>"""
        )
        assert page.url == "about:blank"
        owner, viewer = page.locator("#owner"), page.locator("#viewer")
        await expect(owner.locator(".ra-status")).to_have_text("Idle")
        await expect(viewer.locator(".ra-status")).to_have_text("Idle")
        assert await page.evaluate("window.realtimeAgentWidgets.length") == 2
        assert await owner.evaluate("el => getComputedStyle(el).display") == "flex"
        await expect(viewer.locator(".ra-input")).to_be_disabled()

        await owner.locator(".ra-input").fill("hello from an embed")
        await owner.locator(".ra-input").press("Enter")
        await expect(viewer.locator(".ra-user .ra-body")).to_have_text("hello from an embed")
        await expect(viewer.locator(".ra-assistant .ra-body")).to_contain_text("offline demo model")
        await expect(owner.locator(".ra-status")).to_have_text("Done")
        await owner.locator(".ra-share-button").click()
        link = await owner.locator(".ra-share-link").input_value()
        assert link == viewer_link(base, created)


async def test_readable_at_320_pixels(server: RunningServer, pages: Pages) -> None:
    """At 320 px wide the input and send button are visible with no horizontal scrolling."""
    page = await open_owner(pages, server.base_url, width=320, height=640)
    await send(page, "unbreakable" * 15)
    await expect(page.locator(".ra-status")).to_have_text("Done")
    await page.locator(".ra-share-button").click()
    for selector in (".ra-input", ".ra-send", ".ra-share-link"):
        await expect(page.locator(selector)).to_be_in_viewport()
        box = await page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 320, selector
    assert await page.evaluate("document.documentElement.scrollWidth") <= 320


async def test_owner_approves_by_keyboard_while_viewer_waits(
    server: RunningServer, api: Api, pages: Pages
) -> None:
    """The approval prompt shows on both pages, buttons only for the owner; Enter approves;
    the note is saved; an autonomy change is announced and shown in the header."""
    owner = await open_owner(pages, server.base_url)
    params = hash_params(owner.url)
    created = {"session_id": params["session"], "viewer_token": params["viewer"]}
    viewer = await pages.open(viewer_link(server.base_url, created))
    for page in (owner, viewer):
        await expect(page.locator(".ra-autonomy")).to_have_text(
            "Autonomy level: Ask before changes"
        )
    await expect(viewer.locator(".ra-status")).to_have_text("Idle")

    await ask_to_remember(owner)
    await expect(owner.locator(".ra-announce")).to_contain_text("Approval needed")
    seen = viewer.locator(".ra-approval")
    await expect(seen).to_be_visible()
    await expect(seen.locator(".ra-approval-tool")).to_have_text(["session_note"])
    await expect(seen.locator(".ra-approval-input")).to_contain_text('"the sky is green"')
    await expect(seen.locator(".ra-approval-note")).to_have_text("Waiting for the owner's approval")
    await expect(viewer.locator(".ra-status")).to_have_text("Waiting for approval")
    await expect(viewer.locator("button.ra-approve, button.ra-reject")).to_have_count(0)

    await owner.keyboard.press("Enter")  # focus is on Approve
    for page in (owner, viewer):
        await expect(page.locator(".ra-approval")).to_be_hidden()
        await expect(page.locator(".ra-status")).to_have_text("Done")
        await expect(page.locator(".ra-notice")).to_have_text(["Approved: session_note"])
        await expect(page.locator(".ra-tool-state")).to_have_text(["done"])
    await expect(owner.locator(".ra-input")).to_be_focused()  # focus goes back to the input
    body = await session_json(api, params["session"], params["token"])
    assert body["context"]["notes"][0]["note"] == "the sky is green"

    response = await api.http.patch(
        f"/agent/session/{params['session']}",
        json={"autonomy_level": 2},
        headers={"Authorization": f"Bearer {params['token']}"},
    )
    assert response.status_code == 200, response.text
    for page in (owner, viewer):
        await expect(page.locator(".ra-notice").last).to_have_text("Autonomy level: assisted")
        await expect(page.locator(".ra-autonomy")).to_have_text("Autonomy level: Ask for big plans")


async def test_owner_steers_then_rejects_with_a_reason(
    server: RunningServer, api: Api, pages: Pages
) -> None:
    """While the approval waits, a steered message joins the run; Reject with a reason is
    shown in the transcript, the note is not saved and the run completes."""
    owner = await open_owner(pages, server.base_url)
    params = hash_params(owner.url)
    await expect(owner.locator(".ra-steer")).to_be_hidden()
    await ask_to_remember(owner)

    steer = owner.locator(".ra-steer-box")
    await expect(steer).to_be_visible()
    await steer.check()
    await send(owner, "also, it is Tuesday")
    steered = owner.locator(".ra-user").last
    await expect(steered.locator(".ra-marker")).to_have_text("steered")
    await expect(steer).not_to_be_checked()  # only for the next message
    await expect(owner.locator(".ra-approval")).to_be_visible()

    await owner.locator(".ra-approval-reason").fill("not now")
    await owner.keyboard.press("Tab")
    await expect(owner.locator(".ra-reject")).to_be_focused()
    await owner.keyboard.press("Enter")
    await expect(owner.locator(".ra-approval")).to_be_hidden()
    await expect(owner.locator(".ra-notice")).to_have_text(["Rejected: session_note (not now)"])
    await expect(owner.locator(".ra-status")).to_have_text("Done")
    await expect(owner.locator(".ra-steer")).to_be_hidden()
    await expect(owner.locator(".ra-assistant .ra-body").last).to_contain_text("declined")
    body = await session_json(api, params["session"], params["token"])
    assert "notes" not in body["context"]
    users = [m for m in body["messages"] if m["role"] == "user"]
    assert [m.get("steered", False) for m in users] == [False, True]
    # One turn only: the steered message did not start a run of its own.
    assert len([m for m in body["messages"] if m["role"] == "assistant"]) == 2


async def test_reload_while_approval_pending_shows_it_again(
    server: RunningServer, api: Api, pages: Pages
) -> None:
    """A reloaded owner page gets the prompt back from hello.pending_approval; Approve works."""
    owner = await open_owner(pages, server.base_url)
    params = hash_params(owner.url)
    await ask_to_remember(owner)
    first_id = await owner.evaluate(f"{WIDGET}.approval.approval_id")

    await owner.reload()
    await expect(owner.locator(".ra-approval")).to_be_visible()
    assert await owner.evaluate(f"{WIDGET}.approval.approval_id") == first_id
    await expect(owner.locator(".ra-approval-tool")).to_have_text(["session_note"])
    await expect(owner.locator(".ra-approve")).to_be_focused()
    await owner.keyboard.press("Enter")
    await expect(owner.locator(".ra-approval")).to_be_hidden()
    await expect(owner.locator(".ra-notice")).to_have_text(["Approved: session_note"])
    await expect(owner.locator(".ra-status")).to_have_text("Done")
    body = await session_json(api, params["session"], params["token"])
    assert body["context"]["notes"][0]["note"] == "the sky is green"


async def test_screenshots_of_a_demo_conversation(
    server: RunningServer, pages: Pages, tmp_path: Path
) -> None:
    """Screenshots of a demo chat, owner and viewer. With RA_WRITE_SCREENSHOTS=1 they
    replace docs/screenshot-owner.png and docs/screenshot-viewer.png (a test run
    otherwise leaves the checkout as it was)."""
    owner = await open_owner(pages, server.base_url)
    await send(owner, "Hi! What can you do?")
    await expect(owner.locator(".ra-status")).to_have_text("Done")
    await send(owner, "What time is it?")
    await expect(owner.locator(".ra-tool-state")).to_have_text("done")
    await expect(owner.locator(".ra-status")).to_have_text("Done")
    tool = owner.locator("details.ra-tool")
    assert await tool.evaluate("el => el.open") is False  # collapsed by default
    await expect(tool.locator(".ra-tool-name")).to_have_text("current_time")
    await owner.locator(".ra-share-button").click()
    viewer = await pages.open(await owner.locator(".ra-share-link").input_value())
    await expect(viewer.locator(".ra-assistant .ra-body").last).to_contain_text("current time")
    await expect(viewer.locator(".ra-watchers")).to_have_text("2 watching")
    details = viewer.locator("details.ra-tool")
    await details.locator("summary").focus()
    await viewer.keyboard.press("Enter")  # a tool call opens from the keyboard
    await expect(details.locator(".ra-tool-output")).to_contain_text("UTC")
    assert await details.evaluate("el => el.open") is True
    await details.locator("summary").blur()
    for page in (owner, viewer):
        await page.locator(".ra-messages").evaluate("el => { el.scrollTop = el.scrollHeight }")

    shots = {"owner": owner, "viewer": viewer}
    folder = DOCS if os.environ.get("RA_WRITE_SCREENSHOTS") == "1" else tmp_path
    for name, page in shots.items():
        path = folder / f"screenshot-{name}.png"
        path.unlink(missing_ok=True)
        await page.screenshot(path=str(path))
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, name


def test_assets_use_no_innerhtml_and_nothing_external() -> None:
    """The widget's files never use innerHTML and load nothing from outside the server."""
    static = Path(__file__).resolve().parents[2] / "realtime_agent" / "static"
    for name in ("index.html", "widget.js", "widget.css"):
        text = (static / name).read_text(encoding="utf-8")
        assert not re.search(r"\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write", text)
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", text), name
        assert "@import" not in text, name
