// Periodic dashboard: keep the live parts of the page fresh. Everything works without this
// script (buttons are forms that POST and redirect back); it only saves pressing reload.
(function () {
  "use strict";

  var INTERVAL_MS = 4000;
  var timer = null;
  var enabled = true;
  var busy = false;

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live][id]"));
  }

  function interacting(region) {
    // Never swap markup out from under a focused control or an open pointer press.
    var active = document.activeElement;
    return active && active !== document.body && region.contains(active);
  }

  function setStatus(text) {
    var updated = document.querySelector("[data-updated]");
    if (updated) updated.textContent = text;
  }

  function refresh() {
    if (!enabled || busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, {
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" },
      redirect: "follow",
      cache: "no-store",
    })
      .then(function (response) {
        if (response.redirected && /\/login/.test(response.url)) {
          stop("Signed out: reload the page to sign in again");
          return null;
        }
        if (!response.ok) {
          setStatus("Refresh failed (" + response.status + "); retrying");
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        regions().forEach(function (region) {
          var replacement = fresh.getElementById(region.id);
          if (replacement && !interacting(region) && replacement.innerHTML !== region.innerHTML) {
            region.innerHTML = replacement.innerHTML;
          }
        });
        var stamp = fresh.querySelector("[data-updated]");
        if (stamp) setStatus(stamp.textContent);
      })
      .catch(function () {
        setStatus("Cannot reach the server; retrying");
      })
      .finally(function () {
        busy = false;
      });
  }

  function stop(message) {
    enabled = false;
    if (timer) window.clearInterval(timer);
    timer = null;
    if (message) setStatus(message);
  }

  function start() {
    enabled = true;
    if (!timer) timer = window.setInterval(refresh, INTERVAL_MS);
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!regions().length) return;
    var toggle = document.querySelector("[data-refresh-toggle]");
    if (toggle) {
      toggle.hidden = false;
      toggle.addEventListener("click", function () {
        var on = toggle.getAttribute("aria-pressed") !== "true";
        toggle.setAttribute("aria-pressed", on ? "true" : "false");
        toggle.textContent = on ? "Auto-refresh on" : "Auto-refresh off";
        if (on) {
          start();
          refresh();
        } else {
          stop();
        }
      });
    }
    start();
  });
})();

// The entry form's live preview: as the schedule fields change, ask the server for the schedule
// in words and its next fire times (the same answer the Preview button renders without script).
(function () {
  "use strict";

  var DELAY_MS = 300;

  function render(region, body) {
    var words = region.querySelector("[data-preview-words]");
    var times = region.querySelector("[data-preview-times]");
    if (!words || !times) return;
    times.textContent = "";
    if (body.words) {
      words.textContent = body.words + " (" + body.zone + ")";
      body.times.forEach(function (time) {
        var item = document.createElement("li");
        item.textContent = time.local + " ";
        var utc = document.createElement("span");
        utc.className = "muted";
        utc.textContent = time.utc;
        item.appendChild(utc);
        times.appendChild(item);
      });
    } else {
      var problems = Object.keys(body.problems || {}).map(function (field) {
        return (field || "form") + ": " + body.problems[field].join("; ");
      });
      words.textContent = problems.length ? problems.join(" · ") : "Fill in a schedule to preview it.";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-preview-url]");
    var region = document.querySelector("[data-preview]");
    if (!form || !region) return;
    var timer = null;
    var latest = 0;

    function update() {
      var data = new FormData(form);
      data.delete("csrf_token");
      var query = new URLSearchParams(data).toString();
      var ticket = ++latest;
      fetch(form.getAttribute("data-preview-url") + "?" + query, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        cache: "no-store",
      })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (body) {
          if (body && ticket === latest) render(region, body);
        })
        .catch(function () {});
    }

    function schedule() {
      if (timer) window.clearTimeout(timer);
      timer = window.setTimeout(update, DELAY_MS);
    }

    form.addEventListener("input", schedule);
    form.addEventListener("change", schedule);
  });
})();
