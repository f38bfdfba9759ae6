"use strict";

// The FIRS page: one photo (or words) in, a grid of matching products out.
const TOP_K = 24;
const $ = (id) => document.getElementById(id);
const LONG_SIDE = 1600; // photos are shrunk to this before upload: a phone's 12 MP is mostly wasted bytes
const PHONE = window.matchMedia("(max-width: 720px)");
const FACETS = { brand: "Brand", category: "Category", colour: "Colour" };
// `search` counts requests: only the newest one's answer, error or end of waiting is shown.
// `views` holds every answer shown, so Back and Forward show them again without a request.
const state = { photo: null, view: null, views: [], search: 0, inFlight: null, stats: null, firstWords: "" };

function mode() {
  return document.querySelector('input[name="mode"]:checked').value;
}

function filters() {
  const where = [];
  for (const field of Object.keys(FACETS)) {
    const input = $(`facet-${field}`);
    const value = input ? input.value.trim() : "";
    if (value) where.push(`${field}=${value}`);
  }
  if (!$("price").hidden) {
    const low = $("price-min").value.trim();
    const high = $("price-max").value.trim();
    if (low) where.push(`price>=${low}`);
    if (high) where.push(`price<=${high}`);
  }
  return where;
}

// A reason the filters cannot be used as they are, or "".
function filterProblem() {
  const low = parseFloat($("price-min").value);
  const high = parseFloat($("price-max").value);
  if (!$("price").hidden && low > high) return `The lowest price (${low}) is above the highest (${high}).`;
  return "";
}

function showFilterCount() {
  const count = filters().length + ($("text").value.trim() ? 1 : 0);
  $("filter-count").textContent = count ? `(${count} on)` : "";
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
  if (status === 415) return "This file is not a photo we can read. Try a JPEG, PNG or HEIC picture.";
  if (status === 503) {
    const seconds = parseInt(wait, 10);
    return `The search is busy right now. Try again ${seconds > 0 ? `in ${seconds} second${seconds === 1 ? "" : "s"}` : "in a moment"}.`;
  }
  if (status === 404) return "This product is no longer in the shop.";
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
  $("answer").setAttribute("aria-busy", "true");
  try {
    await task(controller.signal, () => ticket === state.search);
  } catch (error) {
    if (ticket !== state.search || error.name === "AbortError") return;
    clearAnswer(""); // no results of an earlier search under this error
    showError(error.message, error.transient ? () => run(task) : null); // retrying a bad photo would not help
    const box = $("error").getBoundingClientRect();
    if (box.top < 0 || box.bottom > window.innerHeight) $("error").scrollIntoView({ behavior: "smooth", block: "center" });
  } finally {
    if (ticket === state.search) {
      document.body.classList.remove("busy");
      $("answer").removeAttribute("aria-busy");
      state.inFlight = null;
    }
  }
}

// A photo shrunk so its long side is at most LONG_SIDE, as JPEG; the file itself when it is
// small already or the browser cannot decode it (HEIC in most browsers: the server decodes it).
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

// -- views: what one answer shows, and the page's history of them --------------------------

// Shows `view` and records it as a new step of the browser's history (Back shows the one before).
function show(view, url) {
  view.id = state.views.length;
  state.views.push(view);
  history.pushState({ view: view.id }, "", url);
  display(view);
}

function display(view) {
  state.view = view;
  const photoView = view.kind === "photo";
  if (photoView && view.photo !== state.photo) setPhoto(view.photo);
  $("preview").hidden = !state.photo || !photoView || $("photo").dataset.broken === "true";
  $("back").hidden = !(view.kind === "like" && history.state && history.state.view > 0);
  drawRegions();
  render();
}

function restore(event) {
  const id = event.state && event.state.view;
  if (id !== undefined && id !== null && state.views[id]) {
    if (state.inFlight) state.inFlight.abort();
    showError("");
    display(state.views[id]);
    return;
  }
  openFromUrl(); // a step from before a reload: searched again when the URL says what it was
}

