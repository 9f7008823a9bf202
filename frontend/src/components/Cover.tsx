// Cover art: a song's, an album's or an artist's (see covers.ts for which song's image stands
// for an album or an artist), with a coloured letter when there is none.
import { useEffect, useState } from "react";
import { useApp } from "../app/context";
import { findAlbumCover, findArtistCover } from "./covers";

function hue(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

interface CoverProps {
  title: string;
  /** A song's cover (its own, else its album's), when `hasCover` says it has one. */
  songId?: string | null;
  hasCover?: boolean;
  /** An album's cover: the one it carries, else one of its tracks' art. */
  album?: { id: string; cover_sha256: string | null };
  /** An artist's picture: a cover of one of their albums. */
  artistId?: string;
  size?: "thumb" | "small" | "medium" | "large";
  /** Round, as artists are shown. */
  round?: boolean;
  /** Next to a text that names it already (a list row): hidden from screen readers. */
  decorative?: boolean;
  /** The accessible name (default: "Cover of <title>"). */
  label?: string;
}

export function Cover({
  title,
  songId,
  hasCover = false,
  album,
  artistId,
  size = "medium",
  round = false,
  decorative = false,
  label: name,
}: CoverProps) {
  const { api } = useApp();
  const direct = songId && hasCover ? songId : null;
  const [found, setFound] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);
  const albumId = album?.id;
  const albumCover = album?.cover_sha256 ?? null;
  useEffect(() => {
    setFailed(false);
    setFound(null);
    if (songId !== undefined) return;
    const find = albumId
      ? findAlbumCover(api, albumId, albumCover)
      : artistId
        ? findArtistCover(api, artistId)
        : null;
    if (!find) return;
    let live = true;
    void find.then((id) => live && setFound(id));
    return () => {
      live = false;
    };
  }, [api, songId, albumId, albumCover, artistId]);
  const track = songId !== undefined ? direct : found;
  const className = `cover cover-${size}${round ? " round" : ""}`;
  const label = decorative ? undefined : (name ?? `Cover of ${title}`);
  if (track && !failed) {
    return (
      <img
        className={className}
        src={api.mediaUrl(track, "cover")}
        alt={label ?? ""}
        loading="lazy"
        onError={() => setFailed(true)}
      />
    );
  }
  const h = hue(title);
  return (
    <div
      className={`${className} cover-placeholder`}
      role={decorative ? undefined : "img"}
      aria-label={label}
      aria-hidden={decorative ? true : undefined}
      style={{
        background: `linear-gradient(135deg, hsl(${h} 55% 38%), hsl(${(h + 60) % 360} 45% 18%))`,
      }}
    >
      <span aria-hidden="true">{title.slice(0, 1).toUpperCase()}</span>
    </div>
  );
}
