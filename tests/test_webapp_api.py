"""The web app's HTTP API (deblurkit.app), driven over a real socket: runs, bad input, temp files."""
from __future__ import annotations

import io
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deblurkit.deconv.blind as blind_mod
from deblurkit.app import AppConfig
from deblurkit.app.events import AEDAT4_SIGNATURE
from deblurkit.inference import ClassicalDeblurrer, Deblurrer, read_kernel
from deblurkit.io import read_image
from deblurkit.synth import blur_valid_pair, levin_kernels
from deblurkit.synth.noise import poisson_gaussian_noise, quantize_8bit
from webapp_server import LiveServer

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "real_blur"
PHOTO = EXAMPLES / "licenseplate_motion.jpg"


def png_bytes(image: torch.Tensor) -> bytes:
    arr = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> torch.Tensor:
    arr = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(arr).permute(2, 0, 1)


LEVIN = None


def true_kernel() -> torch.Tensor:
    """The real Levin et al. 2009 kernel levin09_3 (15x15) that blurred :func:`blurred`."""
    global LEVIN
    if LEVIN is None:
        from conftest import DATA

        LEVIN = levin_kernels(DATA / "kernels" / "levin09_kernels.npz")["levin09_3"]
    return LEVIN.clone()


@pytest.fixture(autouse=True)
def fast_estimator(monkeypatch):
    """The default (classical) runs "estimate" the true kernel of :func:`blurred` at once: these
    tests are about the app; the estimator is tested in tests/test_deconv_blind.py."""
    monkeypatch.setattr(blind_mod, "estimate_kernel", lambda grey, kernel_size, **opts: true_kernel())


@pytest.fixture()
def blurred(shared_data) -> torch.Tensor:
    """A real photo crop (mate_Wood) blurred with levin09_3 (valid), noise 0.01, 8-bit: (3,186,226)."""
    photo = read_image(shared_data / "photos" / "wallpaper" / "mate_Wood.jpg")
    y, _ = blur_valid_pair(photo[None, :, 400:600, 700:940], true_kernel())
    return quantize_8bit(poisson_gaussian_noise(y, sigma=0.01, generator=torch.Generator().manual_seed(0)))[0]


@pytest.fixture()
def crop() -> torch.Tensor:
    """A 96x72 crop of a real motion-blurred photo (the licence plate), (3,72,96) in [0,1]."""
    return read_image(PHOTO)[:, 200:272, 250:346].contiguous()


@pytest.fixture()
def server(tmp_path):
    cfg = AppConfig(max_upload_mb=1.0, max_megapixels=0.5, examples_dir=EXAMPLES, device="cpu",
                    workdir=tmp_path / "work")
    with LiveServer(cfg) as s:
        yield s


def job_files(server) -> dict[str, set[str]]:
    return {p.name: {q.name for q in p.iterdir()} for p in server.workspace.root.iterdir()}


def test_info_offers_the_classical_default_the_embedded_network_and_the_examples(server):
    status, info, headers = server.call("GET", "/api/info")
    assert status == 200
    assert info["default_model"] == "classical" and "kernel" in info["default_model_label"]
    assert info["embedded_model"] == "mimo_unet_small" and info["embedded_model_error"] is None
    assert "mimo_unet" in info["models"] and "msdi_net" in info["models"]
    assert "msdi_encoder" not in info["models"] and "patchgan_b2b" not in info["models"]
    assert info["examples"] == sorted(p.name for p in EXAMPLES.iterdir() if p.suffix != ".md")
    assert info["max_upload_bytes"] == 2**20
    assert "default-src 'self'" in headers["content-security-policy"]
    status, page, _ = server.call("GET", "/")
    assert status == 200 and b"/static/app.js" in page and b"http" not in page  # nothing external


