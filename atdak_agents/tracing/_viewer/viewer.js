(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var t0 = data.start;
  var total = Math.max(data.end - data.start, 1e-6);
  var spans = data.spans;
  var byId = new Map();
  var children = new Map();
  var collapsed = new Set();
  var COLLAPSE_OVER = 12; // a map with more items than this starts folded

  spans.forEach(function (s) { byId.set(s.id, s); children.set(s.id, []); });
  var roots = [];
  spans.forEach(function (s) {
    if (s.parent !== null && byId.has(s.parent)) children.get(s.parent).push(s);
    else roots.push(s);
  });
  children.forEach(function (list) { list.sort(function (a, b) { return a.start - b.start; }); });
  spans.forEach(function (s) {
    if (s.kind === "node" && s.detail.items > COLLAPSE_OVER) collapsed.add(s.id);
  });

  // ------------------------------------------------------------------ formatting

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function num(n) { return Number(n || 0).toLocaleString("en-US"); }
  function seconds(s) {
    if (s === null || s === undefined) return "";
    if (s < 0.01) return (s * 1000).toFixed(1) + " ms";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(2) + " s";
    var m = Math.floor(s / 60);
    return m + "m " + String(Math.round(s - m * 60)).padStart(2, "0") + "s";
  }
  function cost(c) { return c === null || c === undefined ? "" : "$" + c.toFixed(4); }
  function tokens(s) {
    if (!s.calls) return "";
    return (s.estimated ? "~" : "") + num(s.tokens_in) + " in / " + num(s.tokens_out) + " out";
  }
  function pretty(value) {
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 2);
  }
  function duration(s) { return (s.end === null ? data.end : s.end) - s.start; }

  // ------------------------------------------------------------------ header and totals

  function header() {
    var run = data.runs.length ? byId.get(data.runs[0].span) : null;
    var title = document.getElementById("title");
    var status = document.getElementById("status");
    if (run) {
      title.textContent = run.name + (data.runs.length > 1 ? " (" + data.runs.length + " runs)" : "");
      status.appendChild(el("span", "badge " + run.status, run.status === "ok" ? "done" : run.status));
      status.appendChild(document.createTextNode(" "));
      status.appendChild(el("span", "runid", "run " + run.detail.run_id));
    }
    var t = data.totals;
    var cards = [
      ["duration", seconds(t.duration)],
      ["steps", num(t.steps)],
      ["nodes", num(t.nodes)],
      ["model calls", num(t.model_calls)],
      ["input tokens", (t.estimated ? "~" : "") + num(t.input_tokens)],
      ["output tokens", (t.estimated ? "~" : "") + num(t.output_tokens)],
      ["tool calls", num(t.tool_calls)],
      ["cost", t.cost !== null ? cost(t.cost) : (t.model_calls ? "unknown" : "—")],
      ["errors", num(t.errors)]
    ];
    var box = document.getElementById("totals");
    cards.forEach(function (card) {
      var div = el("div", "card");
      div.dataset.total = card[0];
      div.appendChild(el("div", "value", card[1]));
      div.appendChild(el("div", "label", card[0]));
      box.appendChild(div);
    });
  }

  // ------------------------------------------------------------------ timeline

  function axis() {
    var box = document.getElementById("axis");
    box.appendChild(el("div", "label", "time"));
    var ticks = el("div", "ticks");
    var step = Math.pow(10, Math.floor(Math.log10(total / 6)));
    [1, 2, 5, 10].some(function (m) { if (total / (step * m) <= 7) { step *= m; return true; } return false; });
    for (var t = 0; t <= total + 1e-9; t += step) {
      var tick = el("div", "tick", seconds(t));
      tick.style.left = (t / total * 100) + "%";
      ticks.appendChild(tick);
    }
    box.appendChild(ticks);
  }

  function meta(s) {
    var parts = [seconds(duration(s))];
    if (s.kind === "node" || s.kind === "run") {
      if (s.calls) parts.push(tokens(s));
      if (s.cost !== null) parts.push(cost(s.cost));
      if (s.detail.items !== undefined) parts.push(s.detail.items + " items");
    }
    if (s.kind === "model" && s.detail.budget) {
      parts.push(num(s.detail.estimated_tokens) + " tok (" +
        (100 * s.detail.estimated_tokens / s.detail.budget).toFixed(1) + "% of budget)");
    }
    return parts.join(" · ");
  }

  function row(s, depth) {
    var div = el("div", "row");
    div.dataset.id = s.id;
    div.dataset.kind = s.kind;
    div.setAttribute("role", "treeitem");
    var label = el("div", "label");
    label.style.paddingLeft = (8 + depth * 16) + "px";
    var kids = children.get(s.id).length;
    var caret = el("span", "caret", kids ? (collapsed.has(s.id) ? "▸" : "▾") : "");
    if (kids) {
      caret.title = kids + " inside";
      caret.addEventListener("click", function (e) {
        e.stopPropagation();
        if (collapsed.has(s.id)) collapsed.delete(s.id); else collapsed.add(s.id);
        draw();
      });
    }
    label.appendChild(caret);
    label.appendChild(el("span", "kind " + s.kind, s.kind === "node" ? s.detail.kind : s.kind));
    var name = s.kind === "node" ? s.name.split("/").pop() : s.name;
    label.appendChild(el("span", "name", name));
    label.appendChild(el("span", "meta", meta(s)));
    label.title = s.name;
    div.appendChild(label);
    var track = el("div", "track");
    var bar = el("div", "bar " + s.kind + " " + s.status);
    bar.style.left = ((s.start - t0) / total * 100) + "%";
    bar.style.width = Math.max(duration(s) / total * 100, 0.15) + "%";
    bar.title = s.name + " · " + seconds(duration(s));
    track.appendChild(bar);
    div.appendChild(track);
    div.addEventListener("click", function () { toggle(div, s); });
    return div;
  }

  function draw() {
    var box = document.getElementById("timeline");
    box.textContent = "";
    function walk(s, depth) {
      box.appendChild(row(s, depth));
      if (collapsed.has(s.id)) return;
      children.get(s.id).forEach(function (c) { walk(c, depth + 1); });
    }
    roots.forEach(function (s) { walk(s, 0); });
  }

  // ------------------------------------------------------------------ details

  function toggle(div, s) {
    var next = div.nextSibling;
    if (next && next.classList && next.classList.contains("details")) {
      next.remove();
      div.classList.remove("selected");
      return;
    }
    div.classList.add("selected");
    div.parentNode.insertBefore(details(s), div.nextSibling);
  }

  function facts(box, pairs) {
    var dl = el("dl");
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      dl.appendChild(el("dt", null, p[0]));
      dl.appendChild(el("dd", null, p[1]));
    });
    box.appendChild(dl);
  }

  function block(box, title, value, open) {
    if (value === null || value === undefined) {
      return;
    }
    var d = el("details");
    if (open) d.open = true;
    d.appendChild(el("summary", null, title));
    d.appendChild(el("pre", null, pretty(value)));
    box.appendChild(d);
  }

  function details(s) {
    var box = el("div", "details");
    box.addEventListener("click", function (e) { e.stopPropagation(); });
    ({ run: runDetails, node: nodeDetails, model: modelDetails, tool: toolDetails })[s.kind](box, s);
    return box;
  }

  function runDetails(box, s) {
    var d = s.detail;
    facts(box, [["graph", s.name], ["run", d.run_id], ["status", d.outcome || s.status],
      ["resumed", d.resumed ? "yes" : null], ["time", seconds(duration(s))],
      ["tokens", tokens(s)], ["cost", cost(s.cost)], ["error", d.error],
      ["reason", d.reason], ["question", d.question]]);
    block(box, "inputs", d.inputs, true);
    block(box, "output", d.output, true);
    block(box, "usage", d.usage, false);
    (d.states || []).forEach(function (st) {
      block(box, "state after step " + st.step + ": " + st.keys.join(", "), st.values, false);
    });
  }

  function nodeDetails(box, s) {
    var d = s.detail;
    facts(box, [["node", s.name], ["kind", d.kind], ["step", d.step], ["time", seconds(duration(s))],
      ["wrote", (d.updated || []).join(", ")], ["items", d.items],
      ["model calls", s.calls || null], ["tokens", tokens(s)], ["cost", cost(s.cost)],
      ["error", d.error]]);
    block(box, "values written", d.values, false);
  }

  function budget(box, d) {
    if (!d.budget) return;
    box.appendChild(el("h3", null, "context budget"));
    var window_ = d.context_window || d.budget;
    var bar = el("div", "budget");
    var limit = el("div", "limit");
    limit.style.width = (100 * d.budget / window_) + "%";
    var used = el("div", "used");
    used.style.width = Math.min(100, 100 * d.estimated_tokens / window_) + "%";
    bar.appendChild(limit);
    bar.appendChild(used);
    box.appendChild(bar);
    var note = num(d.estimated_tokens) + " tokens sent (estimated) of a " + num(d.budget) +
      "-token prompt budget (" + (100 * d.estimated_tokens / d.budget).toFixed(1) + "%); window " +
      num(window_) + " tokens";
    if (d.prompt_tokens !== undefined) note += "; the answer reported " + num(d.prompt_tokens) +
      (d.usage_estimated ? " (estimated)" : "");
    box.appendChild(el("div", "budget-note", note));
    var fit = d.fit || {};
    if (fit.messages !== undefined) {
      var text = "history: " + fit.messages + " messages, " + fit.sent + " sent";
      if (fit.dropped_or_changed) text += ", " + fit.dropped_or_changed + " dropped or shortened";
      if (fit.summaries) text += ", " + fit.summaries + " summaries";
      box.appendChild(el("div", "budget-note", text));
    }
  }

  function messages(box, list) {
    if (!list) {
      box.appendChild(el("div", "budget-note", "message contents were not recorded"));
      return;
    }
    box.appendChild(el("h3", null, list.length + " messages sent"));
    list.forEach(function (m, i) {
      var d = el("details");
      if (i === list.length - 1) d.open = true;
      var summary = el("summary");
      summary.appendChild(el("span", "role", m.role));
      var text = typeof m.content === "string" ? m.content : pretty(m.content);
      summary.appendChild(document.createTextNode(" · " + num((text || "").length) + " chars"));
      d.appendChild(summary);
      d.appendChild(el("pre", null, text || ""));
      if (m.tool_calls) d.appendChild(el("pre", null, pretty(m.tool_calls)));
      box.appendChild(d);
    });
  }

  function modelDetails(box, s) {
    var d = s.detail;
    facts(box, [["model", s.name], ["node", d.node], ["latency", seconds(d.latency)],
      ["first token", d.first_token === null ? null : seconds(d.first_token)],
      ["finish", d.finish_reason], ["tokens", tokens(s)], ["cost", cost(s.cost)],
      ["response id", d.response_id], ["parameters", Object.keys(d.parameters || {}).length ?
        JSON.stringify(d.parameters) : null],
      ["retries", d.retries.length ? d.retries.map(function (r) {
        return "#" + r.attempt + " after " + seconds(r.wait) + ": " + r.reason; }).join("; ") : null]]);
    budget(box, d);
    messages(box, d.messages);
    var answer = d.content !== undefined && d.content !== null ? d.content : (d.streamed || null);
    if (answer !== null) block(box, "answer · " + num(answer.length) + " chars", answer, true);
    else if (d.response_size) box.appendChild(el("div", "budget-note", "answer: " + num(d.response_size) + " chars (content not recorded)"));
  }

  function toolDetails(box, s) {
    var d = s.detail;
    facts(box, [["tool", s.name], ["call", d.call_id], ["node", d.node],
      ["time", seconds(d.duration)], ["status", d.is_error ? "error" : (s.status === "ok" ? "ok" : s.status)]]);
    if (d.arguments !== null && d.arguments !== undefined) block(box, "arguments", d.arguments, true);
    else box.appendChild(el("div", "budget-note", "arguments: " + num(d.size) + " chars (not recorded)"));
    if (d.result !== null && d.result !== undefined) block(box, d.is_error ? "error" : "result", d.result, true);
    else if (d.result_size) box.appendChild(el("div", "budget-note", "result: " + num(d.result_size) + " chars (not recorded)"));
  }

  // ------------------------------------------------------------------ nodes table

  function table() {
    var body = document.querySelector("#nodes tbody");
    function insideMap(s) {  // a map's items are summed up in the map's own row
      for (var p = byId.get(s.parent); p !== undefined; p = byId.get(p.parent)) {
        if (p.kind === "node" && p.detail.items !== undefined) return true;
      }
      return false;
    }
    spans.filter(function (s) { return s.kind === "node" && !insideMap(s); }).forEach(function (s) {
      var tr = el("tr");
      tr.dataset.node = s.name;
      [[s.name], [s.detail.kind], [seconds(duration(s)), "num"], [s.calls ? num(s.calls) : "", "num"],
        [s.calls ? (s.estimated ? "~" : "") + num(s.tokens_in) : "", "num"],
        [s.calls ? (s.estimated ? "~" : "") + num(s.tokens_out) : "", "num"],
        [cost(s.cost), "num"], [s.detail.error || (s.status === "ok" ? "ok" : s.status), s.status === "error" ? "error" : ""]
      ].forEach(function (cell) { tr.appendChild(el("td", cell[1] || null, cell[0])); });
      body.appendChild(tr);
    });
  }

  // #inspect=<span id or kind>: open that span (the last of that kind), e.g. #inspect=model
  function inspect() {
    var match = /^#inspect=(.+)$/.exec(location.hash);
    if (!match) return;
    var wanted = decodeURIComponent(match[1]);
    var target = byId.get(wanted) || spans.filter(function (s) { return s.kind === wanted; }).pop();
    if (!target) return;
    for (var p = target.parent; p !== null && byId.has(p); p = byId.get(p).parent) collapsed.delete(p);
    draw();
    var rows = document.querySelectorAll("#timeline .row");
    for (var i = 0; i < rows.length; i++) {
      if (rows[i].dataset.id === target.id) {
        toggle(rows[i], target);
        rows[i].scrollIntoView({ block: "nearest" });
      }
    }
  }

  header();
  axis();
  draw();
  table();
  inspect();
  document.body.dataset.ready = "yes";
})();
