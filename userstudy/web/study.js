// The ranking page: one trial at a time, the methods' videos under blinded ids, one ranking per
// criterion (or, in a pairwise trial, one preference between the left and the right video per
// criterion). With the study's play_through option the answers of a trial unlock once each video
// has played to the end (or was reported as not playing). Three ways to rank, all with the same effect: drag an id onto a rank (pointer events,
// so mouse, pen and touch), the buttons (keyboard: Tab + Enter/Space), and double-click to undo.
// Every change is announced in a live region. Unsaved work is kept in localStorage; saved answers
// come back from the server, so a participant can leave and return with their id and resume code
// (the code is kept in this browser, and typed on another device).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

const state = {
  study: null,          // {title, instructions, criteria: [{name, question}], trials}
  participant: null,
  token: null,          // the participant's secret resume code
  trials: [],           // from /api/plan: {trial, videos: [{id, url}], reference, saved}
  index: 0,             // the trial on screen
  rankings: {},         // trial -> criterion -> array of k ids or null (rank i+1)
  saved: {},            // trial -> criterion -> ids best first (the last save the server confirmed)
  visited: new Set(),
  attempted: new Set(), // trials where "Save results" was pressed (incomplete criteria turn red)
  pending: {},          // trial -> {id, body}: a save not yet confirmed; a retry of the same answer reuses the id
  played: {},           // trial -> Set of video ids played to the end (or reported as not playing)
  pendingId: null,      // a participant id from the address, registered once the consent is given
};

const trialCriteria = (trial) => trial.criteria.map((name) =>
  state.study.criteria.find((c) => c.name === name) || { name, question: "" });
const isPairwise = (trial) => trial.kind === "pairwise";

// -- helpers ------------------------------------------------------------------------------------

function announce(text) {
  const region = $("#announcer");
  // Clearing first makes screen readers repeat an identical message.
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 30);
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function newSubmissionId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (error) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.error) || `the server answered ${response.status}`);
    error.status = response.status;
    error.body = body || {};
    throw error;
  }
  return body;
}

const tokenKey = (participant) => `userstudy:token:${participant}`;

function rememberToken(participant, token) {
  try { localStorage.setItem(tokenKey(participant), token); } catch (error) { /* private mode */ }
}

function rememberedToken(participant) {
  try { return localStorage.getItem(tokenKey(participant)); } catch (error) { return null; }
}

const currentTrial = () => state.trials[state.index];
const trialVideoIds = () => currentTrial().videos.map((v) => v.id);
const draftKey = (trial) => `userstudy:${state.participant}:${trial}`;

function saveDraft(trial) {
  try { localStorage.setItem(draftKey(trial), JSON.stringify(state.rankings[trial])); } catch (error) { /* private mode */ }
}

function loadDraft(trial) {
  try { return JSON.parse(localStorage.getItem(draftKey(trial)) || "null"); } catch (error) { return null; }
}

function isComplete(order) {
  if (!Array.isArray(order)) return order !== null && order !== undefined;   // a pairwise preference
  return order.every((id) => id !== null);
}

const trialById = (id) => state.trials.find((t) => t.trial === id);

function sameAsSaved(trial) {
  const saved = state.saved[trial];
  if (!saved) return false;
  return trialById(trial).criteria.every((name) =>
    JSON.stringify(saved[name]) === JSON.stringify(state.rankings[trial][name]));
}

// -- play-through: a trial's answers unlock once each video has played to the end -----------------

const playedKey = (trial) => `userstudy:${state.participant}:${trial}:played`;

function loadPlayed(trial) {
  try { return JSON.parse(localStorage.getItem(playedKey(trial)) || "[]"); } catch (error) { return []; }
}

function markPlayed(trial, id) {
  const played = state.played[trial];
  if (played.has(id)) return;
  played.add(id);
  try { localStorage.setItem(playedKey(trial), JSON.stringify(Array.from(played))); } catch (error) { /* ignore */ }
  if (currentTrial().trial !== trial) return;
  const left = unplayed(currentTrial()).length;
  if (left === 0) {
    renderCriteria();
    announce("Every video has played to the end: you can answer now.");
  } else {
    renderLock(currentTrial());
  }
}

