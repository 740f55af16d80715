// Live build page helpers (the htmx ws extension does the swapping).
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
  // Follow the log while the reader is at its end.
  if (log.scrollHeight - log.scrollTop - log.clientHeight < 120) log.scrollTop = log.scrollHeight;
});
