// Chat: conversations (kept in this browser), each with its model and LocalDocs collections;
// replies stream in as Markdown with a stop button, and each answer lists its references.
import { useEffect, useRef, useState } from "preact/hooks";

import { listCollections, listModels, streamChat } from "./api.js";
import { renderMarkdown } from "./markdown.js";

const STORAGE = "llmserver.conversations";

function newConversation(model) {
  return {
    id: crypto.randomUUID(),
    title: "New chat",
    model,
    collections: [],
    messages: [],
  };
}

function loadConversations() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE) || "[]");
    if (!Array.isArray(stored)) return [];
    // A reply that was streaming when the page closed is over: it stays as far as it got.
    return stored.map((c) => ({
      ...c,
      messages: c.messages.map((m) => (m.pending ? { ...m, pending: false, finish: "stopped" } : m)),
    }));
  } catch {
    return [];
  }
}

function References({ references }) {
  return (
    <div class="references" data-testid="references">
      <div class="references-title">Sources</div>
      <ol>
        {references.map((ref, index) => (
          <li key={index} data-testid="reference">
            <div class="reference-head">
              <span class="reference-file" title={ref.path}>
                {ref.file || ref.path}
              </span>
              {ref.page != null && (
                <span class="reference-page" data-testid="reference-page">
                  page {ref.page}
                </span>
              )}
              {ref.title && <span class="reference-title">{ref.title}</span>}
              <span class="reference-collection">{ref.collection}</span>
            </div>
            <blockquote class="reference-snippet">{ref.text}</blockquote>
          </li>
        ))}
      </ol>
    </div>
  );
}

function Message({ message }) {
  if (message.role === "user") {
    return (
      <div class="message user" data-testid="message-user">
        {message.content}
      </div>
    );
  }
  return (
    <div class="message assistant" data-testid="message-assistant">
      <div
        class="markdown"
        data-testid="answer"
        // Sanitized by DOMPurify in renderMarkdown.
        dangerouslySetInnerHTML={{ __html: renderMarkdown(message.content) }}
      />
      {message.pending && !message.content && <span class="typing">…</span>}
      {message.finish && message.finish !== "stop" && (
        <div class="finish">
          {{ length: "stopped at the token limit", stopped: "stopped by you" }[message.finish] ||
            message.finish}
        </div>
      )}
      {message.error && <div class="error">{message.error}</div>}
      {message.references && message.references.length > 0 && (
        <References references={message.references} />
      )}
    </div>
  );
}

