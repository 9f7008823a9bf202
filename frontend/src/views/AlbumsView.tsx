// The library's home: albums as a cover grid, each card with a play button.
import { useState } from "react";
import { errorText } from "../api/client";
import { useApp, useLoad } from "../app/context";
import { Link } from "../app/router";
import type { Album, AlbumDetail, Page } from "../api/types";
import { Cover } from "../components/Cover";
import { Icon } from "../components/Icon";
import { Empty, ErrorBox, Loading, Pager } from "../components/States";
import { usePlayer } from "../player/Player";

export function AlbumGrid({ albums, label = "Albums" }: { albums: Album[]; label?: string }) {
  return (
    <ul className="grid" aria-label={label}>
      {albums.map((a) => (
        <li key={a.id} className="card-wrap">
          <Link
            to={`/albums/${a.id}`}
            className="card"
            aria-label={`${a.title} by ${a.artist_name}`}
          >
            <Cover album={a} title={a.title} />
            <span className="card-title">{a.title}</span>
            <span className="card-sub">
              {a.year ? `${a.year} · ` : ""}
              {a.artist_name}
            </span>
          </Link>
          <AlbumPlayButton album={a} />
        </li>
      ))}
    </ul>
  );
}

/** Play an album from its card (its tracks are loaded on the press); pause it if it plays. */
function AlbumPlayButton({ album }: { album: Album }) {
  const { api, notify } = useApp();
  const player = usePlayer();
  const [busy, setBusy] = useState(false);
  const playing = player.playing && player.song?.album_id === album.id;
  const press = async () => {
    if (playing) {
      player.toggle();
      return;
    }
    setBusy(true);
    try {
      const detail = await api.get<AlbumDetail>(`/api/albums/${encodeURIComponent(album.id)}`);
      if (detail.tracks.length) player.play(detail.tracks);
      else notify(`${album.title} has no songs.`);
    } catch (e) {
      notify(`Could not play ${album.title}: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button
      type="button"
      className={`card-play ${playing ? "on" : ""}`}
      aria-label={`${playing ? "Pause" : "Play"} ${album.title}`}
      disabled={busy}
      onClick={() => void press()}
    >
      <Icon name={playing ? "pause" : "play"} size={22} />
    </button>
  );
}

export function AlbumsView() {
  const { api } = useApp();
  const [page, setPage] = useState(1);
  const [q, setQ] = useState("");
  const albums = useLoad(
    (signal) => api.get<Page<Album>>("/api/albums", { page, limit: 24, q }, signal),
    [api, page, q],
  );
  return (
    <section aria-labelledby="albums-h">
      <div className="view-head">
        <h1 id="albums-h">Albums</h1>
        <input
          type="search"
          className="search"
          placeholder="Filter albums"
          aria-label="Filter albums"
          value={q}
          onChange={(e) => {
            setQ(e.target.value);
            setPage(1);
          }}
        />
      </div>
      {albums.loading && !albums.data ? (
        <Loading />
      ) : albums.error ? (
        <ErrorBox error={albums.error} onRetry={albums.reload} />
      ) : albums.data && albums.data.items.length === 0 ? (
        <Empty>
          {q ? (
            "No album matches."
          ) : (
            <>
              No albums yet. <Link to="/upload">Upload some music</Link>.
            </>
          )}
        </Empty>
      ) : albums.data ? (
        <>
          <AlbumGrid albums={albums.data.items} />
          <Pager
            page={albums.data.page}
            limit={albums.data.limit}
            total={albums.data.total}
            onPage={setPage}
          />
        </>
      ) : null}
    </section>
  );
}