def test_upload_is_deblurred_like_the_library_does_and_name_never_becomes_a_path(server, blurred, tmp_path):
    crop = blurred
    status, body, _ = server.call(
        "POST", "/api/jobs?tile=off", data=png_bytes(crop),
        headers={"X-File-Name": "..%2F..%2Fevil%20name%07.png", "Content-Type": "application/octet-stream"},
    )
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done", job
    assert job["total"] == 1 and job["done"] == 1
    assert job["name"] == "evil name.png"
    status, data, headers = server.call("GET", f"/api/jobs/{job['id']}/files/result.png?download=1")
    assert status == 200
    assert 'filename="evil_name_deblurred.png"' in headers["content-disposition"]
    result = decode(data)
    expected = ClassicalDeblurrer(tile=None, progress=False).deblur_tensor(crop)  # the default
    assert result.shape == crop.shape
    assert (result - expected).abs().max() <= 1 / 255 + 1e-6  # the library's output, 8-bit rounded
    assert (result - crop).abs().mean() > 2e-3  # and not the input
    # the kernel used is shown, and said
    assert job["note"].startswith("kernel ") and " estimated in " in job["note"] and job["fell_back"] is False, job
    status, data, headers = server.call("GET", f"/api/jobs/{job['id']}/files/kernel.png?download=1")
    assert status == 200 and 'filename="evil_name_kernel.png"' in headers["content-disposition"]
    kernel_file = tmp_path / "kernel.png"
    kernel_file.write_bytes(data)
    shown = read_kernel(kernel_file)  # the true kernel, cropped to its support by the pipeline
    pad = [(15 - shown.shape[1]) // 2] * 2 + [(15 - shown.shape[0]) // 2] * 2
    assert torch.allclose(torch.nn.functional.pad(shown, pad), true_kernel(), atol=3e-3)
    # only the app's own fixed names inside its own folder
    assert job_files(server) == {job["id"]: {"upload.png", "input.png", "result.png", "kernel.png"}}
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == [server.workspace.root.name]
    assert not any("evil" in p.name for p in tmp_path.rglob("*"))


def test_embedded_network_runs_without_weights_like_the_library(server, crop):
    status, body, _ = server.call("POST", "/api/jobs?model=mimo_unet_small&tile=off", data=png_bytes(crop))
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done" and job["note"] == "" and "kernel.png" not in job["files"], job
    _, data, _ = server.call("GET", f"/api/jobs/{job['id']}/files/result.png")
    expected = Deblurrer("mimo_unet_small", tile=None, progress=False).deblur_tensor(crop)
    assert (decode(data) - expected).abs().max() <= 1 / 255 + 1e-6


def test_unreliable_kernel_estimate_is_reported(server, crop, monkeypatch):
    noise = torch.rand(31, 31, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(blind_mod, "estimate_kernel", lambda grey, kernel_size, **opts: noise / noise.sum())
    status, body, _ = server.call("POST", "/api/jobs?tile=off", data=png_bytes(crop))
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done" and job["fell_back"] is True, job
    assert job["note"].startswith("kernel estimate unreliable (") and "wrote the input unchanged" in job["note"]
    _, data, _ = server.call("GET", f"/api/jobs/{job['id']}/files/result.png")
    assert (decode(data) - crop).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("model", ["classical", "mimo_unet_small"])
def test_tiled_run_reports_tile_progress(server, blurred, model):
    status, body, _ = server.call("POST", f"/api/jobs?tile=96&model={model}", data=png_bytes(blurred))
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done" and not job["fell_back"], job
    assert job["total"] > 1 and job["done"] == job["total"]  # 226x186 in tiles of 96


def test_example_photo_grey_stays_grey(server):
    status, body, _ = server.call("POST", "/api/jobs?example=clock_motion.png&tile=off", data=b"")
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done", job
    for name in ("input.png", "result.png"):
        status, data, _ = server.call("GET", f"/api/jobs/{job['id']}/files/{name}")
        im = Image.open(io.BytesIO(data))
        assert status == 200 and im.size == (400, 300) and im.mode == "L"


@pytest.mark.parametrize(
    "query, data, status, needle",
    [
        ("", b"hello, this is not an image", 400, "is not an image"),
        ("", b"", 400, "is empty"),
        ("", PHOTO.read_bytes()[:20000], 400, "truncated or corrupt"),
        ("", b"x" * (2**20 + 1), 413, "too large"),
        ("?model=no_such_net", b"", 400, "unknown model 'no_such_net'"),
        ("?model=msdi_encoder", b"", 400, "unknown model 'msdi_encoder'"),
        ("?model=mimo_unet", b"", 400, "needs a weights file"),
        ("?model=classical&weights=" + str(EXAMPLES / "LICENSES.md"), b"", 400, "has suffix '.md'"),
        ("?precision=bf16", b"", 400, "classical pipeline runs in fp32"),
        ("?weights=/no/such/file.pth", b"", 400, "weights file not found or not readable"),
        ("?weights=" + str(PHOTO), b"", 400, "has suffix '.jpg'"),
        ("?tile=7", b"", 400, "tile must be between"),
        ("?tile=big", b"", 400, "tile must be 'auto'"),
        ("?precision=fp8", b"", 400, "precision must be"),
        ("?example=../../pyproject.toml", b"", 404, "no such example"),
    ],
)
def test_bad_requests_get_a_clear_message_and_leave_no_files(server, query, data, status, needle):
    got, body, _ = server.call("POST", "/api/jobs" + query, data=data, headers={"X-File-Name": "photo.jpg"})
    assert got == status, body
    assert needle in body["error"]
    assert str(server.workspace.root) not in body["error"]
    assert job_files(server) == {}


def test_too_many_pixels_is_refused(server):
    big = torch.full((3, 800, 800), 0.5)  # 0.64 MP > the 0.5 MP limit, yet a tiny PNG
    status, body, _ = server.call("POST", "/api/jobs", data=png_bytes(big), headers={"X-File-Name": "huge.png"})
    assert status == 413 and "over the limit of 0.5 MP" in body["error"], body


def test_unreadable_checkpoint_fails_the_job_with_its_message(server, crop, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00" * 64)
    status, body, _ = server.call("POST", f"/api/jobs?model=mimo_unet&weights={bad}", data=png_bytes(crop))
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "error" and job["error"], job
    assert "result.png" not in job["files"]


def test_paths_cannot_escape(server, crop):
    _, body, _ = server.call("POST", "/api/jobs", data=png_bytes(crop))
    jid = server.wait_job(body["job"]["id"])["id"]
    for path in (f"/api/jobs/{jid}/files/upload.png", f"/api/jobs/{jid}/files/..%2F..%2Fetc%2Fpasswd",
                 "/api/jobs/..%2F..%2Fetc", "/api/jobs/" + "0" * 32, "/api/examples/..%2FLICENSES.md",
                 "/api/examples/LICENSES.md"):
        status, body, _ = server.call("GET", path)
        assert status == 404, (path, body)


def test_temporary_files_are_removed(tmp_path, crop):
    cfg = AppConfig(examples_dir=None, device="cpu", workdir=tmp_path)
    with LiveServer(cfg) as s:
        root = s.workspace.root
        ids = []
        for _ in range(2):
            _, body, _ = s.call("POST", "/api/jobs?tile=off", data=png_bytes(crop))
            ids.append(s.wait_job(body["job"]["id"])["id"])
        assert {p.name for p in root.iterdir()} == set(ids)
        status, _, _ = s.call("DELETE", f"/api/jobs/{ids[0]}")
        assert status == 200 and not (root / ids[0]).exists() and (root / ids[1]).is_dir()
        assert s.call("GET", f"/api/jobs/{ids[0]}")[0] == 404
    assert not root.exists()  # the whole workspace goes when the app stops
    assert list(tmp_path.iterdir()) == []


def test_finished_jobs_beyond_the_limit_are_pruned(tmp_path, crop):
    with LiveServer(AppConfig(examples_dir=None, device="cpu", workdir=tmp_path, max_jobs=2)) as s:
        ids = []
        for _ in range(3):
            _, body, _ = s.call("POST", "/api/jobs?tile=off", data=png_bytes(crop))
            ids.append(s.wait_job(body["job"]["id"])["id"])
        assert {p.name for p in s.workspace.root.iterdir()} == set(ids[1:])


def test_events_without_support_say_so(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "deblurkit.io.events", None)  # import fails as if absent
    status, body, _ = server.call("POST", "/api/events", data=AEDAT4_SIGNATURE + b"\r\n")
    assert status == 501 and "event support not installed" in body["error"], body
    _, info, _ = server.call("GET", "/api/info")
    assert info["events_available"] is False and "event support not installed" in info["events_reason"]
    assert job_files(server) == {}


def test_events_call_the_io_module_and_serve_its_frames(server, monkeypatch):
    calls = []

    def deblur_recording(path, *, model, weights, device, progress):
        data = Path(path).read_bytes()
        calls.append((Path(path), model, data))
        for i in range(3):
            progress(i + 1, 3)
            yield torch.full((1, 8, 12), i / 4)

    fake = types.ModuleType("deblurkit.io.events")
    fake.deblur_recording = deblur_recording
    monkeypatch.setitem(sys.modules, "deblurkit.io.events", fake)
    payload = AEDAT4_SIGNATURE + b"\r\n...packets..."
    status, body, _ = server.call("POST", "/api/events?model=evdeblur", data=payload,
                                  headers={"X-File-Name": "../night.aedat4"})
    assert status == 202, body
    job = server.wait_job(body["job"]["id"])
    assert job["state"] == "done" and job["frames"] == 3, job
    path, model, data = calls[0]
    assert model == "evdeblur" and data == payload and path.parent.parent == server.workspace.root
    assert path.name == "recording.aedat4"
    for i in range(3):
        status, png, _ = server.call("GET", f"/api/jobs/{job['id']}/files/frame_{i:04d}.png")
        assert status == 200
        assert np.asarray(Image.open(io.BytesIO(png))).mean() == pytest.approx(255 * i / 4, abs=0.6)
    status, body, _ = server.call("POST", "/api/events", data=b"not a recording")
    assert status == 400 and "not an AEDAT 4.0 recording" in body["error"]
    status, body, _ = server.call("POST", "/api/events?model=mimo_unet", data=payload)
    assert status == 400 and "unknown event model" in body["error"]


def test_a_refused_upload_is_read_to_its_end_before_the_413_goes_out(tmp_path):
    """The flaky 413 (issue 14, item 8): answering while the client still sends makes its send fail
    with a broken pipe. Driven through ASGI directly, so the order is checked, not raced."""
    import asyncio

    from deblurkit.app import create_app

    app = create_app(AppConfig(max_upload_mb=1.0, examples_dir=None, device="cpu", workdir=tmp_path))
    chunks = [b"x" * 2**18] * 5  # 1.25 MiB > the 1 MiB limit, sent in five pieces
    events: list[str] = []
    sent: list[dict] = []

    async def receive() -> dict:
        i = sum(e == "body" for e in events)
        events.append("body")
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    async def send(message: dict) -> None:
        events.append(message["type"])
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/jobs", "raw_path": b"/api/jobs", "query_string": b"",
             "root_path": "", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 5000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-length", str(5 * 2**18).encode()),
                         (b"x-file-name", b"big.png")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert events.count("body") == len(chunks)  # every piece read (and dropped) before the answer
    assert events.index("http.response.start") > max((i for i, e in enumerate(events) if e == "body"), default=-1)
    assert b"too large" in b"".join(m.get("body", b"") for m in sent[1:])


# ---------------------------------------------------------------- who may drive the app (issue 14, item 2)
def test_requests_addressed_to_another_host_name_are_refused(server, crop):
    """DNS rebinding: a page of evil.example re-pointed to 127.0.0.1 sends Host: evil.example."""
    port = server.base.rsplit(":", 1)[1]
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", ""):
        for method, path, data in (("GET", "/api/info", None), ("GET", "/", None),
                                   ("POST", "/api/jobs?tile=off", png_bytes(crop))):
            status, body, _ = server.call(method, path, data=data, headers={"Host": host})
            assert status == 403, (host, method, path, body)
            assert "refused" in body["error"] and "--allow-host" in body["error"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        assert server.call("GET", "/api/info", headers={"Host": host})[0] == 200, host
    assert job_files(server) == {}


def test_allow_host_and_wildcard_binding(tmp_path):
    from deblurkit.app.guard import allowed_host_names, refusal

    names, any_ip = allowed_host_names("0.0.0.0", ["studio.lan"])
    assert any_ip and refusal("GET", {"host": "192.168.1.7:8000"}, names, any_ip) is None
    assert refusal("GET", {"host": "studio.lan:8000"}, names, any_ip) is None
    assert refusal("GET", {"host": "attacker.example:8000"}, names, any_ip) is not None
    names, any_ip = allowed_host_names("127.0.0.1")
    assert not any_ip and refusal("GET", {"host": "192.168.1.7:8000"}, names, any_ip) is not None


def test_cross_site_requests_change_nothing(server, crop):
    """Another site's page can POST text/plain without a CORS preflight: refused on Origin and on
    Sec-Fetch-Site, for every state-changing route, before anything is stored."""
    own = server.base
    cross = [
        {"Origin": "http://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Origin": own.replace("127.0.0.1", "localhost")},  # same machine, other origin
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "same-site"},
    ]
    for headers in cross:
        for path, data in (("/api/jobs?tile=off", png_bytes(crop)), ("/api/jobs?example=clock_motion.png", b""),
                           ("/api/events", AEDAT4_SIGNATURE + b"\r\n")):
            status, body, _ = server.call("POST", path, data=data, headers=headers)
            assert status == 403 and "cross-site request refused" in body["error"], (headers, path, body)
    assert job_files(server) == {} and server.app.state.jobs.get("x") is None
    # the page itself (same origin) works, and only it may delete
    status, body, _ = server.call("POST", "/api/jobs?tile=off", data=png_bytes(crop),
                                  headers={"Origin": own, "Sec-Fetch-Site": "same-origin"})
    assert status == 202, body
    jid = server.wait_job(body["job"]["id"])["id"]
    status, body, _ = server.call("DELETE", f"/api/jobs/{jid}", headers={"Origin": "http://evil.example"})
    assert status == 403 and jid in job_files(server)
    assert server.call("GET", f"/api/jobs/{jid}", headers={"Sec-Fetch-Site": "cross-site"})[0] == 200  # reads pass
    assert server.call("DELETE", f"/api/jobs/{jid}", headers={"Origin": own})[0] == 200


def test_weights_field_does_not_tell_whether_a_path_exists(server, tmp_path):
    folder = tmp_path / "folder.pth"
    folder.mkdir()
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    locked = tmp_path / "locked.pth"
    locked.write_bytes(b"x")
    locked.chmod(0)
    answers = []
    paths = [tmp_path / "missing.pth", folder, empty, "/root/.ssh/id_rsa.pt"]
    paths += [locked] if not os.access(locked, os.R_OK) else []  # root reads it anyway
    for path in paths:
        status, body, _ = server.call("POST", f"/api/jobs?model=mimo_unet&weights={path}", data=b"")
        answers.append((status, body["error"].replace(str(path), "PATH")))
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == 400 and "not found or not readable" in answers[0][1]
