"""The web app's page driven in headless Chromium (Debian's ``chromium``) with Playwright.

Chromium must be installed (``make browser``, which ``make test`` runs): when it is missing these
tests FAIL, so CI cannot pass without them. Set ``DEBLURKIT_NO_BROWSER=1`` to skip them on a
machine that cannot have a browser. ``DEBLURKIT_CHROMIUM`` overrides the browser path;
``DEBLURKIT_SCREENSHOT=PATH`` also writes the page's screenshot there (docs/images/webapp.png,
posterised to 5 bits per channel to stay small).

The default run is the classical pipeline. The page is tested here, the estimator in
tests/test_deconv_blind.py: the deblurring test uploads a real photo crop blurred with a real
Levin et al. 2009 kernel and the estimator is replaced by one returning that kernel; with
``DEBLURKIT_SCREENSHOT`` the real estimator runs on the real blurry photo instead (slower), for
the README picture.
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import deblurkit.deconv.blind as blind_mod
from deblurkit.app import AppConfig
from deblurkit.app.events import event_support
from webapp_server import LiveServer

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "real_blur"
PHOTO = EXAMPLES / "licenseplate_motion.jpg"  # a real motion-blurred photo, 600x482
CHROMIUM = Path(os.environ.get("DEBLURKIT_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP evil.test 127.0.0.1",  # another site's name on this computer (DNS rebinding tests)
]
RUN_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def browser():
    if os.environ.get("DEBLURKIT_NO_BROWSER"):
        pytest.skip("DEBLURKIT_NO_BROWSER is set: no browser on this machine, page tests skipped")
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser` (installs Debian's chromium), "
                    "set DEBLURKIT_CHROMIUM, or set DEBLURKIT_NO_BROWSER=1 to skip the page tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"Playwright for Python is missing ({exc}): pip install -e '.[dev]'")
    profile = tempfile.mkdtemp(prefix="deblurkit-chromium-")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS,
            viewport={"width": 1180, "height": 760}, accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def _levin_kernel(*args, **options):
    from conftest import DATA
    from deblurkit.synth import levin_kernels

    return levin_kernels(DATA / "kernels" / "levin09_kernels.npz")["levin09_3"]


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory, shared_data):
    """The photo the deblurring test uploads: the real blurry PHOTO with DEBLURKIT_SCREENSHOT, else
    a 600x482 crop of a real photo blurred with levin09_3 (what the stub estimator returns)."""
    if os.environ.get("DEBLURKIT_SCREENSHOT"):
        return PHOTO
    from deblurkit.io import read_image, save_image
    from deblurkit.synth import blur_valid_pair

    sharp = read_image(shared_data / "photos" / "wallpaper" / "mate_Wood.jpg")[None, :, 300:796, 500:1114]
    blurry, _ = blur_valid_pair(sharp, _levin_kernel())
    path = tmp_path_factory.mktemp("photo") / "wood_motion.jpg"
    save_image(path, blurry[0], quality=95)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("webapp")
    cfg = AppConfig(max_upload_mb=1.0, examples_dir=EXAMPLES, device="cpu", workdir=work)
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("DEBLURKIT_SCREENSHOT"):
            mp.setattr(blind_mod, "estimate_kernel", _levin_kernel)
        with LiveServer(cfg) as s:
            yield s


@pytest.fixture()
def page(browser, server):
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.base + "/")
    page.wait_for_selector("body[data-ready='1']")
    yield page
    page.close()
    outside = [u for u in requests if not u.startswith((server.base + "/", "data:", "blob:"))]
    assert outside == [], f"the page fetched something from elsewhere: {outside}"


def fetch_png(server, src: str) -> np.ndarray:
    status, data, _ = server.call("GET", src.replace(server.base, ""))
    assert status == 200
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


def test_blurry_photo_is_deblurred_compared_and_downloadable(page, server, tmp_path, photo_file):
    assert page.input_value("#model") == ""  # the default is preselected: the classical pipeline
    assert "classical" in page.locator("#model option:checked").inner_text()
    assert "mimo_unet_small" in page.locator("#model").inner_text()  # the embedded network is offered
    page.set_input_files("#file", str(photo_file))
    page.click("#run")
    page.wait_for_selector("#result[data-job]", timeout=RUN_TIMEOUT_MS)
    assert page.locator("#error").is_hidden()
    widths = page.evaluate("[...document.querySelectorAll('#result .pair img, #result .compare img')]"
                           ".map(i => i.naturalWidth)")
    assert widths == [600] * 4  # input, result and both layers of the slider view are shown
    assert page.locator("#kernel-img").is_visible()  # the kernel the classical pipeline used
    assert page.evaluate("document.getElementById('kernel-img').naturalWidth") > 0
    assert page.locator("#run-note").inner_text().startswith(("kernel ", "kernel estimate unreliable"))
    before = fetch_png(server, page.get_attribute("#input-img", "src"))
    after = fetch_png(server, page.get_attribute("#result-img", "src"))
    assert before.shape == after.shape == (482, 600, 3)
    assert np.abs(after - before).mean() > 0.5  # the shown result is not the input

    page.locator("#slider").fill("20")
    assert "20%" in page.get_attribute("#compare-after", "style")
    page.locator("#slider").fill("50")

    with page.expect_download() as dl:
        page.click("#download")
    saved = tmp_path / dl.value.suggested_filename
    dl.value.save_as(saved)
    assert saved.name == f"{photo_file.stem}_deblurred.png"
    assert np.array_equal(np.asarray(Image.open(saved).convert("RGB"), dtype=np.float32), after)

    shot = tmp_path / "webapp.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1180
    target = os.environ.get("DEBLURKIT_SCREENSHOT")
    if target:  # the README's picture: 5 bits per channel keeps the PNG under 300 KB
        from PIL import ImageOps

        ImageOps.posterize(Image.open(shot).convert("RGB"), 5).save(target, optimize=True)


def test_corrupt_upload_shows_the_error(page, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(PHOTO.read_bytes()[:20000])  # a real JPEG cut short
    page.set_input_files("#file", str(broken))
    page.click("#run")
    error = page.locator("#error")
    error.wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert "broken.jpg" in error.inner_text() and "truncated or corrupt" in error.inner_text()
    assert page.locator("#result").is_hidden()


@pytest.mark.parametrize(
    "name, payload, needle",
    [
        ("notes.png", b"just some text", "is not an image"),
        ("big.png", b"\0" * (2**20 + 10), "is too large"),
    ],
)
def test_bad_files_show_a_message(page, tmp_path, name, payload, needle):
    f = tmp_path / name
    f.write_bytes(payload)
    page.set_input_files("#file", str(f))
    page.click("#run")
    page.locator("#error").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert needle in page.locator("#error").inner_text()


def test_example_with_a_missing_weights_file_shows_the_error(page):
    page.select_option("#example", "clock_motion.png")
    page.fill("#weights", "/no/such/weights.safetensors")
    page.click("#run")
    page.locator("#error").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert "weights file not found or not readable" in page.locator("#error").inner_text()


def test_event_section_states_whether_event_support_is_installed(page):
    page.click("#events summary")
    fn, reason = event_support()
    note = page.locator("#events-note").inner_text()
    if fn is None:
        assert note == reason and "event support not installed" in note
        assert page.locator("#events-run").is_disabled()
    else:
        assert page.locator("#events-run").is_enabled()


def test_event_recording_frames_can_be_paged(page, server, monkeypatch, tmp_path):
    """With an event reader installed (here a stand-in for deblurkit.io.events), the page uploads
    a recording and pages through the frames it returns."""
    import sys
    import types

    import torch

    from deblurkit.app.events import AEDAT4_SIGNATURE

    def deblur_recording(path, *, model, weights, device, progress):
        for i in range(3):
            progress(i + 1, 3)
            yield torch.full((1, 40, 60), (i + 1) / 4)

    fake = types.ModuleType("deblurkit.io.events")
    fake.deblur_recording = deblur_recording
    monkeypatch.setitem(sys.modules, "deblurkit.io.events", fake)
    page.reload()
    page.wait_for_selector("body[data-ready='1']")
    recording = tmp_path / "night.aedat4"
    recording.write_bytes(AEDAT4_SIGNATURE + b"\r\n(packets)")
    page.click("#events summary")
    assert page.locator("#events-run").is_enabled()
    page.set_input_files("#events-file", str(recording))
    page.click("#events-run")
    page.locator("#frames").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    means = []
    for k in range(3):
        assert page.locator("#frame-label").inner_text() == f"frame {k + 1} / 3"
        page.wait_for_selector("#frame-img[src*='frame_000%d.png']" % k)
        means.append(fetch_png(server, page.get_attribute("#frame-img", "src")).mean())
        if k < 2:
            page.click("#frame-next")
    assert page.locator("#frame-next").is_disabled()
    assert means == pytest.approx([255 / 4, 255 / 2, 255 * 3 / 4], abs=0.6)
    page.click("#frame-prev")
    assert page.locator("#frame-label").inner_text() == "frame 2 / 3"


# ---------------------------------------------------------------- other sites (issue 14, item 2)
@pytest.fixture(scope="module")
def other_site():
    """A second web server on this computer (another origin), reached as http://evil.test:PORT/
    (Chromium maps evil.test to 127.0.0.1): what a page of an attacker's site looks like."""
    import http.server
    import threading

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b"<!doctype html><title>another site</title><form id=f method=post enctype=text/plain></form>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://evil.test:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_another_site_cannot_start_jobs(browser, server, other_site):
    before = set(server.workspace.root.iterdir())  # jobs of earlier tests (same server)
    page = browser.new_page()
    try:
        page.goto(other_site + "/")
        app = server.base
        outcome = page.evaluate(
            """async (app) => {
                 const tries = [
                   fetch(app + '/api/jobs?example=clock_motion.png&tile=off',
                         {method: 'POST', mode: 'no-cors', headers: {'Content-Type': 'text/plain'}, body: 'x'}),
                   fetch(app + '/api/jobs?tile=off', {method: 'POST', body: new Blob(['x'])}),
                 ];
                 const out = [];
                 for (const t of tries) { try { await t; out.push('sent'); } catch (e) { out.push('blocked'); } }
                 return out;
               }""", app)
        assert outcome[0] == "sent"  # the no-cors request did go out (its answer is opaque)
        # a classic form post, too (navigates the page to the app's answer)
        with page.expect_navigation() as nav:
            page.evaluate("(app) => { const f = document.getElementById('f'); "
                          "f.action = app + '/api/jobs?example=clock_motion.png&tile=off'; f.submit(); }", app)
        assert nav.value.status == 403 and "cross-site request refused" in nav.value.text()
    finally:
        page.close()
    assert set(server.workspace.root.iterdir()) == before, "another site's page started a job"


