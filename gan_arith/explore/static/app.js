// The explorer page: keeps what the user picked and asks the JSON API for every face (no latent maths here).
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = {
  info: null,
  grid: null,
  seed: 0,
  concepts: { smiling_woman: [], neutral_woman: [], neutral_man: [] }, // name -> [{face: [seed, index], image}]
  active: "smiling_woman",
  picked: { a: null, b: null }, // {face: [seed, index], image}
  nextPick: "a",
  sliders: [],
};
const latest = {}; // channel -> number of its newest request; older answers are dropped

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// Calls `api` for `channel`; resolves to null (and drops its error) when a newer call on the same channel
// was made meanwhile.
async function request(channel, path, body) {
  const number = (latest[channel] = (latest[channel] || 0) + 1);
  try {
    const data = await api(path, body);
    return latest[channel] === number ? data : null;
  } catch (error) {
    if (latest[channel] !== number) return null;
    throw error;
  }
}

function showError(selector, error) {
  $(selector).textContent = error ? String(error.message || error) : "";
}

function readingText(readings) {
  const parts = [];
  for (const [reader, values] of Object.entries(readings || {})) {
    const names = ["Smiling", "Male"].filter((name) => name in values);
    const shown = (names.length ? names : Object.keys(values).slice(0, 2))
      .map((name) => `${name.slice(0, 5)} ${values[name].toFixed(2)}`).join(" ");
    parts.push(`${reader[0].toUpperCase()}: ${shown}`);
  }
  return parts;
}

function readingTitle(readings) {
  return Object.entries(readings || {}).map(([reader, values]) => `${reader}: ` +
    Object.entries(values).map(([name, p]) => `${name} ${p.toFixed(2)}`).join(", ")).join("\n");
}

function faceElement(face, caption) {
  const element = document.createElement("div");
  element.className = "face";
  const image = document.createElement("img");
  image.src = face.image;
  image.title = readingTitle(face.readings);
  element.append(image);
  for (const line of [caption, ...readingText(face.readings)]) {
    if (line === undefined || line === "") continue;
    const text = document.createElement("span");
    text.className = "reading";
    text.textContent = line;
    element.append(text);
  }
  return element;
}

function setBox(selector, face, caption) {
  const box = $(selector);
  box.replaceChildren(face ? faceElement(face, caption) : "");
}

function conceptsPayload() {
  const payload = {};
  for (const [name, members] of Object.entries(state.concepts)) payload[name] = members.map((m) => m.face);
  return payload;
}

function sameFace(a, b) {
  return a[0] === b[0] && a[1] === b[1];
}

// Run and grid.

async function loadInfo() {
  state.info = await api("/api/info");
  const info = state.info;
  $("#run-info").textContent = `${info.kind} run ${info.run} (latent ${info.latent_dim}, ${info.image_size}px; ` +
    `readers: ${info.readers.join(", ") || "none saved"})`;
  state.sliders = [];
  if (info.attributes.length) {
    const attribute = info.attributes.includes("Smiling") ? "Smiling" : info.attributes[0];
    const condition = attribute !== "Male" && info.attributes.includes("Male") ? "Male" : "";
    state.sliders.push({ attribute, condition, method: info.methods[0], alpha: 0 });
  }
  renderSliders();
}

async function loadGrid(seed) {
  showError("#grid-error", null);
  try {
    const data = await request("grid", "/api/grid", { seed });
    if (!data) return;
    state.grid = data;
    state.seed = data.seed;
    renderGrid();
  } catch (error) {
    showError("#grid-error", error);
  }
}

function renderGrid() {
  const grid = $("#grid");
  grid.replaceChildren();
  $("#grid-seed").textContent = `(grid ${state.seed}, ${state.grid.faces.length} faces)`;
  const members = state.concepts[state.active] || [];
  state.grid.faces.forEach((face, index) => {
    const element = faceElement(face, state.info.kind === "vae" ? `#${state.grid.ids[index]}` : `${index}`);
    element.dataset.index = index;
    const here = [state.seed, index];
    if (members.some((m) => sameFace(m.face, here))) element.classList.add("member");
    for (const which of ["a", "b"]) {
      if (state.picked[which] && sameFace(state.picked[which].face, here)) element.classList.add(`picked-${which}`);
    }
    element.addEventListener("click", () => clickFace(index));
    grid.append(element);
  });
}

