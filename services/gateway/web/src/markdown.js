// Model output as Markdown, sanitized: a reply (or a document snippet echoed in it) can hold
// HTML, and none of it may run in the page.
import DOMPurify from "dompurify";
import { marked } from "marked";

marked.setOptions({ gfm: true, breaks: true });

export function renderMarkdown(text) {
  return DOMPurify.sanitize(marked.parse(text || ""));
}
