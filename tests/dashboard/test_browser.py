"""The dashboard in real headless Chromium against a real gateway: sign in (staff, Globus via the
stand-in), traffic through the gateway with the official client, every page's charts checked
against the request records, the clusters page updating in place, screenshots saved."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from resource_server_async.dashboard.pages import CHARTS, PAGES
from tests.accounting.records_db import fetch_records
from tests.auth import globus_data as gd
from tests.dashboard.browser import artifact, launch_options
from tests.dashboard.conftest import OPERATORS_GROUP, STAFF_PASSWORD, STAFF_USER, Site
from tests.waiting import wait_until

MESSAGES = [{"role": "user", "content": "hello"}]
# (cluster, key, model, fault status): 4 successes, 2 failures, two users, two models.
TRAFFIC = [
    ("alpha", "alice", "model-a", None),
    ("alpha", "alice", "model-a", None),
    ("alpha", "alice", "model-b", None),
    ("beta", "bob", "model-b", None),
    ("alpha", "bob", "model-a", 500),
    ("beta", "bob", "model-b", 503),
]


@pytest.fixture(scope="module")
def records(site: Site) -> list[dict[str, Any]]:
    gateway = site.gateway
    keys = {"alice": gateway.create_api_key("alice"), "bob": gateway.create_api_key("bob")}
    for cluster, user, model, fault in TRAFFIC:
        client = openai.OpenAI(
            base_url=f"{gateway.url}/resource_server/{cluster}/vllm/v1",
            api_key=keys[user],
            max_retries=0,
            timeout=20,
        )
        extra = {"fake": {"status": fault}} if fault else None
        try:
            client.chat.completions.create(model=model, messages=MESSAGES, extra_body=extra)  # type: ignore[arg-type]
            assert fault is None
        except openai.APIStatusError:
            assert fault is not None
    url = gateway.env["DATABASE_URL"]
    wait_until(lambda: len(fetch_records(url)) == len(TRAFFIC))
    return fetch_records(url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(**launch_options())  # type: ignore[arg-type]
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def staff_page(site: Site, browser: Browser, records: list[dict[str, Any]]) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{site.gateway.url}/dashboard/users/")
    assert "/dashboard/login/" in page.url  # a stranger is sent to the sign-in page
    page.screenshot(path=artifact("login"))
    page.fill("input[name=username]", STAFF_USER)
    page.fill("input[name=password]", STAFF_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/users/")  # back where it was going
    yield page
    # No CSP violation or script error on any page the tests opened.
    assert problems == []
    context.close()


def chart_data(page: Page, chart_id: str) -> dict[str, Any]:
    """What Chart.js drew on the canvas: its labels and each dataset's values."""
    page.wait_for_selector(f"canvas[data-chart={chart_id}][data-rendered='1']")
    data: dict[str, Any] = page.evaluate(
        """id => {
          const chart = Chart.getChart(document.querySelector(`canvas[data-chart=${id}]`));
          return {labels: chart.data.labels,
                  series: Object.fromEntries(chart.data.datasets.map(d => [d.label, d.data])),
                  points: chart.getDatasetMeta(0).data.length};
        }""",
        chart_id,
    )
    return data


def open_page(page: Page, site: Site, name: str) -> None:
    path = "/dashboard/" if name == "overview" else f"/dashboard/{name}/"
    page.goto(f"{site.gateway.url}{path}?range=day")
    for chart_id in PAGES[name]:
        page.wait_for_selector(f"canvas[data-chart={chart_id}][data-rendered='1']")
    page.screenshot(path=artifact(name), full_page=True)


def test_overview_charts_match_the_records(
    staff_page: Page, site: Site, records: list[dict[str, Any]]
) -> None:
    open_page(staff_page, site, "overview")
    failed = [r for r in records if r["status"] >= 400]
    traffic = chart_data(staff_page, "traffic")
    assert traffic["points"] == len(traffic["labels"]) == 24  # one per hour of the last day
    assert sum(traffic["series"]["requests"]) == len(records)
    assert sum(traffic["series"]["errors"]) == len(failed) == 2
    tokens = chart_data(staff_page, "tokens")
    assert sum(tokens["series"]["prompt tokens"]) == sum(r["prompt_tokens"] or 0 for r in records)
    by_model = chart_data(staff_page, "by_model")
    assert dict(zip(by_model["labels"], by_model["series"]["requests"], strict=True)) == Counter(
        r["model"] for r in records
    )
    by_user = chart_data(staff_page, "by_username")
    assert by_user["points"] == 2
    assert dict(zip(by_user["labels"], by_user["series"]["requests"], strict=True)) == Counter(
        r["username"] for r in records
    )
    by_cluster = chart_data(staff_page, "by_cluster")
    assert sorted(by_cluster["labels"]) == ["alpha", "beta"]
    latency = chart_data(staff_page, "latency")
    assert latency["points"] == 24 and max(latency["series"]["p95"]) > 0


