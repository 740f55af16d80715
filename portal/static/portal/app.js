// Page behaviour that would otherwise be inline (the Content-Security-Policy refuses inline
// scripts and on* attributes).

// <select data-autosubmit> sends its form when changed (a member's role on the team page).
document.addEventListener("change", (event) => {
  const field = event.target;
  if (field instanceof HTMLElement && field.matches("[data-autosubmit]") && field.form) {
    field.form.requestSubmit();
  }
});
