import path from 'node:path';
import type { TextItem } from 'pdfjs-dist/types/src/display/api';

// A PDF is read back with Mozilla's pdf.js (an independent parser), page by page, as a reader would see it.

type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');
let pdfjs: PdfJs | undefined;
const STANDARD_FONTS = `${path.join(path.dirname(require.resolve('pdfjs-dist/package.json')), 'standard_fonts')}/`;

export interface ReadPdf {
  pages: string[];
  info: Record<string, unknown>;
  metadata: string;
}

export async function readPdf(buf: Buffer): Promise<ReadPdf> {
  pdfjs ??= await import('pdfjs-dist/legacy/build/pdf.mjs');
  const task = pdfjs.getDocument({ data: new Uint8Array(buf), standardFontDataUrl: STANDARD_FONTS, verbosity: 0 });
  const doc = await task.promise;
  try {
    const pages: string[] = [];
    for (let i = 1; i <= doc.numPages; i++) {
      const page = await doc.getPage(i);
      const content = await page.getTextContent();
      const text = content.items
        .filter((it): it is TextItem => 'str' in it)
        .map((it) => it.str + (it.hasEOL ? '\n' : ''))
        .join('');
      pages.push(text);
    }
    const meta = await doc.getMetadata();
    return { pages, info: meta.info as Record<string, unknown>, metadata: meta.metadata ? JSON.stringify([...meta.metadata]) : '' };
  } finally {
    await task.destroy();
  }
}

/** Whitespace-insensitive: wrapping turns spaces into line ends. */
export const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();
export const containsText = (haystack: string, needle: string): boolean => squash(haystack).includes(squash(needle));