// Puts the URL's filters back into the controls (a reload, a shared link).
function applyFilters(where) {
  for (const condition of where) {
    const { field, op, value } = parseCondition(condition) || {};
    if (!["=", ">=", "<="].includes(op)) continue;
    if (field === "price") $(op === ">=" ? "price-min" : "price-max").value = value;
    else if ($(`facet-${field}`)) $(`facet-${field}`).value = value;
  }
  showFilterCount();
}

function openFromUrl() {
  const params = new URLSearchParams(location.search);
  applyFilters(params.getAll("where"));
  if (params.get("like")) moreLike({ id: params.get("like"), title: params.get("title") || "" }, false);
  else if (params.get("q")) {
    $("text").value = params.get("q");
    searchWords(false);
  } else {
    clearAnswer(state.firstWords);
    $("preview").hidden = true;
    $("back").hidden = true;
  }
}

// No answer shown: no results, boxes or notes, and `words` as the status.
function clearAnswer(words) {
  state.view = null;
  $("results").replaceChildren();
  $("regions").replaceChildren();
  $("note").hidden = $("debug").hidden = true;
  setStatus(words);
}

function urlFor(params) {
  const query = new URLSearchParams(params);
  for (const condition of filters()) query.append("where", condition);
  return `?${query}`;
}

// -- searches ------------------------------------------------------------------------------

function searchPhoto() {
  const problem = filterProblem();
  if (problem) return showFilterProblem(problem);
  return run(async (signal, current) => {
    const params = new URLSearchParams({ mode: mode(), top_k: TOP_K });
    if (mode() !== "simple") params.set("all_items", "true");
    const text = $("text").value.trim();
    if (text) params.set("text", text);
    for (const condition of filters()) params.append("where", condition);
    setStatus("Searching…");
    const photo = state.photo;
    const upload = await shrunk(photo);
    if (!current()) return;
    const form = new FormData();
    form.append("image", upload, photo.name || "photo.jpg");
    const answer = await call(`/api/search?${params}`, { method: "POST", body: form, signal });
    if (!current()) return;
    show({ kind: "photo", answer, photo, active: 0 }, "?view=photo");
    bringResultsIntoView();
  });
}

function searchWords(record = true) {
  const text = $("text").value.trim();
  if (!text) {
    showError("Choose a photo, or type some words to search for.");
    return Promise.resolve();
  }
  const problem = filterProblem();
  if (problem) return showFilterProblem(problem);
  return run(async (signal, current) => {
    setStatus("Searching…");
    const answer = await call("/api/search/text", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text, top_k: TOP_K, where: filters() }),
      signal,
    });
    if (!current()) return;
    const view = { kind: "words", answer, text, active: 0 };
    if (record) show(view, urlFor({ q: text }));
    else display(Object.assign(view, { id: replaceView(view) }));
    bringResultsIntoView();
  });
}

function moreLike(product, record = true) {
  return run(async (signal, current) => {
    setStatus("Searching…");
    const params = new URLSearchParams({ top_k: TOP_K });
    for (const condition of filters()) params.append("where", condition);
    const answer = await call(`/api/products/${encodeURIComponent(product.id)}/similar?${params}`, { signal });
    if (!current()) return;
    const view = { kind: "like", answer, like: product, active: 0 };
    if (record) show(view, urlFor({ like: product.id, title: product.title || "" }));
    else display(Object.assign(view, { id: replaceView(view) }));
    bringResultsIntoView(true);
  });
}

// A view opened from the URL (after a reload) replaces the history step it came from.
function replaceView(view) {
  view.id = state.views.length;
  state.views.push(view);
  history.replaceState({ view: view.id }, "", location.href);
  return view.id;
}

function showFilterProblem(problem) {
  $("filters").open = true;
  $("filter-error").textContent = problem;
  $("filter-error").hidden = false;
  $("price-min").focus();
  return Promise.resolve();
}

// On a phone the results are below the photo: bring their first row into view when they come.
function bringResultsIntoView(always = false) {
  const head = $("answer");
  const top = head.getBoundingClientRect().top;
  if (always || (PHONE.matches && (top > window.innerHeight * 0.6 || top < 0))) {
    head.scrollIntoView({ behavior: "smooth", block: "start" });
  }
}