function clickFace(index) {
  const face = { face: [state.seed, index], image: state.grid.faces[index].image };
  const mode = document.querySelector("input[name=mode]:checked").value;
  if (mode === "concept") {
    const members = state.concepts[state.active];
    const at = members.findIndex((m) => sameFace(m.face, face.face));
    if (at >= 0) members.splice(at, 1); else members.push(face);
    conceptsChanged();
  } else {
    state.picked[state.nextPick] = face;
    state.nextPick = state.nextPick === "a" ? "b" : "a";
    setBox("#picked-a", state.picked.a && { image: state.picked.a.image }, "A");
    setBox("#picked-b", state.picked.b && { image: state.picked.b.image }, "B");
    updateEdit();
    updateStrip();
  }
  renderGrid();
}

// Concepts and arithmetic.

function renderConcepts(averages) {
  const list = $("#concepts");
  list.replaceChildren();
  for (const [name, members] of Object.entries(state.concepts)) {
    const row = document.createElement("div");
    row.className = "concept" + (name === state.active ? " active" : "");
    row.dataset.name = name;
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = `${name} (${members.length})`;
    const thumbs = document.createElement("span");
    thumbs.className = "members";
    members.forEach((member, at) => {
      const image = document.createElement("img");
      image.src = member.image;
      image.title = `grid ${member.face[0]}, face ${member.face[1]}: click to remove`;
      image.addEventListener("click", (event) => {
        event.stopPropagation();
        members.splice(at, 1);
        conceptsChanged();
        renderGrid();
      });
      thumbs.append(image);
    });
    const average = document.createElement("span");
    average.className = "average";
    if (averages && averages[name]) average.append(faceElement(averages[name], "average"));
    row.append(label, thumbs, average);
    row.addEventListener("click", () => {
      state.active = name;
      renderConcepts(state.averages);
      renderGrid();
    });
    list.append(row);
  }
}

async function conceptsChanged() {
  renderConcepts(state.averages);
  updateArithmetic();
  try {
    const data = await request("averages", "/api/averages", { concepts: conceptsPayload() });
    if (!data) return;
    state.averages = data.averages;
    renderConcepts(state.averages);
    showError("#concept-error", null);
  } catch (error) {
    showError("#concept-error", error);
  }
}

async function updateArithmetic() {
  try {
    const data = await request("arithmetic", "/api/arithmetic",
      { expression: $("#expression").value, concepts: conceptsPayload() });
    if (!data) return;
    showError("#expression-error", null);
    setBox("#result", data.result, "result");
    $("#command").textContent = data.command || data.command_error;
    $("#copy").disabled = !data.command;
  } catch (error) {
    showError("#expression-error", error);
    setBox("#result", null);
    $("#command").textContent = "";
    $("#copy").disabled = true;
  }
  if (editTarget() === "result") updateEdit();
}

