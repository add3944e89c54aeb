"""The page at `/`: drop or choose an image, see the top classes and an overlay of what the top
one rests on. Plain HTML and JavaScript in one string: nothing is fetched from elsewhere."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>striate: {{NAME}}</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem;
         color: #222; }
  #drop { border: 2px dashed #888; border-radius: 8px; padding: 2rem; text-align: center;
          cursor: pointer; }
  #drop.over { background: #eef4ff; border-color: #36c; }
  .pictures { display: flex; gap: 1rem; margin-top: 1rem; }
  .pictures figure { margin: 0; }
  .pictures img { width: 224px; height: 224px; object-fit: contain; image-rendering: pixelated;
                  background: #f4f4f4; }
  table { border-collapse: collapse; margin-top: 1rem; }
  td { padding: 0.2rem 0.8rem 0.2rem 0; }
  .bar { background: #36c; height: 0.7rem; }
  #error { color: #b00; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>striate: {{NAME}}</h1>
<div id="drop">Drop an image here, or <label for="file"><u>choose one</u></label>
  <input id="file" type="file" accept="image/*" hidden>
</div>
<p id="status"></p>
<p id="error"></p>
<table id="classes"></table>
<div class="pictures">
  <figure><img id="preview" alt=""><figcaption>image</figcaption></figure>
  <figure><img id="overlay" alt=""><figcaption id="method">overlay</figcaption></figure>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);

async function ask(path, file) {
  const form = new FormData();
  form.append("file", file);
  const response = await fetch(path + "?k=5", { method: "POST", body: form });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.detail || response.statusText);
  return answer;
}

function showClasses(predictions) {
  const table = $("classes");
  table.replaceChildren();
  predictions.forEach((p, i) => {
    const row = table.insertRow();
    const name = row.insertCell();
    name.textContent = p["class"];
    if (i === 0) name.id = "top-class";
    row.insertCell().textContent = (100 * p.probability).toFixed(1) + " %";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (200 * p.probability).toFixed(0) + "px";
    row.insertCell().appendChild(bar);
  });
}

async function look(file) {
  $("error").textContent = "";
  $("classes").replaceChildren();
  $("overlay").removeAttribute("src");
  $("preview").src = URL.createObjectURL(file);
  $("status").textContent = "classifying " + file.name + " …";
  try {
    showClasses((await ask("/predict", file)).predictions);
    $("status").textContent = "explaining …";
    const explained = await ask("/explain", file);
    $("method").textContent = explained.method + " of " + explained.predictions[0]["class"];
    $("overlay").src = explained.overlay;
    $("status").textContent = file.name;
  } catch (e) {
    $("status").textContent = "";
    $("error").textContent = e.message;
  }
}

$("file").addEventListener("change", () => { if ($("file").files[0]) look($("file").files[0]); });
const drop = $("drop");
drop.addEventListener("click", (e) => { if (e.target === drop) $("file").click(); });
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) look(e.dataTransfer.files[0]);
});
</script>
</body>
</html>
"""
