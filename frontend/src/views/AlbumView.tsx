// One album: cover, facts, play, like, its tracks.
import { useApp, useLoad } from "../app/context";
import { Link } from "../app/router";
import type { AlbumDetail } from "../api/types";
import { Cover } from "../components/Cover";
import { formatTotal, plural } from "../components/format";
import { Icon } from "../components/Icon";
import { LikeButton } from "../components/LikeButton";
import { SongTable } from "../components/SongTable";
import { albumCoverTrack } from "../components/covers";
import { LoadFailed, Loading } from "../components/States";
import { usePlayer } from "../player/Player";

export function AlbumView({ id }: { id: string }) {
  const { api, likedAlbums, toggleAlbumLike } = useApp();
  const player = usePlayer();
  const album = useLoad(
    (signal) => api.get<AlbumDetail>(`/api/albums/${encodeURIComponent(id)}`, undefined, signal),
    [api, id],
  );
  if (album.loading && !album.data) return <Loading />;
  if (album.error)
    return (
      <LoadFailed
        error={album.error}
        onRetry={album.reload}
        notFound={{
          title: "Album not found",
          text: "There is no such album: it may have been deleted, or the link is wrong.",
          back: { to: "/", label: "Browse albums" },
        }}
      />
    );
  const a = album.data;
  if (!a) return null;
  return (
    <section aria-labelledby="album-h">
      <header className="hero">
        <Cover
          songId={albumCoverTrack(a.cover_sha256, a.tracks)}
          hasCover
          title={a.title}
          size="large"
        />
        <div className="hero-text">
          <span className="eyebrow">Album</span>
          <h1 id="album-h">{a.title}</h1>
          <p>
            <Link to={`/artists/${a.artist_id}`}>{a.artist_name}</Link>
            {a.year ? ` · ${a.year}` : ""} · {plural(a.song_count, "song")} ·{" "}
            {formatTotal(a.duration)}
          </p>
          <div className="hero-actions">
            <button
              type="button"
              className="primary play-all"
              aria-label={`Play ${a.title}`}
              disabled={a.tracks.length === 0}
              onClick={() => player.play(a.tracks)}
            >
              <Icon name="play" /> Play
            </button>
            <LikeButton
              liked={likedAlbums.has(a.id)}
              what="this album"
              onToggle={() => void toggleAlbumLike(a.id)}
            />
          </div>
        </div>
      </header>
      <SongTable
        songs={a.tracks}
        numbering="track"
        showAlbum={false}
        label={`Tracks of ${a.title}`}
      />
    </section>
  );
}
