// Progressive enhancement only: the form works the same without any of this.
(function () {
  "use strict";
  var form = document.getElementById("signup") || document.getElementById("preferences");
  if (!form) { return; }

  // Pre-fill the time zone from the browser, once, on a fresh form; the person can edit it.
  var zone = document.getElementById("id_time_zone");
  if (zone && form.dataset.fresh === "1") {
    try {
      var browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
      if (browserZone) { zone.value = browserZone; }
    } catch (e) { /* keep the server's default */ }
  }

  Array.prototype.forEach.call(document.querySelectorAll(".js-only"), function (el) { el.hidden = false; });
  Array.prototype.forEach.call(document.querySelectorAll(".js-hide"), function (el) { el.hidden = true; });

  var panel = document.getElementById("preview");
  var timer = null;
  var latest = 0;
  function refresh() {
    if (!panel) { return; }
    var params = new URLSearchParams();
    ["topics", "excludes", "authors", "organizations", "max_papers", "seed_papers"].forEach(function (name) {
      var input = form.elements[name];
      // The preview reads the first hundred pasted ids; a GET need not carry a whole library.
      if (input) { params.set(name, input.value.slice(0, 6000)); }
    });
    var mine = ++latest;
    panel.setAttribute("aria-busy", "true");
    fetch(panel.dataset.url + "?" + params.toString(), {credentials: "same-origin"})
      .then(function (response) { return response.text(); })
      .then(function (html) {
        // Answers can arrive out of order; only the newest request may paint.
        if (mine === latest) { panel.innerHTML = html; panel.setAttribute("aria-busy", "false"); }
      })
      .catch(function () { if (mine === latest) { panel.setAttribute("aria-busy", "false"); } });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }
  form.addEventListener("input", function (event) {
    if (event.target.dataset && event.target.dataset.preview) { schedule(); }
  });

  Array.prototype.forEach.call(document.querySelectorAll("[data-add-topic]"), function (chip) {
    chip.addEventListener("click", function () {
      var topics = form.elements.topics;
      var word = chip.dataset.addTopic;
      var have = topics.value.split(",").map(function (t) { return t.trim().toLowerCase(); });
      if (have.indexOf(word.toLowerCase()) === -1) {
        topics.value = topics.value.trim() ? topics.value.replace(/[\s,]*$/, "") + ", " + word : word;
      }
      chip.setAttribute("aria-pressed", "true");
      topics.focus();
      schedule();
    });
  });
})();