function unplayed(trial) {
  return trial.videos.map((v) => v.id).filter((id) => !state.played[trial.trial].has(id));
}

function isLocked(trial) {
  return Boolean(state.study.play_through) && !state.saved[trial.trial] && unplayed(trial).length > 0;
}

function renderLock(trial) {
  const box = $("#lock");
  const locked = isLocked(trial);
  box.hidden = !locked;
  if (locked) {
    const left = unplayed(trial);
    box.textContent = `Watch each video to the end to unlock the answers: ${trial.videos.length - left.length} of ` +
      `${trial.videos.length} played (still to play: ${left.map((id) => `Video ${id}`).join(", ")}).`;
  }
}

// -- start: a participant id --------------------------------------------------------------------

async function begin(participant, token) {
  const plan = await api(`/api/plan?participant=${encodeURIComponent(participant)}`,
                         { headers: token ? { "X-Resume-Token": token } : {} });
  state.participant = plan.participant;
  state.token = plan.token || token;   // a participant from before resume codes gets one now
  rememberToken(state.participant, state.token);
  state.trials = plan.trials;
  for (const trial of plan.trials) {
    const ids = trial.videos.map((v) => v.id);
    const draft = loadDraft(trial.trial);
    state.rankings[trial.trial] = {};
    for (const name of trial.criteria) {
      const kept = draft && draft[name];
      if (isPairwise(trial)) {
        // A preference: a number of the study's levels, positive = the left video; null = not given.
        let value = trial.saved ? trial.saved[name] : null;
        if (Number.isInteger(kept) && Math.abs(kept) <= (state.study.preference_levels === 5 ? 2 : 1)) value = kept;
        state.rankings[trial.trial][name] = value;
        continue;
      }
      let order = trial.saved ? trial.saved[name].slice() : new Array(ids.length).fill(null);
      // A draft counts only if it fits this trial's ids (the study may have changed).
      if (Array.isArray(kept) && kept.length === ids.length && kept.every((id) => id === null || ids.includes(id))) {
        order = kept.slice();
      }
      state.rankings[trial.trial][name] = order;
    }
    if (trial.saved) state.saved[trial.trial] = trial.saved;
    state.played[trial.trial] = new Set(loadPlayed(trial.trial).filter((id) => ids.includes(id)));
  }
  try { localStorage.setItem("userstudy:participant", state.participant); } catch (error) { /* ignore */ }
  const url = new URL(window.location.href);
  url.searchParams.set("participant", state.participant);
  window.history.replaceState(null, "", url);
  $("#welcome").hidden = true;
  $("#study").hidden = false;
  $("#who").hidden = false;
  $("#skip-link").hidden = false;
  $("#participant-id").textContent = state.participant;
  $("#resume-code").textContent = state.token;
  showCompletion(plan);
  const firstUnsaved = state.trials.findIndex((t) => !state.saved[t.trial]);
  showTrial(firstUnsaved === -1 ? 0 : firstUnsaved);
}

// -- rendering ----------------------------------------------------------------------------------

function renderNav() {
  const nav = $("#trial-nav");
  nav.replaceChildren();
  state.trials.forEach((trial, i) => {
    const saved = Boolean(state.saved[trial.trial]);
    const status = saved ? "saved" : "not saved";
    const button = el("button", {
      // Red: a trial left unsaved, or one where a save was refused for missing rankings.
      type: "button", class: "nav-item " + (saved ? "saved" : (state.attempted.has(trial.trial) ||
        (state.visited.has(trial.trial) && i !== state.index) ? "unranked" : "unsaved")),
      "aria-current": i === state.index ? "step" : null, "aria-label": `Trial ${i + 1}, ${status}`,
      "data-trial": trial.trial, text: String(i + 1),
    });
    button.addEventListener("click", () => showTrial(i));
    nav.append(el("li", {}, button));
  });
  roving(nav, "button");
  const done = Object.keys(state.saved).length;
  $("#progress").textContent = `trial ${state.index + 1} of ${state.trials.length} · ${done} saved`;
  $("#done").hidden = done < state.trials.length;
}

