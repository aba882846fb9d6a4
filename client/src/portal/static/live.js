// pocnet portal: the only script. Replaces a live section with the server's fresh,
// server-escaped fragment whenever the alert's status changes (server-sent events).
(function () {
  "use strict";
  var el = document.querySelector("[data-live]");
  if (!el || !window.EventSource) { return; }
  var es = new EventSource(el.getAttribute("data-live"));
  es.addEventListener("status", function (e) { el.innerHTML = e.data; });
})();
