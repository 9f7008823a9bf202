// A table of songs: play (the list from that row on), like, add to a playlist, and links to
// the artist and album; each row shows its cover, except in an album's own track list.
// `extra` adds per-row controls (a playlist's reorder buttons).
import { useEffect, useState, type ReactNode } from "react";
import { useApp } from "../app/context";
import { usePlaylists } from "../app/playlists";
import { Link } from "../app/router";
import type { Song } from "../api/types";
import { usePlayer } from "../player/Player";
import { Cover } from "./Cover";
import { formatDuration } from "./format";
import { Icon } from "./Icon";

interface SongTableProps {
  songs: Song[];
  /** Number shown in the first column: the album track number or the position. */
  numbering?: "track" | "position";
  offset?: number;
  showAlbum?: boolean;
  extra?: (song: Song, index: number) => ReactNode;
  label: string;
}

const NARROW = "(max-width: 720px)";

/** True on phone-sized screens (follows resizes). */
function useNarrow(): boolean {
  const supported = typeof window.matchMedia === "function";
  const [narrow, setNarrow] = useState(() => supported && window.matchMedia(NARROW).matches);
  useEffect(() => {
    if (!supported) return;
    const query = window.matchMedia(NARROW);
    const on = () => setNarrow(query.matches);
    on();
    query.addEventListener("change", on);
    return () => query.removeEventListener("change", on);
  }, [supported]);
  return narrow;
}

export function SongTable({
  songs,
  numbering = "position",
  offset = 0,
  showAlbum = true,
  extra,
  label,
}: SongTableProps) {
  const { liked, toggleLike } = useApp();
  const { playlists, addSong } = usePlaylists();
  const player = usePlayer();
  const narrow = useNarrow();
  return (
    <table className="songs" aria-label={label}>
      <thead>
        <tr>
          <th scope="col" className="col-num">
            #
          </th>
          <th scope="col">Title</th>
          {showAlbum && (
            <th scope="col" className="col-album">
              Album
            </th>
          )}
          <th scope="col" className="col-genre">
            Genre
          </th>
          <th scope="col" className="col-time">
            Time
          </th>
          <th scope="col" className="col-actions">
            <span className="sr-only">Actions</span>
          </th>
        </tr>
      </thead>
      <tbody>
        {songs.map((s, i) => {
          const current = player.song?.id === s.id;
          const isLiked = liked.has(s.id);
          return (
            <tr key={`${s.id}-${i}`} className={current ? "current" : ""} data-song-id={s.id}>
              <td className="col-num">
                <span className="num">
                  {numbering === "track" ? (s.track ?? "–") : offset + i + 1}
                </span>
                <button
                  type="button"
                  className="row-play"
                  aria-label={current && player.playing ? `Pause ${s.title}` : `Play ${s.title}`}
                  onClick={() => (current ? player.toggle() : player.play(songs, i))}
                >
                  <Icon name={current && player.playing ? "pause" : "play"} size={16} />
                </button>
              </td>
              <td>
                <div className="song-cell">
                  {showAlbum && (
                    <Cover
                      songId={s.id}
                      hasCover={!!s.cover_sha256}
                      title={s.album_title ?? s.title}
                      size="thumb"
                      decorative
                    />
                  )}
                  <div className="song-names">
                    <div className="song-title">{s.title}</div>
                    <div className="song-artist">
                      <Link to={`/artists/${s.artist_id}`}>{s.artist_name}</Link>
                    </div>
                  </div>
                </div>
              </td>
              {showAlbum && (
                <td className="col-album">
                  {s.album_id ? (
                    <Link to={`/albums/${s.album_id}`}>{s.album_title}</Link>
                  ) : (
                    <span className="muted">Single</span>
                  )}
                </td>
              )}
              <td className="col-genre">{s.genres.join(", ")}</td>
              <td className="col-time">{formatDuration(s.duration)}</td>
              <td className="col-actions">
                <button
                  type="button"
                  className={`icon-button like ${isLiked ? "on" : ""}`}
                  aria-label={`Like ${s.title}`}
                  aria-pressed={isLiked}
                  onClick={() => void toggleLike(s)}
                >
                  <Icon name={isLiked ? "heart-filled" : "heart"} size={18} />
                </button>
                <select
                  className="add-to"
                  aria-label={`Add ${s.title} to playlist`}
                  value=""
                  disabled={!playlists || playlists.length === 0}
                  title={
                    playlists && playlists.length === 0 ? "Create a playlist first" : undefined
                  }
                  onChange={(e) => {
                    const pl = playlists?.find((p) => p.id === e.target.value);
                    if (pl) void addSong(pl, s);
                  }}
                >
                  <option value="">{narrow ? "+" : "+ Playlist"}</option>
                  {playlists?.map((p) => (
                    <option key={p.id} value={p.id}>
                      {p.name}
                    </option>
                  ))}
                </select>
                <button
                  type="button"
                  className="icon-button small enqueue"
                  aria-label={`Add ${s.title} to the queue`}
                  onClick={() => player.dispatch({ type: "enqueue", songs: [s] })}
                >
                  <Icon name="queue" size={16} />
                </button>
                {extra?.(s, i)}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
