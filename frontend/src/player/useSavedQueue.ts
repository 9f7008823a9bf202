// Keeping the play queue across reloads and devices (see persist.ts): when to save it, and
// adopting the server's copy when it is newer than this browser's.
import { useCallback, useEffect, useRef } from "react";
import type { ApiClient } from "../api/client";
import type { Song } from "../api/types";
import { RemotePlayQueue, fromSaved, loadLocal, remoteSongs, saveLocal, toSaved } from "./persist";
import type { QueueState } from "./queue";

/** While playing, the position is saved locally this often (ms)... */
export const LOCAL_EVERY_MS = 2_000;
/** ...and on the server this often. */
export const REMOTE_EVERY_MS = 30_000;
/** A change of the queue reaches the server after this quiet time (ms). */
export const REMOTE_DEBOUNCE_MS = 2_000;

function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

/** The queue this browser kept for the user, and where in its current song to resume. */
export function initialQueue(userId: string | null): {
  queue: QueueState;
  position: number;
  savedAt: number;
} {
  const saved = userId ? loadLocal(storage(), userId) : null;
  return { queue: fromSaved(saved), position: saved?.position ?? 0, savedAt: saved?.savedAt ?? 0 };
}

interface Options {
  api: ApiClient;
  userId: string | null;
  queue: QueueState;
  playing: boolean;
  /** Seconds into the current song now. */
  position: () => number;
  /** When the queue the app started with was saved (ms; 0: nothing was)... */
  savedAt: number;
  /** ...and the position in its current song it was saved with (seconds). */
  savedPosition: number;
  /** Whether the user did anything with the player since the page loaded. */
  touched: () => boolean;
  /** Put another device's queue in place, paused at `position` seconds. */
  adopt: (songs: Song[], index: number, position: number) => void;
}

/**
 * Save the queue locally on every change and every few seconds of playback, and on the
 * server (when it keeps queues) shortly after a change, on pause and every half minute of
 * playback; at start, adopt the server's queue if it is newer and the user has not begun,
 * or give the server this browser's copy if that is newer (a save the last page could not
 * finish, cut short by a reload or a lost connection).
 * Returns the handler for the audio element's time updates.
 */
export function useSavedQueue({
  api,
  userId,
  queue,
  playing,
  position,
  savedAt,
  savedPosition,
  touched,
  adopt,
}: Options): () => void {
  const remote = useRef<RemotePlayQueue | null>(null);
  const latest = useRef({ queue, position });
  latest.current = { queue, position };
  const lastLocal = useRef(0);
  const lastRemote = useRef(0);
  const start = useRef(queue);

  const saveHere = useCallback(() => {
    if (!userId) return;
    const { queue: q, position: at } = latest.current;
    saveLocal(storage(), userId, toSaved(q, at(), Date.now()));
    lastLocal.current = Date.now();
  }, [userId]);

  const saveThere = useCallback(() => {
    const r = remote.current;
    if (!r || r.state === "off") return;
    lastRemote.current = Date.now();
    const { queue: q, position: at } = latest.current;
    void r.save(q, at());
  }, []);

  // The server's copy: asked once per session.
  useEffect(() => {
    if (!userId) return;
    const r = new RemotePlayQueue(api);
    remote.current = r;
    let live = true;
    void (async () => {
      const saved = await r.load();
      if (!live || touched()) return;
      const here = start.current;
      if (savedAt > 0 && (!saved || saved.changed < savedAt) && here.items.length > 0) {
        lastRemote.current = Date.now();
        void r.save(here, savedPosition);
        return;
      }
      if (!saved || saved.changed <= savedAt) return;
      const songs = await remoteSongs(api, saved.ids);
      if (!live || songs.length === 0 || touched()) return;
      const index = Math.max(
        0,
        songs.findIndex((s) => s.id === saved.current),
      );
      adopt(songs, index, songs[index].id === saved.current ? saved.position : 0);
    })();
    return () => {
      live = false;
      remote.current = null;
    };
    // Once per session: the starting point is what the page loaded with.
  }, [api, userId]);

  // Every change of the queue (not the one the page started with).
  useEffect(() => {
    if (queue.items === start.current.items && queue.index === start.current.index) return;
    saveHere();
    const t = setTimeout(saveThere, REMOTE_DEBOUNCE_MS);
    return () => clearTimeout(t);
  }, [queue.items, queue.index, saveHere, saveThere]);

  // A pause keeps the position at once; so does leaving the page.
  const wasPlaying = useRef(playing);
  useEffect(() => {
    if (wasPlaying.current && !playing) {
      saveHere();
      saveThere();
    }
    wasPlaying.current = playing;
  }, [playing, saveHere, saveThere]);
  useEffect(() => {
    window.addEventListener("pagehide", saveHere);
    return () => window.removeEventListener("pagehide", saveHere);
  }, [saveHere]);

  const isPlaying = useRef(playing);
  isPlaying.current = playing;
  return useCallback(() => {
    if (!isPlaying.current) return; // a seek while paused is saved by the pause or a change
    const now = Date.now();
    if (now - lastLocal.current >= LOCAL_EVERY_MS) saveHere();
    if (now - lastRemote.current >= REMOTE_EVERY_MS) saveThere();
  }, [saveHere, saveThere]);
}
