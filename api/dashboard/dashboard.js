/* The recall dashboard. Data: the overview embedded in the page (GET /eval/overview's body); the per-query
 * drill-down loads on demand from /eval/compare, the benchmark history from /benchmarks. No framework, no external
 * request. Every piece of text from the data goes through esc() before it reaches innerHTML. */
(function () {
  "use strict";

  window.__dashStart = performance.now(); // for the bench: scripts loaded, compiled and running
  var O = JSON.parse(document.getElementById("overview").textContent);
  var asUser = O.viewer === "user"; // GET /dashboard with a user key (README, "The dashboard for a user key")
  var tenant = O.tenant;
  var DEFAULT_METRICS = ["recall@1", "recall@10", "recall@100", "ndcg@10", "mrr@10"];
  var COLORS = {"recall@1": "#9467bd", "recall@10": "#1f77b4", "recall@100": "#17becf", "ndcg@10": "#ff7f0e",
                "mrr@10": "#2ca02c"};
  var OTHER_COLORS = ["#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39",
                      "#7b4173", "#3182bd", "#e6550d", "#31a354"];
  var floors = (O.gate && O.gate.floors) || {};
  var maxDrop = (O.gate && O.gate.max_drop) || {};
  var gated = unique(Object.keys(floors).concat(Object.keys(maxDrop)));
  var shownByDefault = new Set(DEFAULT_METRICS.concat(gated));
  var visibleMetrics = new Set(O.metrics.filter(function (m) { return shownByDefault.has(m); }));
  var traceIndex = new Map(); // metric -> index of its trace in the chart

  var snaps = O.snapshots; // oldest first: build order
  var byHash = new Map();
  snaps.forEach(function (s, i) { byHash.set(s.hash, s); s._order = i; });
  var current = null;           // the selected query set version (an entry of O.query_sets)
  var runBySnap = new Map();    // snapshot hash -> run of the selected set version
  var compareToken = 0;

  // --- helpers --------------------------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }
  function unique(xs) { return xs.filter(function (x, i) { return xs.indexOf(x) === i; }); }
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  function esc(v) { return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function short(h) { return h ? h.slice(0, 12) : "—"; }
  function hashHtml(h) { return '<code class="hash" title="' + esc(h) + '">' + esc(short(h)) + "</code>"; }
  function num(v) { return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US"); }
  function score(v, digits) {
    return v === null || v === undefined || isNaN(v) ? "—" : Number(v).toFixed(digits === undefined ? 4 : digits);
  }
  function signed(v) { return (v > 0 ? "+" : v < 0 ? "−" : "±") + Math.abs(v).toFixed(4); }
  function pad(n) { return String(n).padStart(2, "0"); }
  function fmtTime(t) {
    if (t === null || t === undefined) return "—";
    var d = new Date(t * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes());
  }
  function ago(t) {
    var s = Date.now() / 1000 - t;
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min ago";
    if (s < 86400) return Math.floor(s / 3600) + " h ago";
    return Math.floor(s / 86400) + " d ago";
  }
  function builtAt(s) { return s.built_at || s.created_at; }
  function isHeld(s) { return s.status === "candidate" && s.gate && !s.gate.passed; }
  function snapLabel(s) { return short(s.hash) + " · " + s.status + " · " + fmtTime(builtAt(s)); }
  function errorDetail(body, status) {
    var d = body && body.detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map(function (e) { return (e.loc || []).slice(1).join(".") + ": " + e.msg; }).join("; ");
    return "HTTP " + status;
  }
  // A JSON call with the page's own credentials: the body, or an Error carrying the server's detail.
  function getJSON(url, init) {
    init = init || {};
    init.headers = Object.assign({Accept: "application/json"}, init.headers || {});
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return null; }).then(function (body) {
        if (!r.ok) throw new Error(errorDetail(body, r.status));
        return body;
      });
    });
  }

  // A card filled from one call: loading, then empty, loaded or an error line, told by data-state.
  function loadCard(name, url, what, fill) {
    var card = $(name + "-card");
    getJSON(url, {headers: {"X-Tenant": tenant}})
      .then(function (body) {
        $(name + "-loading").hidden = true;
        card.dataset.state = fill(body) ? "loaded" : "empty";
        $(name + "-empty").hidden = card.dataset.state !== "empty";
      })
      .catch(function (e) {
        $(name + "-loading").hidden = true;
        $(name + "-error").hidden = false;
        $(name + "-error").textContent = what + " could not be loaded: " + e.message;
        card.dataset.state = "error";
      });
  }

  function banner(message, kind) {
    var b = $("banner");
    b.className = "banner " + (kind || "error");
    b.textContent = message;
    b.hidden = !message;
  }

  // --- header -----------------------------------------------------------------------------------------------

  function renderHeader() {
    document.querySelectorAll(".tenant-name").forEach(function (el) { el.textContent = tenant; });
    $("tenants").innerHTML = '<span class="label">Tenant</span>' + O.tenants.map(function (t) {
      var here = t === tenant;
      return '<a href="?tenant=' + encodeURIComponent(t) + '"' + (here ? ' class="current" aria-current="page"' : "") +
        ">" + esc(t) + "</a>";
    }).join("");
    if (O.live) {
      var since = O.switches.filter(function (w) { return w.to_hash === O.live; }).pop();
      $("live").innerHTML = hashHtml(O.live) + (since ? ' <span class="muted">since ' + esc(fmtTime(since.at)) +
        " (" + esc(since.action) + ")</span>" : "");
    } else {
      $("live").innerHTML = '<span class="muted">none</span>';
    }
    var rules = unique(Object.keys(floors).concat(Object.keys(maxDrop))).sort().map(function (m) {
      var parts = [];
      if (m in floors) parts.push("≥ " + score(floors[m], 2));
      if (m in maxDrop) parts.push("drop ≤ " + score(maxDrop[m], 2));
      return '<span class="rule"><b>' + esc(m) + "</b> " + esc(parts.join(", ")) + "</span>";
    });
    $("gate-policy").innerHTML = rules.length ? rules.join("") : '<span class="muted">no gate: every build goes live</span>';
  }

  // --- query set selection ---------------------------------------------------------------------------------

  function setNames() { return unique(O.query_sets.map(function (q) { return q.name; })); }
  function versionsOf(name) { return O.query_sets.filter(function (q) { return q.name === name; }); }
  function defaultVersion(name) {
    var vs = versionsOf(name);
    return vs.filter(function (q) { return q.active; }).pop() || vs[vs.length - 1];
  }

  function initialSet() {
    var params = new URLSearchParams(location.search);
    var name = params.get("set"), version = Number(params.get("version"));
    var wanted = O.query_sets.filter(function (q) { return q.name === name && q.version === version; })[0];
    if (wanted) return wanted;
    if (name && versionsOf(name).length) return defaultVersion(name);
    var active = O.query_sets.filter(function (q) { return q.active; });
    return active.length ? active[0] : defaultVersion(setNames()[0]);
  }

  function fillSetSelects() {
    $("set-name").innerHTML = setNames().map(function (n) {
      return '<option value="' + esc(n) + '"' + (n === current.name ? " selected" : "") + ">" + esc(n) + "</option>";
    }).join("");
    $("set-version").innerHTML = versionsOf(current.name).slice().reverse().map(function (q) {
      var tag = q.active ? " (active)" : q.retired_at ? " (retired)" : "";
      return '<option value="' + q.version + '"' + (q.version === current.version ? " selected" : "") + ">v" +
        q.version + esc(tag) + "</option>";
    }).join("");
    $("set-info").textContent = num(current.queries) + " queries · " +
      (current.active ? "active: scored after every build" : current.retired_at ? "retired" : "superseded") +
      " · uploaded " + fmtTime(current.created_at);
  }

  function select(qs) {
    current = qs;
    runBySnap = new Map(qs.runs.map(function (r) { return [r.snapshot, r]; }));
    var params = new URLSearchParams(location.search);
    params.set("tenant", tenant);
    params.set("set", qs.name);
    params.set("version", String(qs.version));
    history.replaceState(null, "", "?" + params.toString());
    fillSetSelects();
    drawChart();
    renderTable();
    fillCompareSelects();
  }

  // --- chart ------------------------------------------------------------------------------------------------

  function orderedMetrics() {
    return O.metrics.filter(function (m) { return shownByDefault.has(m); })
      .concat(O.metrics.filter(function (m) { return !shownByDefault.has(m); }));
  }

  function metricColor(m) {
    if (COLORS[m]) return COLORS[m];
    var others = O.metrics.filter(function (x) { return !COLORS[x]; });
    return OTHER_COLORS[others.indexOf(m) % OTHER_COLORS.length];
  }

  function renderMetricPicker() {
    $("metric-picker").innerHTML = '<span class="label">Metrics</span>' + orderedMetrics().map(function (m) {
      return '<label class="chip"><input type="checkbox" value="' + esc(m) + '"' +
        (visibleMetrics.has(m) ? " checked" : "") + '><span class="swatch" style="background:' + metricColor(m) +
        '"></span>' + esc(m) + "</label>";
    }).join("");
  }

  function syncMetricPicker() {
    var chart = $("chart");
    if (!chart.data) return;
    visibleMetrics = new Set(orderedMetrics().filter(function (m) {
      var t = chart.data[traceIndex.get(m)];
      return t && t.visible === true;
    }));
    $("metric-picker").querySelectorAll("input").forEach(function (box) { box.checked = visibleMetrics.has(box.value); });
  }

  function toggleMetric(m, on) {
    if (on) visibleMetrics.add(m); else visibleMetrics.delete(m);
    var chart = $("chart");
    if (chart.data && traceIndex.has(m)) Plotly.restyle(chart, {visible: on}, [traceIndex.get(m)]);
  }

  function drawChart() {
    var chart = $("chart");
    var runs = current.runs.filter(function (r) { return byHash.has(r.snapshot); });
    var empty = $("chart-empty");
    if (typeof Plotly === "undefined") {
      chart.dataset.rendered = "loading"; // drawn once plotly.min.js arrives
      return;
    }
    if (!runs.length) {
      Plotly.purge(chart);
      chart.hidden = true;
      empty.hidden = false;
      empty.textContent = "No finished run of " + current.name + " v" + current.version + " yet. Kept snapshots are " +
        "scored after an upload and every build; POST /eval/runs scores them now.";
      chart.dataset.rendered = "empty";
      return;
    }
    chart.hidden = false;
    empty.hidden = true;
    var x = runs.map(function (r) { return short(r.snapshot); });
    var ordered = orderedMetrics();
    traceIndex = new Map(ordered.map(function (m, i) { return [m, i]; }));
    var traces = ordered.map(function (m, i) {
      var color = metricColor(m);
      return {
        type: "scatter", mode: "lines+markers", name: m, x: x, legendrank: i + 1,
        y: runs.map(function (r) { return m in r.metrics ? r.metrics[m] : null; }),
        visible: visibleMetrics.has(m),
        line: {color: color, width: gated.indexOf(m) >= 0 ? 3 : 2}, marker: {color: color, size: 6},
        hovertemplate: "%{y:.4f}<extra>" + esc(m) + "</extra>"
      };
    });
    var primary = gated.filter(function (m) { return shownByDefault.has(m); })[0] || "recall@10";
    var marks = [
      {label: "held by the gate", test: isHeld, symbol: "x-thin-open", color: "#c62828"},
      {label: "promoted by override", test: function (s) { return !!(s.gate && s.gate.override_at); },
       symbol: "diamond-open", color: "#ef6c00"}
    ];
    marks.forEach(function (k, i) {
      var picked = runs.filter(function (r) { return k.test(byHash.get(r.snapshot)); });
      if (!picked.length) return;
      traces.push({
        type: "scatter", mode: "markers", name: k.label, legendrank: 1000 + i,
        x: picked.map(function (r) { return short(r.snapshot); }),
        y: picked.map(function (r) { return r.metrics[primary]; }),
        marker: {symbol: k.symbol, size: 16, color: k.color, line: {width: 3, color: k.color}},
        customdata: picked.map(function (r) {
          var g = byHash.get(r.snapshot).gate;
          return esc(g.reasons.join("; "));
        }),
        hovertemplate: esc(k.label) + ": %{customdata}<extra></extra>"
      });
    });
    var shapes = [], annotations = [];
    var liveX = O.live && runBySnap.has(O.live) ? short(O.live) : null;
    if (liveX) {
      shapes.push({type: "line", xref: "x", yref: "paper", x0: liveX, x1: liveX, y0: 0, y1: 1,
                   line: {color: "#2e7d32", width: 2, dash: "dash"}});
      annotations.push({x: liveX, xref: "x", y: 1, yref: "paper", yanchor: "bottom", text: "<b>live</b>",
                        showarrow: false, font: {color: "#2e7d32"}});
    }
    Object.keys(floors).forEach(function (m) {
      shapes.push({type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: floors[m], y1: floors[m],
                   line: {color: "#9e9e9e", width: 1, dash: "dot"}});
      annotations.push({x: 0, xref: "paper", xanchor: "left", y: floors[m], yref: "y", yanchor: "bottom",
                        text: esc(m) + " floor " + score(floors[m], 2), showarrow: false,
                        bgcolor: "rgba(255,255,255,0.85)", font: {size: 11, color: "#757575"}});
    });
    var layout = {
      height: 440, margin: {l: 56, r: 16, t: 28, b: 40},
      font: {family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#263238"},
      paper_bgcolor: "#fff", plot_bgcolor: "#fff", hovermode: "x unified",
      xaxis: {type: "category", title: {text: "snapshot, in build order"}, automargin: true, showgrid: false,
              tickangle: runs.length > 8 ? -40 : 0, tickfont: {family: "ui-monospace, SFMono-Regular, Menlo, monospace"}},
      yaxis: {range: [0, 1.04], title: {text: "score"}, gridcolor: "#eceff1", zeroline: false, tickformat: ".1f"},
      legend: {orientation: "v", x: 1.01, y: 1, itemclick: "toggle", itemdoubleclick: "toggleothers"},
      shapes: shapes, annotations: annotations
    };
    var config = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"],
                  toImageButtonOptions: {filename: "snapdex-recall-" + tenant + "-" + current.name}};
    chart.dataset.rendered = "";
    Plotly.react(chart, traces, layout, config).then(function () {
      chart.dataset.rendered = "1";
      if (!chart.dataset.wired) {
        chart.dataset.wired = "1";
        chart.on("plotly_restyle", syncMetricPicker); // a legend click hides a metric too
      }
      if (window.__chartDrawnAt === undefined) window.__chartDrawnAt = performance.now();
    });
  }

  // --- snapshot table ----------------------------------------------------------------------------------------

  function verdictHtml(s) {
    var g = s.gate;
    if (!g) return '<span class="verdict none">not judged</span>';
    var reasons = g.reasons.length ? '<ul class="reasons">' + g.reasons.map(function (r) {
      return "<li>" + esc(r) + "</li>";
    }).join("") + "</ul>" : "";
    if (g.override_at) {
      return '<span class="verdict override" title="promoted by hand at ' + esc(fmtTime(g.override_at)) +
        ' although the gate held it">override</span>' + reasons;
    }
    if (g.passed) return '<span class="verdict pass">pass</span>' + reasons;
    return '<span class="verdict held">held</span>' + reasons;
  }

  function renderTable() {
    var m1 = "recall@10", m2 = "ndcg@10";
    var setLabel = current ? esc(current.name) + " v" + current.version : "";
    $("col-m1").innerHTML = m1 + (setLabel ? '<span class="sub">' + setLabel + "</span>" : "");
    $("col-m2").innerHTML = m2 + (setLabel ? '<span class="sub">' + setLabel + "</span>" : "");
    var rows = snaps.slice().reverse().map(function (s) {
      var run = runBySnap.get(s.hash);
      var marks = (s.hash === O.live ? ' <span class="badge live" data-testid="live-badge">live</span>' : "") +
        (s.hash === O.previous ? ' <span class="badge prev">previous</span>' : "");
      var actions = "";
      if (s.status === "candidate" && !asUser) {
        actions += '<button type="button" class="small" data-action="promote" data-testid="promote-button">Promote</button>';
      }
      if (run && O.live && s.hash !== O.live && runBySnap.has(O.live)) {
        actions += '<button type="button" class="small ghost" data-action="compare" title="compare with the live snapshot">Compare</button>';
      }
      var note = s.reason && (s.status === "failed" || s.status === "deleted")
        ? '<div class="reason">' + esc(s.reason) + "</div>" : "";
      var t = builtAt(s);
      return '<tr data-testid="snapshot-row" data-hash="' + esc(s.hash) + '" data-status="' + esc(s.status) + '"' +
        ' class="' + (s.hash === O.live ? "is-live" : isHeld(s) ? "is-held" : "") + '">' +
        "<td>" + hashHtml(s.hash) + marks + "</td>" +
        '<td class="when" title="' + esc(new Date(t * 1000).toISOString()) + '">' + esc(fmtTime(t)) + '<div class="muted small">' +
        esc(ago(t)) + "</div></td>" +
        '<td class="num">' + num(s.documents) + '</td><td class="num">' + num(s.chunks) + "</td>" +
        '<td class="num" title="' + esc(num(s.reused)) + ' reused from the embedding cache">' + num(s.embedded) + "</td>" +
        '<td><span class="status status-' + esc(s.status) + '">' + esc(s.status) + "</span>" + note + "</td>" +
        "<td>" + verdictHtml(s) + "</td>" +
        '<td class="num metric">' + (run ? score(run.metrics[m1]) : "—") + "</td>" +
        '<td class="num metric">' + (run ? score(run.metrics[m2]) : "—") + "</td>" +
        '<td class="actions">' + actions + "</td></tr>";
    });
    $("snapshot-rows").innerHTML = rows.join("");
    var held = snaps.filter(isHeld).length;
    $("table-info").textContent = snaps.length + " snapshot" + (snaps.length === 1 ? "" : "s") + ", newest first" +
      (held ? " · " + held + " held by the gate" : "");
  }

  function promote(hash, button) {
    var s = byHash.get(hash);
    if (isHeld(s) && !window.confirm("The gate held snapshot " + short(hash) + ":\n\n" + s.gate.reasons.join("\n") +
        "\n\nPromote it anyway? This is recorded as an override.")) {
      return;
    }
    button.disabled = true;
    button.textContent = "Promoting…";
    getJSON("/snapshots/" + encodeURIComponent(hash) + "/promote", {method: "POST", headers: {"X-Tenant": tenant}})
      .then(function () { location.reload(); })
      .catch(function (e) {
        banner("Promote of " + short(hash) + " failed: " + e.message);
        button.disabled = false;
        button.textContent = "Promote";
      });
  }

  // --- drill-down ------------------------------------------------------------------------------------------

  function fillCompareSelects() {
    var withRuns = snaps.filter(function (s) { return runBySnap.has(s.hash); }).reverse(); // newest first
    var base = O.live && runBySnap.has(O.live) ? O.live : withRuns.length ? withRuns[0].hash : null;
    var cand = withRuns.filter(function (s) { return s.hash !== base; })[0];
    var options = function (chosen) {
      return withRuns.map(function (s) {
        return '<option value="' + esc(s.hash) + '"' + (s.hash === chosen ? " selected" : "") + ">" +
          esc(snapLabel(s)) + (s.hash === O.live ? " (live)" : "") + "</option>";
      }).join("");
    };
    $("base").innerHTML = options(base);
    $("candidate").innerHTML = options(cand ? cand.hash : base);
    var metric = $("metric").value || (O.metrics.indexOf("recall@10") >= 0 ? "recall@10" : O.metrics[0]);
    $("metric").innerHTML = O.metrics.map(function (m) {
      return '<option value="' + esc(m) + '"' + (m === metric ? " selected" : "") + ">" + esc(m) + "</option>";
    }).join("");
    var dd = $("drilldown");
    $("compare").disabled = withRuns.length < 1;
    dd.dataset.state = "idle";
    dd.innerHTML = withRuns.length < 2
      ? '<p class="muted">Needs two snapshots with a run of ' + esc(current.name) + " v" + current.version + ".</p>"
      : '<p class="muted">Pick two snapshots and a metric, then Compare: the queries whose score changed, with the ' +
        "documents they missed and what came first instead.</p>";
  }

  function docList(ids, cls) {
    if (!ids || !ids.length) return '<span class="muted">—</span>';
    var max = 6;
    var shown = ids.slice(0, max).map(function (d) { return '<code class="doc ' + cls + '">' + esc(d) + "</code>"; });
    if (ids.length > max) {
      shown.push('<span class="more" title="' + esc(ids.slice(max).join(", ")) + '">+' + (ids.length - max) + " more</span>");
    }
    return shown.join(" ");
  }

  function rankMoves(before, after) {
    var ids = Object.keys(before || {});
    if (!ids.length) return '<span class="muted">—</span>';
    var max = 6;
    var rank = function (r) { return r === null || r === undefined ? "–" : String(r); };
    var shown = ids.slice(0, max).map(function (d) {
      return '<span class="nowrap"><code class="doc">' + esc(d) + "</code> " + rank(before[d]) + " → " +
        rank(after ? after[d] : null) + "</span>";
    });
    if (ids.length > max) shown.push('<span class="more">+' + (ids.length - max) + " more</span>");
    return shown.join("<br>");
  }

  function changeTable(kind, rows, metric) {
    var head = "<thead><tr><th>Query id</th><th>Query</th><th class=\"num\">" + esc(metric) + " before → after</th>" +
      '<th title="rank of each relevant document in the base run and in the candidate run">Relevant ranks</th>' +
      '<th title="relevant documents outside the candidate\'s top k">Missed</th>' +
      '<th title="non-relevant documents ranked above a relevant one that fell">Retrieved instead</th>' +
      '<th title="relevant documents in the top k after, not before">Entered top k</th></tr></thead>';
    var body = rows.length ? rows.map(function (e) {
      return "<tr><td><code>" + esc(e.query_id) + '</code></td><td class="qtext">' + esc(e.text) + "</td>" +
        '<td class="num nowrap">' + score(e.before) + " → " + score(e.after) + ' <span class="delta ' +
        (e.delta > 0 ? "up" : "down") + '">' + signed(e.delta) + "</span></td>" +
        "<td>" + rankMoves(e.ranks_before, e.ranks_after) + "</td>" +
        "<td>" + docList(e.missed, "missed") + "</td><td>" + docList(e.retrieved_instead, "instead") + "</td>" +
        "<td>" + docList(e.entered, "entered") + "</td></tr>";
    }).join("") : '<tr><td colspan="7" class="muted">No query ' + (kind === "lost" ? "lost" : "gained") + " on " +
      esc(metric) + ".</td></tr>";
    return '<table class="changes ' + kind + '" data-testid="drilldown-' + kind + '">' + head + "<tbody>" + body +
      "</tbody></table>";
  }

  function renderDrill(c) {
    var m = c.metric;
    var before = c.base.metrics[m], after = c.candidate.metrics[m];
    var delta = after - before;
    var summary =
      '<div class="summary" data-testid="drilldown-summary">' +
      '<div class="stat"><span class="label">base ' + hashHtml(c.base.snapshot) + '</span><span class="value">' +
      score(before) + "</span></div>" +
      '<div class="stat"><span class="label">candidate ' + hashHtml(c.candidate.snapshot) + '</span><span class="value">' +
      score(after) + ' <span class="delta ' + (delta > 0 ? "up" : delta < 0 ? "down" : "") + '">' + signed(delta) +
      "</span></span></div>" +
      '<div class="stat"><span class="label">gained</span><span class="value up">' + num(c.gained.length) + "</span></div>" +
      '<div class="stat"><span class="label">lost</span><span class="value down">' + num(c.lost.length) + "</span></div>" +
      '<div class="stat"><span class="label">unchanged</span><span class="value">' + num(c.unchanged) + "</span></div>" +
      "</div>" +
      '<p class="muted small">' + esc(m) + " on " + esc(c.query_set) + " v" + c.version + "; runs " +
      esc(c.base.id.slice(0, 8)) + " and " + esc(c.candidate.id.slice(0, 8)) +
      (c.comparable ? "" : ' · <b>the two runs used different retrieval recipes</b>') +
      (c.hidden ? ' · <span data-testid="drilldown-hidden">' + num(c.hidden) +
        " changed queries not shown: they name documents you may not read</span>" : "") +
      "</p>";
    var html = summary +
      '<h3 class="lost">Lost <span class="count">' + num(c.lost.length) + "</span></h3>" +
      '<div class="scroll tall">' + changeTable("lost", c.lost, m) + "</div>" +
      '<h3 class="gained">Gained <span class="count">' + num(c.gained.length) + "</span></h3>" +
      '<div class="scroll tall">' + changeTable("gained", c.gained, m) + "</div>";
    $("drilldown").innerHTML = html; // one parse, one layout, however many rows
  }

  function compare() {
    var dd = $("drilldown");
    var token = ++compareToken;
    var params = new URLSearchParams({base: $("base").value, candidate: $("candidate").value, query_set: current.name,
                                      version: String(current.version), metric: $("metric").value});
    dd.dataset.state = "loading";
    dd.innerHTML = '<p class="muted">Comparing…</p>';
    $("compare").disabled = true;
    getJSON("/eval/compare?" + params.toString(), {headers: {"X-Tenant": tenant}})
      .then(function (body) {
        if (token !== compareToken) return;
        renderDrill(body);
        dd.dataset.state = "done";
      })
      .catch(function (e) {
        if (token !== compareToken) return;
        dd.innerHTML = '<p class="error" data-testid="drilldown-error">Compare failed: ' + esc(e.message) + "</p>";
        dd.dataset.state = "error";
      })
      .then(function () {
        if (token !== compareToken) return;
        $("compare").disabled = false;
        dd.dataset.seq = String(Number(dd.dataset.seq) + 1);
      });
  }

  // --- retrieval profiles -------------------------------------------------------------------------------------
  // The tenant's tuned stage parameters: fetched from /profiles with the page's own credentials.

  function changedParams(params, defaults) {
    var keys = Object.keys(params).filter(function (k) { return JSON.stringify(params[k]) !== JSON.stringify(defaults[k]); });
    if (!keys.length) return '<span class="muted">none: the default\'s own values</span>';
    return keys.sort().map(function (k) {
      return '<code class="param">' + esc(k) + "=" + esc(params[k] === null ? "none" : params[k]) + "</code>";
    }).join(" ");
  }

  function profileRow(p, defaults) {
    var s = p.scores || {}, t = s.test || {};
    var gain = t.mean_gain === undefined ? "—" : '<span class="delta ' + (t.ci_low > 0 ? "up" : "flat") + '">' +
      signed(t.mean_gain) + "</span>" + '<div class="muted small">[' + signed(t.ci_low) + ", " + signed(t.ci_high) +
      "]</div>";
    return '<tr data-testid="profile-row" data-version="' + esc(p.version) + '" data-status="' + esc(p.status) + '">' +
      '<td data-col="version">v' + esc(p.version) + "</td>" +
      '<td data-col="status"><span class="badge ' + esc(p.status) + '">' + esc(p.status) + "</span></td>" +
      '<td class="when" data-col="created">' + esc(fmtTime(p.created_at)) + "</td>" +
      '<td class="num" data-col="tuned">' + score(s.tuned_cv) + '<div class="muted small">' + esc(s.metric || "") +
      ", " + esc(s.queries || 0) + " queries</div></td>" +
      '<td class="num" data-col="live">' + score(s.live) + '<div class="muted small">v' + esc(s.live_version) + "</div></td>" +
      '<td class="num" data-col="default">' + score(s.default) + "</td>" +
      '<td class="num" data-col="gain">' + gain + "</td>" +
      '<td data-col="params">' + changedParams(p.params, defaults) + '<div class="muted small reason">' +
      esc(p.reason || "") + "</div></td></tr>";
  }

  function loadProfiles() {
    loadCard("profile", "/profiles", "Profiles", function (body) {
      $("profile-rollback").hidden = body.previous === null;
      $("profile-info").textContent = "live: " + (body.live === 0 ? "the global default (v0)" : "v" + body.live) +
        (body.previous === null ? "" : " · a rollback returns to v" + body.previous);
      if (!body.profiles.length) return false;
      $("profile-rows").innerHTML = body.profiles.map(function (p) { return profileRow(p, body.default); }).join("");
      $("profile-table").hidden = false;
      return true;
    });
  }

  function rollbackProfile(button) {
    button.disabled = true;
    getJSON("/profiles/rollback", {method: "POST", headers: {"X-Tenant": tenant}})
      .then(function (body) {
        banner("Profile rolled back: v" + body.live + " is live again.", "ok");
        loadProfiles();
      })
      .catch(function (e) { banner("Rollback failed: " + e.message); })
      .then(function () { button.disabled = false; });
  }

  // --- benchmarks against the peer ---------------------------------------------------------------------------
  // Service-wide, so not in the tenant's overview: fetched from /benchmarks with the page's own credentials.

  function utcTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC";
  }
  function fixed(v, digits) {
    return v === null || v === undefined ? "—" : Number(v).toLocaleString("en-US", {
      minimumFractionDigits: digits, maximumFractionDigits: digits});
  }

  function versusPeer(pair) {
    var delta = pair.snapdex !== null && pair.peer !== null ? pair.snapdex - pair.peer : null;
    return '<span class="metric">' + score(pair.snapdex) + '</span> <span class="muted">vs <span class="metric">' +
      score(pair.peer) + "</span></span>" + (delta === null ? "" : '<div class="delta ' + (delta >= 0 ? "up" : "down") + '">' + signed(delta) +
      "</div>");
  }

  function benchRow(b) {
    var t = b.targets;
    var missed = t.missed.length ? '<ul class="reasons missed-targets">' + t.missed.map(function (m) {
      return "<li>" + esc(m) + "</li>";
    }).join("") + "</ul>" : "";
    var ratio = b.first_stage_p95_ratio === null ? "" : '<div class="muted small">' + fixed(b.first_stage_p95_ratio, 2) +
      "x of " + fixed(b.peer_p95_ms, 1) + "</div>";
    return '<tr data-testid="benchmark-row" data-id="' + esc(b.id) + '">' +
      '<td class="when" data-col="date" title="' + esc(b.date) + '">' + esc(utcTime(b.date)) +
      '<div class="muted small">' + esc(b.machine || "") + "</div></td>" +
      '<td data-col="commit"><code class="hash" title="' + esc(b.commit) + '">' + esc(b.commit.slice(0, 7)) + "</code>" +
      (b.dirty ? ' <span class="badge dirty" title="uncommitted changes were measured too">dirty</span>' : "") + "</td>" +
      '<td class="num" data-col="ndcg">' + versusPeer(b.ndcg_at_10) + "</td>" +
      '<td class="num" data-col="recall100">' + versusPeer(b.recall_at_100) + "</td>" +
      '<td class="num" data-col="p95">' + fixed(b.first_stage_p95_ms, 1) + ratio + "</td>" +
      '<td class="num" data-col="p95-100k">' + fixed(b.p95_100k_ms, 1) + "</td>" +
      '<td class="num nowrap" data-col="build">' + fixed(b.build_s.snapdex, 1) + ' <span class="muted">/ ' +
      fixed(b.build_s.peer, 1) + "</span></td>" +
      '<td class="num" data-col="wall">' + fixed(b.wall_s === null ? null : b.wall_s / 60, 1) + "</td>" +
      '<td data-col="targets"><span class="targets ' + (t.met === t.total ? "all" : "some") + '">' + t.met + "/" +
      t.total + "</span>" + missed + "</td></tr>";
  }

  function loadBenchmarks() {
    loadCard("bench", "/benchmarks", "Benchmark runs", function (body) {
      var runs = body.benchmarks;
      if (!runs.length) return false;
      $("bench-rows").innerHTML = runs.map(benchRow).join("");
      $("bench-table").hidden = false;
      $("bench-info").textContent = runs.length + " run" + (runs.length === 1 ? "" : "s") + ", newest first · " +
        "the service as a whole, not one tenant";
      return true;
    });
  }

  // --- online: rollouts, each arm's figures with intervals, and the decisions (GET /rollouts) ---------------------

  function interval(low, high) {
    return low === null || high === null ? "" : ' <span class="muted small">[' + signed(low) + ", " + signed(high) +
      "]</span>";
  }

  function armCell(arm, a) {
    var count = a.wins !== undefined ? a.wins + " won of " + a.answers : a.successes + " of " + a.answers;
    return '<td data-col="' + arm + '" class="num nowrap">' + (a.rate === null ? "—" : fixed(a.rate, 3)) +
      (a.rate === null ? "" : ' <span class="muted small">[' + fixed(a.low, 3) + ", " + fixed(a.high, 3) + "]</span>") +
      '<div class="muted small">' + esc(count) + " · " + esc(a.metric) + "</div></td>";
  }

  function decisionItem(d) {
    var where = d.share === null || d.share === undefined ? "step " + (d.step + 1) : "step " + (d.step + 1) + " · " +
      fixed(d.share * 100, 0) + " %";
    return '<li data-testid="rollout-decision" data-action="' + esc(d.action) + '"><span class="badge decision ' +
      esc(d.action) + '">' + esc(d.action) + '</span> <span class="muted small">' + esc(fmtTime(d.at)) + " · " +
      esc(where) + (d.events === null || d.events === undefined ? "" : " · " + num(d.events) + " events") +
      '</span><div class="small">' + esc(d.reason) + "</div></li>";
  }

  function rolloutRow(r) {
    var diff = r.arms.difference;
    return '<tr data-testid="rollout-row" data-id="' + esc(r.id) + '" data-state="' + esc(r.state) + '">' +
      '<td data-col="rollout"><b>' + esc(r.mode) + '</b> <code class="hash" title="' + esc(r.candidate) + '">' +
      esc(r.candidate.slice(0, 12)) + '</code><div class="muted small">' + esc(r.id) + " · vs live " +
      esc(r.live.slice(0, 12)) + "</div></td>" +
      '<td data-col="state"><span class="badge rollout ' + esc(r.state) + '">' + esc(r.state) + "</span>" +
      '<div class="muted small">step ' + (r.step + 1) + " of " + r.steps.length + " · " + fixed(r.share * 100, 0) +
      " % · " + num(r.feedback) + " events</div></td>" +
      armCell("live", r.arms.live) + armCell("candidate", r.arms.candidate) +
      '<td data-col="difference" class="num nowrap">' + (diff.estimate === null ? "—" : signed(diff.estimate)) +
      interval(diff.low, diff.high) + '<div class="muted small">at ' + fixed(diff.confidence, 3) + " · now: " +
      esc(diff.now) + "</div></td>" +
      '<td data-col="decisions"><ul class="decisions">' + r.decisions.map(decisionItem).join("") + "</ul></td></tr>";
  }

  function loadRollouts() {
    loadCard("rollout", "/rollouts", "Rollouts", function (body) {
      if (!body.rollouts.length) return false;
      $("rollout-rows").innerHTML = body.rollouts.map(rolloutRow).join("");
      $("rollout-table").hidden = false;
      return true;
    });
  }

  // --- webhooks: each one and its last deliveries (GET /webhooks, then its delivery log) ------------------------

  function deliveryItem(d) {
    var answer = d.status_code === null ? (d.attempts ? "no answer" : "not tried yet") : "HTTP " + d.status_code;
    var next = d.status === "pending" && d.next_attempt_at ? " · next try " + fmtTime(d.next_attempt_at) : "";
    return '<li data-testid="webhook-delivery" data-status="' + esc(d.status) + '" data-id="' + esc(d.id) + '">' +
      '<span class="badge delivery ' + esc(d.status) + '">' + esc(d.status) + "</span> " +
      '<code>' + esc(d.event_type) + "</code> " +
      '<span class="muted small">' + esc(answer) + (d.latency_ms === null ? "" : " · " + fixed(d.latency_ms, 0) + " ms") +
      " · " + esc(d.attempts) + " attempt" + (d.attempts === 1 ? "" : "s") + " · " + esc(fmtTime(d.created_at)) +
      esc(next) + "</span>" + (d.error ? '<div class="muted small error-line">' + esc(d.error) + "</div>" : "") +
      "</li>";
  }

  function loadDeliveries(row) {
    var cell = row.querySelector('[data-col="deliveries"]');
    getJSON("/webhooks/" + encodeURIComponent(row.dataset.id) + "/deliveries?limit=5", {headers: {"X-Tenant": tenant}})
      .then(function (body) {
        cell.innerHTML = body.deliveries.length ? '<ul class="deliveries">' + body.deliveries.map(deliveryItem)
          .join("") + "</ul>" : '<span class="muted">none yet</span>';
        row.dataset.state = "loaded";
      })
      .catch(function (e) {
        cell.innerHTML = '<span class="error">' + esc(e.message) + "</span>";
        row.dataset.state = "error";
      });
  }

  function loadWebhooks() {
    loadCard("webhook", "/webhooks", "Webhooks", function (body) {
      if (!body.webhooks.length) return false;
      $("webhook-rows").innerHTML = body.webhooks.map(function (h) {
        return '<tr data-testid="webhook-row" data-id="' + esc(h.id) + '" data-state="loading">' +
          '<td data-col="url"><code>' + esc(h.url) + '</code><div class="muted small">' + esc(h.id) +
          (h.description ? " · " + esc(h.description) : "") + "</div></td>" +
          '<td data-col="events" class="small">' + h.events.map(esc).join("<br>") + "</td>" +
          '<td data-col="deliveries"><span class="muted">loading…</span></td></tr>';
      }).join("");
      $("webhook-table").hidden = false;
      document.querySelectorAll('[data-testid="webhook-row"]').forEach(loadDeliveries);
      return true;
    });
  }

  // --- sources: each one with its last sync (GET /sources) ------------------------------------------------------

  var COUNTS = ["listed", "new", "changed", "unchanged", "deleted", "failed"];

  function sourceRow(s) {
    var last = s.last_sync;
    var counts = s.counts ? COUNTS.map(function (k) {
      return '<span class="count" data-count="' + k + '">' + k + " " + num(s.counts[k]) + "</span>";
    }).join(" · ") : '<span class="muted">never synced</span>';
    return '<tr data-testid="source-row" data-id="' + esc(s.id) + '" data-state="' + esc(s.state) + '">' +
      '<td data-col="name"><b>' + esc(s.name) + '</b> <span class="muted small">' + esc(s.kind) + "</span>" +
      '<div class="muted small">' + esc(s.id) + "</div></td>" +
      '<td data-col="state"><span class="badge source ' + esc(s.state) + '">' + esc(s.state) + "</span></td>" +
      '<td data-col="last" class="nowrap">' + (last ? esc(fmtTime(last.finished_at)) + ' <span class="muted small">' +
        fixed(last.seconds, 1) + " s · " + esc(last.trigger) + "</span>" : "—") + "</td>" +
      '<td data-col="counts" class="small">' + counts +
      (s.last_error ? '<div class="error-line small">' + esc(s.last_error) + "</div>" : "") + "</td>" +
      '<td data-col="documents" class="num">' + num(s.documents) + "</td>" +
      '<td data-col="next" class="nowrap">' + (s.next_sync_at ? esc(fmtTime(s.next_sync_at)) : '<span class="muted">' +
        "on request</span>") + "</td></tr>";
  }

  function loadSources() {
    loadCard("source", "/sources", "Sources", function (body) {
      if (!body.sources.length) return false;
      $("source-rows").innerHTML = body.sources.map(sourceRow).join("");
      $("source-table").hidden = false;
      return true;
    });
  }

  // --- wiring --------------------------------------------------------------------------------------------------

  function main() {
    renderHeader();
    if (!snaps.length) $("no-snapshots").hidden = false;
    if (!O.query_sets.length) $("no-query-sets").hidden = false;
    if (snaps.length) {
      $("table-card").hidden = false;
      if (O.query_sets.length) {
        $("chart-card").hidden = false;
        $("drill-card").hidden = false;
        renderMetricPicker();
        select(initialSet());
      } else {
        renderTable();
      }
    }
    $("set-name").addEventListener("change", function (e) { select(defaultVersion(e.target.value)); });
    $("set-version").addEventListener("change", function (e) {
      var v = Number(e.target.value);
      select(versionsOf(current.name).filter(function (q) { return q.version === v; })[0]);
    });
    $("metric-picker").addEventListener("change", function (e) {
      if (e.target.matches("input[type=checkbox]")) toggleMetric(e.target.value, e.target.checked);
    });
    window.__tableDrawnAt = performance.now(); // for the bench: the page is usable before the chart is drawn
    loadBenchmarks();
    if (asUser) {
      // A user key: the recall figures and its own drill-down rows; the admin's cards stay out of the page.
      $("profile-card").hidden = true;
      $("webhook-card").hidden = true;
      $("source-card").hidden = true;
      $("rollout-card").hidden = true;
      $("viewer-note").hidden = false;
    } else {
      loadProfiles();
      loadRollouts();
      loadWebhooks();
      loadSources();
    }
    $("profile-rollback").addEventListener("click", function (e) { rollbackProfile(e.currentTarget); });
    $("compare-form").addEventListener("submit", function (e) { e.preventDefault(); compare(); });
    $("snapshot-rows").addEventListener("click", function (e) {
      var button = e.target.closest("button[data-action]");
      if (!button) return;
      var hash = button.closest("tr").dataset.hash;
      if (button.dataset.action === "promote") {
        promote(hash, button);
      } else if (button.dataset.action === "compare") {
        $("base").value = O.live;
        $("candidate").value = hash;
        $("drill-card").scrollIntoView({behavior: "smooth", block: "start"});
        compare();
      }
    });
  }

  window.__plotlyLoaded = function () {
    window.__plotlyAt = performance.now();
    if (current) drawChart();
  };
  window.__plotlyFailed = function () { banner("plotly.min.js did not load: the chart cannot be drawn."); };

  main();
})();
