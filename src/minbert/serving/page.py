"""The page at `/`: try the served model in a browser, with nothing loaded from anywhere else.

One self-contained HTML document (inline CSS and JavaScript, no CDN, no fonts, no images) that asks
/info what the model is and shows the matching form: texts for a classifier (labels with probability
bars, the out-of-scope flag when the model rejects), a task selector and one or two boxes for a
multitask model (pair tasks take two), two sentences and their cosine similarity for a sentence
encoder. A server with an API key gets a key field; the key is sent as X-API-Key and never stored.
"""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>minbert</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; margin-bottom: .2rem; } .muted { color: #666; font-size: .9rem; }
  textarea, input, select { width: 100%; box-sizing: border-box; font: inherit; padding: .45rem; margin: .3rem 0; }
  textarea { min-height: 6rem; } button { font: inherit; padding: .45rem 1.2rem; cursor: pointer; }
  .answer { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .8rem; margin: .6rem 0; }
  .label { font-weight: 600; } .oos { color: #a40; font-weight: 600; }
  .bar { display: flex; align-items: center; gap: .5rem; font-size: .9rem; }
  .bar span:first-child { width: 14rem; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .bar div { background: #4a7bd0; height: .8rem; border-radius: 3px; }
  .error { color: #b00; white-space: pre-wrap; } .hidden { display: none; }
</style>
</head>
<body>
<h1>minbert: <span id="model">…</span></h1>
<div class="muted" id="about">asking the server what this model is…</div>
<div id="keybox" class="hidden"><input id="key" type="password" placeholder="API key (sent as X-API-Key)"></div>
<div id="taskbox" class="hidden"><select id="task"></select></div>
<textarea id="first" placeholder="one text per line"></textarea>
<textarea id="second" class="hidden" placeholder="second sentences, one per line (pairs: line by line)"></textarea>
<button id="go">Predict</button>
<div id="out"></div>
<script>
const $ = (id) => document.getElementById(id);
let info = null;
function headers() {
  const h = {"content-type": "application/json"};
  if ($("key").value) h["x-api-key"] = $("key").value;
  return h;
}
function lines(id) { return $(id).value.split("\\n").map((s) => s.trim()).filter((s) => s); }
function text(tag, content, cls) { const e = document.createElement(tag); e.textContent = content; if (cls) e.className = cls; return e; }
function pairTask() { return info.kind === "multitask" && info.tasks[$("task").value].input !== "single"; }
function layout() {
  const two = info.kind === "sentence-encoder" || (info.kind === "multitask" && pairTask());
  $("second").classList.toggle("hidden", !two);
  $("first").placeholder = two ? "first sentences, one per line" : "one text per line";
  $("go").textContent = info.kind === "sentence-encoder" ? "Compare" : "Predict";
}
async function start() {
  const response = await fetch("info", {headers: headers()});
  if (response.status === 401) { $("keybox").classList.remove("hidden"); $("about").textContent = "this server needs an API key"; return; }
  info = await response.json();
  $("model").textContent = info.model;
  const what = {"classifier": `classifier, ${info.labels.length} labels`, "multitask": "multitask model", "sentence-encoder": "sentence encoder: cosine similarity of two texts"};
  $("about").textContent = `${what[info.kind]} (${info.backend} backend, minbert ${info.minbert_version})`;
  if (info.kind === "multitask") {
    for (const [name, task] of Object.entries(info.tasks)) $("task").append(new Option(`${name} (${task.kind}, ${task.input})`, name));
    $("taskbox").classList.remove("hidden");
    $("task").onchange = layout;
  }
  layout();
}
function show(prediction, input) {
  const box = text("div", "", "answer");
  box.append(text("div", input, "muted"));
  if ("score" in prediction) { box.append(text("div", `score ${prediction.score.toFixed(4)}`, "label")); return box; }
  const rejected = "oos_threshold" in prediction && prediction.oos_score < prediction.oos_threshold;
  if (prediction.labels) box.append(text("div", prediction.labels.join(" + ") + (prediction.none_above_threshold ? " (no label reached its threshold: the top one)" : ""), "label"));
  else box.append(text("div", prediction.label, rejected ? "oos" : "label"));
  if (rejected) box.append(text("div", `out of scope: score ${prediction.oos_score.toFixed(3)} < threshold ${prediction.oos_threshold.toFixed(3)}`, "muted"));
  const top = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 5);
  for (const [label, p] of top) {
    const row = text("div", "", "bar");
    row.append(text("span", label));
    const bar = document.createElement("div"); bar.style.width = `${Math.max(1, 200 * p)}px`;
    row.append(bar, text("span", p.toFixed(3)));
    box.append(row);
  }
  return box;
}
async function go() {
  if (!info) { await start(); if (!info) return; }
  $("out").replaceChildren();
  const first = lines("first"), second = lines("second");
  let body, url = "predict";
  if (info.kind === "sentence-encoder") { url = "embed"; body = {texts: [first[0] || "", second[0] || ""]}; }
  else if (pairTask()) body = {task: $("task").value, pairs: first.map((a, i) => [a, second[i] || ""])};
  else body = info.kind === "multitask" ? {task: $("task").value, texts: first} : {texts: first};
  const response = await fetch(url, {method: "POST", headers: headers(), body: JSON.stringify(body)});
  const answer = await response.json();
  if (!response.ok) { $("out").append(text("div", `${response.status}: ${answer.detail}`, "error")); return; }
  if (url === "embed") {
    const [u, v] = answer.embeddings;
    const dot = u.reduce((s, x, i) => s + x * v[i], 0), norm = (w) => Math.sqrt(w.reduce((s, x) => s + x * x, 0));
    $("out").append(text("div", `cosine similarity ${(dot / (norm(u) * norm(v))).toFixed(4)}`, "answer label"));
    return;
  }
  answer.predictions.forEach((p, i) => $("out").append(show(p, pairTask() ? `${first[i]} | ${second[i] || ""}` : first[i])));
}
$("go").onclick = go;
$("key").onchange = start;
start();
</script>
</body>
</html>
"""
