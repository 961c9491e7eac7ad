// Collections: create one from paths, watch indexing file by file (failed files with their
// reasons), reindex, delete. Polls the API while the view is shown.
import { useEffect, useRef, useState } from "preact/hooks";

import {
  collectionFiles,
  createCollection,
  deleteCollection,
  listCollections,
  reindexCollection,
} from "./api.js";

const POLL_MS = 1500;

function usePolling(active, load) {
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    if (!active) return undefined;
    let stopped = false;
    let timer = null;
    const tick = async () => {
      await latest.current();
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [active]);
}

function FileTable({ name, active }) {
  const [files, setFiles] = useState(null);
  const [error, setError] = useState(null);
  usePolling(active, async () => {
    try {
      setFiles((await collectionFiles(name)).data);
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  });
  if (error) return <div class="error">{error}</div>;
  if (!files) return <div class="muted">loading files…</div>;
  if (!files.length) return <div class="muted">no files yet</div>;
  return (
    <table class="files" data-testid={`files-${name}`}>
      <thead>
        <tr>
          <th>file</th>
          <th>state</th>
          <th>chunks</th>
          <th>pages</th>
          <th>reason</th>
        </tr>
      </thead>
      <tbody>
        {files.map((file) => (
          <tr key={file.path} class={`file ${file.state}`} data-testid="file-row">
            <td title={file.path}>{file.path}</td>
            <td class="state" data-testid="file-state">
              {file.state}
            </td>
            <td>{file.chunks ?? ""}</td>
            <td>{file.pages ?? ""}</td>
            <td class="reason" data-testid="file-error">
              {file.error || ""}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Collection({ collection, active, onChanged }) {
  const [open, setOpen] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [error, setError] = useState(null);
  const { name } = collection;
  const total = collection.files_total || 0;
  const done = (collection.files_indexed || 0) + (collection.files_failed || 0);
  const act = async (action) => {
    setError(null);
    try {
      await action();
      onChanged();
    } catch (e) {
      setError(e.message);
    }
  };
  return (
    <li class="collection" data-testid={`collection-${name}`}>
      <div class="collection-head">
        <strong>{name}</strong>
        <span class={`state ${collection.state}`} data-testid="collection-state">
          {collection.state}
        </span>
        <span class="counts">
          {collection.files_indexed}/{total} indexed
          {collection.files_failed ? `, ${collection.files_failed} failed` : ""},{" "}
          {collection.chunks} chunks
        </span>
        <span class="spacer" />
        <button onClick={() => setOpen(!open)} data-testid="toggle-files">
          {open ? "Hide files" : "Files"}
        </button>
        <button onClick={() => act(() => reindexCollection(name))} data-testid="reindex">
          Reindex
        </button>
        {confirming ? (
          <>
            <button class="danger" onClick={() => act(() => deleteCollection(name))} data-testid="confirm-delete">
              Delete {name}?
            </button>
            <button onClick={() => setConfirming(false)}>Cancel</button>
          </>
        ) : (
          <button onClick={() => setConfirming(true)} data-testid="delete">
            Delete
          </button>
        )}
      </div>
      <progress max={total || 1} value={total ? done : 0} />
      <div class="paths muted">{(collection.paths || []).join(", ")}</div>
      {(collection.unavailable_paths || []).map((entry) => (
        <div class="error" key={entry.path}>
          unavailable: {entry.path} ({entry.reason})
        </div>
      ))}
      {error && <div class="error">{error}</div>}
      {open && <FileTable name={name} active={active} />}
    </li>
  );
}

export function CollectionsView({ active }) {
  const [collections, setCollections] = useState(null);
  const [error, setError] = useState(null);
  const [name, setName] = useState("");
  const [paths, setPaths] = useState("");
  const [createError, setCreateError] = useState(null);
  const [revision, setRevision] = useState(0);

  const load = async () => {
    try {
      setCollections((await listCollections()).data);
      setError(null);
    } catch (e) {
      setError(e.message);
    }
  };
  usePolling(active, load);
  useEffect(() => {
    if (revision) load();
  }, [revision]);

  const create = async (event) => {
    event.preventDefault();
    setCreateError(null);
    const list = paths
      .split("\n")
      .map((p) => p.trim())
      .filter(Boolean);
    try {
      await createCollection(name.trim(), list);
      setName("");
      setPaths("");
      setRevision(revision + 1);
    } catch (e) {
      setCreateError(e.message);
    }
  };

  return (
    <div class="collections">
      <form class="create" onSubmit={create} data-testid="create-collection">
        <h2>New collection</h2>
        <input
          placeholder="name (letters, digits, - and _)"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
          data-testid="collection-name"
        />
        <textarea
          rows={2}
          placeholder="absolute folder or file paths on the server, one per line"
          value={paths}
          onInput={(e) => setPaths(e.currentTarget.value)}
          data-testid="collection-paths"
        />
        <button type="submit" data-testid="create">
          Create and index
        </button>
        {createError && (
          <div class="error" data-testid="create-error">
            {createError}
          </div>
        )}
      </form>
      {error && <div class="error banner">{error}</div>}
      {collections && collections.length === 0 && <p class="muted">No collections yet.</p>}
      <ul class="collection-list">
        {(collections || []).map((c) => (
          <Collection
            key={c.name}
            collection={c}
            active={active}
            onChanged={() => setRevision((r) => r + 1)}
          />
        ))}
      </ul>
    </div>
  );
}
