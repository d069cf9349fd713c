// scenetag serve: the page. Builds every element with textContent and
// attributes only: no name, label or message is ever parsed as HTML.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var SVG = "http://www.w3.org/2000/svg";
  var inputs = [];          // from /api/inputs
  var current = null;       // the input open in the player

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function pad(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  function clock(t) {  // mm:ss.mmm, h:mm:ss.mmm from an hour on (as pipeline.report.text.clock)
    var ms = Math.max(0, Math.round(t * 1000));
    var h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
    var rest = pad(m, 2) + ":" + pad(s, 2) + "." + pad(ms % 1000, 3);
    return h ? h + ":" + rest : rest;
  }
  function status(text, isError) {
    var s = $("status");
    s.textContent = text;
    s.className = isError ? "error" : "";
  }
  function setAddress(changes) {  // the view lives in the address, so it can be bookmarked
    var p = new URLSearchParams(location.search);
    Object.keys(changes).forEach(function (k) {
      if (changes[k] === null || changes[k] === undefined || changes[k] === "") p.delete(k);
      else p.set(k, changes[k]);
    });
    var text = p.toString();
    history.replaceState(null, "", text ? "?" + text : location.pathname);
  }
  function showPlace(t) {  // the open input and time, as &open=ID&t=SECONDS
    if (current) setAddress({open: current.info.id, t: Math.max(0, t).toFixed(3)});
  }
  function getJSON(url, options) {
    return fetch(url, options).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (!r.ok) {
          var d = body && body.detail;
          throw new Error(typeof d === "string" ? d : (d ? JSON.stringify(d) : r.status + " " + r.statusText));
        }
        return body;
      });
    });
  }

  // ------------------------------------------------------------------ thumbnails

  function thumb(url, nsfw, alt) {
    var box = el("span", {"class": nsfw ? "thumb nsfw" : "thumb"});
    if (nsfw) box.title = "NSFW: click to reveal";
    if (url) {
      var img = el("img", {loading: "lazy", decoding: "async", alt: alt || ""});
      img.src = url;
      box.appendChild(img);
    }
    if (nsfw) {
      box.addEventListener("click", function (e) {
        if (!box.classList.contains("revealed")) { e.stopPropagation(); box.classList.add("revealed"); }
      });
    }
    return box;
  }

  function card(kind, item, when, score, open) {
    var fig = el("figure", {"class": "card " + kind, tabindex: "0"});
    fig.dataset.input = item.input;
    fig.dataset.time = String(kind === "moment" ? item.start_s : item.time_s);
    fig.dataset.score = String(score);
    fig.appendChild(thumb(item.thumb, item.nsfw, item.name));
    var cap = el("figcaption");
    cap.appendChild(el("span", {"class": "name"}, item.name || item.input));
    cap.appendChild(el("span", {"class": "time"}, when));
    cap.appendChild(el("span", {"class": "score"}, score.toFixed(3)));
    if (kind === "moment") cap.appendChild(el("span", {"class": "hint"}, item.hits + (item.hits === 1 ? " frame" : " frames")));
    fig.appendChild(cap);
    if (item.id) {
      fig.addEventListener("click", open);
      fig.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
    }
    return fig;
  }

  // ------------------------------------------------------------------ search

  function showResults(result, what) {
    var moments = $("moments"), hits = $("hits");
    moments.textContent = ""; hits.textContent = "";
    var mf = document.createDocumentFragment(), hf = document.createDocumentFragment();
    result.moments.forEach(function (m) {
      mf.appendChild(card("moment", m, m.start_clock + "–" + m.end_clock, m.best_score,
                          function () { openPlayer(m.id, m.start_s); }));
    });
    result.hits.forEach(function (h) {
      hf.appendChild(card("hit", h, h.clock, h.score, function () { openPlayer(h.id, h.time_s); }));
    });
    moments.appendChild(mf); hits.appendChild(hf);
    $("moments-title").hidden = $("hits-title").hidden = result.hits.length === 0;
    status(result.hits.length ? result.hits.length + " frames in " + result.moments.length +
           " moments for " + what : "no results for " + what);
  }

  function options() {
    var o = {top: $("top").value || "20"};
    if ($("min-score").value !== "") o.min_score = $("min-score").value;
    if ($("video").value.trim()) o.video = $("video").value.trim();
    var sampling = new URLSearchParams(location.search).get("sampling");  // one stored sampling
    if (sampling) o.sampling = sampling;
    return o;
  }

  function searchText(q) {
    var o = options(), params = new URLSearchParams(o);
    params.set("q", q);
    setAddress({q: q, top: o.top, min_score: o.min_score, video: o.video});
    status("searching…");
    return getJSON("/api/search?" + params.toString())
      .then(function (r) { showResults(r, "“" + q + "”"); })
      .catch(function (e) { status(e.message, true); });
  }

  function searchPicture(file) {
    var form = new FormData(), o = options();
    form.append("file", file);
    Object.keys(o).forEach(function (k) { form.append(k, o[k]); });
    var preview = $("drop-preview");
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    status("searching by picture…");
    return getJSON("/api/search/image", {method: "POST", body: form})
      .then(function (r) { showResults(r, "the picture " + (file.name || "")); })
      .catch(function (e) { status(e.message, true); });
  }

  $("search-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var q = $("q").value.trim();
    if (q) searchText(q);
  });
  $("picture").addEventListener("change", function () {
    if (this.files && this.files[0]) searchPicture(this.files[0]);
  });
  var drop = $("drop");
  ["dragenter", "dragover"].forEach(function (t) {
    drop.addEventListener(t, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (t) {
    drop.addEventListener(t, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    var f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
    if (f) searchPicture(f);
  });

  // ------------------------------------------------------------------ browse

  function showInputs() {
    var needle = $("filter").value.trim().toLowerCase(), verdict = $("verdict-filter").value;
    var body = $("inputs-table").tBodies[0], frag = document.createDocumentFragment(), shown = 0;
    body.textContent = "";
    inputs.forEach(function (i) {
      var text = (i.name + " " + i.tags.join(" ")).toLowerCase();
      if (needle && text.indexOf(needle) < 0) return;
      if (verdict && i.nsfw_verdict !== verdict) return;
      shown += 1;
      var row = el("tr", {tabindex: "0"});
      row.dataset.id = i.id;
      var cell = el("td");
      cell.appendChild(thumb(i.thumb, i.nsfw_verdict === "unsafe", i.name));
      row.appendChild(cell);
      row.appendChild(el("td", {title: i.input}, i.name));
      row.appendChild(el("td", {"class": "time"}, i.duration_s === null ? "?" : clock(i.duration_s)));
      row.appendChild(el("td", {}, i.frames));
      row.appendChild(el("td", {}, i.has_report ? (i.tags.join(", ") || "none") : "no report"));
      row.appendChild(el("td", {"class": "verdict-" + i.nsfw_verdict.replace("/", "")}, i.nsfw_verdict));
      var open = function () { openPlayer(i.id, 0); };
      row.addEventListener("click", open);
      row.addEventListener("keydown", function (e) { if (e.key === "Enter") open(); });
      frag.appendChild(row);
    });
    body.appendChild(frag);
    $("browse-count").textContent = shown + " of " + inputs.length + " inputs";
  }
  $("filter").addEventListener("input", showInputs);
  $("verdict-filter").addEventListener("change", showInputs);

  function tab(name) {
    var search = name === "search";
    $("search-view").hidden = !search; $("browse-view").hidden = search;
    $("tab-search").classList.toggle("active", search); $("tab-browse").classList.toggle("active", !search);
    $("tab-search").setAttribute("aria-pressed", String(search));
    $("tab-browse").setAttribute("aria-pressed", String(!search));
  }
  $("tab-search").addEventListener("click", function () { tab("search"); });
  $("tab-browse").addEventListener("click", function () { tab("browse"); showInputs(); });

  // ------------------------------------------------------------------ player

  var video = $("player");
  video.addEventListener("timeupdate", function () { $("player-time").textContent = clock(video.currentTime); moveCursor(); });
  ["seeked", "pause"].forEach(function (t) {
    video.addEventListener(t, function () {  // not while a new file loads (its time reads 0)
      if (video.readyState > 0) showPlace(video.currentTime);
    });
  });
  video.addEventListener("error", function () {
    var note = $("player-note");
    note.textContent = "The browser could not play this file" + (video.error ? " (media error " + video.error.code + ")" : "") +
      ". The timeline and segments work without it; to watch it here, convert it to H.264 in MP4.";
    note.hidden = false;
  });
  $("player-close").addEventListener("click", function () {
    $("player-box").hidden = true; current = null; video.pause();
    setAddress({open: null, t: null});
  });

  function seek(t) {
    $("player-time").textContent = clock(t);
    if (current) current.t = t;
    try { video.currentTime = t; } catch (e) { /* not seekable yet: loadedmetadata seeks */ }
    moveCursor(t);
    showPlace(t);
  }

  function openPlayer(id, t) {
    if (!id) return;
    return getJSON("/api/inputs/" + encodeURIComponent(id)).then(function (info) {
      current = {info: info, t: t};
      $("player-box").hidden = false;
      $("player-box").dataset.input = info.input;
      $("player-title").textContent = info.name;
      $("player-note").hidden = true;
      video.onloadedmetadata = function () { seek(current ? current.t : t); };
      video.src = info.video + "#t=" + t.toFixed(3);
      seek(t);
      drawTimeline(info);
      drawSegments(info.segments);
      $("no-report").textContent = info.report_error ? "The report could not be shown: " + info.report_error
        : "No report for this input in --reports: no timeline.";
      $("no-report").hidden = !!info.timeline;
    }).catch(function (e) { status(e.message, true); });
  }

  var TL = {w: 800, left: 110, right: 10, row: 22, top: 6};
  function drawTimeline(info) {
    var box = $("timeline-box");
    box.textContent = "";
    if (!info.timeline) return;
    var tracks = info.timeline.tracks, times = info.timeline.times;
    var end = info.duration_s || (times.length ? times[times.length - 1] : 1) || 1;
    var h = TL.top + tracks.length * TL.row + 18, span = TL.w - TL.left - TL.right;
    var x = function (t) { return TL.left + span * Math.min(1, Math.max(0, t / end)); };
    var s = svg("svg", {viewBox: "0 0 " + TL.w + " " + h, role: "img", "aria-label": "label timeline"});
    s.dataset.end = String(end);
    tracks.forEach(function (track, r) {
      var y0 = TL.top + r * TL.row, kind = track.kind === "nsfw" ? "nsfw" : "tag";
      s.appendChild(svg("text", {x: 4, y: y0 + 14}, track.name));
      info.segments.filter(function (g) { return g.label === track.name && g.kind === track.kind; })
        .forEach(function (g) {
          s.appendChild(svg("rect", {"class": "seg " + kind, x: x(g.start_s), y: y0 + 1,
                                     width: Math.max(1, x(g.end_s) - x(g.start_s)), height: TL.row - 2}));
        });
      var pts = times.map(function (t, i) {
        return x(t).toFixed(1) + "," + (y0 + TL.row - 2 - (TL.row - 4) * track.scores[i]).toFixed(1);
      });
      s.appendChild(svg("polyline", {"class": kind, points: pts.join(" ")}));
    });
    var axisY = TL.top + tracks.length * TL.row + 13;
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) {
      var anchor = f === 0 ? "start" : f === 1 ? "end" : "middle";
      s.appendChild(svg("text", {x: x(end * f), y: axisY, "text-anchor": anchor}, clock(end * f)));
    });
    s.appendChild(svg("line", {"class": "cursor", id: "tl-cursor", x1: TL.left, x2: TL.left, y1: 0, y2: h - 16}));
    s.addEventListener("click", function (e) {
      var r = s.getBoundingClientRect(), px = (e.clientX - r.left) * TL.w / r.width;
      seek(Math.min(end, Math.max(0, (px - TL.left) / span * end)));
    });
    box.appendChild(s);
  }
  function moveCursor(t) {
    var c = $("tl-cursor"), s = c && c.ownerSVGElement;
    if (!c || !s) return;
    var end = parseFloat(s.dataset.end), span = TL.w - TL.left - TL.right;
    var px = TL.left + span * Math.min(1, Math.max(0, (t === undefined ? video.currentTime : t) / end));
    c.setAttribute("x1", px); c.setAttribute("x2", px);
  }
  function drawSegments(segments) {
    var table = $("segments-table"), body = table.tBodies[0];
    body.textContent = "";
    if (table.tHead) table.deleteTHead();
    if (segments.length) {
      var head = table.createTHead().insertRow();
      ["segment", "kind", "time", "peak"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    }
    segments.forEach(function (g) {
      var row = el("tr", {"class": g.kind === "nsfw" ? "segment nsfw" : "segment"});
      row.appendChild(el("td", {}, g.label));
      row.appendChild(el("td", {}, g.kind));
      row.appendChild(el("td", {"class": "time"}, g.start_clock + "–" + g.end_clock));
      row.appendChild(el("td", {"class": "time"}, g.peak.toFixed(3)));
      row.addEventListener("click", function () { seek(g.start_s); });
      body.appendChild(row);
    });
  }

  // ------------------------------------------------------------------ start

  var params = new URLSearchParams(location.search);
  // the page's response set the token's cookie: keep the secret out of bookmarks of the view
  if (params.has("token")) setAddress({token: null});
  if (params.get("top")) $("top").value = params.get("top");
  if (params.get("min_score")) $("min-score").value = params.get("min_score");
  if (params.get("video")) $("video").value = params.get("video");
  getJSON("/api/inputs").then(function (r) {
    inputs = r.inputs;
    $("store-info").textContent = inputs.length + " inputs · " + r.model;
    showInputs();
    if (params.get("view") === "browse") tab("browse");
  }).catch(function (e) { status(e.message, true); });
  if (params.get("q")) { $("q").value = params.get("q"); searchText(params.get("q")); }
  if (params.get("open")) openPlayer(params.get("open"), parseFloat(params.get("t") || "0") || 0);
})();
