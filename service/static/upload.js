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
    if (error.upload_id) {
      // the refusal is kept in the history with its own report page
      const link = el("a", T.report + ": " + T.open);
      link.href = "/uploads/" + encodeURIComponent(error.upload_id) + "/report";
      link.target = "_blank";
      link.rel = "noopener";
      link.appendChild(el("span", " " + T.new_window, "visually-hidden"));
      const p = el("p");
      p.appendChild(link);
      box.appendChild(p);
    }
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
        if (!response.ok) { showError(await readError(response)); document.getElementById("error").focus(); return; }
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
  const status = document.getElementById("status");
  let chosenFile = null;

  function choose(file) {
    chosenFile = file || null;
    document.getElementById("chosen-name").textContent = chosenFile ? chosenFile.name : "";
    document.getElementById("chosen").hidden = !chosenFile;
  }

  // The file input is a native, keyboard-operable control; the zone around it also takes a dropped file.
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

  function refused(error) {
    // the alert box speaks for itself (role=alert) and takes the focus: the status line is cleared so that
    // a screen reader does not read the refusal twice
    status.textContent = "";
    showError(error);
    document.getElementById("error").focus();
  }

  document.getElementById("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    if (!chosenFile) { refused({ message_ja: T.choose_file_first, message_en: T.choose_file_first }); return; }
    const form = new FormData();
    form.append("dataset", document.getElementById("dataset").value);
    form.append("file", chosenFile, chosenFile.name);
    const button = document.getElementById("upload-button");
    status.textContent = T.uploading;
    button.disabled = true;
    document.getElementById("result").hidden = true;
    try {
      const response = await fetch("/api/uploads", {
        method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf }, body: form,
      });
      if (response.ok) showResult(await response.json());
      else refused(await readError(response));
    } catch (e) {
      refused({ message_ja: T.network_error, message_en: T.network_error });
    } finally {
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
    // a refused file with no row-level problem (no rows, a missing column) must not read "no problems"
    if (!(v.problems || []).length) {
      problems.appendChild(el("p", s.decision === "reject" ? T.no_problems_refused : T.no_problems));
    }
    (v.problems || []).forEach((p) => problems.appendChild(problemBlock(p)));
    const notices = document.getElementById("notices");
    notices.replaceChildren();
    (v.notices || []).forEach((n) => notices.appendChild(el("li", pick(n, "message"))));
    document.getElementById("report-link").href = doc.links.report_html;
    document.getElementById("result").hidden = false;
    // announce the outcome in one sentence, and bring the keyboard to the result
    status.textContent = T.announce_done + " " + pick(s, "decision");
    document.getElementById("result-heading").focus();
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
      [T.line, T.value, T.message].forEach((h) => { const th = el("th", h); th.scope = "col"; head.appendChild(th); });
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

  function jst(iso) {
    // catalog times are UTC: shown in Japan time, labelled
    const options = { timeZone: "Asia/Tokyo", year: "numeric", month: "2-digit", day: "2-digit",
                      hour: "2-digit", minute: "2-digit" };
    return new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "ja-JP", options) + " " + T.jst;
  }

  const datasetNames = {};
  document.querySelectorAll("#dataset option").forEach((o) => { if (o.value) datasetNames[o.value] = o.textContent; });

  function field(list, term, value, cls) {
    if (value === null || value === undefined || value === "") return;
    list.appendChild(el("dt", term));
    list.appendChild(el("dd", value, cls));
  }

  function uploadCard(u) {
    const card = el("li", null, "upload-card");
    card.dataset.uploadId = u.upload_id;
    card.dataset.status = u.status;
    if (u.publication) card.dataset.publication = u.publication.state;
    card.appendChild(el("h3", u.file_name, "cell"));
    const list = el("dl");
    field(list, T.received_at, jst(u.received_at));
    field(list, T.dataset, u.dataset_id ? (datasetNames[u.dataset_id] || u.dataset_id) : "-");
    const decision = u.decision ? " / " + T.decision + ": " + (T["decision_" + u.decision] || u.decision) : "";
    // where the upload stands (公開済み（第N版）, 一部保留, 受付不可 ...), else the catalog status
    const standing = u.publication ? pick(u.publication, "label") : (T["status_" + u.status] || u.status);
    field(list, T.status, standing + decision, "status");
    field(list, T.rows_accepted, u.rows_accepted, "num");
    field(list, T.rows_quarantined, u.rows_quarantined, "num");
    card.appendChild(list);
    if (u.error) {
      // a refused upload says why, and how to fix it
      const reason = el("p", null, "reason");
      reason.appendChild(el("strong", T.reason + ": "));
      reason.appendChild(document.createTextNode(pick(u.error, "message")));
      const hint = pick(u.error, "hint");
      if (hint) reason.appendChild(el("span", " " + T.fix + ": " + hint));
      card.appendChild(reason);
    }
    if (u.has_report) {
      const link = el("a", T.report + ": " + T.open);
      link.href = u.links.report_html;
      link.target = "_blank";
      link.rel = "noopener";
      link.appendChild(el("span", " " + u.file_name + " " + T.new_window, "visually-hidden"));
      const p = el("p");
      p.appendChild(link);
      card.appendChild(p);
    }
    return card;
  }

  async function loadHistory() {
    const response = await fetch("/api/uploads", { credentials: "same-origin" });
    if (!response.ok) return;
    const uploads = await response.json();
    document.getElementById("uploads").replaceChildren(...uploads.map(uploadCard));
    document.getElementById("no-uploads").hidden = uploads.length > 0;
  }

  loadHistory();
})();
