// The slip's "Imprimer" button: hidden in the page as sent (without this script it
// could do nothing), shown here and wired to the browser's print dialog.
for (const button of document.querySelectorAll('button[data-print]')) {
  button.hidden = false;
  button.addEventListener('click', () => window.print());
}