// -- what is shown -------------------------------------------------------------------------

function items() {
  const answer = state.view && state.view.answer;
  if (!answer || state.view.kind !== "photo") return [];
  if (answer.items) return answer.items;
  if (answer.regions) return answer.regions.map((region) => ({ region, results: answer.results }));
  return [];
}

function regionName(region) {
  return region.name || region.label;
}

function drawRegions() {
  const svg = $("regions");
  svg.replaceChildren();
  const image = $("photo");
  // Only regions a person or an object gave: "the whole photo" has no box to show.
  const found = items().filter((item) => item.region.label !== "image");
  $("hint").hidden = found.length < 2;
  if (!found.length || !image.naturalWidth) return;
  svg.setAttribute("viewBox", `0 0 ${image.naturalWidth} ${image.naturalHeight}`);
  // Boxes come in the pixels of the photo as uploaded (shrunk to LONG_SIDE): scale them to the shown one.
  const answer = state.view.answer;
  const uploaded = answer.image_size ? answer.image_size[0] : image.naturalWidth;
  const scale = image.naturalWidth / uploaded;
  const perPixel = image.naturalWidth / Math.max(1, image.clientWidth); // photo pixels per pixel on screen
  const all = items();
  found.forEach((item) => {
    const index = all.indexOf(item);
    const [x0, y0, x1, y1] = item.region.box.map((value) => value * scale);
    const group = document.createElementNS("http://www.w3.org/2000/svg", "g");
    const active = index === state.view.active;
    group.classList.toggle("active", active);
    group.dataset.label = item.region.label;
    group.setAttribute("role", "button");
    group.setAttribute("tabindex", "0");
    group.setAttribute("aria-pressed", String(active));
    group.setAttribute("aria-label", `${regionName(item.region)}: show its matches`);
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    Object.entries({ x: x0, y: y0, width: x1 - x0, height: y1 - y0, rx: 6 }).forEach(([k, v]) => rect.setAttribute(k, v));
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    label.setAttribute("x", x0 + 6 * perPixel);
    label.setAttribute("y", y0 + 20 * perPixel);
    label.setAttribute("font-size", 15 * perPixel);
    label.setAttribute("aria-hidden", "true");
    label.textContent = regionName(item.region);
    group.append(rect, label);
    const choose = () => {
      state.view.active = index;
      drawRegions();
      render();
      svg.querySelector(`g[data-label="${item.region.label}"]`)?.focus();
    };
    group.addEventListener("click", choose);
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        choose();
      }
    });
    svg.append(group);
  });
}

function setStatus(text) {
  $("status").textContent = text;
}

// An amount in the product's currency, else the catalogue's (`firs serve --currency`), else bare.
function money(amount, currency = state.stats && state.stats.catalogue.currency) {
  if (currency) {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(amount);
    } catch (_) {
      return `${amount.toFixed(2)} ${currency}`; // not a code the browser knows
    }
  }
  return amount.toFixed(2);
}

function price(product) {
  if (product.price === null || product.price === undefined) return "";
  return money(product.price, product.currency || undefined);
}

// "price<=10" as { field: "price", op: "<=", value: "10" }; null when it is not a condition.
function parseCondition(text) {
  const match = text.match(/^(\w+)\s*(<=|>=|!=|=|<|>)\s*(.*)$/);
  return match && { field: match[1], op: match[2], value: match[3] };
}

function describeFilter(condition) {
  const parsed = parseCondition(condition);
  if (!parsed) return condition;
  const { field, op, value } = parsed;
  if (field === "price") return `price ${op === "<=" ? "up to" : "from"} ${money(parseFloat(value))}`;
  return `${(FACETS[field] || field).toLowerCase()} “${value}”`;
}

