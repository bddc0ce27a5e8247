// The page of `animate serve`: a form → POST /api/clips, then the job's events (the `--json` stream, as SSE)
// drive the progress bar; the latent preview and the outputs come from their own endpoints. An init or pose video
// picked in the form is sent to POST /api/uploads first; the clip names the `source` that returns. No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { options: null, job: null, source: null, last: null, uploads: new Set() };
window.animateSteps = [];  // every step event seen (tests read it)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  children.forEach((c) => node.append(c));
  return node;
}

async function api(path, init = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...init });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json()
    : await response.text();
  if (!response.ok) { const err = new Error(body.detail || response.statusText); err.body = body; throw err; }
  return body;
}

function outputUrl(path) {
  return "/api/outputs/" + path.split("/").map(encodeURIComponent).join("/");
}

function media(path) {
  const ext = path.split(".").pop().toLowerCase();
  if (["mp4", "webm", "mov"].includes(ext)) {
    const v = el("video", { src: outputUrl(path), loop: "", muted: "", autoplay: "", playsinline: "" });
    v.muted = true;
    return v;
  }
  return el("img", { src: outputUrl(path), alt: path });
}

function addOptions(select, names, group) {
  const target = group ? el("optgroup", { label: group }) : select;
  names.forEach((n) => target.append(el("option", { value: n, text: n })));
  if (group && names.length) select.append(target);
}

function sourceChoices() {
  const m = state.options.models;
  return [["LCM", m.lcm || []], ["motion LoRA", m["motion-lora"] || []], ["LoRA", m.lora || []],
    ["local", state.options.local.filter((l) => l.kind === "file").map((l) => l.path)]];
}

function addAdapter(source = "", weight = 1.0) {
  const row = el("div", { class: "row adapter" });
  const select = el("select", { class: "adapter-source", "aria-label": "adapter" });
  sourceChoices().forEach(([label, names]) => addOptions(select, names, label));
  if (source) select.value = source;
  const slider = el("input", { type: "range", class: "adapter-weight", min: "0", max: "2", step: "0.05",
    value: String(weight), "aria-label": "weight" });
  const shown = el("output", { class: "adapter-weight-value", text: Number(weight).toFixed(2) });
  slider.addEventListener("input", () => { shown.textContent = Number(slider.value).toFixed(2); });
  const remove = el("button", { type: "button", text: "×", title: "remove" });
  remove.addEventListener("click", () => row.remove());
  row.append(select, slider, shown, remove);
  $("adapters").append(row);
  return row;
}

function addKeyframe(frame = "", text = "") {
  const row = el("div", { class: "row keyframe" });
  const f = el("input", { type: "number", class: "kf-frame", min: "1", value: String(frame), placeholder: "frame",
    "aria-label": "keyframe frame" });
  const t = el("input", { type: "text", class: "kf-text", value: text, placeholder: "prompt at this frame",
    "aria-label": "keyframe prompt" });
  const remove = el("button", { type: "button", text: "×" });
  remove.addEventListener("click", () => row.remove());
  row.append(f, t, remove);
  $("keyframes").append(row);
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "clip";
}

function adapterName(source) {
  const base = source.split(/[\\/]/).pop().replace(/\.safetensors$/, "");
  return slug(base === "pytorch_lora_weights" || base === "diffusion_pytorch_model"
    ? source.split(/[\\/]/).slice(-2, -1)[0] : base);
}

async function upload(file, target) {
  const status = $("upload-status");
  status.textContent = `uploading ${file.name}…`;
  try {
    const done = await api("/api/uploads?name=" + encodeURIComponent(file.name), { method: "POST", body: file });
    $(target).value = done.source;
    status.textContent = `${file.name}: uploaded (${done.bytes} bytes)`;
  } catch (err) {
    $(target).value = "";
    status.textContent = "";
    showErrors(err.body && err.body.errors ? err.body.errors : [err]);
  }
}