export function ChatView({ active }) {
  const [models, setModels] = useState([]);
  const [collections, setCollections] = useState([]);
  const [conversations, setConversations] = useState(loadConversations);
  const [currentId, setCurrentId] = useState(null);
  const [draft, setDraft] = useState("");
  const [streaming, setStreaming] = useState(false);
  const [error, setError] = useState(null);
  const abort = useRef(null);
  const bottom = useRef(null);

  useEffect(() => {
    listModels()
      .then((body) => setModels(body.data.filter((m) => (m.kind || "chat") === "chat")))
      .catch((e) => setError(e.message));
  }, []);
  // The collection picker follows what exists (re-read whenever this view is shown).
  useEffect(() => {
    if (!active) return;
    listCollections()
      .then((body) => setCollections(body.data))
      .catch((e) => setError(e.message));
  }, [active]);
  useEffect(() => {
    localStorage.setItem(STORAGE, JSON.stringify(conversations));
  }, [conversations]);

  const defaultModel = models.length ? models[0].id : "";
  const current =
    conversations.find((c) => c.id === currentId) || conversations[0] || null;
  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [current?.messages]);

  const update = (id, change) =>
    setConversations((all) => all.map((c) => (c.id === id ? { ...c, ...change(c) } : c)));
  const updateLast = (id, change) =>
    update(id, (c) => {
      const messages = c.messages.slice();
      messages[messages.length - 1] = { ...messages[messages.length - 1], ...change(messages.at(-1)) };
      return { messages };
    });

  const startNew = () => {
    const conversation = newConversation(defaultModel);
    setConversations((all) => [conversation, ...all]);
    setCurrentId(conversation.id);
  };

  const send = async (event) => {
    event.preventDefault();
    const text = draft.trim();
    if (!text || streaming) return;
    let conversation = current;
    if (!conversation) {
      conversation = newConversation(defaultModel);
      setConversations((all) => [conversation, ...all]);
      setCurrentId(conversation.id);
    }
    const id = conversation.id;
    const history = [...conversation.messages, { role: "user", content: text }];
    const model = conversation.model || defaultModel;
    setConversations((all) => {
      const exists = all.some((c) => c.id === id);
      const base = exists ? all : [conversation, ...all];
      return base.map((c) =>
        c.id === id
          ? {
              ...c,
              model,
              title: c.messages.length ? c.title : text.slice(0, 40),
              messages: [...history, { role: "assistant", content: "", pending: true }],
            }
          : c,
      );
    });
    setDraft("");
    setError(null);
    setStreaming(true);
    const controller = new AbortController();
    abort.current = controller;
    try {
      const finish = await streamChat(
        {
          model: model || undefined,
          // Replies that were stopped or failed before their first token are left out.
          messages: history
            .filter((m) => m.role === "user" || m.content)
            .map(({ role, content }) => ({ role, content })),
          // Only this conversation's collections; none picked turns retrieval off.
          localdocs: conversation.collections.length
            ? { collections: conversation.collections }
            : false,
        },
        {
          signal: controller.signal,
          onDelta: (piece) => updateLast(id, (m) => ({ content: m.content + piece })),
          onReferences: (references) => updateLast(id, () => ({ references })),
        },
      );
      updateLast(id, () => ({ pending: false, finish }));
    } catch (e) {
      updateLast(id, () => ({ pending: false, error: e.message }));
    } finally {
      abort.current = null;
      setStreaming(false);
    }
  };

  const toggleCollection = (name) =>
    current &&
    update(current.id, (c) => ({
      collections: c.collections.includes(name)
        ? c.collections.filter((n) => n !== name)
        : [...c.collections, name],
    }));

  return (
    <div class="chat">
      <aside class="conversations">
        <button onClick={startNew} data-testid="new-chat">
          + New chat
        </button>
        <ul>
          {conversations.map((c) => (
            <li key={c.id}>
              <button
                class={current && c.id === current.id ? "conversation active" : "conversation"}
                onClick={() => setCurrentId(c.id)}
              >
                {c.title}
              </button>
            </li>
          ))}
        </ul>
      </aside>
      <div class="conversation-pane">
        <div class="toolbar">
          <label>
            Model{" "}
            <select
              data-testid="model-select"
              value={current?.model || defaultModel}
              disabled={!current}
              onChange={(e) => current && update(current.id, () => ({ model: e.currentTarget.value }))}
            >
              {models.map((m) => (
                <option key={m.id} value={m.id}>
                  {m.id}
                </option>
              ))}
            </select>
          </label>
          <fieldset class="picker" data-testid="collection-picker">
            <legend>LocalDocs</legend>
            {collections.length === 0 && <span class="muted">no collections</span>}
            {collections.map((c) => (
              <label key={c.name}>
                <input
                  type="checkbox"
                  disabled={!current}
                  checked={!!current && current.collections.includes(c.name)}
                  onChange={() => toggleCollection(c.name)}
                  data-testid={`pick-${c.name}`}
                />{" "}
                {c.name}
              </label>
            ))}
          </fieldset>
        </div>
        {error && <div class="error banner">{error}</div>}
        <div class="messages" data-testid="messages">
          {!current && <p class="muted">Start a new chat, or just type below.</p>}
          {current?.messages.map((m, index) => <Message key={index} message={m} />)}
          <div ref={bottom} />
        </div>
        <form class="composer" onSubmit={send}>
          <textarea
            data-testid="prompt"
            rows={2}
            placeholder="Send a message (Enter sends, Shift+Enter for a new line)"
            value={draft}
            onInput={(e) => setDraft(e.currentTarget.value)}
            onKeyDown={(e) => {
              if (e.key === "Enter" && !e.shiftKey) send(e);
            }}
          />
          {streaming ? (
            <button type="button" class="stop" onClick={() => abort.current?.abort()} data-testid="stop">
              Stop
            </button>
          ) : (
            <button type="submit" data-testid="send" disabled={!draft.trim()}>
              Send
            </button>
          )}
        </form>
      </div>
    </div>
  );
}
