// The API reference, rendered from /openapi.json with textContent only (no CDN; nothing parsed as HTML).
(function () {
  "use strict";
  function el(tag, text, cls) {
    var n = document.createElement(tag);
    if (text !== undefined) n.textContent = String(text);
    if (cls) n.className = cls;
    return n;
  }
  function typeOf(schema) {
    if (!schema) return "";
    if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
    return schema.type || (schema.$ref ? schema.$ref.split("/").pop() : "");
  }
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (api) {
    var root = document.getElementById("endpoints");
    Object.keys(api.paths).forEach(function (path) {
      var ops = api.paths[path];
      Object.keys(ops).forEach(function (method) {
        var op = ops[method], box = el("section", undefined, "endpoint");
        box.appendChild(el("h2", method.toUpperCase() + " " + path));
        if (op.summary) box.appendChild(el("p", op.summary));
        if (op.description && op.description !== op.summary) box.appendChild(el("p", op.description, "hint"));
        var params = (op.parameters || []).map(function (p) {
          return [p.name, p.in, typeOf(p.schema), (p.schema && p.schema.description) || p.description || ""];
        });
        var body = op.requestBody && op.requestBody.content;
        if (body) {
          Object.keys(body).forEach(function (kind) {
            var ref = body[kind].schema && body[kind].schema.$ref, schema = ref ?
              api.components.schemas[ref.split("/").pop()] : body[kind].schema;
            Object.keys((schema && schema.properties) || {}).forEach(function (name) {
              var p = schema.properties[name];
              params.push([name, kind, typeOf(p), p.description || ""]);
            });
          });
        }
        if (params.length) {
          var t = el("table"), head = el("tr");
          ["name", "in", "type", "description"].forEach(function (h) { head.appendChild(el("th", h)); });
          t.appendChild(head);
          params.forEach(function (row) {
            var tr = el("tr");
            row.forEach(function (c) { tr.appendChild(el("td", c)); });
            t.appendChild(tr);
          });
          box.appendChild(t);
        }
        root.appendChild(box);
      });
    });
  });
})();
