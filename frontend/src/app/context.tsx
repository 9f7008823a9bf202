// App-wide state: the API client and the session, the read-only banner, and the songs the
// user likes.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  type ReactNode,
} from "react";
import { ApiClient, ApiError } from "../api/client";
import type { Page, Session, Song } from "../api/types";

interface AppValue {
  api: ApiClient;
  session: Session | null;
  readOnly: boolean;
  setReadOnly: (v: boolean) => void;
  liked: Set<string>;
  toggleLike: (song: Song) => Promise<void>;
  /** A short message shown at the bottom of the screen. */
  notify: (message: string) => void;
  toast: string | null;
}

const AppContext = createContext<AppValue | null>(null);

export function AppProvider({ api, children }: { api: ApiClient; children: ReactNode }) {
  const [session, setSession] = useState<Session | null>(api.session);
  const [readOnly, setReadOnly] = useState(false);
  const [liked, setLiked] = useState<Set<string>>(new Set());
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

  useEffect(() => {
    if (!session) {
      setLiked(new Set());
      return;
    }
    let cancelled = false;
    api
      .get<Page<Song>>("/api/me/likes", { limit: 200 })
      .then((p) => !cancelled && setLiked(new Set(p.items.map((s) => s.id))))
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, [api, session]);

  const notify = useCallback((message: string) => setToast(message), []);

  const toggleLike = useCallback(
    async (song: Song) => {
      const was = liked.has(song.id);
      const flip = (on: boolean) =>
        setLiked((s) => {
          const n = new Set(s);
          if (on) n.add(song.id);
          else n.delete(song.id);
          return n;
        });
      flip(!was);
      try {
        await api.request(was ? "DELETE" : "PUT", `/api/songs/${song.id}/like`);
      } catch (e) {
        flip(was);
        setToast(
          e instanceof ApiError ? `Could not ${was ? "unlike" : "like"}: ${e.detail}` : String(e),
        );
      }
    },
    [api, liked],
  );

  const value = useMemo(
    () => ({ api, session, readOnly, setReadOnly, liked, toggleLike, notify, toast }),
    [api, session, readOnly, liked, toggleLike, notify, toast],
  );
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
        const error = e instanceof ApiError ? e : new ApiError(0, "Error", String(e));
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
