// Artists (each shown with a cover of one of their albums), and one artist's page (play,
// like, albums, singles).
import { useState } from "react";
import { useApp, useLoad } from "../app/context";
import { Link } from "../app/router";
import type { Artist, ArtistDetail, Page, Song } from "../api/types";
import { Cover } from "../components/Cover";
import { plural } from "../components/format";
import { Icon } from "../components/Icon";
import { LikeButton } from "../components/LikeButton";
import { SongTable } from "../components/SongTable";
import { Empty, ErrorBox, LoadFailed, Loading, Pager } from "../components/States";
import { usePlayer } from "../player/Player";
import { AlbumGrid } from "./AlbumsView";

export function ArtistGrid({ artists, label = "Artists" }: { artists: Artist[]; label?: string }) {
  return (
    <ul className="grid" aria-label={label}>
      {artists.map((a) => (
        <li key={a.id}>
          <Link to={`/artists/${a.id}`} className="card">
            <Cover artistId={a.id} title={a.name} round decorative />
            <span className="card-title">{a.name}</span>
            <span className="card-sub">
              {plural(a.album_count, "album")} · {plural(a.song_count, "song")}
            </span>
          </Link>
        </li>
      ))}
    </ul>
  );
}

export function ArtistsView() {
  const { api } = useApp();
  const [page, setPage] = useState(1);
  const [q, setQ] = useState("");
  const artists = useLoad(
    (signal) => api.get<Page<Artist>>("/api/artists", { page, limit: 30, q }, signal),
    [api, page, q],
  );
  return (
    <section aria-labelledby="artists-h">
      <div className="view-head">
        <h1 id="artists-h">Artists</h1>
        <input
          type="search"
          className="search"
          placeholder="Filter artists"
          aria-label="Filter artists"
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setPage(1);
          }}
        />
      </div>
      {artists.loading && !artists.data ? (
        <Loading />
      ) : artists.error ? (
        <ErrorBox error={artists.error} onRetry={artists.reload} />
      ) : artists.data && artists.data.items.length === 0 ? (
        <Empty>{q ? "No artist matches." : "No artists yet."}</Empty>
      ) : artists.data ? (
        <>
          <ArtistGrid artists={artists.data.items} />
          <Pager
            page={artists.data.page}
            limit={artists.data.limit}
            total={artists.data.total}
            onPage={setPage}
          />
        </>
      ) : null}
    </section>
  );
}

export function ArtistView({ id }: { id: string }) {
  const { api, likedArtists, toggleArtistLike } = useApp();
  const player = usePlayer();
  const artist = useLoad(
    (signal) => api.get<ArtistDetail>(`/api/artists/${encodeURIComponent(id)}`, undefined, signal),
    [api, id],
  );
  if (artist.loading && !artist.data) return <Loading />;
  if (artist.error)
    return (
      <LoadFailed
        error={artist.error}
        onRetry={artist.reload}
        notFound={{
          title: "Artist not found",
          text: "There is no such artist: they may have been deleted, or the link is wrong.",
          back: { to: "/artists", label: "Browse artists" },
        }}
      />
    );
  const a = artist.data;
  if (!a) return null;
  const playAll = async () => {
    const songs = await api.get<Page<Song>>("/api/songs", { artist: a.id, limit: 200 });
    player.play(songs.items);
  };
  return (
    <section aria-labelledby="artist-h">
      <header className="hero">
        <Cover artistId={a.id} title={a.name} size="large" round label={`Picture of ${a.name}`} />
        <div className="hero-text">
          <span className="eyebrow">Artist</span>
          <h1 id="artist-h">{a.name}</h1>
          <p>
            {plural(a.album_count, "album")} · {plural(a.song_count, "song")}
          </p>
          <div className="hero-actions">
            <button
              type="button"
              className="primary play-all"
              aria-label={`Play ${a.name}`}
              disabled={a.song_count === 0}
              onClick={() => void playAll()}
            >
              <Icon name="play" /> Play
            </button>
            <LikeButton
              liked={likedArtists.has(a.id)}
              what="this artist"
              onToggle={() => void toggleArtistLike(a.id)}
            />
          </div>
        </div>
      </header>
      {a.albums.length > 0 && (
        <>
          <h2>Albums</h2>
          <AlbumGrid albums={a.albums} />
        </>
      )}
      {a.singles.length > 0 && (
        <>
          <h2>Singles</h2>
          <SongTable songs={a.singles} label={`Singles of ${a.name}`} />
        </>
      )}
      {a.albums.length === 0 && a.singles.length === 0 && <Empty>No songs by this artist.</Empty>}
    </section>
  );
}
