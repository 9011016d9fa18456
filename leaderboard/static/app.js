// SpaRED Bench leaderboard: sortable tables and auto-submitting filters. No dependencies.
"use strict";

function cellValue(row, index, numeric) {
  const cell = row.children[index];
  if (!cell) return numeric ? NaN : "";
  const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent.trim();
  if (!numeric) return raw.toLowerCase();
  const number = parseFloat(raw);
  return Number.isNaN(number) ? NaN : number;
}

function sortTable(table, header) {
  const headers = Array.from(header.parentElement.children);
  const index = headers.indexOf(header);
  const numeric = header.dataset.sort === "num";
  const ascending = !header.classList.contains("sorted-asc");
  headers.forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
  header.classList.add(ascending ? "sorted-asc" : "sorted-desc");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).filter((r) => !r.classList.contains("log"));
  rows.sort((a, b) => {
    const x = cellValue(a, index, numeric);
    const y = cellValue(b, index, numeric);
    if (numeric) {
      // Missing values go last whichever way the column is sorted.
      if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : 1;
      if (Number.isNaN(y)) return -1;
      return ascending ? x - y : y - x;
    }
    return ascending ? x.localeCompare(y) : y.localeCompare(x);
  });
  rows.forEach((r) => body.appendChild(r));
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("th[data-sort]").forEach((header) => {
      header.setAttribute("tabindex", "0");
      header.addEventListener("click", () => sortTable(table, header));
      header.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortTable(table, header); }
      });
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((select) => {
    select.addEventListener("change", () => {
      const form = select.form;
      // Drop empty filters so that links stay short and shareable.
      Array.from(form.elements).forEach((el) => { if (el.name && el.value === "") el.disabled = true; });
      form.submit();
    });
  });
});
