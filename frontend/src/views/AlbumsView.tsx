// The library's home: albums as a cover grid.
import { useState } from "react";
import { useApp, useLoad } from "../app/context";
import { Link } from "../app/router";
import type { Album, Page } from "../api/types";
import { Cover } from "../components/Cover";
import { Empty, ErrorBox, Loading, Pager } from "../components/States";

export function AlbumGrid({ albums, label = "Albums" }: { albums: Album[]; label?: string }) {
  return (
    <ul className="grid" aria-label={label}>
      {albums.map((a) => (
        <li key={a.id}>
          <Link
            to={`/albums/${a.id}`}
            className="card"
            aria-label={`${a.title} by ${a.artist_name}`}
          >
            <Cover albumId={a.id} hasCover={!!a.cover_sha256} title={a.title} />
            <span className="card-title">{a.title}</span>
            <span className="card-sub">
              {a.year ? `${a.year} · ` : ""}
              {a.artist_name}
            </span>
          </Link>
        </li>
      ))}
    </ul>
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
