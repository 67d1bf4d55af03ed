"""The built-in dashboard (`GET /ui`), driven in headless Chromium with Selenium: the page is a
static shell that asks for the admin token; with it, every panel renders what real requests left
in the gateway (requests, latency, time to first token, errors, spend from the ledger, provider
health, loaded plugins, recent requests); without it, or with a wrong one, nothing is shown. The
browser's console stays clean, and a full-page screenshot of each test is kept as an artefact.

Needs Debian's `chromium` and `chromium-driver` and Selenium from PyPI (scripts/install.sh).
Screenshots go to $PRISM_TEST_ARTEFACTS, else Tests/integration/artefacts/ (git-ignored)."""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path

import openai
import pytest

from conftest import REPO, give_to_gateway
from prism_helpers import FIRST_PARTY_PLUGINS, get, make_config, openai_provider, wait_until

ADMIN = "admin-token-for-the-dashboard-0001"
ALICE = "sk-prism-dashboard-alice-0001"
BOB = "sk-prism-dashboard-bob-00002"
KEYS = {"enabled": True, "keys": [{"name": "alice", "key": ALICE, "owner": "team-a"},
                                  {"name": "bob", "key": BOB, "owner": "team-b"}]}
PRICES = {"custom_pricing": {"gpt-4o-mini": {"input_per_mtok": 2, "output_per_mtok": 10}}}
PANELS = ["requests", "latency", "ttft", "errors", "spend", "providers", "plugins", "recent"]
DATA_ROUTES = ["/-/stats?minutes=60", "/-/requests/recent?limit=100", "/-/plugins", "/-/spend?group_by=key",
               "/-/health/providers", "/-/health/state"]
ARTEFACTS = Path(os.environ.get("PRISM_TEST_ARTEFACTS") or REPO / "Tests" / "integration" / "artefacts")

pytestmark = pytest.mark.time_limit(150)


# ---- the gateway and the traffic the dashboard shows ---------------------------------------------

def dashboard_config(good, broken, data_dir: Path) -> dict:
    return make_config(
        {"up": openai_provider(good.v1_url, models=["gpt-4o-mini", "gpt-4o"]),
         "flaky": openai_provider(broken.v1_url, models=["flaky-model"]),
         "local": {"type": "mock", "models": ["mock-gpt"]}},
        auth=KEYS, admin={"token": ADMIN, "store": str(data_dir / "admin.sqlite")}, cost_tracking=PRICES,
        spend_ledger={"path": str(data_dir / "spend.sqlite"), "flush_interval": "200ms"},
        cache={"enabled": True, "default_ttl": "5m", "max_entries": 100})


@pytest.fixture
def gw(gateway, make_mock, tmp_path):
    good, broken = make_mock(), make_mock()
    good.prompt_tokens, good.completion_tokens = 1000, 100  # $0.003 a gpt-4o-mini answer at 2/10 per Mtok
    broken.fail_with(500, "the flaky upstream fell over")
    return gateway(dashboard_config(good, broken, give_to_gateway(tmp_path / "data")))


def client(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=15)


def send_traffic(gw) -> dict:
    """Real requests through the OpenAI SDK; returns what each was, by its request id."""
    sent: dict = {}

    def rid(kind: str) -> str:
        return f"dash-{kind}-{uuid.uuid4().hex[:10]}"

    alice, bob = client(gw, ALICE), client(gw, BOB)
    messages = [{"role": "user", "content": "What does the dashboard show?"}]
    for kind in ("chat", "cached"):
        wanted = rid(kind)
        raw = alice.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, extra_headers={"x-prism-request-id": wanted})
        raw.parse()
        assert raw.headers["x-prism-cache"] == ("miss" if kind == "chat" else "hit")
        sent[raw.headers["x-prism-request-id"]] = {"kind": kind, "status": 200}

    wanted = rid("stream")
    with bob.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Stream to the dashboard."}], stream=True,
            stream_options={"include_usage": True}, extra_headers={"x-prism-request-id": wanted}) as response:
        text = "".join((c.choices[0].delta.content or "") for c in response.parse() if c.choices)
        assert text, "the stream brought no content"
        sent[response.headers["x-prism-request-id"]] = {"kind": "stream", "status": 200}

    wanted = rid("mock")
    raw = alice.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=messages, extra_headers={"x-prism-request-id": wanted})
    raw.parse()
    sent[raw.headers["x-prism-request-id"]] = {"kind": "mock", "status": 200}

    for kind, model, status in (("failed", "flaky-model", 502), ("unknown", "no-such-model-anywhere", 404)):
        with pytest.raises(openai.APIStatusError) as caught:
            bob.chat.completions.create(model=model, messages=messages,
                                        extra_headers={"x-prism-request-id": rid(kind)})
        assert caught.value.status_code == status, caught.value
        sent[caught.value.response.headers["x-prism-request-id"]] = {"kind": kind, "status": status}
    return sent


