// Live updates: the server pushes each section's HTML (rendered by the page's own templates,
// escaped there) whenever a cycle or a delivery changed something; this only swaps them in.
(function () {
  "use strict";
  if (!window.EventSource) return;
  var live = document.getElementById("live");
  var source = new EventSource("/console/events");
  source.addEventListener("sections", function (event) {
    var sections = JSON.parse(event.data);
    Object.keys(sections).forEach(function (id) {
      var target = document.getElementById(id);
      if (target && target.innerHTML !== sections[id]) target.innerHTML = sections[id];
    });
    live.hidden = false;
    live.textContent = "live";
    live.className = "live";
  });
  source.onerror = function () {
    live.hidden = false;
    live.textContent = "reconnecting…";
    live.className = "live off";
  };
})();
