// fedledger dashboard: renders the job state the server embedded in the page, then follows
// /api/stream (server-sent events) and re-renders on every new state: no reload, no CDN.
"use strict";
(function () {
  const app = document.getElementById("app");
  const kind = document.body.dataset.page;
  const job = app.dataset.job;
  const charts = [];
  window.fedledgerLoadId = Math.random();
  window.fedledgerUpdates = 0;

  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const short = (h) => (h && h.length > 14 ? h.slice(0, 10) + "…" : h || "—");
  const pct = (x) => (x == null ? "—" : (100 * x).toFixed(2) + "%");
  const tok = (x) => Number(x).toFixed(4);
  const when = (t) => (t ? new Date(t * 1000).toISOString().replace(".000Z", "Z") : "—");
  const td = (text, value, cls) =>
    `<td${cls ? ` class="${cls}"` : ""}${value === undefined ? "" : ` data-value="${esc(value)}"`}>${esc(text)}</td>`;
  const table = (id, head, rows) =>
    `<table id="${id}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
  const nameOf = (s) => {
    const m = {};
    s.organisations.forEach((o) => (m[o.address] = o.name));
    return (a) => m[a] || short(a);
  };

  function chart(el, title, xs, series, opts) {
    const width = Math.min(560, Math.max(320, (el.clientWidth || 560) - 10));
    const palette = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#57606a"];
    const u = new uPlot(
      {
        title, width, height: 240,
        scales: { x: { time: false }, ...(opts && opts.scales) },
        legend: { show: series.length <= 8 },
        series: [{ label: "round" }, ...series.map((s, i) => ({ label: s.label, stroke: s.stroke || palette[i % palette.length], width: 2, dash: s.dash }))],
      },
      [xs, ...series.map((s) => s.data)],
      el,
    );
    charts.push(u);
  }

  function jobPage(s) {
    const name = nameOf(s);
    const metric = {};
    s.metrics.forEach((m) => (metric[m.round] = m));
    const spec = s.spec || {};
    const specRows = ["name", "dataset", "model", "aggregation", "rounds", "trainers", "local_epochs", "learning_rate", "privacy", "dp_epsilon", "scoring", "code_digest"]
      .filter((k) => k in spec).map((k) => `<tr><th>${k}</th>${td(spec[k] === "" ? "—" : spec[k])}</tr>`);
    specRows.unshift(`<tr><th>spec hash</th><td><code>${esc(short(s.job.spec_hash))}</code></td></tr>`,
      `<tr><th>reward pool</th>${td(tok(s.job.reward_pool_tokens || 0), s.job.reward_pool)}</tr>`,
      `<tr><th>quorum</th>${td(s.job.quorum ?? "—")}</tr>`);
    const committee = s.organisations.filter((o) => o.validator).map((o) => `<tr>${td(o.name)}<td><code>${esc(o.address)}</code></td></tr>`);
    const stakes = s.organisations.map((o) => `<tr>${td(o.name)}${td(tok(o.stake_tokens), o.stake, "num")}${td(o.trainer ? "trainer" : "")}${td(o.validator ? "validator" : "")}</tr>`);
    const rows = s.rounds.map((r) => {
      const m = metric[r.round] || {};
      return `<tr data-round="${r.round}">${td(r.round, r.round, "num")}${td(r.version, r.version, "num")}${td(r.status)}${td(r.commits, r.commits, "num")}${td(r.accepted, r.accepted, "num")}` +
        `${td(r.excluded.map(name).join(", ") || "—")}${td(tok(r.reward_tokens), r.reward, "num")}${td(pct(m.test_accuracy), m.test_accuracy ?? "", "num acc")}` +
        `${td(m.test_loss == null ? "—" : m.test_loss.toFixed(4), m.test_loss ?? "", "num loss")}${td(r.block || "—", r.block, "num")}<td><code>${esc(short(r.model))}</code></td></tr>`;
    });
    const finalized = s.rounds.filter((r) => r.status === "finalized").length;
    const phase = `<div class="card"><h2>Phase</h2><p><b id="phase">${esc(s.phase.name)}</b> · deadline <span id="deadline">${esc(when(s.phase.deadline))}</span></p>` +
      `<p>block <b id="block">${s.block}</b> · <span id="finalized">${finalized}</span> of ${s.job.rounds ?? "?"} rounds finalised · outcome <b id="outcome">${esc(s.outcome)}</b></p>` +
      (s.purpose ? `<p>purpose: ${esc(s.purpose)}</p>` : "") + `</div>`;
    // the rounds and their curves first: what an operator opens the page for
    app.innerHTML =
      `<div class="grid">${phase}<div id="acc"></div><div id="loss"></div></div>` +
      `<h2>Rounds</h2>` + table("rounds", ["round", "version", "status", "commits", "accepted", "excluded", "reward", "accuracy", "loss", "block", "model"], rows) +
      `<div class="grid"><div class="card"><h2>Spec</h2><table id="spec">${specRows.join("")}</table></div>` +
      `<div class="card"><h2>Committee</h2>${table("committee", ["validator", "address"], committee)}</div>` +
      `<div class="card scroll"><h2>Stakes</h2>${table("stakes", ["organisation", "stake", "", ""], stakes)}</div></div>`;
    const ms = s.metrics.filter((m) => m.test_accuracy != null);
    if (ms.length) {
      const xs = ms.map((m) => m.round);
      chart(document.getElementById("acc"), "test accuracy", xs, [{ label: "accuracy", data: ms.map((m) => m.test_accuracy) }]);
      chart(document.getElementById("loss"), "loss", xs, [
        { label: "test loss", data: ms.map((m) => m.test_loss) },
        { label: "train loss", data: ms.map((m) => m.train_loss), dash: [5, 5] },
      ]);
    } else {
      document.getElementById("acc").innerHTML = `<p class="warn">accuracy and loss are measured off chain by the sponsor: open the run directory for its curves</p>`;
    }
  }

  function orgsPage(s) {
    const rounds = s.rounds.map((r) => r.round);
    const rows = s.organisations.map((o) => {
      const examples = Object.values(o.commits).reduce((a, b) => a + b, 0);
      const rep = o.reputation.length ? o.reputation[o.reputation.length - 1][1] / 100 : null;
      return `<tr data-org="${esc(o.name)}">${td(o.name)}${td(Object.keys(o.commits).length, Object.keys(o.commits).length, "num")}${td(examples.toLocaleString("en"), examples, "num")}` +
        `${td(o.excluded.join(", ") || "—")}${td(o.flags, o.flags, "num")}${td(o.slashes.map((x) => `r${x[0]}: ${tok(x[1])}`).join(", ") || "—")}` +
        `${td(o.ejected ? "round " + o.ejected : "—")}${td(rep == null ? "—" : rep.toFixed(2) + "%", rep ?? "", "num")}${td(tok(o.paid_tokens), o.paid, "num paid")}</tr>`;
    });
    app.innerHTML = `<div class="grid"><div id="contrib"></div><div id="exclusions"></div></div>` +
      table("organisations", ["organisation", "rounds", "examples", "excluded in", "flags", "slashes", "ejected", "reputation", "paid (reward + fees + stake)"], rows);
    if (rounds.length) {
      const cum = (o, f) => { let t = 0; return rounds.map((r) => (t += f(o, r))); };
      const top = s.organisations.slice(0, 12);
      chart(document.getElementById("contrib"), "examples contributed, cumulative", rounds,
        top.map((o) => ({ label: o.name, data: cum(o, (o, r) => o.commits[r] || 0) })));
      chart(document.getElementById("exclusions"), "exclusions and slashes, cumulative", rounds, [
        { label: "excluded updates", data: rounds.map((r) => s.rounds.filter((x) => x.round <= r).reduce((a, x) => a + x.excluded.length, 0)) },
        { label: "slashes", data: rounds.map((r) => s.organisations.reduce((a, o) => a + o.slashes.filter((x) => x[0] <= r).length, 0)) },
      ]);
    }
  }

  function privacyPage(s) {
    const budget = (s.spec && s.spec.dp_epsilon) || 0;
    const spent = s.privacy.epsilon_spent;
    const share = budget ? Math.min(1, spent / budget) : 0;
    const trainers = Object.entries(s.privacy.by_trainer).map(([n, e]) => `<tr>${td(n)}${td(e.toFixed(4), e, "num")}</tr>`);
    app.innerHTML = `<div class="card"><p>ε spent <b id="epsilon">${spent.toFixed(4)}</b> of budget <b id="budget">${budget || "none (no differential privacy)"}</b></p>` +
      `<div class="meter"><div style="width:${(100 * share).toFixed(1)}%"></div></div></div><div id="eps"></div>` +
      (trainers.length ? `<h2>Record-level ε by organisation</h2>${table("trainer-epsilon", ["organisation", "ε"], trainers)}` : "");
    const pts = s.privacy.by_round;
    if (pts.length) {
      chart(document.getElementById("eps"), "ε spent against the budget", pts.map((p) => p[0]), [
        { label: "ε spent", data: pts.map((p) => p[1]) },
        { label: "budget", data: pts.map(() => budget), dash: [4, 4], stroke: "#cf222e" },
      ]);
    }
  }

  function lineagePage(s) {
    const name = nameOf(s);
    const fin = s.rounds.filter((r) => r.status === "finalized");
    const orgs = s.organisations.filter((o) => o.trainer);
    const code = (s.spec && s.spec.code_digest) || "built-in model";
    const rowH = 26, top = 30, h = top + rowH * Math.max(fin.length + 1, orgs.length, 2);
    const X = [20, 300, 560];
    const vy = (i) => top + i * rowH, oy = {};
    orgs.forEach((o, i) => (oy[o.address] = top + i * rowH));
    let edges = "", nodes = "";
    fin.forEach((r, i) => {
      r.updates.forEach((u) => {
        const excluded = r.excluded.includes(u.trainer);
        if (oy[u.trainer] === undefined) return;
        edges += `<line x1="${X[0] + 170}" y1="${vy(i + 1)}" x2="${X[1]}" y2="${oy[u.trainer]}" stroke="${excluded ? "#cf222e" : "#8c959f"}" stroke-opacity=".5"><title>update ${esc(u.commitment)} by ${esc(name(u.trainer))} → v${r.version}${excluded ? " (excluded)" : ""}</title></line>`;
      });
      nodes += `<g class="version"><rect x="${X[0]}" y="${vy(i + 1) - 10}" width="170" height="20" fill="#ddf4ff" stroke="#0969da"/><text x="${X[0] + 6}" y="${vy(i + 1) + 4}">v${r.version} ${esc(short(r.model))}</text></g>`;
    });
    nodes += `<g><rect x="${X[0]}" y="${vy(0) - 10}" width="170" height="20" fill="#f6f8fa" stroke="#57606a"/><text x="${X[0] + 6}" y="${vy(0) + 4}">v0 ${esc(short(s.job.initial_model))}</text></g>`;
    orgs.forEach((o) => {
      nodes += `<g class="org"><rect x="${X[1]}" y="${oy[o.address] - 10}" width="150" height="20" fill="#dafbe1" stroke="#1a7f37"/><text x="${X[1] + 6}" y="${oy[o.address] + 4}">${esc(o.name)}</text></g>`;
      edges += `<line x1="${X[1] + 150}" y1="${oy[o.address]}" x2="${X[2]}" y2="${oy[o.address]}" stroke="#8c959f"/>`;
      nodes += `<text x="${X[2] + 6}" y="${oy[o.address] + 4}">data ${esc(o.data_root ? short(o.data_root) + " · " + o.data_rows + " rows" : "— (no data commitment)")} · code ${esc(short(code))}</text>`;
    });
    const heads = ["model version", "organisations (updates on the edges)", "data commitment · code digest"].map((t, i) => `<text x="${X[i]}" y="14" font-weight="600">${t}</text>`).join("");
    const rows = fin.map((r) => `<tr>${td("v" + r.version, r.version)}${td(r.round)}<td>${r.updates.map((u) => `<code>${esc(short(u.commitment))}</code> ${esc(name(u.trainer))}${r.excluded.includes(u.trainer) ? " (excluded)" : ""}`).join("<br>")}</td></tr>`);
    app.innerHTML = `<svg id="lineage" width="860" height="${h + 10}">${heads}${edges}${nodes}</svg>` +
      `<h2>Updates per version</h2>${table("versions", ["version", "round", "updates → organisation"], rows)}`;
  }

  function auditPage() {
    if (document.getElementById("run-audit")) return; // the audit's result stays across updates
    app.innerHTML = `<p><button id="run-audit">Run the audit</button> re-executes the chain, re-hashes every blob and recomputes every round and payout.</p><div id="verdict"></div>`;
    document.getElementById("run-audit").onclick = async () => {
      const out = document.getElementById("verdict");
      out.innerHTML = "<p>auditing…</p>";
      const res = await fetch(`/api/job/${job}/audit`, { method: "POST" });
      const a = await res.json();
      if (a.error) { out.innerHTML = `<p class="error" id="audit-error">${esc(a.error)}</p>`; return; }
      const checks = a.checks.map((c) => `<tr data-check="${esc(c.check)}">${td(c.check)}<td class="pass">passed ×${c.passed}</td></tr>`);
      const findings = a.findings.map((f) => `<tr>${td(f.check)}<td class="${f.severity === "error" ? "fail" : "warn"}">${esc(f.line)}</td></tr>`);
      out.innerHTML = `<h2 id="audit-verdict" class="${a.ok ? "pass" : "fail"}">${a.ok ? "AUDIT PASSED" : "AUDIT FAILED"}</h2><p>${esc(a.provenance)}</p>` +
        table("checks", ["check", "verdict"], checks.concat(findings)) +
        (a.not_covered.length ? `<p>not covered by any check: ${esc(a.not_covered.join(", "))}</p>` : "");
    };
  }

  const renderers = { job: jobPage, organisations: orgsPage, privacy: privacyPage, lineage: lineagePage, audit: auditPage };

  function render(s) {
    charts.splice(0).forEach((c) => c.destroy());
    renderers[kind](s);
    document.body.dataset.revision = s.revision;
    document.body.dataset.block = s.block;
  }

  render(JSON.parse(document.getElementById("state").textContent));
  window.fedledgerPainted = performance.now();
  const live = document.getElementById("live");
  const es = new EventSource(`/api/stream?job=${job}`);
  es.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  es.addEventListener("error", () => { live.textContent = "offline"; live.classList.remove("on"); });
  es.addEventListener("state", (ev) => {
    const s = JSON.parse(ev.data);
    if (String(s.revision) === document.body.dataset.revision && String(s.block) === document.body.dataset.block && kind !== "job") return;
    window.fedledgerUpdates += 1;
    render(s);
  });
})();
