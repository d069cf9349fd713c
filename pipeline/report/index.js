// index.html's script: sort by a column (click its header again to reverse),
// filter the rows by words (every word must appear in the row), reveal an
// unsafe video's poster on click.
(function () {
  "use strict";
  var table = document.getElementById("index-table");
  if (!table) return;
  var body = table.tBodies[0];
  var rows = Array.prototype.filter.call(body.rows, function (r) { return !r.classList.contains("empty"); });
  var filter = document.getElementById("index-filter"), count = document.getElementById("index-count");
  // a cell's sort key: its data-sort number when it has one, else its text; blanks sort last
  function key(row, col) {
    var cell = row.cells[col], raw = cell.dataset.sort;
    if (raw !== undefined) return raw === "" ? null : parseFloat(raw);
    var text = cell.textContent.trim().toLowerCase();
    return text === "" || text === "—" ? null : text;
  }
  function compare(a, b) {
    if (a === null || b === null) return (a === null) - (b === null);
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  var sorted = {col: -1, dir: 1};
  table.querySelectorAll("button.sort").forEach(function (button) {
    button.addEventListener("click", function () {
      var col = parseInt(button.dataset.col, 10);
      sorted.dir = sorted.col === col ? -sorted.dir : 1;
      sorted.col = col;
      rows.sort(function (a, b) {
        var ka = key(a, col), kb = key(b, col);
        if (ka === null || kb === null) return compare(ka, kb);  // blanks last either way
        return sorted.dir * compare(ka, kb);
      });
      rows.forEach(function (r) { body.appendChild(r); });
      table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
      button.parentNode.setAttribute("aria-sort", sorted.dir > 0 ? "ascending" : "descending");
    });
  });
  function applyFilter() {
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean), shown = 0;
    rows.forEach(function (r) {
      var text = r.textContent.toLowerCase();
      r.hidden = !words.every(function (w) { return text.indexOf(w) >= 0; });
      if (!r.hidden) shown += 1;
    });
    count.textContent = words.length ? shown + " of " + rows.length + " shown" : "";
  }
  if (filter) filter.addEventListener("input", applyFilter);
  document.querySelectorAll(".thumb.nsfw").forEach(function (t) {
    t.addEventListener("click", function () { t.classList.toggle("revealed"); });
  });
})();