function picker(id, target, kinds) {  // a file input whose file is uploaded; its `source` fills `target`
  const input = $(id);
  input.accept = kinds.flatMap((k) => state.options.uploads[k]).join(",");
  input.addEventListener("change", () => {
    if (!input.files.length) return;
    const pending = upload(input.files[0], target).finally(() => state.uploads.delete(pending));
    state.uploads.add(pending);
  });
}

function clipFields() {
  const num = (id) => ($(id).value === "" ? undefined : Number($(id).value));
  const text = $("prompt").value.trim();
  let prompt = text;
  const frames = [...document.querySelectorAll(".keyframe")]
    .map((r) => [r.querySelector(".kf-frame").value, r.querySelector(".kf-text").value.trim()])
    .filter(([f, t]) => f !== "" && t);
  if (frames.length) { prompt = { 0: text }; frames.forEach(([f, t]) => { prompt[Number(f)] = t; }); }
  const m = state.options.models;
  const adapters = [...document.querySelectorAll(".adapter")].map((row) => {
    const source = row.querySelector(".adapter-source").value;
    const kind = (m.lcm || []).includes(source) ? "lcm" : (m["motion-lora"] || []).includes(source) ? "motion"
      : undefined;
    return { name: kind === "lcm" ? "lcm" : adapterName(source), source,
      weight: Number(row.querySelector(".adapter-weight").value), kind };
  });
  const formats = [...document.querySelectorAll(".format:checked")].map((c) => c.value);
  const outputs = {};
  formats.forEach((f) => { outputs[f] = {}; });
  const target = $("target").value;
  if (target) { const [fmt, name] = target.split(":"); outputs[fmt] = { target: name }; }
  const init = $("init-video").value.trim();
  const pose = $("pose-source").value.trim();
  const tiny = ($("model").value || $("preset").value).startsWith("tiny");  // the offline kit has its ControlNet
  const fields = {
    name: slug(typeof prompt === "string" ? prompt : text), prompt, negative: $("negative").value.trim(),
    preset: $("preset").value, model: $("model").value, motion_adapter: $("motion-adapter").value,
    adapters, seed: num("seed"), frames: num("frames"), steps: num("steps"), width: num("width"),
    height: num("height"), fps: num("fps"), outputs: Object.keys(outputs).length ? outputs : undefined,
    init_video: init ? { source: init, strength: num("init-strength") } : undefined,
    pose: pose ? { source: pose, controlnet: tiny ? "tiny" : undefined } : undefined,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined && v !== ""
    && !(Array.isArray(v) && !v.length)));
}

function showErrors(errors) {
  const list = $("form-errors");
  list.replaceChildren(...errors.map((e) => el("li", { text: e.message || String(e) })));
}

async function render(event) {
  event.preventDefault();
  showErrors([]);
  let job;
  try {
    await Promise.all(state.uploads);  // a picked file still uploading: wait for its source
    job = await api("/api/clips", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(clipFields()) });
  } catch (err) {
    showErrors(err.body && err.body.errors ? err.body.errors : [err]);
    return;
  }
  follow(job);
}

function follow(job) {
  state.job = job;
  window.animateSteps = [];
  $("render").disabled = true;
  $("cancel").disabled = false;
  $("status").textContent = `job ${job.id}: queued`;
  $("progress").value = 0;
  if (state.source) state.source.close();
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  state.source = source;
  const on = (name, fn) => source.addEventListener(name, (e) => fn(JSON.parse(e.data)));
  on("plan", (e) => { $("status").textContent = `job ${job.id}: ${e.to_render} to render on ${e.device}`; });
  on("clip_start", (e) => { $("status").textContent = `${e.clip}: ${e.source === "render" ? "denoising" : "from store"}`; });
  on("step", (e) => {
    window.animateSteps.push(e);
    $("progress").value = e.step / e.total;
    $("status").textContent = `${e.clip}: step ${e.step}/${e.total}`;
    const img = $("latent");
    img.src = `/api/jobs/${job.id}/preview.png?step=${window.animateSteps.length}`;
    img.hidden = false;
  });
  on("clip_done", (e) => {
    const shown = e.outputs.find((p) => /\.(gif|webp|mp4|webm)$/i.test(p)) || e.outputs[0];
    state.last = { script: job.script, stem: e.clip };
    if (shown) $("result").replaceChildren(media(`${job.script}/${shown}`), el("figcaption", { text: e.clip }));
    $("copy-script").disabled = false;
  });
  on("error", (e) => showErrors([e]));
  on("summary", (e) => {
    $("status").textContent = e.interrupted ? "stopped" : `done: ${e.rendered} rendered, ${e.up_to_date} up to date, ${e.failed} failed`;
    finish();
  });
  source.onerror = async () => {  // the stream ended without a summary (a job that failed its checks) or broke
    const now = await api(`/api/jobs/${job.id}`).catch(() => null);
    if (!now || ["done", "failed", "cancelled"].includes(now.status)) {
      if (now) $("status").textContent = now.status;
      finish();
    }
  };
}