function renderMedia(trial) {
  // Tiles without the browsers' own controls (several Tab stops each): a click on a video, or its
  // ▶ button, plays it with sound; "Play all" plays them together, muted. The buttons of the whole
  // strip are one Tab stop (see roving()).
  const reference = $("#reference");
  reference.replaceChildren();
  if (trial.reference) {
    const image = trial.reference.kind === "image";
    const media = image
      ? el("img", { src: trial.reference.url, alt: "Reference: the person the videos should show" })
      : el("video", { src: trial.reference.url, preload: "metadata", playsinline: "",
                      "aria-label": "Reference video" });
    const tile = el("figure", { class: "tile reference-tile" }, el("div", { class: "frame" }, media));
    if (!image) $(".frame", tile).append(playButton(media, "the reference video"));
    tile.append(el("figcaption", { text: "Reference" }));
    reference.append(tile);
  }
  const videos = $("#videos");
  videos.replaceChildren();
  for (const video of trial.videos) {
    const report = el("button", { type: "button", class: "report", text: "Does not play",
                                  "aria-label": `Video ${video.id} does not play` });
    report.addEventListener("click", () => reportVideo(trial.trial, video.id, report));
    const player = el("video", { src: video.url, preload: "metadata", playsinline: "", "aria-label": `Video ${video.id}` });
    player.addEventListener("ended", () => markPlayed(trial.trial, video.id));
    const side = isPairwise(trial) ? (trial.videos[0].id === video.id ? "Left: " : "Right: ") : "";
    videos.append(el("figure", { class: "tile video", "data-id": video.id },
      el("div", { class: "frame" }, player, el("span", { class: "chip-id", "aria-hidden": "true", text: video.id }),
         playButton(player, `video ${video.id}`)),
      el("figcaption", {}, el("span", { class: "caption-text", text: `${side}Video ${video.id}` }), report)));
  }
  roving($("#stage"), "button");
}

function playButton(player, name) {
  // Plays one video with sound (the others pause), or pauses it; a click on the picture does the same.
  const button = el("button", { type: "button", class: "play", "aria-label": `Play ${name} with sound`, text: "▶" });
  const toggle = () => {
    if (player.paused || player.ended) {
      for (const other of $$("#stage video")) if (other !== player) other.pause();
      player.muted = false;
      player.play().catch(() => {});
    } else {
      player.pause();
    }
  };
  button.addEventListener("click", toggle);
  player.addEventListener("click", toggle);
  const show = () => {
    const playing = !player.paused && !player.ended;
    button.textContent = playing ? "❚❚" : "▶";
    button.setAttribute("aria-label", `${playing ? "Pause" : "Play"} ${name}${playing ? "" : " with sound"}`);
  };
  for (const event of ["play", "pause", "ended"]) player.addEventListener(event, show);
  return button;
}

function roving(container, selector) {
  // A group of buttons that is one Tab stop: the arrow keys (and Home/End) move between them, and
  // Tab goes on past the group. The button last used keeps the stop.
  const items = () => $$(selector, container).filter((b) => !b.disabled && b.offsetParent !== null);
  const current = items().find((b) => b.tabIndex === 0 && b.dataset.roving === "current")
    || $('[aria-current="step"]', container) || items()[0];
  for (const button of $$(selector, container)) {
    button.tabIndex = button === current ? 0 : -1;
    button.dataset.roving = button === current ? "current" : "";
  }
  if (container.dataset.roving) return;   // the listeners are set once per container
  container.dataset.roving = "on";
  container.addEventListener("focusin", (event) => {
    const button = event.target.closest(selector);
    if (!button || !container.contains(button)) return;
    for (const other of $$(selector, container)) { other.tabIndex = -1; other.dataset.roving = ""; }
    button.tabIndex = 0;
    button.dataset.roving = "current";
  });
  container.addEventListener("keydown", (event) => {
    const list = items();
    const at = list.indexOf(event.target.closest(selector));
    if (at < 0) return;
    const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
    let to = null;
    if (step) to = (at + step + list.length) % list.length;
    else if (event.key === "Home") to = 0;
    else if (event.key === "End") to = list.length - 1;
    if (to === null) return;
    event.preventDefault();
    list[to].focus();
  });
}