def test_a_rebound_host_name_gets_nothing(browser, server):
    """DNS rebinding: evil.test now resolves to 127.0.0.1; its pages must get no answer from the app."""
    page = browser.new_page()
    try:
        port = server.base.rsplit(":", 1)[1]
        response = page.goto(f"http://evil.test:{port}/")
        assert response.status == 403 and "host 'evil.test:" in page.content()
        status = page.evaluate("async () => (await fetch('/api/info')).status")
        assert status == 403
    finally:
        page.close()


# ---------------------------------------------------------------- as a person sees it (issue 14, item 9)
def _screenshot(page, name: str, tmp_path) -> Path:
    """A full-page screenshot; also written (posterised to 5 bits, to stay small) beside
    ``DEBLURKIT_SCREENSHOT`` under ``name`` when that is set (docs/images/)."""
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    target = os.environ.get("DEBLURKIT_SCREENSHOT")
    if target:
        from PIL import ImageOps

        ImageOps.posterize(Image.open(shot).convert("RGB"), 5).save(Path(target).parent / name, optimize=True)
    return shot


def _run_example(page, name="clock_motion.png"):
    page.select_option("#example", name)
    page.click("#run")
    page.wait_for_selector("#result[data-job]", timeout=RUN_TIMEOUT_MS)