// Why an answer is empty, in words: which filter matches nothing, or that they clash.
function emptyReason(answer) {
  const matches = answer.filter_matches || [];
  const none = matches.filter((entry) => entry.products === 0);
  if (none.length) return `No product has ${none.map((entry) => describeFilter(entry.where)).join(" or ")}. Change that filter.`;
  if (matches.length > 1) {
    return `Each filter matches products, but none matches all of them together (${matches
      .map((entry) => `${describeFilter(entry.where)}: ${entry.products}`)
      .join(", ")}). Remove one.`;
  }
  if (answer.notice) return `No product matches: ${answer.notice}.`;
  return "No product matches. Loosen the filters or try another photo.";
}

function statusLine(view, results) {
  const answer = view.answer;
  const count = `${results.length} ${results.length === 1 ? "match" : "matches"}`;
  if (view.kind === "like") return `${count} like “${view.like.title || "this product"}”`;
  if (view.kind === "words") return `${count} for “${view.text}”`;
  const found = items();
  if (!found.length || answer.mode === "simple") return `${count} for the whole photo`;
  const region = found[view.active].region;
  if (region.label === "image") return `${count} for the whole photo`;
  return `${count} for the ${regionName(region)}`;
}

// A plain note under the status: the fallback when no garment was found, the words not used.
function noteLine(answer) {
  const region = answer.regions && answer.regions[0];
  if (region && region.label === "image") return "No garment found — searched the whole photo.";
  if (region && region.label === "object") return "No person found — searched the main object in the photo.";
  if (answer.notice && answer.results.length) return `Note: ${answer.notice}.`;
  return "";
}

function debugLine(answer) {
  const parts = [];
  const timings = answer.timings_ms || {};
  const stages = Object.entries(timings)
    .filter(([name]) => name !== "total")
    .map(([name, ms]) => `${name} ${ms.toFixed(1)}`);
  if (timings.total !== undefined) parts.push(`${timings.total.toFixed(1)} ms${answer.cached ? " (cached)" : ""}: ${stages.join(", ")}`);
  if (answer.labels) parts.push(`labels ${answer.labels.map((t) => t.label).join(", ")} → ${answer.candidates} candidates`);
  if (answer.region_rule) parts.push(`region rule: ${answer.region_rule}`);
  return parts.join(" · ");
}

function render() {
  const view = state.view;
  const grid = $("results");
  if (!view) return;
  const answer = view.answer;
  const found = items();
  const results = found.length ? found[view.active].results : answer.results;
  setStatus(results.length ? statusLine(view, results) : emptyReason(answer));
  const note = results.length ? noteLine(answer) : "";
  $("note").textContent = note;
  $("note").hidden = !note;
  $("debug").textContent = debugLine(answer);
  $("debug").hidden = !$("show-details").checked;
  const template = $("card");
  grid.replaceChildren(...results.map((product) => card(template, product)));
}

function card(template, product) {
  const element = template.content.firstElementChild.cloneNode(true);
  element.dataset.id = product.id;
  const title = product.title || product.category || "Untitled product";
  const image = element.querySelector("img");
  image.src = `/api/products/${encodeURIComponent(product.id)}/image?size=256`;
  image.alt = title;
  image.addEventListener("error", () => image.removeAttribute("src"), { once: true });
  const links = [element.querySelector(".picture"), element.querySelector(".title a"), element.querySelector(".shop")];
  if (product.url) {
    links.forEach((link) => (link.href = product.url));
    links[0].setAttribute("aria-label", `${title} in the shop`);
    links[0].tabIndex = -1; // the title and "View in shop" already lead there
  } else {
    links[2].remove();
  }
  links[1].textContent = title;
  element.querySelector(".brand").textContent = product.brand || "";
  element.querySelector(".price").textContent = price(product);
  element.querySelector(".score").textContent = `score ${product.score.toFixed(3)} · ${product.id}`;
  const similar = element.querySelector(".similar");
  similar.setAttribute("aria-label", `Find products similar to ${title}`);
  similar.addEventListener("click", () => moreLike({ id: product.id, title }));
  return element;
}

// -- the photo and the controls ------------------------------------------------------------

function setPhoto(file) {
  state.photo = file;
  const image = $("photo");
  if (image.dataset.url) URL.revokeObjectURL(image.dataset.url);
  image.dataset.url = URL.createObjectURL(file);
  image.dataset.broken = "false";
  image.src = image.dataset.url;
  $("regions").replaceChildren();
}

