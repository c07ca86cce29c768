// Safehold console: keyboard shortcuts. Everything here is a shortcut for a link, button or form that works
// without JavaScript. Decision keys only select a choice; submitting stays a deliberate Enter or click.
(function () {
  "use strict";

  var TEXT_TYPES = ["text", "password", "number", "url", "search", "email", "tel"];

  function typing(el) {
    if (!el) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && TEXT_TYPES.indexOf(el.type) !== -1;
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
  }

  var current = -1;

  function select(index) {
    var all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (row, i) { row.classList.toggle("selected", i === current); });
    var link = all[current].querySelector("a[data-open]");
    if (link) link.focus();
    all[current].scrollIntoView({ block: "nearest" });
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) el.click();
    return Boolean(el);
  }

  function choose(key) {
    var radio = document.querySelector('input[type="radio"][data-key="' + key + '"]');
    if (!radio) return;
    radio.checked = true;
    var submit = document.querySelector("[data-submit]");
    (submit || radio).focus();
  }

  function help() {
    var dialog = document.getElementById("help");
    if (dialog && !dialog.open) dialog.showModal();
  }

  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-row]");
    if (row) {
      current = rows().indexOf(row);
      rows().forEach(function (r) { r.classList.toggle("selected", r === row); });
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var key = event.key;
    if (key === "?") { help(); event.preventDefault(); return; }
    if (key === "j") { select(current + 1); event.preventDefault(); return; }
    if (key === "k") { select(current - 1); event.preventDefault(); return; }
    if (key === "c") {
      var row = rows()[current];
      var form = row && row.querySelector("form[data-claim]");
      if (form) { form.requestSubmit(); } else { click('button[data-key="c"]'); }
      event.preventDefault();
      return;
    }
    if (key === "r") { if (click("form[data-reveal] button")) event.preventDefault(); return; }
    if (["1", "2", "3", "4", "n", "e"].indexOf(key) !== -1) { choose(key); event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-help]")) help();
  });

  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("input[data-select]")) event.target.select();
  });
})();
