// Chorus explorer: plain JavaScript, no build step. Talks to the JSON API of the same server.
"use strict";

const $ = (sel) => document.querySelector(sel);
let catalog = { runs: [], indexes: [], limits: {} };
const alignClips = { a: null, b: null };
let lastImage = null;  // the image a question is about

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function post(path, form) {
  const response = await fetch(path, { method: "POST", body: form });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail
      : Array.isArray(body.detail) ? body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ")
      : response.statusText;
    throw new Error(detail);
  }
  return body;
}

// ------------------------------------------------------------------ catalogue

function runFor(modality, zeroShot) {
  const ok = (r) => r.modalities.includes(modality) && (!zeroShot || r.zero_shot.includes(modality));
  const chosen = catalog.runs.find((r) => r.name === $("#run-select").value);
  return chosen && ok(chosen) ? chosen : catalog.runs.find(ok);
}

function indexFor(modality) {
  const ok = (i) => (catalog.runs.find((r) => r.name === i.run) || { modalities: [] }).modalities.includes(modality);
  const chosen = catalog.indexes.find((i) => i.name === $("#index-select").value);
  return chosen && ok(chosen) ? chosen : catalog.indexes.find(ok);
}

async function loadCatalog() {
  try {
    const response = await fetch("/runs");
    catalog = await response.json();
  } catch (err) {
    setStatus(`Cannot reach the server: ${err.message}`, true);
    return;
  }
  $("#run-select").replaceChildren(...catalog.runs.map((r) =>
    el("option", { value: r.name, text: `${r.name} (${r.modalities.join(" + ")})` })));
  $("#index-select").replaceChildren(...catalog.indexes.map((i) =>
    el("option", { value: i.name, text: `${i.name}: ${i.count} ${i.modality} items from ${i.dataset}` })));
  $("#say-card").hidden = !(catalog.voices || []).length;
  $("#question-form").hidden = !catalog.runs.some((r) => r.task === "vqa");
  const runs = catalog.runs.length + (catalog.captioners || []).length, indexes = catalog.indexes.length;
  setStatus(`Ready: ${runs} model${runs === 1 ? "" : "s"}, ${indexes} search index${indexes === 1 ? "" : "es"}. ` +
    "Drop an image or a sound, record yourself, or type words.");
}

// ------------------------------------------------------------------ rendering

function showPredictions(result) {
  const list = result.labels.slice(0, 10).map((p) => el("li", { class: "prediction" },
    el("span", { class: "label", text: p.label, title: p.label }),
    el("span", { class: "track" }, el("span", { class: "fill", style: `width:${(100 * p.score).toFixed(1)}%` })),
    el("span", { class: "score", text: `${(100 * p.score).toFixed(1)}%` })));
  $("#predictions").replaceChildren(...list);
  $("#predictions-note").textContent = `— answered by run “${result.run}”`;
  $("#predictions-card").hidden = false;
}

function showNeighbours(result) {
  const items = result.hits.map((h) => {
    const preview = h.media_type === "image" ? el("img", { src: h.media_url, alt: h.label || `item ${h.item}`, loading: "lazy" })
      : h.media_type === "audio" ? el("audio", { src: h.media_url, controls: "", preload: "none" })
      : el("p", { text: h.text || "" });
    return el("li", { class: "hit" }, preview,
      el("div", { class: "hit-label", text: h.label != null ? h.label : `#${h.item}` }),
      el("div", { class: "score", text: `similarity ${h.score.toFixed(3)}` }));
  });
  $("#neighbours").replaceChildren(...items);
  $("#neighbours-note").textContent =
    `— ${result.index_modality} items of “${result.index}”, closest first (run “${result.run}”)`;
  $("#neighbours-card").hidden = false;
}

function showQuery(blob, modality, text) {
  const box = $("#query");
  if (modality === "image") box.replaceChildren(el("img", { src: URL.createObjectURL(blob), alt: "your image" }));
  else if (modality === "audio") box.replaceChildren(el("audio", { src: URL.createObjectURL(blob), controls: "" }));
  else box.replaceChildren(el("p", { text: `“${text}”` }));
}

// ------------------------------------------------------------------ asking

function showCaption(result) {
  const caption = $("#caption");
  caption.textContent = `“${result.caption}” — ${result.run}`;
  caption.hidden = false;
}

async function ask(modality, payload, filename) {
  $("#predictions-card").hidden = true;
  $("#neighbours-card").hidden = true;
  $("#caption").hidden = true;
  const jobs = [];
  if (modality === "image" && (catalog.captioners || []).length) {
    const form = new FormData();
    form.append("image", payload, filename);
    jobs.push(post("/caption", form).then(showCaption));
  }
  const run = modality !== "text" && runFor(modality, true);
  if (run) {
    const form = new FormData();
    form.append(modality, payload, filename);
    form.append("run", run.name);
    const classes = $("#classes").value.trim();
    if (classes && run.task === "contrastive") form.append("classes", classes);
    jobs.push(post("/zeroshot", form).then(showPredictions));
  }
  const index = indexFor(modality);
  if (index) {
    const form = new FormData();
    if (modality === "text") form.append("text", payload); else form.append(modality, payload, filename);
    form.append("index", index.name);
    form.append("k", "8");
    jobs.push(post("/search", form).then(showNeighbours));
  }
  if (!jobs.length && modality === "image" && !$("#question-form").hidden) {
    setStatus("Now ask a question about the image.");
    return;
  }
  if (!jobs.length) {
    setStatus(`No loaded model can use ${modality} input.`, true);
    return;
  }
  setStatus("Thinking…");
  const outcomes = await Promise.allSettled(jobs);
  const failed = outcomes.find((o) => o.status === "rejected");
  if (failed) setStatus(failed.reason.message, true); else setStatus("Done. Try another one.");
}

