"use strict";

// The FIRS page: one photo (or words) in, a grid of matching products out.
const TOP_K = 24;
const $ = (id) => document.getElementById(id);
const LONG_SIDE = 1600; // photos are shrunk to this before upload: a phone's 12 MP is mostly wasted bytes
// `search` counts requests: only the newest one's answer, error or end of waiting is shown.
const state = { photo: null, answer: null, active: 0, search: 0, inFlight: null };

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function filters() {
  const where = [];
  const add = (field, op, id) => {
    const value = $(id).value.trim();
    if (value) where.push(`${field}${op}${value}`);
  };
  add("brand", "=", "brand");
  add("category", "=", "category");
  add("colour", "=", "colour");
  add("price", ">=", "price-min");
  add("price", "<=", "price-max");
  return where;
}

function showError(message, retry) {
  const box = $("error");
  box.textContent = message;
  if (retry) {
    const again = document.createElement("button");
    again.type = "button";
    again.className = "again";
    again.textContent = "Try again";
    again.addEventListener("click", retry);
    box.append(" ", again);
  }
  box.hidden = !message;
}

// What an API error means to a shopper, by status; the server's own words for the rest.
function plainWords(status, body, wait) {
  if (status === 413) return "This photo is too large to search. Try a smaller one.";
  if (status === 415) return "This file is not a photo we can read. Try a JPEG or PNG picture.";
  if (status === 503) return `The search is busy right now. Try again${wait ? ` in ${wait} seconds` : " in a moment"}.`;
  return (body && body.error) || `The search failed (error ${status}). Try again.`;
}

async function call(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw Object.assign(new Error("The search could not reach the server. Check your connection."), { transient: true });
  }
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = plainWords(response.status, body, response.headers.get("Retry-After"));
    throw Object.assign(new Error(message), { transient: response.status >= 500 });
  }
  return body;
}

// Runs one search; a newer one cancels it (its answer or error is never shown).
async function run(task) {
  const ticket = ++state.search;
  if (state.inFlight) state.inFlight.abort();
  const controller = new AbortController();
  state.inFlight = controller;
  showError("");
  document.body.classList.add("busy");
  try {
    await task(controller.signal, () => ticket === state.search);
  } catch (error) {
    if (ticket !== state.search || error.name === "AbortError") return;
    state.answer = null; // no results of an earlier search under this error
    $("results").replaceChildren();
    $("regions").replaceChildren();
    setStatus("");
    showError(error.message, error.transient ? () => run(task) : null); // retrying a bad photo would not help
  } finally {
    if (ticket === state.search) {
      document.body.classList.remove("busy");
      state.inFlight = null;
    }
  }
}

// A photo shrunk so its long side is at most LONG_SIDE, as JPEG; the file itself when it is
// small already or the browser cannot decode it (the server then says what is wrong).
async function shrunk(file) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const scale = LONG_SIDE / Math.max(bitmap.width, bitmap.height);
    if (scale >= 1 && file.size < 2_000_000) return file;
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * Math.min(1, scale));
    canvas.height = Math.round(bitmap.height * Math.min(1, scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
    return blob || file;
  } catch (_) {
    return file;
  }
}

function searchPhoto() {
  return run(async (signal, current) => {
    const params = new URLSearchParams({ mode: mode(), top_k: TOP_K });
    if (mode() !== "simple") params.set("all_items", "true");
    const text = $("text").value.trim();
    if (text) params.set("text", text);
    for (const condition of filters()) params.append("where", condition);
    setStatus("Searching…");
    const photo = await shrunk(state.photo);
    if (!current()) return;
    const form = new FormData();
    form.append("image", photo, state.photo.name || "photo.jpg");
    const answer = await call(`/api/search?${params}`, { method: "POST", body: form, signal });
    if (!current()) return;
    state.answer = answer;
    state.active = 0;
    drawRegions();
    render();
  });
}

function searchWords() {
  const text = $("text").value.trim();
  if (!text) {
    showError("Choose a photo, or type some words to search for.");
    return Promise.resolve();
  }
  return run(async (signal, current) => {
    const answer = await call("/api/search/text", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, top_k: TOP_K, where: filters() }),
      signal,
    });
    if (!current()) return;
    state.answer = answer;
    state.active = 0;
    drawRegions();
    render();
  });
}

