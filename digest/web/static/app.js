// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  function prefillTimeZone() {
    var select = document.getElementById("timezone");
    if (!select || select.getAttribute("data-autodetect") !== "yes") return;
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    for (var i = 0; i < select.options.length; i++) {
      if (select.options[i].value === zone) { select.value = zone; return; }
    }
  }

  function text(tag, value, className) {
    var node = document.createElement(tag);
    node.textContent = value;
    if (className) node.className = className;
    return node;
  }

  function titleNode(paper) {
    var link = document.createElement("a");
    link.href = paper.url;
    paper.title.forEach(function (part) {
      link.appendChild(part.hit ? text("mark", part.text) : document.createTextNode(part.text));
    });
    return link;
  }

  function renderPreview(body, data) {
    body.textContent = "";
    if (data.errors) { body.appendChild(text("p", data.errors.topics || "Check your topics.", "error")); return; }
    if (!data.papers.length) {
      body.appendChild(text("p", "No paper of the last 7 days matches these topics. Try broader words, or OR a few together.", "hint"));
      return;
    }
    var list = document.createElement("ol");
    list.className = "papers";
    data.papers.forEach(function (paper) {
      var item = document.createElement("li");
      item.appendChild(titleNode(paper));
      item.appendChild(text("span", paper.authors + (paper.meta ? " · " + paper.meta : ""), "meta"));
      item.appendChild(text("span", "Matched: " + paper.topics.join(", "), "why"));
      list.appendChild(item);
    });
    body.appendChild(list);
    if (data.more) body.appendChild(text("p", "…and " + data.more + " more.", "hint"));
  }

  function livePreview() {
    var topics = document.getElementById("topics");
    var section = document.getElementById("preview");
    var body = document.getElementById("preview-body");
    if (!topics || !section || !body || !window.fetch) return;
    var timer = null;
    var latest = 0;
    topics.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var lines = topics.value.split(/\r?\n/).map(function (l) { return l.trim(); }).filter(Boolean);
        if (!lines.length) { section.hidden = true; return; }
        var ticket = ++latest;
        fetch("/api/preview", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ topics: lines })
        }).then(function (r) { return r.json(); }).then(function (data) {
          if (ticket !== latest) return;
          section.hidden = false;
          renderPreview(body, data);
        }).catch(function () { /* the Preview button still works */ });
      }, 500);
    });
  }

  function weeklyDayOnlyWhenWeekly() {
    var frequency = document.getElementById("frequency");
    var day = document.getElementById("weekly_day");
    if (!frequency || !day) return;
    var field = day.closest(".field");
    function sync() { field.hidden = frequency.value !== "weekly"; }
    frequency.addEventListener("change", sync);
    sync();
  }

  document.addEventListener("DOMContentLoaded", function () {
    prefillTimeZone();
    weeklyDayOnlyWhenWeekly();
    livePreview();
  });
})();