async function reportVideo(trial, id, button) {
  try {
    await api("/api/report", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participant: state.participant, token: state.token, trial, video: id }) });
    const hadFocus = document.activeElement === button;
    button.textContent = "Reported";
    button.disabled = true;
    roving($("#stage"), "button");
    if (hadFocus) $("button.play", button.closest("figure")).focus();   // not lost on a disabled button
    markPlayed(trial, id);   // a video that does not play cannot be watched to the end: it does not lock the trial
    announce(`Video ${id} reported as not playing. Rank it as you can, or go on to the next trial.`);
  } catch (error) {
    announce(`The report could not be sent: ${error.message}`);
  }
}

function chip(trial, criterion, id, rank, k) {
  const node = el("div", { class: "chip", "data-id": id, role: "group",
                           "aria-label": rank ? `Video ${id}, rank ${rank} of ${k}` : `Video ${id}, not ranked` },
                  el("span", { class: "chip-id", "aria-hidden": "true", text: id }));
  const button = (cls, label, text, action, disabled = false) => {
    const b = el("button", { type: "button", class: cls, "aria-label": label, title: label, text, disabled });
    b.addEventListener("click", () => action());
    node.append(b);
  };
  if (rank === null) {
    button("place", `Rank video ${id} next on ${criterion}`, "Rank next", () => placeNext(trial, criterion, id));
  } else {
    button("up", `Move video ${id} up on ${criterion}`, "▲", () => move(trial, criterion, id, -1), rank === 1);
    button("down", `Move video ${id} down on ${criterion}`, "▼", () => move(trial, criterion, id, +1), rank === k);
    button("remove", `Take video ${id} back from rank ${rank} on ${criterion}`, "✕", () => unrank(trial, criterion, id));
    node.addEventListener("dblclick", (event) => {
      if (!event.target.closest("button")) unrank(trial, criterion, id);  // not a quick double ▲
    });
  }
  node.addEventListener("pointerdown", (event) => startDrag(event, node, trial, criterion, id));
  return node;
}

function renderCriterion(trial, criterion, question) {
  const order = state.rankings[trial.trial][criterion];
  const k = order.length;
  const incomplete = !isComplete(order);
  const fieldset = el("fieldset", {
    class: "criterion" + (incomplete && state.attempted.has(trial.trial) ? " unranked" : ""),
    "data-criterion": criterion,
  });
  fieldset.append(el("legend", {}, el("span", { class: "criterion-name", text: criterion }),
                     el("span", { class: "question", text: question })));
  if (incomplete && state.attempted.has(trial.trial)) {
    fieldset.append(el("p", { class: "unranked-message", text: `Not ranked yet: give each of the ${k} videos a rank.` }));
  }
  const pool = el("div", { class: "pool drop-target", "data-criterion": criterion,
                           "aria-label": `Videos not ranked yet on ${criterion}` },
                  el("span", { class: "pool-label", text: "Not ranked:" }));
  for (const video of trial.videos) {
    if (!order.includes(video.id)) pool.append(chip(trial.trial, criterion, video.id, null, k));
  }
  const slots = el("ol", { class: "slots", "aria-label": `Ranking on ${criterion}` });
  order.forEach((id, i) => {
    const label = i === 0 ? "1 (best)" : (i === k - 1 ? `${k} (worst)` : String(i + 1));
    const slot = el("li", { class: "slot drop-target" + (id ? " filled" : ""), "data-rank": String(i + 1),
                            "data-criterion": criterion },
                    el("span", { class: "rank-label", text: label }));
    slot.append(id ? chip(trial.trial, criterion, id, i + 1, k) : el("span", { class: "empty", text: "drop a video here" }));
    slots.append(slot);
  });
  fieldset.append(el("div", { class: "board" }, pool, slots));
  return fieldset;
}

const PREFERENCE_LABELS = {
  3: [[1, "Left video"], [0, "Equal"], [-1, "Right video"]],
  5: [[2, "Left, clearly"], [1, "Left, slightly"], [0, "Equal"], [-1, "Right, slightly"], [-2, "Right, clearly"]],
};

