"""The web page in a real browser: Debian's chromium driven by Playwright (peer) over HTTPS.

Type a message, see the reply's tokens arrive one by one (the strip grows while the turn is still running), the tool
call and the safety verdict shown, and the inspector fill with each stage's events. The screenshot is kept under
pytest's temporary directory as the test's artifact.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import peers_required, require_peer
from test_server import KEY_A, ScriptedModel, script, start

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.slow
def test_the_web_chat_streams_and_fills_the_inspector(tmp_path_factory, tmp_path):
    sync_api = require_peer("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        pytest.fail(message) if peers_required() else pytest.skip(message)
    s = start(tmp_path_factory, model=ScriptedModel(script, delay=0.03))
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_context(ignore_https_errors=True).new_page()  # the dev certificate is self-signed
            page.goto(s.url + "/")
            assert page.title() == "minichat"
            page.fill("#message", "What is 17*23?")
            page.press("#message", "Enter")
            assert "key" in page.inner_text("#key-state")  # no key yet: nothing was sent
            assert page.locator(".msg").count() == 0
            page.fill("#key", KEY_A)
            page.click("#key-save")
            page.fill("#message", "What is 17*23?")
            page.press("#message", "Enter")
            page.wait_for_selector("#tokens span")
            done = page.locator(".stage summary", has_text="done:")
            assert done.count() == 0  # tokens are on screen while the turn is still running: streaming
            done.wait_for(timeout=30_000)
            reply = page.locator(".msg.assistant").last.inner_text()
            assert reply.endswith("17*23 is 391.")
            assert "calculator" in page.locator(".tool").first.inner_text()
            assert "391" in page.locator(".tool").last.inner_text()
            assert "safety input: allowed" in page.locator(".verdict").first.inner_text()
            stages = page.locator(".stage summary").all_inner_texts()
            for prefix in ("safety (input)", "memory:", "context:", "tokenized:", "tool call: calculator",
                           "tool result: calculator ok", "done: stop", "timings"):
                assert any(t.startswith(prefix) for t in stages), (prefix, stages)
            assert page.locator("#tokens span").count() >= 10
            shot = tmp_path / "web_chat.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
            browser.close()
    finally:
        s.stop()
