(function () {
  var data = JSON.parse(document.getElementById("cluster-data").textContent);
  var tip = document.getElementById("tip"), img = document.getElementById("tip-img");
  document.querySelectorAll("[data-i]").forEach(function (el) {
    el.addEventListener("mouseenter", function (ev) {
      var uri = data.thumbs[el.dataset.i];
      img.hidden = !uri; if (uri) img.src = uri;
      document.getElementById("tip-input").textContent = data.inputs[+el.dataset.in];
      document.getElementById("tip-text").textContent = el.dataset.t;
      tip.hidden = false;
      tip.style.left = (ev.pageX + 14) + "px"; tip.style.top = (ev.pageY + 14) + "px";
    });
    el.addEventListener("mouseleave", function () { tip.hidden = true; });
  });
})();
