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

  var NO_MATCH = "No paper of the last 7 days matches these topics. Try broader words, or OR a few together.";
  var NO_CLOSE = "No paper of the last 7 days is close to the papers you liked.";
  var NO_TRENDING = "No paper of the last 7 days has upvotes on Hugging Face yet.";

  function paperList(papers) {
    var list = document.createElement("ol");
    list.className = "papers";
    papers.forEach(function (paper) {
      var item = document.createElement("li");
      item.appendChild(titleNode(paper));
      item.appendChild(text("span", paper.authors + (paper.meta ? " · " + paper.meta : ""), "meta"));
      item.appendChild(text("span", paper.why, "why"));
      list.appendChild(item);
    });
    return list;
  }

  function firstError(errors) {
    var names = Object.keys(errors);
    return errors.topics || errors.examples || (names.length ? errors[names[0]] : "Check your settings.");
  }

  // "Title (2406.12345) · 2406.99999 — not among our papers yet: …", as the server's page says it.
  function likedLine(examples) {
    return "Papers you liked: " + examples.map(function (e) {
      return (e.title ? e.title + " (" + e.id + ")" : e.id) + (e.note ? " — " + e.note : "");
    }).join(" · ");
  }

  function renderPreview(body, data, lines) {
    body.textContent = "";
    if (data.errors) { body.appendChild(text("p", firstError(data.errors), "error")); return; }
    if (data.trending) {
      body.appendChild(text("h3", "Trending on Hugging Face"));
      body.appendChild(data.trending.length ? paperList(data.trending) : text("p", NO_TRENDING, "hint"));
    }
    if (!lines.topics.length && !lines.examples.length) return;
    if (data.trending) body.appendChild(text("h3", "On your topics"));
    if (data.examples && data.examples.length) body.appendChild(text("p", likedLine(data.examples), "hint liked"));
    var none = lines.topics.length ? NO_MATCH : NO_CLOSE;
    body.appendChild(data.papers.length ? paperList(data.papers) : text("p", none, "hint"));
    if (data.more) body.appendChild(text("p", "…and " + data.more + " more.", "hint"));
  }

  function linesOf(id) {
    var box = document.getElementById(id);
    if (!box) return [];
    return box.value.split(/\r?\n/).map(function (l) { return l.trim(); }).filter(Boolean);
  }

  function topicLines() { return linesOf("topics"); }

  // The topics and the papers the reader liked (each of those is a topic too).
  function allLines() { return { topics: topicLines(), examples: linesOf("examples") }; }

  function noTopics() { var all = allLines(); return !all.topics.length && !all.examples.length; }

  function number(id, fallback) {
    var box = document.getElementById(id);
    var value = box ? box.value.trim() : "";
    if (!value) return fallback;
    return /^-?[0-9]+$/.test(value) ? parseInt(value, 10) : value;  // the server names what is wrong
  }

  // What the preview is asked for: the same rule as the server's (no topics: the trending papers).
  function previewBody(lines) {
    var box = document.getElementById("trending");
    var none = !lines.topics.length && !lines.examples.length;
    var trending = (box && box.checked) || none ? number("trending_count", 10) : null;
    return { topics: lines.topics, examples: lines.examples, min_upvotes: number("min_upvotes", null),
             max_papers: number("max_papers", 25), trending: trending };
  }

  // The box follows the topics and papers (ticked when both are empty) until the reader ticks or
  // unticks it.
  function trendingFollowsTopics() {
    var topics = document.getElementById("topics");
    var box = document.getElementById("trending");
    if (!topics || !box) return;
    var follow = noTopics() || !box.checked;
    function sync() { if (follow) box.checked = noTopics(); }
    box.addEventListener("change", function () { follow = false; });
    topics.addEventListener("input", sync);
    var examples = document.getElementById("examples");
    if (examples) examples.addEventListener("input", sync);
    sync();
  }

  function livePreview() {
    var section = document.getElementById("preview");
    var body = document.getElementById("preview-body");
    var form = document.getElementById("signup");
    if (!form || !section || !body || !window.fetch) return;
    var timer = null;
    var latest = 0;
    function refresh() {
      var lines = allLines();
      var ticket = ++latest;
      fetch("/api/preview", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(previewBody(lines))
      }).then(function (r) { return r.json(); }).then(function (data) {
        if (ticket !== latest) return;
        section.hidden = false;
        renderPreview(body, data, lines);
      }).catch(function () { /* the Preview button still works */ });
    }
    function later() { clearTimeout(timer); timer = setTimeout(refresh, 500); }
    ["topics", "examples", "min_upvotes", "max_papers", "trending_count"].forEach(function (id) {
      var box = document.getElementById(id);
      if (box) box.addEventListener("input", later);
    });
    var trending = document.getElementById("trending");
    if (trending) trending.addEventListener("change", later);
    refresh();
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
    trendingFollowsTopics();
    livePreview();
  });
})();