function renderPreference(trial, criterion, question) {
  const value = state.rankings[trial.trial][criterion];
  const missing = value === null && state.attempted.has(trial.trial);
  const fieldset = el("fieldset", { class: "criterion preference" + (missing ? " unranked" : ""),
                                    "data-criterion": criterion });
  fieldset.append(el("legend", {}, el("span", { class: "criterion-name", text: criterion }),
                     el("span", { class: "question", text: question || "Which video is better?" })));
  if (missing) fieldset.append(el("p", { class: "unranked-message", text: "Not answered yet: choose one." }));
  const [left, right] = trial.videos.map((v) => v.id);
  const options = el("div", { class: "choices" });
  for (const [level, label] of PREFERENCE_LABELS[state.study.preference_levels === 5 ? 5 : 3]) {
    const id = `pref-${criterion_slug(criterion)}-${level}`;
    const input = el("input", { type: "radio", name: `pref-${criterion_slug(criterion)}`, id, value: String(level),
                                checked: value === level ? "" : null });
    input.addEventListener("change", () => {
      state.rankings[trial.trial][criterion] = level;
      saveDraft(trial.trial);
      showFinal(null);
      renderCriteria({ criterion, level });
      announce(`${criterion}: ${label}${level > 0 ? ` (Video ${left})` : level < 0 ? ` (Video ${right})` : ""}.`);
    });
    const which = level > 0 ? ` (${left})` : level < 0 ? ` (${right})` : "";
    options.append(el("label", { class: "choice", for: id }, input, ` ${label}${which}`));
  }
  fieldset.append(options);
  return fieldset;
}

function criterion_slug(name) {
  return name.toLowerCase().replace(/[^a-z0-9]+/g, "_");
}

function renderCriteria(focus = null) {
  const trial = currentTrial();
  const container = $("#criteria");
  container.replaceChildren(...trialCriteria(trial).map(({ name, question }) =>
    isPairwise(trial) ? renderPreference(trial, name, question) : renderCriterion(trial, name, question)));
  const locked = isLocked(trial);
  for (const fieldset of $$(".criterion", container)) fieldset.disabled = locked;
  $("#save").disabled = locked;
  renderLock(trial);
  if (focus && focus.level !== undefined) {
    const input = $(`.criterion[data-criterion="${CSS.escape(focus.criterion)}"] input[value="${focus.level}"]`, container);
    if (input) input.focus();
    focus = null;
  }
  if (focus) {
    // Keep the keyboard where the participant was: on the moved video's button of the same kind.
    const box = $$(".criterion", container).find((f) => f.dataset.criterion === focus.criterion);
    const node = box && $$(".chip", box).find((c) => c.dataset.id === focus.id);
    const target = node && ($(`button.${focus.button}:not([disabled])`, node) || $("button:not([disabled])", node));
    if (target) target.focus();
  }
  const changed = state.saved[trial.trial] && !sameAsSaved(trial.trial);
  $("#status").textContent = changed ? "Changed since the last save: press “Save results” to keep the change." : "";
  $("#status").classList.remove("error");
  renderNav();
}

function showTrial(index) {
  state.index = Math.max(0, Math.min(index, state.trials.length - 1));
  const trial = currentTrial();
  state.visited.add(trial.trial);
  $("#trial-heading").textContent = `Trial ${state.index + 1} of ${state.trials.length}` +
    (isPairwise(trial) ? ": which of the two videos is better?" : "");
  $("#help").hidden = isPairwise(trial);
  renderMedia(trial);
  renderCriteria();
  $("#previous").disabled = state.index === 0;
  $("#next").disabled = state.index === state.trials.length - 1;
  showFinal(state.saved[trial.trial] && sameAsSaved(trial.trial) ? state.saved[trial.trial] : null);
  $("#trial-heading").focus();
}

function showFinal(saved) {
  const box = $("#final");
  box.hidden = !saved;
  if (!saved) return;
  const body = $("#final-body");
  const trial = currentTrial();
  $("#final-heading").textContent = isPairwise(trial) ? "Saved. Your answers for this trial:"
    : "Saved. Your final ranking for this trial:";
  const labels = Object.fromEntries(PREFERENCE_LABELS[state.study.preference_levels === 5 ? 5 : 3]);
  body.replaceChildren(...trial.criteria.map((name) => el("p", { class: "final-row" },
    el("strong", { text: `${name}: ` }),
    isPairwise(trial) ? labels[saved[name]] : saved[name].map((id, i) => `${i + 1}. Video ${id}`).join("  ·  "))));
}

// -- ranking actions (all end in change()) --------------------------------------------------------

