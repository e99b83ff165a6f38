"use strict";
// The explorer page: no libraries, and no requests beyond this page's own server.

const SIDE = 28;
const $ = (id) => document.getElementById(id);
const digits = { a: new Float32Array(SIDE * SIDE), b: new Float32Array(SIDE * SIDE) };
const source = { a: "drawn", b: "drawn" };  // what each digit is: drawn, or a test digit and its label
const last = {};  // the request behind each result, resent with trajectory: true
let pickerStart = 0;

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// Draw 784 values (0..255, or 0..1 with scale 255) into a 28x28 canvas.
function paint(canvas, values, scale = 1) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = Math.round(values[i] * scale);
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}

function tile(values, caption, size = SIDE) {
  const figure = document.createElement("figure");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  paint(canvas, values);
  figure.append(canvas);
  if (caption) {
    const label = document.createElement("figcaption");
    label.textContent = caption;
    figure.append(label);
  }
  return figure;
}

const reading = (r) => `${r.digit} (${Math.round(100 * r.confidence)}%)`;
const steps = () => Number($("steps").value);
const image = (which) => Array.from(digits[which], (v) => Math.round(255 * Math.min(1, v)));
const empty = (which) => !digits[which].some((v) => v > 0);

async function api(path, body) {
  const started = performance.now();
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  data.ms = Math.round(performance.now() - started);
  return data;
}

function failed(err) { setStatus(err.message, true); }

// A conditional model's digit and guidance scale, sent with the mix and the samples; nothing without one.
function condition() {
  if ($("condition").hidden || $("label").value === "") return {};
  return { label: Number($("label").value), guidance: Number($("guidance").value) };
}

function setUpCondition(info) {
  $("condition").hidden = false;
  for (let c = 0; c < info.classes; c++) $("label").append(new Option(String(c), String(c)));
  const slider = $("guidance");
  Object.assign(slider, { min: info.guidance.min, max: info.guidance.max, step: info.guidance.step });
  slider.value = info.guidance.default;
  const shown = () => {
    $("guidance-value").textContent = Number(slider.value).toFixed(1);
    slider.disabled = $("label").value === "";
  };
  shown();
  slider.addEventListener("input", () => { shown(); requestMix(); });
  $("label").addEventListener("change", () => { shown(); requestMix(); });
}

// Drawing: a soft round brush stamped along the stroke, in 28x28 pixel units.
function stamp(which, x, y) {
  const values = digits[which];
  for (let r = Math.floor(y - 2); r <= y + 2; r++) {
    for (let c = Math.floor(x - 2); c <= x + 2; c++) {
      if (r < 0 || c < 0 || r >= SIDE || c >= SIDE) continue;
      const d = Math.hypot(c + 0.5 - x, r + 0.5 - y);
      const v = Math.min(1, Math.max(0, (1.7 - d) / 0.8));
      values[r * SIDE + c] = Math.max(values[r * SIDE + c], v);
    }
  }
}

function setUpDrawing(which) {
  const canvas = $("draw-" + which);
  let previous = null;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) / box.width * SIDE, (event.clientY - box.top) / box.height * SIDE];
  };
  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    previous = at(event);
    stamp(which, ...previous);
    paint(canvas, digits[which], 255);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!previous) return;
    const [x, y] = at(event);
    const n = Math.ceil(Math.hypot(x - previous[0], y - previous[1]) / 0.25);
    for (let i = 1; i <= n; i++) {
      stamp(which, previous[0] + (x - previous[0]) * i / n, previous[1] + (y - previous[1]) * i / n);
    }
    previous = [x, y];
    paint(canvas, digits[which], 255);
  });
  const end = () => {
    if (!previous) return;
    previous = null;
    source[which] = "drawn";
    changed(which);
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("clear-" + which).addEventListener("click", () => {
    digits[which].fill(0);
    paint(canvas, digits[which], 255);
    paint($("recon-" + which), digits[which]);
    for (const id of ["reading-", "recon-reading-"]) $(id + which).textContent = "\u00a0";
    $("traj-" + which).disabled = true;
  });
  $("invert-" + which).addEventListener("click", () => invert(which).catch(failed));
  $("traj-" + which).addEventListener("click", () => trajectory(which, `reconstruction of ${which.toUpperCase()}`));
}

// A new digit is inverted and decoded at once, then mixed: the server keeps its latent for the slider.
function changed(which) {
  paint($("draw-" + which), digits[which], 255);
  if (!empty(which)) invert(which).then(requestMix, failed);
}

async function invert(which) {
  if (empty(which)) throw new Error(`draw or pick digit ${which.toUpperCase()} first`);
  const body = { image: image(which), steps: steps() };
  const r = await api("/api/invert", body);
  last[which] = ["/api/invert", body];
  paint($("recon-" + which), r.reconstruction);
  $("reading-" + which).textContent = `${source[which]}: reads as ${reading(r.input_reading)}`;
  $("recon-reading-" + which).textContent = `decoded: ${reading(r.reading)}, MSE ${r.mse.toFixed(4)}`;
  $("traj-" + which).disabled = false;
  setStatus(`DDIM-${body.steps} inversion and decode: ${r.ms} ms`);
}

