// Live build page helpers (the htmx ws extension does the swapping).

// A failed build names the log line its headline came from (data-reason-line on the status):
// mark that line and scroll the log to it, once per page.
let shownCause = null;
function showCause(force) {
  const status = document.getElementById("build-status");
  const log = document.getElementById("log");
  const seq = status && status.dataset.reasonLine;
  if (!log || !seq) return false;
  const line = log.querySelector(`.line[data-seq="${CSS.escape(seq)}"]`);
  if (!line) return false;
  line.classList.add("cause");
  if (shownCause !== seq || force) {
    shownCause = seq;
    log.scrollTop = Math.max(line.offsetTop - log.offsetTop - log.clientHeight / 3, 0);
  }
  return true;
}

document.addEventListener("htmx:wsAfterMessage", () => {
  const log = document.getElementById("log");
  if (!log) return;
  // The ws extension reconnects to the URL the page was rendered with, so the server may send
  // lines the page already shows again: keep only the first element per sequence number.
  const seen = new Set();
  for (const line of log.querySelectorAll(".line")) {
    if (seen.has(line.dataset.seq)) line.remove();
    else seen.add(line.dataset.seq);
  }
  if (showCause(false)) return;
  // Follow the log while the reader is at its end.
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
});

document.addEventListener("DOMContentLoaded", () => showCause(false));

// "in the log" next to the headline: scroll the log to the line again.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element && event.target.closest("[data-goto-line]");
  if (!link) return;
  event.preventDefault();
  showCause(true);
  document.getElementById("log")?.scrollIntoView({ block: "nearest" });
});
