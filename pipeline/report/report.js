// report.html's script: the player, the segments table, and the timeline
// (hover for scores, click a segment, shot or cue to seek, zoom and pan). It builds DOM with
// textContent only: labels never pass through innerHTML.
(function () {
  "use strict";
  var el = document.getElementById("scenetag-data");
  var data = el ? JSON.parse(el.textContent) : {times: [], tracks: [], segments: [], gaps: []};
  var gaps = data.gaps || [], shots = data.shots || [], cues = data.cues || [];
  var video = document.getElementById("player");
  var note = document.getElementById("player-note");
  if (video && note) {
    video.addEventListener("error", function () {
      var err = video.error ? " (media error " + video.error.code + ")" : "";
      note.textContent = "The browser could not play this video" + err + ". The timeline, table " +
        "and thumbnails work without it; to watch it here, convert it to H.264 in MP4.";
      note.hidden = false;
    });
  }
  var out = document.getElementById("selected-time");
  function pad(n, w) { n = String(n); while (n.length < w) n = "0" + n; return n; }
  function hms(t) {
    var ms = Math.max(0, Math.round(t * 1000));
    var h = Math.floor(ms / 3600000), m = Math.floor(ms / 60000) % 60;
    var s = Math.floor(ms / 1000) % 60;
    return pad(h, 2) + ":" + pad(m, 2) + ":" + pad(s, 2) + "." + pad(ms % 1000, 3);
  }
  function select(t, i) {
    if (out) out.textContent = hms(t);
    document.querySelectorAll("#segments-table tr.selected").forEach(function (r) {
      r.classList.remove("selected");
    });
    if (i !== null && i !== undefined) {
      var row = document.querySelector('#segments-table tr[data-i="' + i + '"]');
      if (row) row.classList.add("selected");
    }
    if (video) { try { video.currentTime = t; } catch (e) { /* not seekable yet */ } }
  }
  document.querySelectorAll("#segments-table tr.segment").forEach(function (row) {
    var go = function () { select(parseFloat(row.dataset.start), row.dataset.i); };
    row.addEventListener("click", go);
    row.addEventListener("keydown", function (e) { if (e.key === "Enter") go(); });
  });
  document.querySelectorAll(".thumb.nsfw").forEach(function (t) {
    t.addEventListener("click", function (e) { e.stopPropagation(); t.classList.toggle("revealed"); });
  });

  var svg = document.getElementById("timeline-svg");
  if (!svg) return;
  var SVGNS = "http://www.w3.org/2000/svg";
  var tip = document.getElementById("tip"), cursor = document.getElementById("cursor");
  var end = parseFloat(svg.dataset.end), x0 = parseFloat(svg.dataset.x0);
  var x1 = parseFloat(svg.dataset.x1), width = x1 - x0, vb = svg.viewBox.baseVal;
  var steps = svg.dataset.steps.split(",").map(Number);
  var zoom = document.getElementById("zoom"), axis = document.getElementById("axis");
  var dots = svg.querySelectorAll("#marks circle");
  var shown = document.getElementById("zoom-view");
  var plotTop = parseFloat(cursor.getAttribute("y1")), plotBottom = parseFloat(cursor.getAttribute("y2"));
  // the view: [t0, t1] of [0, end]; at least 2 s (or the whole video) wide
  var t0 = 0, t1 = end, minSpan = Math.min(end, 2);

  function X(t) { return x0 + width * (t - t0) / (t1 - t0); }
  function svgX(ev) {
    var r = svg.getBoundingClientRect();
    return (ev.clientX - r.left) * vb.width / r.width;
  }
  function timeAt(ev) { return Math.min(t1, Math.max(t0, t0 + (svgX(ev) - x0) / width * (t1 - t0))); }
  // as pipeline.report.plot.format_clock: mm:ss, h:mm:ss when the video reaches an hour
  function clock(t) {
    var total = Math.round(Math.max(t, 0)), h = Math.floor(total / 3600);
    var m = Math.floor(total / 60) % 60, s = total % 60;
    return end >= 3600 ? h + ":" + pad(m, 2) + ":" + pad(s, 2) : pad(m + 60 * h, 2) + ":" + pad(s, 2);
  }
  // as pipeline.report.plot.tick_step: the smallest round step giving at most 10 of them
  function tickStep(span) {
    for (var i = 0; i < steps.length; i++) if (span / steps[i] <= 10) return steps[i];
    return 3600 * Math.ceil(span / 3600 / 10);
  }
  function drawAxis() {
    while (axis.firstChild) axis.removeChild(axis.firstChild);
    var step = tickStep(t1 - t0);
    for (var k = Math.ceil(t0 / step - 1e-9); k * step <= t1 + 1e-9; k++) {
      var x = X(k * step), label = clock(k * step);
      var line = document.createElementNS(SVGNS, "line");
      line.setAttribute("class", "tick");
      line.setAttribute("x1", x); line.setAttribute("x2", x);
      line.setAttribute("y1", plotTop); line.setAttribute("y2", plotBottom + 4);
      var text = document.createElementNS(SVGNS, "text");
      text.setAttribute("class", "tick");
      text.setAttribute("x", x); text.setAttribute("y", plotBottom + 17);
      if (x + 3.5 * label.length > vb.width) text.style.textAnchor = "end";
      text.textContent = label;
      axis.appendChild(line); axis.appendChild(text);
    }
  }
  function view(a, b) {
    var span = Math.min(end, Math.max(minSpan, b - a));
    t0 = Math.min(Math.max(0, a), end - span); t1 = t0 + span;
    var k = end / span;  // the zoom group is drawn for [0, end]: scale it along time only
    zoom.setAttribute("transform", "matrix(" + k + " 0 0 1 " + (x0 * (1 - k) - width * t0 / span) + " 0)");
    dots.forEach(function (c) { c.setAttribute("cx", X(parseFloat(c.dataset.t))); });
    svg.dataset.t0 = t0.toFixed(3); svg.dataset.t1 = t1.toFixed(3);
    svg.classList.toggle("zoomed", span < end);
    if (shown) shown.textContent = span < end ? hms(t0) + " – " + hms(t1) : "";
    drawAxis();
  }
  function zoomBy(factor, at) {
    var centre = at === undefined ? (t0 + t1) / 2 : at, span = (t1 - t0) * factor;
    var share = (centre - t0) / (t1 - t0);
    view(centre - share * span, centre - share * span + span);
  }
  function pan(dt) { view(t0 + dt, t1 + dt); }
  document.getElementById("zoom-in").addEventListener("click", function () { zoomBy(0.5); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomBy(2); });
  document.getElementById("zoom-reset").addEventListener("click", function () { view(0, end); });
  svg.addEventListener("wheel", function (ev) {
    var across = ev.shiftKey ? ev.deltaY || ev.deltaX : ev.deltaX;
    if (ev.ctrlKey || ev.metaKey) {  // a trackpad's pinch arrives as Ctrl + wheel too
      ev.preventDefault();
      zoomBy(Math.exp(Math.max(-1, Math.min(1, ev.deltaY * 0.002))), timeAt(ev));
    } else if (t1 - t0 < end && across && (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY))) {
      ev.preventDefault();
      pan(across / vb.width * (t1 - t0));
    }  // a plain wheel scrolls the page, as everywhere else
  }, {passive: false});

  var drag = null, dragged = false;
  svg.addEventListener("mousedown", function (ev) {
    if (ev.button === 0 && t1 - t0 < end) { drag = {x: svgX(ev), t0: t0}; dragged = false; }
  });
  window.addEventListener("mouseup", function () { drag = null; });
  function nearest(t) {
    var a = data.times, lo = 0, hi = a.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (a[mid] < t) lo = mid + 1; else hi = mid; }
    if (lo > 0 && Math.abs(a[lo - 1] - t) <= Math.abs(a[lo] - t)) lo -= 1;
    return lo;
  }
  function gapAt(t) {
    for (var i = 0; i < gaps.length; i++) if (t > gaps[i].start && t < gaps[i].end) return gaps[i];
    return null;
  }
  // as pipeline.report.text.clock: mm:ss.mmm, h:mm:ss.mmm from an hour on
  function clockMs(t) {
    var ms = Math.max(0, Math.round(t * 1000)), h = Math.floor(ms / 3600000);
    var m = Math.floor(ms / 60000) % 60, s = Math.floor(ms / 1000) % 60;
    return (h ? h + ":" : "") + pad(m, 2) + ":" + pad(s, 2) + "." + pad(ms % 1000, 3);
  }
  function shotAt(t) {
    for (var i = 0; i < shots.length; i++) if (t >= shots[i].start && t < shots[i].end) return shots[i];
    return null;
  }
  function tipLines(t) {
    var gap = gapAt(t), shot = shotAt(t), lines;
    if (gap) {
      lines = [hms(t), "no frames (gap" + (gap.reason ? ": " + gap.reason : "") + ")"];
    } else {
      var k = nearest(t);
      lines = [hms(k >= 0 ? data.times[k] : t)];
      data.tracks.forEach(function (tr) {
        var v = k >= 0 ? tr.smoothed[k] : null;
        lines.push(tr.name + ": " + (v === null || v === undefined ? "–" : v.toFixed(3)));
      });
    }
    if (shot) {
      lines.push("Shot " + shot.shot + "  " + clockMs(shot.start) + "–" + clockMs(shot.end) +
                 (shot.tags ? "  " + shot.tags : ""));
    }
    return lines;
  }
  svg.addEventListener("mousemove", function (ev) {
    if (drag) {
      var moved = svgX(ev) - drag.x;
      if (Math.abs(moved) > 3) dragged = true;
      var span = t1 - t0, from = drag.t0 - moved / width * span;
      if (dragged) view(from, from + span);
    }
    var t = timeAt(ev), x = X(t);
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); cursor.style.opacity = 0.5;
    tip.textContent = tipLines(t).join("\n");
    tip.hidden = false;
    var box = svg.parentNode.getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - box.left + 12, box.width - tip.offsetWidth) + "px";
    tip.style.top = (ev.clientY - box.top + 12) + "px";
  });
  svg.addEventListener("mouseleave", function () { tip.hidden = true; cursor.style.opacity = 0; });
  svg.addEventListener("click", function (ev) {
    if (dragged) { dragged = false; return; }  // the end of a pan, not a seek
    var target = ev.target.closest ? ev.target.closest("rect.seg, rect.shot, rect.cue") : null;
    var i = target ? parseInt(target.dataset.i, 10) : -1;
    if (target && target.classList.contains("seg")) {
      select(data.segments[i].start, i);
    } else if (target && target.classList.contains("shot")) {
      select(shots[i].start, null);
    } else if (target) {
      select(cues[i].start, null);
    } else {
      select(timeAt(ev), null);
    }
  });
  view(0, end);
})();
