// Page behaviour that would otherwise be inline (the Content-Security-Policy refuses inline
// scripts and on* attributes).

// <select data-autosubmit> sends its form when changed (a member's role on the team page).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLElement && field.matches("[data-autosubmit]") && field.form) {
    field.form.requestSubmit();
  }
});

// <button data-copy="#id"> copies the text of the element it names (docker pull lines).
document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element && event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  const text = source.textContent.trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // No clipboard (plain http off localhost): select the text for the user to copy.
    const range = document.createRange();
    range.selectNodeContents(source);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    button.textContent = "Press Ctrl+C";
    return;
  }
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});

// A destructive button asks first: <button data-confirm="Revoke the token ci?">. Cancelling
// the dialog sends nothing. (htmx buttons use hx-confirm, which htmx asks itself.)
document.addEventListener("submit", (event) => {
  const question = event.submitter?.dataset.confirm || event.target.dataset?.confirm;
  if (question && !confirm(question)) event.preventDefault();
});
