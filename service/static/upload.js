// kouiki upload page. Every value from the server is written with textContent (never as HTML): file names,
// cell values and messages are hostile input.
"use strict";

(function () {
  const lang = document.body.dataset.lang === "en" ? "en" : "ja";
  const T = JSON.parse(document.getElementById("texts").textContent);
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function pick(obj, base) {
    // message_ja / message_en → the page's language, the other one as a fallback
    return obj[base + "_" + lang] || obj[base + "_ja"] || obj[base + "_en"] || "";
  }

  function showError(error) {
    const box = document.getElementById("error");
    box.replaceChildren();
    box.appendChild(el("strong", T.error_heading));
    box.appendChild(el("p", pick(error, "message"), "error-message"));
    const hint = pick(error, "hint");
    if (hint) box.appendChild(el("p", hint, "error-hint"));
    if (error.code) box.appendChild(el("code", error.code, "error-code"));
    box.hidden = false;
  }

  function clearError() {
    const box = document.getElementById("error");
    box.replaceChildren();
    box.hidden = true;
  }

  async function readError(response) {
    try {
      const body = await response.json();
      if (body && body.error) return body.error;
    } catch (e) { /* not JSON */ }
    return { code: "http-" + response.status, message_ja: T.network_error, message_en: T.network_error };
  }

  // ---------------------------------------------------------------------------------------------- login

  const loginForm = document.getElementById("login-form");
  if (loginForm) {
    loginForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearError();
      const token = document.getElementById("token").value.trim();
      try {
        const response = await fetch("/api/session", {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: token }),
        });
        if (!response.ok) { showError(await readError(response)); return; }
        window.location.reload();
      } catch (e) {
        showError({ message_ja: T.network_error, message_en: T.network_error });
      }
    });
    return;
  }

  // ---------------------------------------------------------------------------------------------- upload

  const fileInput = document.getElementById("file");
  const dropZone = document.getElementById("drop-zone");
  let chosenFile = null;

  function choose(file) {
    chosenFile = file || null;
    document.getElementById("chosen-name").textContent = chosenFile ? chosenFile.name : "";
    document.getElementById("chosen").hidden = !chosenFile;
  }

  dropZone.addEventListener("click", () => fileInput.click());
  dropZone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); fileInput.click(); }
  });
  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  dropZone.addEventListener("dragover", (event) => { event.preventDefault(); dropZone.classList.add("over"); });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("over");
    if (event.dataTransfer && event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
  });

  document.getElementById("logout-button").addEventListener("click", async () => {
    await fetch("/api/session", { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
    window.location.reload();
  });

  document.getElementById("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    if (!chosenFile) { showError({ message_ja: T.choose_file_first, message_en: T.choose_file_first }); return; }
    const form = new FormData();
    form.append("dataset", document.getElementById("dataset").value);
    form.append("file", chosenFile, chosenFile.name);
    const progress = document.getElementById("progress");
    const button = document.getElementById("upload-button");
    progress.hidden = false;
    button.disabled = true;
    document.getElementById("result").hidden = true;
    try {
      const response = await fetch("/api/uploads", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }, body: form,
      });
      if (response.ok) showResult(await response.json());
      else showError(await readError(response));
    } catch (e) {
      showError({ message_ja: T.network_error, message_en: T.network_error });
    } finally {
      progress.hidden = true;
      button.disabled = false;
      loadHistory();
    }
  });

  function showResult(doc) {
    const v = doc.validation || {};
    const s = v.summary || {};
    document.getElementById("result-repeat").hidden = doc.is_new !== false;
    document.getElementById("result-upload-id").textContent = doc.upload_id;
    const decision = document.getElementById("decision");
    decision.className = "decision " + (s.decision || "");
    decision.replaceChildren(el("strong", pick(s, "decision")));
    document.getElementById("rows-total").textContent = s.rows_total;
    document.getElementById("rows-accepted").textContent = s.rows_accepted;
    document.getElementById("rows-quarantined").textContent = s.rows_quarantined;
    const problems = document.getElementById("problems");
    problems.replaceChildren();
    if (!(v.problems || []).length) problems.appendChild(el("p", T.no_problems));
    (v.problems || []).forEach((p) => problems.appendChild(problemBlock(p)));
    const notices = document.getElementById("notices");
    notices.replaceChildren();
    (v.notices || []).forEach((n) => notices.appendChild(el("li", pick(n, "message"))));
    document.getElementById("report-link").href = doc.links.report_html;
    document.getElementById("result").hidden = false;
  }

  function problemBlock(p) {
    const block = el("div", null, p.severity === "warning" ? "problem warning" : "problem");
    block.dataset.code = p.error_code;
    block.dataset.column = p.column || "";
    block.appendChild(el("h4", pick(p, "title") + (p.column ? " — " + T.column + "「" + p.column + "」" : "")));
    block.appendChild(el("p", T.count + ": " + p.count));
    const explanation = pick(p, "explanation");
    if (explanation) block.appendChild(el("p", explanation));
    if ((p.lines || []).length) {
      const more = p.lines_total > p.lines.length ? " …(" + p.lines_total + ")" : "";
      block.appendChild(el("p", T.lines + ": " + p.lines.join(", ") + more, "lines"));
    }
    const hint = pick(p, "hint");
    if (hint) block.appendChild(el("p", T.hint + ": " + hint, "hint"));
    if ((p.examples || []).length) {
      const table = el("table", null, "examples");
      const head = el("tr");
      [T.line, T.value, T.message].forEach((h) => head.appendChild(el("th", h)));
      table.appendChild(head);
      p.examples.forEach((x) => {
        const row = el("tr", null, "example");
        row.appendChild(el("td", x.line, "num line"));
        row.appendChild(el("td", x.raw_value === null ? "" : x.raw_value, "cell"));
        row.appendChild(el("td", pick(x, "message")));
        table.appendChild(row);
      });
      block.appendChild(table);
    }
    return block;
  }

  async function loadHistory() {
    const response = await fetch("/api/uploads", { credentials: "same-origin" });
    if (!response.ok) return;
    const uploads = await response.json();
    const body = document.querySelector("#uploads tbody");
    body.replaceChildren();
    uploads.forEach((u) => {
      const row = el("tr");
      row.dataset.uploadId = u.upload_id;
      row.dataset.status = u.status;
      row.appendChild(el("td", new Date(u.received_at).toLocaleString(lang === "en" ? "en-GB" : "ja-JP")));
      row.appendChild(el("td", u.file_name, "cell"));
      row.appendChild(el("td", u.dataset_id || "-"));
      const decision = u.decision ? " / " + T.decision + ": " + (T["decision_" + u.decision] || u.decision) : "";
      // where the upload stands (公開済み（第N版）, 一部保留, 受付不可 ...), else the catalog status
      const standing = u.publication ? pick(u.publication, "label") : (T["status_" + u.status] || u.status);
      row.appendChild(el("td", standing + decision, "status"));
      if (u.publication) row.dataset.publication = u.publication.state;
      row.appendChild(el("td", u.rows_accepted === null || u.rows_accepted === undefined ? "" : u.rows_accepted, "num"));
      row.appendChild(el("td", u.rows_quarantined === null || u.rows_quarantined === undefined ? "" : u.rows_quarantined, "num"));
      const cell = el("td");
      if (u.has_report) {
        const link = el("a", T.open);
        link.href = u.links.report_html;
        link.target = "_blank";
        link.rel = "noopener";
        cell.appendChild(link);
      }
      row.appendChild(cell);
      body.appendChild(row);
    });
    document.getElementById("no-uploads").hidden = uploads.length > 0;
  }

  loadHistory();
})();
