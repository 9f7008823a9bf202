// Upload: drop or pick several files and they start at once, one by one, each with a progress
// bar and a cancel button; then what the server read from their tags (or why it refused them,
// or that the library already had them).
import { useEffect, useReducer, useRef, useState, type DragEvent } from "react";
import { ApiError, errorText, type UploadHandle } from "../api/client";
import { useApp } from "../app/context";
import { Link } from "../app/router";
import { formatDuration } from "../components/format";
import { Icon } from "../components/Icon";
import { formatBytes } from "../cluster/state";
import {
  fraction,
  nextToUpload,
  summary,
  summaryText,
  uploadReducer,
  type UploadItem,
} from "../upload/queue";

let counter = 0;

export function UploadView() {
  const { api } = useApp();
  const [items, dispatch] = useReducer(uploadReducer, []);
  const [over, setOver] = useState(false);
  const files = useRef(new Map<string, File>());
  const handles = useRef(new Map<string, UploadHandle>());
  const input = useRef<HTMLInputElement>(null);

  const add = (list: FileList | File[]) => {
    const added = [...list].map((f) => {
      const id = `u${++counter}`;
      files.current.set(id, f);
      return { id, name: f.name, size: f.size };
    });
    if (added.length) dispatch({ type: "add", files: added });
  };

  // The runner: one file at a time, as soon as there is one to send.
  useEffect(() => {
    const item = nextToUpload(items);
    if (!item) return;
    const file = files.current.get(item.id);
    if (!file) {
      dispatch({ type: "failed", id: item.id, error: "the file is no longer available" });
      return;
    }
    dispatch({ type: "start", id: item.id });
    const handle = api.upload(file, (loaded, total) =>
      dispatch({ type: "progress", id: item.id, loaded, total }),
    );
    handles.current.set(item.id, handle);
    handle.promise
      .then(
        (r) =>
          dispatch({
            type: "done",
            id: item.id,
            song: r.song,
            duplicate: r.status === 200 || !!r.song.duplicate,
          }),
        (e: unknown) => {
          if (e instanceof ApiError && e.title === "Cancelled") return;
          dispatch({
            type: "failed",
            id: item.id,
            error: errorText(e),
          });
        },
      )
      .finally(() => {
        handles.current.delete(item.id);
        files.current.delete(item.id);
      });
  }, [api, items]);

  const cancel = (item: UploadItem) => {
    handles.current.get(item.id)?.abort();
    dispatch({ type: "cancel", id: item.id });
  };

  const cancelAll = () => {
    for (const h of handles.current.values()) h.abort();
    dispatch({ type: "cancelAll" });
  };

  const discard = async (item: UploadItem) => {
    if (!item.song) return;
    try {
      await api.delete(`/api/songs/${item.song.id}`);
      dispatch({ type: "dismiss", id: item.id });
    } catch (e) {
      dispatch({
        type: "failed",
        id: item.id,
        error: `could not remove it: ${errorText(e)}`,
      });
    }
  };

  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    setOver(false);
    add(e.dataTransfer.files);
  };

  const s = summary(items);
  return (
    <section aria-labelledby="upload-h">
      <div className="view-head">
        <h1 id="upload-h">Upload</h1>
      </div>
      <div
        className={`dropzone ${over ? "over" : ""}`}
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <Icon name="upload" size={40} />
        <p>Drop audio files here (MP3, FLAC, Ogg, Opus, M4A, WAV)</p>
        <p className="muted small">
          Uploading starts as soon as you choose files. The service reads title, artist, album,
          track, year, genre and cover from the tags.
        </p>
        <button type="button" className="secondary" onClick={() => input.current?.click()}>
          Choose files
        </button>
        <input
          ref={input}
          type="file"
          multiple
          accept="audio/*,.mp3,.flac,.ogg,.oga,.opus,.m4a,.mp4,.wav"
          className="sr-only"
          aria-label="Audio files to upload"
          tabIndex={-1}
          onChange={(e) => {
            if (e.target.files) add(e.target.files);
            e.target.value = "";
          }}
        />
      </div>
      {items.length > 0 && (
        <div className="upload-actions">
          <span className="muted" aria-live="polite" data-testid="upload-summary">
            {summaryText(s)}
          </span>
          {s.pending > 0 && (
            <button type="button" className="secondary" onClick={cancelAll}>
              Cancel all
            </button>
          )}
          <button
            type="button"
            className="text-button"
            onClick={() => dispatch({ type: "clearFinished" })}
            disabled={items.length === s.pending}
          >
            Clear finished
          </button>
        </div>
      )}
      <ul className="uploads" aria-label="Files">
        {items.map((item) => (
          <UploadRow
            key={item.id}
            item={item}
            onCancel={() => cancel(item)}
            onDiscard={() => void discard(item)}
            onDismiss={() => dispatch({ type: "dismiss", id: item.id })}
          />
        ))}
      </ul>
    </section>
  );
}

