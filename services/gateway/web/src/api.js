// The gateway's API, same origin: the key (when the server has one) is sent as a bearer token,
// exactly as OpenAI clients send it, and every error is the OpenAI envelope's message.
import { createParser } from "eventsource-parser";

const KEY_STORAGE = "llmserver.apiKey";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function getApiKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

function headers(extra) {
  const key = getApiKey();
  return { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...extra };
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      code = body.error.code || null;
    }
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, message, code);
}

// Listeners told about a 401, so the page can ask for the key.
const unauthorizedListeners = new Set();
export function onUnauthorized(listener) {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

async function send(method, path, body, signal) {
  const response = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
    throw error;
  }
  return response;
}

export async function request(method, path, body) {
  const response = await send(method, path, body);
  return response.status === 204 ? null : response.json();
}

export const listModels = () => request("GET", "/v1/models");
export const listCollections = () => request("GET", "/v1/localdocs/collections");
export const createCollection = (name, paths) =>
  request("POST", "/v1/localdocs/collections", { name, paths });
export const collectionFiles = (name) =>
  request("GET", `/v1/localdocs/collections/${encodeURIComponent(name)}/files`);
export const reindexCollection = (name) =>
  request("POST", `/v1/localdocs/collections/${encodeURIComponent(name)}/reindex`);
export const deleteCollection = (name) =>
  request("DELETE", `/v1/localdocs/collections/${encodeURIComponent(name)}`);

/**
 * POST /v1/chat/completions with stream: true. `onDelta(text)` gets each piece of content,
 * `onReferences(list)` the LocalDocs references (the first chunk carries them). Resolves with
 * the finish reason; `signal` aborts (the stop button), which resolves with "stopped".
 */
export async function streamChat(body, { onDelta, onReferences, signal }) {
  let finish = null;
  let streamError = null;
  const parser = createParser({
    onEvent(event) {
      if (event.data === "[DONE]") return;
      const chunk = JSON.parse(event.data);
      if (chunk.error) {
        streamError = new ApiError(500, chunk.error.message, chunk.error.code);
        return;
      }
      const choice = chunk.choices && chunk.choices[0];
      if (!choice) return;
      if (choice.references) onReferences(choice.references);
      if (choice.delta && choice.delta.content) onDelta(choice.delta.content);
      if (choice.finish_reason) finish = choice.finish_reason;
    },
  });
  try {
    const response = await send("POST", "/v1/chat/completions", { ...body, stream: true }, signal);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(value);
    }
  } catch (error) {
    if (error.name === "AbortError") return "stopped";
    throw error;
  }
  if (streamError) throw streamError;
  return finish;
}
