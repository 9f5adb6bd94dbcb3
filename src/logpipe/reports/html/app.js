// logpipe's dashboard: draws the totals, charts (uPlot) and tables from the JSON in
// #logpipe-data; live (logpipe serve), fetches it again every few seconds.
// Logged values are attacker-controlled: they only ever go in as textContent or as an
// attribute through setAttribute, never as markup, and become links only when http(s).
(function () {
  "use strict";

  var NUMBER = new Intl.NumberFormat("en-US");
  var live = JSON.parse(document.getElementById("logpipe-live").textContent);
  var state = {
    data: JSON.parse(document.getElementById("logpipe-data").textContent),
    charts: {},
    busy: false
  };

  var TABLES = [
    {key: "pages", title: "Top pages", cols: {
      path: ["Path", "text"], hits: ["Requests", "num"], bytes: ["Bytes", "num"],
      vhost: ["Virtual host", "text"]}},
    {key: "referers", title: "External referers", cols: {
      referer: ["Referer", "url"], hits: ["Requests", "num"]}},
    {key: "channels", title: "Channels: where visits came from", cols: {
      channel: ["Channel", "text"], source: ["Source", "text"], visits: ["Visits", "num"],
      hits: ["Requests", "num"]}},
    {key: "countries", title: "Countries", cols: {
      country: ["Country", "text"], visitors: ["Visitors", "num"], hits: ["Requests", "num"]}},
    {key: "broken_links", title: "Broken links and the pages linking to them", cols: {
      path: ["Missing page", "text"], referer: ["Linked from", "url"],
      hits: ["Requests", "num"], statuses: ["Status", "text"], last_seen: ["Last seen", "time"],
      vhost: ["Virtual host", "text"]}},
    {key: "agents", title: "User agents", cols: {
      user_agent: ["User-Agent", "text"], hits: ["Requests", "num"], is_bot: ["Bot", "bool"],
      last_seen: ["Last seen", "time"]}},
    {key: "offenders", title: "Offenders: most 4xx and 5xx answers", cols: {
      remote_host: ["Remote host", "text"], errors: ["Errors", "num"],
      client_errors: ["4xx", "num"], server_errors: ["5xx", "num"],
      requests: ["Requests", "num"], last_seen: ["Last seen", "time"]}},
    {key: "status_codes", title: "Status codes", cols: {
      status: ["Status", "text"], hits: ["Requests", "num"]}}
  ];

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function humanBytes(n) {
    var units = ["B", "KB", "MB", "GB", "TB", "PB"];
    var i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i += 1;
    }
    return (i === 0 ? String(n) : n.toFixed(n >= 100 ? 0 : 1)) + " " + units[i];
  }

  // Only http(s) URLs become links; javascript:, data: and the rest stay text, and so
  // does a URL shown with escapes (control characters as \x1b, "\" as "\\": the
  // server escaped it), which is not the URL that was logged.
  function webUrl(text) {
    if (typeof text !== "string" || !/^https?:\/\//i.test(text) || text.indexOf("\\") >= 0) {
      return null;
    }
    try {
      var url = new URL(text);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function kindOf(value) {
    return typeof value === "number" ? "num" : "text";
  }

  function cell(column, kind, value) {
    var td = el("td", {"data-col": column});
    if (value === null || value === undefined || value === "") {
      td.className = "none";
      td.textContent = "\u2014";
      return td;
    }
    td.className = kind === "url" ? "text" : kind;
    if (kind === "num") {
      td.textContent = NUMBER.format(value);
    } else if (kind === "bool") {
      td.textContent = value ? "bot" : "human";
    } else if (kind === "time") {
      td.textContent = String(value).replace("T", " ");
    } else {
      var text = String(value);
      var href = kind === "url" ? webUrl(text) : null;
      if (href) {
        td.appendChild(el("a", {href: href, rel: "nofollow noopener noreferrer",
                                referrerpolicy: "no-referrer"}, text));
      } else {
        td.textContent = text;
      }
      td.setAttribute("title", text);
    }
    return td;
  }

  // The panel's columns in its own order (what matters first on a narrow screen),
  // then any others, less a vhost column with nothing in it (logs without %v), as the
  // CLI's tables do; the rows as [value by column].
  function ordered(spec, block) {
    var wanted = spec.cols ? Object.keys(spec.cols) : [];
    var empty = block.columns.filter(function (c, i) {
      return c === "vhost" && block.rows.every(function (row) { return row[i] === null; });
    });
    var columns = wanted.filter(function (c) { return block.columns.indexOf(c) >= 0; })
      .concat(block.columns.filter(function (c) { return wanted.indexOf(c) < 0; }))
      .filter(function (c) { return empty.indexOf(c) < 0; });
    var at = columns.map(function (c) { return block.columns.indexOf(c); });
    return {columns: columns, rows: block.rows.map(function (row) {
      return at.map(function (i) { return row[i]; });
    })};
  }

  function table(spec, original) {
    var section = el("section", {"class": "panel", id: "panel-" + spec.key});
    section.appendChild(el("h2", {}, spec.title));
    var block = ordered(spec, original);
    var columns = block.columns;
    var kinds = columns.map(function (c, i) {
      if (spec.cols && spec.cols[c]) {
        return spec.cols[c][1];
      }
      var first = block.rows.length ? block.rows[0][i] : null;
      return kindOf(first);
    });
    if (!block.rows.length) {
      section.appendChild(el("p", {"class": "empty"}, "None in this period."));
      return section;
    }
    var t = el("table", {id: "table-" + spec.key, "data-columns": columns.join(",")});
    var head = el("tr");
    columns.forEach(function (c, i) {
      var label = spec.cols && spec.cols[c] ? spec.cols[c][0] : c;
      head.appendChild(el("th", {"class": kinds[i] === "num" ? "num" : "", scope: "col"}, label));
    });
    t.appendChild(el("thead")).appendChild(head);
    var body = el("tbody");
    block.rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (value, i) {
        tr.appendChild(cell(columns[i], kinds[i], value));
      });
      body.appendChild(tr);
    });
    t.appendChild(body);
    section.appendChild(el("div", {"class": "scroll"})).appendChild(t);
    return section;
  }

  function card(name, label, shown, exact) {
    var box = el("div", {"class": "card", "data-total": name});
    box.appendChild(el("span", {"class": "label"}, label));
    var value = el("span", {"class": "value"}, shown);
    if (exact !== undefined) {
      value.setAttribute("title", exact);
    }
    box.appendChild(value);
    return box;
  }

  function renderTotals(data) {
    var box = document.getElementById("totals");
    var t = data.totals;
    var v = data.visit_totals;
    clear(box);
    box.appendChild(card("requests", "Requests", NUMBER.format(t.requests)));
    if (v) {
      box.appendChild(card("visitors", "Visitors", NUMBER.format(v.visitors),
                           "one address and user agent on one day, days added up"));
      box.appendChild(card("visits", "Visits", NUMBER.format(v.visits)));
    }
    box.appendChild(card("bytes", "Bytes", humanBytes(t.bytes), NUMBER.format(t.bytes)));
    box.appendChild(card("bot_share", "Bots",
      t.bot_share === null ? "\u2014" : (100 * t.bot_share).toFixed(1) + "%",
      NUMBER.format(t.bot_requests) + " of " + NUMBER.format(t.requests) + " requests"));
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chart(id, times, series) {
    var box = document.getElementById(id);
    if (state.charts[id]) {
      state.charts[id].destroy();
      delete state.charts[id];
    }
    clear(box);
    if (!times.length) {
      box.appendChild(el("p", {"class": "empty"}, "No requests in this period."));
      return;
    }
    var fg = css("--fg");
    var grid = css("--line");
    var axis = {stroke: fg, grid: {stroke: grid, width: 1}, ticks: {stroke: grid, width: 1}};
    var opts = {
      width: Math.max(260, box.clientWidth),
      height: 240,
      // The times are the database session's calendar days and hours, sent as if UTC.
      tzDate: function (ts) {
        return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
      },
      scales: {x: {time: true}},
      axes: [axis, Object.assign({}, axis, {
        size: 60,
        values: function (u, values) {
          return values.map(function (v) { return NUMBER.format(v); });
        }
      })],
      series: [{label: state.data.by === "hour" ? "Hour" : "Day"}].concat(series.map(function (s) {
        return {label: s.label, stroke: s.color, width: 2,
                points: {show: times.length <= 48}};
      }))
    };
    var columns = [times].concat(series.map(function (s) { return s.values; }));
    state.charts[id] = new uPlot(opts, columns, box);
  }

  function renderCharts(data) {
    chart("chart-traffic", data.traffic.t, [
      {label: "Humans", color: css("--human"), values: data.traffic.humans},
      {label: "Bots", color: css("--bot"), values: data.traffic.bots}
    ]);
    var visitors = document.getElementById("panel-visitors");
    visitors.hidden = !data.visitors_series;
    if (data.visitors_series) {
      chart("chart-visitors", data.visitors_series.t, [
        {label: "Visitors", color: css("--visitors"), values: data.visitors_series.visitors}
      ]);
    }
    chart("chart-status", data.status.t, Object.keys(data.status.series).map(function (c) {
      return {label: c, color: css("--s" + c), values: data.status.series[c]};
    }));
  }

  function renderTables(data) {
    var box = document.getElementById("tables");
    clear(box);
    TABLES.forEach(function (spec) {
      if (data[spec.key]) {
        box.appendChild(table(spec, data[spec.key]));
      }
    });
  }

  function render() {
    var data = state.data;
    document.getElementById("subtitle").textContent =
      [data.description || ""].concat(data.notes || []).join(" \u00b7 ");
    renderTotals(data);
    renderCharts(data);
    renderTables(data);
  }

  function showError(message) {
    var box = document.getElementById("error");
    box.hidden = !message;
    box.textContent = message || "";
  }

  // -- live: logpipe serve -------------------------------------------------------------

  function choice(name, label, options, selected) {
    var wrap = el("label", {}, label + " ");
    var select = el("select", {name: name, id: "choose-" + name});
    options.forEach(function (o) {
      var option = el("option", {value: o[0]}, o[1]);
      option.selected = o[0] === selected;
      select.appendChild(option);
    });
    select.addEventListener("change", function () {
      live[name] = select.value;
      var query = new URLSearchParams({period: live.period, vhost: live.vhost});
      history.replaceState(null, "", "?" + query.toString());
      refresh();
    });
    wrap.appendChild(select);
    return wrap;
  }

  function renderControls() {
    var form = document.getElementById("controls");
    clear(form);
    form.hidden = false;
    form.addEventListener("submit", function (e) { e.preventDefault(); });
    form.appendChild(choice("period", "Period", live.periods, live.period));
    var hosts = (state.data.vhosts || []).slice();
    if (live.vhost && hosts.indexOf(live.vhost) < 0) {
      hosts.push(live.vhost);
    }
    form.appendChild(choice("vhost", "Virtual host", [["", "all"]].concat(hosts.map(function (h) {
      return [h, h];
    })), live.vhost));
    form.appendChild(el("span", {id: "updated"}, "updated " + new Date().toLocaleTimeString()));
  }

  function refresh() {
    if (state.busy) {
      return;
    }
    state.busy = true;
    var query = new URLSearchParams({period: live.period, vhost: live.vhost});
    // relative: works behind a reverse proxy that serves the page under a sub-path
    fetch("api/data?" + query.toString(), {cache: "no-store", credentials: "same-origin"})
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            throw new Error(body.error || ("HTTP " + response.status));
          }
          return body;
        });
      })
      .then(function (data) {
        state.data = data;
        render();
        renderControls();
        showError(null);
        document.documentElement.setAttribute("data-refreshes",
          String(Number(document.documentElement.getAttribute("data-refreshes") || 0) + 1));
      })
      .catch(function (e) {
        showError("Could not refresh: " + e.message);
      })
      .then(function () {
        state.busy = false;
      });
  }

  render();
  if (live) {
    renderControls();
    setInterval(refresh, live.refresh * 1000);
  }
  window.addEventListener("resize", function () {
    Object.keys(state.charts).forEach(function (id) {
      var box = document.getElementById(id);
      state.charts[id].setSize({width: Math.max(260, box.clientWidth), height: 240});
    });
  });
  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () {
      renderCharts(state.data);
    });
  }
  document.documentElement.setAttribute("data-rendered", "yes");
}());