function change(trial, criterion, message, focus) {
  saveDraft(trial);
  showFinal(null);
  renderCriteria(focus);
  const order = state.rankings[trial][criterion];
  const placed = order.filter((id) => id !== null).length;
  announce(`${message} ${criterion}: ${placed} of ${order.length} ranked.`);
}

function placeAt(trial, criterion, id, rank) {
  const order = state.rankings[trial][criterion];
  const from = order.indexOf(id);
  const to = rank - 1;
  if (from === to) return;
  const other = order[to];
  if (from >= 0) order[from] = other;   // swap with the video that held the rank
  order[to] = id;
  const swapped = other && from >= 0 ? ` Video ${other} moves to rank ${from + 1}.` : (other ? ` Video ${other} is unranked.` : "");
  change(trial, criterion, `Video ${id} placed at rank ${rank} of ${order.length}.${swapped}`, null);
}

function placeNext(trial, criterion, id) {
  const order = state.rankings[trial][criterion];
  const free = order.indexOf(null);
  if (free < 0) return;
  order[free] = id;
  // The keyboard goes on with the next unranked video of this criterion, or to the ranked one.
  const next = trialVideoIds().find((v) => !order.includes(v));
  change(trial, criterion, `Video ${id} placed at rank ${free + 1} of ${order.length}.`,
         next ? { criterion, id: next, button: "place" } : { criterion, id, button: "up" });
}

function move(trial, criterion, id, step) {
  const order = state.rankings[trial][criterion];
  const from = order.indexOf(id);
  const to = from + step;
  if (from < 0 || to < 0 || to >= order.length) return;
  const other = order[to];
  order[to] = id;
  order[from] = other;
  const swapped = other ? ` Video ${other} moves to rank ${from + 1}.` : "";
  change(trial, criterion, `Video ${id} moved ${step < 0 ? "up" : "down"} to rank ${to + 1} of ${order.length}.${swapped}`,
         { criterion, id, button: step < 0 ? "up" : "down" });
}

function unrank(trial, criterion, id) {
  const order = state.rankings[trial][criterion];
  const from = order.indexOf(id);
  if (from < 0) return;
  order[from] = null;
  change(trial, criterion, `Video ${id} taken back from rank ${from + 1}.`, { criterion, id, button: "place" });
}

// -- dragging with pointer events (mouse, pen and touch alike) ----------------------------------

let drag = null;

function startDrag(event, node, trial, criterion, id) {
  if (event.button !== 0 || event.target.closest("button") || isLocked(currentTrial())) return;
  drag = { node, trial, criterion, id, x: event.clientX, y: event.clientY, pointer: event.pointerId, ghost: null, over: null };
  node.setPointerCapture(event.pointerId);
  node.addEventListener("pointermove", onDragMove);
  node.addEventListener("pointerup", onDragEnd);
  node.addEventListener("pointercancel", cancelDrag);
}

function targetAt(x, y) {
  const hit = document.elementFromPoint(x, y);
  const target = hit && hit.closest(".drop-target");
  return target && target.dataset.criterion === drag.criterion ? target : null;
}

function onDragMove(event) {
  if (!drag || event.pointerId !== drag.pointer) return;
  if (!drag.ghost) {
    if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 5) return;  // a click, not a drag
    drag.ghost = el("div", { class: "chip ghost", "aria-hidden": "true" }, el("span", { class: "chip-id", text: drag.id }));
    document.body.append(drag.ghost);
    drag.node.classList.add("dragging");
  }
  drag.ghost.style.left = `${event.clientX}px`;
  drag.ghost.style.top = `${event.clientY}px`;
  const target = targetAt(event.clientX, event.clientY);
  if (target !== drag.over) {
    if (drag.over) drag.over.classList.remove("over");
    if (target) target.classList.add("over");
    drag.over = target;
  }
}

function onDragEnd(event) {
  if (!drag || event.pointerId !== drag.pointer) return;
  const { trial, criterion, id, ghost } = drag;
  const target = ghost ? targetAt(event.clientX, event.clientY) : null;
  cancelDrag();
  if (!target) return;
  if (target.classList.contains("slot")) placeAt(trial, criterion, id, Number(target.dataset.rank));
  else if (target.classList.contains("pool")) unrank(trial, criterion, id);
}