def test_every_chart_has_its_table_and_csv(staff_page: Page, site: Site, tmp_path: Any) -> None:
    open_page(staff_page, site, "overview")
    section = staff_page.locator("#chart-traffic")
    section.locator("summary").click()
    footer = section.locator("tfoot th").all_inner_texts()
    drawn = chart_data(staff_page, "traffic")
    assert footer == ["total", str(float(sum(drawn["series"]["requests"]))), "2.0"]
    with staff_page.expect_download() as download:
        section.locator("a.csv").click()
    saved = tmp_path / "traffic.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(saved.open()))
    assert len(rows) == 24
    assert sum(float(r["requests"]) for r in rows) == sum(drawn["series"]["requests"])
    for chart_id in PAGES["overview"]:
        assert staff_page.locator(f"#chart-{chart_id} table[data-table={chart_id}]").count() == 1
        assert staff_page.locator(f"#chart-{chart_id} a.csv").count() == 1


def test_models_users_errors_batches_pages(
    staff_page: Page, site: Site, records: list[dict[str, Any]]
) -> None:
    open_page(staff_page, site, "models")
    models = chart_data(staff_page, "models")
    assert sorted(models["labels"]) == ["model-a", "model-b"]
    assert sum(models["series"]["errors"]) == 2
    served = staff_page.locator("table").last.inner_text()
    assert "alpha/vllm" in served and "beta/vllm" in served

    open_page(staff_page, site, "users")
    staff_page.fill("input[name=user]", "bob")
    staff_page.click("form.inline button")
    staff_page.wait_for_selector("table.recent")
    bob = [r for r in records if r["username"] == "bob"]
    assert staff_page.locator("table.recent tbody tr").count() == len(bob)
    staff_page.screenshot(path=artifact("users-bob"), full_page=True)

    open_page(staff_page, site, "errors")
    errors = chart_data(staff_page, "errors")
    assert sum(errors["series"]["failures"]) == 2
    recent = staff_page.locator("table.recent").inner_text()
    for failure in (r for r in records if r["status"] >= 400):
        assert failure["request_id"] in recent

    open_page(staff_page, site, "batches")
    assert "no batches" in staff_page.locator("table").last.inner_text()
    assert staff_page.locator("a[href='/admin/']").count() == 1  # the link to the admin


def test_clusters_page_updates_in_place_when_maintenance_starts(
    staff_page: Page, site: Site
) -> None:
    open_page(staff_page, site, "clusters")
    staff_page.wait_for_selector("#clusters tr[data-cluster=alpha]")
    assert staff_page.locator("#clusters tr[data-cluster]").count() == 3  # three endpoints
    staff_page.evaluate("window.notReloaded = true")
    site.gateway.manage("maintenance", "alpha", "on", "--message", "Planned work on alpha")
    try:
        staff_page.wait_for_function(
            "() => [...document.querySelectorAll('#clusters .maintenance')]"
            ".some(td => td.textContent.includes('Planned work on alpha'))",
            timeout=15_000,
        )
        states = staff_page.locator("#clusters tr[data-cluster=alpha] td.state").all_inner_texts()
        assert states == ["maintenance", "maintenance"]
        assert staff_page.evaluate("window.notReloaded") is True
        staff_page.screenshot(path=artifact("clusters-maintenance"), full_page=True)
    finally:
        site.gateway.manage("maintenance", "alpha", "off")


def test_globus_operator_signs_in(site: Site, browser: Browser) -> None:
    identity = gd.argonne_user()
    site.standin.sign_in_as(identity, [OPERATORS_GROUP])
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.gateway.url}/dashboard/errors/")
    page.click("#globus-login")
    page.wait_for_url("**/dashboard/errors/")
    assert f"globus:{identity.username}" in page.locator("header").inner_text()
    page.wait_for_selector("canvas[data-chart=errors][data-rendered='1']")
    context.close()


def test_globus_user_outside_the_operator_groups_is_refused(site: Site, browser: Browser) -> None:
    site.standin.sign_in_as(gd.gmail_identity(), [gd.GATEWAY_GROUP])
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{site.gateway.url}/dashboard/")
    page.click("#globus-login")
    page.wait_for_selector("p.error")
    assert "not in an operator group" in page.locator("p.error").inner_text()
    page.screenshot(path=artifact("login-refused"))
    page.goto(f"{site.gateway.url}/dashboard/")
    assert "/dashboard/login/" in page.url
    context.close()


def test_the_real_server_refuses_strangers_everywhere(site: Site) -> None:
    base = site.gateway.url
    for name in PAGES:
        path = "/dashboard/" if name == "overview" else f"/dashboard/{name}/"
        answer = httpx.get(base + path, follow_redirects=False)
        assert answer.status_code == 302 and "/dashboard/login/" in answer.headers["location"]
    for chart_id in CHARTS:
        for kind in ("json", "csv"):
            assert httpx.get(f"{base}/dashboard/data/{chart_id}.{kind}").status_code == 401
    assert httpx.get(f"{base}/dashboard/data/clusters.json").status_code == 401
    # The scripts come from the gateway itself.
    script = httpx.get(f"{base}/static/dashboard/vendor/chart.umd.min.js")
    assert script.status_code == 200 and b"Chart" in script.content


def test_a_missing_static_file_is_not_found(site: Site) -> None:
    """A file the npm install lacks, or any other missing one, answers 404, never 500."""
    base = site.gateway.url
    for path in (
        "/static/dashboard/vendor/no-such-file.js",
        "/static/dashboard/vendor/helpers/none.js",
        "/static/dashboard/none.css",
    ):
        assert httpx.get(base + path).status_code == 404, path
