/** CSV as RFC 4180 says (quoted where needed, CRLF), safe to open in a spreadsheet. */

/**
 * One cell. Text that a spreadsheet would take for a formula (starting with = + - @, or a tab or carriage
 * return) is prefixed with an apostrophe, as OWASP advises against CSV injection; numbers are written as they are.
 */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  let text = value instanceof Date ? value.toISOString() : Array.isArray(value) ? value.join(' ') : typeof value === 'string' ? value : JSON.stringify(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvLine = (cells: readonly unknown[]): string => `${cells.map(csvCell).join(',')}\r\n`;

/** A whole table: the header, then a line per row with the header's columns in order. */
export function csvTable<Row extends object>(columns: readonly (keyof Row & string)[], rows: readonly Row[]): string {
  return csvLine(columns) + rows.map((r) => csvLine(columns.map((c) => r[c]))).join('');
}