function cancelDrag() {
  if (!drag) return;
  const { node, ghost, over } = drag;
  if (ghost) ghost.remove();
  if (over) over.classList.remove("over");
  node.classList.remove("dragging");
  node.removeEventListener("pointermove", onDragMove);
  node.removeEventListener("pointerup", onDragEnd);
  node.removeEventListener("pointercancel", cancelDrag);
  drag = null;
}

// -- saving -------------------------------------------------------------------------------------

async function save() {
  const trial = currentTrial().trial;
  const rankings = state.rankings[trial];
  const incomplete = currentTrial().criteria.filter((name) => !isComplete(rankings[name]));
  state.attempted.add(trial);
  if (incomplete.length) {
    renderCriteria();
    const message = `Not saved: ${incomplete.length} ${incomplete.length > 1 ? "criteria are" : "criterion is"} not ${isPairwise(currentTrial()) ? "answered" : "ranked"} yet (${incomplete.join(", ")}), marked in red.`;
    $("#status").textContent = message;
    $("#status").classList.add("error");
    announce(message);
    const first = $(".criterion.unranked button:not([disabled]), .criterion.unranked input");
    if (first) first.focus();
    return;
  }
  // A retry of the same answer keeps its submission id (stored once if the first try got through);
  // an answer changed since a failed save is a new submission.
  const body = JSON.stringify(rankings);
  if (!state.pending[trial] || state.pending[trial].body !== body) state.pending[trial] = { id: newSubmissionId(), body };
  const button = $("#save");
  button.disabled = true;
  $("#status").textContent = "Saving…";
  $("#status").classList.remove("error");
  try {
    const answer = await api("/api/submit", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ participant: state.participant, token: state.token, trial,
                             submission: state.pending[trial].id,
                             [isPairwise(currentTrial()) ? "preferences" : "rankings"]: rankings }),
    });
    delete state.pending[trial];
    state.saved[trial] = answer.rankings || answer.preferences;
    try { localStorage.removeItem(draftKey(trial)); } catch (error) { /* ignore */ }
    renderCriteria();
    $("#status").textContent = `Trial ${state.index + 1} saved.`;
    showFinal(state.saved[trial]);
    showCompletion(answer);
    announce(`Trial ${state.index + 1} saved. ${Object.keys(state.saved).length} of ${state.trials.length} trials saved.`);
    $("#final-heading").focus();
  } catch (error) {
    if (error.status === 409) delete state.pending[trial];  // that id holds another answer: the next try gets a new one
    const message = `Could not save: ${error.message}. Your ranking is still here; try again.`;
    $("#status").textContent = message;
    $("#status").classList.add("error");
    announce(message);
  } finally {
    button.disabled = isLocked(currentTrial());
  }
}

function showCompletion(reply) {
  // The study's completion code (e.g. for a crowdsourcing platform), once every trial is saved.
  const box = $("#completion");
  const completion = reply && reply.complete ? reply.completion : null;
  box.hidden = !completion;
  if (!completion) return;
  $("#completion-code").textContent = completion.code || "";
  $("#completion-code-line").hidden = !completion.code;
  const link = $("#completion-link");
  link.hidden = !completion.url;
  if (completion.url) link.href = completion.url;
}

function playAll() {
  for (const video of $$("#stage video")) if (!video.closest("#videos")) video.pause();
  for (const video of $$("#videos video")) {
    video.muted = true;
    video.currentTime = 0;
    video.play().catch(() => {});
  }
}

function skipToAnswers(event) {
  // To the first thing to answer (a "Rank next" or a choice); while the trial is locked, to the
  // lock's message, which says what is left to play.
  event.preventDefault();
  const target = $("#criteria button.place:not([disabled]), #criteria input:not([disabled])") ||
    $("#criteria button:not([disabled])") || (!$("#lock").hidden && $("#lock")) || $("#criteria");
  if (target === $("#lock")) target.tabIndex = -1;
  target.focus();
}

function keepStageHeight() {
  // On phones the video strip sticks to the top: the page scrolls a focused control below it, not under it.
  const stage = $("#stage");
  const update = () => document.documentElement.style.setProperty("--stage-height", `${stage.offsetHeight}px`);
  if (window.ResizeObserver) new ResizeObserver(update).observe(stage);
  update();
}

