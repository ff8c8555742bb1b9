// bootfleet status page: polls /status/data and redraws. No libraries.
//
// A token for a remote viewer comes from the URL's fragment
// (/status#token=T): a fragment is never sent to the server nor logged.
// It is kept in sessionStorage (this tab only) and removed from the URL.
// Everything from the server is put into the page as text (textContent),
// never as HTML: client and image names are whatever the catalog holds.
"use strict";

const POLL_MS = 2000;
let token = sessionStorage.getItem("bootfleet-token") || "";
const previous = { at: 0, bytes: new Map() };  // session -> [read, write] at the last poll

(function takeToken() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem("bootfleet-token", token);
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(n < 10 ? 1 : 0)) + " " + units[i];
}

function ago(ms, now) {
  if (!ms) return "–";
  let s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min ago";
  return Math.floor(s / 86400) + " d ago";
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

function seconds(v) {
  return v === undefined ? "–" : v < 10 ? v.toFixed(1) + "s" : Math.round(v) + "s";
}

function replaceRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function card(label, value, bad) {
  const c = el("div", null, "card" + (bad ? " bad" : ""));
  c.append(el("div", label, "label"), el("div", value, "value"));
  return c;
}

function renderHealth(d) {
  const h = d.health;
  const free = h.cache_disk_free_bytes, size = h.cache_disk_size_bytes;
  const low = free !== null && size && free / size < 0.1;
  const cards = [
    card("cache disk free", free === null ? "unknown" : bytes(free) + (size ? " (" + Math.round(100 * free / size) + " %)" : ""), low),
    card("write caches", bytes(h.cache_bytes)),
    card("sessions", h.sessions),
  ];
  for (const p of ["nbd", "iscsi", "http", "tftp"]) {
    cards.push(card(p + " connections", h.connections[p]));
  }
  const errors = Object.values(h.errors).reduce((a, b) => a + b, 0);
  cards.push(card("protocol errors", errors, errors > 0));
  cards.push(card("store", bytes(h.store_bytes)));
  document.getElementById("health").replaceChildren(...cards);
}

function bootText(b) {
  if (!b) return "–";
  const s = b.stages;
  const parts = ["loader", "script", "kernel", "initrd", "root"].map((k) => seconds(s[k]));
  return parts.join(" · ") + " = " + (s.total === undefined ? (b.complete ? "–" : "in progress") : seconds(s.total));
}

function renderClients(d) {
  const dt = previous.at ? (d.now_ms - previous.at) / 1000 : 0;
  const counts = { up: 0, booting: 0, off: 0, maintenance: 0 };
  const rows = d.clients.map((c) => {
    counts[c.state] = (counts[c.state] || 0) + 1;
    const tr = el("tr");
    tr.dataset.session = c.session;
    tr.dataset.state = c.state;
    const last = previous.bytes.get(c.session);
    const rate = (i, now) => (dt > 0 && last ? Math.max(0, (now - last[i]) / dt) : null);
    const r = rate(0, c.read_bytes), w = rate(1, c.write_bytes);
    const state = el("td");
    state.append(el("span", c.state, "state " + c.state));
    const version = el("td", c.version === null ? "–" : c.image + "@" + c.version);
    const follows = c.pin !== null && c.pin !== undefined ? "pinned @" + c.pin
      : c.channel ? c.channel + (c.group ? " (" + c.group + ")" : "") : "–";
    version.dataset.field = "version";
    tr.append(
      el("td", c.name), el("td", c.mac || "–"), el("td", c.image), el("td", follows), state, version,
      el("td", ago(c.since_ms, d.now_ms)),
      el("td", bytes(c.cache_bytes), "num"),
      el("td", r === null ? "–" : bytes(r) + "/s", "num"),
      el("td", w === null ? "–" : bytes(w) + "/s", "num"),
      el("td", bootText(c.last_boot)));
    return tr;
  });
  replaceRows(document.querySelector("#clients tbody"), rows);
  document.getElementById("client-summary").textContent =
    counts.up + " up, " + counts.booting + " booting, " + counts.off + " off";
  const anon = d.anonymous_sessions.length;
  document.getElementById("anonymous").textContent =
    anon ? anon + " anonymous session" + (anon > 1 ? "s" : "") + " (export IMAGE: a fresh disk per connection)" : "";
  previous.at = d.now_ms;
  previous.bytes = new Map(d.clients.map((c) => [c.session, [c.read_bytes, c.write_bytes]]));
}

function renderImages(d) {
  const rows = d.images.map((i) => {
    const tr = el("tr");
    tr.dataset.image = i.name;
    const active = el("td", i.active === null ? "none" : "@" + i.active);
    active.dataset.field = "active";
    tr.append(el("td", i.name), active, el("td", i.previous === null ? "–" : "@" + i.previous),
      el("td", i.latest === null ? "–" : "@" + i.latest), el("td", i.versions, "num"),
      el("td", i.boot_mode), el("td", bytes(i.bytes_on_disk), "num"));
    return tr;
  });
  replaceRows(document.querySelector("#images tbody"), rows);
}

function renderLog(id, items, text) {
  const list = items.slice(0, 50).map((e) => {
    const li = el("li");
    li.append(el("span", clock(e.at_ms), "time"), document.createTextNode(text(e)));
    return li;
  });
  if (!list.length) list.push(el("li", "none", "muted"));
  document.getElementById(id).replaceChildren(...list);
}

function render(d) {
  document.getElementById("server-version").textContent = "bootsrv " + d.version;
  renderHealth(d);
  renderClients(d);
  renderImages(d);
  renderLog("events", d.events, (e) =>
    e.kind + " " + (e.session || "") + (e.peer ? " from " + e.peer : "") + (e.protocol ? " over " + e.protocol : "") +
    (e.detail !== e.session ? " " + e.detail : ""));
  renderLog("errors", d.errors, (e) => e.message);
  document.getElementById("updated").textContent = "updated " + clock(d.now_ms);
}

function problem(text) {
  const p = document.getElementById("problem");
  p.textContent = text;
  p.hidden = !text;
}

async function poll() {
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const r = await fetch("/status/data", { headers, cache: "no-store" });
    if (r.status === 401 || r.status === 403) {
      const body = await r.json().catch(() => ({}));
      problem("Not allowed (" + r.status + "): " + ((body.error && body.error.message) || "") +
        " — open this page as /status#token=TOKEN with a status or API token.");
      return;
    }
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    problem("");
  } catch (e) {
    problem("Cannot reach bootsrv (" + e.message + "); retrying every " + POLL_MS / 1000 + " s.");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
