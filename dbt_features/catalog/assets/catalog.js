// The feature catalog's behaviour: search as you type (index page), copy buttons, and the
// online store's live status when a page comes from `dbt-features serve`. Pages read fine
// without it: this only adds to what the HTML already shows.
(function () {
  "use strict";
  var root = document.body.getAttribute("data-root") || "";
  var LIMIT = 100;

  function copyButtons() {
    document.querySelectorAll("button.copy").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var text = document.getElementById(button.getAttribute("data-copy")).textContent;
        var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 1500); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
        } else { fallbackCopy(text); done(); }
      });
    });
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "absolute"; area.style.left = "-9999px";
    document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selectable in the page */ }
    document.body.removeChild(area);
  }

  function liveStatus() {
    var boxes = document.querySelectorAll("[data-online-view]");
    if (!boxes.length || !/^https?:$/.test(location.protocol) || !window.fetch) { return; }
    fetch(root + "catalog/status.json", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data || !data.views) { return; }
        boxes.forEach(function (box) {
          var html = data.views[box.getAttribute("data-online-view")];
          if (html !== undefined) { box.innerHTML = html; box.setAttribute("data-live", "true"); }
        });
      })
      .catch(function () { /* the status made with the catalog stays */ });
  }

  function search() {
    var input = document.getElementById("q");
    var data = window.CATALOG_INDEX;
    if (!input || !data) { return; }
    var f = {}; data.fields.forEach(function (name, i) { f[name] = i; });
    var items = data.records.map(function (r) {
      var tags = r[f.tags];
      return { r: r, name: r[f.name].toLowerCase(), view: r[f.view].toLowerCase(),
               hay: [r[f.name], r[f.view], r[f.entity], r[f.owner], tags.join(" "), r[f.type], r[f.description]].join(" ").toLowerCase() };
    });
    var results = document.getElementById("results");
    var count = document.getElementById("count");
    var table = document.getElementById("all-views");
    var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));

    function score(item, words) {
      var s = 0;
      for (var i = 0; i < words.length; i++) {
        var w = words[i];
        if (item.hay.indexOf(w) < 0) { return -1; }
        if (item.name === w) { s += 100; } else if (item.name.indexOf(w) === 0) { s += 50; }
        else if (item.name.indexOf(w) >= 0) { s += 20; } else if (item.view.indexOf(w) >= 0) { s += 10; }
      }
      return s + (item.r[f.kind] === "view" ? 1 : 0);
    }

    function passes(item, filters) {
      var r = item.r;
      if (filters.entity && r[f.entity] !== filters.entity) { return false; }
      if (filters.owner && r[f.owner] !== filters.owner) { return false; }
      if (filters.tag && r[f.tags].indexOf(filters.tag) < 0) { return false; }
      if (filters.online && (r[f.online] ? "online" : "offline") !== filters.online) { return false; }
      return true;
    }

    function entry(r) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = root + r[f.url];
      var name = document.createElement("span"); name.className = "name";
      name.textContent = r[f.kind] === "view" ? r[f.name] : r[f.view] + ":" + r[f.name];
      var meta = document.createElement("span"); meta.className = "meta";
      meta.textContent = " " + (r[f.kind] === "view" ? "feature view" : "feature") + " · " + r[f.entity] +
        " · " + r[f.type] + " · " + (r[f.online] ? "online" : "offline") + (r[f.owner] ? " · " + r[f.owner] : "");
      var desc = document.createElement("span"); desc.className = "desc"; desc.textContent = r[f.description];
      a.appendChild(name); a.appendChild(meta); a.appendChild(desc); li.appendChild(a);
      return li;
    }

    function run() {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var filters = {}; var any = words.length > 0;
      selects.forEach(function (s) { filters[s.getAttribute("data-filter")] = s.value; if (s.value) { any = true; } });
      results.textContent = "";
      if (!any) { results.hidden = true; if (table) { table.hidden = false; } count.textContent = ""; return; }
      var found = [];
      for (var i = 0; i < items.length; i++) {
        if (!passes(items[i], filters)) { continue; }
        var s = score(items[i], words);
        if (s >= 0) { found.push({ s: s, item: items[i] }); }
      }
      found.sort(function (a, b) { return b.s - a.s || (a.item.name < b.item.name ? -1 : a.item.name > b.item.name ? 1 : 0); });
      var shown = found.slice(0, LIMIT);
      var fragment = document.createDocumentFragment();
      shown.forEach(function (x) { fragment.appendChild(entry(x.item.r)); });
      results.appendChild(fragment);
      results.hidden = false; if (table) { table.hidden = true; }
      count.textContent = found.length === 0 ? "No match." :
        found.length + (found.length === 1 ? " result" : " results") + (found.length > LIMIT ? " (first " + LIMIT + " shown)" : "") +
        ": arrow keys to move, Enter to open.";
    }

    function links() { return Array.prototype.slice.call(results.querySelectorAll("a")); }

    function move(step) {
      var all = links(); if (!all.length) { return; }
      var at = all.indexOf(document.activeElement);
      var next = at + step;
      if (next < 0) { input.focus(); return; }
      all[Math.min(next, all.length - 1)].focus();
    }

    input.addEventListener("input", run);
    selects.forEach(function (s) { s.addEventListener("change", run); });
    document.addEventListener("keydown", function (e) {
      var inField = e.target === input || links().indexOf(e.target) >= 0;
      if (e.key === "ArrowDown" && inField) { e.preventDefault(); move(1); }
      else if (e.key === "ArrowUp" && inField) { e.preventDefault(); move(-1); }
      else if (e.key === "Escape" && inField) { input.value = ""; input.focus(); run(); }
      else if (e.key === "/" && !/^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) { e.preventDefault(); input.focus(); }
    });
    var q = new URLSearchParams(location.search).get("q");
    if (q) { input.value = q; }
    run();
    input.focus();
  }

  document.addEventListener("DOMContentLoaded", function () { copyButtons(); liveStatus(); search(); });
})();
