// The page: a chat view and a collections view, and the API key when the server wants one.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";

import { getApiKey, onUnauthorized, setApiKey } from "./api.js";
import { ChatView } from "./chat.jsx";
import { CollectionsView } from "./collections.jsx";
import "./style.css";

function ApiKeyForm({ reason, onSaved }) {
  const [key, setKey] = useState(getApiKey());
  const save = (event) => {
    event.preventDefault();
    setApiKey(key.trim());
    onSaved();
  };
  return (
    <form class="api-key" onSubmit={save} data-testid="api-key-form">
      {reason && <span class="error">{reason}</span>}
      <input
        type="password"
        placeholder="API key (GATEWAY_API_KEY)"
        value={key}
        onInput={(event) => setKey(event.currentTarget.value)}
        aria-label="API key"
      />
      <button type="submit">Save key</button>
    </form>
  );
}

function App() {
  const [view, setView] = useState("chat");
  const [keyReason, setKeyReason] = useState(null);
  const [showKey, setShowKey] = useState(false);
  // Bumped when the key changes, so each view loads again with it.
  const [generation, setGeneration] = useState(0);

  useEffect(
    () =>
      onUnauthorized((error) => {
        setKeyReason(error.message);
        setShowKey(true);
      }),
    [],
  );

  return (
    <div class="app">
      <header>
        <strong class="brand">llmserver</strong>
        <nav>
          <button
            class={view === "chat" ? "tab active" : "tab"}
            onClick={() => setView("chat")}
            data-testid="tab-chat"
          >
            Chat
          </button>
          <button
            class={view === "collections" ? "tab active" : "tab"}
            onClick={() => setView("collections")}
            data-testid="tab-collections"
          >
            Collections
          </button>
        </nav>
        <span class="spacer" />
        {showKey ? (
          <ApiKeyForm
            reason={keyReason}
            onSaved={() => {
              setShowKey(false);
              setKeyReason(null);
              setGeneration(generation + 1);
            }}
          />
        ) : (
          <button class="link" onClick={() => setShowKey(true)}>
            API key
          </button>
        )}
      </header>
      {/* Both views stay mounted (a reply keeps streaming while collections are shown). */}
      <main key={generation}>
        <section hidden={view !== "chat"}>
          <ChatView active={view === "chat"} />
        </section>
        <section hidden={view !== "collections"}>
          <CollectionsView active={view === "collections"} />
        </section>
      </main>
    </div>
  );
}

render(<App />, document.getElementById("app"));
