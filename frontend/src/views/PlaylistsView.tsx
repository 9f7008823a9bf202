// Playlists: the list with a form to create one, and one playlist's page (rename, play,
// reorder, remove songs, delete).
import { useEffect, useState, type FormEvent } from "react";
import { errorText } from "../api/client";
import { useApp, useLoad } from "../app/context";
import { useAction } from "../app/action";
import { usePlaylists } from "../app/playlists";
import { Link, useRouter } from "../app/router";
import type { Playlist, PlaylistDetail } from "../api/types";
import { formatTotal, plural } from "../components/format";
import { Icon } from "../components/Icon";
import { SongTable } from "../components/SongTable";
import { Empty, ErrorBox, FormError, LoadFailed, Loading } from "../components/States";
import { usePlayer } from "../player/Player";

export function PlaylistsView() {
  const { api, notify } = useApp();
  const { playlists, error, refresh } = usePlaylists();
  const { navigate } = useRouter();
  const [name, setName] = useState("");
  const { busy, error: formError, run } = useAction();
  const create = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return;
    await run(async () => {
      const p = await api.post<Playlist>("/api/playlists", { name: name.trim() });
      setName("");
      refresh();
      notify(`Created ${p.name}`);
      navigate(`/playlists/${p.id}`);
    });
  };
  return (
    <section aria-labelledby="playlists-h">
      <div className="view-head">
        <h1 id="playlists-h">Playlists</h1>
      </div>
      <form className="inline-form" onSubmit={(e) => void create(e)}>
        <input
          aria-label="New playlist name"
          placeholder="New playlist name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          maxLength={200}
        />
        <button type="submit" className="primary" disabled={busy || !name.trim()}>
          <Icon name="plus" /> Create playlist
        </button>
      </form>
      <FormError error={formError} />
      {error ? (
        <ErrorBox error={error} onRetry={refresh} />
      ) : playlists === null ? (
        <Loading />
      ) : playlists.length === 0 ? (
        <Empty>No playlists yet. Name one above, then add songs from any song list.</Empty>
      ) : (
        <ul className="grid" aria-label="Your playlists">
          {playlists.map((p) => (
            <li key={p.id}>
              <Link to={`/playlists/${p.id}`} className="card">
                <div className="avatar square" aria-hidden="true">
                  <Icon name="playlist" size={36} />
                </div>
                <span className="card-title">{p.name}</span>
                <span className="card-sub">
                  {plural(p.song_count, "song")} · {formatTotal(p.duration)}
                </span>
              </Link>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function PlaylistView({ id }: { id: string }) {
  const { api, session, notify } = useApp();
  const { refresh } = usePlaylists();
  const { navigate } = useRouter();
  const player = usePlayer();
  const pl = useLoad(
    (signal) =>
      api.get<PlaylistDetail>(`/api/playlists/${encodeURIComponent(id)}`, undefined, signal),
    [api, id],
  );
  const [name, setName] = useState("");
  const [renaming, setRenaming] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (pl.data) setName(pl.data.name);
  }, [pl.data]);

  if (pl.loading && !pl.data) return <Loading />;
  if (pl.error)
    return (
      <LoadFailed
        error={pl.error}
        onRetry={pl.reload}
        notFound={{
          title: "Playlist not found",
          text: "There is no such playlist: it may have been deleted, or the link is wrong.",
          back: { to: "/playlists", label: "Your playlists" },
        }}
      />
    );
  const p = pl.data;
  if (!p) return null;
  const mine = session?.user_id === p.owner_id;

  const edit = async (run: () => Promise<PlaylistDetail>, failure: string) => {
    setBusy(true);
    try {
      pl.setData(await run());
      refresh();
    } catch (e) {
      notify(`${failure}: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  const move = (itemId: string, position: number) =>
    edit(
      () => api.post<PlaylistDetail>(`/api/playlists/${p.id}/move`, { item_id: itemId, position }),
      "Could not move the song",
    );
  const remove = (itemId: string) =>
    edit(
      () => api.delete<PlaylistDetail>(`/api/playlists/${p.id}/songs/${itemId}`),
      "Could not remove the song",
    );
  const rename = async (e: FormEvent) => {
    e.preventDefault();
    await edit(
      () => api.patch<PlaylistDetail>(`/api/playlists/${p.id}`, { name: name.trim() }),
      "Could not rename",
    );
    setRenaming(false);
  };
  const del = async () => {
    if (!window.confirm(`Delete the playlist “${p.name}”?`)) return;
    try {
      await api.delete(`/api/playlists/${p.id}`);
      refresh();
      navigate("/playlists");
    } catch (e) {
      notify(`Could not delete: ${errorText(e)}`);
    }
  };
  const songs = p.items.map((i) => i.song);

  return (
    <section aria-labelledby="playlist-h">
      <header className="hero">
        <div className="avatar square large" aria-hidden="true">
          <Icon name="playlist" size={72} />
        </div>
        <div className="hero-text">
          <span className="eyebrow">Playlist</span>
          {renaming ? (
            <form className="inline-form" onSubmit={(e) => void rename(e)}>
              <input
                aria-label="Playlist name"
                value={name}
                onChange={(e) => setName(e.target.value)}
                autoFocus
                maxLength={200}
              />
              <button type="submit" className="primary" disabled={busy || !name.trim()}>
                Save
              </button>
              <button type="button" className="text-button" onClick={() => setRenaming(false)}>
                Cancel
              </button>
            </form>
          ) : (
            <h1 id="playlist-h">{p.name}</h1>
          )}
          <p>
            {plural(p.song_count, "song")} · {formatTotal(p.duration)}
          </p>
          <div className="hero-actions">
            <button
              type="button"
              className="primary play-all"
              aria-label={`Play ${p.name}`}
              disabled={songs.length === 0}
              onClick={() => player.play(songs)}
            >
              <Icon name="play" /> Play
            </button>
            {mine && !renaming && (
              <button type="button" className="secondary" onClick={() => setRenaming(true)}>
                Rename
              </button>
            )}
            {mine && (
              <button type="button" className="text-button danger" onClick={() => void del()}>
                Delete playlist
              </button>
            )}
          </div>
        </div>
      </header>
      {p.items.length === 0 ? (
        <Empty>This playlist is empty. Add songs with “+ Playlist” next to any song.</Empty>
      ) : (
        <SongTable
          songs={songs}
          label={`Songs of ${p.name}`}
          extra={
            mine
              ? (s, i) => (
                  <span className="reorder">
                    <button
                      type="button"
                      className="icon-button small"
                      aria-label={`Move ${s.title} up`}
                      disabled={busy || i === 0}
                      onClick={() => void move(p.items[i].item_id, i - 1)}
                    >
                      <Icon name="up" size={16} />
                    </button>
                    <button
                      type="button"
                      className="icon-button small"
                      aria-label={`Move ${s.title} down`}
                      disabled={busy || i === p.items.length - 1}
                      onClick={() => void move(p.items[i].item_id, i + 1)}
                    >
                      <Icon name="down" size={16} />
                    </button>
                    <button
                      type="button"
                      className="icon-button small"
                      aria-label={`Remove ${s.title} from the playlist`}
                      disabled={busy}
                      onClick={() => void remove(p.items[i].item_id)}
                    >
                      <Icon name="delete" size={16} />
                    </button>
                  </span>
                )
              : undefined
          }
        />
      )}
    </section>
  );
}
