/** Charts for the activity and outcome reports: plain SVG written by hand, no dependency. */

export interface BarSegment {
  label: string;
  value: number;
}

export interface BarGroup {
  label: string;
  segments: BarSegment[];
}

export interface BarChart {
  title: string;
  /** Shown after each bar's total, e.g. '%'. */
  unit?: string;
  groups: BarGroup[];
}

/** A palette that stays distinguishable for the common kinds of colour blindness (Okabe and Ito). */
const COLOURS = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000', '#999999', '#7F3C8D'];

export const xmlText = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const round = (n: number): string => String(Math.round(n * 10) / 10);

/** "month, type: 12" for a segment of a stack; "Met PPD1: 67.8%" for a bar of one segment named as it is. */
const segmentText = (g: BarGroup, s: BarSegment, unit: string): string => `${s.label === g.label ? g.label : `${g.label}, ${s.label}`}: ${round(s.value)}${unit}`;

/**
 * A bar per group, stacked by segment, with each bar's total written above it and a legend of the segments;
 * a table-reader's `<title>` and `<desc>` say what it shows.
 */
export function barChartSvg(chart: BarChart): string {
  const legend = [...new Set(chart.groups.flatMap((g) => g.segments.map((s) => s.label)))];
  const colour = (label: string) => COLOURS[legend.indexOf(label) % COLOURS.length]!;
  const barWidth = 40;
  const gap = 24;
  const left = 56;
  const top = 48;
  const plotHeight = 240;
  const width = Math.max(480, left + chart.groups.length * (barWidth + gap) + gap + 180);
  const height = top + plotHeight + 64;
  const max = Math.max(1, ...chart.groups.map((g) => g.segments.reduce((t, s) => t + s.value, 0)));
  const scale = plotHeight / max;
  const unit = chart.unit ?? '';
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="sans-serif" font-size="12">`,
    `<title>${xmlText(chart.title)}</title>`,
    `<desc>${xmlText(chart.groups.flatMap((g) => g.segments.map((s) => segmentText(g, s, unit))).join('; '))}</desc>`,
    `<text x="${left}" y="24" font-size="16" font-weight="bold">${xmlText(chart.title)}</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + chart.groups.length * (barWidth + gap) + gap}" y2="${top + plotHeight}" stroke="#333"/>`,
    `<text x="${left - 8}" y="${top + plotHeight}" text-anchor="end">0</text>`,
    `<text x="${left - 8}" y="${top + 4}" text-anchor="end">${round(max)}${xmlText(unit)}</text>`,
  ];
  chart.groups.forEach((g, i) => {
    const x = left + gap + i * (barWidth + gap);
    let y = top + plotHeight;
    for (const s of g.segments) {
      const h = s.value * scale;
      y -= h;
      parts.push(`<rect x="${x}" y="${round(y)}" width="${barWidth}" height="${round(h)}" fill="${colour(s.label)}"><title>${xmlText(segmentText(g, s, unit))}</title></rect>`);
    }
    const total = g.segments.reduce((t, s) => t + s.value, 0);
    parts.push(`<text x="${x + barWidth / 2}" y="${round(y - 4)}" text-anchor="middle">${round(total)}${xmlText(unit)}</text>`);
    parts.push(`<text x="${x + barWidth / 2}" y="${top + plotHeight + 16}" text-anchor="middle">${xmlText(g.label)}</text>`);
  });
  const legendX = width - 170;
  legend.forEach((label, i) => {
    const y = top + i * 18;
    parts.push(`<rect x="${legendX}" y="${y}" width="12" height="12" fill="${colour(label)}"/>`);
    parts.push(`<text x="${legendX + 18}" y="${y + 10}">${xmlText(label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