def admin_get(gw, path: str, token: str = ADMIN):
    return get(gw.url(path), headers={"Authorization": f"Bearer {token}"})


def wait_for_the_ledger(gw, keys=("alice", "bob")) -> None:
    def flushed():
        answer = admin_get(gw, "/-/spend?group_by=key")
        return answer.status == 200 and set(keys) <= {g["key"] for g in answer.json()["groups"]}
    assert wait_until(flushed, timeout=10, interval=0.1), admin_get(gw, "/-/spend?group_by=key").text


# ---- the browser ---------------------------------------------------------------------------------

@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("Selenium is not installed: run scripts/install.sh (pip install selenium)", pytrace=False)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("headless Chromium needs Debian's chromium and chromium-driver: run scripts/install.sh",
                    pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--disable-dev-shm-usage", "--window-size=1440,1000", "--disable-gpu",
                     "--no-proxy-server", "--no-first-run", "--disable-extensions", "--lang=en-US"):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver: Selenium Manager never goes to the network for one.
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(20)
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def by_css(driver, selector: str):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver, selector: str):
    from selenium.webdriver.common.by import By
    return driver.find_elements(By.CSS_SELECTOR, selector)


def wait_for(driver, condition, timeout: float, what: str):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        # The page redraws its panels every 5 s: an element found a moment ago may be gone.
        return WebDriverWait(driver, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out after {timeout} s waiting for {what}; panels: {panel_states(driver)}; "
                    f"console: {driver.get_log('browser')}", pytrace=False)


def panel_states(driver) -> dict:
    return driver.execute_script(
        "const out = {}; for (const s of document.querySelectorAll('section[data-panel]'))"
        " out[s.dataset.panel] = s.dataset.state + (s.querySelector('.panel-error') ?"
        " ' (' + s.querySelector('.panel-error').textContent + ')' : ''); return out;")


def panel_text(driver, name: str) -> str:
    """Everything a panel shows, its SVG chart labels included."""
    return driver.execute_script(
        "return document.querySelector(`section[data-panel=\"${arguments[0]}\"]`).textContent", name)


def rows(driver, selector: str, attribute: str) -> dict:
    """{attribute value: visible text} of the elements matching `selector`, read in one go (the
    auto-refresh cannot redraw them halfway)."""
    return driver.execute_script(
        "const out = {}; for (const e of document.querySelectorAll(arguments[0]))"
        " out[e.getAttribute(arguments[1])] = e.innerText; return out;", selector, attribute)


def sign_in(driver, token: str) -> None:
    field = by_css(driver, "#token")
    field.clear()
    field.send_keys(token)
    by_css(driver, "#sign-in").click()


def signed_out_view(driver) -> bool:
    return by_css(driver, "#token").is_displayed() and not by_css(driver, "#dashboard").is_displayed()


def console_problems(entries: list, allow=()) -> list:
    """Console entries at WARNING or SEVERE, except those matching an allowed pattern."""
    return [e for e in entries if e.get("level") in ("SEVERE", "WARNING")
            and not any(re.search(p, e.get("message", "")) for p in allow)]


def loaded_resources(driver) -> list:
    return driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")


