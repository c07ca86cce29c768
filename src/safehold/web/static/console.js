// Safehold console: keyboard shortcuts. Everything here is a shortcut for a link, button or form that works
// without JavaScript. Decision keys only select a choice; submitting stays a deliberate Enter or click.
//
// Queue: the first (most urgent) case is selected when the page loads; j / k move the selection, Enter or o
// opens the selected case, c claims it and opens it (the claim's answer is the case page).
// Case page: c claims, r reveals, 1-4 / n / e choose a decision and focus "Record decision", Enter records.
(function () {
  "use strict";

  var TEXT_TYPES = ["text", "password", "number", "url", "search", "email", "tel"];

  function typing(el) {
    if (!el) return false;
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && TEXT_TYPES.indexOf(el.type) !== -1;
  }

  // Enter on a focused link, button or field keeps its own meaning; only Enter on the page itself opens a case.
  function control(el) {
    return Boolean(el && el.closest && el.closest("a[href], button, input, select, textarea, summary"));
  }

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
  }

  var current = -1;

  // The selected row is marked with aria-current (what assistive technology announces and the stylesheet
  // highlights), never only with a colour.
  function mark(index) {
    var all = rows();
    if (!all.length) return null;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach(function (row, i) {
      if (i === current) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    return all[current];
  }

  function select(index) {
    var row = mark(index);
    if (!row) return;
    var link = row.querySelector("a[data-open]");
    if (link) link.focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function click(selector) {
    var el = document.querySelector(selector);
    if (el) el.click();
    return Boolean(el);
  }

  function open() {
    var row = rows()[current];
    var link = row && row.querySelector("a[data-open]");
    if (link) link.click();
    return Boolean(link);
  }

  // In a queue, a case that cannot be claimed from here (someone holds it, or it is closed) is opened instead:
  // its page says who holds it. On a case page, c is the Claim button.
  function claim() {
    var row = rows()[current];
    if (!row) return click('button[data-key="c"]');
    var form = row.querySelector("form[data-claim]");
    if (!form) return open();
    form.requestSubmit();
    return true;
  }

  function choose(key) {
    var radio = document.querySelector('input[type="radio"][data-key="' + key + '"]');
    if (!radio) return false;
    radio.checked = true;
    var submit = document.querySelector("[data-submit]");
    (submit || radio).focus();
    return true;
  }

  function help() {
    var dialog = document.getElementById("help");
    if (dialog && !dialog.open) dialog.showModal();
    return Boolean(dialog);
  }

  var KEYS = {
    "?": help,
    j: function () { select(current + 1); return true; },
    k: function () { select(current - 1); return true; },
    o: open,
    c: claim,
    r: function () { return click("form[data-reveal] button"); },
  };

  mark(0);

  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest("tr[data-row]");
    if (row) mark(rows().indexOf(row));
    if (event.target.matches && event.target.matches("input[data-select]")) event.target.select();
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var key = event.key;
    var action = KEYS[key];
    if (!action && key === "Enter" && !control(event.target)) action = open;
    if (!action && ["1", "2", "3", "4", "n", "e"].indexOf(key) !== -1) action = function () { return choose(key); };
    if (action && action()) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("[data-help]")) help();
  });
})();