const STATUS_TEXT: Record<UploadItem["status"], string> = {
  queued: "Waiting",
  uploading: "Uploading",
  done: "Uploaded",
  duplicate: "Already in the library",
  failed: "Refused",
  cancelled: "Cancelled",
};

function UploadRow({
  item,
  onCancel,
  onDiscard,
  onDismiss,
}: {
  item: UploadItem;
  onCancel: () => void;
  onDiscard: () => void;
  onDismiss: () => void;
}) {
  const pct = Math.round(fraction(item) * 100);
  const song = item.song;
  return (
    <li className={`upload-row ${item.status}`} data-testid="upload-row" aria-label={item.name}>
      <div className="upload-line">
        <span className="upload-name">{item.name}</span>
        <span className="muted small">{formatBytes(item.size)}</span>
        <span className={`badge ${item.status}`} data-testid="upload-status">
          {STATUS_TEXT[item.status]}
          {item.status === "uploading" ? ` ${pct}%` : ""}
        </span>
        {(item.status === "queued" || item.status === "uploading") && (
          <button
            type="button"
            className="secondary small-button"
            aria-label={`Cancel ${item.name}`}
            onClick={onCancel}
          >
            <Icon name="close" size={16} /> Cancel
          </button>
        )}
        {(item.status === "failed" ||
          item.status === "cancelled" ||
          item.status === "duplicate") && (
          <button
            type="button"
            className="icon-button small"
            aria-label={`Dismiss ${item.name}`}
            onClick={onDismiss}
          >
            <Icon name="close" size={16} />
          </button>
        )}
      </div>
      <progress
        max={100}
        value={item.status === "failed" ? 0 : pct}
        aria-label={`Progress of ${item.name}`}
      />
      {item.error && (
        <p className="form-error" role="alert">
          {item.name}: {item.error}
        </p>
      )}
      {song && (
        <dl className="tags" aria-label={`Tags found in ${item.name}`}>
          <div>
            <dt>Title</dt>
            <dd>{song.title}</dd>
          </div>
          <div>
            <dt>Artist</dt>
            <dd>
              <Link to={`/artists/${song.artist_id}`}>{song.artist_name}</Link>
            </dd>
          </div>
          <div>
            <dt>Album</dt>
            <dd>
              {song.album_id ? (
                <Link to={`/albums/${song.album_id}`}>{song.album_title}</Link>
              ) : (
                "—"
              )}
            </dd>
          </div>
          <div>
            <dt>Track</dt>
            <dd>{song.track ?? "—"}</dd>
          </div>
          <div>
            <dt>Year</dt>
            <dd>{song.year ?? "—"}</dd>
          </div>
          <div>
            <dt>Genre</dt>
            <dd>{song.genres.join(", ") || "—"}</dd>
          </div>
          <div>
            <dt>Length</dt>
            <dd>{formatDuration(song.duration)}</dd>
          </div>
          <div>
            <dt>Format</dt>
            <dd>{song.mime}</dd>
          </div>
          {item.status === "done" && (
            <div className="tag-actions">
              <button
                type="button"
                className="text-button"
                aria-label={`Keep ${item.name}`}
                onClick={onDismiss}
              >
                Keep
              </button>
              <button
                type="button"
                className="text-button danger"
                aria-label={`Remove ${item.name} from the library`}
                onClick={onDiscard}
              >
                Remove
              </button>
            </div>
          )}
        </dl>
      )}
    </li>
  );
}