function askFile(file) {
  const modality = file.type.startsWith("image/") ? "image" : file.type.startsWith("audio/") ? "audio" : null;
  if (!modality) {
    setStatus(`“${file.name}” is not an image or audio file.`, true);
    return;
  }
  showQuery(file, modality);
  if (modality === "image") lastImage = file;
  ask(modality, file, file.name);
  if (modality === "image" && $("#question-input").value.trim() && !$("#question-form").hidden) askQuestion();
}

// A VQA run answers a question about the last image given.
async function askQuestion() {
  const question = $("#question-input").value.trim();
  if (!lastImage) { setStatus("Drop an image first, then ask about it.", true); return; }
  if (!question) { setStatus("Type a question first.", true); return; }
  const run = catalog.runs.find((r) => r.name === $("#run-select").value && r.task === "vqa")
    || catalog.runs.find((r) => r.task === "vqa");
  const form = new FormData();
  form.append("image", lastImage, lastImage.name);
  form.append("question", question);
  form.append("run", run.name);
  setStatus("Thinking…");
  try {
    const result = await post("/ask", form);
    showPredictions({ labels: result.answers });
    setStatus(`${result.question} → ${result.answer}`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// ------------------------------------------------------------------ recording (PCM → WAV in the browser)

function encodeWav(samples, rate) {
  const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
  const text = (offset, s) => [...s].forEach((c, i) => view.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + samples.length * 2, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, samples.length * 2, true);
  samples.forEach((s, i) => view.setInt16(44 + i * 2, Math.max(-1, Math.min(1, s)) * 0x7fff, true));
  return new Blob([view], { type: "audio/wav" });
}

async function record(button, seconds, done) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser cannot record audio here (recording needs https or localhost).", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    setStatus(`Microphone not available: ${err.message}`, true);
    return;
  }
  const context = new AudioContext();
  const source = context.createMediaStreamSource(stream);
  const node = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
  source.connect(node); node.connect(context.destination);
  const label = button.textContent;
  button.classList.add("recording");
  button.textContent = `■ Recording (${seconds} s)…`;
  await new Promise((resolve) => { button.onclick = resolve; setTimeout(resolve, seconds * 1000); });
  button.onclick = null;
  node.disconnect(); source.disconnect(); stream.getTracks().forEach((t) => t.stop());
  const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((offset, c) => { samples.set(c, offset); return offset + c.length; }, 0);
  const rate = context.sampleRate;
  await context.close();
  button.classList.remove("recording");
  button.textContent = label;
  done(encodeWav(samples, rate));
}

// ------------------------------------------------------------------ alignment

async function align() {
  const a = alignClips.a || $("#align-a").files[0], b = alignClips.b || $("#align-b").files[0];
  if (!a || !b) {
    setStatus("Choose or record both clips A and B to compare them.", true);
    return;
  }
  const form = new FormData();
  form.append("a", a, "a.wav");
  form.append("b", b, "b.wav");
  setStatus("Aligning…");
  try {
    const result = await post("/align", form);
    $("#align-out").replaceChildren(
      el("img", { src: result.picture, alt: "DTW cost matrix with the alignment path" }),
      el("p", { text: `Mean frame distance along the path: ${result.mean_cost.toFixed(2)} ` +
        `(${result.frames[0]} × ${result.frames[1]} frames of ${1000 * result.frame_seconds} ms).` }));
    setStatus("Aligned.");
  } catch (err) {
    setStatus(err.message, true);
  }
}

// ------------------------------------------------------------------ say it (text to speech)

async function say(event) {
  event.preventDefault();
  const text = $("#say-text").value.trim();
  if (!text) { setStatus("Type digit words first, e.g. four two seven.", true); return; }
  const form = new FormData();
  form.append("text", text);
  setStatus("Synthesising…");
  try {
    const response = await fetch("/speak", { method: "POST", body: form });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new Error(typeof body.detail === "string" ? body.detail : response.statusText);
    }
    const audio = $("#say-audio");
    audio.src = URL.createObjectURL(await response.blob());
    audio.hidden = false;
    audio.play().catch(() => {});
    setStatus(`Said “${text}”.`);
  } catch (err) {
    setStatus(err.message, true);
  }
}

// ------------------------------------------------------------------ wiring

function wire() {
  const drop = $("#drop");
  $("#file-input").addEventListener("change", (e) => e.target.files[0] && askFile(e.target.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("#file-input").click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files[0]) askFile(e.dataTransfer.files[0]);
  });
  $("#text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("#text-input").value.trim();
    if (!text) { setStatus("Type some words first.", true); return; }
    showQuery(null, "text", text);
    ask("text", text);
  });
  $("#question-form").addEventListener("submit", (e) => { e.preventDefault(); askQuestion(); });
  $("#record").addEventListener("click", (e) => {
    if (e.currentTarget.classList.contains("recording")) return;
    record(e.currentTarget, 3, (wav) => { showQuery(wav, "audio"); ask("audio", wav, "recording.wav"); });
  });
  document.querySelectorAll(".record-into").forEach((button) => button.addEventListener("click", () => {
    if (button.classList.contains("recording")) return;
    record(button, 3, (wav) => { alignClips[button.dataset.target] = wav; setStatus(`Clip ${button.dataset.target.toUpperCase()} recorded.`); });
  }));
  ["a", "b"].forEach((k) => $(`#align-${k}`).addEventListener("change", () => { alignClips[k] = null; }));
  $("#align-go").addEventListener("click", align);
  $("#say-form").addEventListener("submit", say);
}

wire();
loadCatalog();