function moreLike(product) {
  return run(async (signal, current) => {
    const params = new URLSearchParams({ top_k: TOP_K });
    for (const condition of filters()) params.append("where", condition);
    const answer = await call(`/api/products/${encodeURIComponent(product.id)}/similar?${params}`, { signal });
    if (!current()) return;
    answer.like_title = product.title || product.id;
    state.answer = answer;
    state.active = 0;
    render();
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
}

function items() {
  const answer = state.answer;
  if (!answer) return [];
  if (answer.items) return answer.items;
  if (answer.regions) return answer.regions.map((region) => ({ region, results: answer.results }));
  return [];
}

function drawRegions() {
  const svg = $("regions");
  svg.replaceChildren();
  const image = $("photo");
  const found = items();
  $("hint").hidden = found.length < 2;
  if (!found.length || !image.naturalWidth) return;
  svg.setAttribute("viewBox", `0 0 ${image.naturalWidth} ${image.naturalHeight}`);
  // Boxes come in the pixels of the photo as uploaded (shrunk to LONG_SIDE): scale them to the shown one.
  const uploaded = state.answer.image_size ? state.answer.image_size[0] : image.naturalWidth;
  const scale = image.naturalWidth / uploaded;
  found.forEach((item, index) => {
    const [x0, y0, x1, y1] = item.region.box.map((value) => value * scale);
    const group = document.createElementNS("http://www.w3.org/2000/svg", "g");
    group.classList.toggle("active", index === state.active);
    group.dataset.label = item.region.label;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 6 }).forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", x0 + 6);
    label.setAttribute("y", y0 + 18);
    label.setAttribute("font-size", Math.max(13, image.naturalWidth / 40));
    label.textContent = item.region.label;
    group.append(rect, label);
    group.addEventListener("click", () => {
      state.active = index;
      drawRegions();
      render();
    });
    svg.append(group);
  });
}

function setStatus(text, extra) {
  const status = $("status");
  status.textContent = text;
  if (extra) {
    const small = document.createElement("span");
    small.className = "labels";
    small.textContent = extra;
    status.append(small);
  }
}

function render() {
  const answer = state.answer;
  const found = items();
  const results = found.length ? found[state.active].results : answer.results;
  const total = answer.timings_ms && answer.timings_ms.total;
  const parts = [`${results.length} products`];
  if (answer.like_title) parts[0] += ` like “${answer.like_title}”`;
  if (found.length) parts.push(`for the ${found[state.active].region.label} garment`);
  if (total !== undefined) parts.push(`${Math.round(total)} ms${answer.cached ? " (cached)" : ""}`);
  const notes = [answer.fallback, answer.notice].filter(Boolean);
  if (answer.labels) {
    notes.push(`labels: ${answer.labels.map((t) => t.label).join(", ")} — ${answer.candidates} candidates`);
  }
  setStatus(parts.join(" · "), notes.join(" · "));
  const grid = $("results");
  const template = $("card");
  grid.replaceChildren(
    ...results.map((product) => {
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.id = product.id;
      const image = card.querySelector("img");
      image.src = `/api/products/${encodeURIComponent(product.id)}/image?size=256`;
      image.alt = product.title || product.id;
      image.addEventListener("error", () => image.removeAttribute("src"), { once: true });
      card.querySelector(".title").textContent = product.title || product.id;
      card.querySelector(".brand").textContent = product.brand || "";
      card.querySelector(".price").textContent =
        product.price === null || product.price === undefined ? "" : product.price.toFixed(2);
      card.querySelector(".score").textContent = `score ${product.score.toFixed(3)}`;
      card.querySelector(".similar").addEventListener("click", () => moreLike(product));
      return card;
    }),
  );
  if (!results.length) setStatus("No product matches. Loosen the filters or try another photo.");
}

function usePhoto(file) {
  if (!file) return;
  state.photo = file;
  state.answer = null;
  const image = $("photo");
  if (image.dataset.url) URL.revokeObjectURL(image.dataset.url);
  image.dataset.url = URL.createObjectURL(file);
  image.src = image.dataset.url;
  $("preview").hidden = false;
  $("regions").replaceChildren();
  searchPhoto();
}

function setUp() {
  const drop = $("drop");
  // The input is emptied after each choice, so choosing the same photo again searches again.
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (event) => {
      usePhoto(event.target.files[0]);
      event.target.value = "";
    });
  }
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") $("file").click();
  });
  ["dragenter", "dragover"].forEach((name) =>
    drop.addEventListener(name, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    }),
  );
  ["dragleave", "drop"].forEach((name) => drop.addEventListener(name, () => drop.classList.remove("over")));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    usePhoto(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) usePhoto(file);
  });
  $("photo").addEventListener("load", drawRegions);
  $("photo").addEventListener("error", () => ($("preview").hidden = true)); // not a picture the browser shows
  document.querySelectorAll('input[name="mode"]').forEach((input) =>
    input.addEventListener("change", () => state.photo && searchPhoto()),
  );
  $("refine").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.photo) searchPhoto();
    else searchWords();
  });
  $("clear").addEventListener("click", () => {
    $("refine").reset();
    if (state.photo) searchPhoto();
  });
  call("/api/stats")
    .then((stats) => ($("catalogue").textContent = `${stats.catalogue.indexed} products`))
    .catch(() => {});
}

document.addEventListener("DOMContentLoaded", setUp);
