// App-wide state: the API client, the session and who the user is (admin or not), the
// read-only banner, and the songs, albums and artists the user likes.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { useMemoObject } from "./memo";
import { ApiClient, ApiError, asApiError, getMe, isAdmin } from "../api/client";
import type { Me } from "../api/types";
import type { Page, Session, Song } from "../api/types";

/** What can be liked: the path segment of its like list and of its like endpoint. */
type LikeKind = "songs" | "albums" | "artists";

const LIKE_LISTS: Record<LikeKind, string> = {
  songs: "/api/me/likes",
  albums: "/api/me/likes/albums",
  artists: "/api/me/likes/artists",
};

interface AppValue {
  api: ApiClient;
  session: Session | null;
  /** `GET /api/me` of the session (null until it answers). */
  me: Me | null;
  /** Whether the user administers the cluster (from the sign-in answer until /api/me). */
  admin: boolean;
  readOnly: boolean;
  setReadOnly: (v: boolean) => void;
  /** Ids of the songs the user likes. */
  liked: Set<string>;
  toggleLike: (song: Song) => Promise<void>;
  likedAlbums: Set<string>;
  toggleAlbumLike: (albumId: string) => Promise<void>;
  likedArtists: Set<string>;
  toggleArtistLike: (artistId: string) => Promise<void>;
  /** A short message shown at the bottom of the screen. */
  notify: (message: string) => void;
  toast: string | null;
}

const AppContext = createContext<AppValue | null>(null);

/**
 * The ids of one kind the user likes (the first 200, loaded per session), and a toggle that
 * shows the change at once and undoes it, with a message, when the server refuses.
 */
function useLikes(
  api: ApiClient,
  session: Session | null,
  kind: LikeKind,
  notify: (message: string) => void,
): [Set<string>, (id: string) => Promise<void>] {
  const [liked, setLiked] = useState<Set<string>>(new Set());

  useEffect(() => {
    if (!session) {
      setLiked(new Set());
      return;
    }
    let cancelled = false;
    api
      .get<Page<{ id: string }>>(LIKE_LISTS[kind], { limit: 200 })
      .then((p) => !cancelled && setLiked(new Set(p.items.map((i) => i.id))))
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, [api, session, kind]);

  const toggle = useCallback(
    async (id: string) => {
      const was = liked.has(id);
      const flip = (on: boolean) =>
        setLiked((s) => {
          const n = new Set(s);
          if (on) n.add(id);
          else n.delete(id);
          return n;
        });
      flip(!was);
      try {
        await api.request(was ? "DELETE" : "PUT", `/api/${kind}/${encodeURIComponent(id)}/like`);
      } catch (e) {
        flip(was);
        notify(
          e instanceof ApiError ? `Could not ${was ? "unlike" : "like"}: ${e.detail}` : String(e),
        );
      }
    },
    [api, kind, liked, notify],
  );
  return [liked, toggle];
}

export function AppProvider({ api, children }: { api: ApiClient; children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(api.session);
  const [readOnly, setReadOnly] = useState(false);
  const [toast, setToast] = useState<string | null>(null);

  useEffect(
    () =>
      api.subscribe((e) => {
        if (e.kind === "session") setSession(e.session);
        else setReadOnly(e.readOnly);
      }),
    [api],
  );

  useEffect(() => {
    if (!toast) return;
    const t = setTimeout(() => setToast(null), 4000);
    return () => clearTimeout(t);
  }, [toast]);

  const [me, setMe] = useState<Me | null>(null);
  useEffect(() => {
    setMe(null);
    if (!session) return;
    const ctl = new AbortController();
    getMe(api, ctl.signal).then(
      (m) => !ctl.signal.aborted && setMe(m),
      () => {}, // the sign-in answer's role stands in
    );
    return () => ctl.abort();
  }, [api, session]);
  const admin = me ? isAdmin(me) : isAdmin(session);

  const notify = useCallback((message: string) => setToast(message), []);
  const [liked, toggleSong] = useLikes(api, session, "songs", notify);
  const [likedAlbums, toggleAlbumLike] = useLikes(api, session, "albums", notify);
  const [likedArtists, toggleArtistLike] = useLikes(api, session, "artists", notify);
  const toggleLike = useCallback((song: Song) => toggleSong(song.id), [toggleSong]);

  const value = useMemoObject({
    api,
    session,
    me,
    admin,
    readOnly,
    setReadOnly,
    liked,
    toggleLike,
    likedAlbums,
    toggleAlbumLike,
    likedArtists,
    toggleArtistLike,
    notify,
    toast,
  });
  return <AppContext.Provider value={value}>{children}</AppContext.Provider>;
}

export function useApp(): AppValue {
  const v = useContext(AppContext);
  if (!v) throw new Error("useApp outside AppProvider");
  return v;
}

/** Load data for a view: loading, error and reload, cancelled when the inputs change. */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ data: T | null; error: ApiError | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(ctl.signal).then(
      (data) => !ctl.signal.aborted && setState({ data, error: null, loading: false }),
      (e: unknown) => {
        if (ctl.signal.aborted) return;
        const error = asApiError(e);
        setState({ data: null, error, loading: false });
      },
    );
    return () => ctl.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return {
    ...state,
    reload,
    setData: (data: T) => setState({ data, error: null, loading: false }),
  };
}
