/* Calibration panel: the one enhancement on top of plain HTML forms.
   A form marked data-cp-once cannot be sent twice by a double click; everything works without it. */
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-cp-once")) return;
    if (form.getAttribute("data-cp-sent") === "1") { event.preventDefault(); return; }
    form.setAttribute("data-cp-sent", "1");
    form.setAttribute("aria-busy", "true");
  });
})();