function usePhoto(file) {
  if (!file) return;
  setPhoto(file);
  $("preview").hidden = false;
  $("back").hidden = true;
  searchPhoto();
}

function setUpFacets(stats) {
  const box = $("facets");
  box.replaceChildren();
  const catalogue = stats.catalogue;
  for (const [field, name] of Object.entries(FACETS)) {
    const values = (catalogue.facets && catalogue.facets[field]) || [];
    if (!values.length) continue; // nothing to choose from: no brand in a folder of pictures
    const label = document.createElement("label");
    label.htmlFor = `facet-${field}`;
    label.textContent = name;
    let control;
    if (values.length < catalogue.facet_limit) {
      control = document.createElement("select");
      control.append(new Option("Any", ""));
      for (const entry of values) control.append(new Option(`${entry.value} (${entry.products})`, entry.value));
    } else {
      // More values than a list can hold: type any, the most common ones suggested.
      control = document.createElement("input");
      control.type = "text";
      control.autocomplete = "off";
      control.setAttribute("list", `facet-${field}-values`);
      const suggestions = document.createElement("datalist");
      suggestions.id = `facet-${field}-values`;
      for (const entry of values) suggestions.append(new Option(entry.value, entry.value));
      box.append(suggestions);
    }
    control.id = `facet-${field}`;
    control.addEventListener("change", showFilterCount);
    box.append(label, control);
  }
  const prices = catalogue.price;
  $("price").hidden = !prices; // a catalogue without prices: nothing to filter on
  if (prices) {
    $("price-min").placeholder = Math.floor(prices.min);
    $("price-max").placeholder = Math.ceil(prices.max);
  }
}

function setUp() {
  state.firstWords = $("status").textContent; // the first screen's words, shown again on Back to it
  const drop = $("drop");
  // The inputs are emptied after each choice, so choosing the same photo again searches again.
  for (const id of ["file", "camera"]) {
    $(id).addEventListener("change", (event) => {
      usePhoto(event.target.files[0]);
      event.target.value = "";
    });
  }
  drop.addEventListener("click", () => $("file").click());
  $("take").addEventListener("click", () => $("camera").click());
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
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/") || /\.hei[cf]$/i.test(f.name));
    if (file) usePhoto(file);
  });
  $("photo").addEventListener("load", drawRegions);
  $("photo").addEventListener("error", () => {
    // not a picture this browser shows (HEIC in most): the search still runs on the server
    $("photo").dataset.broken = "true";
    $("preview").hidden = true;
  });
  document.querySelectorAll('input[name="mode"]').forEach((input) =>
    input.addEventListener("change", () => state.photo && searchPhoto()),
  );
  $("refine").addEventListener("input", () => {
    $("filter-error").hidden = true;
    showFilterCount();
  });
  $("refine").addEventListener("submit", (event) => {
    event.preventDefault();
    if (state.view && state.view.kind === "like") moreLike(state.view.like);
    else if (state.photo && !(state.view && state.view.kind === "words")) searchPhoto();
    else searchWords();
  });
  $("clear").addEventListener("click", () => {
    $("refine").reset();
    $("filter-error").hidden = true;
    showFilterCount();
    if (state.photo) searchPhoto();
  });
  $("back").addEventListener("click", () => history.back());
  $("show-details").addEventListener("change", () => {
    document.body.classList.toggle("details", $("show-details").checked);
    $("debug").hidden = !$("show-details").checked || !state.view;
  });
  $("filters").open = !PHONE.matches; // a drawer on a phone, open beside the photo on a desktop
  window.addEventListener("popstate", restore);
  call("/api/stats")
    .then((stats) => {
      state.stats = stats;
      $("catalogue").textContent = `${stats.catalogue.indexed} products`;
      setUpFacets(stats);
    })
    .catch(() => {})
    .finally(() => state.search === 0 && openFromUrl()); // after the filter choices exist: the URL may name some
}

document.addEventListener("DOMContentLoaded", setUp);