// -- wiring -------------------------------------------------------------------------------------

async function main() {
  try {
    state.study = await api("/api/study");
  } catch (error) {
    $("#welcome-error").textContent = `The study could not be loaded: ${error.message}`;
    return;
  }
  document.title = state.study.title;
  $("#title").textContent = state.study.title;
  const pairwise = state.study.pairwise_trials || 0;
  $("#instructions").textContent = state.study.instructions || (pairwise
    ? `You will see ${state.study.trials} trials. In ${state.study.trials - pairwise} of them, rank the videos on ` +
      `${state.study.criteria.length} criteria; in ${pairwise}, say which of two videos is better.`
    : `You will see ${state.study.trials} trials. In each, rank the videos on ${state.study.criteria.length} criteria.`);

  if (state.study.consent) {
    $("#consent").hidden = false;
    $("#consent-text").textContent = state.study.consent;
    $("#consent-agree").addEventListener("change", allowStart);
  }
  $("#start-new").addEventListener("click", async () => {
    try {
      // A participant id from the address (a platform's link) is registered once the consent is given.
      const body = { ...(state.pendingId ? { participant: state.pendingId } : {}),
                     ...(state.study.consent ? { consent: $("#consent-agree").checked } : {}) };
      const { participant, token } = await api("/api/participants", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      await begin(participant, token);
    } catch (error) {
      $("#welcome-error").textContent = state.pendingId ? resumeMessage(state.pendingId, error) : error.message;
    }
  });
  $("#resume-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const participant = $("#resume-id").value.trim();
    const token = $("#resume-token").value.trim() || rememberedToken(participant);
    try {
      await begin(participant, token);
    } catch (error) {
      $("#welcome-error").textContent = resumeMessage(participant, error);
    }
  });
  $("#save").addEventListener("click", save);
  $("#next").addEventListener("click", () => showTrial(state.index + 1));
  $("#previous").addEventListener("click", () => showTrial(state.index - 1));
  $("#play-all").addEventListener("click", playAll);
  $("#skip-link").addEventListener("click", skipToAnswers);
  keepStageHeight();
  // The buttons come disabled in the page: a click before this point (a slow network, a slow machine)
  // had no handler and was lost, and the resume form was sent as a plain GET of the page.
  allowStart();
  $("#resume-form button[type=submit]").disabled = false;

  const params = new URL(window.location.href).searchParams;
  const known = URL_ID_PARAMETERS.map((name) => params.get(name)).find((value) => value);
  let remembered = null;
  try { remembered = localStorage.getItem("userstudy:participant"); } catch (error) { /* ignore */ }
  if (known || remembered) $("#resume-id").value = known || remembered;
  if (known) await arriveWithId(known);
}

function allowStart() {
  // A new participant can start once the consent box, where the study has one, is checked.
  $("#start-new").disabled = Boolean(state.study.consent) && !$("#consent-agree").checked;
}

// The participant id in the page's address: ?participant=ID, or the parameter a crowdsourcing
// platform adds (Prolific: PROLIFIC_PID; Amazon Mechanical Turk: workerId).
const URL_ID_PARAMETERS = ["participant", "PROLIFIC_PID", "workerId"];

async function arriveWithId(participant) {
  const token = rememberedToken(participant);
  try {
    if (token) return await begin(participant, token);
    if (state.study.consent) {
      // First visit with this id: it is registered when the participant agrees and starts.
      state.pendingId = participant;
      $("#start-new").textContent = `Start as participant ${participant}`;
      return;
    }
    // First visit with this id (a platform's link): register it; it gets its own resume code.
    const reply = await api("/api/participants", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ participant }) });
    await begin(reply.participant, reply.token);
  } catch (error) {
    $("#welcome-error").textContent = resumeMessage(participant, error);
    if (error.status === 409 || error.status === 403) $("#resume-token").focus();
  }
}

function resumeMessage(participant, error) {
  if (error.status === 404 && error.body.unknown) {
    return `There is no participant with the id “${participant}”. Check the id, or start as a new participant.`;
  }
  if (error.status === 403 || (error.status === 409 && error.body.exists)) {
    return `The id “${participant}” has already started. Enter its resume code (shown at the top of the page ` +
      "when you started) to continue.";
  }
  return error.message;
}

main();
