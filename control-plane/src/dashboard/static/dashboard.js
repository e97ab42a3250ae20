// wisp dashboard behaviour: small, no inline handlers (the CSP forbids them), attached by
// data attributes. htmx does the rest.
(function () {
  "use strict";

  // Copy buttons: <button data-copy="id-of-a-pre">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.textContent).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    }, function () { /* clipboard refused: the text stays selectable */ });
  });

  // Upload forms with a progress bar: <form data-upload data-progress="id-of-progress">.
  // XMLHttpRequest reports upload progress (fetch does not); the CSRF token goes in the
  // X-CSRF-Token header like every htmx request.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-upload]");
    if (!form) return;
    event.preventDefault();
    var bar = document.getElementById(form.getAttribute("data-progress"));
    var status = document.getElementById(form.getAttribute("data-status"));
    var token = form.querySelector("input[name=_csrf]");
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    if (token) xhr.setRequestHeader("X-CSRF-Token", token.value);
    xhr.setRequestHeader("Accept", "text/html");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable && bar) { bar.max = e.total; bar.value = e.loaded; }
    });
    xhr.addEventListener("load", function () {
      if (xhr.status >= 200 && xhr.status < 400) {
        var target = xhr.getResponseHeader("X-Wisp-Location");
        if (target) { window.location.assign(target); return; }
      }
      if (status) status.innerHTML = xhr.responseText;
    });
    xhr.addEventListener("error", function () {
      if (status) status.textContent = "The upload failed: the connection was lost.";
    });
    if (status) status.textContent = "Uploading…";
    // The API's multipart upload: the `file` part and a JSON `metadata` part.
    var data = new FormData();
    var file = form.querySelector("input[type=file]");
    if (file && file.files.length) data.append("file", file.files[0]);
    var description = form.querySelector("[name=description]");
    data.append("metadata", JSON.stringify({ description: description ? description.value : "" }));
    xhr.send(data);
  });
})();