function finish() {
  if (state.source) state.source.close();
  state.source = null;
  $("render").disabled = false;
  $("cancel").disabled = true;
  loadHistory();
}

async function cancel() {
  if (state.job) await api(`/api/jobs/${state.job.id}`, { method: "DELETE" }).catch(() => null);
}

async function copyScript(script, stem) {
  const text = await api(`/api/history/${encodeURIComponent(script)}/${encodeURIComponent(stem)}/script`);
  const box = $("script-text");
  box.value = text;
  box.hidden = false;
  try { await navigator.clipboard.writeText(text); } catch (err) { box.select(); }
}

async function loadHistory() {
  const { clips } = await api("/api/history");
  $("history").replaceChildren(...clips.map((c) => {
    const shown = c.preview || c.outputs.find((p) => /\.(gif|webp|mp4|webm)$/i.test(p));
    const copy = el("button", { type: "button", text: "copy as script" });
    copy.addEventListener("click", () => copyScript(c.script, c.stem));
    const prompt = typeof c.prompt === "string" ? c.prompt : Object.values(c.prompt || {}).join(" → ");
    const item = el("li", { "data-stem": c.stem, "data-script": c.script },
      el("strong", { text: `${c.script}/${c.stem}` }), el("div", { text: prompt }));
    if (shown) item.prepend(media(shown));
    item.append(copy);
    return item;
  }));
}

async function start() {
  const options = await api("/api/options");
  state.options = options;
  $("server-info").textContent = `outputs: ${options.out}`;
  Object.entries(options.presets).forEach(([name, text]) => $("preset").append(el("option", { value: name, text: name, title: text })));
  const localFolders = options.local.filter((l) => l.kind === "folder").map((l) => l.path);
  const localFiles = options.local.filter((l) => l.kind === "file").map((l) => l.path);
  addOptions($("model"), options.models.base || [], "known");
  addOptions($("model"), [...localFolders, ...localFiles], "local");
  addOptions($("motion-adapter"), options.models.motion || [], "known");
  addOptions($("motion-adapter"), [...localFolders, ...localFiles], "local");
  options.formats.forEach((f) => {
    const box = el("input", { type: "checkbox", class: "format", value: f, id: `format-${f}` });
    box.checked = f === "gif";
    $("formats").append(el("label", { class: "inline" }, box, ` ${f}`));
  });
  addOptions($("target"), options.targets);
  picker("init-video-file", "init-video", ["video"]);
  picker("pose-file", "pose-source", ["video", "image", "json"]);
  $("add-adapter").addEventListener("click", () => addAdapter());
  $("add-keyframe").addEventListener("click", () => addKeyframe());
  $("clip-form").addEventListener("submit", render);
  $("cancel").addEventListener("click", cancel);
  $("copy-script").addEventListener("click", () => state.last && copyScript(state.last.script, state.last.stem));
  await loadHistory();
  setInterval(() => { if (!state.source) loadHistory().catch(() => null); }, 5000);  // other clients' clips too
  document.body.dataset.ready = "1";
}

start();
