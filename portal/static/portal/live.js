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
  showLastLines();
  tick();
  if (showCause(false)) return;
  if (following()) log.scrollTop = log.scrollHeight;
});

// "Follow the log": on, new lines scroll the log to its end; scrolling up turns it off and
// scrolling back to the end turns it on again.
function following() {
  const box = document.getElementById("follow-log");
  return !box || box.checked;
}
let autoScrolling = false;
document.addEventListener("scroll", (event) => {
  const log = document.getElementById("log");
  const box = document.getElementById("follow-log");
  if (event.target !== log || !box || autoScrolling) return;
  box.checked = log.scrollHeight - log.scrollTop - log.clientHeight < 8;
}, true);
document.addEventListener("change", (event) => {
  const log = document.getElementById("log");
  if (event.target instanceof Element && event.target.id === "follow-log" && event.target.checked && log) {
    log.scrollTop = log.scrollHeight;
  }
});

// Each running platform's card shows its latest log line: work goes on even in a long step.
function showLastLines() {
  const lines = document.querySelectorAll("#log .line[data-log-platform]");
  const seen = new Set();
  for (let i = lines.length - 1; i >= 0 && seen.size < 16; i--) {
    const platform = lines[i].dataset.logPlatform;
    if (seen.has(platform)) continue;
    seen.add(platform);
    const card = document.querySelector(`.card[data-platform="${CSS.escape(platform)}"] .last-line`);
    if (card) card.textContent = lines[i].textContent.replace(/^\[[^\]]*\]\s*/, "");
  }
}

// Elapsed times tick in the page (no request): <time class="elapsed" data-since="ISO">, and
// the expected remaining time from the plan's history.
function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time.elapsed[data-since]")) {
    el.textContent = duration((now - Date.parse(el.dataset.since)) / 1000);
  }
  const left = document.getElementById("build-remaining");
  if (left) {
    const rest = Number(left.dataset.expected) - (now - Date.parse(left.dataset.since)) / 1000;
    left.textContent = rest > 0 ? `about ${duration(rest)} left` : "taking longer than usual";
  }
}
setInterval(tick, 1000);

document.addEventListener("DOMContentLoaded", () => {
  showLastLines();
  tick();
  const log = document.getElementById("log");
  if (!showCause(false) && log && following()) {
    autoScrolling = true;
    log.scrollTop = log.scrollHeight;
    setTimeout(() => { autoScrolling = false; }, 50);
  }
});

// "in the log" next to the headline: scroll the log to the line again.
document.addEventListener("click", (event) => {
  const link = event.target instanceof Element && event.target.closest("[data-goto-line]");
  if (!link) return;
  event.preventDefault();
  showCause(true);
  document.getElementById("log")?.scrollIntoView({ block: "nearest" });
});
