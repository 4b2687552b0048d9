(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const list = document.getElementById("queries");
  const sortBy = document.getElementById("sort");
  const filter = document.getElementById("filter");
  const pageInfo = document.getElementById("page-info");
  const dialog = document.getElementById("match");
  const PER_PAGE = 20;
  let order = [], page = 0;

  const delta = (q) => (q.apr === null || q.apg === null) ? 0 : q.apr - q.apg;
  const keys = {
    "gain": (a, b) => delta(b) - delta(a),
    "failures": (a, b) => ((a.apr ?? 1) - (b.apr ?? 1)) || (delta(a) - delta(b)),
    "loss": (a, b) => delta(a) - delta(b),
    "id": (a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
  };

  function fmt(x) { return x === null ? "–" : x.toFixed(3); }

  function figure(c, rank, kind) {
    const [img, pos, inl, pic, grank, id] = c;
    const f = document.createElement("figure");
    f.className = "c " + (pos === 1 ? "pos" : pos === 0 ? "neg" : "unk");
    f.title = id + (grank ? " (global rank " + grank + ")" : "") + (inl !== null ? ", " + inl + " inliers" : "");
    f.dataset.id = id;
    const im = document.createElement("img");
    im.loading = "lazy"; im.alt = id; im.src = D.thumbs[img];
    f.appendChild(im);
    const cap = document.createElement("figcaption");
    let text = "#" + rank;
    if (kind === "r" && grank && grank !== rank) text += " (was " + grank + ")";
    if (inl !== null) text += " · " + inl + " inl";
    cap.textContent = text;
    f.appendChild(cap);
    if (pic !== null) {
      f.classList.add("link");
      f.dataset.match = D.matches[pic];
      f.addEventListener("click", () => openMatch(D.matches[pic], id));
    }
    return f;
  }

  function openMatch(src, id) {
    const im = dialog.querySelector("img");
    im.src = src; im.alt = "matches with " + id;
    dialog.querySelector("a").href = src;
    dialog.showModal();
  }
  dialog.querySelector("button").addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });

  function card(q) {
    const div = document.createElement("div");
    div.className = "query"; div.dataset.id = q.id;
    div.dataset.delta = delta(q);
    const h = document.createElement("h2");
    const d = delta(q);
    const cls = d > 1e-9 ? "gain" : d < -1e-9 ? "loss" : "same";
    h.innerHTML = "";
    h.append(q.id + " ");
    if (D.has_gt) {
      const s = document.createElement("span");
      s.className = cls;
      s.textContent = "AP " + fmt(q.apg) + " → " + fmt(q.apr) + " (" + (d >= 0 ? "+" : "") + d.toFixed(3) + ")";
      h.append(s);
      const p = document.createElement("span");
      p.className = "muted";
      p.textContent = "  first positive: " + (q.pos_g ?? "–") + " → " + (q.pos_r ?? "–");
      h.append(p);
    }
    div.appendChild(h);
    const grid = document.createElement("div"); grid.className = "grid";
    const qf = document.createElement("figure"); qf.className = "c qry";
    const qi = document.createElement("img"); qi.loading = "lazy"; qi.alt = q.id; qi.src = D.thumbs[q.img];
    qf.appendChild(qi);
    grid.append(Object.assign(document.createElement("div"), {className: "label", textContent: "query"}), qf);
    for (const [kind, label] of [["g", "global"], ["r", "re-ranked"]]) {
      const row = document.createElement("div"); row.className = "row " + kind;
      q[kind].forEach((c, i) => row.appendChild(figure(c, i + 1, kind)));
      grid.append(Object.assign(document.createElement("div"), {className: "label", textContent: label}), row);
    }
    div.appendChild(grid);
    return div;
  }

  function render() {
    const pages = Math.max(1, Math.ceil(order.length / PER_PAGE));
    page = Math.min(Math.max(page, 0), pages - 1);
    list.replaceChildren(...order.slice(page * PER_PAGE, (page + 1) * PER_PAGE).map(card));
    pageInfo.textContent = "page " + (page + 1) + " of " + pages + " (" + order.length + " queries)";
  }

  function resort() {
    const text = filter.value.trim().toLowerCase();
    order = D.queries.filter((q) => !text || q.id.toLowerCase().includes(text));
    order.sort(keys[sortBy.value]);
    page = 0; render();
  }
  sortBy.addEventListener("change", resort);
  filter.addEventListener("input", resort);
  document.getElementById("prev").addEventListener("click", () => { page--; render(); });
  document.getElementById("next").addEventListener("click", () => { page++; render(); });
  window.reportReady = true;
  resort();
})();
