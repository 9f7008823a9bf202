// Every song: search, filters by genre, artist and album, sort, pages (the filters live in
// the URL, so a search can be shared or reloaded); and the liked songs, albums and artists.
import { useEffect, useMemo, useState } from "react";
import { useApp, useLoad } from "../app/context";
import { useRouter } from "../app/router";
import type { Album, Artist, Genre, Page, Song } from "../api/types";
import { Icon } from "../components/Icon";
import { SongTable } from "../components/SongTable";
import { Empty, ErrorBox, Loading, Pager } from "../components/States";
import { usePlayer } from "../player/Player";
import { AlbumGrid } from "./AlbumsView";
import { ArtistGrid } from "./ArtistsView";

const LIMIT = 50;

export function SongsView() {
  const { api } = useApp();
  const { search, navigate } = useRouter();
  const player = usePlayer();
  const params = useMemo(() => new URLSearchParams(search), [search]);
  const q = params.get("q") ?? "";
  const genre = params.get("genre") ?? "";
  const artist = params.get("artist") ?? "";
  const album = params.get("album") ?? "";
  const sort = params.get("sort") ?? "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const [text, setText] = useState(q);

  const update = (changes: Record<string, string>) => {
    const next = new URLSearchParams(search);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!("page" in changes)) next.delete("page");
    const s = next.toString();
    navigate(`/songs${s ? `?${s}` : ""}`, { replace: true });
  };

  // Search as the user types, a moment after the last key.
  useEffect(() => {
    if (text === q) return;
    const t = setTimeout(() => update({ q: text.trim() }), 250);
    return () => clearTimeout(t);
  }, [text]);

  const songs = useLoad(
    (signal) =>
      api.get<Page<Song>>(
        "/api/songs",
        { q, genre, artist, album, sort, page, limit: LIMIT },
        signal,
      ),
    [api, q, genre, artist, album, sort, page],
  );
  const artists = useLoad(
    (signal) => api.get<Page<Artist>>("/api/artists", { limit: 200 }, signal),
    [api],
  );
  const albums = useLoad(
    (signal) => api.get<Page<Album>>("/api/albums", { limit: 200, artist }, signal),
    [api, artist],
  );

  const genres = useLoad(
    (signal) => api.get<{ items: Genre[] }>("/api/genres", undefined, signal),
    [api],
  );
  // Genres match ignoring case: a URL's "jazz" selects the catalog's "Jazz"; one the catalog
  // does not have (any more) stays selectable, so the select shows the filter in force.
  const genreItems = genres.data?.items ?? [];
  const known = genreItems.find((g) => g.genre.toLowerCase() === genre.toLowerCase());
  const genreValue = known ? known.genre : genre;

  return (
    <section aria-labelledby="songs-h">
      <div className="view-head">
        <h1 id="songs-h">Songs</h1>
        <button
          type="button"
          className="primary"
          aria-label="Play all"
          disabled={!songs.data || songs.data.items.length === 0}
          onClick={() => songs.data && player.play(songs.data.items)}
        >
          <Icon name="play" /> Play all
        </button>
      </div>
      <form
        className="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          update({ q: text.trim() });
        }}
      >
        <input
          type="search"
          className="search"
          placeholder="Search title, artist, album"
          aria-label="Search songs"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <FilterSelect
          label="Genre"
          value={genreValue}
          onChange={(genre) => update({ genre })}
          options={[
            ["", "All genres"],
            ...(genre && !known ? [[genre, genre] as const] : []),
            ...genreItems.map((g) => [g.genre, `${g.genre} (${g.songs})`] as const),
          ]}
        />
        <FilterSelect
          label="Artist"
          value={artist}
          onChange={(artist) => update({ artist, album: "" })}
          options={[
            ["", "All artists"],
            ...(artists.data?.items.map((a) => [a.id, a.name] as const) ?? []),
          ]}
        />
        <FilterSelect
          label="Album"
          value={album}
          onChange={(album) => update({ album })}
          options={[
            ["", "All albums"],
            ...(albums.data?.items.map((a) => [a.id, a.title] as const) ?? []),
          ]}
        />
        <FilterSelect
          label="Sort"
          value={sort}
          onChange={(sort) => update({ sort })}
          options={[
            ["", q ? "Best match" : "Title"],
            ["title", "Title"],
            ["recent", "Recently added"],
            ["plays", "Most played"],
            ["likes", "Most liked"],
          ]}
        />
      </form>
      {songs.loading && !songs.data ? (
        <Loading />
      ) : songs.error ? (
        <ErrorBox error={songs.error} onRetry={songs.reload} />
      ) : songs.data && songs.data.items.length === 0 ? (
        <Empty>
          {q || genre || artist || album ? "No song matches these filters." : "No songs yet."}
        </Empty>
      ) : songs.data ? (
        <>
          <p className="muted small" aria-live="polite">
            {songs.data.total} {songs.data.total === 1 ? "song" : "songs"}
          </p>
          <SongTable
            songs={songs.data.items}
            offset={(songs.data.page - 1) * songs.data.limit}
            label="Songs"
          />
          <Pager
            page={songs.data.page}
            limit={songs.data.limit}
            total={songs.data.total}
            onPage={(p) => update({ page: String(p) })}
          />
        </>
      ) : null}
    </section>
  );
}

