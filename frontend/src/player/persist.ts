// The play queue and the position in the current song survive a reload: kept in
// localStorage (per user) and, for a server that offers Subsonic's `savePlayQueue` /
// `getPlayQueue`, on the server too, so they follow the user to another device. A server
// without those endpoints (error 0, "not implemented") leaves the app as it is: local only.
import {
  ApiClient,
  ApiError,
  SubsonicFailure,
  getPlayQueue,
  getSubsonicCredentials,
  savePlayQueue,
  subsonicCall,
} from "../api/client";
import type { Song } from "../api/types";
import type { QueueState } from "./queue";

/** What is kept of the queue: the songs, the current one, seconds into it, when. */
export interface SavedQueue {
  items: Song[];
  index: number;
  /** Seconds into the current song. */
  position: number;
  /** When it was saved (ms since the epoch). */
  savedAt: number;
}

/** At most this many songs are kept (around the current one). */
export const MAX_SAVED = 500;

type Store = Pick<Storage, "getItem" | "setItem">;

export const queueKey = (userId: string) => `dspot.queue.${userId}`;

/** The queue as saved, trimmed to MAX_SAVED songs around the current one. */
export function toSaved(queue: QueueState, position: number, now: number): SavedQueue {
  let { items, index } = queue;
  if (items.length > MAX_SAVED) {
    const start = Math.min(Math.max(0, index - 50), items.length - MAX_SAVED);
    items = items.slice(start, start + MAX_SAVED);
    index -= start;
  }
  return {
    items,
    index,
    position: Number.isFinite(position) && position > 0 ? position : 0,
    savedAt: now,
  };
}

/** The queue state to start from (no track started: serial 0). */
export function fromSaved(saved: SavedQueue | null): QueueState {
  if (!saved || saved.items.length === 0) return { items: [], index: -1, serial: 0 };
  const index = Math.min(Math.max(saved.index, 0), saved.items.length - 1);
  return { items: saved.items, index, serial: 0 };
}

export function loadLocal(store: Store | null, userId: string): SavedQueue | null {
  try {
    const text = store?.getItem(queueKey(userId));
    if (!text) return null;
    const doc = JSON.parse(text) as Partial<SavedQueue>;
    if (!Array.isArray(doc.items) || !doc.items.every((s) => s && typeof s.id === "string")) {
      return null;
    }
    return {
      items: doc.items,
      index: typeof doc.index === "number" ? doc.index : 0,
      position: typeof doc.position === "number" ? doc.position : 0,
      savedAt: typeof doc.savedAt === "number" ? doc.savedAt : 0,
    };
  } catch {
    return null; // unreadable: start empty
  }
}

export function saveLocal(store: Store | null, userId: string, saved: SavedQueue): void {
  try {
    store?.setItem(queueKey(userId), JSON.stringify(saved));
  } catch {
    // full or unavailable storage: the queue just does not survive a reload
  }
}

/** The saved queue of another device, to adopt when newer than ours. */
export interface RemoteQueue {
  ids: string[];
  current: string | null;
  /** Seconds. */
  position: number;
  /** ms since the epoch (0 when the server did not say). */
  changed: number;
}

/** Subsonic's "invalid API key": the key was rotated (on the settings page, or elsewhere). */
const INVALID_API_KEY = 44;

/**
 * The server's copy of the queue through Subsonic, authenticated with the user's API key.
 * It first asks without credentials: this server answers an endpoint it does not have with
 * error 0 before it looks at credentials, so a server without play queues costs no
 * credentials. After any answer that the server cannot keep queues, it stays off.
 */
export class RemotePlayQueue {
  state: "unknown" | "on" | "off" = "unknown";
  private key: Promise<string | null> | null = null;
  private rotated = 0;
  private sending: Promise<void> | null = null;
  private next: (() => Promise<void>) | null = null;

  constructor(private readonly api: ApiClient) {}

  /** Whether the server has `getPlayQueue`: asked with an empty key, which it refuses with
   * an auth error if it has the endpoint, and with error 0 if it does not. */
  private async offered(): Promise<boolean> {
    try {
      await subsonicCall(this.api, "", "getPlayQueue");
      return true;
    } catch (e) {
      return e instanceof SubsonicFailure && e.code !== 0;
    }
  }

  private apiKey(): Promise<string | null> {
    this.key ??= (async () => {
      try {
        if (!(await this.offered())) throw new Error("no play queues on this server");
        const creds = await getSubsonicCredentials(this.api);
        this.state = "on";
        return creds.api_key;
      } catch {
        this.state = "off";
        return null;
      }
    })();
    return this.state === "off" ? Promise.resolve(null) : this.key;
  }

  /** After a failed call: a rotated key is fetched again (once); a refusal of another kind,
   * or an HTTP 4xx, means this server does not keep queues; anything else may pass. */
  private failed(e: unknown): void {
    if (e instanceof SubsonicFailure && e.code === INVALID_API_KEY && this.rotated++ < 1) {
      this.key = null;
    } else if (
      e instanceof SubsonicFailure ||
      (e instanceof ApiError && e.status >= 400 && e.status < 500)
    ) {
      this.state = "off";
    }
  }

  /** The saved queue, or null (none saved, or no support). */
  async load(): Promise<RemoteQueue | null> {
    const key = await this.apiKey();
    if (!key) return null;
    try {
      const q = await getPlayQueue(this.api, key);
      const ids = (q?.entry ?? []).map((e) => e.id).filter((id) => typeof id === "string");
      if (!q || ids.length === 0) return null;
      const changed = q.changed ? Date.parse(q.changed) : 0;
      return {
        ids,
        current: q.current ?? null,
        position: Math.max(0, (q.position ?? 0) / 1000),
        changed: Number.isFinite(changed) ? changed : 0,
      };
    } catch (e) {
      this.failed(e);
      return null;
    }
  }

  /** Save the queue; one request at a time, the latest state winning. */
  save(queue: QueueState, position: number): Promise<void> {
    const ids = queue.items.slice(0, MAX_SAVED).map((s) => s.id);
    const current = queue.items[queue.index]?.id ?? null;
    const send = async () => {
      const key = await this.apiKey();
      if (!key) return;
      try {
        await savePlayQueue(this.api, key, ids, current, position * 1000);
        this.rotated = 0;
      } catch (e) {
        this.failed(e);
      }
    };
    if (this.sending) {
      this.next = send;
      return this.sending;
    }
    const run = async (job: () => Promise<void>): Promise<void> => {
      await job();
      const more = this.next;
      this.next = null;
      if (more) await run(more);
    };
    this.sending = run(send).finally(() => {
      this.sending = null;
    });
    return this.sending;
  }
}

/** The songs of a remote queue, by id, in order; ids that no longer exist are left out. */
export async function remoteSongs(api: ApiClient, ids: string[]): Promise<Song[]> {
  const found = await Promise.allSettled(
    ids.slice(0, MAX_SAVED).map((id) => api.get<Song>(`/api/songs/${encodeURIComponent(id)}`)),
  );
  return found.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
}
