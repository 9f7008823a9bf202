// Which song's cover stands for an album or an artist. The cover endpoint is per song and
// answers the song's own art, else its album's; a song's `cover_sha256` says whether it has
// one. So an album shows the cover it carries (through any of its tracks) and, when it carries
// none, the art of one of its tracks; an artist shows a cover of one of their albums (else of
// a single).
import type { ApiClient } from "../api/client";
import type { Page, Song } from "../api/types";

/** Tracks asked for when looking for art (an album rarely has more). */
export const COVER_SCAN_LIMIT = 50;

type Track = Pick<Song, "id" | "cover_sha256"> & Partial<Pick<Song, "album_id">>;

/** The track whose cover shows the album: one carrying the album's own cover, else the first
 * with any art; null when no track has art. */
export function albumCoverTrack(albumCover: string | null, tracks: Track[]): string | null {
  const own = albumCover ? tracks.find((t) => t.cover_sha256 === albumCover) : undefined;
  return (own ?? tracks.find((t) => t.cover_sha256))?.id ?? null;
}

/** The song whose cover shows an artist: an album track with art, else any song with art. */
export function artistCoverSong(songs: Track[]): string | null {
  return (
    (songs.find((s) => s.album_id && s.cover_sha256) ?? songs.find((s) => s.cover_sha256))?.id ??
    null
  );
}

// Found covers, per "album:<id>" / "artist:<id>", for the page's lifetime. Only answers that
// found a cover are kept, so art that arrives later (a new upload) shows on the next visit.
const found = new Map<string, Promise<string | null>>();

function remember(key: string, find: () => Promise<string | null>): Promise<string | null> {
  let p = found.get(key);
  if (!p) {
    p = find().catch(() => null);
    found.set(key, p);
    void p.then((id) => id === null && found.get(key) === p && found.delete(key));
  }
  return p;
}

/** The song whose cover shows album `albumId` (`albumCover`: the cover the album carries). */
export function findAlbumCover(
  api: ApiClient,
  albumId: string,
  albumCover: string | null,
): Promise<string | null> {
  return remember(`album:${albumId}`, async () => {
    const page = await api.get<Page<Song>>("/api/songs", {
      album: albumId,
      // Any track shows a cover the album carries; without one, look at all of them.
      limit: albumCover ? 1 : COVER_SCAN_LIMIT,
    });
    return albumCover ? (page.items[0]?.id ?? null) : albumCoverTrack(null, page.items);
  });
}

/** The song whose cover shows artist `artistId`. */
export function findArtistCover(api: ApiClient, artistId: string): Promise<string | null> {
  return remember(`artist:${artistId}`, async () => {
    const page = await api.get<Page<Song>>("/api/songs", {
      artist: artistId,
      limit: COVER_SCAN_LIMIT,
    });
    return artistCoverSong(page.items);
  });
}

/** Forget every found cover (tests; a sign-out). */
export function forgetCovers(): void {
  found.clear();
}
