// The signed-in user's playlists, shared by the playlist pages and the "Add to playlist"
// menus of song rows.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { useMemoObject } from "./memo";
import { ApiError, asApiError, errorText } from "../api/client";
import type { Playlist, PlaylistItem, Song } from "../api/types";
import { useApp } from "./context";

interface PlaylistsValue {
  playlists: Playlist[] | null;
  error: ApiError | null;
  refresh: () => void;
  addSong: (playlist: Playlist, song: Song) => Promise<void>;
}

const PlaylistsContext = createContext<PlaylistsValue | null>(null);

export function PlaylistsProvider({ children }: { children: ReactNode }) {
  const { api, session, notify } = useApp();
  const [playlists, setPlaylists] = useState<Playlist[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!session) {
      setPlaylists(null);
      return;
    }
    let live = true;
    api.get<{ items: Playlist[] }>("/api/playlists").then(
      (r) => {
        if (!live) return;
        setPlaylists(r.items);
        setError(null);
      },
      (e: unknown) => live && setError(asApiError(e)),
    );
    return () => {
      live = false;
    };
  }, [api, session, tick]);
  const refresh = useCallback(() => setTick((t) => t + 1), []);
  const addSong = useCallback(
    async (playlist: Playlist, song: Song) => {
      try {
        await api.post<PlaylistItem>(`/api/playlists/${playlist.id}/songs`, { song_id: song.id });
        notify(`Added “${song.title}” to ${playlist.name}`);
        refresh();
      } catch (e) {
        notify(`Could not add to ${playlist.name}: ${errorText(e)}`);
      }
    },
    [api, notify, refresh],
  );
  const value = useMemoObject({ playlists, error, refresh, addSong });
  return <PlaylistsContext.Provider value={value}>{children}</PlaylistsContext.Provider>;
}

export function usePlaylists(): PlaylistsValue {
  const v = useContext(PlaylistsContext);
  if (!v) throw new Error("usePlaylists outside PlaylistsProvider");
  return v;
}