// One filter of the song list: a select whose options are (value, text) pairs.
function FilterSelect(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  options: readonly (readonly [string, string])[];
}) {
  return (
    <select
      aria-label={props.label}
      className="filter"
      value={props.value}
      onChange={(e) => props.onChange(e.target.value)}
    >
      {props.options.map(([value, text]) => (
        <option key={value} value={value}>
          {text}
        </option>
      ))}
    </select>
  );
}

export function LikedView() {
  const { api, liked, likedAlbums, likedArtists } = useApp();
  const [page, setPage] = useState(1);
  const player = usePlayer();
  const songs = useLoad(
    (signal) => api.get<Page<Song>>("/api/me/likes", { page, limit: LIMIT }, signal),
    [api, page, liked.size],
  );
  const albums = useLoad(
    (signal) => api.get<Page<Album>>("/api/me/likes/albums", { limit: 200 }, signal),
    [api, likedAlbums.size],
  );
  const artists = useLoad(
    (signal) => api.get<Page<Artist>>("/api/me/likes/artists", { limit: 200 }, signal),
    [api, likedArtists.size],
  );
  const nothing = songs.data?.total === 0 && albums.data?.total === 0 && artists.data?.total === 0;
  return (
    <section aria-labelledby="liked-h">
      <div className="view-head">
        <h1 id="liked-h">Liked</h1>
        <button
          type="button"
          className="primary"
          aria-label="Play liked songs"
          disabled={!songs.data?.items.length}
          onClick={() => songs.data && player.play(songs.data.items)}
        >
          <Icon name="play" /> Play
        </button>
      </div>
      {nothing ? (
        <Empty>
          Songs, albums and artists you like show up here. Press the heart next to a song, or on an
          album's or artist's page.
        </Empty>
      ) : (
        <>
          {albums.error ? (
            <ErrorBox error={albums.error} onRetry={albums.reload} />
          ) : albums.data && albums.data.items.length > 0 ? (
            <>
              <h2>Albums</h2>
              <AlbumGrid albums={albums.data.items} label="Liked albums" />
            </>
          ) : null}
          {artists.error ? (
            <ErrorBox error={artists.error} onRetry={artists.reload} />
          ) : artists.data && artists.data.items.length > 0 ? (
            <>
              <h2>Artists</h2>
              <ArtistGrid artists={artists.data.items} label="Liked artists" />
            </>
          ) : null}
          <h2>Songs</h2>
          {songs.loading && !songs.data ? (
            <Loading />
          ) : songs.error ? (
            <ErrorBox error={songs.error} onRetry={songs.reload} />
          ) : songs.data && songs.data.items.length === 0 ? (
            <Empty>No liked songs yet. Press the heart next to a song.</Empty>
          ) : songs.data ? (
            <>
              <SongTable
                songs={songs.data.items}
                offset={(songs.data.page - 1) * songs.data.limit}
                label="Liked songs"
              />
              <Pager
                page={songs.data.page}
                limit={songs.data.limit}
                total={songs.data.total}
                onPage={setPage}
              />
            </>
          ) : null}
        </>
      )}
    </section>
  );
}
