"""The gateway's web page in a real browser: Playwright drives Debian's Chromium (both installed
by `make setup`) against the real stack.

A reply streams in and the stop button ends it; Markdown is rendered and sanitized; a collection
made from a folder with a PDF reaches ready with a failed file and its reason; a chat with that
collection picked shows the page-3 reference; reindex and delete work; with an API key set the
page asks for it and then works. Each view is screenshotted into build/web-screenshots/
(git-ignored); the paths are logged.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from devstack.stack import Ports, Stack, StackConfig
from tests.e2e.test_localdocs import PAGE3_QUERY, make_pdf

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.local_only(
        "the web bundle is built on the host by make setup; the gateway image does not carry it"
    ),
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
INDEXED_S = 300_000  # ms: one PDF through Tika and the embedder on a busy machine
REPLY_S = 120_000  # ms: the first tokens of a reply, model loading included
API_KEY = "web-page-" + uuid.uuid4().hex
SCREENSHOTS = REPO_ROOT / "build" / "web-screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is missing: `make setup` installs it"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def shots() -> Path:
    # In the checkout (build/ is git-ignored), not pytest's temporary folders: those are
    # pruned to the last three runs of anyone's tests, and the screenshots are for people.
    folder = SCREENSHOTS
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # A fresh context per test: its own localStorage (conversations, API key).
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    assert not errors, f"the page threw: {errors}"


def _screenshot(page: Page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    logger.warning("screenshot: %s", path)


def _open(page: Page, stack: Stack) -> None:
    page.goto(stack.url("gateway") + "/")
    # The models list came from the API: the page is wired to the gateway.
    expect(page.get_by_test_id("model-select").locator("option").first).to_be_attached()


def test_reply_streams_in_and_stop_ends_it(stack: Stack, page: Page, shots: Path) -> None:
    _open(page, stack)
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id("prompt").fill("Once upon a time")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("message-user")).to_have_text("Once upon a time")
    answer = page.get_by_test_id("answer")
    stop = page.get_by_test_id("stop")
    # Tokens arrive while the reply is still streaming (the stop button is still there).
    page.wait_for_function(
        """() => {
            const answer = document.querySelector('[data-testid="answer"]');
            const stop = document.querySelector('[data-testid="stop"]');
            return stop !== null && answer !== null && answer.textContent.trim().length > 0;
        }""",
        timeout=REPLY_S,
    )
    _screenshot(page, shots, "chat-streaming")
    stop.click()
    expect(stop).to_have_count(0)
    expect(page.get_by_test_id("send")).to_be_visible()
    partial = answer.text_content() or ""
    assert partial.strip()
    # Stopped means stopped: no error, and nothing more arrives.
    expect(page.locator(".message.assistant .error")).to_have_count(0)
    page.wait_for_timeout(1500)
    assert (answer.text_content() or "") == partial

    # The conversation goes on: a second message (the history holds the stopped reply).
    page.get_by_test_id("prompt").fill("And then?")
    page.get_by_test_id("prompt").press("Enter")
    expect(page.get_by_test_id("message-user")).to_have_count(2)
    page.wait_for_function(
        """() => {
            const answers = document.querySelectorAll('[data-testid="answer"]');
            return answers.length === 2 && answers[1].textContent.trim().length > 0;
        }""",
        timeout=REPLY_S,
    )
    if stop.count():
        stop.click()
    expect(page.get_by_test_id("send")).to_be_visible()
    expect(page.locator(".message.assistant .error")).to_have_count(0)
    assert (answer.first.text_content() or "") == partial


def test_markdown_is_rendered_and_sanitized(stack: Stack, page: Page, shots: Path) -> None:
    conversation = {
        "id": "seeded",
        "title": "Markdown",
        "model": "",
        "collections": [],
        "messages": [
            {"role": "user", "content": "Show me Markdown"},
            {
                "role": "assistant",
                "content": "**bold** and `code`\n\n- one\n- two\n\n"
                '<img src="x" onerror="window.__xss = 1"><script>window.__xss = 2</script>',
            },
        ],
    }
    page.goto(stack.url("gateway") + "/")
    page.evaluate(
        "value => localStorage.setItem('llmserver.conversations', value)",
        json.dumps([conversation]),
    )
    page.reload()
    answer = page.get_by_test_id("answer")
    expect(answer.locator("strong")).to_have_text("bold")
    expect(answer.locator("code")).to_have_text("code")
    expect(answer.locator("li")).to_have_count(2)
    expect(answer.locator("script")).to_have_count(0)
    assert answer.locator("img").get_attribute("onerror") is None
    assert page.evaluate("() => window.__xss") is None
    _screenshot(page, shots, "chat-markdown")


def test_collection_indexes_and_chat_shows_the_page_three_reference(
    stack: Stack, page: Page, shots: Path
) -> None:
    folder = Path(stack.docs_root) / f"web-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    make_pdf(folder / "handbook.pdf")
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Cat" + b"\x00" * 64)
    name = f"web-{uuid.uuid4().hex[:8]}"

    _open(page, stack)
    page.get_by_test_id("tab-collections").click()
    page.get_by_test_id("collection-name").fill(name)
    page.get_by_test_id("collection-paths").fill(str(folder))
    page.get_by_test_id("create").click()
    card = page.get_by_test_id(f"collection-{name}")
    expect(card).to_be_visible()
    card.get_by_test_id("toggle-files").click()
    expect(card.get_by_test_id("file-row")).to_have_count(2, timeout=INDEXED_S)
    expect(card.get_by_test_id("collection-state")).to_have_text("ready", timeout=INDEXED_S)
    handbook = card.get_by_test_id("file-row").filter(has_text="handbook.pdf")
    corrupt = card.get_by_test_id("file-row").filter(has_text="corrupt.pdf")
    expect(handbook.get_by_test_id("file-state")).to_have_text("indexed")
    expect(corrupt.get_by_test_id("file-state")).to_have_text("failed")
    expect(corrupt.get_by_test_id("file-error")).not_to_be_empty()
    _screenshot(page, shots, "collections")

    page.get_by_test_id("tab-chat").click()
    page.get_by_test_id("new-chat").click()
    page.get_by_test_id(f"pick-{name}").check()
    page.get_by_test_id("prompt").fill(PAGE3_QUERY)
    page.get_by_test_id("send").click()
    page3 = page.get_by_test_id("reference").filter(has_text="zorbleflux")
    expect(page3.first).to_be_visible(timeout=REPLY_S)
    expect(page3.first.get_by_test_id("reference-page")).to_have_text("page 3")
    expect(page3.first).to_contain_text("handbook.pdf")
    if page.get_by_test_id("stop").count():
        page.get_by_test_id("stop").click()
    _screenshot(page, shots, "chat-references")

    page.get_by_test_id("tab-collections").click()
    card.get_by_test_id("reindex").click()
    expect(card.get_by_test_id("collection-state")).to_have_text("ready", timeout=INDEXED_S)
    expect(card.locator(".error")).to_have_count(0)
    card.get_by_test_id("delete").click()
    card.get_by_test_id("confirm-delete").click()
    expect(card).to_have_count(0)
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as client:
        assert client.get(f"/v1/localdocs/collections/{name}").status_code == 404


@pytest.fixture(scope="module")
def keyed_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second gateway with GATEWAY_API_KEY set, in front of the shared stack's upstreams."""
    keyed = Stack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("keyed-web"),
            models_dir=REPO_ROOT / "models",
            ports=replace(stack.ports, gateway=Ports.free().gateway),
            service_env={"gateway": {"GATEWAY_API_KEY": API_KEY}},
        )
    )
    try:
        keyed.start(["gateway"])
        yield keyed
    finally:
        keyed.stop()


def test_with_an_api_key_the_page_asks_for_it(
    keyed_gateway: Stack, page: Page, shots: Path
) -> None:
    page.goto(keyed_gateway.url("gateway") + "/")
    form = page.get_by_test_id("api-key-form")
    expect(form).to_be_visible()
    expect(form).to_contain_text("API key")
    _screenshot(page, shots, "api-key")
    form.get_by_label("API key").fill("not-the-key")
    form.get_by_role("button", name="Save key").click()
    expect(form).to_be_visible()
    expect(page.get_by_test_id("model-select").locator("option")).to_have_count(0)
    form.get_by_label("API key").fill(API_KEY)
    form.get_by_role("button", name="Save key").click()
    expect(page.get_by_test_id("model-select").locator("option").first).to_be_attached()
    expect(form).to_have_count(0)