def test_a_failed_run_removes_the_previous_result_and_its_download_link(page):
    _run_example(page)
    assert page.locator("#download").is_visible()
    page.fill("#weights", "/no/such/weights.safetensors")
    page.click("#run")
    page.locator("#error").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    assert page.locator("#result").is_hidden() and not page.locator("#download").is_visible()
    assert page.get_attribute("#download", "href") is None  # nothing left to download by mistake
    assert page.get_attribute("#result-img", "src") is None


def test_the_before_after_slider_shows_its_divider(page):
    _run_example(page)
    box = page.locator("#compare").bounding_box()
    for value in (50, 20, 85):
        page.locator("#slider").fill(str(value))
        line = page.locator("#compare-divider")
        assert line.is_visible()
        lb = line.bounding_box()
        centre = lb["x"] + lb["width"] / 2
        assert abs(centre - (box["x"] + box["width"] * value / 100)) <= 1.5, (value, lb, box)
        assert lb["height"] == pytest.approx(box["height"], abs=1) and lb["width"] >= 2
        # the divider is where "before" ends and "after" begins
        assert f"{value}%" in page.get_attribute("#compare-after", "style")


def test_the_page_works_at_phone_width(browser, server, tmp_path):
    page = browser.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        page.goto(server.base + "/")
        page.wait_for_selector("body[data-ready='1']")
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 390, f"the page is {wide} px wide at a 390 px screen"
        for sel in ("#file", "#example", "#model", "#weights", "#run"):
            b = page.locator(sel).bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= 390, (sel, b)
        _run_example(page, "licenseplate_motion.jpg")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for sel in ("#result-img", "#compare", "#slider", "#download"):
            b = page.locator(sel).bounding_box()
            assert b["x"] >= 0 and b["x"] + b["width"] <= 390, (sel, b)
        page.locator("#slider").fill("35")
        assert page.locator("#compare-divider").is_visible()
        shot = _screenshot(page, "webapp_phone.png", tmp_path)
        assert Image.open(shot).size[0] == 390
    finally:
        page.close()
