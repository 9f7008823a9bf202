// Shared by the app's component tests: fixtures, a fake server behind the API client's fetch,
// and the browser parts jsdom lacks (WebSocket, media playback).
import { cleanup, render } from "@testing-library/react";
import { afterEach, beforeEach, vi } from "vitest";
import { ApiClient } from "./api/client";
import type { Album, Artist, Cluster, Session, Song } from "./api/types";
import { App } from "./App";
import { forgetCovers } from "./components/covers";

export const song: Song = {
  id: "s1",
  title: "Blue Tone",
  artist_id: "a1",
  artist_name: "The Testers",
  album_id: "al1",
  album_title: "Fixtures",
  track: 1,
  year: 2024,
  genres: ["Ambient"],
  duration: 61,
  blob_sha256: "ab",
  mime: "audio/wav",
  size: 1000,
  cover_sha256: null,
  play_count: 0,
  like_count: 0,
  created_by: "u1",
  created_at: 0,
  plays: 0,
};

export const album: Album = {
  id: "al1",
  title: "Fixtures",
  artist_id: "a1",
  artist_name: "The Testers",
  year: 2024,
  cover_sha256: null,
  song_count: 1,
  duration: 61,
};

export const artist: Artist = { id: "a1", name: "The Testers", album_count: 1, song_count: 1 };

export const page = <T,>(items: T[]) => ({ items, page: 1, limit: 50, total: items.length });

export const cluster = (quorum: boolean): Cluster => ({
  node: "n1",
  quorum,
  log_position: "1.1",
  token: { holder: "n1", epoch: 1 },
  ring: ["n1"],
  replication: 1,
  members: [],
  songs: 1,
  under_replicated: 0,
  under_replicated_songs: [],
});

export type Handler = (url: URL, init: RequestInit) => Response | undefined;

export function problem(status: number, detail: string) {
  return new Response(JSON.stringify({ type: "about:blank", title: "x", status, detail }), {
    status,
  });
}

export function ok(body: unknown, status = 200) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** What a Subsonic endpoint the server does not have answers (JSON form). */
export function subsonicFailed(code: number, message: string) {
  return ok({
    "subsonic-response": {
      status: "failed",
      version: "1.16.1",
      type: "dspot",
      openSubsonic: true,
      error: { code, message },
    },
  });
}

export interface SetupOptions {
  /** Signed in (as ana, user u1) to begin with. */
  session?: boolean;
  /** Whether `GET /api/me` says ana is an admin. */
  admin?: boolean;
}

/**
 * Render the app against `handler` (undefined: the defaults below, which answer like today's
 * server: empty lists, a healthy one-node cluster, Subsonic "not implemented"). `reload()`
 * renders it again from scratch as a page reload would (same storage, new client).
 */
export function setup(handler: Handler, options: boolean | SetupOptions = true) {
  const { session = true, admin = false } =
    typeof options === "boolean" ? { session: options } : options;
  const calls: { url: URL; init: RequestInit }[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = new URL(String(input), "https://dspot.test");
    calls.push({ url, init: init ?? {} });
    const r = handler(url, init ?? {});
    if (r) return r;
    if (url.pathname === "/api/me")
      return ok({
        user_id: "u1",
        username: "ana",
        role: admin ? "admin" : "user",
        roles: admin ? ["user", "admin"] : ["user"],
      });
    if (url.pathname === "/api/cluster") return ok(cluster(true));
    if (url.pathname === "/api/playlists") return ok({ items: [] });
    if (url.pathname.startsWith("/api/")) return ok({ items: [], page: 1, limit: 50, total: 0 });
    if (url.pathname.startsWith("/rest/"))
      return subsonicFailed(0, `not implemented: ${url.pathname.slice(6)}`);
    return problem(404, "no such thing");
  });
  const store = new Map<string, string>();
  const storage = {
    getItem: (k: string) => store.get(k) ?? null,
    setItem: (k: string, v: string) => void store.set(k, v),
    removeItem: (k: string) => void store.delete(k),
  };
  const client = () =>
    new ApiClient({ fetch: fetch as unknown as typeof globalThis.fetch, storage });
  const api = client();
  const me: Session = {
    token: "tok",
    user_id: "u1",
    username: "ana",
    role: "user",
    roles: ["user"],
  };
  if (session) api.setSession(me);
  render(<App api={api} />);
  const reload = () => {
    cleanup();
    const fresh = client();
    render(<App api={fresh} />);
    return fresh;
  };
  return { api, calls, reload };
}

export class NoSocket {
  onopen = null;
  onclose = null;
  onmessage = null;
  onerror = null;
  close() {}
}

/** Install the fakes around every test of the importing file. */
export function useFakeBrowser(): void {
  // A whole app per test, driven click by click: slow on a busy machine, not stuck.
  vi.setConfig({ testTimeout: 30_000 });
  beforeEach(() => {
    localStorage.clear(); // the player keeps the queue there
    forgetCovers();
    document.title = "dspot";
    window.history.replaceState(null, "", "/");
    vi.stubGlobal("WebSocket", NoSocket);
    vi.spyOn(HTMLMediaElement.prototype, "play").mockImplementation(() => Promise.resolve());
    vi.spyOn(HTMLMediaElement.prototype, "pause").mockImplementation(() => {});
    vi.spyOn(HTMLMediaElement.prototype, "load").mockImplementation(() => {});
    vi.spyOn(window, "scrollTo").mockImplementation(() => {});
  });

  afterEach(() => {
    cleanup();
    vi.unstubAllGlobals();
  });
}