// The mix follows the slider: one request in flight at a time, the latest weight sent next.
let mixBusy = false, mixAgain = false;

function requestMix() {
  if (empty("a") || empty("b")) return;
  if (mixBusy) { mixAgain = true; return; }
  mixBusy = true;
  const fast = !$("fast-choice").hidden && $("fast").checked;
  const body = { a: image("a"), b: image("b"), rule: $("rule").value, weight: Number($("weight").value), steps: steps(),
    ...(fast ? { fast } : condition()) };
  api("/api/mix", body).then((r) => {
    last.mix = ["/api/mix", body];
    paint($("mix"), r.image);
    const towards = body.fast ? ", student" : body.label === undefined ? "" : `, towards ${body.label} at s = ${body.guidance}`;
    const shown = `w = ${r.weight.toFixed(2)} (${r.rule}${towards})`;
    $("mix-reading").textContent = `${shown}: ${reading(r.reading)}, ${r.ms} ms`;
    $("traj-mix").disabled = r.rule === "pixel";
    setStatus("ready");
  }).catch(failed).finally(() => {
    mixBusy = false;
    if (mixAgain) { mixAgain = false; requestMix(); }
  });
}

async function trajectory(kind, title) {
  const [path, body] = last[kind];
  try {
    const r = await api(path, { ...body, trajectory: true });
    const strip = $("strip");
    strip.replaceChildren();
    for (const frame of r.trajectory) {
      const t = frame.t < 0 ? "x0" : `t=${frame.t}`;
      strip.append(tile(frame.xt, t), tile(frame.x0, frame.t < 0 ? "result" : "pred. x0"));
    }
    $("traj-title").textContent = `Trajectory of the ${title}: x_t (top) and predicted x0 (bottom), ${r.ms} ms`;
  } catch (err) { failed(err); }
}

async function sample() {
  const sampler = $("sampler").value;
  const body = { seed: Number($("seed").value), sampler, steps: Number($("sample-steps").value),
    eta: Number($("eta").value), n: Number($("count").value), ...(sampler === "student" ? {} : condition()) };
  const r = await api("/api/sample", body);
  last.sample = ["/api/sample", body];
  $("grid").replaceChildren(...r.images.map((px, i) => tile(px, reading(r.readings[i]))));
  $("traj-sample").disabled = false;
  setStatus(`${body.n} samples, ${body.sampler}: ${r.ms} ms`);
}

async function loadDigits() {
  const r = await api(`/api/digits?start=${pickerStart}&count=40`);
  pickerStart = (pickerStart + r.digits.length) % r.total;
  $("thumbs").replaceChildren(...r.digits.map((d) => {
    const figure = tile(d.pixels, `#${d.index}: ${d.label}`);
    figure.addEventListener("click", () => {
      const which = document.querySelector("input[name=target]:checked").value;
      digits[which].set(d.pixels.map((v) => v / 255));
      source[which] = `test #${d.index} (a ${d.label})`;
      changed(which);
    });
    return figure;
  }));
  return r.digits;
}

async function start() {
  const info = await api("/api/info");
  $("rule").replaceChildren(...info.rules.map((r) => new Option(r, r, r === "slerp", r === "slerp")));
  // The student sampler, and the mix's fast decode, where the server has a student of the model.
  const offered = info.samplers.filter((s) => s !== "student" || info.student);
  $("sampler").replaceChildren(...offered.map((s) => new Option(s, s)));
  if (info.student) {
    $("fast-choice").hidden = false;
    $("fast-steps").textContent = String(info.student.steps);
    $("fast").addEventListener("change", requestMix);
  }
  $("weight").min = Math.max(info.weights[0], -0.5);
  $("weight").max = Math.min(info.weights[1], 1.5);
  $("weight").addEventListener("input", () => {
    $("weight-value").textContent = Number($("weight").value).toFixed(2);
    requestMix();
  });
  $("rule").addEventListener("change", requestMix);
  $("steps").addEventListener("change", () => ["a", "b"].forEach(changed));
  $("sample").addEventListener("click", () => sample().catch(failed));
  $("traj-sample").addEventListener("click", () => trajectory("sample", "first sample"));
  $("traj-mix").addEventListener("click", () => trajectory("mix", "mix"));
  $("more").addEventListener("click", () => loadDigits().catch(failed));
  setUpDrawing("a");
  setUpDrawing("b");
  if (info.classes > 0) setUpCondition(info);
  setStatus(`${info.model} on ${info.device}`);
  await sample();
  if (info.digits > 0) {
    $("picker").hidden = false;
    const shown = await loadDigits();
    // Start with the question the merge study asks: a 2 and a 5.
    for (const [which, label] of [["a", 2], ["b", 5]]) {
      const d = shown.find((x) => x.label === label);
      if (d) {
        digits[which].set(d.pixels.map((v) => v / 255));
        source[which] = `test #${d.index} (a ${d.label})`;
        changed(which);
      }
    }
  } else {
    $("picker-note").hidden = false;
    $("picker-note").textContent = `The digit picker is hidden: ${info.note || "no test digits"}. ` +
      "Start with --data-dir (a folder with the MNIST IDX files) or MNISTDIFF_DATA to pick real digits.";
  }
}

start().catch(failed);