def screenshot(driver, request, suffix: str = "") -> Path:
    """A full-page PNG in the artefacts directory, named after the test; its path is printed."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    driver.set_window_size(1440, min(max(int(height) + 40, 800), 6000))
    time.sleep(0.3)  # the resize handler redraws the charts
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name) + (f"-{suffix}" if suffix else "") + ".png"
    path = ARTEFACTS / name
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    print(f"screenshot: {path}")
    return path


# ---- tests ---------------------------------------------------------------------------------------

def test_data_routes_need_the_admin_token_and_the_page_holds_no_data(gw):
    send_traffic(gw)
    for path in DATA_ROUTES:
        missing = get(gw.url(path))
        assert missing.status == 401, f"{path} without a token: {missing.status} {missing.text[:200]}"
        assert isinstance(missing.json().get("error"), dict), missing.text
        assert admin_get(gw, path, token="wrong-admin-token-000000").status == 403, path
        assert admin_get(gw, path, token=ALICE).status == 403, f"{path}: a client key is no admin token"
        assert admin_get(gw, path).status == 200, path
    page = get(gw.url("/ui"))
    assert page.status == 200 and page.headers["content-type"].startswith("text/html"), page.status
    assert get(gw.url("/ui/")).status == 200
    html = page.text
    # A static shell: none of the gateway's data, and nothing loaded from anywhere else.
    for secret in ("alice", "team-a", "dash-", ADMIN, "gpt-4o-mini"):
        assert secret not in html, f"the page itself contains {secret!r}"
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I), "an external URL"
    assert not re.search(r"@import|url\(|<script[^>]+src", html, re.I), "an external resource"
    for panel in PANELS:
        assert f'data-panel="{panel}"' in html, f"no {panel} panel"


def test_without_the_token_only_the_sign_in_form_and_a_wrong_token_is_refused(gw, browser, request):
    sent = send_traffic(gw)
    browser.get(gw.url("/ui"))
    wait_for(browser, signed_out_view, 10, "the sign-in form")
    assert by_css(browser, "#sign-in").is_displayed()
    assert all(s == "loading" for s in panel_states(browser).values()), panel_states(browser)
    visible = by_css(browser, "body").text
    assert not any(rid in visible for rid in sent) and "alice" not in visible
    assert not [r for r in loaded_resources(browser) if "/-/" in r], "data was asked for without a token"
    screenshot(browser, request, "sign-in")

    sign_in(browser, "not-the-admin-token-0000")
    wait_for(browser, lambda d: by_css(d, "#signin-message").text, 10, "the refusal message")
    assert "refused" in by_css(browser, "#signin-message").text
    assert signed_out_view(browser)
    assert browser.execute_script("return sessionStorage.getItem('prism.dashboard.token')") is None
    # The one refused call is the only console entry (Chromium logs every 4xx fetch).
    assert not console_problems(browser.get_log("browser"), allow=[r"/-/stats\?minutes=1 .* 403"])

    # A token the gateway stops accepting (here: a stale one in the tab) sends the user back to the form.
    browser.execute_script("sessionStorage.setItem('prism.dashboard.token', 'stale-admin-token-0000')")
    browser.refresh()
    wait_for(browser, lambda d: signed_out_view(d) and by_css(d, "#signin-message").text, 10,
             "the sign-in form after a refused token")
    assert "403" in by_css(browser, "#signin-message").text
    browser.get_log("browser")  # the refused calls of the stale token

    sign_in(browser, ADMIN)
    wait_for(browser, lambda d: all(s == "ready" for s in panel_states(d).values()), 20, "every panel ready")
    by_css(browser, "#sign-out").click()
    wait_for(browser, signed_out_view, 5, "the sign-in form after signing out")
    assert "Signed out" in by_css(browser, "#signin-message").text
    assert browser.execute_script("return sessionStorage.getItem('prism.dashboard.token')") is None
    assert all(s == "loading" for s in panel_states(browser).values())
    assert not any(rid in by_css(browser, "body").text for rid in sent)
    assert not console_problems(browser.get_log("browser"))


def test_every_panel_renders_the_real_requests(gw, browser, request):
    sent = send_traffic(gw)
    wait_for_the_ledger(gw)
    stats = admin_get(gw, "/-/stats?minutes=60").json()
    assert stats["totals"]["requests"] >= len(sent), stats["totals"]

    browser.get(gw.url("/ui"))
    wait_for(browser, signed_out_view, 10, "the sign-in form")
    sign_in(browser, ADMIN)
    wait_for(browser, lambda d: all(s == "ready" for s in panel_states(d).values()), 20, "every panel ready")

    # Requests: the numbers the API gives, on the page.
    totals = admin_get(gw, "/-/stats?minutes=60").json()["totals"]
    shown = int(re.sub(r"\D", "", by_css(browser, "#kpi-requests").text))
    assert shown == totals["requests"], (shown, totals)
    assert f"errors {totals['errors']}" in panel_text(browser, "requests").replace("\u00a0", " ")
    assert all_css(browser, "section[data-panel=requests] svg path.line"), "no requests line drawn"

    # Latency and time to first token: drawn (a single minute of data is a dot per percentile).
    for name in ("latency", "ttft"):
        marks = all_css(browser, f"section[data-panel={name}] svg .line, section[data-panel={name}] svg circle.dot")
        assert len(marks) >= 3, f"{name}: {len(marks)} marks"
        assert re.search(r"p95\s*[\d.]+\s*m?s", panel_text(browser, name)), panel_text(browser, name)

    # Errors by provider and reason: the failing upstream and the unknown model.
    errors = panel_text(browser, "errors")
    assert "flaky" in errors and "provider_error" in errors, errors
    assert "model_not_found" in errors, errors

    # Recent requests: every request id the test sent, with its status.
    recent = rows(browser, "section[data-panel=recent] tr[data-request-id]", "data-request-id")
    for rid, what in sent.items():
        assert rid in recent, f"{what['kind']} request {rid} is not in the recent table: {list(recent)}"
        assert str(what["status"]) in recent[rid], (rid, recent[rid])
    by_kind = {what["kind"]: rid for rid, what in sent.items()}
    assert "alice" in recent[by_kind["chat"]] and "gpt-4o-mini" in recent[by_kind["chat"]], recent[by_kind["chat"]]
    assert "hit" in recent[by_kind["cached"]], recent[by_kind["cached"]]
    assert "stream" in recent[by_kind["stream"]], recent[by_kind["stream"]]
    assert "provider_error" in recent[by_kind["failed"]], recent[by_kind["failed"]]
    assert "model_not_found" in recent[by_kind["unknown"]], recent[by_kind["unknown"]]

    # Providers: every configured provider with its circuit-breaker state.
    cards = rows(browser, "section[data-panel=providers] [data-provider]", "data-provider")
    assert {"up", "flaky", "local"} <= set(cards), list(cards)
    badges = rows(browser, "section[data-panel=providers] .badge", "class")
    assert "closed" in cards["up"] and "badge closed" in badges, (cards["up"], badges)

    # Plugins: every first-party plugin file in dist/plugins, with its components.
    files = rows(browser, "section[data-panel=plugins] tr[data-file]", "data-file")
    assert set(FIRST_PARTY_PLUGINS) <= set(files), sorted(files)
    assert "provider · mock" in files["provider-mock.so"], files["provider-mock.so"]

    # Spend from the ledger, by key, then by owner and by model through the switch.
    spend = panel_text(browser, "spend")
    assert "alice" in spend and "bob" in spend and "$0.003" in spend, spend
    for group, names in (("owner", ["team-a", "team-b"]), ("model", ["gpt-4o-mini", "gpt-4o"])):
        by_css(browser, f'#spend-group button[data-group="{group}"]').click()
        wait_for(browser, lambda d: all(n in panel_text(d, "spend") for n in names)
                 and by_css(d, "section[data-panel=spend]").get_attribute("data-state") == "ready",
                 10, f"spend by {group}")
    by_css(browser, '#spend-group button[data-group="key"]').click()
    wait_for(browser, lambda d: "alice" in panel_text(d, "spend"), 10, "spend by key again")

    # A tooltip on a chart point.
    from selenium.webdriver.common.action_chains import ActionChains

    def hover(d):
        ActionChains(d).move_to_element(by_css(d, "section[data-panel=requests] svg")).perform()
        return by_css(d, "#tooltip").is_displayed()
    wait_for(browser, hover, 5, "a chart tooltip")
    assert "succeeded" in by_css(browser, "#tooltip").text
    ActionChains(browser).move_to_element(by_css(browser, ".brand")).perform()
    wait_for(browser, lambda d: not by_css(d, "#tooltip").is_displayed(), 5, "the tooltip to go")

    # Auto-refresh: a new request shows up without reloading the page.
    raw = client(gw, ALICE).chat.completions.with_raw_response.create(
        model="mock-gpt", messages=[{"role": "user", "content": "one more"}],
        extra_headers={"x-prism-request-id": "dash-late-" + uuid.uuid4().hex[:10]})
    raw.parse()
    late = raw.headers["x-prism-request-id"]
    wait_for(browser, lambda d: all_css(d, f'tr[data-request-id="{late}"]'), 12, "the auto-refresh")

    # Nothing loaded from anywhere but the gateway; a clean console.
    outside = [r for r in loaded_resources(browser) if not r.startswith(gw.base_url + "/") and not r.startswith("data:")]
    assert not outside, outside
    assert not console_problems(browser.get_log("browser"))
    screenshot(browser, request)

    # The same page in the dark colour scheme, kept for a look.
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    screenshot(browser, request, "dark")
    assert not console_problems(browser.get_log("browser"))


def test_an_idle_gateway_renders_empty_panels(gateway, mock_upstream, browser, request, tmp_path):
    gw = gateway(make_config({"up": openai_provider(mock_upstream.v1_url)},
                             admin={"token": ADMIN, "store": str(give_to_gateway(tmp_path / "d") / "admin.sqlite")},
                             spend_ledger={"path": str(tmp_path / "d" / "spend.sqlite")}))
    browser.get(gw.url("/ui"))
    wait_for(browser, signed_out_view, 10, "the sign-in form")
    sign_in(browser, ADMIN)
    wait_for(browser, lambda d: "loading" not in panel_states(d).values(), 20, "every panel rendered")
    states = panel_states(browser)
    for name in ("requests", "latency", "ttft", "errors", "spend", "recent"):
        assert states[name] == "empty", states
    assert states["providers"] == "ready" and states["plugins"] == "ready", states
    assert "No requests yet" in panel_text(browser, "requests")
    assert "No requests yet" in panel_text(browser, "recent")
    assert not console_problems(browser.get_log("browser"))
    screenshot(browser, request)