async function copyCommand() {
  const text = $("#command").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch (error) { // no clipboard permission: select the text for the user to copy
    const range = document.createRange();
    range.selectNodeContents($("#command"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
  $("#copy").textContent = "copied";
  setTimeout(() => { $("#copy").textContent = "copy command"; }, 1500);
}

// Edits and interpolation.

function editTarget() {
  return document.querySelector("input[name=edit-target]:checked").value;
}

function option(select, value, text) {
  const element = document.createElement("option");
  element.value = value;
  element.textContent = text;
  select.append(element);
}

function renderSliders() {
  const list = $("#sliders");
  list.replaceChildren();
  if (!state.info.attributes.length) {
    list.textContent = "No attribute directions: this GAN's store has no saved attribute classifier to label its faces.";
    return;
  }
  state.sliders.forEach((slider, at) => {
    const row = document.createElement("div");
    row.className = "slider";
    const attribute = document.createElement("select");
    state.info.attributes.forEach((name) => option(attribute, name, name));
    attribute.value = slider.attribute;
    const condition = document.createElement("select");
    option(condition, "", "(no condition)");
    state.info.attributes.forEach((name) => option(condition, name, `⊥ ${name}`));
    condition.value = slider.condition;
    const method = document.createElement("select");
    state.info.methods.forEach((name) => option(method, name, name));
    method.value = slider.method;
    const alpha = document.createElement("input");
    Object.assign(alpha, { type: "range", min: -3, max: 3, step: 0.25, value: slider.alpha, className: "alpha" });
    const value = document.createElement("span");
    value.textContent = Number(slider.alpha).toFixed(2);
    const changed = () => {
      Object.assign(slider, { attribute: attribute.value, condition: condition.value, method: method.value,
        alpha: Number(alpha.value) });
      value.textContent = slider.alpha.toFixed(2);
      updateEdit();
    };
    for (const element of [attribute, condition, method]) element.addEventListener("change", changed);
    alpha.addEventListener("input", changed);
    const remove = document.createElement("button");
    remove.textContent = "remove";
    remove.addEventListener("click", () => { state.sliders.splice(at, 1); renderSliders(); updateEdit(); });
    row.append(attribute, condition, method, alpha, value, remove);
    list.append(row);
  });
}

function targetPayload() {
  if (editTarget() === "result") return { expression: $("#expression").value, concepts: conceptsPayload() };
  return state.picked.a ? { face: state.picked.a.face } : null;
}

async function updateEdit() {
  const target = targetPayload();
  if (!target) return;
  try {
    const data = await request("edit", "/api/edit", { target, edits: state.sliders });
    if (!data) return;
    showError("#edit-error", null);
    setBox("#edited", data.face, "edited");
  } catch (error) {
    showError("#edit-error", error);
  }
}

async function updateStrip() {
  if (!state.picked.a || !state.picked.b) return;
  try {
    const data = await request("strip", "/api/interpolate", {
      a: { face: state.picked.a.face }, b: { face: state.picked.b.face }, method: $("#interpolation-method").value,
    });
    if (!data) return;
    showError("#strip-error", null);
    $("#strip").replaceChildren(...data.faces.map((face) => faceElement(face)));
  } catch (error) {
    showError("#strip-error", error);
  }
}

// Wiring.

async function start() {
  try {
    await loadInfo();
  } catch (error) {
    showError("#run-error", error);
    return;
  }
  renderConcepts();
  await loadGrid(state.info.first_grid);
  updateArithmetic();
}

$("#fresh-grid").addEventListener("click", () => loadGrid(state.seed + 1));
$("#expression").addEventListener("input", updateArithmetic);
$("#copy").addEventListener("click", copyCommand);
$("#add-slider").addEventListener("click", () => {
  const first = state.info.attributes[0];
  if (first === undefined) return;
  state.sliders.push({ attribute: first, condition: "", method: state.info.methods[0], alpha: 0 });
  renderSliders();
});
$("#interpolation-method").addEventListener("change", updateStrip);
for (const radio of document.querySelectorAll("input[name=edit-target]")) radio.addEventListener("change", updateEdit);
$("#concept-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("#concept-name").value.trim();
  if (!name) return;
  if (!(name in state.concepts)) state.concepts[name] = [];
  state.active = name;
  $("#concept-name").value = "";
  showError("#concept-error", null);
  conceptsChanged();
  renderGrid();
});
$("#run-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("/api/run", { run: $("#run-path").value.trim() });
    showError("#run-error", null);
    for (const name of Object.keys(state.concepts)) state.concepts[name] = [];
    state.picked = { a: null, b: null };
    state.averages = {};
    for (const selector of ["#picked-a", "#picked-b", "#edited", "#strip"]) $(selector).replaceChildren();
    await start();
  } catch (error) {
    showError("#run-error", error);
  }
});
start();
