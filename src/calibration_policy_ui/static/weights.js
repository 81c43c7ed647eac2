/* Scoring weights tab: show the running sum of the four weights while they are typed.
   Forms marked data-cp-weights work without this; the server checks range and sum either way. */
(function () {
  "use strict";
  function update(form) {
    var out = form.querySelector("[data-cp-weights-sum]");
    var hint = form.querySelector("[data-cp-weights-hint]");
    if (!out || !hint) return;
    var inputs = form.querySelectorAll("input[data-cp-weight]");
    var sum = 0, complete = true;
    for (var i = 0; i < inputs.length; i++) {
      var value = parseFloat(inputs[i].value);
      if (isNaN(value)) { complete = false; } else { sum += value; }
    }
    var good = complete && Math.abs(sum - 1) <= 1e-9;
    out.textContent = complete ? sum.toFixed(4) : "–";
    hint.textContent = good ? "(adds up to 1)" : "(must add up to exactly 1)";
    hint.className = good ? "" : "cp-needs";
  }
  document.addEventListener("input", function (event) {
    var form = event.target.form;
    if (form && form.hasAttribute("data-cp-weights")) update(form);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var forms = document.querySelectorAll("form[data-cp-weights]");
    for (var i = 0; i < forms.length; i++) update(forms[i]);
  });
})();
