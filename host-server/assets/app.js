// statesync dashboard: loads the lists from the JSON API, then follows the
// server's notification hub over Server-Sent Events (/api/events). Nothing is
// fetched on a timer: a list is loaded again only when an event says it changed.
//
// Names, reasons and details come from devices, so they are only ever put in
// the page as text (textContent), never as HTML.
"use strict";

(() => {
  const HISTORY_KEEP = 200;
  const REFRESH_DELAY_MS = 120;
  const RECONNECT_DELAY_MS = 2000;

  const state = {
    csrf: null,
    records: new Map(), // id -> record
    batches: [],
    devices: [],
    downloads: [],
    history: [],
    deleted: [],
    revision: 0,
    source: null,
    syncing: false,
    buffered: [],
    wanted: new Set(), // names to download the moment they are uploaded (11)
    pendingRefresh: new Set(),
    refreshTimer: null,
    dirty: new Set(),
    renderQueued: false,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (selector) => document.querySelector(selector);

  /** An element with attributes, dataset entries and children (strings become text). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "data") Object.assign(node.dataset, value);
      // Through the CSSOM: the page's Content-Security-Policy forbids style attributes.
      else if (key === "style") Object.assign(node.style, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bytes(n) {
    const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if (n < 1024) return `${n} B`;
    let value = n / 1024;
    let unit = 0;
    while (value >= 1024 && unit + 1 < units.length) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)} ${units[unit]}`;
  }

  function percent(received, size) {
    return size === 0 ? 100 : Math.floor((received * 100) / size);
  }

  /** Local time as `YYYY-MM-DD HH:MM:SS` (the full date and zone in the title). */
  function time(unix) {
    if (!unix) return "never";
    const date = new Date(unix * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} `
      + `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  }

  function contentUrl(name) {
    return "/api/content/" + name.split("/").map(encodeURIComponent).join("/");
  }

  function stateBadge(word, bits) {
    return el("span", { class: `badge state-${word}`, title: `upload state ${bits}` },
      el("span", { class: "bits", text: bits }), word);
  }

  class ApiError extends Error {
    constructor(status, body) {
      super(body && body.error ? body.error : `the server answered ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  /** Fetches JSON from the API; throws ApiError with the server's message. */
  async function api(path, options = {}) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (_) {
      body = { error: text };
    }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function post(path, payload) {
    return api(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf || "" },
      body: JSON.stringify(payload),
    });
  }

  function notice(message, bad = false) {
    const node = $("#notice");
    node.textContent = message;
    node.classList.toggle("bad", bad);
    node.hidden = !message;
  }

  function setLive(mode, text) {
    const node = $("#live");
    node.className = `live ${mode}`;
    node.textContent = text || { on: "live", connecting: "connecting…", off: "offline" }[mode];
  }

  function failed(error) {
    if (error instanceof ApiError && error.body.login_required) {
      showLogin(error.message);
    } else {
      notice(error.message, true);
    }
  }

  // ---------------------------------------------------------------- login

  function showLogin(message) {
    if (state.source) state.source.close();
    state.source = null;
    state.csrf = null;
    $("#app").hidden = true;
    $("#logout").hidden = true;
    $("#login").hidden = false;
    $("#login-error").textContent = message || "";
    setLive("off", "logged out");
    $("#token").focus();
  }

  async function login(event) {
    event.preventDefault();
    const token = $("#token").value.trim();
    try {
      const answer = await api("/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ token }),
      });
      $("#token").value = "";
      state.csrf = answer.csrf;
      start();
    } catch (error) {
      $("#login-error").textContent = error.message;
    }
  }

  async function logout() {
    try {
      await api("/logout", { method: "POST", headers: { "X-CSRF-Token": state.csrf || "" } });
    } catch (_) {
      // Logged out or not, the login form comes next.
    }
    showLogin("");
  }

  // ---------------------------------------------------------------- live events

  function start() {
    $("#login").hidden = true;
    $("#app").hidden = false;
    $("#logout").hidden = false;
    openEvents();
  }

  function openEvents() {
    if (state.source) state.source.close();
    setLive("connecting");
    const source = new EventSource("/api/events");
    state.source = source;
    source.addEventListener("ready", () => {
      setLive("on");
      resync();
    });
    for (const kind of ["record", "deleted", "presence", "download"]) {
      source.addEventListener(kind, (event) => receive(kind, JSON.parse(event.data)));
    }
    source.addEventListener("resync", () => resync());
    source.onerror = () => {
      if (state.source !== source) return;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (login ended) or went away for good: ask why.
        setLive("off");
        checkSession();
      } else {
        setLive("connecting", "reconnecting…");
      }
    };
  }

  async function checkSession() {
    try {
      const session = await api("/api/session");
      state.csrf = session.csrf || state.csrf;
      setTimeout(openEvents, RECONNECT_DELAY_MS);
    } catch (error) {
      if (error instanceof ApiError && error.body.login_required) {
        showLogin(error.message);
      } else {
        setLive("off", "server unreachable");
        setTimeout(checkSession, RECONNECT_DELAY_MS);
      }
    }
  }

  function receive(kind, data) {
    if (state.syncing) {
      state.buffered.push([kind, data]);
    } else {
      apply(kind, data);
    }
  }

  /** Applies one event; a record only moves forward in revision. */
  function apply(kind, data) {
    switch (kind) {
      case "record": {
        const old = state.records.get(data.id);
        if (!old || data.revision >= old.revision) {
          state.records.set(data.id, data);
          state.revision = Math.max(state.revision, data.revision);
          if (data.state === "uploaded" && state.wanted.has(data.name)) downloadNow(data);
        }
        refresh("batches", "history", "deleted");
        dirty("records", "batches", "downloads", "summary");
        break;
      }
      case "deleted": {
        const old = state.records.get(data.id);
        if (old && old.revision < data.revision) state.records.delete(data.id);
        state.wanted.delete(data.name);
        state.revision = Math.max(state.revision, data.revision);
        refresh("batches", "downloads", "history", "deleted");
        dirty("records", "batches", "summary");
        break;
      }
      case "presence": {
        const index = state.devices.findIndex((d) => d.device === data.device);
        if (index >= 0) state.devices[index] = data;
        else {
          state.devices.push(data);
          state.devices.sort((a, b) => a.device.localeCompare(b.device));
        }
        refresh("history");
        dirty("devices", "batches", "summary");
        break;
      }
      case "download":
        refresh("downloads", "history");
        break;
      default:
        break;
    }
  }

  /** Loads every list again (after connecting, or when the stream says we fell behind). */
  async function resync() {
    state.syncing = true;
    state.buffered = [];
    try {
      const [records, batches, devices, downloads, history, deleted] = await Promise.all([
        api("/api/records"),
        api("/api/batches"),
        api("/api/devices"),
        api("/api/downloads"),
        api(`/api/history?limit=${HISTORY_KEEP}`),
        api("/api/deleted"),
      ]);
      state.records = new Map(records.records.map((r) => [r.id, r]));
      state.revision = records.revision;
      state.batches = batches.batches;
      state.devices = devices.devices;
      state.downloads = downloads.downloads;
      state.history = history.entries;
      state.deleted = deleted.deleted;
      const buffered = state.buffered;
      state.syncing = false;
      state.buffered = [];
      for (const [kind, data] of buffered) apply(kind, data);
      for (const record of state.records.values()) {
        if (record.state === "uploaded" && state.wanted.has(record.name)) downloadNow(record);
      }
      dirty("devices", "batches", "records", "downloads", "history", "deleted", "summary");
    } catch (error) {
      state.syncing = false;
      failed(error);
    }
  }

  /** Loads these lists again shortly (several events in a burst cost one request each). */
  function refresh(...kinds) {
    for (const kind of kinds) state.pendingRefresh.add(kind);
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(async () => {
      state.refreshTimer = null;
      const kinds = [...state.pendingRefresh];
      state.pendingRefresh.clear();
      try {
        await Promise.all(kinds.map(load));
      } catch (error) {
        failed(error);
      }
    }, REFRESH_DELAY_MS);
  }

  async function load(kind) {
    switch (kind) {
      case "batches":
        state.batches = (await api("/api/batches")).batches;
        dirty("batches");
        break;
      case "downloads":
        state.downloads = (await api("/api/downloads")).downloads;
        dirty("downloads");
        break;
      case "deleted":
        state.deleted = (await api("/api/deleted")).deleted;
        dirty("deleted");
        break;
      case "devices":
        state.devices = (await api("/api/devices")).devices;
        dirty("devices", "batches", "summary");
        break;
      case "history": {
        const last = state.history.length ? state.history[state.history.length - 1].seq : 0;
        const answer = await api(`/api/history?since=${last}&limit=${HISTORY_KEEP}`);
        state.history = answer.entries.length < HISTORY_KEEP
          ? state.history.concat(answer.entries).slice(-HISTORY_KEEP)
          // More happened than the page keeps: take the latest instead.
          : (await api(`/api/history?limit=${HISTORY_KEEP}`)).entries;
        dirty("history");
        break;
      }
      default:
        break;
    }
  }

  // ---------------------------------------------------------------- actions

  function downloadNow(record) {
    state.wanted.delete(record.name);
    const link = el("a", { href: contentUrl(record.name), download: "" });
    document.body.append(link);
    link.click();
    link.remove();
    notice(`\`${record.name}\` is uploaded (11); downloading it now.`);
    dirty("records");
  }

  function waitForUpload(record) {
    state.wanted.add(record.name);
    notice(`\`${record.name}\` is not uploaded yet (${record.bits} ${record.state}); it downloads here the moment it is 11.`);
    dirty("records");
  }

  async function retry(record) {
    const question = `Ask ${record.owner} to upload “${record.name}” again?\n\n`
      + "The bytes the server holds are dropped and the record goes back to 01 (needed).";
    if (!window.confirm(question)) return;
    try {
      await post("/api/retry", { name: record.name });
      notice(`Asked ${record.owner} to upload \`${record.name}\` again (01); it is told when it connects.`);
    } catch (error) {
      failed(error);
    }
  }

  async function remove(record) {
    const question = `Delete “${record.name}” and its bytes from the server?\n\nDevices keep their own copies.`;
    if (!window.confirm(question)) return;
    try {
      await post("/api/delete", { name: record.name });
      notice(`Deleted \`${record.name}\`.`);
    } catch (error) {
      failed(error);
    }
  }

  async function restore(entry) {
    const record = entry.record;
    const how = entry.bytes_kept
      ? "Its bytes are still kept: it comes back uploaded (11)."
      : `${record.state === "uploaded" ? "Its bytes are no longer kept" : "It was not uploaded when it was deleted"}: `
        + `it comes back needed (01) and ${record.owner} is asked to upload it.`;
    if (!window.confirm(`Restore “${record.name}”?\n\n${how}`)) return;
    try {
      const answer = await post("/api/restore", { name: record.name });
      notice(answer.owner_asked
        ? `Restored \`${record.name}\` as 01; ${record.owner} is asked to upload it again.`
        : `Restored \`${record.name}\` (11).`);
    } catch (error) {
      failed(error);
    }
  }

  // ---------------------------------------------------------------- rendering

  function dirty(...parts) {
    for (const part of parts) state.dirty.add(part);
    if (state.renderQueued) return;
    state.renderQueued = true;
    requestAnimationFrame(() => {
      state.renderQueued = false;
      const parts = new Set(state.dirty);
      state.dirty.clear();
      if (parts.has("summary")) renderSummary();
      if (parts.has("devices")) renderDevices();
      if (parts.has("batches")) renderBatches();
      if (parts.has("records")) renderRecords();
      if (parts.has("downloads")) renderDownloads();
      if (parts.has("history")) renderHistory();
      if (parts.has("deleted")) renderDeleted();
    });
  }

  function fill(tableSelector, rows) {
    const table = $(tableSelector);
    const body = table.querySelector("tbody");
    body.replaceChildren(...rows);
    table.closest("section").querySelector(".empty").hidden = rows.length > 0;
  }

  function renderSummary() {
    const active = state.devices.filter((d) => d.active).length;
    const records = [...state.records.values()];
    const uploaded = records.filter((r) => r.state === "uploaded").length;
    $("#summary").textContent = `${state.devices.length} devices (${active} active) · `
      + `${records.length} records (${uploaded} uploaded) · revision ${state.revision}`;
  }

  function renderDevices() {
    fill("#devices", state.devices.map((d) => el("tr", { data: { device: d.device } },
      el("td", { text: d.device }),
      el("td", {}, el("span", { class: `badge ${d.active ? "active" : "silent"}`, text: d.active ? "active" : "silent" })),
      el("td", { text: d.link }),
      el("td", { class: "time", text: d.active ? `now (since ${time(d.last_seen)})` : time(d.last_seen) }),
    )));
  }

  const STATES = [
    ["uploaded", "11"],
    ["uploading", "10"],
    ["failed", "00"],
    ["needed", "01"],
  ];

  function batchCard(batch, title) {
    const expected = batch.expected;
    const complete = expected > 0 && batch.uploaded === expected;
    const bar = el("div", { class: "bar", title: `${batch.uploaded} of ${expected} uploaded` },
      STATES.map(([word]) => (batch[word] > 0
        ? el("span", { class: word, style: { width: `${(batch[word] * 100) / Math.max(expected, 1)}%` } })
        : null)));
    return el("div", {
      class: `batch${complete ? " complete" : ""}`,
      data: { batchId: String(batch.id), batchName: batch.batch, owner: batch.owner },
      title,
    },
    el("div", { class: "batch-head" },
      el("span", { class: "batch-name", text: batch.batch }),
      el("span", { class: "batch-progress", text: `${batch.uploaded} of ${expected} uploaded` })),
    bar,
    el("div", { class: "counts" }, STATES.map(([word, bits]) => el("span", {
      class: `badge state-${word}${batch[word] ? "" : " zero"}`,
      title: `files in ${bits} (${word})`,
    }, el("span", { class: "bits", text: bits }), `${word} ${batch[word]}`))));
  }

  function renderBatches() {
    const owners = new Map(state.devices.map((d) => [d.device, d]));
    const byOwner = new Map();
    const group = (owner) => {
      if (!byOwner.has(owner)) byOwner.set(owner, []);
      return byOwner.get(owner);
    };
    for (const batch of state.batches) group(batch.owner).push(batch);
    const direct = new Map();
    for (const record of state.records.values()) {
      if (record.batch !== 0) continue;
      if (!direct.has(record.owner)) {
        direct.set(record.owner, {
          id: 0, batch: "(direct)", owner: record.owner, expected: 0,
          uploaded: 0, uploading: 0, failed: 0, needed: 0,
        });
      }
      const counts = direct.get(record.owner);
      counts.expected += 1;
      counts[record.state] += 1;
    }
    for (const [owner, counts] of direct) group(owner).push(counts);
    const names = [...new Set([...owners.keys(), ...byOwner.keys()])].sort((a, b) => a.localeCompare(b));
    const groups = names.map((name) => {
      const device = owners.get(name);
      const batches = byOwner.get(name) || [];
      return el("div", { class: "device-group", data: { device: name } },
        el("h3", {}, name, device
          ? el("span", { class: `badge ${device.active ? "active" : "silent"}`, text: device.active ? "active" : "silent" })
          : null),
        batches.length
          ? batches.map((b) => batchCard(b, b.id === 0 ? "files uploaded without a manifest" : `batch #${b.id}, announced ${time(b.created_at)}`))
          : el("p", { class: "muted", text: "no batches" }));
    });
    $("#batches").replaceChildren(...groups);
    $("#batches-card .empty").hidden = groups.length > 0;
  }

  function why(record) {
    const pct = percent(record.received, record.size);
    switch (record.state) {
      case "needed":
        return "not uploaded yet (01): no byte received";
      case "uploading":
        return `still uploading (10): ${pct} %`;
      case "failed":
        return `upload broke off (00) at ${pct} %${record.reason ? `: ${record.reason}` : ""}; `
          + `it resumes when ${record.owner} sends it again`;
      default:
        return "";
    }
  }

  function recordActions(record) {
    const actions = [];
    if (record.kind === "directory") {
      actions.push(el("span", { class: "muted", text: "directory" }));
    } else if (record.state === "uploaded") {
      actions.push(el("a", { class: "button download", href: contentUrl(record.name), download: "", text: "Download" }));
    } else {
      const waiting = state.wanted.has(record.name);
      actions.push(el("span", {},
        el("button", {
          class: "download-later", type: "button", disabled: waiting,
          title: "only uploaded (11) files can be downloaded",
          onclick: () => waitForUpload(record),
          text: waiting ? "Waiting for 11…" : "Download when uploaded",
        }),
        el("span", { class: "why", text: why(record) + (waiting ? "; it downloads here the moment it is 11" : "") })));
    }
    actions.push(el("button", { type: "button", class: "retry", onclick: () => retry(record), text: "Retry", title: "ask the owner to upload it again" }));
    actions.push(el("button", { type: "button", class: "delete danger", onclick: () => remove(record), text: "Delete" }));
    return el("div", { class: "actions" }, actions);
  }

  function renderRecords() {
    const wantedState = $("#filter-state").value;
    const wantedOwner = $("#filter-owner").value;
    const needle = $("#filter-name").value.trim().toLowerCase();
    const batchNames = new Map(state.batches.map((b) => [b.id, b.batch]));
    const all = [...state.records.values()];
    const owners = [...new Set(all.map((r) => r.owner))].sort((a, b) => a.localeCompare(b));
    const ownerSelect = $("#filter-owner");
    ownerSelect.replaceChildren(el("option", { value: "", text: "all" }),
      ...owners.map((o) => el("option", { value: o, text: o })));
    ownerSelect.value = owners.includes(wantedOwner) ? wantedOwner : "";
    const shown = all
      .filter((r) => !wantedState || r.state === wantedState)
      .filter((r) => !wantedOwner || r.owner === wantedOwner)
      .filter((r) => !needle || r.name.toLowerCase().includes(needle))
      .sort((a, b) => a.name.localeCompare(b.name));
    $("#records-count").textContent = `${shown.length} of ${all.length}`;
    fill("#records", shown.map((r) => {
      const pct = percent(r.received, r.size);
      return el("tr", { data: { recordId: String(r.id), name: r.name, state: r.state, bits: r.bits } },
        el("td", { class: "name" }, r.kind === "directory" ? `${r.name}/` : r.name,
          r.conflict ? el("span", { class: "badge conflict", title: "another device announced other content under this name", text: "conflict" }) : null),
        el("td", { class: "state" }, stateBadge(r.state, r.bits),
          r.reason ? el("span", { class: "reason", text: r.reason }) : null),
        el("td", { class: "received", title: `${r.received} of ${r.size} bytes` },
          `${bytes(r.received)} / ${bytes(r.size)} (${pct} %)`,
          el("div", { class: "bar" }, el("span", { class: r.state, style: { width: `${pct}%` } }))),
        el("td", {}, r.hash === null
          ? el("span", { class: "muted", title: "uploaded without its hash: it comes when the upload closes", text: "not known yet" })
          : el("code", { class: "hash", title: r.hash, text: `${r.hash.slice(0, 16)}…` })),
        el("td", { text: r.owner }),
        el("td", { text: r.batch === 0 ? "(direct)" : (batchNames.get(r.batch) || `#${r.batch}`) }),
        el("td", { class: "time", text: time(r.updated_at) }),
        el("td", {}, recordActions(r)));
    }));
  }

  function renderDownloads() {
    fill("#downloads", state.downloads.map((d) => {
      const record = state.records.get(d.record);
      const label = {
        pending: "waiting for the upload",
        downloading: `downloading ${percent(d.acknowledged, d.size)} %`,
        done: "done",
        failed: `failed at ${percent(d.acknowledged, d.size)} %`,
      }[d.state] || d.state;
      const badge = el("span", { class: `badge ${d.state === "failed" ? "state-failed" : d.state}`, text: label });
      return el("tr", { data: { device: d.device, name: d.name, state: d.state } },
        el("td", { text: d.device }),
        el("td", { text: d.name }),
        el("td", {}, d.detail ? [badge, el("span", { class: "why", text: ` ${d.detail}` })] : badge),
        el("td", {}, record
          ? [stateBadge(record.state, record.bits), ` ${percent(record.received, record.size)} %`]
          : el("span", { class: "muted", text: "deleted" })));
    }));
  }

  function renderDeleted() {
    fill("#deleted", state.deleted.map((d) => el("tr", { data: { deletedName: d.record.name } },
      el("td", { class: "soft-wrap", text: d.record.name }),
      el("td", { text: bytes(d.record.size) }),
      el("td", { text: d.record.owner }),
      el("td", { class: "time", text: time(d.record.updated_at) }),
      el("td", { text: d.deleted_by }),
      el("td", { text: d.bytes_kept ? "kept" : (d.record.state === "uploaded" ? "no longer kept" : "none (not uploaded)") }),
      el("td", {}, el("button", { type: "button", class: "restore", onclick: () => restore(d), text: "Restore" })))));
  }

  function renderHistory() {
    fill("#history", state.history.slice().reverse().map((h) => el("tr", { data: { seq: String(h.seq), kind: h.kind } },
      el("td", { class: "num", text: String(h.seq) }),
      el("td", { class: "time", text: time(h.at) }),
      el("td", { text: h.device }),
      el("td", { class: "time", text: h.kind }),
      el("td", { class: "soft-wrap", text: h.subject }),
      el("td", { class: "wrap", text: h.detail }))));
  }

  // ---------------------------------------------------------------- start

  async function boot() {
    $("#login-form").addEventListener("submit", login);
    $("#logout").addEventListener("click", logout);
    for (const id of ["#filter-state", "#filter-owner"]) $(id).addEventListener("change", () => dirty("records"));
    $("#filter-name").addEventListener("input", () => dirty("records"));
    try {
      const session = await api("/api/session");
      state.csrf = session.csrf || null;
      start();
    } catch (error) {
      showLogin(error instanceof ApiError && error.status === 401 && !error.message.startsWith("no admin token")
        ? "" : error.message);
    }
  }

  boot();
})();
