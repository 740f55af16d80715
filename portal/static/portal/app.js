// Page behaviour that would otherwise be inline (the Content-Security-Policy refuses inline
// scripts and on* attributes).

// <select data-autosubmit> sends its form when changed (a member's role on the team page).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLElement && field.matches("[data-autosubmit]") && field.form) {
    field.form.requestSubmit();
  }
});

// <button data-copy="#id"> copies that element's text (the deploy key on the project page).
document.addEventListener("click", (event) => {
  const button = event.target;
  if (!(button instanceof HTMLElement) || !button.matches("[data-copy]")) {
    return;
  }
  const source = document.querySelector(button.dataset.copy || "");
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => {
      button.textContent = "Copied";
    });
  }
});
