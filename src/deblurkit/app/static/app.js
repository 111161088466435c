// deblurkit web app: talks only to the server it came from (see deblurkit/app/server.py).
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let currentJob = null;
let eventJob = null;
let frameIndex = 0;

function showError(box, message) {
  box.textContent = message;  // text, never HTML
  box.hidden = !message;
}

async function api(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("the deblurkit server did not answer (" + err.message + ")");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  if (!response.ok) {
    throw new Error((data && data.error) || ("request failed with HTTP " + response.status));
  }
  return data;
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

function fileUrl(job, name, download) {
  return "/api/jobs/" + job.id + "/files/" + name + (download ? "?download=1" : "?t=" + Date.now());
}

function setProgress(bar, text, job) {
  if (job.total > 0) { bar.max = job.total; bar.value = job.done; } else { bar.removeAttribute("value"); }
  text.textContent = job.state === "running" && job.total > 0 ? "tile " + job.done + " / " + job.total : job.message;
}

async function poll(job, bar, text) {
  for (;;) {
    const data = await api("/api/jobs/" + job.id);
    job = data.job;
    setProgress(bar, text, job);
    if (job.state === "done" || job.state === "error") return job;
    await new Promise((r) => setTimeout(r, 200));
  }
}

function tooLarge(file) {
  if (file.size <= info.max_upload_bytes) return null;
  const mb = (n) => (n / 1048576).toFixed(1);
  return "'" + file.name + "' is too large: " + mb(file.size) + " MB, the limit is " +
    mb(info.max_upload_bytes) + " MB (deblurkit serve --max-upload-mb)";
}

// ------------------------------------------------------------------ image deblurring
async function runImage(event) {
  event.preventDefault();
  const err = $("error");
  showError(err, "");
  const file = $("file").files[0];
  const example = $("example").value;
  if (!file && !example) { showError(err, "choose an image to upload or pick an example"); return; }
  if (file && tooLarge(file)) { showError(err, tooLarge(file)); return; }
  const params = new URLSearchParams({
    model: $("model").value, weights: $("weights").value.trim(),
    tile: $("tile").value, precision: $("precision").value,
  });
  const options = { method: "POST" };
  if (file) {
    options.body = file;
    options.headers = { "Content-Type": "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) };
  } else {
    params.set("example", example);
  }
  if (currentJob) { fetch("/api/jobs/" + currentJob.id, { method: "DELETE" }).catch(() => {}); currentJob = null; }
  clearResult();  // the previous result (and its Download link) is gone with its job
  $("run").disabled = true;
  $("status").hidden = false;
  $("status-text").textContent = "uploading";
  $("progress").removeAttribute("value");
  try {
    const data = await api("/api/jobs?" + params.toString(), options);
    const job = await poll(data.job, $("progress"), $("status-text"));
    if (job.state === "error") throw new Error(job.error);
    currentJob = job;
    await showResult(job);
    $("status-text").textContent = "done";
  } catch (e) {
    $("status").hidden = true;
    showError(err, e.message);
  } finally {
    $("run").disabled = false;
  }
}

function loaded(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error("the browser could not show " + src));
    img.src = src;
  });
}

async function showResult(job) {
  const inputSrc = fileUrl(job, "input.png");
  const resultSrc = fileUrl(job, "result.png");
  $("result").hidden = false;
  await Promise.all([
    loaded($("input-img"), inputSrc), loaded($("result-img"), resultSrc),
    loaded($("compare-before"), inputSrc), loaded($("compare-after-img"), resultSrc),
  ]);
  $("download").href = fileUrl(job, "result.png", true);
  // classical pipeline: the kernel it used, and whether its estimate fell back
  const note = $("run-note");
  note.textContent = job.note || "";
  note.hidden = !job.note;
  note.classList.toggle("warning", !!job.fell_back);
  const hasKernel = job.files.includes("kernel.png");
  $("kernel").hidden = !hasKernel;
  if (hasKernel) await loaded($("kernel-img"), fileUrl(job, "kernel.png"));
  $("result").dataset.job = job.id;
}

function clearResult() {
  $("result").hidden = true;
  delete $("result").dataset.job;
  $("download").removeAttribute("href");
  for (const id of ["input-img", "result-img", "compare-before", "compare-after-img"]) $(id).removeAttribute("src");
}

function moveSlider() {
  $("compare-after").style.clipPath = "inset(0 0 0 " + $("slider").value + "%)";
  $("compare-divider").style.left = $("slider").value + "%";
}

// ------------------------------------------------------------------ event recordings
async function runEvents(event) {
  event.preventDefault();
  const err = $("events-error");
  showError(err, "");
  const file = $("events-file").files[0];
  if (!file) { showError(err, "choose an .aedat4 recording"); return; }
  if (tooLarge(file)) { showError(err, tooLarge(file)); return; }
  const params = new URLSearchParams({ model: $("events-model").value, weights: $("events-weights").value.trim() });
  $("events-run").disabled = true;
  $("events-status").hidden = false;
  $("frames").hidden = true;
  try {
    const data = await api("/api/events?" + params.toString(), {
      method: "POST", body: file,
      headers: { "Content-Type": "application/octet-stream", "X-File-Name": encodeURIComponent(file.name) },
    });
    const job = await poll(data.job, $("events-progress"), $("events-status-text"));
    if (job.state === "error") throw new Error(job.error);
    eventJob = job;
    frameIndex = 0;
    $("frames").hidden = false;
    showFrame();
  } catch (e) {
    $("events-status").hidden = true;
    showError(err, e.message);
  } finally {
    $("events-run").disabled = false;
  }
}

function showFrame() {
  const n = eventJob.frames;
  frameIndex = Math.max(0, Math.min(n - 1, frameIndex));
  const name = "frame_" + String(frameIndex).padStart(4, "0") + ".png";
  $("frame-img").src = fileUrl(eventJob, name);
  $("frame-label").textContent = "frame " + (frameIndex + 1) + " / " + n;
  $("frame-prev").disabled = frameIndex === 0;
  $("frame-next").disabled = frameIndex >= n - 1;
}

// ------------------------------------------------------------------ start
async function start() {
  try {
    info = await api("/api/info");
  } catch (e) {
    showError($("error"), e.message);
    return;
  }
  const model = $("model");
  model.appendChild(option("", "default: " + info.default_model_label));
  if (info.embedded_model) {
    model.appendChild(option(info.embedded_model, info.embedded_model + " (network, embedded weights)"));
  }
  for (const name of info.models) model.appendChild(option(name, name + " (network, needs a weights file)"));
  model.value = "";
  for (const name of info.examples) $("example").appendChild(option(name, name));
  for (const name of info.event_models) $("events-model").appendChild(option(name, name));
  $("events-note").textContent = info.events_available
    ? "Upload a DAVIS recording; its deblurred frames can be paged through below."
    : info.events_reason;
  $("events-run").disabled = !info.events_available;

  $("file").addEventListener("change", () => { if ($("file").files.length) $("example").value = ""; });
  $("example").addEventListener("change", () => { if ($("example").value) $("file").value = ""; });
  $("image-form").addEventListener("submit", runImage);
  $("slider").addEventListener("input", moveSlider);
  $("events-form").addEventListener("submit", runEvents);
  $("frame-prev").addEventListener("click", () => { frameIndex -= 1; showFrame(); });
  $("frame-next").addEventListener("click", () => { frameIndex += 1; showFrame(); });
  moveSlider();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", start);
